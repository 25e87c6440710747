//! The command line as a user meets it: the embedded default, `hubwasm status`, config errors.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

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
