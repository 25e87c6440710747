//! What the end-to-end benchmarks share: filling the embedded endpoint, `hubwasm run`'s
//! processor over it with a plugin, and the official Python consumer as the baseline.

use std::path::Path;
use std::time::Duration;

use hubwasm::config::RunConfig;
use hubwasm::connection::ConnectionString;
use hubwasm::host::{run, RunOptions};
use hubwasm_hub::config::{EventHubConfig, HubConfig};
use hubwasm_hub::RunningHub;

pub const HUB: &str = "bench";
pub const PARTITIONS: u32 = 4;

/// The embedded endpoint with the bench's event hub (data in `dir`) and these consumer groups.
pub async fn start_endpoint(dir: &Path, groups: &[&str]) -> RunningHub {
    hubwasm_hub::start(HubConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        event_hubs: vec![EventHubConfig {
            name: HUB.into(),
            partitions: PARTITIONS,
            consumer_groups: groups.iter().map(|g| g.to_string()).collect(),
        }],
        ..HubConfig::default()
    })
    .await
    .unwrap()
}

/// `[checkpoints]` keys for a Blob container on Azurite.
pub fn blob_checkpoints(azurite: &crate::azurite::Azurite, container: &str) -> String {
    format!(
        "store = \"blob\"\nendpoint = \"{}\"\naccount = \"{}\"\nkey = \"{}\"\ncontainer = \"{container}\"",
        azurite.blob_endpoint(),
        crate::azurite::ACCOUNT,
        crate::azurite::KEY
    )
}

/// Fill the partitions with `count` seed events, 4 producers in parallel, batches of 100.
pub async fn preload(conn: &str, count: usize) {
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

/// How long the hubwasm rows compared with the Python consumer wait to fill a batch: as long as
/// the consumer does (`receive_batch(max_wait_time=1)`, tests/python/bench_consumer.py), so
/// both sides fill their batches of 1000 alike and checkpoint once per batch.
pub const PYTHON_MAX_WAIT_MS: u64 = 1000;

/// The host config the end-to-end benches run: the bench's event hub from the start, a json
/// filter `plugin` (`min_value` 50) in batches of up to `batch`, waiting at most `max_wait_ms`
/// to fill one, greedy balancing, the `[checkpoints]` given, and `extra` TOML for the event
/// hub's table.
pub fn run_config(
    conn: &str,
    checkpoints: &str,
    group: &str,
    plugin: &str,
    batch: usize,
    max_wait_ms: u64,
    extra: &str,
) -> RunConfig {
    let text = format!(
        r#"summary_interval_secs = 0
[checkpoints]
{checkpoints}

[[eventhub]]
name = "{HUB}"
connection_string = "{conn}"
consumer_group = "{group}"
plugin = "{plugin}"
plugin_config = {{ min_value = "50" }}
max_batch_size = {batch}
max_wait_ms = {max_wait_ms}

[eventhub.balancing]
strategy = "greedy"
update_interval_ms = 1000
ownership_expiry_ms = 3000
prefetch = 3000
{extra}
"#,
    );
    RunConfig::parse(&text, Path::new("bench.toml")).unwrap()
}

/// `host::run` over every event with `plugin` (a json filter, `min_value` 50), on the
/// `[checkpoints]` given, batched as the Python consumer batches (up to 1000 events, waiting up
/// to [`PYTHON_MAX_WAIT_MS`]): (events handled, time from the first to the last).
pub async fn hubwasm_run(
    conn: &str,
    checkpoints: &str,
    group: &str,
    events: usize,
    plugin: &str,
) -> (u64, Duration) {
    run_until_idle(
        run_config(
            conn,
            checkpoints,
            group,
            plugin,
            1000,
            PYTHON_MAX_WAIT_MS,
            "",
        ),
        events,
    )
    .await
}

/// `host::run` with `config` until every one of `events` is handled: (events handled,
/// time from the first to the last).
pub async fn run_until_idle(config: RunConfig, events: usize) -> (u64, Duration) {
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

/// A Python consumer (`mode` batch or event, see bench_consumer.py) in consumer `group`, its
/// checkpoints in container `bench-<group>`: (events, seconds) or why it could not run.
pub fn python_run(
    conn: &str,
    mode: &str,
    group: &str,
    events: usize,
    storage: &str,
) -> Result<(u64, f64), String> {
    let python = std::env::var("HUBWASM_PYTHON")
        .map_err(|_| "HUBWASM_PYTHON not set (source scripts/env.sh)")?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/bench_consumer.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .args(["--conn", conn])
        .args(["--consumer-group", group])
        .args(["--container", &format!("bench-{group}")])
        .args(["--mode", mode])
        .args(["--expect", &events.to_string()])
        .args(["--storage", storage])
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
