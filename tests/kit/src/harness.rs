//! What every `hubwasm run` test uses: the embedded endpoint, host processes with their logs,
//! configs, sending, bounded waits, and views of the checkpoint store and `hubwasm status`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hubwasm::azure_blob::BlobContainer;
use hubwasm::checkpoint::blob::BlobCheckpointStore;
use hubwasm::checkpoint::local::LocalCheckpointStore;
use hubwasm::checkpoint::CheckpointStore;
use hubwasm_hub::config::{EventHubConfig, HubConfig};
use hubwasm_hub::RunningHub;

use crate::azurite::{self, Azurite};
use crate::python;

pub const HUB: &str = "orders";
pub const NS: &str = "localhost";

pub async fn start_endpoint(data: &Path, partitions: u32) -> RunningHub {
    start_endpoint_at(data, partitions, "127.0.0.1:0".parse().unwrap()).await
}

/// The endpoint on a given address (to restart it where the hosts expect it).
pub async fn start_endpoint_at(
    data: &Path,
    partitions: u32,
    listen: std::net::SocketAddr,
) -> RunningHub {
    hubwasm_hub::start(HubConfig {
        listen,
        data_dir: data.to_path_buf(),
        event_hubs: vec![
            EventHubConfig {
                name: HUB.into(),
                partitions,
                consumer_groups: vec!["second".into(), "rust".into(), "python".into(), "js".into()],
            },
            EventHubConfig {
                name: "dead-letters".into(),
                partitions: 1,
                consumer_groups: vec![],
            },
            // Where plugins emit to (tests/host_run/effects.rs).
            EventHubConfig {
                name: "kept".into(),
                partitions: 2,
                consumer_groups: vec![],
            },
        ],
        ..HubConfig::default()
    })
    .await
    .unwrap()
}

/// One test's world on the local checkpoint store: its temp dir, the endpoint (`partitions`
/// partitions in the hub under test), the store's directory and the dead-letter directory.
pub struct Local {
    pub dir: tempfile::TempDir,
    pub endpoint: RunningHub,
    pub store_dir: PathBuf,
    pub dead: PathBuf,
}

impl Local {
    pub async fn start(partitions: u32) -> Local {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = start_endpoint(&dir.path().join("hub"), partitions).await;
        let store_dir = dir.path().join("checkpoints");
        let dead = dir.path().join("dead");
        Local {
            dir,
            endpoint,
            store_dir,
            dead,
        }
    }

    /// A host config on this store and dead-letter directory (see [`config`]).
    pub fn config(&self, hub_extra: &str) -> String {
        config(&self.endpoint, &self.store_dir, &self.dead, hub_extra)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn store(&self) -> LocalCheckpointStore {
        LocalCheckpointStore::new(&self.store_dir)
    }
}

/// A `hubwasm run` process; killed (SIGKILL) if still running when dropped.
pub struct Host {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Host {
    pub fn start(name: &str, dir: &Path, config: &str, extra: &[&str]) -> Host {
        Host::start_with_env(name, dir, config, extra, &[])
    }

    /// [`Host::start`] with extra environment variables for the process.
    pub fn start_with_env(
        name: &str,
        dir: &Path,
        config: &str,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> Host {
        let config_path = dir.join(format!("{name}.toml"));
        std::fs::write(&config_path, config).unwrap();
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(crate::hubwasm_bin())
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .args(["--instance-id", name])
            .args(extra)
            .env(
                "HUBWASM_LOG",
                "info,azure_messaging_eventhubs=warn,azure_core_amqp=warn,fe2o3_amqp=warn",
            )
            .envs(envs.iter().copied())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("start hubwasm run");
        Host {
            name: name.to_string(),
            child,
            log,
        }
    }

    /// Run until caught up (`--exit-when-idle 1`, at most `limit`) and check that it exited 0.
    pub fn run_until_idle(name: &str, dir: &Path, config: &str, limit: Duration) -> Host {
        let mut host = Host::start(name, dir, config, &["--exit-when-idle", "1"]);
        let status = host.wait(limit);
        assert!(status.success(), "{name}: {status}\n{}", host.log());
        host
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// (partition, sequence number) of every event this host reported handled, for a group.
    pub fn handled(&self, group: &str) -> Vec<(String, i64)> {
        handled_in(&self.log(), group)
    }

    /// Whether the process has not exited yet.
    pub fn still_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for the exit status (bounded).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.wait(Duration::from_secs(60))
    }

    pub fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "host {} did not exit in time; log:\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn handled_in(log: &str, group: &str) -> Vec<(String, i64)> {
    let marker = format!("handled group={group} partition=");
    log.lines()
        .filter_map(|line| {
            let rest = &line[line.find(&marker)? + marker.len()..];
            let (partition, rest) = rest.split_once(" seq=")?;
            let seq = rest.split_whitespace().next()?.parse().ok()?;
            Some((partition.to_string(), seq))
        })
        .collect()
}

/// A host config on the local checkpoint store with dead letters in a directory.
pub fn config(endpoint: &RunningHub, store: &Path, dead_letter: &Path, hub_extra: &str) -> String {
    config_with(
        endpoint,
        &local_checkpoints(store),
        &format!("sink = \"directory\"\npath = \"{}\"", dead_letter.display()),
        hub_extra,
    )
}

pub fn local_checkpoints(store: &Path) -> String {
    format!("store = \"local\"\npath = \"{}\"", store.display())
}

/// A host config with Blob checkpoints in the container `checkpoints` on `azurite` and dead
/// letters in the directory `dead`.
#[allow(dead_code)] // the reliability suite's (it shares this harness)
pub fn blob_config(endpoint: &RunningHub, azurite: &Azurite, dead: &Path) -> String {
    config_with(
        endpoint,
        &format!("store = \"blob\"\n{}", blob_keys(azurite, "checkpoints")),
        &format!("sink = \"directory\"\npath = \"{}\"", dead.display()),
        "",
    )
}

/// The `[checkpoints]` (or `[eventhub.dead_letter]`) keys for a container on Azurite.
pub fn blob_keys(azurite: &Azurite, container: &str) -> String {
    format!(
        "endpoint = \"{}\"\naccount = \"{}\"\nkey = \"{}\"\ncontainer = \"{container}\"",
        azurite.blob_endpoint(),
        azurite::ACCOUNT,
        azurite::KEY
    )
}

pub fn config_with(
    endpoint: &RunningHub,
    checkpoints: &str,
    dead_letter: &str,
    hub_extra: &str,
) -> String {
    format!(
        r#"summary_interval_secs = 1

[checkpoints]
{checkpoints}

[[eventhub]]
name = "{HUB}"
connection_string = "{conn}"
plugin = "{plugin}"
max_batch_size = 20
max_wait_ms = 50
{hub_extra}

[eventhub.balancing]
strategy = "balanced"
update_interval_ms = 1000
ownership_expiry_ms = 3000
# Strict fencing: a partition another instance took stops before its very next batch.
ownership_check_ms = 0

[eventhub.dead_letter]
{dead_letter}
"#,
        conn = endpoint.connection_string(HUB),
        plugin = hubwasm_plugins::TEST_RECORD,
    )
}

/// The admin API's address, as the host's log announces it.
pub fn admin_address(host: &Host) -> Option<String> {
    let log = host.log();
    let at = log.find("admin API on http://")? + "admin API on http://".len();
    let rest = &log[at..];
    Some(rest[..rest.find(char::is_whitespace)?].to_string())
}

/// Start a host with `envs` (its config and log in `dir`) and wait until its admin API
/// answers; the host and the API's address.
pub async fn start_with_admin(
    name: &str,
    dir: &Path,
    config: &str,
    envs: &[(&str, &str)],
) -> (Host, String) {
    std::fs::create_dir_all(dir).unwrap();
    let host = Host::start_with_env(name, dir, config, &[], envs);
    eventually(
        &format!("{name}'s admin API"),
        Duration::from_secs(60),
        || admin_address(&host).is_some(),
        &[&host],
    )
    .await;
    let addr = admin_address(&host).unwrap();
    (host, addr)
}

/// [`start_with_admin`], then wait until the host owns `partitions` partitions of its first
/// event hub (as its `/status` says): the one way tests start a host that is serving.
pub async fn start_serving(
    name: &str,
    dir: &Path,
    config: &str,
    envs: &[(&str, &str)],
    partitions: usize,
) -> (Host, String) {
    let (host, addr) = start_with_admin(name, dir, config, envs).await;
    let owned = || async {
        let answer = hubwasm::admin::client::request(
            &addr,
            "GET",
            "/status",
            None,
            None,
            Duration::from_secs(10),
        )
        .await
        .ok()?;
        let status: hubwasm::admin::Status = serde_json::from_str(&answer.body).ok()?;
        Some(status.event_hubs.first()?.partitions.len())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if owned().await.unwrap_or(0) >= partitions {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{name} owns {partitions} partitions within 60 s\n{}",
            tail(&host.log(), 60)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (host, addr)
}

/// Swap the plugin of the hub under test by uploading `bytes` (named `name`) with `token`.
pub async fn upload_swap(
    addr: &str,
    bytes: &[u8],
    name: &str,
    token: &str,
) -> hubwasm::admin::client::Answer {
    hubwasm::admin::client::send(
        addr,
        "POST",
        &format!("/v1/event-hubs/{HUB}/swap?name={name}"),
        bytes,
        Some("application/wasm"),
        Some(token),
        Duration::from_secs(60),
    )
    .await
    .unwrap()
}

/// Swap the plugin of the hub under test with a JSON request (`{"plugin": ...}`) and `token`.
pub async fn json_swap(
    addr: &str,
    body: serde_json::Value,
    token: &str,
) -> hubwasm::admin::client::Answer {
    hubwasm::admin::client::request(
        addr,
        "POST",
        &format!("/v1/event-hubs/{HUB}/swap"),
        Some(&body.to_string()),
        Some(token),
        Duration::from_secs(60),
    )
    .await
    .unwrap()
}

/// Send `count` events round-robin over the partitions, or to one partition.
pub async fn send(endpoint: &RunningHub, count: usize, partition: Option<&str>) {
    let options = hubwasm::send::SendOptions {
        connection_string: endpoint.connection_string(HUB),
        count,
        interval: Duration::ZERO,
        partition: partition.map(str::to_string),
        partition_key: None,
        batch_size: 1,
        file: None,
    };
    hubwasm::send::send(&options, |_| {}).await.unwrap();
}

/// Send these bodies to `hub`, round-robin over its partitions.
pub async fn send_bodies(endpoint: &RunningHub, hub: &str, bodies: &[String], dir: &Path) {
    send_bodies_in(endpoint, hub, bodies, dir, 100).await;
}

/// [`send_bodies`] in batches of `batch_size` (1: one event per partition in turn).
pub async fn send_bodies_in(
    endpoint: &RunningHub,
    hub: &str,
    bodies: &[String],
    dir: &Path,
    batch_size: usize,
) {
    let file = dir.join(format!("{hub}-bodies.jsonl"));
    std::fs::write(&file, bodies.join("\n") + "\n").unwrap();
    let options = hubwasm::send::SendOptions {
        connection_string: endpoint.connection_string(hub),
        count: 0,
        interval: Duration::ZERO,
        partition: None,
        partition_key: None,
        batch_size,
        file: Some(file),
    };
    hubwasm::send::send(&options, |_| {}).await.unwrap();
}

/// Wait (bounded) until `done` holds; poll every 100 ms.
pub async fn eventually(
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
    logs: &[&Host],
) {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            let logs: Vec<String> = logs
                .iter()
                .map(|h| format!("--- {} ---\n{}", h.name, tail(&h.log(), 60)))
                .collect();
            panic!("timed out waiting for: {what}\n{}", logs.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Every (partition, seq) in 0..per_partition for `partitions` partitions.
pub fn all_events(partitions: u32, per_partition: i64) -> BTreeSet<(String, i64)> {
    (0..partitions)
        .flat_map(|p| (0..per_partition).map(move |s| (p.to_string(), s)))
        .collect()
}

pub async fn owners(store: &impl CheckpointStore, group: &str) -> BTreeMap<String, Option<String>> {
    store
        .list_ownerships(NS, HUB, group)
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.partition_id, o.owner_id))
        .collect()
}

pub async fn checkpoints(
    store: &impl CheckpointStore,
    group: &str,
) -> BTreeMap<String, Option<i64>> {
    store
        .list_checkpoints(NS, HUB, group)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.partition_id, c.sequence_number))
        .collect()
}

/// `hubwasm status --config <config>`.
pub fn status_of(config: &Path) -> Command {
    let mut status = Command::new(crate::hubwasm_bin());
    status.args(["status", "--config"]).arg(config);
    status
}

/// `hubwasm status ...` shows `partitions` rows, each `<partition> <expected>`
/// (owner, checkpoint, last sequence number, lag).
pub fn assert_status_rows(mut status: Command, partitions: usize, expected: [&str; 4]) {
    let out = status.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), partitions, "{text}");
    for row in rows {
        assert_eq!(
            row[1..],
            expected,
            "partition, owner, checkpoint, last, lag: {text}"
        );
    }
}

/// A store on a container of Azurite (created if missing), to look at what the hosts wrote.
pub async fn blob_store(azurite: &Azurite, container: &str) -> BlobCheckpointStore {
    let store = BlobContainer::with_account_key(
        &azurite.blob_endpoint(),
        azurite::ACCOUNT,
        azurite::KEY,
        container,
    )
    .map(BlobCheckpointStore::new)
    .unwrap();
    store.ensure_container().await.unwrap();
    store
}

/// Run `tests/python/blob_consumer.py` until it has `expect` events; the events it received.
pub async fn python_consumer(
    azurite: &Azurite,
    endpoint: &RunningHub,
    container: &str,
    expect: usize,
) -> BTreeSet<(String, i64)> {
    let mut cmd = python::command("blob_consumer.py");
    cmd.args(["--conn", &endpoint.connection_string(HUB)])
        .args(["--storage", &azurite.connection_string()])
        .args(["--container", container])
        .args(["--expect", &expect.to_string()]);
    let result = python::json_result("blob_consumer.py", cmd).await;
    python_events(&result)
}

/// The (partition, sequence number) pairs `blob_consumer.py` reports.
pub fn python_events(result: &serde_json::Value) -> BTreeSet<(String, i64)> {
    assert_eq!(result["namespace"], NS, "{result}");
    result["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e[0].as_str().unwrap().to_string(), e[1].as_i64().unwrap()))
        .collect()
}
