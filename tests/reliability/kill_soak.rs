//! Kill soak: 3 hosts share 8 partitions on Blob checkpoints (Azurite) while a producer keeps
//! sending; again and again a random host is killed with SIGKILL and a new one started. At the
//! end every stored event was handled (none lost), and the redelivered ones (duplicates) stay
//! at one batch per partition per kill: the replay after a kill, and the batch in flight when a
//! new host steals a partition from a live one (the old owner's ownership fence stops it before
//! its next batch; see `processor::fence`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::azurite::Azurite;
use crate::harness::*;
use crate::load::{last_sequence_numbers, Load};
use crate::report;

const PARTITIONS: u32 = 8;
const MAX_BATCH: usize = 20;
/// The load: `PER_BATCH` events every `EVERY_MS` (250 events/s over the partitions).
const PER_BATCH: usize = 5;
const EVERY_MS: u64 = 20;

/// A small deterministic generator (xorshift64*), seeded per run and printed, so a failing run
/// can be repeated with `HUBWASM_SOAK_SEED`.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_soak_loses_nothing_and_bounds_duplicates() {
    let _serial = crate::one_at_a_time().await;
    let kills = env_number("HUBWASM_SOAK_KILLS", 5) as usize;
    let seed = env_number(
        "HUBWASM_SOAK_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1,
    );
    println!("kill soak: {kills} kills, seed {seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let endpoint = start_endpoint(&dir.path().join("hub"), PARTITIONS).await;
    let azurite = Azurite::start();
    let store = blob_store(&azurite, "checkpoints").await;
    let cfg = blob_config(&endpoint, &azurite, &dir.path().join("dead"));
    let started = Instant::now();
    let mut live: Vec<Host> = (0..3)
        .map(|i| Host::start(&format!("host-{i}"), dir.path(), &cfg, &[]))
        .collect();
    let mut dead: Vec<Host> = Vec::new();
    // ~250 events/s over the 8 partitions.
    let load = Load::start(
        endpoint.connection_string(HUB),
        PARTITIONS,
        PER_BATCH,
        Duration::from_millis(EVERY_MS),
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    for kill in 0..kills {
        let victim = rng.below(live.len());
        let mut host = live.remove(victim);
        host.kill9();
        println!(
            "kill {}: {} at {:?}",
            kill + 1,
            host.name,
            started.elapsed()
        );
        dead.push(host);
        let name = format!("host-{}", 3 + kill);
        live.push(Host::start(&name, dir.path(), &cfg, &[]));
        // Long enough for the takeover (ownership expiry 3 s + balancing interval 1 s).
        tokio::time::sleep(Duration::from_millis(4_500)).await;
    }
    let produced = load.stop().await;
    let last = last_sequence_numbers(&endpoint.connection_string(HUB)).await;
    let expected: BTreeSet<(String, i64)> = last
        .iter()
        .flat_map(|(p, l)| (0..=*l).map(move |s| (p.clone(), s)))
        .collect();
    let all_hosts = || live.iter().chain(dead.iter());
    eventually(
        "every stored event handled",
        Duration::from_secs(120),
        || {
            let handled: BTreeSet<(String, i64)> =
                all_hosts().flat_map(|h| h.handled("$Default")).collect();
            expected.is_subset(&handled)
        },
        &live.iter().collect::<Vec<_>>(),
    )
    .await;
    for host in &mut live {
        let status = host.terminate();
        assert!(status.success(), "{}: {status}\n{}", host.name, host.log());
    }
    let handled: Vec<(String, i64)> = live
        .iter()
        .chain(dead.iter())
        .flat_map(|h| h.handled("$Default"))
        .collect();
    let unique: BTreeSet<(String, i64)> = handled.iter().cloned().collect();
    let lost = expected.difference(&unique).count();
    let mut per_partition: BTreeMap<String, usize> = BTreeMap::new();
    for (p, _) in &handled {
        *per_partition.entry(p.clone()).or_default() += 1;
    }
    let mut duplicates_per_partition: BTreeMap<String, usize> = BTreeMap::new();
    for (p, n) in &per_partition {
        let distinct = unique.iter().filter(|(q, _)| q == p).count();
        duplicates_per_partition.insert(p.clone(), n - distinct);
    }
    let duplicates: usize = duplicates_per_partition.values().sum();
    let worst = duplicates_per_partition
        .values()
        .max()
        .copied()
        .unwrap_or(0);
    report(&format!(
        "kill soak: {kills} kills survived, {} events stored ({produced} acknowledged), {} handled, \
         lost {lost}, duplicates {duplicates} (worst partition {worst}; the bound, one batch per \
         partition per kill, is {}), {:.0} s, seed {seed}",
        expected.len(),
        handled.len(),
        kills * MAX_BATCH,
        started.elapsed().as_secs_f64()
    ));
    assert_eq!(lost, 0, "events lost");
    for (p, d) in &duplicates_per_partition {
        assert!(
            *d <= kills * MAX_BATCH,
            "partition {p}: {d} duplicates after {kills} kills (more than one batch of {MAX_BATCH} \
             per kill)"
        );
    }
    // The store agrees: every partition checkpointed at its last event.
    let cps = checkpoints(&store, "$Default").await;
    for (p, l) in &last {
        assert_eq!(cps.get(p), Some(&Some(*l)), "checkpoint of partition {p}");
    }
    endpoint.shutdown().await;
}
