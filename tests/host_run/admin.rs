//! The admin API of a running host: health, status, Prometheus metrics, and hot swap under
//! load (no event lost or repeated; a broken version refused while the old keeps running;
//! changes refused without the token).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hubwasm::admin::client::{request, Answer};

use crate::harness::{admin_address, all_events, eventually, start_with_admin, Host, Local, HUB};

const TOKEN: &str = "test-admin-token-7f3a";

/// The `[admin]` lines of a test host: a free port, the token from the test's variable.
const ADMIN: &str =
    "\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"HUBWASM_TEST_ADMIN_TOKEN\"\n";

/// A host with the admin API and the test token; returns once the API answers, with its address.
async fn admin_host(name: &str, world: &Local, config: &str) -> (Host, String) {
    start_with_admin(
        name,
        world.path(),
        config,
        &[("HUBWASM_TEST_ADMIN_TOKEN", TOKEN)],
    )
    .await
}

/// A copy of `wasm` with a custom section appended: the same code, another content hash.
fn another_version(wasm: &str, to: &Path) -> PathBuf {
    let mut bytes = std::fs::read(wasm).unwrap();
    let name = b"hubwasm-test-version";
    let payload = b"2";
    bytes.push(0); // custom section
    bytes.push((1 + name.len() + payload.len()) as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    std::fs::write(to, bytes).unwrap();
    to.to_path_buf()
}

async fn get(addr: &str, path: &str) -> Answer {
    request(addr, "GET", path, None, None, Duration::from_secs(10))
        .await
        .unwrap()
}

/// Swap in the component `wasm` by uploading its bytes, named after the file.
async fn swap(addr: &str, wasm: &Path, token: Option<&str>) -> Answer {
    upload(addr, wasm, None, token).await
}

/// Upload `wasm` (and, with `replay`, sample events it must pass first) as a swap.
pub(crate) async fn upload(
    addr: &str,
    wasm: &Path,
    replay: Option<&Path>,
    token: Option<&str>,
) -> Answer {
    let bytes = std::fs::read(wasm).unwrap();
    let name = wasm.file_stem().unwrap().to_str().unwrap();
    let path = format!("/v1/event-hubs/{HUB}/swap?name={name}");
    let (body, content_type) = match replay {
        Some(events) => hubwasm::admin::client::multipart(&[
            ("plugin", &format!("{name}.wasm"), &bytes),
            ("replay", "replay.jsonl", &std::fs::read(events).unwrap()),
        ]),
        None => (bytes, "application/wasm".to_string()),
    };
    hubwasm::admin::client::send(
        addr,
        "POST",
        &path,
        &body,
        Some(&content_type),
        token,
        Duration::from_secs(120),
    )
    .await
    .unwrap()
}

/// (partition, sequence number) → the plugin names that handled it, from a host's log.
fn handled_by(log: &str) -> BTreeMap<(String, i64), Vec<String>> {
    let mut out: BTreeMap<(String, i64), Vec<String>> = BTreeMap::new();
    for line in log.lines() {
        let Some(at) = line.find("handled group=$Default partition=") else {
            continue;
        };
        let rest = &line[at + "handled group=$Default partition=".len()..];
        let Some((partition, rest)) = rest.split_once(" seq=") else {
            continue;
        };
        let Some(seq) = rest.split_whitespace().next().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let plugin = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("plugin="))
            .unwrap_or("?")
            .trim_matches('"')
            .to_string();
        out.entry((partition.to_string(), seq))
            .or_default()
            .push(plugin);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_under_load_loses_and_repeats_nothing_and_refuses_what_it_must() {
    let world = Local::start(4).await;
    let v2 = another_version(
        hubwasm_plugins::TEST_RECORD,
        &world.path().join("test_record_v2.wasm"),
    );
    // `min_value` means nothing to test-record; json-filter's init refuses it (below).
    let config = world.config("[eventhub.plugin_config]\nmin_value = \"not-a-number\"\n") + ADMIN;
    let host = Host::start_with_env(
        "swapper",
        world.path(),
        &config,
        &[],
        &[("HUBWASM_TEST_ADMIN_TOKEN", TOKEN)],
    );
    eventually(
        "the admin API and 4 partitions",
        Duration::from_secs(60),
        || admin_address(&host).is_some() && host.log().matches("Partition opened").count() >= 4,
        &[&host],
    )
    .await;
    let addr = admin_address(&host).unwrap();
    assert_eq!(get(&addr, "/healthz").await.status, 200);
    assert_eq!(get(&addr, "/readyz").await.status, 200);

    // Load: 8 rounds of 100 events; the swap lands in the middle.
    let sender = {
        let conn = world.endpoint.connection_string(HUB);
        tokio::spawn(async move {
            for _ in 0..8 {
                let options = hubwasm::send::SendOptions {
                    connection_string: conn.clone(),
                    count: 100,
                    interval: Duration::ZERO,
                    partition: None,
                    partition_key: None,
                    batch_size: 1,
                    file: None,
                };
                hubwasm::send::send(&options, |_| {}).await.unwrap();
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    eventually(
        "the first events handled",
        Duration::from_secs(60),
        || handled_by(&host.log()).len() >= 50,
        &[&host],
    )
    .await;

    // Changes need the token.
    let no_token = swap(&addr, &v2, None).await;
    assert_eq!(no_token.status, 401, "{}", no_token.body);
    let wrong = swap(&addr, &v2, Some("guess")).await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(wrong.body.contains("bearer token"), "{}", wrong.body);

    // Broken versions are refused with the reason; the old keeps running.
    let wrong_world = swap(
        &addr,
        Path::new(hubwasm_plugins::TEST_WRONG_WORLD),
        Some(TOKEN),
    )
    .await;
    assert_eq!(wrong_world.status, 422, "{}", wrong_world.body);
    assert!(
        wrong_world
            .body
            .contains("does not implement a hubwasm plugin world")
            && wrong_world.body.contains("unchanged"),
        "{}",
        wrong_world.body
    );
    let init_fails = swap(&addr, Path::new(hubwasm_plugins::JSON_FILTER), Some(TOKEN)).await;
    assert_eq!(init_fails.status, 422, "{}", init_fails.body);
    assert!(
        init_fails.body.contains("min_value") && init_fails.body.contains("not-a-number"),
        "the plugin's own init message: {}",
        init_fails.body
    );
    // Not WebAssembly: refused without quoting what was sent.
    let text = world.path().join("notes.wasm");
    std::fs::write(&text, "root:*:19000:0:99999:7:::\n").unwrap();
    let not_wasm = swap(&addr, &text, Some(TOKEN)).await;
    assert_eq!(not_wasm.status, 422, "{}", not_wasm.body);
    assert!(
        !not_wasm.body.contains("root") && !not_wasm.body.contains("72 6f"),
        "{}",
        not_wasm.body
    );

    // The swap.
    let swapped = swap(&addr, &v2, Some(TOKEN)).await;
    assert_eq!(swapped.status, 200, "{}", swapped.body);
    let record: hubwasm::host::SwapRecord = serde_json::from_str(&swapped.body).unwrap();
    assert_eq!(record.from.name, "test_record");
    assert_eq!(record.to.name, "test_record_v2");
    assert_ne!(record.from.digest, record.to.digest);

    sender.await.unwrap();
    let expected = all_events(4, 200);
    eventually(
        "every event handled",
        Duration::from_secs(60),
        || handled_by(&host.log()).len() >= expected.len(),
        &[&host],
    )
    .await;
    let handled = handled_by(&host.log());
    let keys: std::collections::BTreeSet<(String, i64)> = handled.keys().cloned().collect();
    assert_eq!(keys, expected, "every event, and nothing else");
    let repeated: Vec<_> = handled.iter().filter(|(_, by)| by.len() > 1).collect();
    assert!(
        repeated.is_empty(),
        "no event twice without a failure: {repeated:?}"
    );
    // Per partition the versions do not interleave: the old, then only the new.
    for partition in ["0", "1", "2", "3"] {
        let versions: Vec<&str> = handled
            .iter()
            .filter(|((p, _), _)| p == partition)
            .map(|(_, by)| by[0].as_str())
            .collect();
        let first_new = versions.iter().position(|v| *v == "test_record_v2");
        let first_new = first_new.unwrap_or_else(|| panic!("partition {partition}: {versions:?}"));
        assert!(
            versions[first_new..].iter().all(|v| *v == "test_record_v2")
                && versions[..first_new].iter().all(|v| *v == "test_record"),
            "partition {partition}: {versions:?}"
        );
    }
    // The old version was told its partitions closed; the new one that they opened.
    let log = host.log();
    assert!(
        log.lines()
            .any(|l| l.contains("plugin=\"test_record\"") && l.contains("closed group=")),
        "{}",
        crate::harness::tail(&log, 80)
    );
    assert!(
        log.lines()
            .any(|l| l.contains("plugin=\"test_record_v2\"") && l.contains("opened group=")),
        "{}",
        crate::harness::tail(&log, 80)
    );

    // /status and /metrics say so.
    let status: hubwasm::admin::Status =
        serde_json::from_str(&get(&addr, "/status").await.body).unwrap();
    assert_eq!(status.swaps, 1);
    assert_eq!(status.event_hubs[0].plugin.name, "test_record_v2");
    assert_eq!(status.event_hubs[0].swaps.len(), 1);
    assert_eq!(status.event_hubs[0].partitions.len(), 4);
    assert_eq!(status.handled, expected.len() as u64);
    let metrics = get(&addr, "/metrics").await;
    assert_eq!(metrics.status, 200);
    let lines = metrics.body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    let handled_total: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "hubwasm_events_handled_total")
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(handled_total, expected.len() as f64, "{}", metrics.body);
    let versions: std::collections::BTreeSet<&str> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "hubwasm_events_handled_total")
        .filter_map(|s| s.labels.get("plugin"))
        .collect();
    assert_eq!(
        versions,
        ["test_record", "test_record_v2"].into_iter().collect(),
        "handled events are labelled with the version that handled them"
    );
    assert!(scrape
        .samples
        .iter()
        .any(|s| s.metric == "hubwasm_plugin_swaps_total"));
    // The swap's pause was measured on the partitions that switched.
    let switches: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "hubwasm_swap_pause_seconds_count")
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum();
    assert!((1.0..=4.0).contains(&switches), "{}", metrics.body);
    drop(host);
}

async fn rollback(addr: &str, token: Option<&str>) -> Answer {
    request(
        addr,
        "POST",
        &format!("/v1/event-hubs/{HUB}/rollback"),
        None,
        token,
        Duration::from_secs(30),
    )
    .await
    .unwrap()
}

async fn status(addr: &str) -> hubwasm::admin::Status {
    serde_json::from_str(&get(addr, "/status").await.body).unwrap()
}

/// A new version that fails every event is rolled back by itself; the events it failed are
/// handled by the old version afterwards (none dead-lettered); a rollback on command returns
/// to the version a swap replaced, and a second one has nothing to return to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_storm_rolls_back_by_itself_and_rollback_works_on_command() {
    let world = Local::start(4).await;
    let config = world.config(
        "[eventhub.failure]\nmax_attempts = 1000\ninitial_backoff_ms = 20\nmax_backoff_ms = 100\n\
         [eventhub.rollback]\nfailure_rate = 0.5\nmin_failures = 8\nwindow_ms = 30000\n",
    ) + ADMIN;
    let host = Host::start_with_env(
        "rollbacker",
        world.path(),
        &config,
        &[],
        &[("HUBWASM_TEST_ADMIN_TOKEN", TOKEN)],
    );
    eventually(
        "the admin API and 4 partitions",
        Duration::from_secs(60),
        || admin_address(&host).is_some() && host.log().matches("Partition opened").count() >= 4,
        &[&host],
    )
    .await;
    let addr = admin_address(&host).unwrap();
    let nothing = rollback(&addr, Some(TOKEN)).await;
    assert_eq!(nothing.status, 409, "no swap yet: {}", nothing.body);
    assert_eq!(rollback(&addr, None).await.status, 401);

    crate::harness::send(&world.endpoint, 40, None).await;
    eventually(
        "the first 40 events",
        Duration::from_secs(60),
        || handled_by(&host.log()).len() >= 40,
        &[&host],
    )
    .await;
    // With sample events to pass first, the broken version is refused before it runs.
    let samples = world.path().join("samples.jsonl");
    std::fs::write(&samples, "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n").unwrap();
    let checked = upload(
        &addr,
        Path::new(hubwasm_plugins::TEST_FAIL_ALL),
        Some(&samples),
        Some(TOKEN),
    )
    .await;
    assert_eq!(checked.status, 422, "{}", checked.body);
    assert!(
        checked.body.contains("failed 3 of the 3 sample events")
            && checked
                .body
                .contains("failing sequence number 0 on purpose"),
        "{}",
        checked.body
    );
    assert_eq!(status(&addr).await.swaps, 0);

    let storm = swap(
        &addr,
        Path::new(hubwasm_plugins::TEST_FAIL_ALL),
        Some(TOKEN),
    )
    .await;
    assert_eq!(storm.status, 200, "{}", storm.body);
    crate::harness::send(&world.endpoint, 40, None).await;

    eventually(
        "the automatic rollback",
        Duration::from_secs(60),
        || host.log().contains("automatic rollback:"),
        &[&host],
    )
    .await;
    let now = status(&addr).await;
    assert_eq!(now.event_hubs[0].plugin.name, "test_record", "{now:?}");
    let reasons: Vec<&str> = now.event_hubs[0]
        .swaps
        .iter()
        .map(|s| s.reason.as_str())
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0], "swap");
    assert!(reasons[1].starts_with("automatic rollback:"), "{reasons:?}");
    assert!(now.failures >= 8, "{now:?}");

    // Everything is handled by the old version in the end, nothing dead-lettered.
    let expected = all_events(4, 20);
    eventually(
        "all 80 events handled",
        Duration::from_secs(60),
        || handled_by(&host.log()).len() >= expected.len(),
        &[&host],
    )
    .await;
    let handled = handled_by(&host.log());
    assert_eq!(
        handled
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        expected
    );
    assert!(handled
        .values()
        .all(|by| by.iter().all(|p| p == "test_record")));
    assert_eq!(status(&addr).await.dead_lettered, 0);

    // A rollback already happened: nothing to return to. A new swap can be rolled back.
    assert_eq!(rollback(&addr, Some(TOKEN)).await.status, 409);
    let v2 = another_version(
        hubwasm_plugins::TEST_RECORD,
        &world.path().join("test_record_v2.wasm"),
    );
    assert_eq!(swap(&addr, &v2, Some(TOKEN)).await.status, 200);
    let back = rollback(&addr, Some(TOKEN)).await;
    assert_eq!(back.status, 200, "{}", back.body);
    let record: hubwasm::host::SwapRecord = serde_json::from_str(&back.body).unwrap();
    assert_eq!(
        (
            record.from.name.as_str(),
            record.to.name.as_str(),
            record.reason.as_str()
        ),
        ("test_record_v2", "test_record", "rollback")
    );
    assert_eq!(status(&addr).await.event_hubs[0].plugin.name, "test_record");
}

/// Every host of a consumer group converges on a swapped version: the others follow the
/// record beside the checkpoints, a host started later starts with it, a host that takes a
/// partition over runs it, and a rollback on any host brings them all back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosts_of_a_group_converge_on_a_swap_and_a_rollback() {
    let world = Local::start(4).await;
    let config = world.config("") + ADMIN;
    let env = [("HUBWASM_TEST_ADMIN_TOKEN", TOKEN)];
    let mut a = Host::start_with_env("host-a", world.path(), &config, &[], &env);
    let b = Host::start_with_env("host-b", world.path(), &config, &[], &env);
    eventually(
        "both admin APIs",
        Duration::from_secs(60),
        || admin_address(&a).is_some() && admin_address(&b).is_some(),
        &[&a, &b],
    )
    .await;
    let (addr_a, addr_b) = (admin_address(&a).unwrap(), admin_address(&b).unwrap());
    crate::harness::send(&world.endpoint, 80, None).await;
    let handled = |hosts: &[&Host]| {
        let mut all: BTreeMap<(String, i64), Vec<String>> = BTreeMap::new();
        for h in hosts {
            for (k, v) in handled_by(&h.log()) {
                all.entry(k).or_default().extend(v);
            }
        }
        all
    };
    eventually(
        "80 events",
        Duration::from_secs(60),
        || handled(&[&a, &b]).len() >= 80,
        &[&a, &b],
    )
    .await;

    let v2 = another_version(
        hubwasm_plugins::TEST_RECORD,
        &world.path().join("test_record_v2.wasm"),
    );
    let swapped = swap(&addr_a, &v2, Some(TOKEN)).await;
    assert_eq!(swapped.status, 200, "{}", swapped.body);
    eventually(
        "host b follows the swap",
        Duration::from_secs(30),
        || b.log().contains("followed swap"),
        &[&a, &b],
    )
    .await;
    assert_eq!(
        status(&addr_b).await.event_hubs[0].plugin.name,
        "test_record_v2"
    );

    // Events after the convergence: all on the new version, whichever host has them.
    crate::harness::send(&world.endpoint, 80, None).await;
    eventually(
        "160 events",
        Duration::from_secs(60),
        || handled(&[&a, &b]).len() >= 160,
        &[&a, &b],
    )
    .await;
    let after: Vec<_> = handled(&[&a, &b])
        .into_iter()
        .filter(|((_, seq), _)| *seq >= 20)
        .filter(|(_, by)| by.iter().any(|p| p != "test_record_v2"))
        .collect();
    assert!(
        after.is_empty(),
        "events of the second round on the old version: {after:?}"
    );

    // A host started now runs the group's version; the one killed leaves its partitions to
    // hosts that run it too.
    let c = Host::start_with_env("host-c", world.path(), &config, &[], &env);
    eventually(
        "host c starts on the recorded version",
        Duration::from_secs(60),
        || {
            c.log()
                .contains("running the consumer group's version test_record_v2")
        },
        &[&c],
    )
    .await;
    a.kill9();
    crate::harness::send(&world.endpoint, 40, None).await;
    eventually(
        "200 events after the kill",
        Duration::from_secs(90),
        || handled(&[&a, &b, &c]).len() >= 200,
        &[&b, &c],
    )
    .await;
    let all = handled(&[&a, &b, &c]);
    assert_eq!(
        all.keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        all_events(4, 50),
        "nothing lost"
    );
    let late: Vec<_> = all
        .iter()
        .filter(|((_, seq), _)| *seq >= 40)
        .filter(|(_, by)| by.iter().any(|p| p != "test_record_v2"))
        .collect();
    assert!(
        late.is_empty(),
        "after the kill, still the new version: {late:?}"
    );

    // A rollback on b brings c back too.
    let back = rollback(&addr_b, Some(TOKEN)).await;
    assert_eq!(back.status, 200, "{}", back.body);
    eventually(
        "host c follows the rollback",
        Duration::from_secs(30),
        || c.log().contains("followed rollback"),
        &[&b, &c],
    )
    .await;
}

/// `[eventhub.swap] watch`: replacing the plugin file swaps the new file in; a broken file is
/// refused and the running version stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_the_watched_plugin_file_swaps_it_in() {
    let world = Local::start(2).await;
    let plugin = world.path().join("watched.wasm");
    std::fs::copy(hubwasm_plugins::TEST_RECORD, &plugin).unwrap();
    let config = world
        .config("[eventhub.swap]\nwatch = true\n")
        .replace(hubwasm_plugins::TEST_RECORD, &plugin.display().to_string())
        + "\n[admin]\nlisten = \"127.0.0.1:0\"\n";
    let host = Host::start("watcher", world.path(), &config, &[]);
    eventually(
        "the admin API",
        Duration::from_secs(60),
        || admin_address(&host).is_some(),
        &[&host],
    )
    .await;
    let addr = admin_address(&host).unwrap();
    let first = status(&addr).await.event_hubs[0].plugin.digest.clone();

    // Replace the file the way deployments do: write beside it, rename over it.
    let replace = |from: &Path| {
        let tmp = world.path().join("watched.wasm.tmp");
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, &plugin).unwrap();
    };
    let v2 = another_version(
        hubwasm_plugins::TEST_RECORD,
        &world.path().join("test_record_v2.wasm"),
    );
    replace(&v2);
    let mut now = status(&addr).await;
    for _ in 0..300 {
        if now.swaps > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = status(&addr).await;
    }
    assert_eq!(now.swaps, 1, "{}", crate::harness::tail(&host.log(), 40));
    assert_eq!(now.event_hubs[0].swaps[0].reason, "file replaced");
    assert_ne!(now.event_hubs[0].plugin.digest, first);

    // Still working: events are handled by the new file.
    crate::harness::send(&world.endpoint, 20, None).await;
    eventually(
        "20 events",
        Duration::from_secs(60),
        || handled_by(&host.log()).len() >= 20,
        &[&host],
    )
    .await;

    // A broken file is refused; the version that runs stays.
    replace(Path::new(hubwasm_plugins::TEST_WRONG_WORLD));
    eventually(
        "the broken file refused",
        Duration::from_secs(30),
        || host.log().contains("new version was refused"),
        &[&host],
    )
    .await;
    let after = status(&addr).await;
    assert_eq!(after.swaps, 1);
    assert_eq!(
        after.event_hubs[0].plugin.digest,
        now.event_hubs[0].plugin.digest
    );
    crate::harness::send(&world.endpoint, 20, None).await;
    eventually(
        "40 events",
        Duration::from_secs(60),
        || handled_by(&host.log()).len() >= 40,
        &[&host],
    )
    .await;
}

/// The status page at `/`, opened in headless Chromium: the host's partitions with owner and
/// lag, the events/s chart, the plugin version and the swap history; a screenshot is kept in
/// the target directory (`status-page.png`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_partitions_rates_and_swaps_in_a_browser() {
    let home = std::env::var("HOME").unwrap();
    let tools = std::env::var("HUBWASM_TOOLS_NODE_DIR")
        .unwrap_or(format!("{home}/.cache/hubwasm/node-tools"));
    assert!(
        Path::new(&tools)
            .join("node_modules/playwright-core")
            .is_dir()
            && Path::new("/usr/bin/chromium").is_file(),
        "playwright-core or chromium is missing: run `bash scripts/setup.sh`"
    );
    let world = Local::start(4).await;
    let config = world.config("") + ADMIN;
    let (_host, addr) = admin_host("pager", &world, &config).await;
    crate::harness::send(&world.endpoint, 200, None).await;
    let v2 = another_version(
        hubwasm_plugins::TEST_RECORD,
        &world.path().join("test_record_v2.wasm"),
    );
    assert_eq!(swap(&addr, &v2, Some(TOKEN)).await.status, 200);
    // Every partition caught up and checkpointed: lag 0 everywhere.
    let mut caught_up = false;
    for _ in 0..300 {
        let now = status(&addr).await;
        let positions = &now.event_hubs[0].positions;
        if positions.len() == 4 && positions.iter().all(|p| p.lag == Some(0)) {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        caught_up,
        "{:?}",
        status(&addr).await.event_hubs[0].positions
    );

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let out = std::process::Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser/status_page.mjs"))
        .arg(format!("http://{addr}/"))
        .arg(&screenshot)
        .env("HUBWASM_TOOLS_NODE_DIR", &tools)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    println!("status page screenshot: {}", screenshot.display());
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["instance"], "pager");
    assert_eq!(seen["handled"], "200");
    let rows = seen["partitions"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{seen}");
    for row in rows {
        // event hub, group, partition, owner, state here, checkpoint, last enqueued, lag
        assert_eq!(row[0], HUB);
        assert_eq!(row[3], "pager", "{row}");
        assert_eq!(row[4], "running", "{row}");
        assert_eq!(row[5], "49", "{row}");
        assert_eq!(row[7], "0", "{row}");
    }
    assert_eq!(seen["versions"][0][2], "test_record_v2", "{seen}");
    assert_eq!(seen["swaps"].as_array().unwrap().len(), 1, "{seen}");
    assert_eq!(seen["swaps"][0][2], "swap");
    assert!(seen["ratePoints"].as_u64().unwrap() >= 3, "{seen}");
    assert_ne!(seen["ratePeak"], "0", "the chart shows the events: {seen}");
    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
}

/// A partition the `halt` policy stopped starts again on command: the event it stopped at is
/// retried with a fresh count, and the partition goes on. Only a halted partition resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halted_partition_resumes_on_command() {
    let world = Local::start(2).await;
    // Partition 0's event 3 fails once (the plugin's own count); one attempt, then halt.
    let config = world.config(
        "[eventhub.plugin_config]\nfail_partition = \"0\"\nfail_at = \"3\"\ntimes = \"1\"\n\
         [eventhub.failure]\npolicy = \"halt\"\nmax_attempts = 1\n",
    ) + ADMIN;
    let (host, addr) = admin_host("resumer", &world, &config).await;
    crate::harness::send(&world.endpoint, 20, None).await;
    let halted = |s: &hubwasm::admin::Status| {
        s.event_hubs[0]
            .partitions
            .iter()
            .any(|p| p.partition == "0" && p.state == "halted")
    };
    let mut now = status(&addr).await;
    for _ in 0..300 {
        if halted(&now) && handled_by(&host.log()).len() >= 13 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = status(&addr).await;
    }
    assert!(
        halted(&now),
        "{now:?}\n{}",
        crate::harness::tail(&host.log(), 30)
    );
    let resume_path = |p: &str| format!("/v1/event-hubs/{HUB}/partitions/{p}/resume");
    let post = |path: String, token: Option<&'static str>| {
        let addr = addr.clone();
        async move {
            request(&addr, "POST", &path, None, token, Duration::from_secs(10))
                .await
                .unwrap()
        }
    };
    assert_eq!(post(resume_path("0"), None).await.status, 401);
    let running = post(resume_path("1"), Some(TOKEN)).await;
    assert_eq!(running.status, 409, "{}", running.body);
    assert!(running.body.contains("not halted"), "{}", running.body);
    let resumed = post(resume_path("0"), Some(TOKEN)).await;
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    eventually(
        "partition 0 goes on past its event 3",
        Duration::from_secs(60),
        || handled_by(&host.log()).len() >= 20,
        &[&host],
    )
    .await;
    let handled = handled_by(&host.log());
    assert_eq!(
        handled
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        all_events(2, 10)
    );
    assert!(host
        .log()
        .contains("Halted partition resumed by an operator"));
    let after = status(&addr).await;
    assert!(!halted(&after), "{after:?}");
    assert_eq!(after.dead_lettered, 0);
}

/// Bad requests get a clear error and change nothing; without a configured token every change
/// is refused (read-only API), while reading still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_clearly_and_a_tokenless_api_is_read_only() {
    let world = Local::start(2).await;
    let config = world.config("") + ADMIN;
    // No token in the environment: the API serves, read-only.
    let host = Host::start("readonly", world.path(), &config, &[]);
    eventually(
        "the admin API",
        Duration::from_secs(60),
        || admin_address(&host).is_some(),
        &[&host],
    )
    .await;
    let addr = admin_address(&host).unwrap();
    assert!(host.log().contains("read-only"), "{}", host.log());
    assert_eq!(get(&addr, "/status").await.status, 200);
    let v2 = another_version(
        hubwasm_plugins::TEST_RECORD,
        &world.path().join("test_record_v2.wasm"),
    );
    let refused = swap(&addr, &v2, Some(TOKEN)).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("changes are disabled"),
        "{}",
        refused.body
    );
    assert_eq!(get(&addr, "/no-such-page").await.status, 404);
    assert_eq!(status(&addr).await.swaps, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_swap_requests_name_what_is_wrong() {
    let world = Local::start(2).await;
    let config = world.config("") + ADMIN;
    let (_host, addr) = admin_host("strict", &world, &config).await;
    let post = |path: String, body: &'static str| {
        let addr = addr.clone();
        async move {
            request(
                &addr,
                "POST",
                &path,
                Some(body),
                Some(TOKEN),
                Duration::from_secs(10),
            )
            .await
            .unwrap()
        }
    };
    let swap_path = format!("/v1/event-hubs/{HUB}/swap");
    for (body, expect) in [
        ("{not json", "the body must be JSON"),
        ("{\"plugin\": 7}", "the body must be JSON"),
        (
            "{\"plugin\": \"/x.wasm\", \"color\": \"red\"}",
            "unknown field",
        ),
        ("", "the body must be JSON"),
    ] {
        let answer = post(swap_path.clone(), body).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.body);
        assert!(answer.body.contains(expect), "{body}: {}", answer.body);
    }
    let unknown = post(
        "/v1/event-hubs/no-such-hub/swap".into(),
        "{\"plugin\": \"/x.wasm\"}",
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert!(
        unknown.body.contains("no consumed event hub `no-such-hub`") && unknown.body.contains(HUB),
        "names the hub and what is consumed: {}",
        unknown.body
    );
    let bad_group = post(
        format!("/v1/event-hubs/{HUB}/rollback"),
        "{\"consumer_group\": 5}",
    )
    .await;
    assert_eq!(bad_group.status, 400, "{}", bad_group.body);
    assert_eq!(status(&addr).await.swaps, 0);
}

/// Clients that open connections and never finish a request cannot hold the admin API: past
/// 64 connections new ones are closed at once, and a request head not sent within 5 s ends
/// its connection, after which the API answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_hold_the_admin_api() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let world = Local::start(1).await;
    let config = world.config("") + ADMIN;
    let (_host, addr) = admin_host("besieged", &world, &config).await;
    let mut held = Vec::new();
    for _ in 0..100 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        // Half a request head, never finished.
        let _ = stream
            .write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n")
            .await;
        held.push(stream);
    }
    // Each connection ends (EOF or reset) within a bounded time: at once past the cap, after
    // the head timeout otherwise.
    let mut closed_at_once = 0;
    let mut ended = 0;
    for stream in &mut held {
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await;
        if read.is_ok() {
            closed_at_once += 1;
        }
    }
    assert!(
        closed_at_once >= 30,
        "over the cap: {closed_at_once} of 100 closed at once"
    );
    for stream in &mut held {
        let mut buf = [0u8; 256];
        if tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
            .await
            .is_ok()
        {
            ended += 1;
        }
    }
    assert_eq!(ended, 100, "every unfinished request's connection ends");
    assert_eq!(get(&addr, "/healthz").await.status, 200);
}

/// The CLI's side: `hubwasm plugin swap`, `plugin rollback` and `status --admin` against a
/// running host; without the token variable the CLI says what to set and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_swaps_rolls_back_and_reads_status_through_the_admin_api() {
    let world = Local::start(2).await;
    let config = world.config("") + ADMIN;
    let (_host, addr) = admin_host("cli", &world, &config).await;
    let v2 = another_version(
        hubwasm_plugins::TEST_RECORD,
        &world.path().join("test_record_v2.wasm"),
    );
    let cli = |args: &[&str], token: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hubwasm"));
        cmd.args(args)
            .args(["--admin", &addr])
            .env_remove("HUBWASM_ADMIN_TOKEN")
            .env_remove("HUBWASM_TEST_ADMIN_TOKEN");
        if let Some(token) = token {
            cmd.env("HUBWASM_TEST_ADMIN_TOKEN", token);
        }
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let v2_path = v2.display().to_string();
    let swap_args = [
        "plugin",
        "swap",
        v2_path.as_str(),
        "--event-hub",
        HUB,
        "--token-env",
        "HUBWASM_TEST_ADMIN_TOKEN",
    ];
    let (ok, text) = cli(&swap_args, None);
    assert!(
        !ok && text.contains("$HUBWASM_TEST_ADMIN_TOKEN is not set"),
        "{text}"
    );
    let (ok, text) = cli(&swap_args, Some("wrong"));
    assert!(!ok && text.contains("HTTP 401"), "{text}");
    assert_eq!(status(&addr).await.swaps, 0);
    let (ok, text) = cli(&swap_args, Some(TOKEN));
    assert!(ok, "{text}");
    assert!(
        text.contains("swap on event hub orders: test_record") && text.contains("test_record_v2"),
        "{text}"
    );
    let (ok, text) = cli(&["status"], None);
    assert!(ok, "{text}");
    assert!(
        text.contains("plugin test_record_v2") && text.contains("swaps 1"),
        "{text}"
    );
    let rollback_args = [
        "plugin",
        "rollback",
        "--event-hub",
        HUB,
        "--token-env",
        "HUBWASM_TEST_ADMIN_TOKEN",
    ];
    let (ok, text) = cli(&rollback_args, Some(TOKEN));
    assert!(
        ok && text.contains("rollback on event hub orders"),
        "{text}"
    );
    let (ok, text) = cli(&rollback_args, Some(TOKEN));
    assert!(
        !ok && text.contains("HTTP 409") && text.contains("no earlier version"),
        "{text}"
    );
    assert_eq!(status(&addr).await.event_hubs[0].plugin.name, "test_record");
}
