use super::*;
use crate::event::PartitionContext;

fn ownership(partition: &str, owner: &str, etag: Option<Etag>) -> Ownership {
    Ownership {
        fully_qualified_namespace: "NS.servicebus.windows.net".into(),
        event_hub_name: "Telemetry".into(),
        consumer_group: "$Default".into(),
        partition_id: partition.into(),
        owner_id: Some(owner.into()),
        etag,
        last_modified_time: None,
    }
}

#[tokio::test]
async fn claims_are_conditional_and_a_stale_etag_loses() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalCheckpointStore::new(dir.path());
    let won = store
        .claim_ownership(&[ownership("0", "a", None), ownership("1", "a", None)])
        .await
        .unwrap();
    assert_eq!(won.len(), 2);
    // A second "new" claim of partition 0 loses: the record exists.
    let lost = store
        .claim_ownership(&[ownership("0", "b", None)])
        .await
        .unwrap();
    assert!(lost.is_empty());
    // b takes partition 0 over with the current etag; a's old etag then loses.
    let etag0 = won[0].etag.clone();
    let taken = store
        .claim_ownership(&[ownership("0", "b", etag0.clone())])
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_ne!(taken[0].etag, etag0);
    let stale = store
        .claim_ownership(&[ownership("0", "a", etag0)])
        .await
        .unwrap();
    assert!(stale.is_empty());

    let listed = store
        .list_ownerships("NS.servicebus.windows.net", "Telemetry", "$Default")
        .await
        .unwrap();
    let owners: Vec<_> = listed
        .iter()
        .map(|o| (o.partition_id.as_str(), o.owner_id.as_deref()))
        .collect();
    assert_eq!(owners, vec![("0", Some("b")), ("1", Some("a"))]);
    assert!(listed.iter().all(|o| o.last_modified_time.is_some()));
    // Names are lowercased on disk, like the official Blob layout.
    assert!(dir
        .path()
        .join("ns.servicebus.windows.net/telemetry/$default/ownership/0.json")
        .exists());

    // Releasing writes an empty owner, which lists as unowned.
    let mut release = listed[1].clone();
    release.owner_id = Some(String::new());
    assert_eq!(store.claim_ownership(&[release]).await.unwrap().len(), 1);
    let listed = store
        .list_ownerships("NS.servicebus.windows.net", "Telemetry", "$Default")
        .await
        .unwrap();
    assert_eq!(listed[1].owner_id, None);
}

#[tokio::test]
async fn checkpoints_and_retry_state_round_trip() {
    let at = PartitionContext::new("ns", "hub", "cg", "3");
    let dir = tempfile::tempdir().unwrap();
    let store = LocalCheckpointStore::new(dir.path());
    store
        .update_checkpoint(Checkpoint {
            fully_qualified_namespace: "ns".into(),
            event_hub_name: "hub".into(),
            consumer_group: "cg".into(),
            partition_id: "3".into(),
            offset: Some("120".into()),
            sequence_number: Some(7),
        })
        .await
        .unwrap();
    let list = store.list_checkpoints("ns", "hub", "cg").await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].partition_id, "3");
    assert_eq!(list[0].sequence_number, Some(7));
    assert_eq!(list[0].offset.as_deref(), Some("120"));
    assert!(store
        .list_checkpoints("ns", "hub", "other")
        .await
        .unwrap()
        .is_empty());

    assert_eq!(store.load_retry(&at).await.unwrap(), None);
    let state = RetryState {
        sequence_number: 8,
        attempts: 2,
        paused: Some("plugin `p` refused to start: bad config".into()),
    };
    store.save_retry(&at, Some(state.clone())).await.unwrap();
    assert_eq!(store.load_retry(&at).await.unwrap(), Some(state));
    store.save_retry(&at, None).await.unwrap();
    store.save_retry(&at, None).await.unwrap();
    assert_eq!(store.load_retry(&at).await.unwrap(), None);
}

#[tokio::test]
async fn concurrent_claims_of_one_partition_have_exactly_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalCheckpointStore::new(dir.path());
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .claim_ownership(&[ownership("5", &format!("owner-{i}"), None)])
                .await
                .unwrap()
                .len()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += t.await.unwrap();
    }
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn an_unreadable_record_is_an_error_that_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalCheckpointStore::new(dir.path());
    let path = dir.path().join("ns/hub/cg/checkpoint/0.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"{not json").unwrap();
    let err = store.list_checkpoints("ns", "hub", "cg").await.unwrap_err();
    assert!(err.to_string().contains("0.json"), "{err}");
}

#[tokio::test]
async fn components_and_outcomes_round_trip_and_names_are_checked() {
    use crate::checkpoint::{swap_id, GroupName, VersionOutcome, VersionStore};
    let dir = tempfile::tempdir().unwrap();
    let store = LocalCheckpointStore::new(dir.path());
    let group = GroupName {
        namespace: "ns",
        event_hub: "hub",
        consumer_group: "$Default",
    };
    let bytes = b"\0asm component".to_vec();
    let sha = crate::plugin::sha256_hex(&bytes);
    assert_eq!(store.load_component(group, &sha, 100).await.unwrap(), None);
    store.save_component(group, &sha, &bytes).await.unwrap();
    assert_eq!(
        store.load_component(group, &sha, 100).await.unwrap(),
        Some(bytes.clone())
    );
    let err = store.load_component(group, &sha, 5).await.unwrap_err();
    assert!(err.to_string().contains("max_component_bytes"), "{err}");
    for bad in ["../../../etc/passwd", "ABC", ""] {
        assert!(store.load_component(group, bad, 100).await.is_err());
        assert!(store.save_component(group, bad, b"x").await.is_err());
    }
    // A tampered object is refused by the fetch; a missing one says so.
    let path = store.component_file(group, &sha).unwrap();
    std::fs::write(&path, b"\0asm changed").unwrap();
    let fetch = |digest: Option<String>| {
        let store = store.clone();
        async move {
            let digest = digest.as_deref();
            crate::artifact::fetch(&store, group, digest, "p", "upload", 100)
                .await
                .unwrap_err()
        }
    };
    use crate::artifact::FetchError;
    let err = fetch(Some(sha.clone())).await;
    assert!(matches!(err, FetchError::Tampered { .. }), "{err}");
    let err = fetch(Some("0".repeat(64))).await;
    assert!(matches!(err, FetchError::Missing { .. }), "{err}");
    let err = fetch(None).await;
    assert!(matches!(err, FetchError::NoDigest), "{err}");

    // Outcomes: one record per host and swap, replaced on each save.
    let swap = swap_id(&sha, 1_800_000_000_000);
    let outcome = |instance: &str, failed| VersionOutcome {
        swap: swap.clone(),
        instance: instance.into(),
        handled: 3,
        failed,
        held: 1,
    };
    store.save_outcome(group, &outcome("a", 5)).await.unwrap();
    store.save_outcome(group, &outcome("b", 2)).await.unwrap();
    store.save_outcome(group, &outcome("a", 7)).await.unwrap();
    let mut all = store.load_outcomes(group, &swap).await.unwrap();
    all.sort_by(|x, y| x.instance.cmp(&y.instance));
    assert_eq!(all, vec![outcome("a", 7), outcome("b", 2)]);
    let earlier = swap_id(&sha, 1);
    assert!(store
        .load_outcomes(group, &earlier)
        .await
        .unwrap()
        .is_empty());
    assert!(store.load_outcomes(group, "../x").await.is_err());
}
