//! End-to-end throughput: embedded endpoint → `hubwasm run` → the json-filter plugin →
//! a checkpoint per batch, against the official Python SDK consumer doing the same filter with
//! Blob checkpoints (Azurite), in one run.
//!
//! Run: `cargo bench -p hubwasm --bench end_to_end`
//! Settings: HUBWASM_BENCH_EVENTS (default 1 000 000 for hubwasm), HUBWASM_BENCH_PY_EVENTS
//! (default 100 000 for Python; its rate does not depend on the count), HUBWASM_BENCH_SKIP_PYTHON=1.
//!
//! Both consumers read the same events (seed-shaped JSON, ~150 B) from the same in-process
//! endpoint, each in its own consumer group, from the start of the 4 partitions. Throughput is
//! events handled divided by the time from the first handled event to the last (start-up and
//! the idle wait at the end excluded for both).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hubwasm::config::RunConfig;
use hubwasm::connection::ConnectionString;
use hubwasm::processor::{run, RunOptions};
use hubwasm_hub::config::{EventHubConfig, HubConfig};

const HUB: &str = "bench";
const PARTITIONS: u32 = 4;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Fill the partitions with `count` seed events, 4 producers in parallel, batches of 100.
async fn preload(conn: &str, count: usize) {
    let per = count / PARTITIONS as usize;
    let mut tasks = Vec::new();
    for p in 0..PARTITIONS {
        let conn = ConnectionString::parse(conn).unwrap();
        tasks.push(tokio::spawn(async move {
            let producer = conn.producer().await.unwrap();
            let mut n = 0;
            while n < per {
                let batch = producer
                    .create_batch(Some(azure_messaging_eventhubs::EventDataBatchOptions {
                        partition_id: Some(p.to_string()),
                        ..Default::default()
                    }))
                    .await
                    .unwrap();
                for _ in 0..100.min(per - n) {
                    n += 1;
                    let body = hubwasm::send::seed_event(p as usize * per + n);
                    assert!(batch.try_add_event_data(body.into_bytes(), None).unwrap());
                }
                producer.send_batch(batch, None).await.unwrap();
            }
            producer.close().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn hubwasm_run(conn: &str, store: &Path, events: usize) -> (u64, Duration) {
    let text = format!(
        r#"summary_interval_secs = 0
[checkpoints]
store = "local"
path = "{store}"

[[eventhub]]
name = "{HUB}"
connection_string = "{conn}"
consumer_group = "hubwasm"
plugin = "{plugin}"
plugin_config = {{ min_value = "50" }}
max_batch_size = 1000
max_wait_ms = 10

[eventhub.balancing]
strategy = "greedy"
update_interval_ms = 1000
ownership_expiry_ms = 3000
prefetch = 3000
"#,
        store = store.display(),
        plugin = hubwasm_plugins::JSON_FILTER,
    );
    let config = RunConfig::parse(&text, Path::new("bench.toml")).unwrap();
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let options = RunOptions {
        exit_when_idle: Some(Duration::from_millis(500)),
        ..RunOptions::default()
    };
    let report = run(config, options, stop_rx, |_| {}).await.unwrap();
    assert_eq!(
        report.snapshot.handled as usize, events,
        "every event handled"
    );
    (report.snapshot.handled, report.busy)
}

/// The Python consumer: returns (events, seconds) or why it could not run.
fn python_run(
    conn: &str,
    events: usize,
    azurite_blob_endpoint: &str,
) -> Result<(u64, f64), String> {
    let python = std::env::var("HUBWASM_PYTHON")
        .map_err(|_| "HUBWASM_PYTHON not set (source scripts/env.sh)")?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/bench_consumer.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .args(["--conn", conn])
        .args(["--consumer-group", "python"])
        .args(["--expect", &events.to_string()])
        .args(["--blob-endpoint", azurite_blob_endpoint])
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "python consumer failed: {}\n{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let last = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(last).map_err(|e| format!("{e}: {last}"))?;
    Ok((
        v["events"].as_u64().unwrap_or(0),
        v["seconds"].as_f64().unwrap_or(f64::NAN),
    ))
}

fn main() {
    let events = env_usize("HUBWASM_BENCH_EVENTS", 1_000_000);
    let py_events = env_usize("HUBWASM_BENCH_PY_EVENTS", 100_000).min(events);
    let skip_python = std::env::var("HUBWASM_BENCH_SKIP_PYTHON").is_ok();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let endpoint = hubwasm_hub::start(HubConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("hub"),
            event_hubs: vec![EventHubConfig {
                name: HUB.into(),
                partitions: PARTITIONS,
                consumer_groups: vec!["hubwasm".into(), "python".into()],
            }],
            ..HubConfig::default()
        })
        .await
        .unwrap();
        let conn = endpoint.connection_string(HUB);
        let started = Instant::now();
        preload(&conn, events).await;
        eprintln!(
            "preloaded {events} events in {:.1} s",
            started.elapsed().as_secs_f64()
        );

        let (handled, busy) = hubwasm_run(&conn, &dir.path().join("checkpoints"), events).await;
        let ours = handled as f64 / busy.as_secs_f64();

        let python = if skip_python {
            Err("skipped (HUBWASM_BENCH_SKIP_PYTHON)".to_string())
        } else {
            let azurite = azurite::Azurite::start();
            python_run(&conn, py_events, &azurite.blob_endpoint())
        };

        println!("end-to-end: embedded endpoint -> consumer -> json filter (value >= 50) -> checkpoint per batch");
        println!("{:<44} {:>10} {:>12} {:>10}", "consumer", "events", "events/s", "vs python");
        match &python {
            Ok((n, secs)) => {
                let theirs = *n as f64 / secs;
                println!(
                    "{:<44} {:>10} {:>12.0} {:>9.1}x",
                    "hubwasm run (Rust json-filter plugin, local)", handled, ours, ours / theirs
                );
                println!(
                    "{:<44} {:>10} {:>12.0} {:>9.1}x",
                    "Python azure-eventhub + BlobCheckpointStore", n, theirs, 1.0
                );
                println!(
                    "goals: >= 150000 events/s: {} ({:.2}x); >= 30x Python: {} ({:.1}x)",
                    if ours >= 150_000.0 { "met" } else { "MISSED" },
                    ours / 150_000.0,
                    if ours / theirs >= 30.0 { "met" } else { "MISSED" },
                    ours / theirs
                );
            }
            Err(why) => {
                println!(
                    "{:<44} {:>10} {:>12.0}",
                    "hubwasm run (Rust json-filter plugin, local)", handled, ours
                );
                println!("python consumer not run: {why}");
                println!(
                    "goal >= 150000 events/s: {} ({:.2}x)",
                    if ours >= 150_000.0 { "met" } else { "MISSED" },
                    ours / 150_000.0
                );
            }
        }
        endpoint.shutdown().await;
    });
    let _ = Arc::new(());
}

/// Azurite for the Python consumer's Blob checkpoints.
#[path = "../../tests/support/azurite.rs"]
mod azurite;
