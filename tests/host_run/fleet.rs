//! A fleet: hosts that share nothing but the checkpoint store (no file of one is readable by
//! another). A version uploaded to one host runs on every host of the group, a host killed and
//! replaced runs it too (fetched by digest), and a version whose stored bytes were changed is
//! refused everywhere while the running version stays. On the local store and on Blob.

use std::time::Duration;

use hubwasm::admin::client::request;
use hubwasm::checkpoint::{GroupName, Store};

use crate::azurite::Azurite;
use crate::harness::{
    blob_keys, blob_store, eventually, start_with_admin, upload_swap, Host, Local, HUB, NS,
};

const TOKEN: &str = "fleet-token-0b7e";

/// The version (name, digest) a host's admin API says it runs.
async fn running(addr: &str) -> (String, String) {
    let answer = request(addr, "GET", "/status", None, None, Duration::from_secs(10))
        .await
        .unwrap();
    let status: hubwasm::admin::Status = serde_json::from_str(&answer.body).unwrap();
    let plugin = &status.event_hubs[0].plugin;
    (plugin.name.clone(), plugin.digest.clone())
}

async fn start(name: &str, world: &Local, config: &str) -> (Host, String) {
    // Each host in a directory of its own: its config and log, nothing shared.
    let dir = world.path().join(name);
    start_with_admin(name, &dir, config, &[("HUBWASM_TEST_FLEET", TOKEN)]).await
}

/// Wait until every host in `addrs` runs the version with `digest`.
async fn all_run(addrs: &[&str], digest: &str, hosts: &[&Host]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut all = true;
        for addr in addrs {
            all &= running(addr).await.1 == digest;
        }
        if all {
            return;
        }
        if std::time::Instant::now() > deadline {
            let logs: Vec<String> = hosts
                .iter()
                .map(|h| crate::harness::tail(&h.log(), 30))
                .collect();
            panic!("not every host runs {digest}:\n{}", logs.join("\n---\n"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn a_swap_reaches_every_host(world: &Local, config: &str, store: &dyn Store) {
    let config = format!(
        "{config}\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"HUBWASM_TEST_FLEET\"\n"
    );
    crate::harness::send(&world.endpoint, 40, None).await;
    let (a, addr_a) = start("a", world, &config).await;
    let (b, addr_b) = start("b", world, &config).await;
    let (mut c, addr_c) = start("c", world, &config).await;

    // The new version exists only in this test's memory: it reaches the hosts as bytes.
    let mut v2 = std::fs::read(hubwasm_plugins::TEST_RECORD).unwrap();
    v2.extend_from_slice(b"\0\x07\x06fleet2");
    let digest = hubwasm::plugin::sha256_hex(&v2)[..12].to_string();
    let answer = upload_swap(&addr_a, &v2, "record_v2", TOKEN).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    all_run(&[&addr_a, &addr_b, &addr_c], &digest, &[&a, &b, &c]).await;
    assert_eq!(running(&addr_b).await.0, "record_v2");
    assert!(b.log().contains("followed swap"), "{}", b.log());

    // A host killed and replaced starts on the group's version, fetched by digest.
    c.kill9();
    let (d, addr_d) = start("d", world, &config).await;
    assert!(
        d.log().contains("fetched from the store by its digest"),
        "{}",
        d.log()
    );
    assert_eq!(
        running(&addr_d).await,
        ("record_v2".to_string(), digest.clone())
    );

    // A version whose stored bytes were changed is refused by every host; they keep theirs.
    let group = THE_GROUP;
    let mut v3 = std::fs::read(hubwasm_plugins::TEST_RECORD).unwrap();
    v3.extend_from_slice(b"\0\x07\x06fleet3");
    let sha3 = hubwasm::plugin::sha256_hex(&v3);
    let mut tampered = v3.clone();
    *tampered.last_mut().unwrap() = b'X';
    store.save_component(group, &sha3, &tampered).await.unwrap();
    let mut record = store
        .load_version(THE_GROUP)
        .await
        .unwrap()
        .expect("the swap's record");
    assert_eq!(record.digest, digest);
    record.sha256 = Some(sha3.clone());
    record.digest = sha3[..12].to_string();
    record.name = Some("record_v3".into());
    store.save_version(THE_GROUP, &record).await.unwrap();
    for host in [&a, &b, &d] {
        eventually(
            "the tampered version refused",
            Duration::from_secs(60),
            || {
                host.log()
                    .contains("it was changed in the store, so it is refused")
            },
            &[host],
        )
        .await;
    }
    for addr in [&addr_a, &addr_b, &addr_d] {
        assert_eq!(running(addr).await.1, digest);
    }
    // Every event is handled (by whichever host owned its partition).
    crate::harness::send(&world.endpoint, 20, None).await;
    eventually(
        "all 60 events handled",
        Duration::from_secs(90),
        || {
            let mut seen = std::collections::BTreeSet::new();
            for host in [&a, &b, &c, &d] {
                seen.extend(host.handled("$Default"));
            }
            seen.len() >= 60
        },
        &[&a, &b, &d],
    )
    .await;
}

/// The consumer group the hosts share, as version records and components name it.
const THE_GROUP: GroupName<'static> = GroupName {
    namespace: NS,
    event_hub: HUB,
    consumer_group: "$Default",
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_reaches_every_host_through_the_local_store_alone() {
    let world = Local::start(4).await;
    let config = world.config("");
    let store = world.store();
    a_swap_reaches_every_host(&world, &config, &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_reaches_every_host_through_blob_storage_alone() {
    let world = Local::start(4).await;
    let azurite = Azurite::start();
    let config = crate::harness::config_with(
        &world.endpoint,
        &format!("store = \"blob\"\n{}", blob_keys(&azurite, "fleet")),
        &format!("sink = \"directory\"\npath = \"{}\"", world.dead.display()),
        "",
    );
    let store = blob_store(&azurite, "fleet").await;
    a_swap_reaches_every_host(&world, &config, &store).await;
}

/// A version that fails every event, swapped in under load: its events are held, not
/// dead-lettered, while it is judged; the group's counts roll it back (on `hosts` hosts whose
/// own counts alone would not reach `min_failures`); every event is then handled by the old
/// version, none dead-lettered.
async fn a_bad_version_is_rolled_back_with_nothing_dead_lettered(hosts: usize) {
    let world = Local::start(4).await;
    // A long window: the rollback must come from the failures counted across the group, not
    // from the window's end.
    let config = world.config(
        "[eventhub.failure]\nmax_attempts = 5\ninitial_backoff_ms = 50\nmax_backoff_ms = 200\n\
         [eventhub.rollback]\nwindow_ms = 300000\n",
    ) + "\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"HUBWASM_TEST_FLEET\"\n";
    crate::harness::send(&world.endpoint, 200, None).await;
    let mut fleet = Vec::new();
    for i in 0..hosts {
        fleet.push(start(&format!("h{i}"), &world, &config).await);
    }
    let handled = |fleet: &[(Host, String)]| {
        let mut seen = std::collections::BTreeSet::new();
        for (host, _) in fleet {
            seen.extend(host.handled("$Default"));
        }
        seen
    };
    eventually(
        "the first events handled",
        Duration::from_secs(60),
        || handled(&fleet).len() >= 100,
        &fleet.iter().map(|(h, _)| h).collect::<Vec<_>>(),
    )
    .await;
    let bad = std::fs::read(hubwasm_plugins::TEST_FAIL_ALL).unwrap();
    let answer = upload_swap(&fleet[0].1, &bad, "fail_all", TOKEN).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    // Every host runs it before the next events come, so every partition calls it.
    let bad_digest = hubwasm::plugin::sha256_hex(&bad)[..12].to_string();
    let addrs: Vec<&str> = fleet.iter().map(|(_, a)| a.as_str()).collect();
    all_run(
        &addrs,
        &bad_digest,
        &fleet.iter().map(|(h, _)| h).collect::<Vec<_>>(),
    )
    .await;
    crate::harness::send(&world.endpoint, 200, None).await;
    let logs = fleet.iter().map(|(h, _)| h).collect::<Vec<_>>();
    eventually(
        "the automatic rollback",
        Duration::from_secs(120),
        || {
            fleet
                .iter()
                .any(|(h, _)| h.log().contains("automatic rollback: "))
        },
        &logs,
    )
    .await;
    eventually(
        "all 400 events handled by the old version",
        Duration::from_secs(120),
        || handled(&fleet).len() >= 400,
        &logs,
    )
    .await;
    assert_eq!(
        handled(&fleet),
        crate::harness::all_events(4, 100),
        "every event handled"
    );
    let all_logs: String = fleet.iter().map(|(h, _)| h.log()).collect();
    assert!(
        all_logs.contains("held, not dead-lettered"),
        "events were held while the version was judged"
    );
    let why = all_logs
        .lines()
        .find(|l| l.contains("automatic rollback: "))
        .unwrap()
        .to_string();
    assert!(
        !why.contains("with events held"),
        "decided on the counted failures, not the window's end: {why}"
    );
    if hosts > 1 {
        assert!(!why.contains("across 1 host(s)"), "{why}");
    }
    assert!(
        !all_logs.contains("Event dead-lettered"),
        "{}",
        crate::harness::tail(&all_logs, 40)
    );
    let dead = std::fs::read_dir(&world.dead).map_or(0, |d| d.count());
    assert_eq!(dead, 0, "nothing in the dead-letter directory");
    for (_, addr) in &fleet {
        let answer = request(addr, "GET", "/status", None, None, Duration::from_secs(10))
            .await
            .unwrap();
        let status: hubwasm::admin::Status = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(status.dead_lettered, 0);
        assert_eq!(status.event_hubs[0].plugin.name, "test_record");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_version_on_one_host_is_rolled_back_with_nothing_dead_lettered() {
    a_bad_version_is_rolled_back_with_nothing_dead_lettered(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_version_on_three_hosts_is_rolled_back_with_nothing_dead_lettered() {
    a_bad_version_is_rolled_back_with_nothing_dead_lettered(3).await;
}

/// A version record of an older hubwasm (a path, no component in the store) does not stop a
/// host from starting: it runs its configured plugin and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_without_a_stored_component_leaves_the_configured_plugin_running() {
    use hubwasm::checkpoint::{VersionRecord, VersionStore};
    let world = Local::start(2).await;
    let base = std::fs::read(hubwasm_plugins::TEST_RECORD).unwrap();
    let base_digest = hubwasm::plugin::sha256_hex(&base)[..12].to_string();
    world
        .store()
        .save_version(
            THE_GROUP,
            &VersionRecord {
                path: "/srv/plugins/v2.wasm".into(),
                digest: "0123456789ab".into(),
                sha256: None,
                name: None,
                base_digest: base_digest.clone(),
                reason: "swap".into(),
                by: "an-old-host".into(),
                at_ms: 1,
            },
        )
        .await
        .unwrap();
    let (host, addr) = start(
        "upgraded",
        &world,
        &(world.config("") + "\n[admin]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .await;
    assert!(
        host.log().contains("recorded by an older hubwasm"),
        "{}",
        host.log()
    );
    assert_eq!(running(&addr).await.1, base_digest);
}

/// A host that starts while a swapped-in version is still being judged runs it from the store
/// and judges it too: its events are held, not dead-lettered, and count toward the rollback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_starts_during_the_rollback_window_holds_events_too() {
    let world = Local::start(4).await;
    let config = world.config(
        "[eventhub.failure]\nmax_attempts = 5\ninitial_backoff_ms = 50\nmax_backoff_ms = 200\n\
         [eventhub.rollback]\nwindow_ms = 300000\n",
    ) + "\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"HUBWASM_TEST_FLEET\"\n";
    let (a, addr_a) = start("early", &world, &config).await;
    let bad = std::fs::read(hubwasm_plugins::TEST_FAIL_ALL).unwrap();
    let answer = upload_swap(&addr_a, &bad, "fail_all", TOKEN).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let (b, addr_b) = start("late", &world, &config).await;
    assert!(
        b.log().contains("fetched from the store by its digest"),
        "{}",
        b.log()
    );
    // Both hold partitions before the events come.
    let owned = |addr: String| async move {
        let answer = request(&addr, "GET", "/status", None, None, Duration::from_secs(10))
            .await
            .unwrap();
        let status: hubwasm::admin::Status = serde_json::from_str(&answer.body).unwrap();
        status.event_hubs[0].partitions.len()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (na, nb) = (owned(addr_a.clone()).await, owned(addr_b.clone()).await);
        if na >= 1 && nb >= 1 && na + nb == 4 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{na} + {nb} partitions"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    crate::harness::send(&world.endpoint, 200, None).await;
    let hosts = [&a, &b];
    eventually(
        "the automatic rollback",
        Duration::from_secs(120),
        || {
            hosts
                .iter()
                .any(|h| h.log().contains("automatic rollback: "))
        },
        &hosts,
    )
    .await;
    eventually(
        "all 200 events handled by the old version",
        Duration::from_secs(120),
        || {
            let mut seen = std::collections::BTreeSet::new();
            for h in hosts {
                seen.extend(h.handled("$Default"));
            }
            seen.len() >= 200
        },
        &hosts,
    )
    .await;
    assert!(
        b.log().contains("held, not dead-lettered"),
        "the late host held its events: {}",
        crate::harness::tail(&b.log(), 30)
    );
    for h in hosts {
        assert!(!h.log().contains("Event dead-lettered"), "{}", h.log());
    }
    assert_eq!(std::fs::read_dir(&world.dead).map_or(0, |d| d.count()), 0);
}
