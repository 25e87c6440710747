use std::path::Path;

use super::*;
use crate::config::RunConfig;

const CONN: &str =
    "Endpoint=sb://localhost;SharedAccessKeyName=a;SharedAccessKey=b;UseDevelopmentEmulator=true";

fn parse(text: &str) -> Result<RunConfig, String> {
    RunConfig::parse(text, Path::new("/etc/hubwasm/t.toml")).map_err(|e| e.to_string())
}

fn two_tenants(extra: &str) -> String {
    format!(
        r#"[[tenant]]
name = "acme"
[tenant.limits]
memory_bytes = 67108864
timeout = 1000
max_in_flight = 2
events_per_sec = 1000
[tenant.grants]
secrets = {{ api_key = {{ env = "HUBWASM_TEST_TENANT_SECRET" }} }}

[[tenant]]
name = "globex"

[[plugin]]
name = "acme-filter"
tenant = "acme"
path = "filter.wasm"
config = {{ min_value = "50", api_key = {{ secret = "api_key" }} }}

[[eventhub]]
name = "orders"
connection_string = "{CONN}"
plugin = "acme-filter"
{extra}"#
    )
}

#[test]
fn an_event_hub_naming_a_plugin_gets_its_component_config_tenant_and_limits() {
    std::env::set_var("HUBWASM_TEST_TENANT_SECRET", "s3cret");
    let c = parse(&two_tenants("")).unwrap();
    let hub = &c.event_hubs[0];
    assert_eq!(hub.tenant_name(), "acme");
    assert_eq!(hub.plugin_name.as_deref(), Some("acme-filter"));
    assert_eq!(hub.plugin, Path::new("/etc/hubwasm/filter.wasm"));
    let limits = hub.limits.unwrap();
    assert_eq!(limits.memory_bytes, 64 << 20);
    assert_eq!(limits.timeout, Duration::from_secs(1));
    let config = c.plugin_config_of(hub).unwrap();
    assert!(
        config.contains(&("api_key".into(), "s3cret".into())),
        "{config:?}"
    );
    assert!(config.contains(&("min_value".into(), "50".into())));
    assert_eq!(c.tenant_names(), vec!["acme", "globex"]);
    // A plain event hub belongs to `default`, unlimited.
    let plain = parse(&format!(
        "[[eventhub]]\nname = \"x\"\nconnection_string = \"{CONN}\"\nplugin = \"f.wasm\"\n"
    ))
    .unwrap();
    assert_eq!(plain.event_hubs[0].tenant_name(), DEFAULT_TENANT);
    assert_eq!(plain.tenant_names(), vec![DEFAULT_TENANT]);
}

/// A declared tenant's event hub may use only the effects its grants list.
#[test]
fn effects_need_the_tenants_grants() {
    std::env::set_var("HUBWASM_TEST_TENANT_SECRET", "s3cret");
    let hub = format!(
        "[[eventhub]]\nname = \"audit\"\nconnection_string = \"{CONN}\"\nplugin = \"g.wasm\"\ntenant = \"globex\"\n"
    );
    // The two tenants, globex granted `grants` (lines of [tenant.grants]).
    let globex_granted = |grants: &str| {
        two_tenants("").replace(
            "[[tenant]]\nname = \"globex\"\n",
            &format!("[[tenant]]\nname = \"globex\"\n[tenant.grants]\n{grants}"),
        )
    };
    let refused = |extra: &str, says: &str| {
        let err = parse(&format!("{}{hub}{extra}", two_tenants(""))).unwrap_err();
        assert!(err.contains(says), "{extra}: {err}");
        assert!(err.contains("line "), "{err}");
    };
    refused(
        &format!("[[eventhub.output]]\nname = \"kept\"\nconnection_string = \"{CONN}\"\n"),
        "tenant globex is not granted event hub `kept` as an output",
    );
    // The event hub a connection string names is what counts, whatever the output is called.
    let granted_kept = globex_granted("outputs = [\"kept\"]\n");
    let err = parse(&format!(
        "{granted_kept}{hub}[[eventhub.output]]\nname = \"kept\"\nconnection_string = \"{CONN};EntityPath=secret\"\n"
    ))
    .unwrap_err();
    assert!(err.contains("event hub `secret`"), "{err}");
    refused(
        "allowed_outbound_hosts = [\"https://api.example.com\"]\n",
        "`https://api.example.com` is not granted to tenant globex",
    );
    // A grant that is not an origin is refused when the file is parsed (with the line the
    // grant is on), not silently ignored.
    let bad_grant = globex_granted("allowed_outbound_hosts = [\"api.example.com\"]\n");
    let err = parse(&format!("{bad_grant}{hub}")).unwrap_err();
    assert!(
        err.contains("allowed_outbound_hosts = [\"api.example.com\"]")
            && err.contains("origin such as")
            && err.contains("line "),
        "{err}"
    );
    refused(
        "[eventhub.state]\n",
        "tenant globex is not granted [eventhub.state]",
    );
    refused(
        "[eventhub.dedupe]\n",
        "tenant globex is not granted [eventhub.dedupe]",
    );
    // Granted, the same settings load.
    let granted = globex_granted("outputs = [\"kept\"]\nallowed_outbound_hosts = [\"https://api.example.com:443\"]\nstate = true\ndedupe = true\n");
    let c = parse(&format!(
        "{granted}{hub}allowed_outbound_hosts = [\"https://api.example.com\"]\n[eventhub.state]\n[eventhub.dedupe]\n[[eventhub.output]]\nname = \"kept\"\nconnection_string = \"{CONN}\"\n"
    ))
    .unwrap();
    assert_eq!(c.event_hubs[1].output[0].name, "kept");
    // Without [[tenant]] sections the operator's own event hubs use what they configure.
    parse(&format!("{hub}[eventhub.state]\n").replace("tenant = \"globex\"\n", "")).unwrap();
}

#[test]
fn secret_files_are_read_trimmed_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("ok.txt");
    std::fs::write(&ok, "s3cret\r\n").unwrap();
    assert_eq!(SecretSource::File(ok).read().unwrap(), "s3cret");
    let big = dir.path().join("big.txt");
    std::fs::write(&big, vec![b'x'; MAX_SECRET_BYTES as usize + 1]).unwrap();
    let err = SecretSource::File(big).read().unwrap_err();
    assert!(err.contains("at most 65536"), "{err}");
    let missing = SecretSource::File(dir.path().join("none"))
        .read()
        .unwrap_err();
    assert!(missing.contains("cannot read"), "{missing}");
}

/// Each bad reference, grant or limit is refused naming the line and the setting.
#[test]
fn what_does_not_exist_or_exceeds_the_tenant_is_refused_with_the_line() {
    std::env::set_var("HUBWASM_TEST_TENANT_SECRET", "s3cret");
    let cases: Vec<(String, &str, &str)> = vec![
        (
            two_tenants("").replace("plugin = \"acme-filter\"", "plugin = \"f.wasm\"\ntenant = \"initech\""),
            "line 24",
            "no [[tenant]] named `initech`",
        ),
        (
            two_tenants(&format!(
                "consumer_group = \"shared\"\n\n[[eventhub]]\nname = \"orders\"\nconnection_string = \"{CONN}\"\nconsumer_group = \"shared\"\nplugin = \"g.wasm\"\ntenant = \"globex\"\n"
            )),
            "line 29",
            "given to tenants acme (eventhub[0]) and globex",
        ),
        (
            two_tenants("").replace("secret = \"api_key\"", "secret = \"db_password\""),
            "line 18",
            "secret `db_password` is not granted to tenant acme",
        ),
        (
            two_tenants("").replace("HUBWASM_TEST_TENANT_SECRET", "HUBWASM_TEST_NO_SUCH_VAR"),
            "line 8",
            "grants a secret that does not exist: environment variable HUBWASM_TEST_NO_SUCH_VAR is not set",
        ),
        (
            two_tenants("").replace(
                "config = {",
                "limits = { memory_bytes = 134217728 }\nconfig = {",
            ),
            "line 18",
            "134217728 is above tenant acme's memory_bytes (67108864)",
        ),
        (
            two_tenants("tenant = \"globex\"\n"),
            "line 24",
            "plugin `acme-filter` belongs to tenant acme, not globex",
        ),
        (
            two_tenants("plugin_config = { min_value = \"1\" }\n"),
            "line 24",
            "carries its own config and limits",
        ),
        (
            two_tenants("").replace("name = \"globex\"", "name = \"acme\""),
            "line 12",
            "tenant[0] has this name too",
        ),
        (
            two_tenants("").replace("events_per_sec = 1000", "events_per_sec = 0"),
            "line 3",
            "limits.events_per_sec",
        ),
        (
            two_tenants("").replace("max_in_flight = 2", "max_in_flight = 0"),
            "line 3",
            "max_in_flight",
        ),
        (
            two_tenants("").replace("[tenant.grants]", "[tenant.grants]\nqueues = [\"x\"]"),
            "line 9",
            "unknown field `queues`",
        ),
    ];
    let mut wrong = Vec::new();
    for (text, line, says) in cases {
        match parse(&text) {
            Err(err) if err.contains(&format!("{line}:")) && err.contains(says) => {}
            other => wrong.push(format!("expected `{line}` and `{says}`, got {other:?}")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
