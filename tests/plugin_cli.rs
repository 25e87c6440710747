//! End-to-end tests of `hubwasm plugin ...`, running the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn hubwasm(args: &[&str]) -> Output {
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache");
    Command::new(env!("CARGO_BIN_EXE_hubwasm"))
        .args(args)
        .env("HUBWASM_CACHE_DIR", cache)
        .env_remove("HUBWASM_LOG")
        .output()
        .expect("run hubwasm")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sample_events() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/events")
}

#[test]
fn plugin_test_replays_the_sample_events_and_prints_verdicts_and_a_summary() {
    let events = sample_events();
    let out = hubwasm(&[
        "plugin",
        "test",
        hubwasm_plugins::JSON_FILTER,
        "--events",
        events.to_str().unwrap(),
        "--batch",
        "8",
    ]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("seq=0 offset=0 ok"), "{stdout}");
    assert!(stdout.contains("seq=19 "), "{stdout}");
    assert!(
        stdout.contains("summary: 20 events, 20 ok, 0 failed"),
        "{stdout}"
    );
    assert!(stdout.contains("µs/event"), "{stdout}");
}

#[test]
fn plugin_test_exits_non_zero_and_names_the_failed_event() {
    let events = sample_events();
    let out = hubwasm(&[
        "plugin",
        "test",
        hubwasm_plugins::TEST_FAIL_NTH,
        "--events",
        events.to_str().unwrap(),
        "--batch",
        "5",
        "--config",
        "fail_at=7",
        "--config",
        "kind=rejected",
        "--quiet",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("seq=7 "), "{stdout}");
    assert!(stdout.contains("REJECTED"), "{stdout}");
    assert!(
        stdout.contains("summary: 20 events, 19 ok, 1 failed (rejected: 1)"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("seq=6 offset"),
        "--quiet hides successes: {stdout}"
    );
}

#[test]
fn plugin_test_finds_the_trapping_event_inside_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, "a\nb\ntrap\nc\n").unwrap();
    let out = hubwasm(&[
        "plugin",
        "test",
        hubwasm_plugins::TEST_TRAP,
        "--events",
        file.to_str().unwrap(),
        "--batch",
        "4",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("seq=2 offset=4 TRAPPED"), "{stdout}");
    assert!(
        stdout.contains("summary: 4 events, 3 ok, 1 failed (trapped: 1)"),
        "{stdout}"
    );
}

#[test]
fn plugin_stdout_appears_in_the_host_log() {
    let events = sample_events();
    let out = hubwasm(&[
        "plugin",
        "test",
        hubwasm_plugins::EVENT_LOGGER,
        "--events",
        events.to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("event seq=4"))
        .unwrap_or_else(|| panic!("no plugin stdout in the log:\n{stderr}"));
    assert!(line.contains("plugin=\"event_logger\""), "{line}");
}

#[test]
fn plugin_inspect_shows_world_contract_imports_and_exports() {
    let out = hubwasm(&["plugin", "inspect", hubwasm_plugins::JSON_FILTER]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("world:    hubwasm:plugin/batch-plugin@0.2.0"),
        "{stdout}"
    );
    assert!(stdout.contains("hubwasm:plugin/log@0.2.0"), "{stdout}");
    assert!(
        stdout.contains("hubwasm:plugin/batch-handler@0.2.0"),
        "{stdout}"
    );
    // A plugin built against 0.1.0 (kept as it was built) is recognised as such, and one that
    // uses effects lists them among its imports.
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/v0.1/json-filter.wasm"
    );
    let out = hubwasm(&["plugin", "inspect", fixture]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("world:    hubwasm:plugin/batch-plugin@0.1.0"),
        "{stdout}"
    );
    let out = hubwasm(&["plugin", "inspect", hubwasm_plugins::FILTER_EMIT]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("hubwasm:plugin/emit@0.2.0"), "{stdout}");
}

#[test]
fn plugin_inspect_refuses_a_core_module_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let out = hubwasm(&["plugin", "inspect", core.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("is a core WebAssembly module, not a component"),
        "{stderr}"
    );
    assert!(stderr.contains("wasm32-wasip2"), "{stderr}");
}

#[test]
fn bad_config_flag_is_a_usage_error() {
    let out = hubwasm(&[
        "plugin",
        "test",
        "x.wasm",
        "--events",
        "e.jsonl",
        "--config",
        "no-equals-sign",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is not KEY=VALUE"));
}

/// The reproduction: each event sleeps 3 s in the plugin, the limit is 200 ms. Every
/// event is reported timed out at its limit (about a second for five), not after its sleep
/// (15 s before the wall-clock bound).
#[test]
fn plugin_test_stops_a_sleeping_plugin_at_the_call_limit() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("five.jsonl");
    std::fs::write(&events, "1\n2\n3\n4\n5\n").unwrap();
    let started = std::time::Instant::now();
    let out = hubwasm(&[
        "plugin",
        "test",
        hubwasm_plugins::TEST_RECORD,
        "--events",
        events.to_str().unwrap(),
        "--config",
        "sleep_ms=3000",
        "--timeout-ms",
        "200",
    ]);
    let took = started.elapsed();
    let stdout = text(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("summary: 5 events, 0 ok, 5 failed"),
        "{stdout}"
    );
    assert!(stdout.contains("timed-out"), "{stdout}");
    assert!(
        took < std::time::Duration::from_secs(12),
        "took {took:?}: the calls were not stopped at their limit\n{stdout}"
    );
}

/// `plugin test` keeps a plugin's effects in memory: state is shown at the end, emitted events
/// are printed with their message ids, and an output not named with `--output` stops the replay
/// saying so.
#[test]
fn plugin_test_shows_state_and_emitted_events() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        "{\"device\":\"a\"}\n{\"device\":\"b\"}\n{\"device\":\"a\"}\nnot json\n",
    )
    .unwrap();
    let events = events.to_str().unwrap();
    let out = hubwasm(&[
        "plugin",
        "test",
        hubwasm_plugins::COUNT_BY_KEY,
        "--events",
        events,
        "--config",
        "field=device",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("state after the replay (2 keys):"),
        "{stdout}"
    );
    assert!(stdout.contains("count/a = 2 (u64)"), "{stdout}");
    assert!(stdout.contains("count/b = 1 (u64)"), "{stdout}");
    assert!(stdout.contains("2 state keys"), "{stdout}");

    let seed = dir.path().join("seed.jsonl");
    std::fs::write(
        &seed,
        "{\"event_id\":\"e\",\"timestamp\":\"t\",\"data\":\"d\",\"message_id\":1,\"value\":70}\n",
    )
    .unwrap();
    let seed = seed.to_str().unwrap();
    let args = [
        "plugin",
        "test",
        hubwasm_plugins::FILTER_EMIT,
        "--events",
        seed,
        "--config",
        "output=kept",
    ];
    let out = hubwasm(&[&args[..], &["--output", "kept"]].concat());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("emit output=kept source=0 id=replay/0/0/0 body={\"event_id\""),
        "{stdout}"
    );
    let out = hubwasm(&args);
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("output `kept`") && all.contains("--output"),
        "{all}"
    );
}

/// The host's limits on effects come back to the plugin as errors it turns into verdicts: an
/// emit for a source outside the call, a body over 1 MiB, more than 64 MiB emitted by one call,
/// a state key over 1 KiB. A refused call commits none of what it staged before the refusal.
#[test]
fn effect_limits_are_verdicts_and_a_refused_call_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let cases = [
        "ok-1",
        "emit-other-source",
        "emit-huge-body",
        "emit-too-much",
        "state-long-key",
        "state-key-at-limit",
        "ok-2",
    ];
    std::fs::write(&events, cases.join("\n") + "\n").unwrap();
    let out = hubwasm(&[
        "plugin",
        "test",
        hubwasm_plugins::TEST_EFFECT_LIMITS,
        "--events",
        events.to_str().unwrap(),
        "--output",
        "out",
        "--memory-mib",
        "256",
    ]);
    let stdout = text(&out.stdout);
    let all = format!("{stdout}{}", text(&out.stderr));
    let verdict = |seq: usize| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("seq={seq} ")))
            .unwrap_or_else(|| panic!("no verdict for seq={seq}\n{all}"))
            .to_string()
    };
    for (seq, expected) in [
        (0, "ok"),
        (1, "REJECTED"),
        (2, "REJECTED"),
        (3, "REJECTED"),
        (4, "REJECTED"),
        (5, "ok"),
        (6, "ok"),
    ] {
        assert!(
            verdict(seq).contains(expected),
            "{}: {expected}\n{all}",
            cases[seq]
        );
    }
    assert!(
        verdict(1).contains("source 1001 is not an event of the current call"),
        "{all}"
    );
    assert!(verdict(2).contains("too large"), "{all}");
    assert!(verdict(3).contains("too large"), "{all}");
    assert!(
        verdict(4).contains("key too large") && verdict(4).contains("1024"),
        "{all}"
    );
    // What the successful calls staged is committed; nothing of a refused call is.
    for kept in ["before:ok-1", "before:state-key-at-limit", "body=ok-2"] {
        assert!(stdout.contains(kept), "{kept}\n{all}");
    }
    for case in &cases[1..5] {
        assert!(
            !stdout.contains(&format!("before:{case}")),
            "{case} emitted\n{all}"
        );
        assert!(
            !stdout.contains(&format!("before/{case}")),
            "{case} kept state\n{all}"
        );
    }
    assert!(stdout.contains("before/ok-2"), "{all}");
    assert!(
        stdout.contains(&"k".repeat(1024)),
        "the key at the limit is kept\n{all}"
    );
}

#[test]
fn perfmap_names_the_plugins_compiled_functions_for_perf() {
    let events = sample_events();
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache");
    // Twice: the first run may compile, the second loads the compiled cache; both name them.
    for perfmap in ["1", "1", "0"] {
        let child = Command::new(env!("CARGO_BIN_EXE_hubwasm"))
            .args(["plugin", "test", hubwasm_plugins::JSON_FILTER, "--events"])
            .arg(&events)
            .args(["--batch", "8", "--quiet"])
            .env("HUBWASM_CACHE_DIR", &cache)
            .env("HUBWASM_PERFMAP", perfmap)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("run hubwasm");
        let map = PathBuf::from(format!("/tmp/perf-{}.map", child.id()));
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let written = std::fs::read_to_string(&map).ok();
        let _ = std::fs::remove_file(&map);
        if perfmap == "1" {
            let written = written.expect("HUBWASM_PERFMAP=1 writes /tmp/perf-<pid>.map");
            // `<address> <size> <name>` per compiled function: the Rust plugin's export by its
            // name, functions without one by index.
            assert!(
                written
                    .lines()
                    .any(|l| l.ends_with(" hubwasm:plugin/batch-handler@0.2.0#handle-batch")),
                "{written}"
            );
            assert!(written.contains("::function["), "{written}");
        } else {
            assert!(written.is_none(), "no map unless asked for");
        }
    }
}
