//! The cost of `[eventhub.dedupe]` per event, beside the plain json-filter plugin call, in one
//! run: for each batch of 1 000 seed events, the claim of their keys (`json:event_id`) before
//! the plugin and the commit after it, beside the baseline of a plain lookup and record (what
//! the host did before claims, which let two copies in flight both pass), on the `local` store
//! (SQLite in a temp file) and on the `redis` store (Debian's redis-server on a free port, as
//! the tests start it).
//!
//! Run: `cargo bench -p hubwasm --bench dedupe`
//! Settings: HUBWASM_BENCH_DEDUPE_EVENTS (default 100 000 events: every key is new).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hubwasm::effects::dedupe::{Dedupe, DedupeStore, KeySource};

use hubwasm::event::{Event, PartitionContext};
use hubwasm::plugin::{PluginHandle, PluginSpec, Runtime, RuntimeOptions};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use hubwasm_testkit::redis as redis_server;

const BATCH: usize = 1000;

fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| Event::new(hubwasm::send::seed_event(i), i as i64, i.to_string()))
        .collect()
}

/// The plugin call alone: ns per event over all events, batches of 1 000.
async fn filter_ns(events: &[Event]) -> f64 {
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let mut spec = PluginSpec::new(hubwasm_plugins::JSON_FILTER);
    spec.config = vec![("min_value".into(), "50".into())];
    let handle = PluginHandle::new(runtime.load(spec).await.unwrap());
    let mut worker = handle.worker();
    let ctx = PartitionContext {
        namespace: "bench.local".into(),
        event_hub: "bench".into(),
        consumer_group: "$Default".into(),
        partition_id: "0".into(),
    };
    worker.handle_batch(&ctx, &events[..BATCH]).await.unwrap();
    let started = Instant::now();
    for chunk in events.chunks(BATCH) {
        worker.handle_batch(&ctx, chunk).await.unwrap();
    }
    started.elapsed().as_nanos() as f64 / events.len() as f64
}

/// How a batch's keys are taken before the plugin and kept after it.
#[derive(Clone, Copy)]
enum Way {
    /// The baseline: look the keys up, record them after (racy between partitions).
    LookupRecord,
    /// Claim atomically, commit after.
    ClaimCommit,
}

/// Before and after the plugin, per batch: ns per event (before, after), every key new.
async fn dedupe_ns(store: Arc<dyn DedupeStore>, events: &[Event], way: Way) -> (f64, f64) {
    let dedupe = Dedupe {
        store,
        key: Some(KeySource::parse("json:event_id").unwrap()),
        ttl: Duration::from_secs(3600),
        scope: format!("bench/{}/{}", std::process::id(), way as u8),
    };
    let source = dedupe.key.clone().unwrap();
    let (mut before, mut after) = (Duration::ZERO, Duration::ZERO);
    for chunk in events.chunks(BATCH) {
        let started = Instant::now();
        match way {
            Way::LookupRecord => {
                let keys: Vec<String> = chunk.iter().filter_map(|e| source.key(e)).collect();
                let seen = dedupe.store.seen(&dedupe.scope, &keys).await.unwrap();
                assert!(seen.iter().all(|s| !s), "every key is new");
                before += started.elapsed();
                let started = Instant::now();
                dedupe
                    .store
                    .record(&dedupe.scope, &keys, dedupe.ttl)
                    .await
                    .unwrap();
                after += started.elapsed();
            }
            Way::ClaimCommit => {
                let split = dedupe.claim("0", chunk).await.unwrap();
                assert!(split.duplicates.is_empty(), "every key is new");
                before += started.elapsed();
                let started = Instant::now();
                dedupe.commit("0", chunk).await.unwrap();
                after += started.elapsed();
            }
        }
    }
    let per = |d: Duration| d.as_nanos() as f64 / events.len() as f64;
    (per(before), per(after))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n = std::env::var("HUBWASM_BENCH_DEDUPE_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000usize);
    let events = events(n);
    println!("dedupe: {n} seed events in batches of {BATCH}, key json:event_id");
    let filter = filter_ns(&events).await;
    println!("json-filter plugin call alone: {filter:.0} ns/event");

    let dir = tempfile::tempdir().unwrap();
    let sqlite: Arc<dyn DedupeStore> = Arc::new(
        hubwasm::effects::sqlite::SqliteDedupe::open(&dir.path().join("dedupe.sqlite")).unwrap(),
    );
    let redis = redis_server::RedisServer::start();
    let redis_store: Arc<dyn DedupeStore> =
        Arc::new(hubwasm::effects::redis::RedisDedupe::open(&redis.url()).unwrap());
    for (name, store) in [("local (SQLite)", sqlite), ("redis", redis_store)] {
        let (lookup, record) = dedupe_ns(store.clone(), &events, Way::LookupRecord).await;
        let (claim, commit) = dedupe_ns(store, &events, Way::ClaimCommit).await;
        let baseline = lookup + record;
        let total = claim + commit;
        println!(
            "dedupe on {name}: baseline lookup {lookup:.0} + record {record:.0} = {baseline:.0} \
             ns/event; claim {claim:.0} + commit {commit:.0} = {total:.0} ns/event = {:.2}x the \
             baseline, {:.2}x the plugin call; filter with dedupe {:.2}x the filter alone",
            total / baseline,
            total / filter,
            (filter + total) / filter
        );
    }
}
