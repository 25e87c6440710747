//! The official Rust SDK (`azure_messaging_eventhubs`) against the embedded endpoint, unchanged:
//! its custom endpoint option (`amqp://127.0.0.1:PORT`, plain TCP) and a token credential that
//! hands out SAS tokens.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_messaging_eventhubs::models::EventData;
use azure_messaging_eventhubs::{
    ConsumerClient, EventDataBatchOptions, OpenReceiverOptions, ProducerClient, SendEventOptions,
    StartLocation, StartPosition,
};
use futures::StreamExt;
use hubwasm_hub::config::{EventHubConfig, HubConfig, DEFAULT_POLICY, DEVELOPMENT_KEY};
use hubwasm_hub::sas::SasCredential;
use hubwasm_hub::RunningHub;

/// Run a scenario on its own task, within a minute: an SDK call that never completes is a
/// failure of the endpoint, reported as such instead of hanging the suite.
async fn within_a_minute<F, Fut>(name: &str, scenario: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    match tokio::time::timeout(Duration::from_secs(60), tokio::spawn(scenario())).await {
        Ok(Ok(())) => {}
        Ok(Err(panic)) => panic!("{name} failed: {panic}"),
        Err(_) => panic!("{name} did not finish within a minute"),
    }
}

const HUB: &str = "telemetry";

async fn start(data: &std::path::Path) -> RunningHub {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    hubwasm_hub::start(HubConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.to_path_buf(),
        event_hubs: vec![EventHubConfig {
            name: HUB.into(),
            partitions: 4,
            consumer_groups: vec![],
        }],
        ..HubConfig::default()
    })
    .await
    .unwrap()
}

fn credential(key: &str) -> Arc<dyn TokenCredential> {
    Arc::new(SasCredential {
        resource: "sb://localhost/".into(),
        key_name: DEFAULT_POLICY.into(),
        key: key.into(),
    })
}

fn endpoint(hub: &RunningHub) -> String {
    format!("amqp://{}", hub.local_addr())
}

async fn producer(hub: &RunningHub) -> ProducerClient {
    ProducerClient::builder()
        .with_custom_endpoint(endpoint(hub))
        .open("localhost", HUB, credential(DEVELOPMENT_KEY))
        .await
        .expect("producer opens")
}

async fn consumer(hub: &RunningHub) -> ConsumerClient {
    ConsumerClient::builder()
        .with_custom_endpoint(endpoint(hub))
        .open("localhost", HUB.to_string(), credential(DEVELOPMENT_KEY))
        .await
        .expect("consumer opens")
}

fn from(location: StartLocation, inclusive: bool) -> Option<OpenReceiverOptions> {
    Some(OpenReceiverOptions {
        start_position: Some(StartPosition {
            location,
            inclusive,
        }),
        ..Default::default()
    })
}

/// (sequence number, body) of the next `n` events of a partition.
async fn receive(
    consumer: &ConsumerClient,
    partition: &str,
    options: Option<OpenReceiverOptions>,
    n: usize,
) -> Vec<(i64, Vec<u8>, Option<String>)> {
    let receiver = consumer
        .open_receiver_on_partition(partition.to_string(), options)
        .await
        .expect("receiver opens");
    let stream = receiver.stream_events();
    futures::pin_mut!(stream);
    let mut got = Vec::new();
    while got.len() < n {
        let event = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("events arrive in time")
            .expect("stream continues")
            .expect("event received");
        got.push((
            event.sequence_number().expect("sequence number"),
            event.event_data().body().unwrap_or_default().to_vec(),
            event.partition_key().clone(),
        ));
    }
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_sdk_sends_single_batched_and_keyed_events_and_reads_them_back() {
    within_a_minute(
        stringify!(rust_sdk_sends_single_batched_and_keyed_events_and_reads_them_back),
        scenario_rust_sdk_sends_single_batched_and_keyed_events_and_reads_them_back,
    )
    .await;
}

async fn scenario_rust_sdk_sends_single_batched_and_keyed_events_and_reads_them_back() {
    let data = tempfile::tempdir().unwrap();
    let hub = start(data.path()).await;
    let producer = producer(&hub).await;

    let props = producer.get_eventhub_properties().await.unwrap();
    assert_eq!(props.name, HUB);
    assert_eq!(props.partition_ids, vec!["0", "1", "2", "3"]);

    let to = |p: &str| {
        Some(SendEventOptions {
            partition_id: Some(p.to_string()),
        })
    };
    producer.send_event("single", to("0")).await.unwrap();
    let batch = producer
        .create_batch(Some(EventDataBatchOptions {
            partition_id: Some("0".into()),
            ..Default::default()
        }))
        .await
        .unwrap();
    for i in 0..5 {
        assert!(batch
            .try_add_event_data(format!("batched {i}"), None)
            .unwrap());
    }
    producer.send_batch(batch, None).await.unwrap();
    let keyed = producer
        .create_batch(Some(EventDataBatchOptions {
            partition_key: Some("device-9".into()),
            ..Default::default()
        }))
        .await
        .unwrap();
    keyed
        .try_add_event_data(
            EventData::builder()
                .with_body("keyed")
                .with_content_type("text/plain".into())
                .add_property("kind".into(), "test")
                .build(),
            None,
        )
        .unwrap();
    producer.send_batch(keyed, None).await.unwrap();

    let p0 = producer.get_partition_properties("0").await.unwrap();
    assert_eq!(p0.last_enqueued_sequence_number, 5);
    assert!(!p0.is_empty);

    let consumer = consumer(&hub).await;
    let got = receive(&consumer, "0", from(StartLocation::Earliest, false), 6).await;
    let seqs: Vec<i64> = got.iter().map(|e| e.0).collect();
    assert_eq!(seqs, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(got[0].1, b"single");
    assert_eq!(got[5].1, b"batched 4");

    // The keyed event is on exactly one partition and carries its key.
    let mut found = 0;
    for p in ["1", "2", "3"] {
        let props = producer.get_partition_properties(p).await.unwrap();
        if !props.is_empty {
            found += 1;
            let got = receive(&consumer, p, from(StartLocation::Earliest, false), 1).await;
            assert_eq!(got[0].1, b"keyed");
            assert_eq!(got[0].2.as_deref(), Some("device-9"));
        }
    }
    assert_eq!(found, 1);
    producer.close().await.unwrap();
    consumer.close().await.unwrap();
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_is_refused() {
    within_a_minute(
        stringify!(a_wrong_key_is_refused),
        scenario_a_wrong_key_is_refused,
    )
    .await;
}

async fn scenario_a_wrong_key_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let hub = start(data.path()).await;
    let result = ProducerClient::builder()
        .with_custom_endpoint(endpoint(&hub))
        .open("localhost", HUB, credential("wrong"))
        .await;
    // The error must be the endpoint's refusal of the token, not any failure: the SDK surfaces
    // the $cbs status (401) or the endpoint's description.
    // The whole chain: the SDK's outer layers say only "Error ensuring connection".
    let chain = |e: &dyn std::error::Error| {
        let mut text = format!("{e} / {e:?}");
        let mut source = e.source();
        while let Some(inner) = source {
            text.push_str(&format!(" / {inner} / {inner:?}"));
            source = inner.source();
        }
        text
    };
    let error = match result {
        Err(e) => chain(&e),
        Ok(p) => chain(
            &p.get_eventhub_properties()
                .await
                .expect_err("a wrong key must be refused"),
        ),
    };
    let lower = error.to_lowercase();
    assert!(
        lower.contains("401") || lower.contains("unauthorized") || lower.contains("signature"),
        "not an authorization failure: {error}"
    );
    // The right key on the same endpoint works: the refusal was the key's.
    producer(&hub)
        .await
        .get_eventhub_properties()
        .await
        .expect("the right key is accepted");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_sdk_consumers_start_after_a_sequence_number_and_at_latest() {
    within_a_minute(
        stringify!(rust_sdk_consumers_start_after_a_sequence_number_and_at_latest),
        scenario_rust_sdk_consumers_start_after_a_sequence_number_and_at_latest,
    )
    .await;
}

async fn scenario_rust_sdk_consumers_start_after_a_sequence_number_and_at_latest() {
    let data = tempfile::tempdir().unwrap();
    let hub = start(data.path()).await;
    let producer = producer(&hub).await;
    let to_0 = || {
        Some(SendEventOptions {
            partition_id: Some("0".to_string()),
        })
    };
    for i in 0..6 {
        producer.send_event(format!("e{i}"), to_0()).await.unwrap();
    }

    // A client of its own for each start position: a new receiver link each time.
    let after_3 = consumer(&hub).await;
    let got = receive(
        &after_3,
        "0",
        from(StartLocation::SequenceNumber(3), false),
        2,
    )
    .await;
    assert_eq!(got.iter().map(|e| e.0).collect::<Vec<_>>(), vec![4, 5]);
    assert_eq!(got[0].1, b"e4");
    after_3.close().await.unwrap();

    let from_3 = consumer(&hub).await;
    let got = receive(
        &from_3,
        "0",
        from(StartLocation::SequenceNumber(3), true),
        1,
    )
    .await;
    assert_eq!(got[0].0, 3);
    from_3.close().await.unwrap();

    // @latest: only what is sent after the receiver is attached.
    let latest = consumer(&hub).await;
    let receiver = latest
        .open_receiver_on_partition("0".to_string(), from(StartLocation::Latest, false))
        .await
        .expect("receiver opens");
    // Start reading, then send.
    let next = tokio::spawn(async move {
        let stream = receiver.stream_events();
        futures::pin_mut!(stream);
        let event = stream.next().await.unwrap().unwrap();
        (
            event.sequence_number().unwrap(),
            event.event_data().body().unwrap().to_vec(),
        )
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    producer.send_event("after", to_0()).await.unwrap();
    let (seq, body) = tokio::time::timeout(Duration::from_secs(20), next)
        .await
        .expect("the new event arrives")
        .unwrap();
    assert_eq!((seq, body.as_slice()), (6, b"after".as_slice()));
    producer.close().await.unwrap();
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_event_is_refused_and_the_producer_goes_on() {
    within_a_minute(
        stringify!(an_oversized_event_is_refused_and_the_producer_goes_on),
        scenario_an_oversized_event_is_refused_and_the_producer_goes_on,
    )
    .await;
}

async fn scenario_an_oversized_event_is_refused_and_the_producer_goes_on() {
    let data = tempfile::tempdir().unwrap();
    let hub = start(data.path()).await;
    let producer = producer(&hub).await;
    let to_2 = || {
        Some(SendEventOptions {
            partition_id: Some("2".to_string()),
        })
    };
    let big = vec![b'x'; 1024 * 1024 + 1];
    let err = producer
        .send_event(big, to_2())
        .await
        .expect_err("a 1 MiB + 1 event is refused");
    let message = format!("{err:?}");
    assert!(
        message.contains("message-size-exceeded") || message.contains("larger than the maximum"),
        "{message}"
    );
    producer.send_event("small", to_2()).await.unwrap();
    let p2 = producer.get_partition_properties("2").await.unwrap();
    assert_eq!(
        p2.last_enqueued_sequence_number, 0,
        "only the small event is stored"
    );
    producer.close().await.unwrap();
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_by_size_moves_the_beginning_and_readers_start_there() {
    within_a_minute(
        stringify!(retention_by_size_moves_the_beginning_and_readers_start_there),
        scenario_retention_by_size_moves_the_beginning_and_readers_start_there,
    )
    .await;
}

async fn scenario_retention_by_size_moves_the_beginning_and_readers_start_there() {
    let data = tempfile::tempdir().unwrap();
    let mut config = HubConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.path().to_path_buf(),
        event_hubs: vec![EventHubConfig {
            name: HUB.into(),
            partitions: 1,
            consumer_groups: vec![],
        }],
        ..HubConfig::default()
    };
    // Small segments so that retention (whole segments at a time) has something to drop.
    config.storage.segment_bytes = 4096;
    config.storage.retention_bytes = Some(8192);
    let hub = hubwasm_hub::start(config).await.unwrap();
    let producer = producer(&hub).await;
    for round in 0..10 {
        let batch = producer
            .create_batch(Some(EventDataBatchOptions {
                partition_id: Some("0".into()),
                ..Default::default()
            }))
            .await
            .unwrap();
        for i in 0..10 {
            assert!(batch
                .try_add_event_data(format!("{round:02}-{i:02} {}", "x".repeat(100)), None)
                .unwrap());
        }
        producer.send_batch(batch, None).await.unwrap();
    }
    let before = producer.get_partition_properties("0").await.unwrap();
    assert_eq!(before.beginning_sequence_number, 0);
    assert_eq!(before.last_enqueued_sequence_number, 99);

    hub.namespace().apply_retention();
    let after = producer.get_partition_properties("0").await.unwrap();
    assert!(
        after.beginning_sequence_number > 0,
        "retention dropped old segments: {after:?}"
    );
    assert_eq!(
        after.last_enqueued_sequence_number, 99,
        "the newest events stay"
    );
    let consumer = consumer(&hub).await;
    let got = receive(&consumer, "0", from(StartLocation::Earliest, false), 1).await;
    assert_eq!(
        got[0].0, after.beginning_sequence_number,
        "earliest is the new beginning"
    );
    producer.close().await.unwrap();
    consumer.close().await.unwrap();
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_partitions_and_consumer_groups_are_not_found() {
    within_a_minute(
        stringify!(unknown_partitions_and_consumer_groups_are_not_found),
        scenario_unknown_partitions_and_consumer_groups_are_not_found,
    )
    .await;
}

async fn scenario_unknown_partitions_and_consumer_groups_are_not_found() {
    let data = tempfile::tempdir().unwrap();
    let hub = start(data.path()).await;
    let producer = producer(&hub).await;
    let err = producer
        .get_partition_properties("9")
        .await
        .expect_err("no partition 9");
    assert!(
        format!("{err:?}").contains("404") || format!("{err:?}").contains("partition"),
        "{err:?}"
    );

    let read_first = |client: ConsumerClient, partition: &'static str| async move {
        let receiver = client
            .open_receiver_on_partition(partition.to_string(), None)
            .await?;
        let stream = receiver.stream_events();
        futures::pin_mut!(stream);
        match tokio::time::timeout(Duration::from_secs(20), stream.next()).await {
            Ok(Some(Err(e))) => Err::<(), _>(e),
            other => panic!(
                "expected an error, got {:?}",
                other.map(|o| o.map(|r| r.is_ok()))
            ),
        }
    };
    let err = read_first(consumer(&hub).await, "9")
        .await
        .expect_err("no partition 9");
    assert!(format!("{err:?}").contains("no partition `9`"), "{err:?}");

    let other_group = ConsumerClient::builder()
        .with_custom_endpoint(endpoint(&hub))
        .with_consumer_group("nope".to_string())
        .open("localhost", HUB.to_string(), credential(DEVELOPMENT_KEY))
        .await
        .expect("consumer opens");
    let err = read_first(other_group, "0")
        .await
        .expect_err("no group nope");
    assert!(format!("{err:?}").contains("nope"), "{err:?}");
    producer.close().await.unwrap();
    hub.shutdown().await;
}
