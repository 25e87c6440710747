//! The status as text for a terminal, from one renderer: `hubwasm status` (owners,
//! checkpoints and lag per partition, read from the checkpoint store and the event hub with no
//! host running), `hubwasm status --admin` (a running host's `/status`) and a tenant's view.

use crate::event::PartitionContext;
use std::collections::HashMap;

use crate::admin::{Status, TenantStatus};
use crate::config::RunConfig;
use crate::connection::{ConnectionString, EventHubTarget};
use crate::host::positions::read_positions;
use crate::host::{open_store, PartitionPosition, RunError};

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

/// `hubwasm status`: every configured event hub's partitions as the checkpoint store and the
/// event hub tell them, with no host running.
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
        let mut note = None;
        let consumer = match &target {
            Some(target) => match target.consumer(&hub.consumer_group).await {
                Ok(consumer) => Some(consumer),
                Err(err) => {
                    note = Some(format!("event hub not reachable: {err}"));
                    None
                }
            },
            None if in_use => {
                note = Some(
                    "the embedded endpoint is in use by a running `hubwasm run`; set [embedded] \
                     listen to a fixed address to see lag while it runs"
                        .into(),
                );
                None
            }
            None => {
                note = Some("the embedded endpoint's data cannot be opened".into());
                None
            }
        };
        let read = read_positions(
            store.as_ref(),
            consumer.as_ref(),
            &namespace,
            &hub.name,
            &hub.consumer_group,
        )
        .await;
        if let Some(consumer) = consumer {
            let _ = consumer.close().await;
        }
        if let Some(err) = read.store_error {
            return Err(RunError::Store(err));
        }
        // A partition stuck on an event says why (retries, or a plugin that cannot start).
        let mut stuck = HashMap::new();
        for p in &read.positions {
            let at =
                PartitionContext::new(&namespace, &hub.name, &hub.consumer_group, &p.partition);
            let why = match store.load_retry(&at).await {
                Ok(Some(retry)) => match &retry.paused {
                    Some(why) => format!("  PAUSED before {}: {why}", retry.sequence_number),
                    None => format!(
                        "  retrying {} ({} failed attempts)",
                        retry.sequence_number, retry.attempts
                    ),
                },
                Ok(None) => continue,
                Err(err) => format!("  (retry state unreadable: {err})"),
            };
            stuck.insert(p.partition.clone(), why);
        }
        lines.extend(partition_table(&read.positions, |p| {
            stuck.get(&p.partition).cloned().unwrap_or_default()
        }));
        if let Some(note) = note.or(read.hub_error) {
            lines.push(format!("  ({note})"));
        }
        if let Some(running) = opened {
            running.shutdown().await;
        }
    }
    Ok(lines)
}

/// Partitions as a table: partition, owner (and how long ago it renewed), checkpoint, last
/// enqueued event, lag, and what `more` says of each. A last event or lag not known (Event
/// Hubs did not answer) is `?`; an empty partition's last event is `-`.
fn partition_table(
    positions: &[PartitionPosition],
    more: impl Fn(&PartitionPosition) -> String,
) -> Vec<String> {
    let show = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
    let mut lines = vec![format!(
        "  {:<9} {:<40} {:>12} {:>12} {:>8}",
        "partition", "owner", "checkpoint", "last", "lag"
    )];
    for p in positions {
        let owner = match (&p.owner, p.owner_age_s) {
            (Some(o), Some(age)) => format!("{o} ({age}s ago)"),
            (Some(o), None) => o.clone(),
            (None, _) => "-".into(),
        };
        let (last, lag) = match p.lag {
            Some(lag) => (show(p.last_enqueued), lag.to_string()),
            None => ("?".to_string(), "?".to_string()),
        };
        lines.push(format!(
            "  {:<9} {:<40} {:>12} {:>12} {:>8}{}",
            p.partition,
            owner,
            show(p.checkpoint),
            last,
            lag,
            more(p)
        ));
    }
    lines
}

/// `hubwasm status --admin --tenant NAME`: a tenant's limits and usage as lines.
pub fn tenant_lines(t: &TenantStatus) -> Vec<String> {
    let (l, u) = (&t.limits, &t.usage);
    let limit = |v: Option<String>| v.map_or("unlimited".to_string(), |v| format!("limit {v}"));
    let mut lines = vec![
        format!("tenant {}", t.name),
        format!(
            "  now: {:.0} events/s ({}), {:.2} MB/s ({}), {:.2} cores in plugin calls",
            u.events_per_sec,
            limit(l.events_per_sec.map(|r| format!("{r}"))),
            u.mb_per_sec,
            limit(l.mb_per_sec.map(|r| format!("{r}"))),
            u.cpu_share
        ),
        format!(
            "  memory: peak {} bytes per instance ({}); calls: {} in flight ({}), timeout {}",
            u.memory_peak_bytes,
            limit(l.memory_bytes.map(|m| m.to_string())),
            u.in_flight,
            limit(l.max_in_flight.map(|m| m.to_string())),
            l.timeout_ms
                .map_or("default".to_string(), |t| format!("{t} ms"))
        ),
        format!(
            "  since start: {} calls, {} events, {} bytes, {} failures, {:.1} s in calls; \
             throttled {:.1} s over {} calls; {} storm pauses ({:.1} s)",
            u.calls,
            u.events,
            u.bytes,
            u.failures,
            u.busy_secs,
            u.throttled_secs,
            u.throttled_calls,
            u.storms,
            u.storm_paused_secs
        ),
    ];
    for hub in &t.event_hubs {
        lines.push(format!(
            "  event hub {} (consumer group {}): plugin {} {}",
            hub.event_hub,
            hub.consumer_group,
            hub.plugin.name,
            &hub.plugin.digest[..hub.plugin.digest.len().min(12)]
        ));
    }
    lines
}

/// `hubwasm status --admin`: the status as lines for a terminal.
pub fn status_lines(status: &Status) -> Vec<String> {
    let mut lines = vec![format!(
        "instance {} (up {:.0} s): handled {}, failures {}, dead-lettered {}, checkpoints {}, swaps {}",
        status.instance_id,
        status.uptime_s,
        status.handled,
        status.failures,
        status.dead_lettered,
        status.checkpoints,
        status.swaps
    )];
    for hub in &status.event_hubs {
        lines.push(format!(
            "event hub {} (consumer group {}): plugin {} {} ({})",
            hub.event_hub,
            hub.consumer_group,
            hub.plugin.name,
            &hub.plugin.digest[..hub.plugin.digest.len().min(12)],
            hub.plugin.path
        ));
        lines.extend(partition_table(&hub.positions, |p| {
            hub.partitions
                .iter()
                .find(|o| o.partition == p.partition)
                .map(|o| format!("  here: {}", o.state))
                .unwrap_or_default()
        }));
        if let Some(problem) = &hub.positions_error {
            lines.push(format!("  (partial: {problem})"));
        }
        if let Some(problem) = &hub.problem {
            lines.push(format!("  NOT RUNNING: {problem}"));
        }
        for swap in &hub.swaps {
            lines.push(format!(
                "  {} at {} ms: {} {} -> {} {}",
                swap.reason,
                swap.at_ms,
                swap.from.name,
                &swap.from.digest[..swap.from.digest.len().min(12)],
                swap.to.name,
                &swap.to.digest[..swap.to.digest.len().min(12)]
            ));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(partition: &str, owner: Option<(&str, i64)>, cp: Option<i64>) -> PartitionPosition {
        PartitionPosition {
            partition: partition.into(),
            owner: owner.map(|(o, _)| o.to_string()),
            owner_age_s: owner.map(|(_, age)| age),
            checkpoint: cp,
            last_enqueued: None,
            lag: None,
        }
    }

    #[test]
    fn the_table_tells_unknown_from_empty_and_says_more_per_partition() {
        let mut known = position("0", Some(("host-a", 3)), Some(9));
        (known.last_enqueued, known.lag) = (Some(12), Some(3));
        let mut empty = position("1", None, None);
        empty.lag = Some(0);
        let unknown = position("2", None, Some(4));
        let rows = partition_table(&[known, empty, unknown], |p| {
            if p.partition == "0" {
                "  here: running".into()
            } else {
                String::new()
            }
        });
        let cells: Vec<Vec<&str>> = rows
            .iter()
            .map(|r| r.split_whitespace().collect())
            .collect();
        assert_eq!(
            cells[0],
            ["partition", "owner", "checkpoint", "last", "lag"]
        );
        assert_eq!(
            cells[1],
            ["0", "host-a", "(3s", "ago)", "9", "12", "3", "here:", "running"]
        );
        assert_eq!(cells[2], ["1", "-", "-", "-", "0"], "an empty partition");
        assert_eq!(
            cells[3],
            ["2", "-", "4", "?", "?"],
            "Event Hubs did not answer"
        );
    }
}
