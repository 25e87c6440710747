//! `hubwasm send`: the seed's producer as a command, through the official Rust SDK, against the
//! embedded endpoint or real Event Hubs.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use azure_messaging_eventhubs::models::EventData;
use azure_messaging_eventhubs::EventDataBatchOptions;

use crate::connection::{ConnectionError, ConnectionString};

/// Why sending failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error("cannot read events from {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("event {0} does not fit in one batch of the hub's maximum size; lower --batch-size")]
    TooLarge(usize),
    #[error("Event Hubs: {0}")]
    EventHubs(#[from] azure_messaging_eventhubs::EventHubsError),
}

/// What to send.
#[derive(Debug, Clone)]
pub struct SendOptions {
    pub connection_string: String,
    pub count: usize,
    pub interval: Duration,
    pub partition: Option<String>,
    pub partition_key: Option<String>,
    pub batch_size: usize,
    /// Bodies from a .jsonl file instead of generated seed events.
    pub file: Option<PathBuf>,
}

/// Counts of a send.
#[derive(Debug, Clone, Default)]
pub struct SendSummary {
    pub sent: usize,
    pub batches: usize,
    pub elapsed: Duration,
}

/// A seed-shaped event body: `{"event_id", "message_id", "timestamp", "value", "data"}`.
pub fn seed_event(n: usize) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        r#"{{"event_id": "{}", "message_id": {n}, "timestamp": "{}", "value": {}, "data": "Test message #{n}"}}"#,
        azure_core::Uuid::new_v4(),
        iso8601(now),
        n * 10
    )
}

/// UTC ISO-8601 with milliseconds, from a duration since the epoch.
fn iso8601(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

/// Send events, reporting each batch (or progress, on long runs) through `report`.
pub async fn send(
    options: &SendOptions,
    mut report: impl FnMut(&str),
) -> Result<SendSummary, SendError> {
    let conn = ConnectionString::parse(&options.connection_string)?;
    let bodies: Vec<String> = match &options.file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|source| SendError::Read {
                path: path.clone(),
                source,
            })?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .take(if options.count == 0 {
                usize::MAX
            } else {
                options.count
            })
            .collect(),
        None => (1..=options.count).map(seed_event).collect(),
    };
    let producer = conn.producer().await?;
    let partitions = if options.partition.is_none() && options.partition_key.is_none() {
        producer.get_eventhub_properties().await?.partition_ids
    } else {
        Vec::new()
    };

    let started = Instant::now();
    let mut summary = SendSummary::default();
    let mut last_progress = Instant::now();
    let total = bodies.len();
    for (i, chunk) in bodies.chunks(options.batch_size.max(1)).enumerate() {
        // Round-robin over the partitions unless a partition or key is given, like the seed.
        let partition_id = options
            .partition
            .clone()
            .or_else(|| (!partitions.is_empty()).then(|| partitions[i % partitions.len()].clone()));
        let batch = producer
            .create_batch(Some(EventDataBatchOptions {
                partition_id: partition_id.clone(),
                partition_key: options.partition_key.clone(),
                ..Default::default()
            }))
            .await?;
        for body in chunk {
            let event = EventData::builder()
                .with_body(body.as_bytes().to_vec())
                .with_content_type("application/json".into())
                .build();
            if !batch.try_add_event_data(event, None)? {
                return Err(SendError::TooLarge(summary.sent + 1));
            }
        }
        producer.send_batch(batch, None).await?;
        summary.sent += chunk.len();
        summary.batches += 1;
        let target = match (&partition_id, &options.partition_key) {
            (Some(p), _) => format!("partition {p}"),
            (None, Some(k)) => format!("partition key {k}"),
            (None, None) => "any partition".into(),
        };
        if total <= 100 {
            report(&format!("sent {} event(s) to {target}", chunk.len()));
        } else if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            report(&format!("progress: {}/{total} events sent", summary.sent));
        }
        if !options.interval.is_zero() && summary.sent < total {
            tokio::time::sleep(options.interval).await;
        }
    }
    summary.elapsed = started.elapsed();
    producer.close().await?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_iso8601_utc() {
        assert_eq!(
            iso8601(Duration::from_millis(0)),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            iso8601(Duration::from_millis(1_764_000_000_123)),
            "2025-11-24T16:00:00.123Z"
        );
        let body: serde_json::Value = serde_json::from_str(&seed_event(3)).unwrap();
        assert_eq!(body["value"], 30);
        assert_eq!(body["data"], "Test message #3");
    }
}
