//! Checkpoint stores under stress and in company: a storage outage, Blob checkpoints shared with
//! the official Python processor, a refused storage key.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use hubwasm::checkpoint::local::LocalCheckpointStore;

use crate::azurite::{self, Azurite};
use crate::harness::*;
use crate::python;

#[tokio::test(flavor = "multi_thread")]
async fn a_storage_outage_does_not_stop_processing_and_checkpoints_catch_up() {
    let Local {
        dir,
        endpoint,
        store_dir,
        ..
    } = Local::start(2).await;
    let cfg = config(&endpoint, &store_dir, &dir.path().join("dead"), "");
    let mut host = Host::start("steady", dir.path(), &cfg, &[]);
    send(&endpoint, 10, None).await;
    let store = LocalCheckpointStore::new(&store_dir);
    let all_checkpointed = |last: i64| {
        let cps = futures::executor::block_on(checkpoints(&store, "$Default"));
        cps.len() == 2 && cps.values().all(|c| *c == Some(last))
    };
    eventually(
        "first events checkpointed",
        Duration::from_secs(60),
        || all_checkpointed(4),
        &[&host],
    )
    .await;

    // Storage goes away: the store's directory is replaced by a file.
    let away = dir.path().join("checkpoints-away");
    std::fs::rename(&store_dir, &away).unwrap();
    std::fs::write(&store_dir, b"not a directory").unwrap();
    send(&endpoint, 10, None).await;
    eventually(
        "new events handled during the outage, and the failure reported",
        Duration::from_secs(60),
        || host.handled("$Default").len() >= 20 && host.log().contains("Checkpoint write failed"),
        &[&host],
    )
    .await;
    assert!(
        host.child.try_wait().unwrap().is_none(),
        "the host keeps running"
    );

    // Storage is back: checkpoints catch up by themselves.
    std::fs::remove_file(&store_dir).unwrap();
    std::fs::rename(&away, &store_dir).unwrap();
    eventually(
        "checkpoints caught up",
        Duration::from_secs(60),
        || all_checkpointed(9),
        &[&host],
    )
    .await;
    let status = host.terminate();
    assert!(status.success(), "{status}\n{}", host.log());
    endpoint.shutdown().await;
}

/// The official Python processor and `hubwasm run` take turns on one consumer group and one
/// Blob container: each resumes exactly after the other's checkpoints.
#[tokio::test(flavor = "multi_thread")]
async fn hubwasm_and_the_official_python_processor_resume_from_each_others_blob_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let azurite = Azurite::start();
    let store = blob_store(&azurite, "shared").await;
    let endpoint = start_endpoint(&dir.path().join("hub"), 2).await;
    let wave = |n: i64| -> BTreeSet<(String, i64)> {
        (0..2u32)
            .flat_map(|p| (n * 5..n * 5 + 5).map(move |s| (p.to_string(), s)))
            .collect()
    };

    // Python first: the first 10 events, a checkpoint after each.
    send(&endpoint, 10, None).await;
    let got = python_consumer(&azurite, &endpoint, "shared", 10).await;
    assert_eq!(got, wave(0), "the Python processor reads the first wave");
    let cps = checkpoints(&store, "$Default").await;
    assert_eq!(cps.values().collect::<Vec<_>>(), [&Some(4), &Some(4)]);

    // hubwasm on the same container and group: only the second wave.
    send(&endpoint, 10, None).await;
    let cfg = config_with(
        &endpoint,
        &format!("store = \"blob\"\n{}", blob_keys(&azurite, "shared")),
        &format!(
            "sink = \"directory\"\npath = \"{}\"",
            dir.path().join("dead").display()
        ),
        "",
    );
    let host = Host::run_until_idle("after-python", dir.path(), &cfg, Duration::from_secs(90));
    let handled: BTreeSet<(String, i64)> = host.handled("$Default").into_iter().collect();
    assert_eq!(
        handled,
        wave(1),
        "hubwasm resumes after Python's checkpoints\n{}",
        host.log()
    );
    let after_hubwasm = checkpoints(&store, "$Default").await;
    assert_eq!(
        after_hubwasm.values().collect::<Vec<_>>(),
        [&Some(9), &Some(9)]
    );
    let owners = owners(&store, "$Default").await;
    assert!(
        owners.values().all(Option::is_none),
        "hubwasm released its ownerships on exit: {owners:?}"
    );
    // `hubwasm status` reads the same blobs: no owner, checkpoint 9, last 9, lag 0.
    assert_status_rows(
        status_of(&dir.path().join("after-python.toml")),
        2,
        ["-", "9", "9", "0"],
    );

    // Python again: only the third wave.
    send(&endpoint, 10, None).await;
    let got = python_consumer(&azurite, &endpoint, "shared", 10).await;
    assert_eq!(
        got,
        wave(2),
        "the Python processor resumes after hubwasm's checkpoints"
    );
    endpoint.shutdown().await;
}

/// A mixed fleet: the official Python processor and `hubwasm run` in one consumer group *at the
/// same time* split the partitions 2/2 through the shared blobs; when Python stops, hubwasm takes
/// its partitions over; no event is lost.
#[tokio::test(flavor = "multi_thread")]
async fn hubwasm_and_the_official_python_processor_share_a_group_at_the_same_time() {
    let dir = tempfile::tempdir().unwrap();
    let azurite = Azurite::start();
    let store = blob_store(&azurite, "mixed").await;
    let endpoint = start_endpoint(&dir.path().join("hub"), 4).await;
    send(&endpoint, 40, None).await;
    let cfg = config_with(
        &endpoint,
        &format!("store = \"blob\"\n{}", blob_keys(&azurite, "mixed")),
        &format!(
            "sink = \"directory\"\npath = \"{}\"",
            dir.path().join("dead").display()
        ),
        "",
    );
    let mut host = Host::start("mixed-hubwasm", dir.path(), &cfg, &[]);

    let mut cmd = python::command("blob_consumer.py");
    cmd.args(["--conn", &endpoint.connection_string(HUB)])
        .args(["--storage", &azurite.connection_string()])
        .args(["--container", "mixed"])
        .args(["--duration", "12"]);
    let python = tokio::spawn(python::json_result("blob_consumer.py", cmd));

    // Both processors own two partitions each at some point while Python runs.
    let deadline = Instant::now() + Duration::from_secs(12);
    let mut split = false;
    while !split && Instant::now() < deadline {
        let o = owners(&store, "$Default").await;
        let mut per_owner: BTreeMap<String, usize> = BTreeMap::new();
        for owner in o.values().flatten() {
            *per_owner.entry(owner.clone()).or_default() += 1;
        }
        split = per_owner.len() == 2
            && per_owner.get("mixed-hubwasm") == Some(&2)
            && per_owner.values().all(|n| *n == 2);
        if !split {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let result = python
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    assert!(
        split,
        "never split 2/2: {:?}\n{}",
        owners(&store, "$Default").await,
        tail(&host.log(), 40)
    );
    let by_python = python_events(&result);

    // Python has stopped and released its partitions: hubwasm takes all four and the second wave.
    send(&endpoint, 40, None).await;
    eventually(
        "hubwasm handles the second wave on every partition",
        Duration::from_secs(60),
        || {
            let handled: BTreeSet<(String, i64)> = host.handled("$Default").into_iter().collect();
            (0..4u32).all(|p| (10..20).all(|s| handled.contains(&(p.to_string(), s))))
        },
        &[&host],
    )
    .await;
    let by_hubwasm: BTreeSet<(String, i64)> = host.handled("$Default").into_iter().collect();
    let all: BTreeSet<(String, i64)> = by_python.union(&by_hubwasm).cloned().collect();
    assert_eq!(
        all,
        all_events(4, 20),
        "nothing lost between the two processors"
    );
    assert!(!by_python.is_empty(), "Python handled its share");
    let status = host.terminate();
    assert!(status.success(), "{status}\n{}", host.log());
    endpoint.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_storage_key_stops_the_host_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let azurite = Azurite::start();
    let endpoint = start_endpoint(&dir.path().join("hub"), 1).await;
    let wrong = blob_keys(&azurite, "checkpoints").replace(azurite::KEY, &"A".repeat(88));
    let cfg = config_with(
        &endpoint,
        &format!("store = \"blob\"\n{wrong}"),
        "sink = \"directory\"",
        "",
    );
    let mut host = Host::start("wrong-key", dir.path(), &cfg, &["--exit-when-idle", "1"]);
    let status = host.wait(Duration::from_secs(60));
    let log = host.log();
    assert!(!status.success(), "{log}");
    assert!(log.contains("check the account name and key"), "{log}");
    assert!(
        !log.contains(&"A".repeat(88)),
        "the key is not printed: {log}"
    );
    endpoint.shutdown().await;
}
