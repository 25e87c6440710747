//! The partition log against the plain file writes it is built on.
//!
//! Run: `cargo bench -p hubwasm-hub --bench storage`
//!
//! Baseline: the same bytes appended to a plain file with one `write_all` per batch of 100, no
//! framing, no CRC, no index (the floor any log pays). The log: `PartitionLog::append` with its
//! record headers, CRC32 and in-memory index, fsync `never` and every 100 ms (the default). Then
//! the time to reopen (scan, verify every CRC, rebuild the index) and to read everything back.

use std::io::Write;
use std::time::Instant;

use hubwasm_hub::storage::{AppendEvent, FsyncPolicy, LogOptions, PartitionLog, Retention};

const EVENTS: usize = 1_000_000;
const BATCH: usize = 100;
const SIZE: usize = 100;

fn batch() -> Vec<AppendEvent> {
    (0..BATCH)
        .map(|i| AppendEvent {
            partition_key: None,
            payload: vec![b'a' + (i % 26) as u8; SIZE],
        })
        .collect()
}

fn options(fsync: FsyncPolicy) -> LogOptions {
    LogOptions {
        fsync,
        segment_bytes: 64 << 20,
        retention: Retention {
            max_age: None,
            max_bytes: None,
        },
    }
}

fn plain_file(dir: &std::path::Path) -> f64 {
    let events = batch();
    let mut file = std::fs::File::create(dir.join("plain")).unwrap();
    let started = Instant::now();
    for _ in 0..EVENTS / BATCH {
        let mut buf = Vec::with_capacity(BATCH * SIZE);
        for e in &events {
            buf.extend_from_slice(&e.payload);
        }
        file.write_all(&buf).unwrap();
    }
    EVENTS as f64 / started.elapsed().as_secs_f64()
}

fn log_append(dir: &std::path::Path, fsync: FsyncPolicy) -> f64 {
    let events = batch();
    let mut log = PartitionLog::open(dir, options(fsync)).unwrap();
    let started = Instant::now();
    for _ in 0..EVENTS / BATCH {
        log.append(&events, 1_700_000_000_000).unwrap();
    }
    log.flush().unwrap();
    EVENTS as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let best = |f: &mut dyn FnMut() -> f64| (0..3).map(|_| f()).fold(0.0, f64::max);
    let plain = best(&mut || plain_file(tempfile::tempdir().unwrap().path()));
    let never = best(&mut || log_append(tempfile::tempdir().unwrap().path(), FsyncPolicy::Never));
    let every = best(&mut || {
        log_append(
            tempfile::tempdir().unwrap().path(),
            FsyncPolicy::EveryMillis(100),
        )
    });

    let dir = tempfile::tempdir().unwrap();
    log_append(dir.path(), FsyncPolicy::Never);
    let started = Instant::now();
    let log = PartitionLog::open(dir.path(), options(FsyncPolicy::Never)).unwrap();
    let reopen = started.elapsed();
    assert_eq!(log.last_sequence_number(), EVENTS as i64 - 1);
    let started = Instant::now();
    let mut next = 0;
    while next < EVENTS as i64 {
        let events = log.read_from_sequence(next, 1000, 4 << 20).unwrap();
        next = events.last().unwrap().sequence_number + 1;
    }
    let read = EVENTS as f64 / started.elapsed().as_secs_f64();

    println!("partition log, {EVENTS} events of {SIZE} B in batches of {BATCH}, best of 3");
    println!("{:<34} {:>12} {:>10}", "what", "events/s", "vs plain");
    println!(
        "{:<34} {:>12.0} {:>9.2}x",
        "plain file write_all (baseline)", plain, 1.0
    );
    println!(
        "{:<34} {:>12.0} {:>9.2}x",
        "log append, fsync never",
        never,
        never / plain
    );
    println!(
        "{:<34} {:>12.0} {:>9.2}x",
        "log append, fsync every 100 ms",
        every,
        every / plain
    );
    println!("{:<34} {:>12.0}", "log read back (1000 per read)", read);
    println!(
        "reopen (scan + CRC + index) of {EVENTS} events: {:.0} ms",
        reopen.as_secs_f64() * 1000.0
    );
}
