//! The Blob checkpoint store against the real Azurite emulator: ownership claims (optimistic
//! concurrency with etags), checkpoints, retry state, the blob layout, interoperability with the
//! official Python store in the same container, and storage outages.
//!
//! Every test starts its own Azurite (`tests/kit/src/azurite.rs`); `scripts/setup.sh` installs
//! Azurite and the official Python SDKs.

use hubwasm_testkit::azurite;

use std::sync::Arc;
use std::time::Duration;

use azure_core::time::OffsetDateTime;
use azurite::{Azurite, ACCOUNT, KEY};
use futures::TryStreamExt;
use hubwasm::azure_blob::BlobContainer;
use hubwasm::checkpoint::blob::{sign_account_sas, BlobCheckpointStore, BlobStoreOptions};
use hubwasm::checkpoint::{
    Checkpoint, CheckpointStore, GroupName, Ownership, RetryState, RetryStore, Store,
    VersionRecord, VersionStore,
};
use hubwasm::event::PartitionContext;
use serde_json::{json, Value as Json};

const CONTAINER: &str = "checkpoints";
/// Mixed case on purpose: the blob names are lowercased, the returned structs are not.
const NAMESPACE: &str = "HubWasm-Test.ServiceBus.Windows.Net";
const HUB: &str = "TeleMetry";
const GROUP: &str = "$Default";

async fn store(azurite: &Azurite) -> BlobCheckpointStore {
    let store = BlobContainer::with_account_key(&azurite.blob_endpoint(), ACCOUNT, KEY, CONTAINER)
        .map(BlobCheckpointStore::new)
        .expect("store");
    store.ensure_container().await.expect("container");
    store
}

/// Short retries, so that an outage shows up as errors in a second rather than minutes.
fn impatient() -> BlobStoreOptions {
    BlobStoreOptions {
        max_retries: 1,
        initial_retry_delay: Duration::from_millis(50),
        max_retry_delay: Duration::from_millis(100),
        request_timeout: Duration::from_secs(5),
    }
}

fn ownership(
    partition: &str,
    owner: Option<&str>,
    etag: Option<&azure_core::http::Etag>,
) -> Ownership {
    Ownership {
        fully_qualified_namespace: NAMESPACE.into(),
        event_hub_name: HUB.into(),
        consumer_group: GROUP.into(),
        partition_id: partition.into(),
        owner_id: owner.map(str::to_string),
        etag: etag.cloned(),
        last_modified_time: None,
    }
}

fn checkpoint(partition: &str, sequence_number: i64, offset: &str) -> Checkpoint {
    Checkpoint {
        fully_qualified_namespace: NAMESPACE.into(),
        event_hub_name: HUB.into(),
        consumer_group: GROUP.into(),
        partition_id: partition.into(),
        offset: Some(offset.into()),
        sequence_number: Some(sequence_number),
    }
}

/// Etags compare without the quotes (headers quote them, listings do not).
fn bare(etag: &Option<azure_core::http::Etag>) -> String {
    etag.as_ref()
        .expect("etag")
        .as_ref()
        .trim_matches('"')
        .to_string()
}

async fn owners(store: &BlobCheckpointStore) -> Vec<Ownership> {
    let mut list = store.list_ownerships(NAMESPACE, HUB, GROUP).await.unwrap();
    list.sort_by(|a, b| a.partition_id.cmp(&b.partition_id));
    list
}

async fn checkpoints(store: &BlobCheckpointStore) -> Vec<Checkpoint> {
    let mut list = store.list_checkpoints(NAMESPACE, HUB, GROUP).await.unwrap();
    list.sort_by(|a, b| a.partition_id.cmp(&b.partition_id));
    list
}

/// The raw blob names in the container.
async fn blob_names(store: &BlobCheckpointStore) -> Vec<String> {
    let mut names: Vec<String> = store
        .container_client()
        .list_blobs(None)
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|b| b.name)
        .collect();
    names.sort();
    names
}

/// The consumer group of these tests, as version records and components name it.
const THE_GROUP: GroupName<'static> = GroupName {
    namespace: NAMESPACE,
    event_hub: HUB,
    consumer_group: GROUP,
};

#[tokio::test(flavor = "multi_thread")]
async fn the_first_claim_wins_a_stale_etag_loses_and_a_relinquished_partition_is_unowned() {
    let azurite = Azurite::start();
    let store = store(&azurite).await;
    store
        .ensure_container()
        .await
        .expect("ensure_container is idempotent");

    // Two instances race for partition 0, both without an etag: the first creates the blob.
    let won = store
        .claim_ownership(&[ownership("0", Some("a"), None)])
        .await
        .unwrap();
    assert_eq!(won.len(), 1, "{won:?}");
    assert_eq!(won[0].owner_id.as_deref(), Some("a"));
    assert_eq!(won[0].fully_qualified_namespace, NAMESPACE);
    assert!(won[0].etag.is_some() && won[0].last_modified_time.is_some());
    let lost = store
        .claim_ownership(&[ownership("0", Some("b"), None)])
        .await
        .expect("a lost claim is not an error");
    assert!(lost.is_empty(), "{lost:?}");

    // a renews with its etag; b, still holding the first etag, loses; a new partition in the
    // same call is claimed.
    let renewed = store
        .claim_ownership(&[ownership("0", Some("a"), won[0].etag.as_ref())])
        .await
        .unwrap();
    assert_eq!(renewed.len(), 1);
    assert_ne!(bare(&renewed[0].etag), bare(&won[0].etag));
    let mixed = store
        .claim_ownership(&[
            ownership("0", Some("b"), won[0].etag.as_ref()),
            ownership("1", Some("b"), None),
        ])
        .await
        .unwrap();
    assert_eq!(
        mixed
            .iter()
            .map(|o| o.partition_id.as_str())
            .collect::<Vec<_>>(),
        ["1"]
    );

    // The listing shows the owners, the current etags and the blobs' Last-Modified.
    let listed = owners(&store).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0].owner_id.as_deref(), Some("a"));
    assert_eq!(bare(&listed[0].etag), bare(&renewed[0].etag));
    assert_eq!(listed[0].last_modified_time, renewed[0].last_modified_time);
    assert_eq!(listed[1].owner_id.as_deref(), Some("b"));
    assert_eq!(bare(&listed[1].etag), bare(&mixed[0].etag));
    for o in &listed {
        assert_eq!(
            (
                o.fully_qualified_namespace.as_str(),
                o.event_hub_name.as_str(),
                o.consumer_group.as_str()
            ),
            (NAMESPACE, HUB, GROUP)
        );
    }

    // b steals partition 0 with the etag it just listed (what the load balancer does).
    let stolen = store
        .claim_ownership(&[ownership("0", Some("b"), listed[0].etag.as_ref())])
        .await
        .unwrap();
    assert_eq!(stolen.len(), 1);
    assert_eq!(owners(&store).await[0].owner_id.as_deref(), Some("b"));

    // b relinquishes partition 0 (owner ""): listed as unowned.
    let released = store
        .claim_ownership(&[ownership("0", None, stolen[0].etag.as_ref())])
        .await
        .unwrap();
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].owner_id, None);
    let listed = owners(&store).await;
    assert_eq!(listed[0].owner_id, None, "{listed:?}");
    assert_eq!(listed[1].owner_id.as_deref(), Some("b"));
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoints_round_trip_under_lowercased_blob_names() {
    let azurite = Azurite::start();
    let store = store(&azurite).await;
    assert!(checkpoints(&store).await.is_empty());

    store
        .update_checkpoint(checkpoint("0", 5, "500"))
        .await
        .unwrap();
    store
        .update_checkpoint(checkpoint("1", 7, "700"))
        .await
        .unwrap();
    store
        .update_checkpoint(checkpoint("0", 6, "600"))
        .await
        .unwrap();
    store
        .claim_ownership(&[ownership("1", Some("a"), None)])
        .await
        .unwrap();

    let listed = checkpoints(&store).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(
        (listed[0].sequence_number, listed[0].offset.as_deref()),
        (Some(6), Some("600"))
    );
    assert_eq!(
        (listed[1].sequence_number, listed[1].offset.as_deref()),
        (Some(7), Some("700"))
    );
    assert_eq!(listed[0].fully_qualified_namespace, NAMESPACE);
    assert_eq!(listed[0].event_hub_name, HUB);
    assert_eq!(listed[0].consumer_group, GROUP);

    // The names in the container are lowercased, like the official stores write them.
    assert_eq!(
        blob_names(&store).await,
        [
            "hubwasm-test.servicebus.windows.net/telemetry/$default/checkpoint/0",
            "hubwasm-test.servicebus.windows.net/telemetry/$default/checkpoint/1",
            "hubwasm-test.servicebus.windows.net/telemetry/$default/ownership/1",
        ]
    );
    // So the same partitions are found whatever the case of the names asked for.
    let lower = store
        .list_checkpoints(&NAMESPACE.to_lowercase(), "telemetry", "$default")
        .await
        .unwrap();
    assert_eq!(lower.len(), 2);
    assert_eq!(lower[0].event_hub_name, "telemetry");
    // Another consumer group sees nothing.
    assert!(store
        .list_checkpoints(NAMESPACE, HUB, "other")
        .await
        .unwrap()
        .is_empty());

    let empty = Checkpoint {
        offset: None,
        sequence_number: None,
        ..checkpoint("2", 0, "")
    };
    let e = store.update_checkpoint(empty).await.unwrap_err();
    assert!(e.to_string().contains("neither"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_state_is_saved_loaded_and_cleared_beside_the_checkpoints() {
    let azurite = Azurite::start();
    let store = store(&azurite).await;
    let at = PartitionContext::new(NAMESPACE, HUB, GROUP, "3");
    let load = || store.load_retry(&at);
    assert_eq!(load().await.unwrap(), None);

    let first = RetryState::failed(41, 1);
    store.save_retry(&at, Some(first.clone())).await.unwrap();
    assert_eq!(load().await.unwrap(), Some(first));
    // A pause keeps its reason in the metadata: one line of printable ASCII, bounded.
    let paused = RetryState {
        sequence_number: 41,
        attempts: 1,
        paused: Some(format!(
            "plugin `p` refused to start:\n bad “config” {}",
            "x".repeat(400)
        )),
    };
    store.save_retry(&at, Some(paused.clone())).await.unwrap();
    let loaded = load().await.unwrap().unwrap();
    let reason = loaded.paused.unwrap();
    assert!(
        reason.starts_with("plugin `p` refused to start: bad config xxx"),
        "{reason}"
    );
    assert!(
        reason.len() <= RetryState::MAX_PAUSE_REASON,
        "{}",
        reason.len()
    );
    let again = RetryState::failed(41, 2);
    store.save_retry(&at, Some(again.clone())).await.unwrap();
    assert_eq!(load().await.unwrap(), Some(again));
    assert_eq!(
        blob_names(&store).await,
        ["hubwasm-test.servicebus.windows.net/telemetry/$default/hubwasm-retry/3"]
    );
    // Not a checkpoint, for us or for the official stores.
    assert!(checkpoints(&store).await.is_empty());

    store.save_retry(&at, None).await.unwrap();
    assert_eq!(load().await.unwrap(), None);
    store
        .save_retry(&at, None)
        .await
        .expect("clearing an absent retry state is fine");
    assert!(blob_names(&store).await.is_empty());
}

/// The consumer group's plugin version (hot swap) round-trips, non-ASCII path included, in a
/// blob of its own that no processor mistakes for a checkpoint.
#[tokio::test(flavor = "multi_thread")]
async fn the_plugin_version_is_kept_beside_the_checkpoints() {
    let azurite = Azurite::start();
    let store = store(&azurite).await;
    assert_eq!(store.load_version(THE_GROUP).await.unwrap(), None);
    let record = VersionRecord {
        path: "/srv/plugins/filtre-é/v2.wasm".into(),
        digest: "ab".repeat(6),
        sha256: Some("ab".repeat(32)),
        name: Some("filtre".into()),
        base_digest: "cd".repeat(32),
        reason: "swap".into(),
        by: "host-a".into(),
        at_ms: 1_796_000_000_000,
    };
    store.save_version(THE_GROUP, &record).await.unwrap();
    assert_eq!(
        store.load_version(THE_GROUP).await.unwrap(),
        Some(record.clone())
    );
    let back = VersionRecord {
        reason: "automatic rollback: 20 of 20 calls failed".into(),
        ..record
    };
    store.save_version(THE_GROUP, &back).await.unwrap();
    assert_eq!(store.load_version(THE_GROUP).await.unwrap(), Some(back));
    assert_eq!(
        blob_names(&store).await,
        ["hubwasm-test.servicebus.windows.net/telemetry/$default/hubwasm-plugin/version"]
    );
    assert!(checkpoints(&store).await.is_empty());
    assert!(owners(&store).await.is_empty());
}

/// A swapped-in component is kept in the container under its SHA-256, read back only up to
/// the reader's bound, and a missing one is `None`; the names of objects are digests only.
#[tokio::test(flavor = "multi_thread")]
async fn plugin_components_are_kept_by_digest_and_read_within_a_bound() {
    let azurite = Azurite::start();
    let store = store(&azurite).await;
    let group = THE_GROUP;
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let sha = hubwasm::plugin::sha256_hex(&bytes);
    assert_eq!(
        store.load_component(group, &sha, 1 << 20).await.unwrap(),
        None
    );
    store.save_component(group, &sha, &bytes).await.unwrap();
    // Saving again (another host, the same swap) is harmless.
    store.save_component(group, &sha, &bytes).await.unwrap();
    assert_eq!(
        store.load_component(group, &sha, 1 << 20).await.unwrap(),
        Some(bytes.clone())
    );
    let err = store.load_component(group, &sha, 1000).await.unwrap_err();
    assert!(
        err.to_string().contains("200000 bytes") && err.to_string().contains("max_component_bytes"),
        "{err}"
    );
    for bad in ["../../etc/passwd", "AB", &"g".repeat(64)] {
        assert!(
            store.load_component(group, bad, 1 << 20).await.is_err(),
            "{bad}"
        );
        assert!(
            store.save_component(group, bad, b"x").await.is_err(),
            "{bad}"
        );
    }
    // The fetch checks the digest: an object replaced in the container is refused.
    let fetched = hubwasm::artifact::fetch(&store, group, Some(&sha), "p", "upload", 1 << 20)
        .await
        .unwrap();
    assert_eq!(fetched.sha256, sha);
    store
        .container()
        .put(
            &format!("{NAMESPACE}/{HUB}/{GROUP}/hubwasm-plugin/components/{sha}").to_lowercase(),
            b"\0asm tampered".to_vec(),
            "application/wasm",
        )
        .await
        .unwrap();
    let err = hubwasm::artifact::fetch(&store, group, Some(&sha), "p", "upload", 1 << 20)
        .await
        .unwrap_err();
    assert!(
        matches!(err, hubwasm::artifact::FetchError::Tampered { .. }),
        "{err}"
    );
    assert_eq!(
        blob_names(&store).await,
        [format!(
            "hubwasm-test.servicebus.windows.net/telemetry/$default/hubwasm-plugin/components/{sha}"
        )]
    );
    assert!(checkpoints(&store).await.is_empty());

    // Each host's counts for a swap, replaced on each save, read back for the whole group.
    use hubwasm::checkpoint::VersionOutcome;
    let swap = hubwasm::checkpoint::swap_id(&sha, 1_800_000_000_000);
    let outcome = |instance: &str, failed| VersionOutcome {
        swap: swap.clone(),
        instance: instance.into(),
        handled: 4,
        failed,
        held: 2,
    };
    store
        .save_outcome(group, &outcome("host-a", 5))
        .await
        .unwrap();
    store
        .save_outcome(group, &outcome("host-b", 1))
        .await
        .unwrap();
    store
        .save_outcome(group, &outcome("host-a", 9))
        .await
        .unwrap();
    let mut all = store.load_outcomes(group, &swap).await.unwrap();
    all.sort_by(|x, y| x.instance.cmp(&y.instance));
    assert_eq!(all, vec![outcome("host-a", 9), outcome("host-b", 1)]);
    assert!(store
        .load_outcomes(group, &hubwasm::checkpoint::swap_id(&sha, 1))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_python_store_reads_what_hubwasm_writes() {
    let azurite = Azurite::start();
    let store = store(&azurite).await;
    store
        .update_checkpoint(checkpoint("0", 12, "1200"))
        .await
        .unwrap();
    store
        .update_checkpoint(checkpoint("1", 3, "300"))
        .await
        .unwrap();
    let claimed = store
        .claim_ownership(&[
            ownership("0", Some("hubwasm-1"), None),
            ownership("1", Some("hubwasm-1"), None),
        ])
        .await
        .unwrap();
    // Relinquish partition 1, as a host does when it stops.
    let released = store
        .claim_ownership(&[ownership("1", None, claimed[1].etag.as_ref())])
        .await
        .unwrap();

    let got = python(&azurite, &["list"]).await;
    let mut cps = got["checkpoints"].as_array().unwrap().clone();
    cps.sort_by_key(|c| c["partition_id"].as_str().unwrap().to_string());
    assert_eq!(
        Json::Array(cps),
        json!([
            {"fully_qualified_namespace": NAMESPACE, "eventhub_name": HUB, "consumer_group": GROUP,
             "partition_id": "0", "offset": "1200", "sequence_number": 12},
            {"fully_qualified_namespace": NAMESPACE, "eventhub_name": HUB, "consumer_group": GROUP,
             "partition_id": "1", "offset": "300", "sequence_number": 3},
        ])
    );
    let mut own = got["ownerships"].as_array().unwrap().clone();
    own.sort_by_key(|o| o["partition_id"].as_str().unwrap().to_string());
    assert_eq!(own.len(), 2, "{got}");
    assert_eq!(own[0]["owner_id"], "hubwasm-1");
    assert_eq!(
        own[0]["etag"].as_str().unwrap().trim_matches('"'),
        bare(&claimed[0].etag)
    );
    assert_eq!(
        own[0]["last_modified_time"].as_f64().unwrap() as i64,
        claimed[0].last_modified_time.unwrap().unix_timestamp()
    );
    // Relinquished: the official store sees no owner ("" or absent) either.
    assert!(
        own[1]["owner_id"].is_null() || own[1]["owner_id"] == "",
        "{}",
        own[1]
    );
    assert_eq!(
        own[1]["etag"].as_str().unwrap().trim_matches('"'),
        bare(&released[0].etag)
    );
    assert_eq!(own[1]["eventhub_name"], HUB);
}

#[tokio::test(flavor = "multi_thread")]
async fn hubwasm_reads_what_the_official_python_store_writes() {
    let azurite = Azurite::start();
    let store = store(&azurite).await;
    python(
        &azurite,
        &[
            "checkpoint",
            "--partition",
            "0",
            "--sequence-number",
            "99",
            "--offset",
            "4096",
        ],
    )
    .await;
    let py_claim = python(
        &azurite,
        &["claim", "--partition", "2", "--owner", "python-1"],
    )
    .await;
    let py_etag = py_claim["claimed"][0]["etag"].as_str().unwrap().to_string();
    python(
        &azurite,
        &["claim", "--partition", "3", "--owner", "python-1"],
    )
    .await;
    python(&azurite, &["relinquish", "--partition", "3"]).await;

    let cps = checkpoints(&store).await;
    assert_eq!(cps.len(), 1, "{cps:?}");
    assert_eq!(cps[0].partition_id, "0");
    assert_eq!(cps[0].sequence_number, Some(99));
    assert_eq!(cps[0].offset.as_deref(), Some("4096"));
    assert_eq!(cps[0].fully_qualified_namespace, NAMESPACE);

    let listed = owners(&store).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0].partition_id, "2");
    assert_eq!(listed[0].owner_id.as_deref(), Some("python-1"));
    assert_eq!(bare(&listed[0].etag), py_etag.trim_matches('"'));
    assert_eq!(
        listed[0].last_modified_time.unwrap().unix_timestamp(),
        py_claim["claimed"][0]["last_modified_time"]
            .as_f64()
            .unwrap() as i64
    );
    assert_eq!(listed[1].partition_id, "3");
    assert_eq!(
        listed[1].owner_id, None,
        "relinquished by the official store"
    );

    // hubwasm takes partition 2 over with the listed etag; Python's etag is now stale.
    let taken = store
        .claim_ownership(&[ownership("2", Some("hubwasm-1"), listed[0].etag.as_ref())])
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    let retry = python(
        &azurite,
        &[
            "claim",
            "--partition",
            "2",
            "--owner",
            "python-1",
            "--etag",
            &py_etag,
        ],
    )
    .await;
    assert_eq!(
        retry["claimed"],
        json!([]),
        "the official store lost the claim"
    );
    assert_eq!(
        owners(&store).await[0].owner_id.as_deref(),
        Some("hubwasm-1")
    );

    // Both write the same names.
    let names = python(&azurite, &["names"]).await;
    assert_eq!(names["names"], json!(blob_names(&store).await));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_sas_url_works_and_a_wrong_key_is_refused_with_a_hint() {
    let azurite = Azurite::start();
    store(&azurite).await; // creates the container
    let expiry = OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1);
    let sas = sign_account_sas(ACCOUNT, KEY, expiry).unwrap();
    let url = format!("{}/{CONTAINER}?{sas}", azurite.blob_endpoint());
    let by_sas = BlobContainer::from_container_sas_url(&url)
        .map(BlobCheckpointStore::new)
        .unwrap();
    assert!(!by_sas.describe().contains("sig="), "{}", by_sas.describe());
    by_sas
        .update_checkpoint(checkpoint("0", 1, "10"))
        .await
        .unwrap();
    assert_eq!(checkpoints(&by_sas).await[0].sequence_number, Some(1));

    let wrong_key = azure_core::base64::encode([7u8; 64]);
    let refused =
        BlobContainer::with_account_key(&azurite.blob_endpoint(), ACCOUNT, &wrong_key, CONTAINER)
            .map(BlobCheckpointStore::new)
            .unwrap();
    let e = refused
        .list_checkpoints(NAMESPACE, HUB, GROUP)
        .await
        .unwrap_err();
    assert_eq!(
        e.http_status(),
        Some(azure_core::http::StatusCode::Forbidden),
        "{e}"
    );
    assert!(
        e.to_string().contains("storage refused the account key"),
        "{e}"
    );

    let missing =
        BlobContainer::with_account_key(&azurite.blob_endpoint(), ACCOUNT, KEY, "nonexistent")
            .map(BlobCheckpointStore::new)
            .unwrap();
    let e = missing
        .update_checkpoint(checkpoint("0", 1, "10"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ensure_container"), "{e}");
    assert!(e.to_string().contains("checkpoint/0"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_storage_outage_turns_into_errors_not_hangs_or_panics() {
    let mut azurite = Azurite::start();
    let store = store(&azurite).await.with_options(impatient()).unwrap();
    store
        .update_checkpoint(checkpoint("0", 1, "10"))
        .await
        .unwrap();
    let claimed = store
        .claim_ownership(&[ownership("0", Some("a"), None)])
        .await
        .unwrap();

    azurite.stop();
    let results: Vec<azure_core::Result<()>> = vec![
        bounded(store.update_checkpoint(checkpoint("0", 2, "20"))).await,
        bounded(store.claim_ownership(&[ownership("0", Some("a"), claimed[0].etag.as_ref())]))
            .await
            .map(drop),
        bounded(store.list_checkpoints(NAMESPACE, HUB, GROUP))
            .await
            .map(drop),
        bounded(store.list_ownerships(NAMESPACE, HUB, GROUP))
            .await
            .map(drop),
        bounded(store.load_retry(&PartitionContext::new(NAMESPACE, HUB, GROUP, "0")))
            .await
            .map(drop),
        bounded(store.save_retry(&PartitionContext::new(NAMESPACE, HUB, GROUP, "0"), None)).await,
    ];
    for result in results {
        let e = result.expect_err("storage is down");
        assert!(e.to_string().contains("unreachable"), "{e}");
        assert!(e.to_string().contains(CONTAINER), "{e}");
        // reqwest names the URL in connection errors: never with the SAS signature.
        assert!(!leaks_signature(&e.to_string()), "{e}");
        assert!(!leaks_signature(&format!("{e:?}")), "{e:?}");
    }

    // A store pointed at a port nothing listens on.
    let nowhere = format!(
        "http://127.0.0.1:{}/{ACCOUNT}",
        hubwasm_testkit::free_port()
    );
    let closed = BlobContainer::with_account_key(&nowhere, ACCOUNT, KEY, CONTAINER)
        .map(BlobCheckpointStore::new)
        .unwrap()
        .with_options(impatient())
        .unwrap();
    let e = bounded(closed.ensure_container()).await.unwrap_err();
    assert!(e.to_string().contains("unreachable"), "{e}");

    // A server that accepts connections and never answers: the request timeout ends the call.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}/{ACCOUNT}", silent.local_addr().unwrap());
    let hung = BlobContainer::with_account_key(&endpoint, ACCOUNT, KEY, CONTAINER)
        .map(BlobCheckpointStore::new)
        .unwrap()
        .with_options(BlobStoreOptions {
            request_timeout: Duration::from_secs(1),
            ..impatient()
        })
        .unwrap();
    let e = bounded(hung.list_ownerships(NAMESPACE, HUB, GROUP))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("did not answer within"), "{e}");
    drop(silent);
}

#[test]
fn entra_id_needs_https_and_the_description_has_no_secrets() {
    #[derive(Debug)]
    struct NoToken;
    #[async_trait::async_trait]
    impl azure_core::credentials::TokenCredential for NoToken {
        async fn get_token(
            &self,
            _scopes: &[&str],
            _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                "no token in this test",
            ))
        }
    }
    let credential = Arc::new(NoToken);
    let e = BlobContainer::with_credential("http://127.0.0.1:1/acct/c", credential.clone())
        .map(BlobCheckpointStore::new)
        .unwrap_err();
    assert!(e.to_string().contains("https"), "{e}");
    let store = BlobContainer::with_credential(
        "https://acct.blob.core.windows.net/checkpoints",
        credential,
    )
    .map(BlobCheckpointStore::new)
    .unwrap();
    assert_eq!(
        store.describe(),
        "Azure Blob container https://acct.blob.core.windows.net/checkpoints (Microsoft Entra ID)"
    );
    let keyed = BlobContainer::with_account_key(
        "https://acct.blob.core.windows.net",
        "acct",
        KEY,
        "checkpoints",
    )
    .map(BlobCheckpointStore::new)
    .unwrap();
    assert!(!keyed.describe().contains(KEY));
    assert!(!format!("{keyed:?}").contains(KEY));
}

/// Whether `text` holds a SAS signature (`sig=` with anything but `REDACTED`).
fn leaks_signature(text: &str) -> bool {
    text.match_indices("sig=")
        .any(|(at, _)| !text[at + 4..].starts_with("REDACTED"))
}

/// A guard against hanging, far above the store's own bound (not a timing assertion).
async fn bounded<T>(call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), call)
        .await
        .expect("the store hung instead of failing")
}

/// Run `tests/python/blob_checkpoints.py` on the shared container; its JSON result.
async fn python(azurite: &Azurite, args: &[&str]) -> Json {
    let mut cmd = python::command("blob_checkpoints.py");
    cmd.args(["--conn", &azurite.connection_string()])
        .args(["--container", CONTAINER])
        .args([
            "--namespace",
            NAMESPACE,
            "--hub",
            HUB,
            "--consumer-group",
            GROUP,
        ])
        .args(args);
    python::json_result(&format!("blob_checkpoints.py {args:?}"), cmd).await
}

use hubwasm_testkit::python;
