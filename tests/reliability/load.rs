//! Continuous load for the reliability scenarios: a producer that keeps sending small batches
//! round-robin over the partitions until told to stop, riding out endpoint restarts (it
//! reconnects and carries on). What counts as sent is what the endpoint stored, read back at
//! the end ([`last_sequence_numbers`]), so a send whose acknowledgement was lost still counts.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use azure_messaging_eventhubs::models::EventData;
use azure_messaging_eventhubs::EventDataBatchOptions;
use hubwasm::connection::ConnectionString;

/// A running producer.
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    pub(crate) sent: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    /// Send `per_batch` events every `every` to the next partition of `partitions`.
    pub(crate) fn start(conn: String, partitions: u32, per_batch: usize, every: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(produce(
            conn,
            partitions,
            per_batch,
            every,
            stop.clone(),
            sent.clone(),
        ));
        Load { stop, sent, task }
    }

    /// Stop sending and wait for the producer to finish its batch.
    pub(crate) async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = tokio::time::timeout(Duration::from_secs(60), self.task).await;
        self.sent.load(Ordering::Relaxed)
    }
}

async fn produce(
    conn: String,
    partitions: u32,
    per_batch: usize,
    every: Duration,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) {
    let conn = ConnectionString::parse(&conn).unwrap();
    let mut producer = None;
    let mut n: u64 = 0;
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        if producer.is_none() {
            match tokio::time::timeout(Duration::from_secs(5), conn.producer()).await {
                Ok(Ok(p)) => producer = Some(p),
                _ => continue,
            }
        }
        let p = producer.as_ref().unwrap();
        let partition = (n % partitions as u64).to_string();
        let result = tokio::time::timeout(Duration::from_secs(10), async {
            let batch = p
                .create_batch(Some(EventDataBatchOptions {
                    partition_id: Some(partition),
                    ..Default::default()
                }))
                .await?;
            for i in 0..per_batch {
                let body = format!("{{\"load\": {n}, \"i\": {i}}}");
                let event = EventData::builder().with_body(body.into_bytes()).build();
                batch.try_add_event_data(event, None)?;
            }
            p.send_batch(batch, None).await
        })
        .await;
        match result {
            Ok(Ok(())) => {
                n += 1;
                sent.fetch_add(per_batch as u64, Ordering::Relaxed);
            }
            // The endpoint is down or restarting: reconnect on the next tick.
            _ => producer = None,
        }
    }
    if let Some(p) = producer {
        let _ = tokio::time::timeout(Duration::from_secs(5), p.close()).await;
    }
}

/// The last stored sequence number of every partition that has events.
pub(crate) async fn last_sequence_numbers(conn: &str) -> BTreeMap<String, i64> {
    let target = ConnectionString::parse(conn).unwrap().target();
    let consumer = target.consumer("$Default").await.unwrap();
    let props = consumer.get_eventhub_properties().await.unwrap();
    let mut last = BTreeMap::new();
    for id in props.partition_ids {
        let p = consumer.get_partition_properties(&id).await.unwrap();
        if !p.is_empty {
            last.insert(id, p.last_enqueued_sequence_number);
        }
    }
    let _ = consumer.close().await;
    last
}
