//! What a failing plugin costs: retries, dead letters (directory, event hub, blob), halt, the
//! retry count across a takeover, call timeouts and the memory limit, plugins that cannot start.

use std::collections::BTreeSet;
use std::time::Duration;

use hubwasm::checkpoint::local::LocalCheckpointStore;
use hubwasm::checkpoint::{CheckpointStore, RetryStore};
use hubwasm::connection::ConnectionString;
use hubwasm::event::PartitionContext;

use crate::azurite::Azurite;
use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_event_is_retried_then_dead_lettered_and_processing_continues() {
    let t = Local::start(2).await;
    let cfg = t.config(
        r#"plugin_config = { fail_partition = "0", fail_at = "3" }
[eventhub.failure]
policy = "dead-letter"
max_attempts = 3
initial_backoff_ms = 20"#,
    );
    send(&t.endpoint, 10, Some("0")).await;
    send(&t.endpoint, 10, Some("1")).await;
    let host = Host::run_until_idle("solo", t.path(), &cfg, Duration::from_secs(90));
    let log = host.log();

    let handled: BTreeSet<(String, i64)> = host.handled("$Default").into_iter().collect();
    let mut expected = all_events(2, 10);
    expected.remove(&("0".to_string(), 3));
    assert_eq!(
        handled, expected,
        "everything but the failing event, which comes after its retries"
    );
    let attempts = log
        .lines()
        .filter(|l| l.contains("Plugin failed on an event") && l.contains("sequence_number=3"))
        .count();
    assert_eq!(attempts, 3, "{log}");

    let letters =
        std::fs::read_to_string(t.dead.join(HUB).join("$Default").join("0.jsonl")).unwrap();
    let letters: Vec<serde_json::Value> = letters
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter["sequence_number"], 3);
    assert_eq!(letter["partition_id"], "0");
    assert_eq!(letter["attempts"], 3);
    assert_eq!(letter["plugin"], "test_record");
    assert_eq!(letter["error_kind"], "retryable");
    assert!(letter["error"]
        .as_str()
        .unwrap()
        .contains("configured to fail at 0/3"));
    assert!(letter["offset"].as_str().is_some());
    assert!(letter["plugin_version"].as_str().unwrap().len() == 12);
    assert!(letter["body"].as_str().unwrap().contains("Test message #4"));

    let store = t.store();
    let cps = checkpoints(&store, "$Default").await;
    assert_eq!(cps.get("0"), Some(&Some(9)));
    assert_eq!(cps.get("1"), Some(&Some(9)));
    assert_eq!(
        store
            .load_retry(&PartitionContext::new(NS, HUB, "$Default", "0"))
            .await
            .unwrap(),
        None
    );
    t.endpoint.shutdown().await;
}

/// `rejected` means poison: dead-lettered on the first attempt, never retried.
#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_event_is_dead_lettered_without_a_retry() {
    let t = Local::start(1).await;
    let cfg = t.config(
        r#"plugin_config = { fail_at = "2", kind = "rejected" }
[eventhub.failure]
policy = "dead-letter"
max_attempts = 5
initial_backoff_ms = 20"#,
    );
    send(&t.endpoint, 5, Some("0")).await;
    let host = Host::run_until_idle("rejecter", t.path(), &cfg, Duration::from_secs(60));
    let log = host.log();
    let attempts = log
        .lines()
        .filter(|l| l.contains("Plugin failed on an event"))
        .count();
    assert_eq!(attempts, 1, "no retry of a rejected event: {log}");
    let letters =
        std::fs::read_to_string(t.dead.join(HUB).join("$Default").join("0.jsonl")).unwrap();
    let letter: serde_json::Value = serde_json::from_str(letters.lines().next().unwrap()).unwrap();
    assert_eq!(letter["attempts"], 1);
    assert_eq!(letter["error_kind"], "rejected");
    let handled: Vec<i64> = host.handled("$Default").iter().map(|(_, s)| *s).collect();
    assert_eq!(handled, [0, 1, 3, 4], "{log}");
    t.endpoint.shutdown().await;
}

/// Retries wait the configured backoff: 300 ms, then 600 ms (lower bounds only: a sleep never
/// ends early, so this cannot flake on a slow machine).
#[tokio::test(flavor = "multi_thread")]
async fn retries_wait_the_configured_backoff() {
    let t = Local::start(1).await;
    let cfg = t.config(
        r#"plugin_config = { fail_at = "0" }
[eventhub.failure]
policy = "dead-letter"
max_attempts = 3
initial_backoff_ms = 300
max_backoff_ms = 5000"#,
    );
    send(&t.endpoint, 1, Some("0")).await;
    let host = Host::run_until_idle("backoff", t.path(), &cfg, Duration::from_secs(60));
    let log = host.log();
    // The log's own timestamps (RFC 3339, microseconds) of each failure.
    let at: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("Plugin failed on an event"))
        .map(|l| seconds_of_day(l).unwrap_or_else(|| panic!("no timestamp in {l}")))
        .collect();
    assert_eq!(at.len(), 3, "{log}");
    // rem_euclid: a run across midnight still measures forward.
    let (first_wait, second_wait) = (
        (at[1] - at[0]).rem_euclid(86_400.0),
        (at[2] - at[1]).rem_euclid(86_400.0),
    );
    assert!(
        first_wait >= 0.3,
        "waited {first_wait} s before attempt 2\n{log}"
    );
    assert!(
        second_wait >= 0.6,
        "waited {second_wait} s before attempt 3\n{log}"
    );
    t.endpoint.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_halt_the_partition_stops_before_the_failure_and_the_others_go_on() {
    let Local {
        dir,
        endpoint,
        store_dir,
        ..
    } = Local::start(2).await;
    let cfg = config(
        &endpoint,
        &store_dir,
        &dir.path().join("dead"),
        r#"plugin_config = { fail_partition = "0", fail_at = "3", kind = "trap" }
[eventhub.failure]
policy = "halt"
max_attempts = 2
initial_backoff_ms = 20"#,
    );
    send(&endpoint, 10, Some("0")).await;
    send(&endpoint, 10, Some("1")).await;
    let mut host = Host::start("halter", dir.path(), &cfg, &[]);
    eventually(
        "partition 0 halted and partition 1 handled",
        Duration::from_secs(90),
        || {
            let log = host.log();
            log.contains("Partition halted")
                && host
                    .handled("$Default")
                    .iter()
                    .filter(|e| e.0 == "1")
                    .count()
                    == 10
        },
        &[&host],
    )
    .await;
    let store = LocalCheckpointStore::new(&store_dir);
    eventually(
        "checkpoints written",
        Duration::from_secs(30),
        || {
            let cps = futures::executor::block_on(checkpoints(&store, "$Default"));
            cps.get("0") == Some(&Some(2)) && cps.get("1") == Some(&Some(9))
        },
        &[&host],
    )
    .await;
    // The trap inside the first batch call hides which event failed, so 0..=2 are handled
    // again one at a time (at least once); nothing after the failing event is.
    let handled_0: BTreeSet<i64> = host
        .handled("$Default")
        .into_iter()
        .filter(|e| e.0 == "0")
        .map(|e| e.1)
        .collect();
    assert_eq!(
        handled_0,
        BTreeSet::from([0, 1, 2]),
        "nothing after the failure"
    );
    let retry = store
        .load_retry(&PartitionContext::new(NS, HUB, "$Default", "0"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((retry.sequence_number, retry.attempts), (3, 2));
    let log = host.log();
    assert!(
        log.contains("trapped"),
        "a trap counts as a failure:\n{log}"
    );
    // The halted partition keeps its ownership: still the halter's, and renewed past the 3 s
    // expiry, so no other instance would process past the failure.
    let owned_0 = || {
        let list = futures::executor::block_on(store.list_ownerships(NS, HUB, "$Default")).unwrap();
        list.into_iter()
            .find(|o| o.partition_id == "0")
            .map(|o| (o.owner_id, o.last_modified_time))
    };
    let (owner, first) = owned_0().expect("partition 0 has an ownership record");
    assert_eq!(owner.as_deref(), Some("halter"));
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    let (owner, later) = owned_0().unwrap();
    assert_eq!(
        owner.as_deref(),
        Some("halter"),
        "a halted partition is not released"
    );
    assert!(
        later > first,
        "the ownership is renewed: {first:?} -> {later:?}"
    );
    let status = host.terminate();
    assert!(status.success(), "{status}");
    endpoint.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_takeover_continues_the_retry_count() {
    let t = Local::start(1).await;
    // Attempt 1 fails at once, then 1.5 s backoffs: the first host is killed during one.
    let cfg = t.config(
        r#"plugin_config = { fail_at = "1" }
[eventhub.failure]
max_attempts = 4
initial_backoff_ms = 1500
max_backoff_ms = 1500"#,
    );
    send(&t.endpoint, 3, Some("0")).await;
    let store = t.store();
    let mut first = Host::start("first", t.path(), &cfg, &[]);
    eventually(
        "two failed attempts recorded",
        Duration::from_secs(60),
        || {
            futures::executor::block_on(
                store.load_retry(&PartitionContext::new(NS, HUB, "$Default", "0")),
            )
            .ok()
            .flatten()
            .is_some_and(|r| r.attempts == 2)
        },
        &[&first],
    )
    .await;
    first.kill9();
    let second = Host::run_until_idle("second", t.path(), &cfg, Duration::from_secs(90));
    let failed_here = second
        .log()
        .lines()
        .filter(|l| l.contains("Plugin failed on an event"))
        .count();
    assert_eq!(failed_here, 2, "attempts 3 and 4 only:\n{}", second.log());
    let letters =
        std::fs::read_to_string(t.dead.join(HUB).join("$Default").join("0.jsonl")).unwrap();
    let letter: serde_json::Value = serde_json::from_str(letters.lines().next().unwrap()).unwrap();
    assert_eq!(letter["attempts"], 4);
    let handled: Vec<i64> = second
        .handled("$Default")
        .into_iter()
        .map(|e| e.1)
        .collect();
    assert_eq!(
        handled,
        vec![2],
        "event 0 was checkpointed by the first host, 1 dead-lettered"
    );
    t.endpoint.shutdown().await;
}

/// Two `[[eventhub]]` sections on one hub: an endless loop hits the call timeout, a runaway
/// allocation the memory limit. Both count as failures: retried, dead-lettered, checkpointed past.
#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_and_the_memory_limit_count_as_failures() {
    let t = Local::start(1).await;
    let section = |group: &str, plugin: &str, limits: &str| {
        format!(
            r#"
[[eventhub]]
name = "{HUB}"
consumer_group = "{group}"
connection_string = "{conn}"
plugin = "{plugin}"
mode = "event"
[eventhub.limits]
{limits}
[eventhub.failure]
policy = "dead-letter"
max_attempts = 2
initial_backoff_ms = 10
[eventhub.dead_letter]
sink = "directory"
path = "{dead}"
"#,
            conn = t.endpoint.connection_string(HUB),
            dead = t.dead.display(),
        )
    };
    let cfg = format!(
        "summary_interval_secs = 1\n[checkpoints]\n{}\n{}{}",
        local_checkpoints(&t.store_dir),
        section("$Default", hubwasm_plugins::TEST_LOOP, "timeout = 200"),
        section(
            "second",
            hubwasm_plugins::TEST_ALLOC_BOMB,
            "memory_bytes = 33554432"
        ),
    );
    send(&t.endpoint, 2, None).await;
    let host = Host::run_until_idle("limits", t.path(), &cfg, Duration::from_secs(120));
    let log = host.log();

    for (group, kind) in [("$Default", "timed-out"), ("second", "memory-limit")] {
        let letters = std::fs::read_to_string(t.dead.join(HUB).join(group).join("0.jsonl"))
            .unwrap_or_else(|e| panic!("{group}: {e}\n{log}"));
        let letters: Vec<serde_json::Value> = letters
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let seqs: Vec<i64> = letters
            .iter()
            .map(|l| l["sequence_number"].as_i64().unwrap())
            .collect();
        assert_eq!(seqs, [0, 1], "{group}: {letters:?}");
        for letter in &letters {
            assert_eq!(letter["error_kind"], kind, "{group}: {letter}");
            assert_eq!(letter["attempts"], 2, "{group}: {letter}");
        }
        let store = t.store();
        let cps = checkpoints(&store, group).await;
        assert_eq!(
            cps.get("0"),
            Some(&Some(1)),
            "{group}: checkpointed past both"
        );
    }
    t.endpoint.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_can_go_to_another_event_hub() {
    let t = Local::start(1).await;
    let cfg = t.config(r#"plugin_config = { fail_at = "1", kind = "rejected" }"#);
    let cfg = cfg.replace(
        &format!("sink = \"directory\"\npath = \"{}\"", t.dead.display()),
        &format!(
            "sink = \"eventhub\"\nconnection_string = \"{}\"",
            t.endpoint.connection_string("dead-letters")
        ),
    );
    send(&t.endpoint, 3, None).await;
    let host = Host::run_until_idle("dl", t.path(), &cfg, Duration::from_secs(90));
    let handled: Vec<i64> = host.handled("$Default").into_iter().map(|e| e.1).collect();
    assert_eq!(
        handled,
        vec![0, 2],
        "a rejected event is dead-lettered at once, no retries"
    );

    let target = ConnectionString::parse(&t.endpoint.connection_string("dead-letters"))
        .unwrap()
        .target();
    let consumer = target.consumer("$Default").await.unwrap();
    let receiver = consumer
        .open_receiver_on_partition(
            "0".to_string(),
            Some(hubwasm::connection::from_earliest(None)),
        )
        .await
        .unwrap();
    let stream = receiver.stream_events();
    futures::pin_mut!(stream);
    let event = tokio::time::timeout(
        Duration::from_secs(20),
        futures::StreamExt::next(&mut stream),
    )
    .await
    .expect("the dead letter arrives")
    .unwrap()
    .unwrap();
    let props = event.event_data().properties().unwrap();
    let text = |k: &str| format!("{:?}", props.get(k).unwrap());
    assert!(text("hubwasm-sequence-number").contains('1'), "{props:?}");
    assert!(text("hubwasm-error-kind").contains("rejected"), "{props:?}");
    assert!(text("hubwasm-plugin").contains("test_record"), "{props:?}");
    assert!(String::from_utf8_lossy(event.event_data().body().unwrap()).contains("Test message #2"));
    t.endpoint.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_can_go_to_a_blob_container() {
    let dir = tempfile::tempdir().unwrap();
    let azurite = Azurite::start();
    let endpoint = start_endpoint(&dir.path().join("hub"), 1).await;
    let cfg = config_with(
        &endpoint,
        &format!("store = \"blob\"\n{}", blob_keys(&azurite, "checkpoints")),
        &format!("sink = \"blob\"\n{}", blob_keys(&azurite, "dead-letters")),
        r#"plugin_config = { fail_at = "1", kind = "rejected" }"#,
    );
    send(&endpoint, 3, None).await;
    let host = Host::run_until_idle("dl-blob", dir.path(), &cfg, Duration::from_secs(90));
    let handled: Vec<i64> = host.handled("$Default").into_iter().map(|e| e.1).collect();
    assert_eq!(handled, vec![0, 2]);

    let dead = blob_store(&azurite, "dead-letters").await;
    let names: Vec<String> = futures::TryStreamExt::try_collect::<Vec<_>>(
        dead.container_client().list_blobs(None).unwrap(),
    )
    .await
    .unwrap()
    .into_iter()
    .filter_map(|b| b.name)
    .collect();
    let expected = format!("{HUB}/$Default/0/{:020}.json", 1);
    assert_eq!(names, vec![expected.clone()]);
    let body = dead
        .container_client()
        .blob_client(&expected)
        .download(None)
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap();
    let letter: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(letter["sequence_number"], 1);
    assert_eq!(letter["error_kind"], "rejected");
    assert_eq!(letter["plugin"], "test_record");
    assert!(letter["body"].as_str().unwrap().contains("Test message #2"));
    let cps = checkpoints(&blob_store(&azurite, "checkpoints").await, "$Default").await;
    assert_eq!(
        cps.get("0"),
        Some(&Some(2)),
        "checkpointed past the dead letter"
    );
    endpoint.shutdown().await;
}

/// A plugin that refuses its config (the issue's `--plugin-config min_value=abc`): the host
/// exits non-zero with the plugin's message before it claims anything; no event is touched.
#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_that_cannot_start_stops_the_host_before_it_claims_anything() {
    let t = Local::start(2).await;
    let cfg = t.config(r#"plugin_config = { kind = "sometimes" }"#);
    send(&t.endpoint, 10, None).await;
    let mut host = Host::start("refused", t.path(), &cfg, &["--exit-when-idle", "1"]);
    let status = host.wait(Duration::from_secs(60));
    let log = host.log();
    assert!(!status.success(), "{log}");
    assert_eq!(
        log.matches("refused to start").count(),
        1,
        "said once: {log}"
    );
    assert!(
        log.contains("config `kind` = `sometimes` is invalid"),
        "{log}"
    );
    assert!(host.handled("$Default").is_empty(), "{log}");
    assert!(!t.dead.exists(), "nothing may be dead-lettered: {log}");
    let store = t.store();
    assert!(owners(&store, "$Default").await.is_empty(), "{log}");
    assert!(checkpoints(&store, "$Default").await.is_empty(), "{log}");
    t.endpoint.shutdown().await;
}

/// The plugin starts, then traps on an event; its replacement cannot start (`init` refuses once
/// a deadline has passed). The partition pauses before the event: the trap counts as one
/// attempt, the failed starts count as none, nothing is dead-lettered, the checkpoint stays, and
/// the summary line and `hubwasm status` say the partition is paused and why.
#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_that_cannot_restart_pauses_the_partition_and_dead_letters_nothing() {
    let t = Local::start(1).await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    // Long enough for the host to load and check the plugin at start-up.
    let deadline = now_ms + 3_000;
    let cfg = t.config(&format!(
        r#"plugin_config = {{ kind = "trap", fail_at = "2", fail_init_after_ms = "{deadline}" }}
mode = "event"
[eventhub.failure]
policy = "dead-letter"
max_attempts = 2
initial_backoff_ms = 50
max_backoff_ms = 200"#
    ));
    let mut host = Host::start("paused", t.path(), &cfg, &[]);
    eventually(
        "the host owns the partition",
        Duration::from_secs(30),
        || host.log().contains("opened group=$Default partition=0"),
        &[&host],
    )
    .await;
    // Send only after the plugin can no longer start again.
    while (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis())
        <= deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    send(&t.endpoint, 5, Some("0")).await;
    eventually(
        "the summary reports the pause, more than once",
        Duration::from_secs(60),
        || {
            let log = host.log();
            log.contains("orders/0(PAUSED")
                && log
                    .matches("Plugin cannot start; the partition is paused")
                    .count()
                    >= 3
        },
        &[&host],
    )
    .await;
    let log = host.log();
    let handled: Vec<i64> = host.handled("$Default").iter().map(|(_, s)| *s).collect();
    assert_eq!(handled, [0, 1], "events before the trap only: {log}");
    let failures = log
        .lines()
        .filter(|l| l.contains("Plugin failed on an event"))
        .count();
    assert_eq!(failures, 1, "only the trap counts as an attempt: {log}");
    assert!(!log.contains("dead-lettered; moving on"), "{log}");
    assert!(!t.dead.exists(), "nothing may be dead-lettered: {log}");

    let store = t.store();
    let retry = store
        .load_retry(&PartitionContext::new(NS, HUB, "$Default", "0"))
        .await
        .unwrap();
    let retry = retry.expect("a retry state records the pause");
    assert_eq!(retry.sequence_number, 2);
    assert_eq!(retry.attempts, 1);
    assert!(
        retry
            .paused
            .as_deref()
            .is_some_and(|p| p.contains("refuse init")),
        "{retry:?}"
    );
    let out = status_of(&t.path().join("paused.toml")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("PAUSED before 2"), "{text}");
    assert!(text.contains("refuse init"), "{text}");

    let status = host.terminate();
    assert!(status.success(), "{status}\n{}", host.log());
    assert_eq!(
        checkpoints(&store, "$Default").await.get("0"),
        Some(&Some(1)),
        "the checkpoint stays before the event the partition paused on"
    );
    assert!(!t.dead.exists());
    t.endpoint.shutdown().await;
}

/// A plugin's `retry-after-ms` of a day is capped at `max_backoff_ms`: the event's retries run
/// out within the test's time and it is dead-lettered, instead of stalling the partition.
#[tokio::test(flavor = "multi_thread")]
async fn a_plugins_retry_after_is_capped_by_max_backoff() {
    let t = Local::start(1).await;
    let cfg = t.config(
        r#"plugin_config = { fail_at = "1", retry_after_ms = "86400000" }
[eventhub.failure]
policy = "dead-letter"
max_attempts = 3
initial_backoff_ms = 10
max_backoff_ms = 100"#,
    );
    send(&t.endpoint, 3, Some("0")).await;
    let host = Host::run_until_idle("capped", t.path(), &cfg, Duration::from_secs(60));
    let log = host.log();
    let handled: Vec<i64> = host.handled("$Default").iter().map(|(_, s)| *s).collect();
    assert_eq!(handled, [0, 2], "{log}");
    let letters =
        std::fs::read_to_string(t.dead.join(HUB).join("$Default").join("0.jsonl")).unwrap();
    assert_eq!(letters.lines().count(), 1, "{letters}");
    assert!(letters.contains("\"attempts\":3"), "{letters}");
    t.endpoint.shutdown().await;
}

/// Seconds since midnight of a log line's leading RFC 3339 timestamp
/// (`2026-12-02T13:45:05.123456Z ...`).
fn seconds_of_day(line: &str) -> Option<f64> {
    let time = line.split_whitespace().next()?.split_once('T')?.1;
    let time = time.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}
