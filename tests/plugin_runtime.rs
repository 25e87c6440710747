//! End-to-end tests of the plugin runtime with real components built from `plugins/`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hubwasm::event::{Event, PartitionContext};
use hubwasm::plugin::{
    CloseReason, FailureKind, LoadError, PluginError, PluginHandle, PluginKind, PluginSpec,
    Runtime, RuntimeOptions,
};

fn runtime() -> Runtime {
    runtime_with(|_| {})
}

fn runtime_with(f: impl FnOnce(&mut RuntimeOptions)) -> Runtime {
    let mut options = RuntimeOptions {
        cache_dir: Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache")),
        max_instances: 32,
        ..RuntimeOptions::default()
    };
    f(&mut options);
    Runtime::new(options).expect("runtime")
}

fn spec(path: &str, config: &[(&str, &str)]) -> PluginSpec {
    let mut spec = PluginSpec::new(path);
    spec.config = config
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    spec
}

fn ctx() -> PartitionContext {
    PartitionContext {
        namespace: "test.local".into(),
        event_hub: "hub".into(),
        consumer_group: "$Default".into(),
        partition_id: "3".into(),
    }
}

fn seed_event(n: i64) -> Event {
    let body = format!(
        r#"{{"event_id": "00000000-0000-4000-8000-{n:012}", "message_id": {n}, "timestamp": "2026-11-24T12:00:00Z", "value": {}, "data": "Test message #{n}"}}"#,
        n * 10
    );
    Event::new(body.into_bytes(), n, (n * 150).to_string())
}

fn events(bodies: &[&str]) -> Vec<Event> {
    bodies
        .iter()
        .enumerate()
        .map(|(i, b)| Event::new(b.as_bytes().to_vec(), i as i64, (i * 10).to_string()))
        .collect()
}

async fn load(runtime: &Runtime, spec: PluginSpec) -> PluginHandle {
    PluginHandle::new(runtime.load(spec).await.expect("plugin loads"))
}

#[tokio::test]
async fn json_filter_handles_seed_events_and_rejects_a_malformed_one_in_place() {
    let rt = runtime();
    let handle = load(
        &rt,
        spec(hubwasm_plugins::JSON_FILTER, &[("min_value", "50")]),
    )
    .await;
    assert_eq!(handle.current().kind(), PluginKind::Batch);
    let mut worker = handle.worker();

    let batch: Vec<Event> = (1..=20).map(seed_event).collect();
    worker
        .handle_batch(&ctx(), &batch)
        .await
        .expect("all seed events handled");

    let mut batch: Vec<Event> = (1..=5).map(seed_event).collect();
    batch[3].body = b"{not json".to_vec();
    let failure = worker.handle_batch(&ctx(), &batch).await.unwrap_err();
    assert_eq!(
        failure.handled, 3,
        "events before the bad one succeeded: {failure}"
    );
    assert!(
        matches!(&failure.error, PluginError::Rejected { message, .. } if message.contains("not a seed event")),
        "{failure}"
    );
    assert_eq!(failure.error.kind(), FailureKind::Rejected);
}

/// Components built against contract 0.1.0 (kept as they were built, before the Rust guest moved
/// to 0.2.0) run unchanged beside 0.2.0 ones, with the same verdicts.
#[tokio::test]
async fn plugins_built_against_0_1_0_run_unchanged_beside_0_2_0() {
    let rt = runtime();
    let fixture = |name: &str| {
        format!(
            "{}/../tests/fixtures/v0.1/{name}.wasm",
            env!("CARGO_MANIFEST_DIR")
        )
    };
    let old = load(&rt, spec(&fixture("json-filter"), &[("min_value", "50")])).await;
    let new = load(
        &rt,
        spec(hubwasm_plugins::JSON_FILTER, &[("min_value", "50")]),
    )
    .await;
    assert_eq!(old.current().info().contract_version, "0.1.0");
    assert_eq!(new.current().info().contract_version, "0.2.0");
    let mut batch: Vec<Event> = (1..=8).map(seed_event).collect();
    batch[5].body = b"{not json".to_vec();
    for handle in [&old, &new] {
        let failure = handle
            .worker()
            .handle_batch(&ctx(), &batch)
            .await
            .unwrap_err();
        assert_eq!(failure.handled, 5, "{failure}");
        assert_eq!(failure.error.kind(), FailureKind::Rejected, "{failure}");
    }
    // The 0.1.0 fail-nth fails its configured event, retryable, as it always did.
    let fail = load(&rt, spec(&fixture("fail-nth"), &[("fail_at", "3")])).await;
    let failure = fail
        .worker()
        .handle_batch(&ctx(), &batch[..4])
        .await
        .unwrap_err();
    assert_eq!(failure.handled, 2, "{failure}");
}

#[tokio::test]
async fn batch_failure_says_how_far_the_batch_got_and_carries_retry_after() {
    let rt = runtime();
    let handle = load(
        &rt,
        spec(
            hubwasm_plugins::TEST_FAIL_NTH,
            &[("fail_at", "5"), ("retry_after_ms", "250")],
        ),
    )
    .await;
    let mut worker = handle.worker();
    let batch: Vec<Event> = (0..10).map(seed_event).collect();
    let failure = worker.handle_batch(&ctx(), &batch).await.unwrap_err();
    assert_eq!(failure.handled, 5);
    match failure.error {
        PluginError::Retryable { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_millis(250)))
        }
        other => panic!("expected retryable, got {other}"),
    }
    // The instance is still healthy: events after the failing one succeed.
    worker.handle_batch(&ctx(), &batch[6..]).await.unwrap();
    assert_eq!(worker.instances_created(), 1);
}

#[tokio::test]
async fn trapping_plugin_is_replaced_and_the_next_call_succeeds() {
    let rt = runtime();
    let handle = load(&rt, spec(hubwasm_plugins::TEST_TRAP, &[])).await;
    let mut worker = handle.worker();
    worker
        .handle_batch(&ctx(), &events(&["fine"]))
        .await
        .unwrap();

    let failure = worker
        .handle_batch(&ctx(), &events(&["ok", "trap"]))
        .await
        .unwrap_err();
    match &failure.error {
        PluginError::Trapped {
            stderr, backtrace, ..
        } => {
            assert!(
                stderr.contains("asked to trap"),
                "panic message reported: {failure}"
            );
            // The backtrace skips the panic machinery and shows the plugin's frames, down to
            // the export the host called (the plugin's own function is inlined into it).
            assert!(
                backtrace.contains("panic/abort frames skipped")
                    && backtrace.contains("hubwasm:plugin/batch-handler@0.2.0#handle-batch"),
                "the plugin's frames: {backtrace}"
            );
            assert!(failure.to_string().contains("wasm backtrace:"), "{failure}");
        }
        other => panic!("expected a trap, got {other}"),
    }
    assert_eq!(failure.error.kind(), FailureKind::Crashed);

    worker
        .handle_batch(&ctx(), &events(&["fine again"]))
        .await
        .unwrap();
    assert_eq!(
        worker.instances_created(),
        2,
        "the trapped instance was replaced"
    );
}

#[tokio::test]
async fn endless_loop_is_stopped_within_twice_the_timeout() {
    let rt = runtime();
    let timeout = Duration::from_millis(500);
    let mut spec = spec(hubwasm_plugins::TEST_LOOP, &[]);
    spec.limits.timeout = timeout;
    let handle = load(&rt, spec).await;
    let mut worker = handle.worker();
    worker.open(&ctx()).await.unwrap(); // instantiate outside the timed call

    let started = Instant::now();
    let failure = worker
        .handle_batch(&ctx(), &events(&["x"]))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(failure.error, PluginError::TimedOut { timeout: t, .. } if t == timeout),
        "{failure}"
    );
    assert!(took >= timeout, "stopped early: {took:?}");
    assert!(
        took < 2 * timeout,
        "stopped after {took:?}, limit {timeout:?}"
    );
}

/// A call that computes for its whole timeout yields at every epoch tick: on a one-thread
/// runtime, other tasks (another tenant's partitions) keep running while it loops.
#[tokio::test(flavor = "current_thread")]
async fn a_looping_call_yields_so_other_tasks_keep_running() {
    let rt = runtime();
    let timeout = Duration::from_millis(500);
    let mut spec = spec(hubwasm_plugins::TEST_LOOP, &[]);
    spec.limits.timeout = timeout;
    let handle = load(&rt, spec).await;
    let mut worker = handle.worker();
    worker.open(&ctx()).await.unwrap();

    let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = ticks.clone();
    let other = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let failure = worker
        .handle_batch(&ctx(), &events(&["x"]))
        .await
        .unwrap_err();
    assert!(
        matches!(failure.error, PluginError::TimedOut { .. }),
        "{failure}"
    );
    let ran = ticks.load(std::sync::atomic::Ordering::Relaxed);
    other.abort();
    // 500 ms of looping with a yield every 10 ms tick: the other task ran dozens of times
    // (without yielding it would not have run at all before the call ended).
    assert!(ran >= 20, "the other task ran {ran} times during the call");
}

#[tokio::test]
async fn fuel_limit_stops_an_endless_loop() {
    let rt = runtime_with(|o| o.fuel = true);
    let mut spec = spec(hubwasm_plugins::TEST_LOOP, &[]);
    spec.limits.fuel = Some(5_000_000);
    let handle = load(&rt, spec).await;
    let failure = handle
        .worker()
        .handle_batch(&ctx(), &events(&["x"]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            failure.error,
            PluginError::OutOfFuel {
                fuel: 5_000_000,
                ..
            }
        ),
        "{failure}"
    );
}

#[tokio::test]
async fn allocation_bomb_is_stopped_at_the_memory_limit_named_in_the_error() {
    let rt = runtime();
    let mut spec = spec(hubwasm_plugins::TEST_ALLOC_BOMB, &[]);
    spec.limits.memory_bytes = 32 << 20;
    let handle = load(&rt, spec).await;
    let failure = handle
        .worker()
        .handle_batch(&ctx(), &events(&["x"]))
        .await
        .unwrap_err();
    match &failure.error {
        PluginError::MemoryLimit {
            limit, requested, ..
        } => {
            assert_eq!(*limit, 32 << 20);
            assert!(*requested > *limit);
        }
        other => panic!("expected the memory limit, got {other}"),
    }
    assert!(
        failure
            .to_string()
            .contains("memory limit of 33554432 bytes"),
        "{failure}"
    );
}

#[tokio::test]
async fn malformed_verdict_is_refused() {
    let rt = runtime();
    let handle = load(&rt, spec(hubwasm_plugins::TEST_BAD_VERDICT, &[])).await;
    let failure = handle
        .worker()
        .handle_batch(&ctx(), &events(&["a", "b"]))
        .await
        .unwrap_err();
    assert_eq!(failure.handled, 0, "nothing may be checkpointed");
    assert!(
        matches!(&failure.error, PluginError::MalformedVerdict { detail, .. } if detail.contains("the batch has 2 events")),
        "{failure}"
    );
}

/// `init` runs when the plugin is loaded: a plugin that refuses its config is refused there,
/// with its own message, before any event could reach it.
#[tokio::test]
async fn init_refusing_its_config_fails_the_load_and_names_the_key() {
    let rt = runtime();
    let err = rt
        .load(spec(hubwasm_plugins::JSON_FILTER, &[("min_value", "lots")]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LoadError::InitRefused { message, .. } if message.contains("min_value")),
        "{err}"
    );
    assert!(err.to_string().contains("plugin_config"), "{err}");
}

/// A call blocked in a host function (here the plugin sleeps in WASI) is stopped by the wall
/// clock at its limit, not when the sleep ends; the instance is replaced, as after a trap.
#[tokio::test]
async fn a_call_sleeping_in_the_host_is_stopped_at_its_time_limit() {
    let rt = runtime();
    let timeout = Duration::from_millis(200);
    let mut spec = spec(hubwasm_plugins::TEST_RECORD, &[("sleep_ms", "30000")]);
    spec.limits.timeout = timeout;
    let handle = load(&rt, spec).await;
    let mut worker = handle.worker();
    worker.open(&ctx()).await.unwrap();

    let started = Instant::now();
    let failure = worker
        .handle_batch(&ctx(), &events(&["a", "b"]))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(failure.error, PluginError::TimedOut { timeout: t, .. } if t == timeout),
        "{failure}"
    );
    assert_eq!(failure.handled, 0);
    // Far below the 30 s sleep (the bound is loose on purpose: this is not a benchmark).
    assert!(took < Duration::from_secs(10), "stopped after {took:?}");
    assert_eq!(worker.instances_created(), 1);
    let again = worker
        .handle_batch(&ctx(), &events(&["c"]))
        .await
        .unwrap_err();
    assert!(
        matches!(again.error, PluginError::TimedOut { .. }),
        "{again}"
    );
    assert_eq!(
        worker.instances_created(),
        2,
        "the timed-out instance was discarded and replaced"
    );
}

#[tokio::test]
async fn per_event_world_is_detected_and_called_once_per_event() {
    let rt = runtime();
    let handle = load(&rt, spec(hubwasm_plugins::EVENT_LOGGER, &[])).await;
    assert_eq!(handle.current().kind(), PluginKind::Event);
    // Every Rust plugin is built against contract 0.2.0 (0.1.0: tests/fixtures/v0.1).
    assert_eq!(handle.current().info().contract_version, "0.2.0");
    let mut worker = handle.worker();
    worker
        .handle_batch(&ctx(), &events(&["a", "b", "c"]))
        .await
        .unwrap();
    let failure = worker
        .handle_batch(&ctx(), &events(&["a", "", "c"]))
        .await
        .unwrap_err();
    assert_eq!(failure.handled, 1);
    assert!(
        matches!(failure.error, PluginError::Rejected { .. }),
        "{failure}"
    );
}

/// Every escape attempt is denied by the sandbox itself: the network probes aim at a TCP
/// listener and a UDP socket of this test, which receive nothing, and each probe reports WASI's
/// access denial (not "unsupported"), so the test would notice a sandbox that let them through.
#[tokio::test(flavor = "current_thread")]
async fn plugin_cannot_read_host_files_environment_or_network() {
    // Something secret in the host environment that must not leak.
    std::env::set_var("HUBWASM_TEST_SECRET", "s3cr3t");
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let tcp_port = tcp.local_addr().unwrap().port().to_string();
    let udp_port = udp.local_addr().unwrap().port().to_string();

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = runtime();
    let handle = load(
        &rt,
        spec(
            hubwasm_plugins::TEST_SANDBOX,
            &[("tcp_port", &tcp_port), ("udp_port", &udp_port)],
        ),
    )
    .await;
    // The plugin rejects the event if any escape attempt succeeded.
    handle
        .worker()
        .handle_batch(&ctx(), &events(&["probe"]))
        .await
        .expect("no sandbox escape");
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let probe_line = |probe: &str| {
        log.lines()
            .find(|l| l.contains(&format!("sandbox: {probe}:")))
            .unwrap_or_else(|| panic!("no {probe} probe in the log:\n{log}"))
            .to_string()
    };
    for probe in ["tcp connect", "udp send"] {
        let line = probe_line(probe);
        assert!(
            line.contains("denied (\"PermissionDenied"),
            "{probe} must be refused by the sandbox: {line}"
        );
    }
    // Name lookups fail as a resolver error inside the guest (no error kind for a denial).
    assert!(probe_line("dns lookup").contains("denied ("), "{log}");
    assert!(log.contains("sandbox: read /etc/passwd: denied"), "{log}");
    assert!(!log.contains("s3cr3t"), "{log}");
    assert_eq!(
        tcp.accept().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "nothing connected"
    );
    let mut buf = [0u8; 16];
    assert_eq!(
        udp.recv_from(&mut buf).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "nothing arrived"
    );
}

/// A tracing writer that collects everything logged on this thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn plugin_stdout_and_log_calls_appear_in_the_host_log_tagged_with_its_name() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let rt = runtime();
    let mut spec = spec(hubwasm_plugins::EVENT_LOGGER, &[]);
    spec.name = "tenant-a-logger".into();
    let handle = load(&rt, spec).await;
    handle
        .worker()
        .handle_batch(&ctx(), &events(&["hello", "world"]))
        .await
        .unwrap();

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let stdout_line = log
        .lines()
        .find(|l| l.contains("event seq=1"))
        .unwrap_or_else(|| panic!("plugin stdout not in the log:\n{log}"));
    assert!(stdout_line.contains("tenant-a-logger"), "{stdout_line}");
    assert!(stdout_line.contains("stdout"), "{stdout_line}");
    assert!(
        log.lines()
            .any(|l| l.contains("tenant-a-logger") && l.contains("sequence_number=1")),
        "log import with fields not in the log:\n{log}"
    );
}

#[tokio::test]
async fn swap_replaces_the_plugin_before_the_next_call() {
    let rt = runtime();
    let handle = load(&rt, spec(hubwasm_plugins::JSON_FILTER, &[])).await;
    let mut worker = handle.worker();
    worker.open(&ctx()).await.unwrap();
    worker.handle_batch(&ctx(), &[seed_event(0)]).await.unwrap();

    let failing = rt
        .load(spec(
            hubwasm_plugins::TEST_FAIL_NTH,
            &[("fail_at", "0"), ("kind", "rejected")],
        ))
        .await
        .unwrap();
    let old = handle.swap(failing);
    assert_eq!(old.name(), "json_filter");
    assert_eq!(handle.generation(), 1);

    let failure = worker
        .handle_batch(&ctx(), &[seed_event(0)])
        .await
        .unwrap_err();
    assert_eq!(failure.error.plugin(), "test_fail_nth", "{failure}");
    assert_eq!(worker.instances_created(), 2);
    worker.close(CloseReason::Shutdown).await.unwrap();
}

#[tokio::test]
async fn tenants_with_different_limits_run_side_by_side_in_one_runtime() {
    let rt = runtime();
    let mut looping = spec(hubwasm_plugins::TEST_LOOP, &[]);
    looping.name = "tenant-loop".into();
    looping.limits.timeout = Duration::from_millis(200);
    let mut filter = spec(hubwasm_plugins::JSON_FILTER, &[]);
    filter.name = "tenant-filter".into();
    let looping = load(&rt, looping).await;
    let filter = load(&rt, filter).await;

    let a =
        tokio::spawn(async move { looping.worker().handle_batch(&ctx(), &events(&["x"])).await });
    let b = tokio::spawn(async move {
        let batch: Vec<Event> = (0..100).map(seed_event).collect();
        filter.worker().handle_batch(&ctx(), &batch).await
    });
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let a = a.unwrap_err();
    assert!(matches!(a.error, PluginError::TimedOut { .. }), "{a}");
    assert_eq!(a.error.plugin(), "tenant-loop");
    b.expect("the other tenant is unaffected");
}

#[tokio::test]
async fn compiled_components_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let options = |dir: &Path| RuntimeOptions {
        cache_dir: Some(dir.to_path_buf()),
        max_instances: 4,
        ..RuntimeOptions::default()
    };
    let first = Runtime::new(options(dir.path())).unwrap();
    let plugin = first.load(spec(hubwasm_plugins::NOOP, &[])).await.unwrap();
    assert!(!plugin.from_cache());
    assert_eq!(cache_entries(dir.path()).len(), 1);

    let second = Runtime::new(options(dir.path())).unwrap();
    let plugin = second.load(spec(hubwasm_plugins::NOOP, &[])).await.unwrap();
    assert!(plugin.from_cache(), "second load comes from the cache");
    PluginHandle::new(plugin)
        .worker()
        .handle_batch(&ctx(), &events(&["x"]))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_corrupt_cache_entry_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let options = RuntimeOptions {
        cache_dir: Some(dir.path().to_path_buf()),
        max_instances: 4,
        ..RuntimeOptions::default()
    };
    Runtime::new(options.clone())
        .unwrap()
        .load(spec(hubwasm_plugins::NOOP, &[]))
        .await
        .unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let plugin = Runtime::new(options)
        .unwrap()
        .load(spec(hubwasm_plugins::NOOP, &[]))
        .await
        .unwrap();
    assert!(!plugin.from_cache());
}

/// The compiled entries (`*.cwasm`) of a cache directory.
fn cache_entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect()
}

/// The cache loads only entries it wrote: a valid artifact of *another* plugin swapped in under
/// an entry's name (native code wasmtime would run), an entry that others may write, and one
/// owned by another user are all refused and the plugin is compiled again.
#[tokio::test]
async fn the_cache_refuses_entries_it_did_not_write() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let options = RuntimeOptions {
        cache_dir: Some(dir.path().to_path_buf()),
        max_instances: 4,
        ..RuntimeOptions::default()
    };
    let load = |path: &'static str| {
        let options = options.clone();
        async move {
            Runtime::new(options)
                .unwrap()
                .load(spec(path, &[]))
                .await
                .unwrap()
        }
    };
    load(hubwasm_plugins::NOOP).await;
    let noop_entry = cache_entries(dir.path()).pop().unwrap();
    load(hubwasm_plugins::TEST_TRAP).await;
    let trap_entry = cache_entries(dir.path())
        .into_iter()
        .find(|p| *p != noop_entry)
        .unwrap();
    assert!(load(hubwasm_plugins::NOOP).await.from_cache());

    // 1. Another plugin's valid artifact under noop's name.
    std::fs::copy(&trap_entry, &noop_entry).unwrap();
    let plugin = load(hubwasm_plugins::NOOP).await;
    assert!(!plugin.from_cache(), "a swapped artifact must not load");
    PluginHandle::new(plugin)
        .worker()
        .handle_batch(&ctx(), &events(&["x"]))
        .await
        .expect("noop's own code runs");
    assert!(load(hubwasm_plugins::NOOP).await.from_cache(), "rewritten");

    // 2. An entry others may write.
    std::fs::set_permissions(&noop_entry, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(!load(hubwasm_plugins::NOOP).await.from_cache());
    assert!(load(hubwasm_plugins::NOOP).await.from_cache(), "rewritten");

    // 3. An entry of another user (only root can make one; CI runs as root).
    if std::os::unix::fs::chown(&noop_entry, Some(4242), Some(4242)).is_ok() {
        assert!(!load(hubwasm_plugins::NOOP).await.from_cache());
        assert!(load(hubwasm_plugins::NOOP).await.from_cache(), "rewritten");
    }
}

async fn load_err(path: &Path) -> LoadError {
    runtime()
        .load(PluginSpec::new(path))
        .await
        .expect_err("must be refused")
}

/// A plugin that needs an import the sandbox does not provide is refused at load, naming it.
#[tokio::test]
async fn a_component_with_an_unknown_import_is_refused_naming_it() {
    let err = load_err(Path::new(hubwasm_plugins::TEST_UNKNOWN_IMPORT)).await;
    assert!(matches!(err, LoadError::UnsupportedImport { .. }), "{err}");
    assert!(
        err.to_string().contains("test:unknown-import/vault"),
        "{err}"
    );
}

#[tokio::test]
async fn component_of_another_world_is_refused_naming_the_expected_exports() {
    let err = load_err(Path::new(hubwasm_plugins::TEST_WRONG_WORLD)).await;
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("hubwasm:plugin/batch-handler@V"), "{msg}");
    assert!(msg.contains("0.2.0 or 0.1.0"), "{msg}");
    assert!(msg.contains("greet"), "names what it found: {msg}");
}

#[tokio::test]
async fn component_of_another_contract_version_is_refused_naming_both_versions() {
    let err = load_err(Path::new(hubwasm_plugins::TEST_WRONG_VERSION)).await;
    match &err {
        LoadError::WrongContractVersion {
            expected, found, ..
        } => {
            assert_eq!(expected, "0.1.0 and 0.2.0");
            assert_eq!(found, "0.9.0");
        }
        other => panic!("expected a version error, got {other}"),
    }
    assert!(err.to_string().contains("hubwasm:plugin@0.9.0"), "{err}");
}

#[tokio::test]
async fn core_module_and_non_wasm_files_are_refused_with_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let err = load_err(&core).await;
    assert!(matches!(err, LoadError::CoreModule { .. }), "{err}");
    assert!(err.to_string().contains("not a component"), "{err}");

    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, "hello, I am not wasm").unwrap();
    let err = load_err(&text).await;
    assert!(matches!(err, LoadError::NotWasm { .. }), "{err}");
    assert!(err.to_string().contains("notes.wasm"), "{err}");

    let err = load_err(&dir.path().join("missing.wasm")).await;
    assert!(matches!(err, LoadError::Read { .. }), "{err}");
}

#[tokio::test]
async fn every_event_field_reaches_the_plugin_intact() {
    use hubwasm::event::PropertyValue;
    let rt = runtime();
    let handle = load(&rt, spec(hubwasm_plugins::TEST_DESCRIBE, &[("at", "2")])).await;
    let mut batch = events(&["first", "second", "third {json}"]);
    batch[1].partition_key = Some("not-this-one".into());
    let third = &mut batch[2];
    third.sequence_number = 1_000_000_000_007;
    third.offset = "4294967296000".into();
    third.enqueued_time_ms = 1_764_000_000_123;
    third.partition_key = Some("device-42".into());
    third.content_type = Some("application/json".into());
    third.correlation_id = None;
    third.message_id = Some("m-1".into());
    third.properties = vec![
        ("kind".into(), PropertyValue::Text("reading".into())),
        ("count".into(), PropertyValue::Int(-3)),
        ("ok".into(), PropertyValue::Bool(true)),
        ("ratio".into(), PropertyValue::Double(0.5)),
        ("raw".into(), PropertyValue::Binary(vec![1, 2])),
        ("at".into(), PropertyValue::Timestamp(17)),
        (
            "id".into(),
            PropertyValue::Uuid("6513270e-269e-4d37-b2a7-4de452e6b438".into()),
        ),
        ("nothing".into(), PropertyValue::Null),
    ];
    let failure = handle
        .worker()
        .handle_batch(&ctx(), &batch)
        .await
        .unwrap_err();
    assert_eq!(failure.handled, 2);
    let PluginError::Rejected { message, .. } = failure.error else {
        panic!("expected the description, got {failure}");
    };
    assert_eq!(
        message,
        "partition=test.local/hub/$Default/3 seq=1000000000007 offset=4294967296000 \
         enqueued=1764000000123 body=third {json} key=Some(\"device-42\") \
         content_type=Some(\"application/json\") correlation_id=None message_id=Some(\"m-1\") \
         properties=[kind=text:reading,count=int:-3,ok=bool:true,ratio=double:0.5,\
         raw=binary:[1, 2],at=timestamp:17,id=uuid:6513270e-269e-4d37-b2a7-4de452e6b438,\
         nothing=null]"
    );
}
