//! What effects cost, in one run, each beside its baseline:
//!
//! 1. Filter + emit end to end: `hubwasm run` over the embedded endpoint with `filter-emit`
//!    (every kept event forwarded to a second event hub, acknowledged before the checkpoint)
//!    against the same run with json-filter alone. Goal: ≥ 0.6x the filter's events/s.
//! 2. A state update per event: `count-by-key` (one `add_u64` per event over 100 keys) with the
//!    batch's commit to SQLite and to Redis, against the plain json-filter call; ns/event and
//!    the ratio.
//!
//! Host-side dedupe per event is `cargo bench -p hubwasm --bench dedupe`.
//!
//! Run: `cargo bench -p hubwasm --bench effects`
//! Settings: HUBWASM_BENCH_EFFECTS_EVENTS (end to end, default 200 000),
//! HUBWASM_BENCH_STATE_EVENTS (state, default 100 000).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use hubwasm::effects::journal::Binding;
use hubwasm::effects::state::{PartitionState, StateStore};
use hubwasm::event::{Event, PartitionContext};
use hubwasm::plugin::{PluginHandle, PluginSpec, Runtime, RuntimeOptions, Worker};
use hubwasm_hub::config::{EventHubConfig, HubConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// Shared with the other end-to-end benches; this one uses a part of each.
#[allow(dead_code)]
mod common;

use hubwasm_testkit::azurite;
use hubwasm_testkit::redis as redis_server;

const BATCH: usize = 1000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `hubwasm run` over every event with `plugin` and the extra event hub table lines: events/s
/// from the first event to the last.
async fn run_hub(
    conn: &str,
    dir: &Path,
    group: &str,
    plugin: &str,
    extra: &str,
    events: usize,
) -> f64 {
    let checkpoints = format!(
        "store = \"local\"\npath = \"{}\"",
        dir.join(format!("checkpoints-{group}")).display()
    );
    let mut config = common::run_config(conn, &checkpoints, group, plugin, BATCH, 10, extra);
    if !config.event_hubs[0].output.is_empty() {
        // filter-emit forwards what passes its filter to this output.
        config.event_hubs[0]
            .plugin_config
            .insert("output".into(), "kept".into());
    }
    let (handled, busy) = common::run_until_idle(config, events).await;
    handled as f64 / busy.as_secs_f64()
}

fn ctx() -> PartitionContext {
    PartitionContext {
        namespace: "bench.local".into(),
        event_hub: "bench".into(),
        consumer_group: "$Default".into(),
        partition_id: "0".into(),
    }
}

async fn worker(runtime: &Runtime, plugin: &str, config: &[(&str, &str)]) -> Worker {
    let mut spec = PluginSpec::new(plugin);
    spec.config = config
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    PluginHandle::new(runtime.load(spec).await.unwrap()).worker()
}

/// The json-filter call alone: ns per event, batches of 1 000.
async fn filter_ns(runtime: &Runtime, events: &[Event]) -> f64 {
    let mut worker = worker(
        runtime,
        hubwasm_plugins::JSON_FILTER,
        &[("min_value", "50")],
    )
    .await;
    worker.handle_batch(&ctx(), &events[..BATCH]).await.unwrap();
    let started = Instant::now();
    for chunk in events.chunks(BATCH) {
        worker.handle_batch(&ctx(), chunk).await.unwrap();
    }
    started.elapsed().as_nanos() as f64 / events.len() as f64
}

/// count-by-key's calls plus each batch's commit to `store`: ns per event.
async fn state_ns(runtime: &Runtime, store: Arc<dyn StateStore>, events: &[Event]) -> f64 {
    let mut worker = worker(
        runtime,
        hubwasm_plugins::COUNT_BY_KEY,
        &[("field", "device")],
    )
    .await;
    let scope = format!("bench/{}/{}", std::process::id(), store.describe());
    let state = Arc::new(
        PartitionState::load(store, scope, 64 << 10, 64 << 20)
            .await
            .unwrap(),
    );
    worker.bind(Arc::new(Binding {
        outputs: Vec::new(),
        state: Some(state.clone()),
        first_seen: None,
        hub: "bench".into(),
    }));
    let started = Instant::now();
    for chunk in events.chunks(BATCH) {
        worker.handle_batch(&ctx(), chunk).await.unwrap();
        let journal = worker.take_effects();
        let last = chunk.last().unwrap().sequence_number;
        state.commit(last, &journal.state_writes()).await.unwrap();
    }
    let ns = started.elapsed().as_nanos() as f64 / events.len() as f64;
    // Every event counted once.
    let total: u64 = state
        .scan("count/", None, 1000)
        .iter()
        .map(|(_, v)| u64::from_le_bytes(v.as_slice().try_into().unwrap()))
        .sum();
    assert_eq!(total as usize, events.len());
    ns
}

fn main() {
    let events = env_usize("HUBWASM_BENCH_EFFECTS_EVENTS", 200_000);
    let state_events = env_usize("HUBWASM_BENCH_STATE_EVENTS", 100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        // 1. End to end: the source hub and the output hub on one embedded endpoint.
        let endpoint = hubwasm_hub::start(HubConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("hub"),
            event_hubs: vec![
                EventHubConfig {
                    name: common::HUB.into(),
                    partitions: common::PARTITIONS,
                    consumer_groups: vec!["filter".into(), "emit".into()],
                },
                EventHubConfig {
                    name: "kept".into(),
                    partitions: common::PARTITIONS,
                    consumer_groups: vec![],
                },
            ],
            ..HubConfig::default()
        })
        .await
        .unwrap();
        let conn = endpoint.connection_string(common::HUB);
        common::preload(&conn, events).await;
        let filter = run_hub(&conn, dir.path(), "filter", hubwasm_plugins::JSON_FILTER, "", events).await;
        let emit_extra = format!(
            "[[eventhub.output]]\nname = \"kept\"\nconnection_string = \"{}\"\n",
            endpoint.connection_string("kept")
        );
        let emit = run_hub(
            &conn,
            dir.path(),
            "emit",
            hubwasm_plugins::FILTER_EMIT,
            &emit_extra,
            events,
        )
        .await;

        // 2. State updates, in process.
        let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
        let seed: Vec<Event> = (0..state_events)
            .map(|i| Event::new(hubwasm::send::seed_event(i), i as i64, i.to_string()))
            .collect();
        let devices: Vec<Event> = (0..state_events)
            .map(|i| {
                let body = format!(r#"{{"device":"d-{}","value":{i},"data":"Test message #{i}"}}"#, i % 100);
                Event::new(body, i as i64, i.to_string())
            })
            .collect();
        let plain = filter_ns(&runtime, &seed).await;
        let sqlite: Arc<dyn StateStore> = Arc::new(
            hubwasm::effects::sqlite::SqliteState::open(&dir.path().join("state.sqlite")).unwrap(),
        );
        let on_sqlite = state_ns(&runtime, sqlite, &devices).await;
        let redis = redis_server::RedisServer::start();
        let on_redis: Arc<dyn StateStore> =
            Arc::new(hubwasm::effects::redis::RedisState::open(&redis.url()).unwrap());
        let on_redis = state_ns(&runtime, on_redis, &devices).await;

        println!("effects: one run, batches of {BATCH}");
        println!(
            "end to end, {events} seed events, 4 partitions, local checkpoints (json-filter keeps \
             value >= 50: all but the first five)"
        );
        println!("  json-filter alone:                 {filter:>10.0} events/s");
        println!(
            "  filter-emit (forward to `kept`):   {emit:>10.0} events/s   {:.2}x the filter (goal >= 0.6x)",
            emit / filter
        );
        println!("state update per event ({state_events} events, 100 keys, commit per batch)");
        println!("  json-filter call alone:            {plain:>10.0} ns/event");
        println!(
            "  count-by-key + commit, SQLite:     {on_sqlite:>10.0} ns/event   {:.1}x the filter",
            on_sqlite / plain
        );
        println!(
            "  count-by-key + commit, Redis:      {on_redis:>10.0} ns/event   {:.1}x the filter",
            on_redis / plain
        );
        endpoint.shutdown().await;
    });
}
