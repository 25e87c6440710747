//! Plugins in Python and JavaScript beside Rust, in one run:
//! - per-event cost at batch 1000 of the no-op plugin (the copy-in and call) and of the json
//!   filter in each language, and the same filter code run natively (CPython, Node);
//! - the second start of a Python and a JavaScript plugin (compiled cache warm) to its first
//!   event;
//! - end to end through `hubwasm run`'s processor (embedded endpoint, Blob checkpoints on
//!   Azurite) with the Python and the JavaScript json filter, against the official Python
//!   consumer (tuned `receive_batch`) doing the same filter.
//!
//! Run: `cargo bench -p hubwasm --bench languages` (after scripts/setup.sh; source
//! scripts/env.sh for HUBWASM_PYTHON). Settings: HUBWASM_BENCH_LANG_EVENTS (end to end, default
//! 200 000), HUBWASM_BENCH_PY_EVENTS (the Python consumer, default 100 000).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hubwasm::event::{Event, PartitionContext};
use hubwasm::plugin::{PluginHandle, PluginSpec, Runtime, RuntimeOptions};

use common::{blob_checkpoints, hubwasm_run, preload, python_run, start_endpoint, HUB};

#[path = "../../tests/support/azurite.rs"]
mod azurite;
mod common;
#[path = "../../tests/support/lang_plugins.rs"]
mod lang_plugins;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS: usize = 20_000;
const BATCH: usize = 1000;
const ROUNDS: usize = 7;

fn seed_bodies(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| hubwasm::send::seed_event(i).into_bytes())
        .collect()
}

fn ctx() -> PartitionContext {
    PartitionContext {
        namespace: "bench.local".into(),
        event_hub: HUB.into(),
        consumer_group: "$Default".into(),
        partition_id: "0".into(),
    }
}

/// Best round of `ROUNDS` over the events in batches of `BATCH`, in ns per event.
fn per_event(rt: &tokio::runtime::Runtime, handle: &PluginHandle, events: &[Event]) -> f64 {
    let ctx = ctx();
    let mut worker = handle.worker();
    rt.block_on(worker.handle_batch(&ctx, &events[..BATCH]))
        .unwrap();
    (0..ROUNDS)
        .map(|_| {
            rt.block_on(async {
                let started = Instant::now();
                for chunk in events.chunks(BATCH) {
                    worker.handle_batch(&ctx, chunk).await.unwrap();
                }
                started.elapsed()
            })
        })
        .min()
        .unwrap()
        .as_nanos() as f64
        / events.len() as f64
}

/// The filter's own code run natively: `program args.. BODIES ROUNDS 50` prints
/// `{"ns_per_event": ..}`.
fn native(program: &str, args: &[&str], bodies: &Path) -> Result<f64, String> {
    let out = std::process::Command::new(program)
        .args(args)
        .arg(bodies)
        .args([&ROUNDS.to_string(), "50"])
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    v["ns_per_event"]
        .as_f64()
        .ok_or_else(|| "no ns_per_event".into())
}

/// A new runtime on a warm compiled cache (as a restarted host): load (instantiate + init)
/// and the first event. Median of 5, in ms.
fn second_start(rt: &tokio::runtime::Runtime, wasm: &Path, cache: &Path, event: &Event) -> f64 {
    let mut times: Vec<f64> = (0..5)
        .map(|_| {
            let runtime = Runtime::new(RuntimeOptions {
                cache_dir: Some(cache.to_path_buf()),
                ..RuntimeOptions::default()
            })
            .unwrap();
            let started = Instant::now();
            let mut spec = PluginSpec::new(wasm);
            spec.config = vec![("min_value".into(), "50".into())];
            let plugin = rt.block_on(runtime.load(spec)).unwrap();
            assert!(plugin.from_cache(), "the second start reads the cache");
            let handle = PluginHandle::new(plugin);
            let mut worker = handle.worker();
            rt.block_on(worker.handle_batch(&ctx(), std::slice::from_ref(event)))
                .unwrap();
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let plugins: Vec<(&str, PathBuf, PathBuf)> = vec![
        (
            "Rust",
            PathBuf::from(hubwasm_plugins::NOOP),
            PathBuf::from(hubwasm_plugins::JSON_FILTER),
        ),
        (
            "Python",
            lang_plugins::built("python/noop"),
            lang_plugins::built("python/json-filter"),
        ),
        (
            "JavaScript",
            lang_plugins::built("js/noop"),
            lang_plugins::built("js/json-filter"),
        ),
    ];
    let bodies = seed_bodies(EVENTS);
    let avg = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len();
    let events: Vec<Event> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| Event::new(b.clone(), i as i64, (i * 150).to_string()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let bodies_file = dir.path().join("bodies.jsonl");
    let mut text = Vec::new();
    for b in &bodies {
        text.extend_from_slice(b);
        text.push(b'\n');
    }
    std::fs::write(&bodies_file, text).unwrap();
    let cache = dir.path().join("compiled");

    println!(
        "languages: {EVENTS} seed events of ~{avg} bytes, batch {BATCH}, best of {ROUNDS} rounds"
    );
    println!(
        "{:<12} {:>14} {:>16} {:>16} {:>10}",
        "language", "no-op ns/ev", "filter ns/ev", "native ns/ev", "vs native"
    );
    let mut rows = Vec::new();
    let python = std::env::var("HUBWASM_PYTHON").unwrap_or_else(|_| "python3".into());
    let natives = [
        None,
        Some(native(
            &python,
            &[concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/benches/native/filter.py"
            )],
            &bodies_file,
        )),
        Some(native(
            "node",
            &[
                "--harmony-json-parse-with-source",
                concat!(env!("CARGO_MANIFEST_DIR"), "/benches/native/filter.mjs"),
            ],
            &bodies_file,
        )),
    ];
    for ((lang, noop, filter), native) in plugins.iter().zip(natives) {
        let runtime = Runtime::new(RuntimeOptions {
            cache_dir: Some(cache.clone()),
            ..RuntimeOptions::default()
        })
        .unwrap();
        let load = |path: &Path| {
            let mut spec = PluginSpec::new(path);
            spec.config = vec![("min_value".into(), "50".into())];
            PluginHandle::new(rt.block_on(runtime.load(spec)).unwrap())
        };
        let noop_ns = per_event(&rt, &load(noop), &events);
        let filter_ns = per_event(&rt, &load(filter), &events);
        let (native_text, ratio) = match &native {
            Some(Ok(ns)) => (format!("{ns:.0}"), format!("{:.2}x", filter_ns / ns)),
            Some(Err(why)) => (
                format!("not run: {}", why.lines().next().unwrap_or("")),
                "".into(),
            ),
            None => ("-".into(), "".into()),
        };
        println!("{lang:<12} {noop_ns:>14.0} {filter_ns:>16.0} {native_text:>16} {ratio:>10}");
        rows.push((*lang, noop_ns, filter_ns, native));
    }

    let mut starts = Vec::new();
    for (lang, _, filter) in &plugins[1..] {
        let ms = second_start(&rt, filter, &cache, &events[0]);
        println!("second start of the {lang} json filter to its first event: {ms:.1} ms");
        starts.push((*lang, ms));
    }

    // End to end.
    let e2e_events = std::env::var("HUBWASM_BENCH_LANG_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000usize);
    let py_events = std::env::var("HUBWASM_BENCH_PY_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000usize)
        .min(e2e_events);
    let e2e = rt.block_on(async {
        let endpoint = start_endpoint(
            &dir.path().join("hub"),
            &["python-plugin", "js-plugin", "rust-plugin", "python-batch"],
        )
        .await;
        let conn = endpoint.connection_string(HUB);
        preload(&conn, e2e_events).await;
        let azurite = azurite::Azurite::start();
        let blob = |container: &str| blob_checkpoints(&azurite, container);
        let mut e2e: Vec<(String, u64, f64)> = Vec::new();
        for (label, group, wasm) in [
            (
                "hubwasm run, Rust json filter",
                "rust-plugin",
                plugins[0].2.clone(),
            ),
            (
                "hubwasm run, Python json filter",
                "python-plugin",
                plugins[1].2.clone(),
            ),
            (
                "hubwasm run, JavaScript json filter",
                "js-plugin",
                plugins[2].2.clone(),
            ),
        ] {
            let (n, busy): (u64, Duration) = hubwasm_run(
                &conn,
                &blob(group),
                group,
                e2e_events,
                wasm.to_str().unwrap(),
            )
            .await;
            e2e.push((label.into(), n, n as f64 / busy.as_secs_f64()));
        }
        match python_run(&conn, "batch", py_events, &azurite.connection_string()) {
            Ok((n, secs)) => e2e.push((
                "official Python consumer, receive_batch".into(),
                n,
                n as f64 / secs,
            )),
            Err(why) => println!("Python consumer not run: {why}"),
        }
        endpoint.shutdown().await;
        e2e
    });
    println!();
    println!("end to end: embedded endpoint -> consumer -> json filter (value >= 50) -> Blob checkpoints (Azurite)");
    let python_rate = e2e
        .iter()
        .find(|r| r.0.starts_with("official"))
        .map(|r| r.2);
    for (label, n, rate) in &e2e {
        let vs = python_rate
            .map(|p| format!("{:.1}x", rate / p))
            .unwrap_or_default();
        println!("{label:<42} {n:>8} events {rate:>10.0} events/s {vs:>8} the Python consumer");
    }

    println!();
    for (lang, noop_ns, filter_ns, native) in &rows[1..] {
        let noop_us = noop_ns / 1000.0;
        println!(
            "goal: {lang} no-op copy-in overhead <= 2 us/event: {noop_us:.2} us ({})",
            if noop_us <= 2.0 { "met" } else { "MISSED" }
        );
        if *lang == "Python" {
            if let Some(Ok(ns)) = native {
                let ratio = filter_ns / ns;
                println!(
                    "goal: Python plugin filter <= 2x native CPython: {ratio:.2}x ({})",
                    if ratio <= 2.0 { "met" } else { "MISSED" }
                );
            }
        }
    }
    for (lang, ms) in &starts {
        println!(
            "goal: {lang} second start < 100 ms to the first event: {ms:.1} ms ({})",
            if *ms < 100.0 { "met" } else { "MISSED" }
        );
    }
    if let Some(p) = python_rate {
        for (label, _, rate) in e2e
            .iter()
            .filter(|r| r.0.contains("Python json") || r.0.contains("JavaScript json"))
        {
            let ratio = rate / p;
            println!(
                "goal: {label} >= 5x the Python consumer: {ratio:.1}x ({})",
                if ratio >= 5.0 { "met" } else { "MISSED" }
            );
        }
    }
}
