//! Reads partitions' event streams on a thread of their own.
//!
//! The SDK's `PartitionClient::stream_events` is not `Send`, so it cannot be polled from tasks
//! of the multi-threaded runtime that runs the plugins. One reader thread per event hub (a
//! single-threaded runtime with a `LocalSet`) polls every partition's stream of that hub and
//! forwards events, converted to the host's [`Event`], in chunks over bounded channels; the
//! bound is the backpressure. After a partition's stream ends, or its processing task lets
//! go, the reader waits for the processing side to finish (it flushes the checkpoint first)
//! and then closes the partition client, which hands the partition back to the processor.

use std::sync::Arc;

use azure_messaging_eventhubs::models::{AmqpSimpleValue, MessageId, ReceivedEventData};
use azure_messaging_eventhubs::processor::PartitionClient;
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;

use crate::event::{Event, PropertyValue};

/// What a reader sends to a partition's processing task.
pub enum Item {
    /// Events in partition order.
    Events(Vec<Event>),
    /// The stream ended (ownership moved, receiver closed); why.
    Closed(String),
    /// The stream failed with an error (a link or connection error); what it said.
    Failed(String),
}

struct Job {
    client: Arc<PartitionClient>,
    out: mpsc::Sender<Item>,
}

/// The reader thread of one event hub.
pub struct Readers {
    jobs: mpsc::UnboundedSender<Job>,
}

/// Events per chunk sent to the processing task.
const CHUNK: usize = 512;

impl Readers {
    pub fn start(name: &str) -> Self {
        let (jobs, mut rx) = mpsc::unbounded_channel::<Job>();
        std::thread::Builder::new()
            .name(format!("hubwasm-reader-{name}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread runtime starts");
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, async move {
                    while let Some(job) = rx.recv().await {
                        tokio::task::spawn_local(read(job));
                    }
                });
                // Let readers still running close their clients.
                runtime.block_on(local);
            })
            .expect("the reader thread starts");
        Self { jobs }
    }

    /// Start reading `client`'s partition; events arrive on the returned channel.
    pub fn read(&self, client: Arc<PartitionClient>, capacity: usize) -> mpsc::Receiver<Item> {
        let (out, rx) = mpsc::channel(capacity.max(1));
        let _ = self.jobs.send(Job { client, out });
        rx
    }
}

async fn read(job: Job) {
    let Job { client, out } = job;
    let partition = client.get_partition_id().to_string();
    {
        let stream = client.stream_events();
        futures::pin_mut!(stream);
        loop {
            let first = tokio::select! {
                _ = out.closed() => break,
                item = stream.next() => item,
            };
            let mut chunk = Vec::new();
            let mut end: Option<Item> = None;
            match first {
                Some(Ok(e)) => chunk.push(to_event(&e)),
                Some(Err(err)) => end = Some(Item::Failed(err.to_string())),
                None => end = Some(Item::Closed("the event stream ended".into())),
            }
            // Take whatever else is already buffered, without waiting.
            while end.is_none() && chunk.len() < CHUNK {
                match stream.next().now_or_never() {
                    Some(Some(Ok(e))) => chunk.push(to_event(&e)),
                    Some(Some(Err(err))) => end = Some(Item::Failed(err.to_string())),
                    Some(None) => end = Some(Item::Closed("the event stream ended".into())),
                    None => break,
                }
            }
            if !chunk.is_empty() && out.send(Item::Events(chunk)).await.is_err() {
                break;
            }
            if let Some(end) = end {
                let _ = out.send(end).await;
                break;
            }
        }
    }
    // The processing task flushes its checkpoint before it lets go of the channel.
    out.closed().await;
    match Arc::try_unwrap(client) {
        Ok(client) => {
            if let Err(err) = client.close().await {
                tracing::debug!(%partition, error = %err, "Closing the partition client failed");
            }
        }
        Err(_) => tracing::debug!(%partition, "Partition client still shared; not closed"),
    }
}

/// Convert an SDK event into the host's event.
pub fn to_event(received: &ReceivedEventData) -> Event {
    let data = received.event_data();
    let id = |m: &MessageId| match m {
        MessageId::String(s) => s.clone(),
        MessageId::Uuid(u) => u.to_string(),
        MessageId::Binary(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
        MessageId::Ulong(n) => n.to_string(),
    };
    let mut properties: Vec<(String, PropertyValue)> = data
        .properties()
        .map(|p| p.iter().map(|(k, v)| (k.clone(), property(v))).collect())
        .unwrap_or_default();
    properties.sort_by(|a, b| a.0.cmp(&b.0));
    Event {
        body: data.body().unwrap_or_default().to_vec(),
        sequence_number: received.sequence_number().unwrap_or(-1),
        offset: received.offset().clone().unwrap_or_default(),
        enqueued_time_ms: received
            .enqueued_time()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
        partition_key: received.partition_key().clone(),
        content_type: data.content_type().map(str::to_string),
        correlation_id: data.correlation_id().map(id),
        message_id: data.message_id().map(id),
        properties,
    }
}

fn property(v: &AmqpSimpleValue) -> PropertyValue {
    use AmqpSimpleValue as V;
    match v {
        V::Null => PropertyValue::Null,
        V::Boolean(b) => PropertyValue::Bool(*b),
        V::UByte(n) => PropertyValue::Int(*n as i64),
        V::Byte(n) => PropertyValue::Int(*n as i64),
        V::UShort(n) => PropertyValue::Int(*n as i64),
        V::Short(n) => PropertyValue::Int(*n as i64),
        V::UInt(n) => PropertyValue::Int(*n as i64),
        V::Int(n) => PropertyValue::Int(*n as i64),
        V::ULong(n) => PropertyValue::Int(*n as i64),
        V::Long(n) => PropertyValue::Int(*n),
        V::Float(f) => PropertyValue::Double(*f as f64),
        V::Double(f) => PropertyValue::Double(*f),
        V::Char(c) => PropertyValue::Text(c.to_string()),
        V::TimeStamp(t) => PropertyValue::Timestamp(
            t.0.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        ),
        V::Uuid(u) => PropertyValue::Uuid(u.to_string()),
        V::Binary(b) => PropertyValue::Binary(b.clone()),
        V::String(s) => PropertyValue::Text(s.clone()),
        V::Symbol(s) => PropertyValue::Text(s.0.clone()),
        other => PropertyValue::Text(format!("{other:?}")),
    }
}
