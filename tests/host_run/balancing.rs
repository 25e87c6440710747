//! Several hosts share partitions: balance, failover after kill -9, SIGTERM, restarts and
//! consumer groups.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use hubwasm::checkpoint::local::LocalCheckpointStore;
use hubwasm::checkpoint::CheckpointStore;

use crate::azurite::Azurite;
use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn three_hosts_share_eight_partitions_and_a_killed_host_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("checkpoints");
    let store = LocalCheckpointStore::new(&store_dir);
    three_hosts(dir.path(), &local_checkpoints(&store_dir), &store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn three_hosts_on_blob_checkpoints_share_eight_partitions_and_survive_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let azurite = Azurite::start();
    let store = blob_store(&azurite, "checkpoints").await;
    three_hosts(
        dir.path(),
        &format!("store = \"blob\"\n{}", blob_keys(&azurite, "checkpoints")),
        &store,
    )
    .await;
}

/// 3 hosts on `checkpoints` share 8 partitions; one is killed with SIGKILL; nothing is lost.
async fn three_hosts(dir: &Path, checkpoints_toml: &str, store: &impl CheckpointStore) {
    let endpoint = start_endpoint(&dir.join("hub"), 8).await;
    let cfg = config_with(
        &endpoint,
        checkpoints_toml,
        &format!(
            "sink = \"directory\"\npath = \"{}\"",
            dir.join("dead").display()
        ),
        "",
    );
    let dir = dir.to_path_buf();
    let mut hosts: Vec<Host> = ["a", "b", "c"]
        .iter()
        .map(|n| Host::start(n, &dir, &cfg, &[]))
        .collect();

    // 20 events per partition; all handled, and the partitions balanced 3/3/2.
    send(&endpoint, 160, None).await;
    let handled = |hosts: &[Host]| -> BTreeSet<(String, i64)> {
        hosts.iter().flat_map(|h| h.handled("$Default")).collect()
    };
    eventually(
        "the first 160 events handled",
        Duration::from_secs(90),
        || all_events(8, 20).is_subset(&handled(&hosts)),
        &hosts.iter().collect::<Vec<_>>(),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let o = owners(store, "$Default").await;
        let mut per_host: BTreeMap<String, usize> = BTreeMap::new();
        for owner in o.values().flatten() {
            *per_host.entry(owner.clone()).or_default() += 1;
        }
        let counts: Vec<usize> = per_host.values().copied().collect();
        if o.len() == 8
            && o.values().all(|v| v.is_some())
            && per_host.len() == 3
            && counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1
        {
            break;
        }
        assert!(Instant::now() < deadline, "never balanced: {o:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Once balanced, each partition is read by its owner alone: a wave of 5 events per
    // partition is handled once, by the host the store names as the owner.
    let balanced = owners(store, "$Default").await;
    send(&endpoint, 40, None).await;
    let wave: BTreeSet<(String, i64)> = all_events(8, 25)
        .difference(&all_events(8, 20))
        .cloned()
        .collect();
    eventually(
        "the balanced wave handled",
        Duration::from_secs(60),
        || wave.is_subset(&handled(&hosts)),
        &hosts.iter().collect::<Vec<_>>(),
    )
    .await;
    let in_wave: Vec<(&str, (String, i64))> = hosts
        .iter()
        .flat_map(|h| {
            h.handled("$Default")
                .into_iter()
                .map(|e| (h.name.as_str(), e))
        })
        .filter(|(_, e)| wave.contains(e))
        .collect();
    for (host, event) in &in_wave {
        assert_eq!(
            balanced[&event.0].as_deref(),
            Some(*host),
            "{event:?} handled by {host} but owned by {:?}",
            balanced[&event.0]
        );
    }
    assert_eq!(in_wave.len(), wave.len(), "each event of the wave once");

    // kill -9 host a: its partitions go to b and c within expiry + update interval.
    let killed_at = Instant::now();
    hosts[0].kill9();
    let a_partitions: Vec<String> = owners(store, "$Default")
        .await
        .into_iter()
        .filter(|(_, o)| o.as_deref() == Some("a"))
        .map(|(p, _)| p)
        .collect();
    assert!(!a_partitions.is_empty());
    send(&endpoint, 160, None).await;
    loop {
        let o = owners(store, "$Default").await;
        if o.values()
            .all(|v| matches!(v.as_deref(), Some("b") | Some("c")))
        {
            break;
        }
        // Expiry 3 s + update interval 1 s, plus a wide margin for a loaded 2-core machine.
        assert!(
            killed_at.elapsed() < Duration::from_secs(4 + 20),
            "partitions of the killed host not taken over: {o:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let takeover = killed_at.elapsed();
    eprintln!("takeover after kill -9 took {takeover:?} (expiry 3 s + interval 1 s)");

    // Nothing lost: every event of both waves handled by somebody.
    eventually(
        "all 360 events handled after the kill",
        Duration::from_secs(90),
        || all_events(8, 45).is_subset(&handled(&hosts)),
        &hosts.iter().collect::<Vec<_>>(),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let cps = checkpoints(store, "$Default").await;
        if cps.len() == 8 && cps.values().all(|c| *c == Some(44)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "checkpoints never reached the last event of every partition: {cps:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // SIGTERM: both survivors exit 0 and release their ownerships.
    for host in &mut hosts[1..] {
        let status = host.terminate();
        assert!(status.success(), "{}: {status}\n{}", host.name, host.log());
    }
    let o = owners(store, "$Default").await;
    assert!(
        o.values().all(|v| v.is_none()),
        "released on shutdown: {o:?}"
    );
    endpoint.shutdown().await;
}

/// SIGTERM while a batch is in the plugin: the batch finishes, its checkpoint is written, the
/// plugin hears `closed(shutdown)`, the ownership is released, and the host exits 0.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_the_in_flight_batch_and_checkpoints_it() {
    let Local {
        dir,
        endpoint,
        store_dir,
        ..
    } = Local::start(1).await;
    // All 10 events are there before the host starts, and the batch waits up to 5 s to fill,
    // so the first batch holds all 10; the plugin takes 200 ms over each.
    send(&endpoint, 10, None).await;
    let cfg = config(
        &endpoint,
        &store_dir,
        &dir.path().join("dead"),
        "plugin_config = { sleep_ms = \"200\" }\nlimits = { timeout = 30000 }",
    )
    .replace("max_wait_ms = 50", "max_wait_ms = 5000");
    let mut host = Host::start("stopped", dir.path(), &cfg, &[]);
    eventually(
        "the batch started",
        Duration::from_secs(60),
        || !host.handled("$Default").is_empty(),
        &[&host],
    )
    .await;
    let status = host.terminate();
    let log = host.log();
    assert!(status.success(), "{status}\n{log}");
    let handled: BTreeSet<(String, i64)> = host.handled("$Default").into_iter().collect();
    assert_eq!(
        handled,
        all_events(1, 10),
        "the in-flight batch ran to its end\n{log}"
    );
    let store = LocalCheckpointStore::new(&store_dir);
    assert_eq!(
        checkpoints(&store, "$Default").await,
        BTreeMap::from([("0".to_string(), Some(9))]),
        "and was checkpointed"
    );
    assert!(
        log.contains("closed group=$Default partition=0 reason=shutdown"),
        "{log}"
    );
    assert_eq!(
        owners(&store, "$Default").await,
        BTreeMap::from([("0".to_string(), None)]),
        "released"
    );
    endpoint.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_resumes_after_the_last_success_and_consumer_groups_are_independent() {
    let Local {
        dir,
        endpoint,
        store_dir,
        ..
    } = Local::start(2).await;
    let cfg = config(&endpoint, &store_dir, &dir.path().join("dead"), "");
    send(&endpoint, 10, None).await;
    let first = Host::run_until_idle("first", dir.path(), &cfg, Duration::from_secs(90));
    // The plugin saw each partition opened and closed for the shutdown.
    for p in ["0", "1"] {
        let log = first.log();
        assert!(
            log.contains(&format!("opened group=$Default partition={p}")),
            "{log}"
        );
        assert!(
            log.contains(&format!(
                "closed group=$Default partition={p} reason=shutdown"
            )),
            "{log}"
        );
    }
    assert_eq!(
        first
            .handled("$Default")
            .into_iter()
            .collect::<BTreeSet<_>>(),
        all_events(2, 5)
    );
    send(&endpoint, 10, None).await;
    let again = Host::run_until_idle("again", dir.path(), &cfg, Duration::from_secs(90));
    let mut resumed = again.handled("$Default");
    resumed.sort();
    let expected: Vec<(String, i64)> = all_events(2, 10)
        .difference(&all_events(2, 5))
        .cloned()
        .collect();
    assert_eq!(
        resumed, expected,
        "exactly the events after the checkpoints, once each"
    );

    let second_group = cfg.replace(
        &format!("name = \"{HUB}\""),
        &format!("name = \"{HUB}\"\nconsumer_group = \"second\""),
    );
    let other = Host::run_until_idle("other", dir.path(), &second_group, Duration::from_secs(90));
    assert_eq!(
        other.handled("second").into_iter().collect::<BTreeSet<_>>(),
        all_events(2, 10),
        "another consumer group reads everything from its own checkpoints"
    );
    let store = LocalCheckpointStore::new(&store_dir);
    assert_eq!(
        checkpoints(&store, "$Default").await,
        checkpoints(&store, "second").await
    );

    // `hubwasm status` shows every partition checkpointed at its last event, no lag, no owner.
    let cfg_path = dir.path().join("first.toml");
    assert_status_rows(status_of(&cfg_path), 2, ["-", "9", "9", "0"]);
    endpoint.shutdown().await;
}

/// A partition taken over by another instance stops before its next batch, long before the
/// old owner's load balancer would notice at its next cycle (here 20 s away): the new owner
/// alone handles what comes after the steal.
#[tokio::test(flavor = "multi_thread")]
async fn a_stolen_partition_stops_before_its_next_batch() {
    let local = Local::start(2).await;
    let cfg = local
        .config("")
        .replace("strategy = \"balanced\"", "strategy = \"greedy\"")
        .replace("update_interval_ms = 1000", "update_interval_ms = 20000")
        .replace("ownership_expiry_ms = 3000", "ownership_expiry_ms = 60000");
    let host = Host::start("old-owner", local.path(), &cfg, &[]);
    send(&local.endpoint, 10, None).await;
    eventually(
        "the first events handled on both partitions",
        Duration::from_secs(60),
        || host.handled("$Default").len() == 10,
        &[&host],
    )
    .await;
    // Another instance takes partition 1 (as a balancing host would: a conditional claim).
    let store = local.store();
    let mut claim = store
        .list_ownerships(NS, HUB, "$Default")
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.partition_id == "1")
        .expect("partition 1 is owned");
    claim.owner_id = Some("thief".into());
    assert_eq!(store.claim_ownership(&[claim]).await.unwrap().len(), 1);

    send(&local.endpoint, 10, Some("1")).await;
    send(&local.endpoint, 10, Some("0")).await;
    eventually(
        "partition 0's new events handled",
        Duration::from_secs(60),
        || {
            host.handled("$Default")
                .iter()
                .filter(|(p, _)| p == "0")
                .count()
                == 15
        },
        &[&host],
    )
    .await;
    // Partition 1's events arrived first; give its task time it would use if unfenced.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_steal: Vec<i64> = host
        .handled("$Default")
        .into_iter()
        .filter(|(p, s)| p == "1" && *s >= 5)
        .map(|(_, s)| s)
        .collect();
    assert_eq!(after_steal, Vec::<i64>::new(), "{}", host.log());
    let log = host.log();
    assert!(
        log.contains("taken over by another instance") && log.contains("owner=thief"),
        "{log}"
    );
    assert!(
        log.contains("closed group=$Default partition=1 reason=ownership-lost"),
        "{log}"
    );
    assert_eq!(
        owners(&store, "$Default").await.get("1"),
        Some(&Some("thief".to_string())),
        "the old owner leaves the new owner's claim alone"
    );
    local.endpoint.shutdown().await;
}
