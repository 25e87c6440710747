//! What a swap request may name or carry, tried as a hostile tenant and as a careless operator:
//! no host file is read, leaked or used to exhaust the host; uploads are bounded and cut off
//! when they stall; only files inside `[admin] plugin_dirs` may be named, by the operator.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use hubwasm::admin::client::{request, send, Answer};

use crate::harness::{
    eventually, json_swap, send as send_events, start_with_admin, upload_swap, Host, Local, HUB,
};

const OPERATOR: &str = "operator-token-3e9d";
const ACME: &str = "acme-token-77c1";
const COMPONENT_LIMIT: u64 = 4 << 20;

/// The host process's resident memory (VmRSS), bytes.
fn resident_memory(host: &Host) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", host.child.id())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// A raw request: `head` (without the blank line), then up to `body_bytes` of body in 64 KiB
/// pieces, stopping once the host has answered or closed. Returns the answer and how many
/// body bytes were sent.
fn raw_request(addr: &str, head: &str, body_bytes: usize) -> (String, usize) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut reader = stream.try_clone().unwrap();
    // The answer is read while the body is still being sent: the host answers early.
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = answered.clone();
    let read = std::thread::spawn(move || {
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            if answer.len() > 1 << 20 {
                break;
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    });
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(b"\r\n").unwrap();
    let piece = vec![b'A'; 64 << 10];
    let mut sent = 0;
    while sent < body_bytes && !answered.load(std::sync::atomic::Ordering::SeqCst) {
        let n = piece.len().min(body_bytes - sent);
        if stream.write_all(&piece[..n]).is_err() {
            break; // the host answered and closed: it read no further
        }
        sent += n;
    }
    (read.join().unwrap(), sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_requests_cannot_read_leak_or_exhaust_anything_on_the_host() {
    let world = Local::start(2).await;
    let plugins = world.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let config = world.config("tenant = \"acme\"")
        + &format!(
            "\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"HUBWASM_TEST_OPERATOR\"\n\
             plugin_dirs = [\"{}\"]\nmax_component_bytes = {COMPONENT_LIMIT}\n\
             max_replay_bytes = 4096\nupload_idle_timeout_ms = 1000\n\n\
             [[tenant]]\nname = \"acme\"\nadmin_token_env = \"HUBWASM_TEST_ACME\"\n",
            plugins.display()
        );
    let (host, addr) = start_with_admin(
        "probed",
        world.path(),
        &config,
        &[
            ("HUBWASM_TEST_OPERATOR", OPERATOR),
            ("HUBWASM_TEST_ACME", ACME),
        ],
    )
    .await;
    let leaks = |answer: &Answer| {
        ["root:", "72 6f 6f 74", OPERATOR, ACME, "HUBWASM_TEST"]
            .iter()
            .any(|secret| answer.body.contains(secret))
    };

    // A tenant names host files: refused before anything is opened, nothing echoed.
    let own = hubwasm_plugins::TEST_RECORD;
    for body in [
        serde_json::json!({ "plugin": "/etc/shadow" }),
        serde_json::json!({ "plugin": "/etc/passwd" }),
        serde_json::json!({ "plugin": "/proc/self/environ" }),
        serde_json::json!({ "plugin": "/dev/zero" }),
        serde_json::json!({ "plugin": own, "replay": "/proc/self/environ" }),
        serde_json::json!({ "plugin": own, "replay": "/etc/passwd" }),
        serde_json::json!({ "plugin": plugins.join("x.wasm"), "replay": "/etc/passwd" }),
    ] {
        let started = Instant::now();
        let answer = json_swap(&addr, body.clone(), ACME).await;
        assert_eq!(answer.status, 403, "{body}: {}", answer.body);
        assert!(
            answer
                .body
                .contains("tenant acme cannot name a path on the host"),
            "{body}: {}",
            answer.body
        );
        assert!(!leaks(&answer), "{body}: {}", answer.body);
        assert!(started.elapsed() < Duration::from_secs(10), "{body}");
    }

    // The operator may name files inside plugin_dirs only, regular ones, within the bound.
    std::os::unix::fs::symlink("/etc/passwd", plugins.join("passwd.wasm")).unwrap();
    std::os::unix::fs::symlink("/proc/self/environ", plugins.join("environ.wasm")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", plugins.join("zero.wasm")).unwrap();
    let fifo = plugins.join("fifo.wasm");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let big = plugins.join("big.wasm");
    std::fs::write(&big, vec![0u8; COMPONENT_LIMIT as usize + 1]).unwrap();
    let escape = format!("{}/../../../../etc/passwd", plugins.display());
    for (plugin, status, says) in [
        ("/etc/shadow".to_string(), 403, "not inside the directories"),
        (
            "/proc/self/environ".to_string(),
            403,
            "not inside the directories",
        ),
        ("/dev/zero".to_string(), 403, "not inside the directories"),
        (escape, 403, "not inside the directories"),
        (
            plugins.join("passwd.wasm").display().to_string(),
            403,
            "not inside the directories",
        ),
        (
            plugins.join("environ.wasm").display().to_string(),
            403,
            "not inside the directories",
        ),
        (
            plugins.join("zero.wasm").display().to_string(),
            403,
            "not inside the directories",
        ),
        (fifo.display().to_string(), 422, "a FIFO"),
        (big.display().to_string(), 422, "larger than 4194304 bytes"),
    ] {
        let started = Instant::now();
        let answer = json_swap(&addr, serde_json::json!({ "plugin": plugin }), OPERATOR).await;
        assert_eq!(answer.status, status, "{plugin}: {}", answer.body);
        assert!(answer.body.contains(says), "{plugin}: {}", answer.body);
        assert!(!leaks(&answer), "{plugin}: {}", answer.body);
        assert!(started.elapsed() < Duration::from_secs(10), "{plugin}");
    }

    // A body of another kind, a query naming something else: refused, naming what is taken.
    let answer = send(
        &addr,
        "POST",
        &format!("/v1/event-hubs/{HUB}/swap"),
        b"/etc/passwd",
        Some("text/plain"),
        Some(OPERATOR),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 415, "{}", answer.body);
    assert!(answer.body.contains("application/wasm"), "{}", answer.body);
    let answer = send(
        &addr,
        "POST",
        &format!("/v1/event-hubs/{HUB}/swap?plugin=/etc/passwd"),
        b"\0asm",
        Some("application/wasm"),
        Some(OPERATOR),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(
        answer.body.contains("consumer_group and name"),
        "{}",
        answer.body
    );
    // A multipart body without a usable boundary.
    let answer = send(
        &addr,
        "POST",
        &format!("/v1/event-hubs/{HUB}/swap"),
        b"--x\r\n",
        Some("multipart/form-data"),
        Some(OPERATOR),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(answer.body.contains("boundary"), "{}", answer.body);

    // A JSON request is small: a large one is refused with what to send instead.
    let padded = serde_json::json!({ "plugin": "x", "consumer_group": "y".repeat(100_000) });
    let answer = json_swap(&addr, padded, OPERATOR).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(
        answer.body.contains("at most 65536 bytes"),
        "{}",
        answer.body
    );

    // Uploads: over the bound, refused having read no further than it; the host's memory
    // stays bounded (the body is spooled to a temporary file, never held whole).
    let before = resident_memory(&host);
    let head = format!(
        "POST /v1/event-hubs/{HUB}/swap HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ACME}\r\n\
         Content-Type: application/wasm\r\nContent-Length: {}\r\n",
        256u64 << 20
    );
    let (answer, sent) = raw_request(&addr, &head, 256 << 20);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("max_component_bytes"), "{answer}");
    assert!(
        sent < 64 << 20,
        "the host read on past its bound: {sent} bytes went in before it answered"
    );
    let grown = resident_memory(&host).saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "the host grew by {grown} bytes on a refused upload"
    );
    // An upload that stalls is cut off after the idle bound, and the API answers on.
    let head = format!(
        "POST /v1/event-hubs/{HUB}/swap HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ACME}\r\n\
         Content-Type: application/wasm\r\nContent-Length: 100000\r\n"
    );
    let started = Instant::now();
    let (answer, _) = raw_request(&addr, &head, 1000);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("sent nothing"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(15));
    // Anonymous uploads are refused before a byte of the body is read.
    let head = format!(
        "POST /v1/event-hubs/{HUB}/swap HTTP/1.1\r\nHost: x\r\nContent-Type: application/wasm\r\n\
         Content-Length: {}\r\n",
        64u64 << 20
    );
    let (answer, _) = raw_request(&addr, &head, 0);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    // Replay events over their bound, in a multipart upload.
    let (body, content_type) = hubwasm::admin::client::multipart(&[
        ("plugin", "v.wasm", &std::fs::read(own).unwrap()),
        ("replay", "r.jsonl", &vec![b'{'; 5000]),
    ]);
    let answer = send(
        &addr,
        "POST",
        &format!("/v1/event-hubs/{HUB}/swap"),
        &body,
        Some(&content_type),
        Some(ACME),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert!(answer.body.contains("max_replay_bytes"), "{}", answer.body);

    // Nothing of the above changed anything; what a tenant may do still works: upload bytes.
    let status = |addr: String| async move {
        let answer = request(
            &addr,
            "GET",
            "/status",
            None,
            Some(OPERATOR),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        serde_json::from_str::<hubwasm::admin::Status>(&answer.body).unwrap()
    };
    assert_eq!(status(addr.clone()).await.swaps, 0);
    let mut v2 = std::fs::read(own).unwrap();
    v2.extend_from_slice(b"\0\x05\x04v2ok"); // a custom section: another digest
    let answer = upload_swap(&addr, &v2, "../../record_v2", ACME).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let record: hubwasm::host::SwapRecord = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(record.to.name, "_.._record_v2", "names are made safe");
    assert_eq!(record.to.path, "upload");
    // The operator names a regular file inside plugin_dirs.
    let v3 = plugins.join("record_v3.wasm");
    let mut bytes = std::fs::read(own).unwrap();
    bytes.extend_from_slice(b"\0\x05\x04v3ok");
    std::fs::write(&v3, bytes).unwrap();
    let answer = json_swap(&addr, serde_json::json!({ "plugin": v3 }), OPERATOR).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(status(addr.clone()).await.swaps, 2);
    // And the stream kept flowing through all of it.
    send_events(&world.endpoint, 10, None).await;
    eventually(
        "the events handled by the last version",
        Duration::from_secs(60),
        || {
            host.log()
                .lines()
                .filter(|l| l.contains("handled group=") && l.contains("record_v3"))
                .count()
                >= 10
        },
        &[&host],
    )
    .await;
}
