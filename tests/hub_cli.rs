//! `hubwasm hub serve` and `hubwasm send` as processes: connection strings printed, events sent
//! round-robin and to a partition, a clean stop on Ctrl-C, data kept across a restart.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

struct Served {
    child: Child,
    conn: String,
}

fn serve(data: &Path) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hubwasm"))
        .args(["hub", "serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start hubwasm hub serve");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let conn = loop {
        let line = lines
            .next()
            .expect("serve printed its connection strings")
            .unwrap();
        if let Some(conn) = line.strip_prefix("events: ") {
            break conn.to_string();
        }
    };
    assert!(
        conn.contains("UseDevelopmentEmulator=true;EntityPath=events"),
        "{conn}"
    );
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Served { child, conn }
}

/// Run a command to completion, failing the test instead of hanging after a minute.
fn output_within_a_minute(cmd: &mut Command) -> std::process::Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start command");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within a minute");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn send(conn: &str, args: &[&str]) -> String {
    let out = output_within_a_minute(
        Command::new(env!("CARGO_BIN_EXE_hubwasm"))
            .args(["send", "--connection-string", conn])
            .args(args),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn stop(mut served: Served) {
    let pid = served.child.id().to_string();
    let status = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(status.success());
    let exit = served.child.wait().unwrap();
    assert!(exit.success(), "Ctrl-C stops it cleanly: {exit}");
}

fn python() -> PathBuf {
    std::env::var_os("HUBWASM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/hubwasm/venv/bin/python")
        })
}

/// Last sequence number of each partition, read with the official Python SDK.
fn last_sequence_numbers(conn: &str) -> Vec<i64> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/eh_properties.py");
    let out = output_within_a_minute(Command::new(python()).arg(script).args(["--conn", conn]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let props: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    (0..4)
        .map(|p| {
            props["partitions"][p.to_string()]["last_enqueued_sequence_number"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

#[test]
fn send_round_robin_then_restart_keeps_data_and_continues_sequence_numbers() {
    let data = tempfile::tempdir().unwrap();
    let served = serve(data.path());
    let out = send(&served.conn, &["--count", "8"]);
    assert!(out.contains("sent 1 event(s) to partition 3"), "{out}");
    assert!(out.contains("sent 8 events in 8 batches"), "{out}");
    assert_eq!(last_sequence_numbers(&served.conn), vec![1, 1, 1, 1]);
    stop(served);

    let served = serve(data.path());
    let out = send(
        &served.conn,
        &["--count", "4", "--partition", "0", "--batch-size", "4"],
    );
    assert!(out.contains("sent 4 event(s) to partition 0"), "{out}");
    assert_eq!(last_sequence_numbers(&served.conn), vec![5, 1, 1, 1]);
    stop(served);
}

/// The peak resident memory of a running process, from /proc (Linux), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `hubwasm send --count 2000000` generates events while sending (memory stays flat; building
/// them all first took 444 MB), and when the endpoint is killed mid-run it says it retries,
/// then ends within a bound with one readable error instead of hanging.
#[test]
fn send_streams_its_events_and_gives_up_readably_when_the_endpoint_dies() {
    let data = tempfile::tempdir().unwrap();
    let mut served = serve(data.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_hubwasm"))
        .args(["send", "--connection-string", &served.conn])
        .args(["--count", "2000000", "--batch-size", "100"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hubwasm send");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Wait for progress (sending is under way), bounded.
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !seen.iter().any(|l: &String| l.starts_with("progress: ")) {
        assert!(
            std::time::Instant::now() < deadline,
            "no progress: {seen:?}"
        );
        if let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            seen.push(line);
        }
    }
    let peak_kib = peak_rss_kib(child.id()).expect("VmHWM of the sender");
    served.child.kill().unwrap();
    served.child.wait().unwrap();

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("send still running 4 minutes after the endpoint died: {seen:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    seen.extend(rx.try_iter());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{seen:?}\n{stderr}");
    assert!(
        seen.iter().any(|l| l.contains("retrying in")),
        "each retry is announced: {seen:?}\n{stderr}"
    );
    assert!(stderr.contains("gave up"), "{stderr}");
    assert!(
        !stderr.contains("AMQP Error: AMQP Error"),
        "one readable error, not nested layers: {stderr}"
    );
    assert!(
        peak_kib < 200 * 1024,
        "send held {peak_kib} KiB while streaming 2 000 000 events"
    );
}
