//! Plugin call overhead, measured side by side in one run:
//! the seed's JSON filter natively vs as a plugin (batches of 1, 100 and 1000), and a no-op
//! plugin for the pure cost of copying events in and calling.
//!
//! Run: `cargo bench -p hubwasm --bench plugin_overhead`

use std::time::{Duration, Instant};

use hubwasm::event::{Event, PartitionContext};
use hubwasm::plugin::{PluginHandle, PluginSpec, Runtime, RuntimeOptions};
use serde::Deserialize;

const EVENTS: usize = 20_000;
const ROUNDS: usize = 21;

/// The same filter the `json-filter` plugin runs (plugins/json-filter).
#[derive(Deserialize)]
#[allow(dead_code)]
struct SeedEvent<'a> {
    event_id: &'a str,
    message_id: i64,
    timestamp: &'a str,
    value: i64,
    data: &'a str,
}

struct NativeFilter {
    min_value: i64,
    kept: u64,
    dropped: u64,
}

impl NativeFilter {
    fn handle(&mut self, body: &[u8]) -> Result<(), String> {
        let event: SeedEvent =
            serde_json::from_slice(body).map_err(|e| format!("body is not a seed event: {e}"))?;
        if event.value >= self.min_value {
            self.kept += 1;
        } else {
            self.dropped += 1;
        }
        Ok(())
    }
}

fn seed_events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let body = format!(
                r#"{{"event_id": "6513270e-269e-4d37-b2a7-{i:012x}", "message_id": {i}, "timestamp": "2026-11-24T12:00:01Z", "value": {}, "data": "Test message #{i}"}}"#,
                (i % 100) * 10
            );
            Event::new(body.into_bytes(), i as i64, (i * 150).to_string())
        })
        .collect()
}

fn best_of<F: FnMut() -> Duration>(mut f: F) -> Duration {
    (0..ROUNDS).map(|_| f()).min().unwrap()
}

fn ns_per_event(d: Duration) -> f64 {
    d.as_nanos() as f64 / EVENTS as f64
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let events = seed_events(EVENTS);
    let avg_len = events.iter().map(|e| e.body.len()).sum::<usize>() / events.len();
    let ctx = PartitionContext {
        namespace: "bench.local".into(),
        event_hub: "bench".into(),
        consumer_group: "$Default".into(),
        partition_id: "0".into(),
    };

    let native = best_of(|| {
        let mut filter = NativeFilter {
            min_value: 50,
            kept: 0,
            dropped: 0,
        };
        let started = Instant::now();
        for e in &events {
            filter.handle(std::hint::black_box(&e.body)).unwrap();
        }
        let took = started.elapsed();
        assert_eq!(filter.kept + filter.dropped, EVENTS as u64);
        took
    });

    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: None,
        max_instances: 8,
        ..RuntimeOptions::default()
    })
    .unwrap();
    let load = |path: &str| {
        let mut spec = PluginSpec::new(path);
        spec.config = vec![("min_value".into(), "50".into())];
        PluginHandle::new(rt.block_on(runtime.load(spec)).unwrap())
    };
    let filter = load(hubwasm_plugins::JSON_FILTER);
    // The same plugin on a runtime without call deadlines, to show what epoch checks cost.
    let unguarded = Runtime::new(RuntimeOptions {
        cache_dir: None,
        max_instances: 8,
        call_deadlines: false,
        ..RuntimeOptions::default()
    })
    .unwrap();
    let mut spec = PluginSpec::new(hubwasm_plugins::JSON_FILTER);
    spec.config = vec![("min_value".into(), "50".into())];
    let filter_unguarded = PluginHandle::new(rt.block_on(unguarded.load(spec)).unwrap());
    let noop = load(hubwasm_plugins::NOOP);

    let run = |handle: &PluginHandle, batch: usize| {
        let mut worker = handle.worker();
        // Warm up: instantiate and touch memory once.
        rt.block_on(worker.handle_batch(&ctx, &events[..batch]))
            .unwrap();
        best_of(|| {
            rt.block_on(async {
                let started = Instant::now();
                for chunk in events.chunks(batch) {
                    worker.handle_batch(&ctx, chunk).await.unwrap();
                }
                started.elapsed()
            })
        })
    };

    println!(
        "hubwasm plugin overhead: {EVENTS} seed events of ~{avg_len} bytes, best of {ROUNDS} rounds"
    );
    println!("{:<34} {:>10} {:>10}", "case", "ns/event", "vs native");
    let native_ns = ns_per_event(native);
    println!(
        "{:<34} {:>10.1} {:>9.2}x",
        "native json filter", native_ns, 1.0
    );
    let mut batch_1000_ratio = 0.0;
    for batch in [1, 100, 1000] {
        let ns = ns_per_event(run(&filter, batch));
        let ratio = ns / native_ns;
        if batch == 1000 {
            batch_1000_ratio = ratio;
        }
        println!(
            "{:<34} {:>10.1} {:>9.2}x",
            format!("json-filter plugin, batch {batch}"),
            ns,
            ratio
        );
    }
    let ns = ns_per_event(run(&filter_unguarded, 1000));
    println!(
        "{:<34} {:>10.1} {:>9.2}x",
        "  same, without call deadlines",
        ns,
        ns / native_ns
    );
    let mut noop_1000 = 0.0;
    for batch in [1, 100, 1000] {
        let ns = ns_per_event(run(&noop, batch));
        if batch == 1000 {
            noop_1000 = ns;
        }
        println!(
            "{:<34} {:>10.1}",
            format!("no-op plugin, batch {batch}"),
            ns
        );
    }
    // Compiled-component cache: first load compiles, the next one maps the cached artifact.
    let cache = std::env::temp_dir().join(format!("hubwasm-bench-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let cached_runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(cache.clone()),
        max_instances: 8,
        ..RuntimeOptions::default()
    })
    .unwrap();
    let load_ms = |expect_cached: bool| {
        let started = Instant::now();
        let plugin = rt
            .block_on(cached_runtime.load(PluginSpec::new(hubwasm_plugins::JSON_FILTER)))
            .unwrap();
        assert_eq!(plugin.from_cache(), expect_cached);
        started.elapsed().as_secs_f64() * 1e3
    };
    let (compiled, cached) = (load_ms(false), load_ms(true));
    let _ = std::fs::remove_dir_all(&cache);
    println!();
    println!(
        "load json-filter: compile {compiled:.1} ms, from cache {cached:.1} ms ({:.0}x faster)",
        compiled / cached
    );
    println!();
    println!(
        "goal: json-filter batch 1000 within 1.5x native: {batch_1000_ratio:.2}x ({})",
        if batch_1000_ratio <= 1.5 {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "goal: no-op overhead <= 150 ns/event (batch 1000): {noop_1000:.1} ns ({})",
        if noop_1000 <= 150.0 { "met" } else { "MISSED" }
    );
}
