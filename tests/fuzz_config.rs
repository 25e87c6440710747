//! Property tests of what operators write: the host's TOML config (`hubwasm run --config`),
//! event hub connection strings and `--config key=value` plugin settings. Nothing panics on
//! arbitrary input; a config that fails says where (a line, or the setting) and why.
//!
//! Bounded to 256 cases per property so they take seconds in CI. To search longer:
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test -p hubwasm --test fuzz_config --release
//! ```

use std::path::Path;

use hubwasm::config::RunConfig;
use hubwasm::connection::ConnectionString;
use proptest::prelude::*;

/// The documented example config: every setting, so mutations reach every field.
const EXAMPLE: &str = include_str!("../examples/hubwasm.toml");

/// Text with the characters that matter to TOML and to the parsers, mixed into Unicode.
fn tricky() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\[\\]={}\"',.#;:\n\\\\ a-z0-9é€𝄞-]{0,40}",
        Just(String::new()),
        Just("18446744073709551616".to_string()),
        Just("-9223372036854775809".to_string()),
        Just("1e400".to_string()),
        Just("nan".to_string()),
        Just("\"\\u0000\"".to_string()),
        Just("[[eventhub]]".to_string()),
    ]
}

/// A value TOML accepts in many places: numbers at the edges, strings, arrays, tables.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("9223372036854775807".to_string()),
        "\"[a-zA-Z0-9/:._é -]{0,30}\"",
        Just("true".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("1.5".to_string()),
    ]
}

fn parse(text: &str) -> Result<RunConfig, String> {
    RunConfig::parse(text, Path::new("fuzz/hubwasm.toml")).map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in tricky()) {
        let _ = parse(&text);
    }

    /// Each line of the example replaced by anything, or its value by another value: a
    /// result or an error that names the file, never a panic.
    #[test]
    fn a_mutated_example_fails_with_a_place_or_parses(
        line in 0usize..200,
        replacement in tricky(),
        value in toml_value(),
        replace_value in any::<bool>(),
    ) {
        let mut lines: Vec<String> = EXAMPLE.lines().map(str::to_string).collect();
        let at = line % lines.len();
        if replace_value {
            if let Some((key, _)) = lines[at].clone().split_once('=') {
                lines[at] = format!("{key}= {value}");
            }
        } else {
            lines[at] = replacement;
        }
        if let Err(message) = parse(&lines.join("\n")) {
            prop_assert!(message.contains("fuzz/hubwasm.toml"), "{message}");
        }
    }

    #[test]
    fn connection_strings_never_panic(text in tricky(), key in tricky(), value in tricky()) {
        let _ = ConnectionString::parse(&text);
        let _ = ConnectionString::parse(&format!("{key}={value};{text}"));
        let _ = ConnectionString::parse(&format!(
            "Endpoint=sb://{value}/;SharedAccessKeyName={key};SharedAccessKey={text};EntityPath={value}"
        ));
    }
}

#[test]
fn the_example_itself_parses() {
    parse(EXAMPLE).expect("examples/hubwasm.toml is valid");
}

/// The Kubernetes example's config (the ConfigMap's `hubwasm.toml`) is a valid config.
#[test]
fn the_kubernetes_example_config_parses() {
    let yaml = include_str!("../examples/kubernetes/configmap.yaml");
    let at = yaml
        .find("hubwasm.toml: |\n")
        .expect("the ConfigMap holds hubwasm.toml")
        + 16;
    let toml: String = yaml[at..]
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let config = parse(&toml).expect("examples/kubernetes/configmap.yaml holds a valid config");
    let hub = &config.event_hubs[0];
    assert!(
        hub.plugin.to_str().unwrap().starts_with("oci://"),
        "{hub:?}"
    );
    assert_eq!(config.registries.len(), 1);
    assert_eq!(config.admin.unwrap().listen.port(), 9466);
}
