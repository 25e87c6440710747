//! Hot swap under load: the pause a swap costs each partition, and throughput during a swap
//! storm against the same run without swaps, in one run.
//!
//! Run: `cargo bench -p hubwasm --bench swap`
//! Settings: HUBWASM_BENCH_EVENTS (default 600 000 per run), HUBWASM_BENCH_SWAPS
//! (default 100 swaps for the pause).
//!
//! Every run is `Host::start` (what `hubwasm run` does) over the embedded endpoint preloaded
//! with seed events, 4 partitions, the json-filter plugin, local checkpoints, each run in a
//! consumer group of its own. Swaps alternate between two copies of the json-filter that differ
//! only in a custom section (so each swap loads, checks and instantiates a new version).
//! - Pause: the host measures, per partition and swap, the time from the old version's last
//!   call returning to the new version's first call starting (`hubwasm_swap_pause_seconds`).
//!   The run swaps every 25 ms while events remain; batches of 20 keep every partition busy.
//!   Both versions are compiled into the component cache first (a never-seen version's compile
//!   is not part of the pause measured).
//! - Storm: the same events with one swap per second, against none; events/s from the first
//!   handled event to the last.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hubwasm::config::RunConfig;
use hubwasm::host::Host;
use hubwasm::host::RunOptions;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use common::{preload, run_config, start_endpoint, HUB};

use hubwasm_testkit::azurite;
#[allow(dead_code)]
mod common;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A copy of `wasm` with a custom section appended: the same code, another content hash.
fn another_version(wasm: &str, to: &Path) -> PathBuf {
    let mut bytes = std::fs::read(wasm).unwrap();
    let name = b"hubwasm-bench-version";
    bytes.extend_from_slice(&[0, (1 + name.len() + 1) as u8, name.len() as u8]);
    bytes.extend_from_slice(name);
    bytes.push(b'2');
    std::fs::write(to, bytes).unwrap();
    to.to_path_buf()
}

fn config(conn: &str, store: &Path, group: &str, plugin: &str, batch: usize) -> RunConfig {
    // The swaps are the bench's; no version may be rolled back under it.
    run_config(
        conn,
        &format!("store = \"local\"\npath = \"{}\"", store.display()),
        group,
        plugin,
        batch,
        10,
        "[eventhub.rollback]\nautomatic = false",
    )
}

struct Outcome {
    handled: u64,
    busy: Duration,
    swaps: usize,
    pauses: Vec<Duration>,
}

/// Run the host over every event of `group`, swapping every `every` (if any) between the two
/// versions while events remain.
async fn run(
    config: RunConfig,
    versions: [PathBuf; 2],
    every: Option<Duration>,
    events: usize,
    max_swaps: usize,
) -> Outcome {
    let options = RunOptions {
        exit_when_idle: Some(Duration::from_millis(500)),
        ..RunOptions::default()
    };
    let mut report = |_: &str| {};
    let host = Host::start(config, options, &mut report).await.unwrap();
    let handle = host.handle();
    let swapper = every.map(|every| {
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut swaps = 0;
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            // Stop well before the end, so every pause is measured with events waiting.
            while swaps < max_swaps && handle.stats().snapshot().handled < (events as u64) * 9 / 10
            {
                tick.tick().await;
                let next = &versions[(swaps + 1) % 2];
                let component = hubwasm::artifact::Component::new(
                    "json_filter",
                    next.display().to_string(),
                    std::fs::read(next).unwrap(),
                );
                handle.swap(HUB, None, component, None).await.unwrap();
                swaps += 1;
            }
            swaps
        })
    });
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let done = host.wait(stop_rx, &mut report).await.unwrap();
    let swaps = match swapper {
        Some(s) => s.await.unwrap(),
        None => 0,
    };
    assert_eq!(
        done.snapshot.handled as usize, events,
        "every event handled"
    );
    Outcome {
        handled: done.snapshot.handled,
        busy: done.busy,
        swaps,
        pauses: handle.stats().swap_pauses(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let events = env_usize("HUBWASM_BENCH_EVENTS", 600_000);
    let swaps_wanted = env_usize("HUBWASM_BENCH_SWAPS", 100);
    let dir = tempfile::tempdir().unwrap();
    let endpoint = start_endpoint(&dir.path().join("hub"), &["noswap", "storm", "pauses"]).await;
    let conn = endpoint.connection_string(HUB);
    println!("swap: preloading {events} seed events into 4 partitions");
    preload(&conn, events).await;
    let a = another_version(
        hubwasm_plugins::JSON_FILTER,
        &dir.path().join("json_filter_a.wasm"),
    );
    let b = another_version(
        hubwasm_plugins::JSON_FILTER,
        &dir.path().join("json_filter_b.wasm"),
    );
    let versions = [a.clone(), b.clone()];
    let store = dir.path().join("checkpoints");
    let a_str = a.display().to_string();
    // Compile both versions into the component cache first: a swap to a version never seen
    // compiles it (Cranelift on every core, ~0.2 s here), which this bench does not measure.
    let runtime = hubwasm::plugin::Runtime::new(Default::default()).unwrap();
    for v in &versions {
        runtime
            .load(hubwasm::plugin::PluginSpec::new(v))
            .await
            .unwrap();
    }

    let quiet = run(
        config(&conn, &store, "noswap", &a_str, 1000),
        versions.clone(),
        None,
        events,
        0,
    )
    .await;
    let storm = run(
        config(&conn, &store, "storm", &a_str, 1000),
        versions.clone(),
        Some(Duration::from_secs(1)),
        events,
        usize::MAX,
    )
    .await;
    let rate = |o: &Outcome| o.handled as f64 / o.busy.as_secs_f64().max(1e-9);

    // The pause run: batches of 20 keep every partition's calls short; a swap every 25 ms
    // while events remain (about 150 000 events/s here, so 600 000 last the 100 swaps).
    let pauses = run(
        config(&conn, &store, "pauses", &a_str, 20),
        versions.clone(),
        Some(Duration::from_millis(25)),
        events,
        swaps_wanted,
    )
    .await;
    let mut sorted = pauses.pauses.clone();
    sorted.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "pause per partition over {} swaps ({} partition switches), batch 20: p50 {:.2} ms, \
         p99 {:.2} ms, max {:.2} ms",
        pauses.swaps,
        sorted.len(),
        ms(percentile(&sorted, 50.0)),
        ms(percentile(&sorted, 99.0)),
        ms(percentile(&sorted, 100.0)),
    );
    println!(
        "throughput, batch 1000: no swaps {:.0} events/s; one swap per second ({} swaps) {:.0} \
         events/s: {:.2}x",
        rate(&quiet),
        storm.swaps,
        rate(&storm),
        rate(&storm) / rate(&quiet)
    );
    let p99 = ms(percentile(&sorted, 99.0));
    println!(
        "goal: swap pause p99 <= 50 ms over >= {swaps_wanted} swaps under load: {p99:.2} ms over {} swaps ({})",
        pauses.swaps,
        if p99 <= 50.0 && pauses.swaps >= swaps_wanted { "met" } else { "MISSED" }
    );
    let ratio = rate(&storm) / rate(&quiet);
    println!(
        "goal: throughput during a swap storm within 10 % of no swaps: {:.2}x ({})",
        ratio,
        if ratio >= 0.9 { "met" } else { "MISSED" }
    );
}
