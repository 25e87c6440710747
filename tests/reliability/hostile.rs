//! Hostile clients next to an honest one. `hubwasm hub serve` runs as its own process (so its
//! memory is its own to measure) while raw TCP clients try what an attacker would, before
//! authenticating: a 40 KB SASL frame built to amplify memory, random bytes with and without a
//! protocol header, a frame that claims 4 GB, half frames, a flood of empty frames, and idle
//! connections held open. Meanwhile the official Rust SDK sends and reads back its events.
//! The honest client is served, the endpoint stays up with bounded memory, nothing panics.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hubwasm::connection::{from_earliest, ConnectionString};

use crate::load::last_sequence_numbers;
use crate::report;

const SASL_HEADER: &[u8] = b"AMQP\x03\x01\x00\x00";
const AMQP_HEADER: &[u8] = b"AMQP\x00\x01\x00\x00";

struct Served {
    child: Child,
    conn: String,
    port: u16,
    stderr: std::path::PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &std::path::Path) -> Served {
    let stderr = data.join("serve.stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hubwasm"))
        .args(["hub", "serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.join("hub"))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("start hubwasm hub serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let conn = loop {
        let line = lines
            .next()
            .expect("serve printed its connection strings")
            .unwrap();
        if let Some(conn) = line.strip_prefix("events: ") {
            break conn.to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let port = conn
        .split(';')
        .find_map(|kv| kv.strip_prefix("Endpoint=sb://"))
        .and_then(|e| e.trim_end_matches('/').rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("a port in the connection string");
    Served {
        child,
        conn,
        port,
        stderr,
    }
}

/// Peak and current resident memory of a process, in KiB (Linux /proc).
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// One frame: size, data offset 2, `kind` (0 AMQP, 1 SASL), channel 0, then `body`.
fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&[2, kind, 0, 0]);
    out.extend_from_slice(body);
    out
}

/// A SASL-init whose first field is an array of `count` elements that are each a described
/// value with a `descriptor_nulls`-long list as descriptor and a zero-byte null: before the
/// decoder's budget, each element cloned the descriptor (40 KB grew the endpoint by 250+ MB).
fn amplifying_sasl_init(descriptor_nulls: u32, count: u32) -> Vec<u8> {
    let mut array = count.to_be_bytes().to_vec();
    array.push(0x00);
    array.push(0xd0);
    array.extend_from_slice(&(descriptor_nulls + 4).to_be_bytes());
    array.extend_from_slice(&descriptor_nulls.to_be_bytes());
    array.extend(std::iter::repeat_n(0x40, descriptor_nulls as usize));
    array.push(0x40);
    array.resize(array.len().max(count as usize), 0);
    let mut value = vec![0xf0];
    value.extend_from_slice(&(array.len() as u32).to_be_bytes());
    value.extend_from_slice(&array);
    // described(sasl-init 0x41, list32 [value])
    let mut body = vec![0x00, 0x53, 0x41, 0xd0];
    body.extend_from_slice(&((value.len() + 4) as u32).to_be_bytes());
    body.extend_from_slice(&1u32.to_be_bytes());
    body.extend_from_slice(&value);
    frame(1, &body)
}

/// A cheap deterministic byte generator for the garbage probes.
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Send `bytes` on a new connection, then read until the endpoint closes it (or 2 s pass).
fn probe(port: u16, bytes: &[u8]) {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let _ = stream.write_all(bytes);
    let mut sink = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_clients_do_not_stop_an_honest_one_or_grow_the_endpoint() {
    let _serial = crate::one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path());
    let port = served.port;
    let pid = served.child.id();

    // The honest client, once before the attack to measure the endpoint at work.
    let options = |count| hubwasm::send::SendOptions {
        connection_string: served.conn.clone(),
        count,
        interval: Duration::ZERO,
        partition: Some("0".into()),
        partition_key: None,
        batch_size: 10,
        file: None,
    };
    hubwasm::send::send(&options(100), |_| {}).await.unwrap();
    let (_, baseline_kib) = memory_kib(pid);

    // The attack, on threads of its own, while the honest client keeps working.
    let started = Instant::now();
    let mut probes: Vec<std::thread::JoinHandle<usize>> = Vec::new();
    probes.push(std::thread::spawn(move || {
        let bomb = [SASL_HEADER, &amplifying_sasl_init(500, 40_000)].concat();
        for _ in 0..20 {
            probe(port, &bomb);
        }
        20
    }));
    for worker in 0..10u64 {
        probes.push(std::thread::spawn(move || {
            for seed in (0..50u64).filter(|s| s % 10 == worker) {
                probe(port, &garbage(seed, 4096));
                probe(port, &[AMQP_HEADER, &garbage(seed + 1000, 4096)].concat());
                probe(port, &[SASL_HEADER, &garbage(seed + 2000, 4096)].concat());
            }
            15
        }));
    }
    probes.push(std::thread::spawn(move || {
        // A frame that claims 4 GB, trickled; half a frame; a flood of empty frames.
        let mut claim = SASL_HEADER.to_vec();
        claim.extend_from_slice(&0xffff_fff0u32.to_be_bytes());
        claim.extend_from_slice(&[2, 1, 0, 0]);
        claim.extend(std::iter::repeat_n(0u8, 1 << 20));
        probe(port, &claim);
        let half = [AMQP_HEADER, &frame(0, &[0x00, 0x53, 0x10, 0xc0, 0x20])[..6]].concat();
        let halves: Vec<_> = (0..20)
            .map(|_| {
                let half = half.clone();
                std::thread::spawn(move || probe(port, &half))
            })
            .collect();
        halves.into_iter().for_each(|h| h.join().unwrap());
        let empties: Vec<u8> = std::iter::repeat_n(frame(0, &[]), 10_000)
            .flatten()
            .collect();
        probe(port, &[AMQP_HEADER, &empties].concat());
        22
    }));
    // Idle connections held open for the whole attack.
    let idle: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();

    hubwasm::send::send(&options(400), |_| {})
        .await
        .expect("honest sends are served during the attack");
    let probes_made: usize =
        probes.into_iter().map(|p| p.join().unwrap()).sum::<usize>() + idle.len();
    let (peak_kib, during_kib) = memory_kib(pid);
    drop(idle);

    // Everything the honest client sent is there, and it reads it all back.
    let last = last_sequence_numbers(&served.conn).await;
    assert_eq!(last.get("0"), Some(&499), "{last:?}");
    let target = ConnectionString::parse(&served.conn).unwrap().target();
    let consumer = target.consumer("$Default").await.unwrap();
    let receiver = consumer
        .open_receiver_on_partition("0".to_string(), Some(from_earliest(Some(100))))
        .await
        .unwrap();
    let mut stream = receiver.stream_events();
    let mut received = 0;
    let read_deadline = Instant::now() + Duration::from_secs(60);
    while received < 500 {
        assert!(
            Instant::now() < read_deadline,
            "read back {received} of 500"
        );
        match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
            Ok(Some(Ok(_))) => received += 1,
            other => panic!("the honest receiver failed after {received} events: {other:?}"),
        }
    }
    drop(stream);
    let _ = receiver.close().await;
    let _ = consumer.close().await;

    let mut served = served;
    assert!(
        served.child.try_wait().unwrap().is_none(),
        "the endpoint is still running"
    );
    let stderr = std::fs::read_to_string(&served.stderr).unwrap_or_default();
    assert!(!stderr.contains("panicked"), "{stderr}");
    report(&format!(
        "hostile clients: {probes_made} probes survived (amplifying SASL frames, garbage, a 4 GB \
         frame claim, half frames, 10 000 empty frames, 100 idle connections); the honest client \
         sent 500 and read 500; endpoint memory {baseline_kib} KiB before, {during_kib} KiB \
         after, peak {peak_kib} KiB; {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    assert!(
        peak_kib < 256 * 1024,
        "the endpoint peaked at {peak_kib} KiB under attack"
    );
}
