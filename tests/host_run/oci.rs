//! Plugins from an OCI registry (Debian's docker-registry with basic auth): `hubwasm plugin
//! push`, a tenant's swap to a reference within its grants (refused outside them), the version
//! pinned to the digest it resolved to (a moved tag changes nothing), a replaced host running
//! it from the store, and a registry that is down or answers garbage refused with the running
//! version kept.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hubwasm::admin::client::{request, Answer};

use crate::harness::{json_swap, start_with_admin, Host, Local};
use crate::registry::{Registry, PASSWORD, USER};

const OPERATOR: &str = "operator-token-8d2c";
const ACME: &str = "acme-token-1f9a";

fn push(wasm: &std::path::Path, reference: &str, credentials: bool) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hubwasm"));
    command.args(["plugin", "push"]).arg(wasm).arg(reference);
    if credentials {
        command
            .env("HUBWASM_REGISTRY_USERNAME", USER)
            .env("HUBWASM_REGISTRY_PASSWORD", PASSWORD);
    }
    let out = command.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn version(bytes: &[u8], tag: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v.push(0);
    v.push(1 + 4 + tag.len() as u8);
    v.push(4);
    v.extend_from_slice(b"test");
    v.extend_from_slice(tag);
    v
}

async fn start(name: &str, world: &Local, config: &str) -> (Host, String) {
    start_with_admin(
        name,
        &world.path().join(name),
        config,
        &[
            ("HUBWASM_TEST_OPERATOR", OPERATOR),
            ("HUBWASM_TEST_ACME", ACME),
            ("HUBWASM_TEST_REGISTRY_USER", USER),
            ("HUBWASM_TEST_REGISTRY_PASSWORD", PASSWORD),
        ],
    )
    .await
}

async fn swap(addr: &str, reference: &str, token: &str) -> Answer {
    json_swap(addr, serde_json::json!({ "plugin": reference }), token).await
}

async fn running(addr: &str) -> (String, String) {
    let answer = request(
        addr,
        "GET",
        "/status",
        None,
        Some(OPERATOR),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let status: hubwasm::admin::Status = serde_json::from_str(&answer.body).unwrap();
    let plugin = &status.event_hubs[0].plugin;
    (plugin.digest.clone(), plugin.path.clone())
}

/// A server that answers every connection with something that is not a registry.
fn garbage_server() -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<()>,
) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let handle = std::thread::spawn(move || {
        // Bounded: it ends when told, or by itself after 60 s.
        listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline
            && !stopped.load(std::sync::atomic::Ordering::SeqCst)
        {
            let Ok((mut stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 21\r\n\r\n{\"layers\": \"garbage\"",
            );
        }
    });
    (addr, stop, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_come_from_a_registry_pinned_to_their_digest_within_a_tenants_grants() {
    let mut registry = Registry::start();
    let world = Local::start(2).await;
    let base = std::fs::read(hubwasm_plugins::TEST_RECORD).unwrap();
    let v2 = world.path().join("record_v2.wasm");
    std::fs::write(&v2, version(&base, b"2")).unwrap();
    let v3 = world.path().join("record_v3.wasm");
    std::fs::write(&v3, version(&base, b"3")).unwrap();
    let host = registry.host();

    // Push: refused without credentials, then published with them.
    let tag = format!("oci://{host}/acme/record:stable");
    let (ok, text) = push(&v2, &tag, false);
    assert!(!ok, "{text}");
    assert!(text.contains("cannot push"), "{text}");
    let (ok, text) = push(&v2, &tag, true);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("oci://{host}/acme/record@sha256:")),
        "{text}"
    );
    let (ok, text) = push(
        Path::new("/etc/passwd"),
        &format!("oci://{host}/acme/x:1"),
        true,
    );
    assert!(!ok && !text.contains("root:"), "{text}");
    let (ok, _) = push(&v2, &format!("oci://{host}/globex/record:stable"), true);
    assert!(ok);

    let config = world.config("tenant = \"acme\"")
        + &format!(
            "\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"HUBWASM_TEST_OPERATOR\"\n\n\
             [[registry]]\nhost = \"{host}\"\nusername_env = \"HUBWASM_TEST_REGISTRY_USER\"\n\
             password_env = \"HUBWASM_TEST_REGISTRY_PASSWORD\"\n\n\
             [[tenant]]\nname = \"acme\"\nadmin_token_env = \"HUBWASM_TEST_ACME\"\n\
             [tenant.grants]\nregistries = [\"{host}/acme\"]\n"
        );
    let (a, addr_a) = start("a", &world, &config).await;
    let (mut b, addr_b) = start("b", &world, &config).await;

    // Another tenant's repository, a bad reference: refused, nothing changes.
    let answer = swap(&addr_a, &format!("oci://{host}/globex/record:stable"), ACME).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(
        answer.body.contains("not in the registries granted"),
        "{}",
        answer.body
    );
    let answer = swap(&addr_a, &format!("oci://{host}/acmex/record:stable"), ACME).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    let answer = swap(&addr_a, "oci://acme/record", ACME).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    // A granted reference with replay events named on the host: still no host path.
    let answer = json_swap(
        &addr_a,
        serde_json::json!({ "plugin": tag, "replay": "/etc/passwd" }),
        ACME,
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(!answer.body.contains("root:"), "{}", answer.body);

    // The tenant's own repository: pulled, pinned, and running on both hosts.
    let answer = swap(&addr_a, &tag, ACME).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let record: hubwasm::host::SwapRecord = serde_json::from_str(&answer.body).unwrap();
    assert!(
        record
            .to
            .path
            .starts_with(&format!("oci://{host}/acme/record@sha256:")),
        "{}",
        record.to.path
    );
    let digest = hubwasm::plugin::sha256_hex(&std::fs::read(&v2).unwrap())[..12].to_string();
    assert_eq!(record.to.digest, digest);
    for addr in [&addr_a, &addr_b] {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while running(addr).await.0 != digest {
            assert!(std::time::Instant::now() < deadline, "{}", b.log());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // The tag moves: the running version does not.
    let (ok, text) = push(&v3, &tag, true);
    assert!(ok, "{text}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(running(&addr_a).await.0, digest);
    assert_eq!(running(&addr_b).await.0, digest);
    // A host that replaces one runs the accepted version, from the store by digest.
    b.kill9();
    let (c, addr_c) = start("c", &world, &config).await;
    assert_eq!(running(&addr_c).await.0, digest, "{}", c.log());

    // The registry down: refused with the reason, the running version kept.
    registry.stop();
    let answer = swap(&addr_a, &tag, ACME).await;
    assert_eq!(answer.status, 502, "{}", answer.body);
    assert!(answer.body.contains("cannot pull"), "{}", answer.body);
    assert_eq!(running(&addr_a).await.0, digest);
    // Something that is not a registry: refused (the operator may name any registry).
    let (junk, stop, server) = garbage_server();
    let answer = swap(&addr_a, &format!("oci://{junk}/acme/record:1"), OPERATOR).await;
    assert!(
        answer.status == 502 || answer.status == 422,
        "{}: {}",
        answer.status,
        answer.body
    );
    assert_eq!(running(&addr_a).await.0, digest);
    drop(a);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = server.join();
}

/// A config may name its plugin by registry reference: pulled at start, pinned, run; a tenant's
/// config outside its granted registries is refused at load with the line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_names_its_plugin_by_registry_reference() {
    let registry = Registry::start();
    let world = Local::start(2).await;
    let host = registry.host();
    let base = std::fs::read(hubwasm_plugins::TEST_RECORD).unwrap();
    let v2 = world.path().join("record_v2.wasm");
    std::fs::write(&v2, version(&base, b"2")).unwrap();
    let (ok, text) = push(&v2, &format!("oci://{host}/acme/record:v2"), true);
    assert!(ok, "{text}");
    crate::harness::send(&world.endpoint, 10, None).await;
    let registry_keys = format!(
        "\n[[registry]]\nhost = \"{host}\"\nusername_env = \"HUBWASM_TEST_REGISTRY_USER\"\n\
         password_env = \"HUBWASM_TEST_REGISTRY_PASSWORD\"\n"
    );
    let config = world.config("").replace(
        &format!("plugin = \"{}\"", hubwasm_plugins::TEST_RECORD),
        &format!("plugin = \"oci://{host}/acme/record:v2\""),
    ) + &registry_keys;
    let mut run = Host::start_with_env(
        "from-registry",
        world.path(),
        &config,
        &["--exit-when-idle", "1"],
        &[
            ("HUBWASM_TEST_REGISTRY_USER", USER),
            ("HUBWASM_TEST_REGISTRY_PASSWORD", PASSWORD),
        ],
    );
    let status = run.wait(Duration::from_secs(120));
    let log = run.log();
    assert!(status.success(), "{log}");
    assert!(
        log.contains(&format!("pulled as oci://{host}/acme/record@sha256:")),
        "{log}"
    );
    assert_eq!(run.handled("$Default").len(), 10, "{log}");

    // Without the credentials the registry refuses: the host says so and does not start.
    let mut refused = Host::start("no-credentials", world.path(), &config, &[]);
    let status = refused.wait(Duration::from_secs(60));
    assert!(!status.success());
    assert!(refused.log().contains("cannot pull"), "{}", refused.log());

    // A tenant's plugin outside its grants: refused at load.
    let config = config.replace("[eventhub.balancing]", "tenant = \"acme\"\n\n[eventhub.balancing]")
        + "\n[[tenant]]\nname = \"acme\"\n[tenant.grants]\nregistries = [\"127.0.0.1:1/elsewhere\"]\n";
    let mut bad = Host::start("ungranted", world.path(), &config, &[]);
    let status = bad.wait(Duration::from_secs(60));
    assert!(!status.success());
    assert!(
        bad.log()
            .contains("may pull only from the registries granted to it"),
        "{}",
        bad.log()
    );
}
