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

use std::sync::Arc;
use std::time::Instant;

use hubwasm::connection::ConnectionString;

/// The allocator of the `hubwasm` binary (host/src/main.rs), so the bench measures what it runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use common::{blob_checkpoints, hubwasm_run, preload, python_run, start_endpoint, HUB, PARTITIONS};

mod common;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The ceiling: the official Rust SDK alone reading every event (one receiver per partition,
/// prefetch 3000 like hubwasm), no plugin, no checkpoints. Events/s from the first to the last.
/// `shared`: all receivers on one client (one AMQP connection, as under the SDK's
/// `EventProcessor`, which hubwasm uses); otherwise a client (connection) per partition.
async fn sdk_receive_only(conn: &str, group: &str, events: usize, shared: bool) -> f64 {
    let per = events / PARTITIONS as usize;
    let target = ConnectionString::parse(conn).unwrap().target();
    let one = if shared {
        Some(Arc::new(target.consumer(group).await.unwrap()))
    } else {
        None
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..PARTITIONS {
        let target = target.clone();
        let group = group.to_string();
        let one = one.clone();
        tasks.push(tokio::spawn(async move {
            let consumer = match one {
                Some(c) => c,
                None => Arc::new(target.consumer(&group).await.unwrap()),
            };
            let receiver = consumer
                .open_receiver_on_partition(
                    p.to_string(),
                    Some(hubwasm::connection::from_earliest(Some(3000))),
                )
                .await
                .unwrap();
            let stream = receiver.stream_events();
            futures::pin_mut!(stream);
            let mut first = None;
            for _ in 0..per {
                futures::StreamExt::next(&mut stream)
                    .await
                    .unwrap()
                    .unwrap();
                first.get_or_insert_with(Instant::now);
            }
            (first.unwrap(), Instant::now())
        }));
    }
    let mut first = Instant::now();
    let mut last = started;
    for t in tasks {
        let (f, l) = t.await.unwrap();
        first = first.min(f);
        last = last.max(l);
    }
    (per * PARTITIONS as usize) as f64 / (last - first).as_secs_f64()
}

fn main() {
    let events = env_usize("HUBWASM_BENCH_EVENTS", 1_000_000);
    let py_events = env_usize("HUBWASM_BENCH_PY_EVENTS", 100_000).min(events);
    let seed_events = env_usize("HUBWASM_BENCH_PY_SEED_EVENTS", 4_000).min(events);
    let skip_python = std::env::var("HUBWASM_BENCH_SKIP_PYTHON").is_ok();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let endpoint = start_endpoint(
            &dir.path().join("hub"),
            &[
                "sdk-only",
                "sdk-one-connection",
                "hubwasm-local",
                "hubwasm-blob",
                "python-batch",
                "python-event",
            ],
        )
        .await;
        let conn = endpoint.connection_string(HUB);
        let started = Instant::now();
        preload(&conn, events).await;
        eprintln!(
            "preloaded {events} events in {:.1} s",
            started.elapsed().as_secs_f64()
        );

        let mut rows: Vec<(&str, u64, f64)> = Vec::new();
        let ceiling = sdk_receive_only(&conn, "sdk-only", events, false).await;
        rows.push((
            "Rust SDK receive only, connection per partition",
            events as u64,
            ceiling,
        ));
        let ceiling = sdk_receive_only(&conn, "sdk-one-connection", events, true).await;
        rows.push((
            "Rust SDK receive only, one connection",
            events as u64,
            ceiling,
        ));
        let local = format!(
            "store = \"local\"\npath = \"{}\"",
            dir.path().join("checkpoints").display()
        );
        let (n, busy) = hubwasm_run(&conn, &local, "hubwasm-local", events, hubwasm_plugins::JSON_FILTER).await;
        rows.push((
            "hubwasm run, Rust json-filter, local store",
            n,
            n as f64 / busy.as_secs_f64(),
        ));
        let azurite = azurite::Azurite::start();
        let blob = blob_checkpoints(&azurite, "bench-hubwasm");
        let (n, busy) = hubwasm_run(&conn, &blob, "hubwasm-blob", events, hubwasm_plugins::JSON_FILTER).await;
        let ours = n as f64 / busy.as_secs_f64();
        rows.push(("hubwasm run, Rust json-filter, Blob store", n, ours));

        let mut python_notes = Vec::new();
        for (label, mode, count) in [
            (
                "Python receive_batch, checkpoint per batch",
                "batch",
                py_events,
            ),
            ("Python on_event, checkpoint per event (seed)", "event", seed_events),
        ] {
            if skip_python {
                python_notes.push(format!("{label}: skipped (HUBWASM_BENCH_SKIP_PYTHON)"));
                continue;
            }
            match python_run(
                &conn,
                mode,
                &format!("python-{mode}"),
                count,
                &azurite.connection_string(),
            ) {
                Ok((n, secs)) => rows.push((label, n, n as f64 / secs)),
                Err(why) => python_notes.push(format!("{label}: not run: {why}")),
            }
        }

        println!(
            "end-to-end: embedded endpoint -> consumer -> json filter (value >= 50) -> Blob or local checkpoints"
        );
        println!(
            "{:<46} {:>9} {:>11} {:>14}",
            "consumer", "events", "events/s", "hubwasm (Blob)"
        );
        for (label, n, rate) in &rows {
            println!(
                "{label:<46} {n:>9} {rate:>11.0} {:>13.1}x",
                ours / rate
            );
        }
        for note in &python_notes {
            println!("{note}");
        }
        println!(
            "goal >= 150000 events/s (Blob store): {} ({:.2}x)",
            if ours >= 150_000.0 { "met" } else { "MISSED" },
            ours / 150_000.0
        );
        for (label, _, rate) in rows.iter().filter(|r| r.0.starts_with("Python")) {
            let ratio = ours / rate;
            println!(
                "goal >= 30x {label}: {} ({ratio:.1}x)",
                if ratio >= 30.0 { "met" } else { "MISSED" }
            );
        }
        endpoint.shutdown().await;
    });
}

/// Azurite for the Python consumer's Blob checkpoints.
use hubwasm_testkit::azurite;
