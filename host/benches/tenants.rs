//! Tenants side by side: tenant B's throughput alone and beside a tenant A that misbehaves
//! (traps on every event, loops until its timeout, allocates to its memory limit), as ratios;
//! and the rate limiter's accuracy at 1 000 and 10 000 events/s. One run.
//!
//! Run: `cargo bench -p hubwasm --bench tenants`
//! Settings: HUBWASM_BENCH_TENANT_EVENTS (B's events per run, default 1 000 000).
//!
//! Every run is `Host::start` (what `hubwasm run` does) in this process over the embedded
//! endpoint: event hubs `a` and `b` with 4 partitions each, local checkpoints, every run in
//! consumer groups of its own. B runs the Rust json-filter over the seed's events in batches of
//! 1 000; A runs a test plugin per event with the limits an operator gives an untrusted tenant
//! (`timeout = 1000`, `memory_bytes = 64 MiB`, `max_in_flight = 1`) and the default failure
//! policy (5 attempts, then a dead letter). B's events/s are counted from its first handled
//! event to its last, read from the tenant's usage counters.

use std::path::Path;
use std::time::{Duration, Instant};

use hubwasm::config::RunConfig;
use hubwasm::host::Host;
use hubwasm::host::RunOptions;
use hubwasm_hub::config::{EventHubConfig, HubConfig};
use hubwasm_hub::RunningHub;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use hubwasm_testkit::azurite;
#[allow(dead_code)]
mod common;

const GROUPS: [&str; 6] = [
    "run-0",
    "run-1",
    "run-2",
    "run-3",
    "rate-1000",
    "rate-10000",
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn endpoint(dir: &Path) -> RunningHub {
    hubwasm_hub::start(HubConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        event_hubs: ["a", "b"]
            .iter()
            .map(|name| EventHubConfig {
                name: name.to_string(),
                partitions: common::PARTITIONS,
                consumer_groups: GROUPS.iter().map(|g| g.to_string()).collect(),
            })
            .collect(),
        ..HubConfig::default()
    })
    .await
    .unwrap()
}

const BALANCING: &str = "[eventhub.balancing]\nstrategy = \"greedy\"\nupdate_interval_ms = 1000\nownership_expiry_ms = 3000\nprefetch = 3000";

fn tenants(store: &Path, b_limits: &str) -> String {
    format!(
        r#"summary_interval_secs = 0
[checkpoints]
store = "local"
path = "{store}"

[[tenant]]
name = "a"
[tenant.limits]
timeout = 1000
memory_bytes = 67108864
max_in_flight = 1

[[tenant]]
name = "b"
[tenant.limits]
{b_limits}
"#,
        store = store.display()
    )
}

fn b_hub(conn: &str, group: &str) -> String {
    b_hub_batch(conn, group, 1000)
}

fn b_hub_batch(conn: &str, group: &str, batch: usize) -> String {
    format!(
        r#"
[[eventhub]]
name = "b"
connection_string = "{conn}"
consumer_group = "{group}"
plugin = "{filter}"
plugin_config = {{ min_value = "50" }}
tenant = "b"
max_batch_size = {batch}
max_wait_ms = 10
{BALANCING}
"#,
        filter = hubwasm_plugins::JSON_FILTER
    )
}

fn a_hub(conn: &str, group: &str, plugin: &str, dead: &Path) -> String {
    format!(
        r#"
[[eventhub]]
name = "a"
connection_string = "{conn}"
consumer_group = "{group}"
plugin = "{plugin}"
tenant = "a"
mode = "event"
{BALANCING}
[eventhub.dead_letter]
sink = "directory"
path = "{dead}"
"#,
        dead = dead.display()
    )
}

/// Run the host on `config` until tenant `name` has handled `events`; its events/s from its
/// first handled event to the last, and the usage of every tenant at that moment.
async fn measure(
    config: &str,
    dir: &Path,
    name: &str,
    events: u64,
) -> (f64, Vec<(String, hubwasm::tenant::UsageSnapshot)>) {
    measure_from(config, dir, name, 1, events).await
}

/// [`measure`] counting from the moment `warm` events were handled (a steady rate, without
/// the first calls a rate limit lets through at once).
async fn measure_from(
    config: &str,
    dir: &Path,
    name: &str,
    warm: u64,
    events: u64,
) -> (f64, Vec<(String, hubwasm::tenant::UsageSnapshot)>) {
    let path = dir.join("bench.toml");
    std::fs::write(&path, config).unwrap();
    let config = RunConfig::load(&path).unwrap();
    let host = Host::start(config, RunOptions::default(), &mut |_| {})
        .await
        .unwrap();
    let handle = host.handle();
    let tenant = handle.tenants().get(name).unwrap().clone();
    let started = Instant::now();
    let mut first: Option<(u64, Instant)> = None;
    let rate = loop {
        let usage = tenant.usage();
        if usage.events >= warm && first.is_none() {
            first = Some((usage.events, Instant::now()));
        }
        if usage.events >= events {
            let (at_first, since) = first.unwrap();
            break (usage.events - at_first) as f64 / since.elapsed().as_secs_f64();
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "tenant {name} handled {} of {events}: {usage:?}",
            usage.events
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let usages = handle
        .tenants()
        .iter()
        .map(|t| (t.name.clone(), t.usage()))
        .collect();
    let (stop, rx) = tokio::sync::watch::channel(true);
    host.wait(rx, &mut |_| {}).await.unwrap();
    drop(stop);
    (rate, usages)
}

async fn send_lines(endpoint: &RunningHub, hub: &str, line: &str, n: usize, dir: &Path) {
    let file = dir.join(format!("{hub}.jsonl"));
    std::fs::write(&file, format!("{line}\n").repeat(n)).unwrap();
    hubwasm::send::send(
        &hubwasm::send::SendOptions {
            connection_string: endpoint.connection_string(hub),
            count: 0,
            interval: Duration::ZERO,
            partition: None,
            partition_key: None,
            batch_size: 100,
            file: Some(file),
        },
        |_| {},
    )
    .await
    .unwrap();
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let events = env_usize("HUBWASM_BENCH_TENANT_EVENTS", 1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let endpoint = endpoint(&dir.path().join("hub")).await;
    let b_conn = endpoint.connection_string("b");
    let a_conn = endpoint.connection_string("a");
    println!("tenants: preloading {events} seed events into b (4 partitions), 4 000 into a");
    common::preload(&b_conn, events).await;
    // `trap` makes test-trap trap; test-loop and test-alloc-bomb ignore the body.
    send_lines(&endpoint, "a", "trap", 4000, dir.path()).await;
    let dead = dir.path().join("dead");
    let store = |group: &str| dir.path().join("checkpoints").join(group);

    let (alone, _) = measure(
        &(tenants(&store(GROUPS[0]), "") + &b_hub(&b_conn, GROUPS[0])),
        dir.path(),
        "b",
        events as u64,
    )
    .await;
    println!("B alone (Rust json-filter, batch 1000): {alone:.0} events/s");
    let mut ratios = Vec::new();
    for (what, plugin, group) in [
        (
            "traps on every event",
            hubwasm_plugins::TEST_TRAP,
            GROUPS[1],
        ),
        (
            "loops until its 1 s timeout",
            hubwasm_plugins::TEST_LOOP,
            GROUPS[2],
        ),
        (
            "allocates to its 64 MiB limit",
            hubwasm_plugins::TEST_ALLOC_BOMB,
            GROUPS[3],
        ),
    ] {
        let config = tenants(&store(group), "")
            + &a_hub(&a_conn, group, plugin, &dead)
            + &b_hub(&b_conn, group);
        let (beside, usages) = measure(&config, dir.path(), "b", events as u64).await;
        let a = &usages.iter().find(|(n, _)| n == "a").unwrap().1;
        let ratio = beside / alone;
        println!(
            "B beside A that {what}: {beside:.0} events/s = {ratio:.2}x alone (A: {} calls, {} \
             failures, {:.2} s in calls, {} storm pauses, {:.1} s paused)",
            a.calls, a.failures, a.busy_secs, a.storms, a.storm_paused_secs
        );
        ratios.push((what, ratio));
    }

    println!();
    let mut accuracy = Vec::new();
    for (limit, group) in [(1000u64, GROUPS[4]), (10_000, GROUPS[5])] {
        // Two seconds to settle, then ten measured (at most what b holds); batches of 100.
        let warm = (limit * 2).min(events as u64 / 2);
        let n = (limit * 12).min(events as u64);
        let config = tenants(&store(group), &format!("events_per_sec = {limit}"))
            + &b_hub_batch(&b_conn, group, 100);
        let (rate, _) = measure_from(&config, dir.path(), "b", warm, n).await;
        let error = (rate - limit as f64) / limit as f64 * 100.0;
        println!(
            "rate limit {limit} events/s: measured {rate:.0} events/s over {} events after {warm} \
             ({error:+.1} %)",
            n - warm
        );
        accuracy.push((limit, error));
    }

    println!();
    for (what, ratio) in &ratios {
        println!(
            "goal: B keeps >= 80 % of its solo throughput beside A that {what}: {:.0} % ({})",
            ratio * 100.0,
            if *ratio >= 0.8 { "met" } else { "MISSED" }
        );
    }
    for (limit, error) in &accuracy {
        println!(
            "goal: the rate limit holds within 10 % at {limit} events/s: {error:+.1} % ({})",
            if error.abs() <= 10.0 { "met" } else { "MISSED" }
        );
    }
    endpoint.shutdown().await;
}
