//! `hubwasm run` end to end: real host processes, the embedded endpoint, a checkpoint store
//! shared by the processes (local, or Blob on Azurite, which the official Python processor also
//! reads and writes), and the `test-record` plugin, whose log lines
//! (`handled group=.. partition=.. seq=..`) tell which events each host handled.
//!
//! Waits are bounded (a broken host fails the test instead of hanging it) but nothing asserts
//! how fast something happened, except the takeover after `kill -9`, which the issue bounds by
//! the ownership expiry plus the update interval (checked with a generous margin).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hubwasm::checkpoint::blob::BlobCheckpointStore;
use hubwasm::checkpoint::local::LocalCheckpointStore;
use hubwasm::checkpoint::{CheckpointStore, RetryStore};
use hubwasm::connection::ConnectionString;
use hubwasm_hub::config::{EventHubConfig, HubConfig};
use hubwasm_hub::RunningHub;

const HUB: &str = "orders";
const NS: &str = "localhost";

async fn start_endpoint(data: &Path, partitions: u32) -> RunningHub {
    hubwasm_hub::start(HubConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.to_path_buf(),
        event_hubs: vec![
            EventHubConfig {
                name: HUB.into(),
                partitions,
                consumer_groups: vec!["second".into()],
            },
            EventHubConfig {
                name: "dead-letters".into(),
                partitions: 1,
                consumer_groups: vec![],
            },
        ],
        ..HubConfig::default()
    })
    .await
    .unwrap()
}

/// A `hubwasm run` process; killed (SIGKILL) if still running when dropped.
struct Host {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Host {
    fn start(name: &str, dir: &Path, config: &str, extra: &[&str]) -> Host {
        let config_path = dir.join(format!("{name}.toml"));
        std::fs::write(&config_path, config).unwrap();
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_hubwasm"))
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .args(["--instance-id", name])
            .args(extra)
            .env(
                "HUBWASM_LOG",
                "info,azure_messaging_eventhubs=warn,azure_core_amqp=warn,fe2o3_amqp=warn",
            )
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("start hubwasm run");
        Host {
            name: name.to_string(),
            child,
            log,
        }
    }

    /// Run until caught up (`--exit-when-idle 1`, at most `limit`) and check that it exited 0.
    fn run_until_idle(name: &str, dir: &Path, config: &str, limit: Duration) -> Host {
        let mut host = Host::start(name, dir, config, &["--exit-when-idle", "1"]);
        let status = host.wait(limit);
        assert!(status.success(), "{name}: {status}\n{}", host.log());
        host
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// (partition, sequence number) of every event this host reported handled, for a group.
    fn handled(&self, group: &str) -> Vec<(String, i64)> {
        handled_in(&self.log(), group)
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for the exit status (bounded).
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.wait(Duration::from_secs(60))
    }

    fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "host {} did not exit in time; log:\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn handled_in(log: &str, group: &str) -> Vec<(String, i64)> {
    let marker = format!("handled group={group} partition=");
    log.lines()
        .filter_map(|line| {
            let rest = &line[line.find(&marker)? + marker.len()..];
            let (partition, rest) = rest.split_once(" seq=")?;
            let seq = rest.split_whitespace().next()?.parse().ok()?;
            Some((partition.to_string(), seq))
        })
        .collect()
}

/// A host config on the local checkpoint store with dead letters in a directory.
fn config(endpoint: &RunningHub, store: &Path, dead_letter: &Path, hub_extra: &str) -> String {
    config_with(
        endpoint,
        &local_checkpoints(store),
        &format!("sink = \"directory\"\npath = \"{}\"", dead_letter.display()),
        hub_extra,
    )
}

fn local_checkpoints(store: &Path) -> String {
    format!("store = \"local\"\npath = \"{}\"", store.display())
}

/// The `[checkpoints]` (or `[eventhub.dead_letter]`) keys for a container on Azurite.
fn blob_keys(azurite: &Azurite, container: &str) -> String {
    format!(
        "endpoint = \"{}\"\naccount = \"{}\"\nkey = \"{}\"\ncontainer = \"{container}\"",
        azurite.blob_endpoint(),
        azurite::ACCOUNT,
        azurite::KEY
    )
}

fn config_with(
    endpoint: &RunningHub,
    checkpoints: &str,
    dead_letter: &str,
    hub_extra: &str,
) -> String {
    format!(
        r#"summary_interval_secs = 1

[checkpoints]
{checkpoints}

[[eventhub]]
name = "{HUB}"
connection_string = "{conn}"
plugin = "{plugin}"
max_batch_size = 20
max_wait_ms = 50
{hub_extra}

[eventhub.balancing]
strategy = "balanced"
update_interval_ms = 1000
ownership_expiry_ms = 3000

[eventhub.dead_letter]
{dead_letter}
"#,
        conn = endpoint.connection_string(HUB),
        plugin = hubwasm_plugins::TEST_RECORD,
    )
}

/// Send `count` events round-robin over the partitions, or to one partition.
async fn send(endpoint: &RunningHub, count: usize, partition: Option<&str>) {
    let options = hubwasm::send::SendOptions {
        connection_string: endpoint.connection_string(HUB),
        count,
        interval: Duration::ZERO,
        partition: partition.map(str::to_string),
        partition_key: None,
        batch_size: 1,
        file: None,
    };
    hubwasm::send::send(&options, |_| {}).await.unwrap();
}

/// Wait (bounded) until `done` holds; poll every 100 ms.
async fn eventually(what: &str, limit: Duration, mut done: impl FnMut() -> bool, logs: &[&Host]) {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            let logs: Vec<String> = logs
                .iter()
                .map(|h| format!("--- {} ---\n{}", h.name, tail(&h.log(), 60)))
                .collect();
            panic!("timed out waiting for: {what}\n{}", logs.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Every (partition, seq) in 0..per_partition for `partitions` partitions.
fn all_events(partitions: u32, per_partition: i64) -> BTreeSet<(String, i64)> {
    (0..partitions)
        .flat_map(|p| (0..per_partition).map(move |s| (p.to_string(), s)))
        .collect()
}

async fn owners(store: &impl CheckpointStore, group: &str) -> BTreeMap<String, Option<String>> {
    store
        .list_ownerships(NS, HUB, group)
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.partition_id, o.owner_id))
        .collect()
}

async fn checkpoints(store: &impl CheckpointStore, group: &str) -> BTreeMap<String, Option<i64>> {
    store
        .list_checkpoints(NS, HUB, group)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.partition_id, c.sequence_number))
        .collect()
}

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
    let dir = tempfile::tempdir().unwrap();
    let endpoint = start_endpoint(&dir.path().join("hub"), 1).await;
    let store_dir = dir.path().join("checkpoints");
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
async fn a_failing_event_is_retried_then_dead_lettered_and_processing_continues() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = start_endpoint(&dir.path().join("hub"), 2).await;
    let store_dir = dir.path().join("checkpoints");
    let dead = dir.path().join("dead");
    let cfg = config(
        &endpoint,
        &store_dir,
        &dead,
        r#"plugin_config = { fail_partition = "0", fail_at = "3" }
[eventhub.failure]
policy = "dead-letter"
max_attempts = 3
initial_backoff_ms = 20"#,
    );
    send(&endpoint, 10, Some("0")).await;
    send(&endpoint, 10, Some("1")).await;
    let host = Host::run_until_idle("solo", dir.path(), &cfg, Duration::from_secs(90));
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

    let letters = std::fs::read_to_string(dead.join(HUB).join("$Default").join("0.jsonl")).unwrap();
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

    let store = LocalCheckpointStore::new(&store_dir);
    let cps = checkpoints(&store, "$Default").await;
    assert_eq!(cps.get("0"), Some(&Some(9)));
    assert_eq!(cps.get("1"), Some(&Some(9)));
    assert_eq!(
        store.load_retry(NS, HUB, "$Default", "0").await.unwrap(),
        None
    );
    endpoint.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_halt_the_partition_stops_before_the_failure_and_the_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = start_endpoint(&dir.path().join("hub"), 2).await;
    let store_dir = dir.path().join("checkpoints");
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
        .load_retry(NS, HUB, "$Default", "0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((retry.sequence_number, retry.attempts), (3, 2));
    let log = host.log();
    assert!(
        log.contains("trapped"),
        "a trap counts as a failure:\n{log}"
    );
    let status = host.terminate();
    assert!(status.success(), "{status}");
    endpoint.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_takeover_continues_the_retry_count() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = start_endpoint(&dir.path().join("hub"), 1).await;
    let store_dir = dir.path().join("checkpoints");
    let dead = dir.path().join("dead");
    // Attempt 1 fails at once, then 1.5 s backoffs: the first host is killed during one.
    let cfg = config(
        &endpoint,
        &store_dir,
        &dead,
        r#"plugin_config = { fail_at = "1" }
[eventhub.failure]
max_attempts = 4
initial_backoff_ms = 1500
max_backoff_ms = 1500"#,
    );
    send(&endpoint, 3, Some("0")).await;
    let store = LocalCheckpointStore::new(&store_dir);
    let mut first = Host::start("first", dir.path(), &cfg, &[]);
    eventually(
        "two failed attempts recorded",
        Duration::from_secs(60),
        || {
            futures::executor::block_on(store.load_retry(NS, HUB, "$Default", "0"))
                .ok()
                .flatten()
                .is_some_and(|r| r.attempts == 2)
        },
        &[&first],
    )
    .await;
    first.kill9();
    let second = Host::run_until_idle("second", dir.path(), &cfg, Duration::from_secs(90));
    let failed_here = second
        .log()
        .lines()
        .filter(|l| l.contains("Plugin failed on an event"))
        .count();
    assert_eq!(failed_here, 2, "attempts 3 and 4 only:\n{}", second.log());
    let letters = std::fs::read_to_string(dead.join(HUB).join("$Default").join("0.jsonl")).unwrap();
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
    endpoint.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_resumes_after_the_last_success_and_consumer_groups_are_independent() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = start_endpoint(&dir.path().join("hub"), 2).await;
    let store_dir = dir.path().join("checkpoints");
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

#[tokio::test(flavor = "multi_thread")]
async fn a_storage_outage_does_not_stop_processing_and_checkpoints_catch_up() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = start_endpoint(&dir.path().join("hub"), 2).await;
    let store_dir = dir.path().join("checkpoints");
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

/// Two `[[eventhub]]` sections on one hub: an endless loop hits the call timeout, a runaway
/// allocation the memory limit. Both count as failures: retried, dead-lettered, checkpointed past.
#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_and_the_memory_limit_count_as_failures() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = start_endpoint(&dir.path().join("hub"), 1).await;
    let store_dir = dir.path().join("checkpoints");
    let dead = dir.path().join("dead");
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
            conn = endpoint.connection_string(HUB),
            dead = dead.display(),
        )
    };
    let cfg = format!(
        "summary_interval_secs = 1\n[checkpoints]\n{}\n{}{}",
        local_checkpoints(&store_dir),
        section("$Default", hubwasm_plugins::TEST_LOOP, "timeout = 200"),
        section(
            "second",
            hubwasm_plugins::TEST_ALLOC_BOMB,
            "memory_bytes = 33554432"
        ),
    );
    send(&endpoint, 2, None).await;
    let host = Host::run_until_idle("limits", dir.path(), &cfg, Duration::from_secs(120));
    let log = host.log();

    for (group, kind) in [("$Default", "timed-out"), ("second", "memory-limit")] {
        let letters = std::fs::read_to_string(dead.join(HUB).join(group).join("0.jsonl"))
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
        let store = LocalCheckpointStore::new(&store_dir);
        let cps = checkpoints(&store, group).await;
        assert_eq!(
            cps.get("0"),
            Some(&Some(1)),
            "{group}: checkpointed past both"
        );
    }
    endpoint.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_can_go_to_another_event_hub() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = start_endpoint(&dir.path().join("hub"), 1).await;
    let store_dir = dir.path().join("checkpoints");
    let dead = dir.path().join("dead");
    let cfg = config(
        &endpoint,
        &store_dir,
        &dead,
        r#"plugin_config = { fail_at = "1", kind = "rejected" }"#,
    );
    let cfg = cfg.replace(
        &format!("sink = \"directory\"\npath = \"{}\"", dead.display()),
        &format!(
            "sink = \"eventhub\"\nconnection_string = \"{}\"",
            endpoint.connection_string("dead-letters")
        ),
    );
    send(&endpoint, 3, None).await;
    let host = Host::run_until_idle("dl", dir.path(), &cfg, Duration::from_secs(90));
    let handled: Vec<i64> = host.handled("$Default").into_iter().map(|e| e.1).collect();
    assert_eq!(
        handled,
        vec![0, 2],
        "a rejected event is dead-lettered at once, no retries"
    );

    let target = ConnectionString::parse(&endpoint.connection_string("dead-letters"))
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
    endpoint.shutdown().await;
}

/// The README's first command in short: the embedded default (no config) takes the sample events
/// in, handles and checkpoints them, exits by itself; `hubwasm status` then opens the embedded
/// endpoint's data directory itself to show checkpoints and lag.
#[test]
fn the_embedded_default_runs_end_to_end_and_status_reads_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let events = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/events/seed-sample.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_hubwasm"))
        .current_dir(dir.path())
        .args(["run", "--plugin", hubwasm_plugins::TEST_RECORD, "--send"])
        .arg(&events)
        .args(["--exit-when-idle", "1"])
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    let handled: BTreeSet<(String, i64)> = handled_in(&log, "$Default").into_iter().collect();
    assert_eq!(
        handled,
        all_events(4, 5),
        "the 20 sample events, 5 per partition\n{log}"
    );
    assert!(log.contains("handled 20"), "the final summary: {log}");

    let mut status = Command::new(env!("CARGO_BIN_EXE_hubwasm"));
    status.current_dir(dir.path()).arg("status");
    assert_status_rows(status, 4, ["-", "4", "4", "0"]);
}

/// Without --plugin the embedded default runs the sample plugin (json-filter); when it is not
/// built, the error says where it looked and how to build it.
#[test]
fn without_a_plugin_the_embedded_default_runs_the_sample_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let events = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/events/seed-sample.jsonl");
    let run = |sample: &Path| {
        Command::new(env!("CARGO_BIN_EXE_hubwasm"))
            .current_dir(dir.path())
            .env("HUBWASM_SAMPLE_PLUGIN", sample)
            .args(["run", "--send"])
            .arg(&events)
            .args(["--exit-when-idle", "1"])
            .output()
            .unwrap()
    };
    let out = run(Path::new(hubwasm_plugins::JSON_FILTER));
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    assert!(log.contains("running the sample plugin"), "{log}");
    assert!(log.contains("plugin=\"json_filter\""), "{log}");
    assert!(log.contains("handled 20"), "{log}");

    let missing = dir.path().join("not-built/json_filter.wasm");
    let out = run(&missing);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(err.contains("scripts/build-plugins.sh"), "{err}");
}

#[test]
fn config_errors_name_the_line_and_plugin_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[eventhub]]\nname = \"x\"\nembedded = true\nplugin = \"p.wasm\"\nmax_batch_size = -3\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hubwasm"))
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 5"), "{err}");

    std::fs::write(
        &path,
        "[embedded]\nlisten = \"127.0.0.1:0\"\ndata = \"hub\"\n[checkpoints]\nstore = \"local\"\npath = \"cp\"\n[[eventhub]]\nname = \"events\"\nembedded = true\nplugin = \"missing.wasm\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hubwasm"))
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.wasm"), "{err}");
}

/// `hubwasm status --config <config>`.
fn status_of(config: &Path) -> Command {
    let mut status = Command::new(env!("CARGO_BIN_EXE_hubwasm"));
    status.args(["status", "--config"]).arg(config);
    status
}

/// `hubwasm status ...` shows `partitions` rows, each `<partition> <expected>`
/// (owner, checkpoint, last sequence number, lag).
fn assert_status_rows(mut status: Command, partitions: usize, expected: [&str; 4]) {
    let out = status.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), partitions, "{text}");
    for row in rows {
        assert_eq!(
            row[1..],
            expected,
            "partition, owner, checkpoint, last, lag: {text}"
        );
    }
}

/// A store on a container of Azurite (created if missing), to look at what the hosts wrote.
async fn blob_store(azurite: &Azurite, container: &str) -> BlobCheckpointStore {
    let store = BlobCheckpointStore::with_account_key(
        &azurite.blob_endpoint(),
        azurite::ACCOUNT,
        azurite::KEY,
        container,
    )
    .unwrap();
    store.ensure_container().await.unwrap();
    store
}

#[path = "support/azurite.rs"]
mod azurite;
use azurite::Azurite;

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

/// Run `tests/python/blob_consumer.py` until it has `expect` events; the events it received.
async fn python_consumer(
    azurite: &Azurite,
    endpoint: &RunningHub,
    container: &str,
    expect: usize,
) -> BTreeSet<(String, i64)> {
    let mut cmd = python::command("blob_consumer.py");
    cmd.args(["--conn", &endpoint.connection_string(HUB)])
        .args(["--storage", &azurite.connection_string()])
        .args(["--container", container])
        .args(["--expect", &expect.to_string()]);
    let result = python::json_result("blob_consumer.py", cmd).await;
    python_events(&result)
}

/// The (partition, sequence number) pairs `blob_consumer.py` reports.
fn python_events(result: &serde_json::Value) -> BTreeSet<(String, i64)> {
    assert_eq!(result["namespace"], NS, "{result}");
    result["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e[0].as_str().unwrap().to_string(), e[1].as_i64().unwrap()))
        .collect()
}

#[path = "support/python.rs"]
mod python;
