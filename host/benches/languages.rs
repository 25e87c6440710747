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
//! 200 000), HUBWASM_BENCH_PY_EVENTS (the Python consumer, default 100 000),
//! HUBWASM_BENCH_LANG_E2E_ROUNDS (end-to-end rounds, default 3: every row once per round, the
//! ratios taken within a round, medians reported), HUBWASM_BENCH_LANG_E2E_ONLY=TEXT (skip the
//! per-event rows and run only the end-to-end rows whose label contains TEXT, e.g. `JavaScript`
//! to profile one of them).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hubwasm::event::{Event, PartitionContext};
use hubwasm::plugin::{PluginHandle, PluginSpec, Runtime, RuntimeOptions};

use common::{blob_checkpoints, hubwasm_run, preload, python_run, start_endpoint, HUB};

use hubwasm_testkit::azurite;
mod common;
use hubwasm_testkit::lang_plugins;

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
    let only = std::env::var("HUBWASM_BENCH_LANG_E2E_ONLY").ok();
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
    let micro = if only.is_some() { 0 } else { plugins.len() };
    let runtime = |call_deadlines: bool| {
        Runtime::new(RuntimeOptions {
            cache_dir: Some(cache.clone()),
            call_deadlines,
            ..RuntimeOptions::default()
        })
        .unwrap()
    };
    // The second measures what the call deadlines cost (epoch checks compiled into every loop
    // and function): the same filter on an engine without them. Measurement only: `hubwasm
    // run` keeps them.
    let (deadlined, undeadlined) = (runtime(true), runtime(false));
    let load = |runtime: &Runtime, path: &Path| {
        let mut spec = PluginSpec::new(path);
        spec.config = vec![("min_value".into(), "50".into())];
        PluginHandle::new(rt.block_on(runtime.load(spec)).unwrap())
    };
    for ((lang, noop, filter), native) in plugins.iter().zip(natives).take(micro) {
        let noop_ns = per_event(&rt, &load(&deadlined, noop), &events);
        let filter_ns = per_event(&rt, &load(&deadlined, filter), &events);
        let free_ns = per_event(&rt, &load(&undeadlined, filter), &events);
        let (native_text, ratio) = match &native {
            Some(Ok(ns)) => (format!("{ns:.0}"), format!("{:.2}x", filter_ns / ns)),
            Some(Err(why)) => (
                format!("not run: {}", why.lines().next().unwrap_or("")),
                "".into(),
            ),
            None => ("-".into(), "".into()),
        };
        println!("{lang:<12} {noop_ns:>14.0} {filter_ns:>16.0} {native_text:>16} {ratio:>10}");
        let free_ratio = match &native {
            Some(Ok(ns)) => format!("{:.2}x", free_ns / ns),
            _ => "".into(),
        };
        println!(
            "{:<12} {:>14} {free_ns:>16.0} {:>16} {free_ratio:>10}   (filter without call deadlines, {:+.0}%)",
            "", "", "", (free_ns / filter_ns - 1.0) * 100.0
        );
        rows.push((*lang, noop_ns, filter_ns, native));
    }

    let mut starts = Vec::new();
    for (lang, _, filter) in plugins[1..].iter().take(micro) {
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
    let rounds = std::env::var("HUBWASM_BENCH_LANG_E2E_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3usize)
        .max(1);
    const CONSUMER: &str = "official Python consumer, receive_batch";
    let rows_e2e: Vec<(&str, &str, PathBuf)> = [
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
        (CONSUMER, "python-batch", PathBuf::new()),
    ]
    .into_iter()
    .filter(|(label, _, _)| only.as_ref().is_none_or(|o| label.contains(o.as_str())))
    .collect();
    println!();
    println!("end to end: embedded endpoint -> consumer -> json filter (value >= 50) -> Blob checkpoints (Azurite)");
    println!("{rounds} rounds, each row once per round in turn (this machine's speed drifts; a ratio is taken within a round)");
    // Per round, each row's events/s (None: the Python consumer could not run).
    let e2e: Vec<Vec<Option<f64>>> = rt.block_on(async {
        // A consumer group per row and round: each reads the partitions from the start.
        let groups: Vec<String> = (0..rounds)
            .flat_map(|r| rows_e2e.iter().map(move |(_, g, _)| format!("{g}-{r}")))
            .collect();
        let group_refs: Vec<&str> = groups.iter().map(String::as_str).collect();
        let endpoint = start_endpoint(&dir.path().join("hub"), &group_refs).await;
        let conn = endpoint.connection_string(HUB);
        preload(&conn, e2e_events).await;
        let azurite = azurite::Azurite::start();
        let mut all = Vec::new();
        for r in 0..rounds {
            let mut round = Vec::new();
            for (label, group, wasm) in &rows_e2e {
                let group = format!("{group}-{r}");
                let rate = if *label == CONSUMER {
                    match python_run(
                        &conn,
                        "batch",
                        &group,
                        py_events,
                        &azurite.connection_string(),
                    ) {
                        Ok((n, secs)) => Some(n as f64 / secs),
                        Err(why) => {
                            println!("Python consumer not run: {why}");
                            None
                        }
                    }
                } else {
                    let (n, busy): (u64, Duration) = hubwasm_run(
                        &conn,
                        &blob_checkpoints(&azurite, &group),
                        &group,
                        e2e_events,
                        wasm.to_str().unwrap(),
                    )
                    .await;
                    Some(n as f64 / busy.as_secs_f64())
                };
                round.push(rate);
            }
            let consumer = rows_e2e
                .iter()
                .position(|row| row.0 == CONSUMER)
                .and_then(|i| round[i]);
            let cells: Vec<String> = rows_e2e
                .iter()
                .zip(&round)
                .map(|((label, _, _), rate)| {
                    let name = label.rsplit(", ").next().unwrap_or(label);
                    match (rate, consumer) {
                        (Some(rate), Some(p)) if *label != CONSUMER => {
                            format!("{name} {rate:.0} ({:.1}x)", rate / p)
                        }
                        (Some(rate), _) => format!("{name} {rate:.0}"),
                        (None, _) => format!("{name} -"),
                    }
                })
                .collect();
            println!("round {}/{rounds}, events/s: {}", r + 1, cells.join(", "));
            all.push(round);
        }
        endpoint.shutdown().await;
        all
    });
    let median = |mut v: Vec<f64>| -> Option<f64> {
        v.sort_by(f64::total_cmp);
        (!v.is_empty()).then(|| v[v.len() / 2])
    };
    let consumer_at = rows_e2e.iter().position(|row| row.0 == CONSUMER);
    // Median over the rounds of each row's events/s and of its ratio to the consumer's.
    let mut ratios: Vec<(&str, f64)> = Vec::new();
    for (i, (label, _, _)) in rows_e2e.iter().enumerate() {
        let rate = median(e2e.iter().filter_map(|round| round[i]).collect());
        let ratio = consumer_at.and_then(|c| {
            median(
                e2e.iter()
                    .filter_map(|round| Some(round[i]? / round[c]?))
                    .collect(),
            )
        });
        let events = if *label == CONSUMER {
            py_events
        } else {
            e2e_events
        };
        let vs = match ratio {
            Some(x) if *label != CONSUMER => format!("{x:.1}x"),
            _ => String::new(),
        };
        match rate {
            Some(rate) => println!(
                "{label:<42} {events:>8} events {rate:>10.0} events/s {vs:>8} the Python consumer (medians)"
            ),
            None => println!("{label:<42} not run"),
        }
        if let (Some(x), true) = (ratio, *label != CONSUMER) {
            ratios.push((label, x));
        }
    }

    println!();
    for (lang, noop_ns, filter_ns, native) in rows.iter().skip(1) {
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
    for (label, ratio) in ratios
        .iter()
        .filter(|r| r.0.contains("Python json") || r.0.contains("JavaScript json"))
    {
        println!(
            "goal: {label} >= 5x the Python consumer: {ratio:.1}x, median of {rounds} rounds ({})",
            if *ratio >= 5.0 { "met" } else { "MISSED" }
        );
    }
}
