//! Ingest and read throughput of the embedded endpoint through the official Rust SDK.
//!
//! Run: `cargo bench -p hubwasm-hub --bench ingest`
//!
//! One process, 2 cores: the endpoint and the SDK client share them. Events are sent in
//! batches of 100 round-robin over 4 partitions by 4 concurrent producers, then read back
//! from the start of every partition. Reported against the goal (200 000 events/s ingest) and
//! against one Event Hubs throughput unit (1 000 events/s in).

use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_messaging_eventhubs::{
    ConsumerClient, EventDataBatchOptions, OpenReceiverOptions, ProducerClient, StartLocation,
    StartPosition,
};
use futures::StreamExt;
use hubwasm_hub::config::{EventHubConfig, HubConfig, DEFAULT_POLICY, DEVELOPMENT_KEY};
use hubwasm_hub::sas::SasCredential;

fn credential() -> Arc<SasCredential> {
    Arc::new(SasCredential {
        resource: "sb://localhost/".into(),
        key_name: DEFAULT_POLICY.into(),
        key: DEVELOPMENT_KEY.into(),
    })
}

const PARTITIONS: u32 = 4;
const BATCH: usize = 100;

async fn run(event_size: usize, batches_per_partition: usize) -> (f64, f64) {
    let data = tempfile::tempdir().unwrap();
    let hub = hubwasm_hub::start(HubConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.path().to_path_buf(),
        event_hubs: vec![EventHubConfig {
            name: "bench".into(),
            partitions: PARTITIONS,
            consumer_groups: vec![],
        }],
        ..HubConfig::default()
    })
    .await
    .unwrap();
    let endpoint = format!("amqp://{}", hub.local_addr());
    let body = vec![b'x'; event_size];
    let total = PARTITIONS as usize * batches_per_partition * BATCH;

    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..PARTITIONS {
        let (endpoint, body) = (endpoint.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let producer = ProducerClient::builder()
                .with_custom_endpoint(endpoint)
                .open("localhost", "bench", credential())
                .await
                .unwrap();
            for _ in 0..batches_per_partition {
                let batch = producer
                    .create_batch(Some(EventDataBatchOptions {
                        partition_id: Some(p.to_string()),
                        ..Default::default()
                    }))
                    .await
                    .unwrap();
                for _ in 0..BATCH {
                    assert!(batch.try_add_event_data(body.clone(), None).unwrap());
                }
                producer.send_batch(batch, None).await.unwrap();
            }
            producer.close().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let ingest = total as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..PARTITIONS {
        let endpoint = endpoint.clone();
        tasks.push(tokio::spawn(async move {
            let consumer = ConsumerClient::builder()
                .with_custom_endpoint(endpoint)
                .open("localhost", "bench".to_string(), credential())
                .await
                .unwrap();
            let receiver = consumer
                .open_receiver_on_partition(
                    p.to_string(),
                    Some(OpenReceiverOptions {
                        start_position: Some(StartPosition {
                            location: StartLocation::Earliest,
                            inclusive: false,
                        }),
                        ..Default::default()
                    }),
                )
                .await
                .unwrap();
            let stream = receiver.stream_events();
            futures::pin_mut!(stream);
            let mut n = 0;
            while n < batches_per_partition * BATCH {
                stream.next().await.unwrap().unwrap();
                n += 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let read = total as f64 / started.elapsed().as_secs_f64();
    hub.shutdown().await;
    (ingest, read)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("embedded endpoint throughput, official Rust SDK, batches of {BATCH}, {PARTITIONS} partitions");
    println!(
        "{:<12} {:>10} {:>14} {:>10} {:>14} {:>12}",
        "event size", "events", "ingest ev/s", "vs goal", "vs 1 TU", "read ev/s"
    );
    for (size, batches) in [(100usize, 500usize), (1024, 100)] {
        // Warm up once (connections, page cache), then measure.
        // A hung client (see tests/hub_rust_sdk.rs on the SDK's $cbs race) must not hang the
        // benchmark: every run gets two minutes.
        let limit = Duration::from_secs(120);
        let _ = rt.block_on(async { tokio::time::timeout(limit, run(size, 10)).await });
        let Ok((ingest, read)) =
            rt.block_on(async { tokio::time::timeout(limit, run(size, batches)).await })
        else {
            println!("{size} B: run did not finish within {limit:?}");
            continue;
        };
        let events = PARTITIONS as usize * batches * BATCH;
        println!(
            "{:<12} {:>10} {:>14.0} {:>9.2}x {:>13.0}x {:>12.0}",
            format!("{size} B"),
            events,
            ingest,
            ingest / 200_000.0,
            ingest / 1_000.0,
            read
        );
    }
}
