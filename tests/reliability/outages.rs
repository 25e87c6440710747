//! Outages under load: the Blob store (Azurite, data on disk) stopped for 10 s and started
//! again, then the embedded endpoint stopped and started again on the same address and data,
//! while a producer keeps sending and two hosts keep consuming. Every stored event is handled;
//! checkpoints catch up once storage answers.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::azurite::Azurite;
use crate::harness::*;
use crate::load::{last_sequence_numbers, Load};
use crate::report;

const PARTITIONS: u32 = 4;

#[tokio::test(flavor = "multi_thread")]
async fn a_storage_outage_and_an_endpoint_restart_under_load_lose_nothing() {
    let _serial = crate::one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let hub_data = dir.path().join("hub");
    let mut endpoint = start_endpoint(&hub_data, PARTITIONS).await;
    let addr = endpoint.local_addr();
    let conn = endpoint.connection_string(HUB);
    let mut azurite = Azurite::start_persistent();
    let store = blob_store(&azurite, "checkpoints").await;
    let cfg = blob_config(&endpoint, &azurite, &dir.path().join("dead"));
    let started = Instant::now();
    let mut hosts: Vec<Host> = ["a", "b"]
        .iter()
        .map(|n| Host::start(n, dir.path(), &cfg, &[]))
        .collect();
    let load = Load::start(conn.clone(), PARTITIONS, 5, Duration::from_millis(25));
    tokio::time::sleep(Duration::from_secs(4)).await;

    // Storage down for 10 s.
    let handled_count = |hosts: &[Host]| -> usize {
        hosts
            .iter()
            .flat_map(|h| h.handled("$Default"))
            .collect::<BTreeSet<_>>()
            .len()
    };
    let before_outage = handled_count(&hosts);
    tokio::task::block_in_place(|| azurite.stop());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during_outage = handled_count(&hosts) - before_outage;
    tokio::task::block_in_place(|| azurite.restart());
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The endpoint restarts on the same address and data.
    endpoint.shutdown().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    endpoint = start_endpoint_at(&hub_data, PARTITIONS, addr).await;
    tokio::time::sleep(Duration::from_secs(5)).await;

    let acknowledged = load.stop().await;
    let last = last_sequence_numbers(&conn).await;
    let expected: BTreeSet<(String, i64)> = last
        .iter()
        .flat_map(|(p, l)| (0..=*l).map(move |s| (p.clone(), s)))
        .collect();
    eventually(
        "every stored event handled",
        Duration::from_secs(120),
        || {
            let handled: BTreeSet<(String, i64)> =
                hosts.iter().flat_map(|h| h.handled("$Default")).collect();
            expected.is_subset(&handled)
        },
        &hosts.iter().collect::<Vec<_>>(),
    )
    .await;
    // Checkpoints catch up once storage answers: each partition ends at its last event.
    eventually(
        "checkpoints at the last events",
        Duration::from_secs(60),
        || {
            let cps = futures::executor::block_on(checkpoints(&store, "$Default"));
            last.iter().all(|(p, l)| cps.get(p) == Some(&Some(*l)))
        },
        &hosts.iter().collect::<Vec<_>>(),
    )
    .await;
    for host in &mut hosts {
        let status = host.terminate();
        assert!(status.success(), "{}: {status}\n{}", host.name, host.log());
    }
    let handled: Vec<(String, i64)> = hosts.iter().flat_map(|h| h.handled("$Default")).collect();
    let unique: BTreeSet<(String, i64)> = handled.iter().cloned().collect();
    let lost = expected.difference(&unique).count();
    let store_errors_reported = hosts
        .iter()
        .map(|h| {
            h.log().matches("Checkpoint store failed").count()
                + h.log().matches("Checkpoint write failed").count()
        })
        .sum::<usize>();
    report(&format!(
        "outages: Azurite down 10 s (hosts handled {during_outage} events meanwhile, reported \
         {store_errors_reported} store errors) and the endpoint restarted; {} events stored \
         ({acknowledged} acknowledged), lost {lost}, duplicates {}, {:.0} s",
        expected.len(),
        handled.len() - unique.len(),
        started.elapsed().as_secs_f64()
    ));
    assert_eq!(lost, 0, "events lost");
    // The load sends 200 events/s; while storage is down the hosts keep handling them (a
    // host that waited on the store before each batch managed about 100 in the 10 s).
    assert!(
        during_outage >= 500,
        "processing goes on while storage is down: {during_outage} events handled in 10 s"
    );
    endpoint.shutdown().await;
}
