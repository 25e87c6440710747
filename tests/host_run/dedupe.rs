//! `[eventhub.dedupe]`, the seed's "second checkpoint" with no plugin code: events whose key was
//! recorded never reach the plugin and are checkpointed past; a crash between recording the
//! keys and writing the checkpoint causes no duplicate effect.

use std::collections::BTreeMap;
use std::time::Duration;

use std::sync::Arc;

use hubwasm::effects::dedupe::{Claim, DedupeStore, MemoryDedupe};

use crate::harness::{checkpoints, eventually, owners, send_bodies_in, Host, Local, HUB};
use crate::redis_server::RedisServer;

/// The body of the seed-like event `id` (compact, so the test plugin's log line keeps it whole).
fn body(id: usize) -> String {
    format!(r#"{{"event_id":"e-{id}","value":{id}}}"#)
}

/// How often each body was handled, from a host's log.
fn handled_bodies(log: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in log.lines().filter(|l| l.contains(" handled group=")) {
        if let Some(body) = line
            .split(" body=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
        {
            *counts.entry(body.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

fn dedupe_section(t: &Local) -> String {
    // (the local store in the test's directory)
    format!(
        "[eventhub.dedupe]\nkey = \"json:event_id\"\npath = \"{}\"\n",
        t.path().join("dedupe.sqlite").display()
    )
}

/// Each event id is handled once though sent twice (and a repeat inside one batch too);
/// bodies without the key pass through; every partition is checkpointed at its last event,
/// duplicates included; the summary counts what was skipped. `store` is the dedupe table's
/// store lines.
async fn duplicates_skipped(name: &str, t: &Local, store: &str) {
    // 30 ids, each twice (the second round after the first), plus 4 bodies without a key.
    let mut bodies: Vec<String> = (0..30).map(body).collect();
    bodies.extend((0..30).map(body));
    bodies.extend((0..4).map(|i| format!("no-key-{i}")));
    send_bodies_in(&t.endpoint, HUB, &bodies, t.path(), 1).await;
    let cfg = t.config(&format!(
        "[eventhub.dedupe]\nkey = \"json:event_id\"\n{store}\n"
    ));
    let host = Host::run_until_idle(name, t.path(), &cfg, Duration::from_secs(120));
    let log = host.log();

    let handled = handled_bodies(&log);
    for id in 0..30 {
        assert_eq!(
            handled.get(&body(id)),
            Some(&1),
            "e-{id} handled once\n{log}"
        );
    }
    for i in 0..4 {
        assert_eq!(handled.get(&format!("no-key-{i}")), Some(&1), "{log}");
    }
    assert!(
        log.contains("duplicates skipped 30"),
        "the summary counts them\n{log}"
    );
    // Round-robin: each partition holds 32 events (seq 0..=31), checkpointed at the last.
    let cps = checkpoints(&t.store(), "$Default").await;
    assert_eq!(cps.get("0"), Some(&Some(31)), "{cps:?}");
    assert_eq!(cps.get("1"), Some(&Some(31)), "{cps:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_are_skipped_before_the_plugin_and_checkpointed_past() {
    let t = Local::start(2).await;
    let store = format!(
        "store = \"local\"\npath = \"{}\"",
        t.path().join("dedupe.sqlite").display()
    );
    duplicates_skipped("dedupe-local", &t, &store).await;
    t.endpoint.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_are_skipped_with_the_keys_in_redis() {
    let redis = RedisServer::start();
    let t = Local::start(2).await;
    let store = format!("store = \"redis\"\nurl = \"{}\"", redis.url());
    duplicates_skipped("dedupe-redis", &t, &store).await;
    t.endpoint.shutdown().await;
}

/// Redis goes down while the host runs: the partitions wait before their next events (nothing
/// skipped, nothing dead-lettered), and once Redis is back every event is handled exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_redis_outage_pauses_the_partitions_and_loses_nothing() {
    let mut redis = RedisServer::start();
    let t = Local::start(2).await;
    let cfg = t.config(&format!(
        "[eventhub.dedupe]\nkey = \"json:event_id\"\nstore = \"redis\"\nurl = \"{}\"\n[eventhub.failure]\ninitial_backoff_ms = 100\nmax_backoff_ms = 500\n",
        redis.url()
    ));
    let host = Host::start("outage", t.path(), &cfg, &[]);
    send_bodies_in(
        &t.endpoint,
        HUB,
        &(0..20).map(body).collect::<Vec<_>>(),
        t.path(),
        1,
    )
    .await;
    eventually(
        "the first 20 events",
        Duration::from_secs(60),
        || handled_bodies(&host.log()).len() == 20,
        &[&host],
    )
    .await;

    redis.stop();
    send_bodies_in(
        &t.endpoint,
        HUB,
        &(20..40).map(body).collect::<Vec<_>>(),
        t.path(),
        1,
    )
    .await;
    eventually(
        "the partitions to wait for Redis",
        Duration::from_secs(60),
        || host.log().contains("Cannot claim dedupe keys"),
        &[&host],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        handled_bodies(&host.log()).len(),
        20,
        "nothing passes while Redis is down\n{}",
        host.log()
    );

    redis.restart();
    eventually(
        "every event",
        Duration::from_secs(60),
        || handled_bodies(&host.log()).len() == 40,
        &[&host],
    )
    .await;
    let log = host.log();
    assert!(handled_bodies(&log).values().all(|n| *n == 1), "{log}");
    assert!(!log.contains("Event dead-lettered"), "{log}");
    // The host is still running: a partition's checkpoint lands just after its events are
    // logged as handled, so wait for both.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let cps = checkpoints(&t.store(), "$Default").await;
        if cps.get("0") == Some(&Some(19)) && cps.get("1") == Some(&Some(19)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "both partitions checkpointed at their 20th event: {cps:?}\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(host);
    t.endpoint.shutdown().await;
}

/// The keys are recorded before the checkpoint: a host that stops after recording them but
/// before its checkpoint is durable (simulated by removing the checkpoints) makes the next
/// host receive every event again, and it skips them all: no effect happens twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_the_two_checkpoints_causes_no_duplicate_effect() {
    let t = Local::start(2).await;
    let bodies: Vec<String> = (0..40).map(body).collect();
    send_bodies_in(&t.endpoint, HUB, &bodies, t.path(), 1).await;
    let cfg = t.config(&dedupe_section(&t));
    let first = Host::run_until_idle("first", t.path(), &cfg, Duration::from_secs(120));
    assert_eq!(handled_bodies(&first.log()).len(), 40, "{}", first.log());

    // The checkpoints are lost; the dedupe keys are not.
    let mut removed = 0;
    for entry in walk(&t.store_dir) {
        if entry.ends_with("checkpoint") && entry.is_dir() {
            std::fs::remove_dir_all(&entry).unwrap();
            removed += 1;
        }
    }
    assert_eq!(removed, 1, "one consumer group's checkpoints");
    let second = Host::run_until_idle("second", t.path(), &cfg, Duration::from_secs(120));
    let log = second.log();
    assert!(
        handled_bodies(&log).is_empty(),
        "nothing handled twice\n{log}"
    );
    assert!(log.contains("duplicates skipped 40"), "{log}");
    let cps = checkpoints(&t.store(), "$Default").await;
    assert_eq!(cps.get("0"), Some(&Some(19)), "{cps:?}");
    assert_eq!(cps.get("1"), Some(&Some(19)), "{cps:?}");
    t.endpoint.shutdown().await;
}

/// What every dedupe store promises about claims: one claimer per key, its own redelivery
/// recognised while pending, nobody once committed, a lapsed claim free again, an earlier
/// event of the same call winning a repeated key.
async fn claims_hold(store: Arc<dyn DedupeStore>) {
    let ttl = Duration::from_secs(60);
    let scope = "ns/hub/$Default";
    let claim = |key: &str, p: &str, seq: i64| Claim::new(key.to_string(), p, seq, ttl);
    let name = store.describe();
    let first = store
        .claim(
            scope,
            &[claim("a", "0", 1), claim("b", "0", 2), claim("a", "0", 3)],
        )
        .await
        .unwrap();
    assert_eq!(first, [true, true, false], "{name}: a repeat in one call");
    // The copy on another partition finds the pending claim; the claimer itself does not.
    let again = store
        .claim(
            scope,
            &[claim("a", "1", 7), claim("a", "0", 1), claim("b", "2", 9)],
        )
        .await
        .unwrap();
    assert_eq!(again, [false, true, false], "{name}: pending claims");
    // Another scope (consumer group) has its own keys.
    let other = store
        .claim("ns/hub/other", &[claim("a", "1", 7)])
        .await
        .unwrap();
    assert_eq!(other, [true], "{name}: scopes");
    // Once committed, even the claimer's own redelivery is a duplicate.
    store.commit(scope, &[claim("a", "0", 1)]).await.unwrap();
    let committed = store
        .claim(scope, &[claim("a", "0", 1), claim("b", "0", 2)])
        .await
        .unwrap();
    assert_eq!(committed, [false, true], "{name}: committed");
    assert_eq!(
        store
            .seen(scope, &["a".into(), "b".into(), "c".into()])
            .await
            .unwrap(),
        [true, true, false],
        "{name}: seen"
    );
    // A claim that lapsed (its event never came back) is free for the next copy.
    let short = Duration::from_millis(50);
    assert_eq!(
        store
            .claim(scope, &[Claim::new("lapse".into(), "0", 5, short)])
            .await
            .unwrap(),
        [true]
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(
        store.claim(scope, &[claim("lapse", "3", 8)]).await.unwrap(),
        [true],
        "{name}: an expired claim"
    );
}

/// Two claimers racing for the same keys at the same instant: each key goes to exactly one.
async fn one_claimer_each(a: Arc<dyn DedupeStore>, b: Arc<dyn DedupeStore>) {
    let ttl = Duration::from_secs(60);
    let keys: Vec<String> = (0..400).map(|i| format!("race-{i}")).collect();
    let claims = |p: &str| -> Vec<Claim> {
        keys.iter()
            .enumerate()
            .map(|(i, k)| Claim::new(k.clone(), p, i as i64, ttl))
            .collect()
    };
    let mut won = vec![0; keys.len()];
    // In chunks, so the two claimers interleave.
    let (ca, cb) = (claims("0"), claims("1"));
    let task = |store: Arc<dyn DedupeStore>, claims: Vec<Claim>| {
        tokio::spawn(async move {
            let mut mine = Vec::new();
            for chunk in claims.chunks(20) {
                mine.extend(store.claim("ns/hub/race", chunk).await.unwrap());
            }
            mine
        })
    };
    let (ra, rb) = tokio::join!(task(a, ca), task(b, cb));
    for mine in [ra.unwrap(), rb.unwrap()] {
        for (i, m) in mine.into_iter().enumerate() {
            won[i] += m as usize;
        }
    }
    assert!(
        won.iter().all(|n| *n == 1),
        "each key claimed once: {won:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dedupe_store_gives_a_key_to_one_claimer() {
    claims_hold(Arc::new(MemoryDedupe::default())).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dedupe.sqlite");
    let sqlite = || -> Arc<dyn DedupeStore> {
        Arc::new(hubwasm::effects::sqlite::SqliteDedupe::open(&path).unwrap())
    };
    claims_hold(sqlite()).await;
    // Two connections to one file, as two host processes have.
    one_claimer_each(sqlite(), sqlite()).await;
    let redis = RedisServer::start();
    let client = || -> Arc<dyn DedupeStore> {
        Arc::new(hubwasm::effects::redis::RedisDedupe::open(&redis.url()).unwrap())
    };
    claims_hold(client()).await;
    one_claimer_each(client(), client()).await;
}

/// A dedupe file written before claims existed opens, and its keys count as committed.
#[tokio::test]
async fn a_dedupe_file_from_before_claims_keeps_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE dedupe (scope TEXT NOT NULL, key TEXT NOT NULL,
                 expires_ms INTEGER NOT NULL, PRIMARY KEY (scope, key)) WITHOUT ROWID;
             INSERT INTO dedupe VALUES ('s', 'old', 9000000000000);",
        )
        .unwrap();
    }
    let ttl = Duration::from_secs(60);
    let store = hubwasm::effects::sqlite::SqliteDedupe::open(&path).unwrap();
    let mine = store
        .claim(
            "s",
            &[
                Claim::new("old".into(), "0", 1, ttl),
                Claim::new("new".into(), "0", 2, ttl),
            ],
        )
        .await
        .unwrap();
    assert_eq!(mine, [false, true]);
}

/// Copies of each event sent at the same instant to two partitions, while two hosts serve the
/// four partitions (the plugin takes a moment per event, so copies are in flight together):
/// every id is handled once across both hosts, and every partition is checkpointed at its end.
async fn copies_at_once_are_handled_once(name: &str, store: &str) {
    let t = Local::start(4).await;
    let cfg = t.config(&format!(
        "[eventhub.dedupe]\nkey = \"json:event_id\"\n{store}\n[eventhub.plugin_config]\nsleep_ms = \"2\"\n"
    ));
    let a = Host::start(&format!("{name}-a"), t.path(), &cfg, &[]);
    let b = Host::start(&format!("{name}-b"), t.path(), &cfg, &[]);
    let store_view = t.store();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let owned = owners(&store_view, "$Default").await;
        let hosts: std::collections::BTreeSet<_> = owned.values().flatten().cloned().collect();
        if owned.len() == 4 && hosts.len() == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "two hosts sharing four partitions: {owned:?}\n{}\n{}",
            a.log(),
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Ids 0..150 to partitions 0 and 1 at once, ids 150..300 to partitions 2 and 3 at once.
    const N: usize = 150;
    let send = |ids: std::ops::Range<usize>, partition: &'static str| {
        let file = t.path().join(format!("copies-{partition}.jsonl"));
        let bodies: Vec<String> = ids.map(body).collect();
        std::fs::write(&file, bodies.join("\n") + "\n").unwrap();
        let options = hubwasm::send::SendOptions {
            connection_string: t.endpoint.connection_string(HUB),
            count: 0,
            interval: Duration::ZERO,
            partition: Some(partition.to_string()),
            partition_key: None,
            batch_size: 10,
            file: Some(file),
        };
        async move { hubwasm::send::send(&options, |_| {}).await.unwrap() }
    };
    tokio::join!(
        send(0..N, "0"),
        send(0..N, "1"),
        send(N..2 * N, "2"),
        send(N..2 * N, "3")
    );
    let last = Some((N - 1) as i64);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let cps = checkpoints(&store_view, "$Default").await;
        if cps.len() == 4 && cps.values().all(|c| *c == last) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "every partition checkpointed at its last event: {cps:?}\n{}\n{}",
            a.log(),
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut handled = handled_bodies(&a.log());
    for (body, n) in handled_bodies(&b.log()) {
        *handled.entry(body).or_insert(0) += n;
    }
    let twice: Vec<_> = handled.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "handled other than once: {twice:?}");
    assert_eq!(handled.len(), 2 * N, "every id handled");
    drop((a, b));
    t.endpoint.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_sent_at_once_to_two_partitions_are_handled_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!(
        "store = \"local\"\npath = \"{}\"",
        dir.path().join("dedupe.sqlite").display()
    );
    copies_at_once_are_handled_once("copies-sqlite", &store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_sent_at_once_to_two_partitions_are_handled_once_on_redis() {
    let redis = RedisServer::start();
    let store = format!("store = \"redis\"\nurl = \"{}\"", redis.url());
    copies_at_once_are_handled_once("copies-redis", &store).await;
}

/// A dedupe file that cannot be opened stops the host before it claims anything, naming it.
#[test]
fn an_unusable_dedupe_store_stops_the_host_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("not-a-dir"), "x").unwrap();
    let config = format!(
        "[[eventhub]]\nname = \"orders\"\nconnection_string = \"Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=a;SharedAccessKey=b;UseDevelopmentEmulator=true\"\nplugin = \"{}\"\n[eventhub.dedupe]\nkey = \"json:event_id\"\npath = \"not-a-dir/dedupe.sqlite\"\n",
        hubwasm_plugins::NOOP
    );
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hubwasm"))
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("not-a-dir"), "{stderr}");
}

pub(crate) fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}
