//! Contract 0.2's effects through `hubwasm run`, with real processes (kill -9 included): events
//! emitted to an output hub, keyed state exactly once under a kill soak on SQLite and on Redis,
//! the same soak with `[eventhub.dedupe]` over duplicated sends, outbound HTTP allowed, refused
//! and cut at the call timeout, and the bad inputs (an unknown output, a value over the limit,
//! a store that refuses connections).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hubwasm::effects::state::StateStore;

use crate::harness::{checkpoints, eventually, send_bodies_in, Host, Local, HUB};
use crate::redis_server::RedisServer;

/// A seed event (json-filter's and filter-emit's input) with this id and value.
fn seed(id: usize, value: i64) -> String {
    format!(
        r#"{{"event_id":"e-{id}","timestamp":"2026-12-03T00:00:00Z","data":"d","message_id":{id},"value":{value}}}"#
    )
}

/// A host config running `plugin` on the hub under test.
fn with_plugin(t: &Local, plugin: &str, hub_extra: &str) -> String {
    t.config(hub_extra)
        .replace(hubwasm_plugins::TEST_RECORD, plugin)
}

/// [`with_plugin`] with batches of 5 events (more calls, more places for a kill to land).
fn small_batches(config: String) -> String {
    config.replace("max_batch_size = 20", "max_batch_size = 5")
}

/// The `[[eventhub.output]]` named `kept` on the endpoint's hub `kept`.
fn kept_output(t: &Local) -> String {
    format!(
        "[[eventhub.output]]\nname = \"kept\"\nconnection_string = \"{}\"\n",
        t.endpoint.connection_string("kept")
    )
}

/// Every event of `hub` as (body, message id), reading each partition until it is quiet.
async fn read_hub(t: &Local, hub: &str, partitions: u32) -> Vec<(String, Option<String>)> {
    let conn =
        hubwasm::connection::ConnectionString::parse(&t.endpoint.connection_string(hub)).unwrap();
    let consumer = conn.target().consumer("$Default").await.unwrap();
    let mut got = Vec::new();
    for p in 0..partitions {
        let receiver = consumer
            .open_receiver_on_partition(
                p.to_string(),
                Some(hubwasm::connection::from_earliest(None)),
            )
            .await
            .unwrap();
        let stream = receiver.stream_events();
        futures::pin_mut!(stream);
        while let Ok(Some(Ok(event))) =
            tokio::time::timeout(Duration::from_secs(2), stream.next()).await
        {
            let data = event.event_data();
            got.push((
                String::from_utf8_lossy(data.body().unwrap_or_default()).into_owned(),
                data.message_id().map(|m| format!("{m:?}")),
            ));
        }
    }
    got
}

/// What the `[eventhub.dedupe]` and `[eventhub.state]` tables of a test look like.
fn local_state(t: &Local) -> String {
    format!(
        "[eventhub.state]\npath = \"{}\"\n",
        t.path().join("state.sqlite").display()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn kept_events_reach_the_output_once_with_deterministic_message_ids() {
    let t = Local::start(2).await;
    let bodies: Vec<String> = (0..40).map(|i| seed(i, i as i64)).collect();
    send_bodies_in(&t.endpoint, HUB, &bodies, t.path(), 1).await;
    let cfg = with_plugin(
        &t,
        hubwasm_plugins::FILTER_EMIT,
        &format!(
            "plugin_config = {{ output = \"kept\", min_value = \"20\" }}\n{}",
            kept_output(&t)
        ),
    );
    let host = Host::run_until_idle("emit", t.path(), &cfg, Duration::from_secs(120));
    let log = host.log();
    assert!(log.contains("emitted 20"), "the summary counts them\n{log}");
    let got = read_hub(&t, "kept", 2).await;
    let mut bodies_got: Vec<&str> = got.iter().map(|(b, _)| b.as_str()).collect();
    bodies_got.sort();
    let mut want: Vec<String> = (20..40).map(|i| seed(i, i as i64)).collect();
    want.sort();
    assert_eq!(
        bodies_got, want,
        "each kept event once, nothing else\n{log}"
    );
    // Round-robin over 2 partitions: event i is sequence number i / 2 of partition i % 2.
    for (body, id) in &got {
        let i: usize = body
            .split("\"message_id\":")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let want = format!("{HUB}/{}/{}/0", i % 2, i / 2);
        assert!(
            id.as_deref().is_some_and(|id| id.contains(&want)),
            "message id of event {i}: {id:?}, want {want}"
        );
    }
    let cps = checkpoints(&t.store(), "$Default").await;
    assert_eq!(cps.get("0"), Some(&Some(19)), "{cps:?}");
    t.endpoint.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_kill_an_emitted_event_repeats_only_with_its_message_id() {
    let t = Local::start(2).await;
    let n = 600;
    let bodies: Vec<String> = (0..n).map(|i| seed(i, i as i64 % 100)).collect();
    let cfg = small_batches(with_plugin(
        &t,
        hubwasm_plugins::FILTER_EMIT,
        &format!(
            "plugin_config = {{ output = \"kept\", min_value = \"0\" }}\n{}",
            kept_output(&t)
        ),
    ));
    let mut first = Host::start("emit-kill-1", t.path(), &cfg, &[]);
    send_bodies_in(&t.endpoint, HUB, &bodies, t.path(), 1).await;
    eventually(
        "some events emitted",
        Duration::from_secs(60),
        || first.log().contains(", emitted "),
        &[&first],
    )
    .await;
    first.kill9();
    let second = Host::run_until_idle("emit-kill-2", t.path(), &cfg, Duration::from_secs(120));
    let got = read_hub(&t, "kept", 2).await;
    let mut ids: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for (body, id) in got {
        ids.entry(body).or_default().push(id);
    }
    assert_eq!(ids.len(), n, "every event at least once\n{}", second.log());
    for (body, copies) in &ids {
        assert!(
            copies.iter().all(|c| c == &copies[0]),
            "{body}: repeats carry the first delivery's message id: {copies:?}"
        );
    }
    t.endpoint.shutdown().await;
}

/// Send `bodies` so that `copies` of each land in the same partition (as a producer's retries
/// do), `partitions` partitions by index.
async fn send_to_partitions(t: &Local, bodies: &[String], partitions: usize, copies: usize) {
    for p in 0..partitions {
        let mine: Vec<String> = bodies
            .iter()
            .enumerate()
            .filter(|(i, _)| i % partitions == p)
            .flat_map(|(_, b)| std::iter::repeat_n(b.clone(), copies))
            .collect();
        if mine.is_empty() {
            continue;
        }
        let file = t.path().join(format!("soak-{p}.jsonl"));
        std::fs::write(&file, mine.join("\n") + "\n").unwrap();
        let options = hubwasm::send::SendOptions {
            connection_string: t.endpoint.connection_string(HUB),
            count: 0,
            interval: Duration::ZERO,
            partition: Some(p.to_string()),
            partition_key: None,
            batch_size: 10,
            file: Some(file),
        };
        hubwasm::send::send(&options, |_| {}).await.unwrap();
    }
}

/// The kill soak: 3 hosts on 8 partitions, 6 rounds of sending while one host is killed
/// (kill -9) and restarted; then the state must hold exactly the true counts. `store` is the
/// `[eventhub.state]` table; `dedupe` adds `[eventhub.dedupe]` and sends every event twice.
async fn soak(name: &str, t: &Local, store: &dyn StateStore, state: &str, dedupe: Option<&str>) {
    const PARTITIONS: usize = 8;
    const ROUNDS: usize = 6;
    const PER_ROUND: usize = 600;
    let mut extra = format!("plugin_config = {{ field = \"device\" }}\n{state}");
    if let Some(dedupe) = dedupe {
        extra.push_str(dedupe);
    }
    let cfg = small_batches(with_plugin(t, hubwasm_plugins::COUNT_BY_KEY, &extra));
    let copies = if dedupe.is_some() { 2 } else { 1 };
    let mut hosts: Vec<Host> = (0..3)
        .map(|i| Host::start(&format!("{name}-h{i}"), t.path(), &cfg, &[]))
        .collect();
    let mut truth: BTreeMap<String, u64> = BTreeMap::new();
    let mut sent = 0;
    let mut kills = 0;
    for round in 0..ROUNDS {
        let bodies: Vec<String> = (0..PER_ROUND)
            .map(|j| {
                let i = round * PER_ROUND + j;
                let device = format!("d-{}", (i * 7) % 13);
                *truth.entry(device.clone()).or_default() += 1;
                format!(r#"{{"event_id":"e-{i}","device":"{device}","n":{i}}}"#)
            })
            .collect();
        send_to_partitions(t, &bodies, PARTITIONS, copies).await;
        sent += bodies.len() * copies;
        // Kill one host while the round is being handled, and start a new one in its place.
        tokio::time::sleep(Duration::from_millis(30 + 40 * (round as u64 % 3))).await;
        let victim = round % 3;
        hosts[victim].kill9();
        kills += 1;
        hosts[victim] = Host::start(&format!("{name}-r{round}"), t.path(), &cfg, &[]);
    }
    assert!(kills >= 5);
    let store_cp = t.store();
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let cps = checkpoints(&store_cp, "$Default").await;
        let done: usize = cps.values().map(|c| c.map_or(0, |s| s as usize + 1)).sum();
        if done == sent {
            break;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = hosts.iter().map(|h| h.log()).collect();
            panic!(
                "{name}: checkpoints cover {done} of {sent} events: {cps:?}\n{}",
                logs.join("\n----\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for host in &mut hosts {
        host.terminate();
    }
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for p in 0..PARTITIONS {
        let scope = format!("localhost/{HUB}/$Default/{p}");
        let (_, rows) = store.load(&scope).await.unwrap();
        for (key, value) in rows {
            let device = key
                .strip_prefix("count/")
                .expect("count-by-key's keys")
                .to_string();
            let n = u64::from_le_bytes(value.as_slice().try_into().expect("8-byte counts"));
            *counts.entry(device).or_default() += n;
        }
    }
    // What the kills did, from every host's log (the killed ones' too).
    let logs: String = std::fs::read_dir(t.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(name))
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    let count = |marker: &str| logs.matches(marker).count();
    let loaded = count("Partition state loaded");
    let resumed = logs
        .lines()
        .filter(|l| l.contains("Partition state loaded") && l.contains("position=Some"))
        .count();
    eprintln!(
        "{name}: {kills} kills; state loaded {loaded} times ({resumed} with a committed position); \
         events skipped as already in the state: {} times; fenced commits: {}",
        count("Skipped events the partition's state already holds"),
        count("Another host committed this partition's state")
    );
    assert!(
        resumed > 0,
        "{name}: some host took over a partition with committed state"
    );
    assert_eq!(
        counts, truth,
        "{name}: exactly the true counts after {kills} kills"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn counts_are_exact_through_a_kill_soak_with_state_in_sqlite() {
    let t = Local::start(8).await;
    let store =
        hubwasm::effects::sqlite::SqliteState::open(&t.path().join("state.sqlite")).unwrap();
    soak("soak-sqlite", &t, &store, &local_state(&t), None).await;
    t.endpoint.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn counts_are_exact_through_a_kill_soak_with_state_in_redis() {
    let redis = RedisServer::start();
    let t = Local::start(8).await;
    let store = hubwasm::effects::redis::RedisState::open(&redis.url()).unwrap();
    let state = format!(
        "[eventhub.state]\nstore = \"redis\"\nurl = \"{}\"\n",
        redis.url()
    );
    soak("soak-redis", &t, &store, &state, None).await;
    t.endpoint.shutdown().await;
}

/// Every event sent twice (a producer's retry): with `[eventhub.dedupe]` the counts are those
/// of the unique events, through the same kills: no duplicate effect.
#[tokio::test(flavor = "multi_thread")]
async fn duplicated_sends_count_once_through_a_kill_soak_with_dedupe() {
    let t = Local::start(8).await;
    let store =
        hubwasm::effects::sqlite::SqliteState::open(&t.path().join("state.sqlite")).unwrap();
    let dedupe = format!(
        "[eventhub.dedupe]\nkey = \"json:event_id\"\npath = \"{}\"\n",
        t.path().join("dedupe.sqlite").display()
    );
    soak("soak-dedupe", &t, &store, &local_state(&t), Some(&dedupe)).await;
    t.endpoint.shutdown().await;
}

/// A tiny HTTP server: answers `200 enriched:<request body>` (after `delay`), counting requests.
fn http_server(delay: Duration) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let counted = counted.clone();
            std::thread::spawn(move || {
                stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                // Read the head, then the body by Content-Length.
                let (head_end, length) = loop {
                    let Ok(n) = stream.read(&mut buf) else { return };
                    if n == 0 {
                        return;
                    }
                    data.extend_from_slice(&buf[..n]);
                    if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok());
                        break (end + 4, length);
                    }
                };
                // A body of known length, or chunked up to its last (empty) chunk.
                let complete = |data: &[u8]| match length {
                    Some(length) => data.len() >= head_end + length,
                    None => data.ends_with(b"0\r\n\r\n"),
                };
                while !complete(&data) {
                    let Ok(n) = stream.read(&mut buf) else { return };
                    if n == 0 {
                        break;
                    }
                    data.extend_from_slice(&buf[..n]);
                }
                let mut body = data[head_end..].to_vec();
                if length.is_none() {
                    body = dechunk(&body);
                }
                counted.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(delay);
                let body = format!("enriched:{}", String::from_utf8_lossy(&body));
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (port, requests)
}

/// The data of a chunked body.
fn dechunk(mut chunked: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = chunked.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            std::str::from_utf8(&chunked[..line_end])
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&chunked[start..(start + size).min(chunked.len())]);
        chunked = &chunked[(start + size + 2).min(chunked.len())..];
    }
    out
}

fn enrich_config(t: &Local, plugin: &str, port: u16, allowed: &str, extra: &str) -> String {
    with_plugin(
        t,
        plugin,
        &format!(
            "plugin_config = {{ url = \"http://127.0.0.1:{port}/enrich\" }}\nallowed_outbound_hosts = [{allowed}]\n{extra}"
        ),
    )
}

/// The plugin `name` in each language: the Rust component `rust`, and `plugins/python/<name>`
/// and `plugins/js/<name>` built.
fn in_every_language(rust: &str, name: &str) -> [(&'static str, String); 3] {
    let built = |lang: &str| {
        crate::lang_plugins::built(&format!("{lang}/{name}"))
            .display()
            .to_string()
    };
    [
        ("rust", rust.to_string()),
        ("python", built("python")),
        ("js", built("js")),
    ]
}

/// enrich-http in each language: Rust (the `wasip2` crate), Python (`hubwasm.http`), JavaScript
/// (`fetch` in an async handler).
fn enrich_plugins() -> [(&'static str, String); 3] {
    in_every_language(hubwasm_plugins::ENRICH_HTTP, "enrich-http")
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_http_reaches_an_allowed_host_only() {
    let (port, requests) = http_server(Duration::ZERO);
    let bodies: Vec<String> = (0..4).map(|i| format!("event-{i}")).collect();
    let mut seen = 0;
    for (lang, plugin) in enrich_plugins() {
        let t = Local::start(1).await;
        send_bodies_in(&t.endpoint, HUB, &bodies, t.path(), 1).await;
        let cfg = enrich_config(
            &t,
            &plugin,
            port,
            &format!("\"http://127.0.0.1:{port}\""),
            "",
        );
        let host = Host::run_until_idle(
            &format!("http-allowed-{lang}"),
            t.path(),
            &cfg,
            Duration::from_secs(120),
        );
        let log = host.log();
        seen += 4;
        assert_eq!(requests.load(Ordering::SeqCst), seen, "{lang}\n{log}");
        assert!(
            log.contains("enriched:event-3"),
            "{lang}: the response reached the plugin\n{log}"
        );
        assert!(log.contains("dead-lettered 0"), "{lang}\n{log}");

        // Another origin (the same server under another name) is refused, with a clear error,
        // and the server sees nothing.
        let t2 = Local::start(1).await;
        send_bodies_in(&t2.endpoint, HUB, &bodies, t2.path(), 1).await;
        let cfg = enrich_config(
            &t2,
            &plugin,
            port,
            "\"http://localhost:1\"",
            "[eventhub.failure]\nmax_attempts = 1\n",
        );
        let host = Host::run_until_idle(
            &format!("http-refused-{lang}"),
            t2.path(),
            &cfg,
            Duration::from_secs(120),
        );
        let log = host.log();
        assert_eq!(
            requests.load(Ordering::SeqCst),
            seen,
            "{lang}: no new request\n{log}"
        );
        assert!(
            log.contains("Outbound HTTP refused") && log.contains("allowed_outbound_hosts"),
            "{lang}: the host says what to allow\n{log}"
        );
        // The plugin's own error: Rust and Python get the WASI error code; JavaScript's `fetch`
        // rejects with a TypeError that carries no code.
        let plugin_error = match lang {
            "js" => "failed: NetworkError",
            _ => "failed: HTTP-request-denied",
        };
        assert!(
            log.contains(plugin_error),
            "{lang}: the plugin's error says the request failed\n{log}"
        );
        assert!(
            log.contains("dead-lettered 4"),
            "{lang}: refused events are not lost\n{log}"
        );
        t.endpoint.shutdown().await;
        t2.endpoint.shutdown().await;
    }
}

/// `hubwasm plugin test --allow-outbound-host` lets a replay reach a local service, and only it.
#[test]
fn plugin_test_allows_only_the_origins_it_is_given() {
    let (port, requests) = http_server(Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    std::fs::write(&events, "one\ntwo\n").unwrap();
    let plugin = crate::lang_plugins::built("python/enrich-http");
    let replay = |allow: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hubwasm"));
        cmd.args(["plugin", "test"])
            .arg(&plugin)
            .arg("--events")
            .arg(&events)
            .args(["--config", &format!("url=http://127.0.0.1:{port}/enrich")]);
        for origin in allow {
            cmd.args(["--allow-outbound-host", origin]);
        }
        let out = cmd.output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let allowed = replay(&[&format!("http://127.0.0.1:{port}")]);
    assert!(allowed.contains("2 events, 2 ok"), "{allowed}");
    assert!(allowed.contains("enriched:two"), "{allowed}");
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    let refused = replay(&["http://localhost:1"]);
    assert!(
        refused.contains("HTTP-request-denied") && refused.contains("2 failed"),
        "{refused}"
    );
    assert_eq!(requests.load(Ordering::SeqCst), 2, "no request was sent");
    let bad = replay(&["http://127.0.0.1:1/path"]);
    assert!(bad.contains("no path"), "{bad}");
}

/// Seconds since midnight of a log line starting with an RFC 3339 UTC timestamp
/// (`2026-12-03T10:55:03.106386Z ...`).
fn log_seconds(line: &str) -> Option<f64> {
    let time = line.get(11..26)?;
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_http_server_is_cut_at_the_call_timeout() {
    let (port, requests) = http_server(Duration::from_secs(30));
    for (at, (lang, plugin)) in enrich_plugins().into_iter().enumerate() {
        let t = Local::start(1).await;
        send_bodies_in(&t.endpoint, HUB, &["slow".to_string()], t.path(), 1).await;
        let cfg = enrich_config(
            &t,
            &plugin,
            port,
            &format!("\"http://127.0.0.1:{port}\""),
            "limits = { timeout = 1000 }\n[eventhub.failure]\nmax_attempts = 1\n",
        );
        let host = Host::run_until_idle(
            &format!("http-slow-{lang}"),
            t.path(),
            &cfg,
            Duration::from_secs(120),
        );
        let log = host.log();
        assert!(requests.load(Ordering::SeqCst) > at, "{lang}\n{log}");
        // The call is cut at its limit, long before the server answers: measured in the host's
        // own log, from the partition opening to the failure (the process's exit is not the
        // point here).
        let at_line = |needle: &str| {
            log.lines()
                .find(|l| l.contains(needle))
                .and_then(log_seconds)
                .unwrap_or_else(|| panic!("{lang}: no timed line with {needle:?}\n{log}"))
        };
        let cut_after = at_line("kind=\"timed-out\"") - at_line("Partition opened");
        assert!(
            (0.0..10.0).contains(&cut_after),
            "{lang}: cut {cut_after:.1} s after the partition opened\n{log}"
        );
        assert!(log.contains("dead-lettered 1"), "{lang}\n{log}");
        t.endpoint.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_output_pauses_the_partition_and_loses_nothing() {
    let t = Local::start(1).await;
    let bodies: Vec<String> = (0..5).map(|i| seed(i, 90)).collect();
    send_bodies_in(&t.endpoint, HUB, &bodies, t.path(), 1).await;
    let cfg = with_plugin(
        &t,
        hubwasm_plugins::FILTER_EMIT,
        &format!(
            "plugin_config = {{ output = \"nope\" }}\n{}",
            kept_output(&t)
        ),
    );
    let mut host = Host::start("unknown-output", t.path(), &cfg, &[]);
    eventually(
        "the partition to pause naming the output",
        Duration::from_secs(60),
        || {
            let log = host.log();
            log.contains("output `nope`") && log.contains("configured: kept")
        },
        &[&host],
    )
    .await;
    host.terminate();
    let cps = checkpoints(&t.store(), "$Default").await;
    assert!(
        cps.values().all(|c| c.is_none()),
        "no checkpoint moved: {cps:?}"
    );
    assert!(
        std::fs::read_dir(&t.dead).map(|d| d.count()).unwrap_or(0) == 0,
        "nothing dead-lettered"
    );
    t.endpoint.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_store_that_refuses_connections_pauses_and_loses_nothing() {
    let t = Local::start(1).await;
    send_bodies_in(
        &t.endpoint,
        HUB,
        &[r#"{"device":"a"}"#.to_string()],
        t.path(),
        1,
    )
    .await;
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = with_plugin(
        &t,
        hubwasm_plugins::COUNT_BY_KEY,
        &format!(
            "plugin_config = {{ field = \"device\" }}\n[eventhub.state]\nstore = \"redis\"\nurl = \"redis://127.0.0.1:{port}\"\n[eventhub.failure]\ninitial_backoff_ms = 100\nmax_backoff_ms = 300\n"
        ),
    );
    let mut host = Host::start("state-down", t.path(), &cfg, &[]);
    eventually(
        "the partition to wait for its state store",
        Duration::from_secs(60),
        || host.log().contains("Cannot load the partition's state"),
        &[&host],
    )
    .await;
    host.terminate();
    let log = host.log();
    assert!(
        log.contains(&format!("127.0.0.1:{port}")),
        "the error names the store\n{log}"
    );
    let cps = checkpoints(&t.store(), "$Default").await;
    assert!(cps.values().all(|c| c.is_none()), "{cps:?}");
    t.endpoint.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_value_over_the_limit_is_refused_to_the_plugin() {
    let t = Local::start(1).await;
    send_bodies_in(
        &t.endpoint,
        HUB,
        &[r#"{"device":"a"}"#.to_string()],
        t.path(),
        1,
    )
    .await;
    // count-by-key stores 8-byte counts: a 4-byte limit refuses the write.
    let cfg = with_plugin(
        &t,
        hubwasm_plugins::COUNT_BY_KEY,
        &format!(
            "plugin_config = {{ field = \"device\" }}\n{}max_value_bytes = 4\n[eventhub.failure]\nmax_attempts = 1\n",
            local_state(&t)
        ),
    );
    let host = Host::run_until_idle("state-too-large", t.path(), &cfg, Duration::from_secs(120));
    let log = host.log();
    assert!(
        log.contains("dead-lettered 1"),
        "kept in the dead letters, not lost\n{log}"
    );
    assert!(
        log.contains('4') && log.to_lowercase().contains("too large"),
        "{log}"
    );
    let store =
        hubwasm::effects::sqlite::SqliteState::open(&t.path().join("state.sqlite")).unwrap();
    let (_, rows) = store
        .load(&format!("localhost/{HUB}/$Default/0"))
        .await
        .unwrap();
    assert!(rows.is_empty(), "nothing written: {rows:?}");
    t.endpoint.shutdown().await;
}

/// The state commits before the checkpoint: a host that stops after the commit but before its
/// checkpoint is durable (simulated by removing the checkpoints) makes the next host receive
/// every event again; it skips what the state holds, and the counts do not double.
#[tokio::test(flavor = "multi_thread")]
async fn state_ahead_of_the_checkpoint_skips_what_it_holds() {
    let t = Local::start(2).await;
    let bodies: Vec<String> = (0..40)
        .map(|i| format!(r#"{{"device":"d-{}"}}"#, i % 3))
        .collect();
    send_bodies_in(&t.endpoint, HUB, &bodies, t.path(), 1).await;
    let cfg = with_plugin(
        &t,
        hubwasm_plugins::COUNT_BY_KEY,
        &format!(
            "plugin_config = {{ field = \"device\" }}\n{}",
            local_state(&t)
        ),
    );
    Host::run_until_idle("state-first", t.path(), &cfg, Duration::from_secs(120));
    let mut removed = 0;
    for entry in crate::dedupe::walk(&t.store_dir) {
        if entry.ends_with("checkpoint") && entry.is_dir() {
            std::fs::remove_dir_all(&entry).unwrap();
            removed += 1;
        }
    }
    assert_eq!(removed, 1, "one consumer group's checkpoints");
    let second = Host::run_until_idle("state-second", t.path(), &cfg, Duration::from_secs(120));
    let log = second.log();
    assert_eq!(
        log.matches("Skipped events the partition's state already holds")
            .count(),
        2,
        "each partition skips its 20 events\n{log}"
    );
    let store =
        hubwasm::effects::sqlite::SqliteState::open(&t.path().join("state.sqlite")).unwrap();
    let mut counts = BTreeMap::new();
    for p in 0..2 {
        let (position, rows) = store
            .load(&format!("localhost/{HUB}/$Default/{p}"))
            .await
            .unwrap();
        assert_eq!(position, Some(19));
        for (k, v) in rows {
            *counts.entry(k).or_insert(0) += u64::from_le_bytes(v.try_into().unwrap());
        }
    }
    let want: BTreeMap<String, u64> = [("count/d-0", 14), ("count/d-1", 13), ("count/d-2", 13)]
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect();
    assert_eq!(counts, want, "{log}");
    let cps = checkpoints(&t.store(), "$Default").await;
    assert_eq!(
        cps.get("0"),
        Some(&Some(19)),
        "checkpointed past the skipped events: {cps:?}"
    );
    t.endpoint.shutdown().await;
}

/// The Python and JavaScript count-by-key (their guest libraries' `state.add_u64`) count the
/// same events as the Rust one, each into its own consumer group's state.
#[tokio::test(flavor = "multi_thread")]
async fn python_and_javascript_plugins_keep_state_like_rust() {
    let t = Local::start(2).await;
    let bodies: Vec<String> = (0..30)
        .map(|i| match i % 4 {
            3 => "not json".to_string(),
            _ => format!(r#"{{"device":"d-{}","n":{i}}}"#, i % 5),
        })
        .collect();
    send_bodies_in(&t.endpoint, HUB, &bodies, t.path(), 1).await;
    let mut results = Vec::new();
    for (name, plugin) in in_every_language(hubwasm_plugins::COUNT_BY_KEY, "count-by-key") {
        let cfg = with_plugin(
            &t,
            &plugin,
            &format!(
                "consumer_group = \"{name}\"\nplugin_config = {{ field = \"device\" }}\nlimits = {{ timeout = 30000 }}\n[eventhub.state]\npath = \"{}\"\n",
                t.path().join(format!("state-{name}.sqlite")).display()
            ),
        );
        let host = Host::run_until_idle(
            &format!("lang-{name}"),
            t.path(),
            &cfg,
            Duration::from_secs(300),
        );
        assert!(host.log().contains("dead-lettered 0"), "{}", host.log());
        let store = hubwasm::effects::sqlite::SqliteState::open(
            &t.path().join(format!("state-{name}.sqlite")),
        )
        .unwrap();
        let mut counts = BTreeMap::new();
        for p in 0..2 {
            let (_, rows) = store
                .load(&format!("localhost/{HUB}/{name}/{p}"))
                .await
                .unwrap();
            for (k, v) in rows {
                *counts.entry(k).or_insert(0u64) += u64::from_le_bytes(v.try_into().unwrap());
            }
        }
        results.push((name, counts));
    }
    let want: u64 = bodies.iter().filter(|b| b.starts_with('{')).count() as u64;
    assert_eq!(results[0].1.values().sum::<u64>(), want, "{results:?}");
    assert_eq!(results[0].1.len(), 5, "{results:?}");
    assert_eq!(results[1].1, results[0].1, "Python as Rust");
    assert_eq!(results[2].1, results[0].1, "JavaScript as Rust");
    t.endpoint.shutdown().await;
}

/// `first-seen` answers true once per key: repeats within a batch and in later runs answer
/// false, and the keys of a call that failed are not recorded (its retry sees them as new).
#[tokio::test(flavor = "multi_thread")]
async fn first_seen_is_true_once_and_records_only_committed_calls() {
    let t = Local::start(1).await;
    let dedupe = format!(
        "[eventhub.dedupe]\npath = \"{}\"\n",
        t.path().join("keys.sqlite").display()
    );
    let cfg = with_plugin(
        &t,
        hubwasm_plugins::TEST_FIRST_SEEN,
        &format!("plugin_config = {{ fail_once = \"f\" }}\n{dedupe}"),
    );
    let bodies = |b: &[&str]| b.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    send_bodies_in(
        &t.endpoint,
        HUB,
        &bodies(&["a", "b", "a", "f"]),
        t.path(),
        4,
    )
    .await;
    let first = Host::run_until_idle("first-seen-1", t.path(), &cfg, Duration::from_secs(120));
    let log = first.log();
    let at = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("{needle}\n{log}"))
    };
    assert!(
        at("failing body=f first=true") < at("first body=f"),
        "a failed call records nothing\n{log}"
    );
    assert!(log.contains("again body=a"), "a repeat in the batch\n{log}");
    assert!(
        !log.contains("again body=b") && !log.contains("again body=f"),
        "{log}"
    );

    // A later run (another host) sees every committed key, and only those.
    let cfg = cfg.replace("fail_once = \"f\"", "fail_once = \"none\"");
    send_bodies_in(&t.endpoint, HUB, &bodies(&["a", "f", "z"]), t.path(), 3).await;
    let second = Host::run_until_idle("first-seen-2", t.path(), &cfg, Duration::from_secs(120));
    let log = second.log();
    for line in ["again body=a", "again body=f", "first body=z"] {
        assert!(log.contains(line), "{line}\n{log}");
    }
    assert!(
        !log.contains("first body=a") && !log.contains("first body=f"),
        "{log}"
    );
    t.endpoint.shutdown().await;
}
