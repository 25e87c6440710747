//! Property tests of what clients and operators write as text: SAS tokens (parsing, validation,
//! scope checks), selector filters (and the start positions they resolve to), and the hub's TOML
//! config. Nothing panics on arbitrary input; what is signed validates; what is written parses.
//!
//! Bounded to 256 cases per property so they take seconds in CI. To search longer:
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test -p hubwasm-hub --test hub_fuzz_text --release
//! ```

use hubwasm_testkit::fuzz as fuzz_support;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use fuzz_support::{config, value};
use hubwasm_hub::amqp::message::Message;
use hubwasm_hub::amqp::Value;
use hubwasm_hub::config::{EventHubConfig, Fsync, HubConfig};
use hubwasm_hub::sas::{self, ValidToken};
use hubwasm_hub::server::filter::{self, StartPosition};
use hubwasm_hub::server::namespace::{Namespace, Partition};
use proptest::collection::vec;
use proptest::prelude::*;

const POLICY: (&str, &str) = ("RootManageSharedAccessKey", "SAS_KEY_VALUE");

/// Text with the characters that matter to the parsers mixed into arbitrary Unicode.
fn tricky() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "[a-z%&=/:.\\-'<>@ é😀0-9]{0,40}",
        "(SharedAccessSignature )?(sr|sig|se|skn|x)=[^&]{0,12}(&(sr|sig|se|skn)=[^&]{0,12}){0,5}",
    ]
}

/// One partition with a few events, shared by the cases (opening a log per case is slow).
fn partition() -> &'static (Arc<Partition>, tempfile::TempDir) {
    static PARTITION: OnceLock<(Arc<Partition>, tempfile::TempDir)> = OnceLock::new();
    PARTITION.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let ns = Namespace::open(&HubConfig {
            data_dir: dir.path().to_path_buf(),
            event_hubs: vec![EventHubConfig {
                name: "h".into(),
                partitions: 1,
                consumer_groups: vec![],
            }],
            ..HubConfig::default()
        })
        .unwrap();
        let p = ns.hub("h").unwrap().partitions[0].clone();
        let events: Vec<Message> = (0..5u8).map(|i| Message::with_data(vec![i])).collect();
        p.append(&events).unwrap();
        (p, dir)
    })
}

fn start_position() -> impl Strategy<Value = StartPosition> {
    prop_oneof![
        Just(StartPosition::Earliest),
        Just(StartPosition::Latest),
        (any::<i64>(), any::<bool>())
            .prop_map(|(offset, inclusive)| StartPosition::Offset { offset, inclusive }),
        (any::<i64>(), any::<bool>()).prop_map(|(sequence, inclusive)| StartPosition::Sequence {
            sequence,
            inclusive
        }),
        (any::<i64>(), any::<bool>()).prop_map(|(time_ms, inclusive)| {
            StartPosition::EnqueuedAfter { time_ms, inclusive }
        }),
    ]
}

/// A TOML string literal for any text.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

proptest! {
    #![proptest_config(config())]

    // ---- SAS tokens. ----

    #[test]
    fn arbitrary_tokens_never_panic(token in tricky(), now in any::<u64>()) {
        let _ = sas::validate(&token, [POLICY], now);
        let _ = sas::percent_decode(&token);
        let _ = sas::entity_path(&token);
    }

    #[test]
    fn scope_checks_never_panic(resource in tricky(), requested in tricky()) {
        let token = ValidToken {
            resource,
            expires_at: 1,
            key_name: "k".into(),
        };
        let _ = token.covers(&requested);
    }

    #[test]
    fn signed_tokens_validate_and_cover_their_resource(
        host in "[a-z]{1,10}",
        path in "[^/]{1,20}(/[^/]{1,10}){0,3}",
        key_name in "[A-Za-z0-9_.~-]{1,20}",
        key in ".{1,40}",
        expires_at in 1u64..u64::MAX,
        sub in "[^/]{1,10}",
    ) {
        let resource = format!("sb://{host}/{path}");
        let token = sas::sign(&resource, &key_name, &key, expires_at);
        let valid = sas::validate(&token, [(key_name.as_str(), key.as_str())], expires_at - 1)
            .map_err(|e| TestCaseError::fail(format!("{e}: {token}")))?;
        prop_assert_eq!(&valid.resource, &resource);
        prop_assert_eq!(valid.expires_at, expires_at);
        valid.covers(&resource).map_err(|e| TestCaseError::fail(e.to_string()))?;
        valid
            .covers(&format!("amqps://{host}/{path}/{sub}"))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        // Expired at its expiry; another key does not verify it.
        prop_assert!(sas::validate(&token, [(key_name.as_str(), key.as_str())], expires_at).is_err());
        let other = format!("{key}x");
        prop_assert!(sas::validate(&token, [(key_name.as_str(), other.as_str())], 0).is_err());
    }

    #[test]
    fn percent_encoding_round_trips(s in ".{0,40}") {
        prop_assert_eq!(sas::percent_decode(&sas::percent_encode(&s)), Some(s));
    }

    // ---- Selector filters and start positions. ----

    #[test]
    fn arbitrary_selectors_never_panic(expr in prop_oneof![
        ".{0,60}".boxed(),
        "amqp\\.annotation\\.x-opt-(offset|sequence-number|enqueued-time) ?[<>=]{0,3} ?'?-?[0-9@a-z]{0,25}'?".boxed(),
    ]) {
        if let Ok(position) = filter::parse_selector(&expr) {
            let _ = partition().0.resolve(position);
        }
    }

    #[test]
    fn written_selectors_parse_to_their_position(
        field in 0usize..3,
        inclusive in any::<bool>(),
        number in any::<i64>(),
        space_before in " {0,2}",
        space_after in " {0,2}",
    ) {
        let names = [
            "amqp.annotation.x-opt-offset",
            "amqp.annotation.x-opt-sequence-number",
            "amqp.annotation.x-opt-enqueued-time",
        ];
        let op = if inclusive { ">=" } else { ">" };
        let expr = format!("{}{space_before}{op}{space_after}'{number}'", names[field]);
        let want = match field {
            0 if number == -1 => StartPosition::Earliest,
            0 => StartPosition::Offset { offset: number, inclusive },
            1 => StartPosition::Sequence { sequence: number, inclusive },
            _ => StartPosition::EnqueuedAfter { time_ms: number, inclusive },
        };
        prop_assert_eq!(filter::parse_selector(&expr), Ok(want));
    }

    #[test]
    fn arbitrary_filter_sets_never_panic(
        filters in vec((value(), value()), 0..4),
        expr in ".{0,40}",
    ) {
        let _ = filter::from_filter_set(&filters);
        let selector = vec![(
            Value::symbol(filter::SELECTOR_FILTER),
            Value::Described(
                Box::new(Value::symbol(filter::SELECTOR_FILTER)),
                Box::new(Value::String(expr)),
            ),
        )];
        let _ = filter::from_filter_set(&selector);
    }

    /// Any start position resolves without panicking, never before the first retained event,
    /// and a position after the last event never means the start.
    #[test]
    fn start_positions_resolve_within_the_partition(position in start_position()) {
        let p = &partition().0;
        let info = p.info();
        let first = p.resolve(position);
        prop_assert!(first >= info.begin_sequence_number, "{position:?} -> {first}");
        if let StartPosition::Sequence { sequence, inclusive } = position {
            let after = if inclusive { Some(sequence) } else { sequence.checked_add(1) };
            match after {
                Some(s) if s > info.last_sequence_number => prop_assert!(first > info.last_sequence_number),
                None => prop_assert_eq!(first, info.last_sequence_number + 1),
                _ => {}
            }
        }
    }

    // ---- The hub's TOML config. ----

    #[test]
    fn arbitrary_config_text_never_panics(text in prop_oneof![
        ".{0,80}".boxed(),
        "(\\[storage\\]|\\[\\[event_hub\\]\\]|\\[\\[policy\\]\\]|[a-z_]{1,12} = (\"[^\"]{0,8}\"|-?[0-9]{1,22}|true|\\[\\])|\n){0,12}".boxed(),
    ]) {
        if let Ok(config) = HubConfig::from_toml(&text, Path::new("hub.toml")) {
            // What was validated can be used.
            prop_assert!(config.fsync_policy().is_ok());
            prop_assert!(!config.policies.is_empty() && !config.event_hubs.is_empty());
        }
    }

    #[test]
    fn written_configs_parse_or_name_the_problem(
        name in ".{0,12}",
        partitions in prop_oneof![1u32..=32, any::<u32>()],
        fsync in prop_oneof![
            Just("always".to_string()),
            Just("never".to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            ".{0,10}",
        ],
        retention_hours in proptest::option::of(any::<u64>()),
        policy in proptest::option::of((".{0,8}", ".{0,8}")),
        namespace in ".{0,12}",
    ) {
        let mut text = format!("namespace = {}\n[storage]\nfsync = {}\n", toml_string(&namespace), toml_string(&fsync));
        if let Some(h) = retention_hours {
            // TOML integers are i64.
            if let Ok(h) = i64::try_from(h) {
                text.push_str(&format!("retention_hours = {h}\n"));
            }
        }
        text.push_str(&format!(
            "[[event_hub]]\nname = {}\npartitions = {partitions}\n",
            toml_string(&name)
        ));
        if let Some((pname, key)) = &policy {
            text.push_str(&format!(
                "[[policy]]\nname = {}\nkey = {}\n",
                toml_string(pname),
                toml_string(key)
            ));
        }
        match HubConfig::from_toml(&text, Path::new("hub.toml")) {
            Ok(config) => {
                prop_assert_eq!(&config.event_hubs[0].name, &name);
                prop_assert!((1..=32).contains(&partitions));
                let want = match fsync.as_str() {
                    "always" => Fsync::Always,
                    "never" => Fsync::Never,
                    n => Fsync::EveryMillis(n.parse().unwrap()),
                };
                prop_assert_eq!(config.fsync_policy().unwrap(), want);
            }
            Err(err) => {
                let err = err.to_string();
                prop_assert!(err.contains("hub config"), "{}", err);
            }
        }
    }
}
