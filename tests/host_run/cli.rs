//! The command line as a user meets it: the embedded default, `hubwasm status`, config errors.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::*;

/// The README's first command in short: the embedded default (no config) takes the sample events
/// in, handles and checkpoints them, exits by itself; `hubwasm status` then opens the embedded
/// endpoint's data directory itself to show checkpoints and lag.
#[test]
fn the_embedded_default_runs_end_to_end_and_status_reads_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let events = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/events/seed-sample.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_hubwasm"))
        .current_dir(dir.path())
        .args(["run", "--plugin", hubwasm_plugins::TEST_RECORD, "--send"])
        .arg(&events)
        .args(["--exit-when-idle", "1"])
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    let handled: BTreeSet<(String, i64)> = handled_in(&log, "$Default").into_iter().collect();
    assert_eq!(
        handled,
        all_events(4, 5),
        "the 20 sample events, 5 per partition\n{log}"
    );
    assert!(log.contains("handled 20"), "the final summary: {log}");

    let mut status = Command::new(env!("CARGO_BIN_EXE_hubwasm"));
    status.current_dir(dir.path()).arg("status");
    assert_status_rows(status, 4, ["-", "4", "4", "0"]);
}

/// Without --plugin the embedded default runs the sample plugin (json-filter); when it is not
/// built, the error says where it looked and how to build it.
#[test]
fn without_a_plugin_the_embedded_default_runs_the_sample_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let events = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/events/seed-sample.jsonl");
    let run = |sample: &Path| {
        Command::new(env!("CARGO_BIN_EXE_hubwasm"))
            .current_dir(dir.path())
            .env("HUBWASM_SAMPLE_PLUGIN", sample)
            .args(["run", "--send"])
            .arg(&events)
            .args(["--exit-when-idle", "1"])
            .output()
            .unwrap()
    };
    let out = run(Path::new(hubwasm_plugins::JSON_FILTER));
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    assert!(log.contains("running the sample plugin"), "{log}");
    assert!(log.contains("plugin=\"json_filter\""), "{log}");
    assert!(log.contains("handled 20"), "{log}");

    let missing = dir.path().join("not-built/json_filter.wasm");
    let out = run(&missing);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(err.contains("scripts/build-plugins.sh"), "{err}");
}

#[test]
fn config_errors_name_the_line_and_plugin_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[eventhub]]\nname = \"x\"\nembedded = true\nplugin = \"p.wasm\"\nmax_batch_size = -3\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hubwasm"))
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 5"), "{err}");

    std::fs::write(
        &path,
        "[embedded]\nlisten = \"127.0.0.1:0\"\ndata = \"hub\"\n[checkpoints]\nstore = \"local\"\npath = \"cp\"\n[[eventhub]]\nname = \"events\"\nembedded = true\nplugin = \"missing.wasm\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hubwasm"))
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.wasm"), "{err}");
}

/// `examples/hubwasm-tenants.toml` runs as shipped: both tenants' consumer groups exist on the
/// embedded endpoint, `--send` writes the file once to the event hub the two groups read, and
/// each group handles every event.
#[test]
fn the_tenants_example_runs_as_shipped() {
    let dir = tempfile::tempdir().unwrap();
    let examples = dir.path().join("examples");
    std::fs::create_dir_all(examples.join("events")).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for file in ["hubwasm-tenants.toml", "events/seed-sample.jsonl"] {
        std::fs::copy(shipped.join(file), examples.join(file)).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_hubwasm"))
        .current_dir(&examples)
        .env("HUBWASM_SAMPLE_PLUGIN", hubwasm_plugins::JSON_FILTER)
        .env("ACME_API_KEY", "acme-key")
        .env("GLOBEX_API_KEY", "globex-key")
        .args([
            "run",
            "--config",
            "hubwasm-tenants.toml",
            "--admin",
            "127.0.0.1:0",
        ])
        .args([
            "--send",
            "events/seed-sample.jsonl",
            "--exit-when-idle",
            "1",
        ])
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    assert_eq!(
        log.matches("sent 20 events from").count(),
        1,
        "the file goes to the event hub once: {log}"
    );
    assert!(
        log.contains("handled 40, failures 0, dead-lettered 0"),
        "20 events for each tenant's group: {log}"
    );
    assert!(!log.contains("NotFound"), "{log}");
}

/// `hubwasm send --file` sends every line unless --count says otherwise, and an event near the
/// hub's maximum message size goes through at a batch size of 1 (the SDK's batch counts a
/// first event twice, so such an event is sent on its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_sends_the_whole_file_and_events_up_to_the_maximum_size() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = start_endpoint(&dir.path().join("hub"), 1).await;
    let file = dir.path().join("events.jsonl");
    let mut lines: Vec<String> = (0..14).map(|i| format!("{{\"n\":{i}}}")).collect();
    lines.push(format!("{{\"big\":\"{}\"}}", "x".repeat(900_000)));
    std::fs::write(&file, lines.join("\n")).unwrap();
    let send = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hubwasm"))
            .args([
                "send",
                "--connection-string",
                &endpoint.connection_string(HUB),
            ])
            .arg("--file")
            .arg(&file)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = send(&[]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("sent 15 events"), "{text}");
    let out = send(&["--count", "3"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("sent 3 events"), "{text}");
    // Over the hub's maximum: refused with what to do.
    std::fs::write(&file, format!("{{\"huge\":\"{}\"}}", "x".repeat(1_200_000))).unwrap();
    let out = send(&[]);
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("maximum message size"), "{text}");
}

/// A consumer group that does not exist on the event hub is one clear line, shown in /status
/// and failing /readyz, tried again at the balancing interval; the event hub's other consumer
/// group is consumed meanwhile, untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_consumer_group_is_one_clear_line_and_fails_readiness() {
    use hubwasm::admin::client::request;
    let world = Local::start(2).await;
    send(&world.endpoint, 20, None).await;
    let config = world.config("")
        + &format!(
            "\n[[eventhub]]\nname = \"{HUB}\"\nconnection_string = \"{}\"\nplugin = \"{}\"\n\
             consumer_group = \"nope\"\n[eventhub.balancing]\nupdate_interval_ms = 1000\n\
             ownership_expiry_ms = 3000\n\n[admin]\nlisten = \"127.0.0.1:0\"\n",
            world.endpoint.connection_string(HUB),
            hubwasm_plugins::TEST_RECORD
        );
    let host = Host::start("missing-group", world.path(), &config, &[]);
    let admin = || {
        let log = host.log();
        let at = log.find("admin API on http://")? + "admin API on http://".len();
        let rest = &log[at..];
        Some(rest[..rest.find(char::is_whitespace)?].to_string())
    };
    eventually(
        "the other group's 20 events and the missing group's line",
        Duration::from_secs(60),
        || {
            host.handled("$Default").len() >= 20
                && host.log().contains("consumer group `nope` does not exist")
        },
        &[&host],
    )
    .await;
    let addr = admin().unwrap();
    let ready = request(&addr, "GET", "/readyz", None, None, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(
        ready.body.contains("consumer group `nope` does not exist"),
        "{}",
        ready.body
    );
    let status = request(&addr, "GET", "/status", None, None, Duration::from_secs(10))
        .await
        .unwrap();
    let status: hubwasm::admin::Status = serde_json::from_str(&status.body).unwrap();
    let missing = status
        .event_hubs
        .iter()
        .find(|h| h.consumer_group == "nope")
        .unwrap();
    assert!(
        missing
            .problem
            .as_deref()
            .unwrap_or_default()
            .contains("create it"),
        "{missing:?}"
    );
    let fine = status
        .event_hubs
        .iter()
        .find(|h| h.consumer_group == "$Default")
        .unwrap();
    assert!(fine.problem.is_none());
    // Tried again, but said once; nothing nested, the other group handled everything once.
    eventually(
        "a second attempt",
        Duration::from_secs(60),
        || host.log().matches("has no consumer group `nope`").count() >= 4,
        &[&host],
    )
    .await;
    let log = host.log();
    assert_eq!(
        log.matches("consumer group `nope` does not exist").count(),
        1,
        "{log}"
    );
    assert!(
        !log.contains("Event processor stopped; restarting it"),
        "{log}"
    );
    let handled: BTreeSet<(String, i64)> = host.handled("$Default").into_iter().collect();
    assert_eq!(handled, all_events(2, 10));
}
