//! Python and JavaScript plugins under `hubwasm run`, against the embedded endpoint: a failure
//! on the n-th event is retried and dead-lettered exactly as for the Rust plugin, and a plugin
//! bug shows up in the host's log with the language's own traceback.

use std::time::Duration;

use crate::harness::*;
use crate::lang_plugins::built;

/// What one run left behind: the attempts on the failing event, its dead letter, the
/// checkpoint.
#[derive(Debug, PartialEq)]
struct Outcome {
    attempts: usize,
    letters: Vec<(i64, u64, String, String)>,
    checkpoint: Option<i64>,
}

async fn run_fail_nth(plugin: &str, plugin_config: &str) -> (Outcome, String) {
    let t = Local::start(1).await;
    let cfg = t
        .config(&format!(
            "plugin_config = {{ {plugin_config} }}
[eventhub.failure]
policy = \"dead-letter\"
max_attempts = 3
initial_backoff_ms = 20"
        ))
        .replace(hubwasm_plugins::TEST_RECORD, plugin);
    send(&t.endpoint, 8, Some("0")).await;
    let host = Host::run_until_idle("lang", t.path(), &cfg, Duration::from_secs(180));
    let log = host.log();
    // Records name the plugin (by its file); compare the rest.
    let stem = std::path::Path::new(plugin)
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap();
    let named = format!("plugin `{stem}`");
    let attempts = log
        .lines()
        .filter(|l| l.contains("Plugin failed on an event") && l.contains("sequence_number=3"))
        .count();
    let letters = std::fs::read_to_string(t.dead.join(HUB).join("$Default").join("0.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["sequence_number"].as_i64().unwrap(),
                v["attempts"].as_u64().unwrap(),
                v["error_kind"].as_str().unwrap().to_string(),
                v["error"].as_str().unwrap().replace(&named, "plugin `P`"),
            )
        })
        .collect();
    let checkpoint = *checkpoints(&t.store(), "$Default")
        .await
        .get("0")
        .unwrap_or(&None);
    t.endpoint.shutdown().await;
    (
        Outcome {
            attempts,
            letters,
            checkpoint,
        },
        log,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_on_the_nth_event_is_retried_and_dead_lettered_as_for_rust() {
    let config = r#"fail_at = "3""#;
    let (rust, log) = run_fail_nth(hubwasm_plugins::TEST_FAIL_NTH, config).await;
    assert_eq!(rust.attempts, 3, "{log}");
    assert_eq!(rust.letters.len(), 1, "{log}");
    assert_eq!(rust.checkpoint, Some(7), "{log}");
    for rel in ["python/fail-nth", "js/fail-nth"] {
        let wasm = built(rel);
        let (outcome, log) = run_fail_nth(wasm.to_str().unwrap(), config).await;
        assert_eq!(outcome, rust, "{rel} fails like the Rust plugin\n{log}");
    }
    // Rejected: one attempt, straight to the dead letters, in every language.
    let config = r#"fail_at = "3", kind = "rejected""#;
    let (rust, log) = run_fail_nth(hubwasm_plugins::TEST_FAIL_NTH, config).await;
    assert_eq!(rust.attempts, 1, "{log}");
    for rel in ["python/fail-nth", "js/fail-nth"] {
        let wasm = built(rel);
        let (outcome, log) = run_fail_nth(wasm.to_str().unwrap(), config).await;
        assert_eq!(outcome, rust, "{rel} rejects like the Rust plugin\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exception_is_a_crash_with_the_languages_traceback_in_the_host_log() {
    for (rel, kind, needles) in [
        (
            "python/fail-nth",
            "raise",
            &[
                "Traceback (most recent call last)",
                "RuntimeError: unexpected event 3",
            ][..],
        ),
        (
            "js/fail-nth",
            "throw",
            &["RangeError: unexpected event 3", "checkOrder@"][..],
        ),
    ] {
        let wasm = built(rel);
        let (outcome, log) = run_fail_nth(
            wasm.to_str().unwrap(),
            &format!(r#"fail_at = "3", kind = "{kind}""#),
        )
        .await;
        for needle in needles {
            assert!(
                log.contains(needle),
                "{rel}: no {needle:?} in the host log:\n{log}"
            );
        }
        assert_eq!(outcome.attempts, 3, "{rel}: retried as a crash\n{log}");
        assert_eq!(outcome.letters.len(), 1, "{rel}\n{log}");
        assert_eq!(outcome.letters[0].2, "trapped", "{rel}\n{log}");
        assert_eq!(outcome.checkpoint, Some(7), "{rel}\n{log}");
    }
}
