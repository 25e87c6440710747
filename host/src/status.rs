//! `hubwasm status`: owners, checkpoints and lag per partition, from the checkpoint store and
//! the event hub.

use crate::event::PartitionContext;
use std::collections::HashMap;

use crate::config::RunConfig;
use crate::connection::{ConnectionString, EventHubTarget};
use crate::host::{open_store, RunError};

/// Where `hub` can be read: its target, the embedded endpoint this command opened (kept running
/// until the caller is done with it), and whether the embedded data directory is in use.
async fn reach(
    config: &RunConfig,
    hub: &crate::config::EventHubConfig,
) -> Result<
    (
        Option<EventHubTarget>,
        Option<hubwasm_hub::RunningHub>,
        bool,
    ),
    RunError,
> {
    match hub.address() {
        crate::config::EventHubAddress::ConnectionString { parsed, .. } => {
            return Ok((Some(parsed.target()), None, false));
        }
        crate::config::EventHubAddress::Entra { namespace } => {
            return Ok((
                Some(EventHubTarget::entra(namespace, &hub.name)?),
                None,
                false,
            ));
        }
        crate::config::EventHubAddress::Embedded => {}
    }
    let Some(embedded) = config.embedded.as_ref() else {
        return Ok((None, None, false));
    };
    // The embedded endpoint lives inside a running host; reach it only at a fixed address.
    if let Some(addr) = embedded.listen.filter(|addr| addr.port() != 0) {
        let conn = ConnectionString {
            host: format!("localhost:{}", addr.port()),
            key_name: hubwasm_hub::config::DEFAULT_POLICY.into(),
            key: hubwasm_hub::config::DEVELOPMENT_KEY.into(),
            entity_path: hub.name.clone(),
            emulator: true,
        };
        return Ok((Some(conn.target()), None, false));
    }
    // No fixed address: open the endpoint's data directory ourselves, unless a host runs on it.
    let mut hub_config = match &embedded.config {
        Some(path) => match hubwasm_hub::HubConfig::load(path) {
            Ok(c) => c,
            Err(_) => return Ok((None, None, false)),
        },
        None => hubwasm_hub::HubConfig::default(),
    };
    hub_config.listen = "127.0.0.1:0".parse().expect("valid address");
    if let Some(data) = &embedded.data {
        hub_config.data_dir = data.clone();
    }
    Ok(match hubwasm_hub::start(hub_config).await {
        Ok(running) => {
            let target = ConnectionString::parse(&running.connection_string(&hub.name))
                .ok()
                .map(|c| c.target());
            (target, Some(running), false)
        }
        Err(hubwasm_hub::StartError::InUse(_)) => (None, None, true),
        Err(_) => (None, None, false),
    })
}

/// One line per partition of every configured event hub, with a header per hub.
pub async fn status(config: &RunConfig) -> Result<Vec<String>, RunError> {
    let store = open_store(&config.checkpoints).await?;
    let mut lines = vec![format!("checkpoint store: {}", store.describe())];
    for hub in &config.event_hubs {
        let (target, opened, in_use) = reach(config, hub).await?;
        let namespace = match &target {
            Some(t) => t.namespace.clone(),
            None => "localhost".to_string(),
        };
        lines.push(String::new());
        lines.push(format!(
            "event hub {} ({namespace}), consumer group {}",
            hub.name, hub.consumer_group
        ));
        let owners: HashMap<String, (Option<String>, Option<azure_core::time::OffsetDateTime>)> =
            store
                .list_ownerships(&namespace, &hub.name, &hub.consumer_group)
                .await
                .map_err(|e| RunError::Store(e.to_string()))?
                .into_iter()
                .map(|o| (o.partition_id, (o.owner_id, o.last_modified_time)))
                .collect();
        let checkpoints: HashMap<String, Option<i64>> = store
            .list_checkpoints(&namespace, &hub.name, &hub.consumer_group)
            .await
            .map_err(|e| RunError::Store(e.to_string()))?
            .into_iter()
            .map(|c| (c.partition_id, c.sequence_number))
            .collect();
        // The partitions and their last events, if the hub can be reached.
        let mut last: Option<HashMap<String, Option<i64>>> = None;
        let mut note = None;
        match &target {
            Some(target) => match target.consumer(&hub.consumer_group).await {
                Ok(consumer) => {
                    let mut map = HashMap::new();
                    match consumer.get_eventhub_properties().await {
                        Ok(props) => {
                            for id in props.partition_ids {
                                let p = consumer.get_partition_properties(&id).await.ok();
                                map.insert(
                                    id,
                                    p.map(|p| {
                                        (!p.is_empty).then_some(p.last_enqueued_sequence_number)
                                    })
                                    .unwrap_or(None),
                                );
                            }
                            last = Some(map);
                        }
                        Err(err) => note = Some(format!("event hub not readable: {err}")),
                    }
                    let _ = consumer.close().await;
                }
                Err(err) => note = Some(format!("event hub not reachable: {err}")),
            },
            None if in_use => {
                note = Some(
                    "the embedded endpoint is in use by a running `hubwasm run`; set [embedded] \
                     listen to a fixed address to see lag while it runs"
                        .into(),
                )
            }
            None => note = Some("the embedded endpoint's data cannot be opened".into()),
        }
        let mut ids: Vec<String> = owners
            .keys()
            .chain(checkpoints.keys())
            .cloned()
            .chain(last.iter().flat_map(|m| m.keys().cloned()))
            .collect();
        ids.sort_by_key(|id| (id.parse::<u64>().unwrap_or(u64::MAX), id.clone()));
        ids.dedup();
        lines.push(format!(
            "  {:<9} {:<40} {:>12} {:>12} {:>8}",
            "partition", "owner", "checkpoint", "last", "lag"
        ));
        for id in ids {
            let (owner, modified) = owners.get(&id).cloned().unwrap_or((None, None));
            let owner = match (owner, modified) {
                (Some(o), Some(t)) => {
                    let age = (azure_core::time::OffsetDateTime::now_utc() - t).whole_seconds();
                    format!("{o} ({age}s ago)")
                }
                (Some(o), None) => o,
                (None, _) => "-".into(),
            };
            let checkpoint = checkpoints.get(&id).copied().flatten();
            let last_seq = last.as_ref().and_then(|m| m.get(&id).copied().flatten());
            let lag = match (&last, last_seq, checkpoint) {
                (None, _, _) => "?".to_string(),
                (Some(_), None, _) => "0".to_string(),
                (Some(_), Some(l), Some(c)) => (l - c).max(0).to_string(),
                (Some(_), Some(l), None) => (l + 1).to_string(),
            };
            let show = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
            // A partition stuck on an event says why (retries, or a plugin that cannot start).
            let at = PartitionContext::new(&namespace, &hub.name, &hub.consumer_group, &id);
            let stuck = match store.load_retry(&at).await {
                Ok(Some(retry)) => match &retry.paused {
                    Some(why) => format!("  PAUSED before {}: {why}", retry.sequence_number),
                    None => format!(
                        "  retrying {} ({} failed attempts)",
                        retry.sequence_number, retry.attempts
                    ),
                },
                Ok(None) => String::new(),
                Err(err) => format!("  (retry state unreadable: {err})"),
            };
            lines.push(format!(
                "  {:<9} {:<40} {:>12} {:>12} {:>8}{stuck}",
                id,
                owner,
                show(checkpoint),
                if last.is_some() {
                    show(last_seq)
                } else {
                    "?".into()
                },
                lag
            ));
        }
        if let Some(note) = note {
            lines.push(format!("  ({note})"));
        }
        if let Some(running) = opened {
            running.shutdown().await;
        }
    }
    Ok(lines)
}
