//! `hubwasm send`: the seed's producer as a command, through the official Rust SDK, against the
//! embedded endpoint or real Event Hubs.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use azure_messaging_eventhubs::models::EventData;
use azure_messaging_eventhubs::{EventDataBatchOptions, ProducerClient};

use crate::backoff::Backoff;
use crate::connection::{ConnectionError, ConnectionString};

/// Why sending failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error("{0}")]
    File(String),
    #[error("cannot read events from {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "event {0} is larger than the event hub's maximum message size (1 MiB on Event Hubs \
         Standard and on the embedded endpoint; with --partition-key, half that): send a smaller \
         event"
    )]
    TooLarge(usize),
    /// The event hub did not accept a send within the retry bound.
    #[error(
        "gave up {what} after {attempts} attempts over {:.0?} ({sent} events were sent): \
         {cause}; check that the event hub is reachable and the key is valid",
        elapsed
    )]
    GaveUp {
        what: &'static str,
        attempts: u32,
        elapsed: Duration,
        sent: usize,
        cause: String,
    },
}

/// How often one operation (connect, create a batch, send it) is tried before `send` gives up.
const ATTEMPTS: u32 = 5;
/// How long one operation may take before it counts as failed (the SDK may otherwise wait for
/// a connection that is gone for a very long time).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(15);

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
///
/// Events are generated (or read) batch by batch while sending, so memory stays flat whatever
/// the count, and each generated event's `timestamp` is its send time. A failed connect or send
/// is retried with backoff up to [`ATTEMPTS`] times, each bounded by [`OPERATION_TIMEOUT`] and
/// announced through `report`; then `send` ends with one readable [`SendError::GaveUp`].
pub async fn send(
    options: &SendOptions,
    mut report: impl FnMut(&str),
) -> Result<SendSummary, SendError> {
    let conn = ConnectionString::parse(&options.connection_string)?;
    let mut bodies = Bodies::open(options)?;
    let target = conn.target();
    let mut summary = SendSummary::default();
    let started = Instant::now();

    let mut producer = retried("connecting", 0, &mut report, || target.producer()).await?;
    let partitions = if options.partition.is_none() && options.partition_key.is_none() {
        let p = &producer;
        retried("reading the partitions", 0, &mut report, || async {
            p.get_eventhub_properties()
                .await
                .map(|props| props.partition_ids)
        })
        .await?
    } else {
        Vec::new()
    };

    let mut last_progress = Instant::now();
    let total = bodies.total();
    let mut chunk = Vec::with_capacity(options.batch_size.max(1));
    let mut i = 0usize;
    loop {
        chunk.clear();
        bodies.next_chunk(options.batch_size.max(1), &mut chunk)?;
        if chunk.is_empty() {
            break;
        }
        // Round-robin over the partitions unless a partition or key is given, like the seed.
        let partition_id = options
            .partition
            .clone()
            .or_else(|| (!partitions.is_empty()).then(|| partitions[i % partitions.len()].clone()));
        i = i.wrapping_add(1);
        let mut retry = Retry::new("sending");
        loop {
            let sent = tokio::time::timeout(
                OPERATION_TIMEOUT,
                send_chunk(&producer, &chunk, &partition_id, options),
            )
            .await
            .unwrap_or_else(|_| Err(Failed::Other(no_answer())));
            match sent {
                Ok(()) => break,
                Err(Failed::TooLarge) => return Err(SendError::TooLarge(summary.sent + 1)),
                Err(Failed::Other(cause)) => {
                    retry.failed(cause, summary.sent, &mut report).await?;
                    // The connection may be gone: open a new one (bounded like a send).
                    if let Ok(Ok(fresh)) =
                        tokio::time::timeout(OPERATION_TIMEOUT, target.producer()).await
                    {
                        let old = std::mem::replace(&mut producer, fresh);
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(OPERATION_TIMEOUT, old.close()).await;
                        });
                    }
                }
            }
        }
        summary.sent += chunk.len();
        summary.batches += 1;
        let to = match (&partition_id, &options.partition_key) {
            (Some(p), _) => format!("partition {p}"),
            (None, Some(k)) => format!("partition key {k}"),
            (None, None) => "any partition".into(),
        };
        if total.is_some_and(|t| t <= 100) {
            report(&format!("sent {} event(s) to {to}", chunk.len()));
        } else if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            match total {
                Some(t) => report(&format!("progress: {}/{t} events sent", summary.sent)),
                None => report(&format!("progress: {} events sent", summary.sent)),
            }
        }
        if !options.interval.is_zero() && total.is_none_or(|t| summary.sent < t) {
            tokio::time::sleep(options.interval).await;
        }
    }
    summary.elapsed = started.elapsed();
    let _ = tokio::time::timeout(OPERATION_TIMEOUT, producer.close()).await;
    Ok(summary)
}

/// Why one batch was not sent.
enum Failed {
    TooLarge,
    Other(String),
}

async fn send_chunk(
    producer: &ProducerClient,
    chunk: &[String],
    partition_id: &Option<String>,
    options: &SendOptions,
) -> Result<(), Failed> {
    let other =
        |e: azure_messaging_eventhubs::EventHubsError| Failed::Other(crate::errors::one_line(&e));
    let new_batch = || {
        producer.create_batch(Some(EventDataBatchOptions {
            partition_id: partition_id.clone(),
            partition_key: options.partition_key.clone(),
            ..Default::default()
        }))
    };
    let event = |body: &String| {
        EventData::builder()
            .with_body(body.as_bytes().to_vec())
            .with_content_type("application/json".into())
            .build()
    };
    let mut batch = new_batch().await.map_err(other)?;
    for body in chunk {
        if batch.try_add_event_data(event(body), None).map_err(other)? {
            continue;
        }
        if !batch.is_empty() {
            // Full: send what it holds and start another.
            producer.send_batch(batch, None).await.map_err(other)?;
            batch = new_batch().await.map_err(other)?;
            if batch.try_add_event_data(event(body), None).map_err(other)? {
                continue;
            }
        }
        // Alone it does not fit a batch: the SDK counts a batch's first event twice, so an
        // event over half the hub's maximum never does. Sent as one message, the hub itself
        // judges its size (as the Python SDK's producer lets it).
        if options.partition_key.is_some() {
            return Err(Failed::TooLarge);
        }
        let single = azure_messaging_eventhubs::SendEventOptions {
            partition_id: partition_id.clone(),
        };
        producer
            .send_event(event(body), Some(single))
            .await
            .map_err(|e| {
                let text = crate::errors::one_line(&e);
                if text.contains("message-size-exceeded") || text.contains("PayloadSizeExceeded") {
                    Failed::TooLarge
                } else {
                    Failed::Other(text)
                }
            })?;
    }
    if batch.is_empty() {
        return Ok(());
    }
    producer.send_batch(batch, None).await.map_err(other)
}

fn no_answer() -> String {
    format!("no answer within {OPERATION_TIMEOUT:?}")
}

/// The retries of one operation: up to [`ATTEMPTS`] tries with backoff, each failure but the
/// last announced through `report`, the last one ending `send` with [`SendError::GaveUp`].
struct Retry {
    what: &'static str,
    attempt: u32,
    backoff: Backoff,
    started: Instant,
}

impl Retry {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            attempt: 0,
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(8)),
            started: Instant::now(),
        }
    }

    /// One more try failed with `cause`: wait before the next, or give up after the last.
    async fn failed(
        &mut self,
        cause: String,
        sent: usize,
        report: &mut impl FnMut(&str),
    ) -> Result<(), SendError> {
        self.attempt += 1;
        if self.attempt >= ATTEMPTS {
            return Err(SendError::GaveUp {
                what: self.what,
                attempts: self.attempt,
                elapsed: self.started.elapsed(),
                sent,
                cause,
            });
        }
        let wait = self.backoff.next_delay();
        report(&format!(
            "{} failed ({cause}); retrying in {wait:?} (attempt {} of {ATTEMPTS})",
            self.what, self.attempt
        ));
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

/// Run `op` until it succeeds, each try bounded by [`OPERATION_TIMEOUT`] (see [`Retry`]).
async fn retried<T, E, F, Fut>(
    what: &'static str,
    sent: usize,
    report: &mut impl FnMut(&str),
    mut op: F,
) -> Result<T, SendError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::error::Error + 'static,
{
    let mut retry = Retry::new(what);
    loop {
        let cause = match tokio::time::timeout(OPERATION_TIMEOUT, op()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(err)) => crate::errors::one_line(&err),
            Err(_) => no_answer(),
        };
        retry.failed(cause, sent, report).await?;
    }
}

/// The longest line of a `--file` read (an event over the 1 MiB message maximum is refused
/// anyway).
const MAX_LINE_BYTES: usize = 2 << 20;

/// Event bodies produced on demand: generated seed events or the lines of a file.
enum Bodies {
    Seed {
        next: usize,
        count: usize,
    },
    File {
        path: PathBuf,
        reader: std::io::BufReader<std::fs::File>,
        /// The line number read last.
        line: usize,
        left: usize,
    },
}

impl Bodies {
    fn open(options: &SendOptions) -> Result<Self, SendError> {
        Ok(match &options.file {
            None => Bodies::Seed {
                next: 1,
                count: options.count,
            },
            Some(path) => {
                // A regular file only: a device or FIFO named here would never end.
                let file = crate::files::open_regular(path, "events file")
                    .map_err(|e| SendError::File(e.to_string()))?;
                Bodies::File {
                    path: path.clone(),
                    reader: std::io::BufReader::new(file),
                    line: 0,
                    left: if options.count == 0 {
                        usize::MAX
                    } else {
                        options.count
                    },
                }
            }
        })
    }

    /// The number of events, when known up front.
    fn total(&self) -> Option<usize> {
        match self {
            Bodies::Seed { count, .. } => Some(*count),
            Bodies::File { .. } => None,
        }
    }

    /// Up to `n` more bodies into `out` (none at the end).
    fn next_chunk(&mut self, n: usize, out: &mut Vec<String>) -> Result<(), SendError> {
        match self {
            Bodies::Seed { next, count } => {
                while out.len() < n && *next <= *count {
                    out.push(seed_event(*next));
                    *next += 1;
                }
            }
            Bodies::File {
                path,
                reader,
                line,
                left,
            } => {
                use std::io::{BufRead, Read};
                while out.len() < n && *left > 0 {
                    // One line, read to its bound and no further.
                    let mut bytes = Vec::new();
                    let read = reader
                        .by_ref()
                        .take(MAX_LINE_BYTES as u64 + 1)
                        .read_until(b'\n', &mut bytes)
                        .map_err(|source| SendError::Read {
                            path: path.clone(),
                            source,
                        })?;
                    if read == 0 {
                        break;
                    }
                    *line += 1;
                    if bytes.last() == Some(&b'\n') {
                        bytes.pop();
                    } else if bytes.len() > MAX_LINE_BYTES {
                        return Err(SendError::File(format!(
                            "line {} of {} is longer than {MAX_LINE_BYTES} bytes: an event body \
                             must fit in one message (1 MiB)",
                            line,
                            path.display()
                        )));
                    }
                    let text = String::from_utf8(bytes).map_err(|_| {
                        SendError::File(format!(
                            "line {} of {} is not UTF-8 text",
                            line,
                            path.display()
                        ))
                    })?;
                    if text.trim().is_empty() {
                        continue;
                    }
                    out.push(text.trim_end_matches('\r').to_string());
                    *left -= 1;
                }
            }
        }
        Ok(())
    }
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

    #[test]
    fn generated_bodies_come_batch_by_batch() {
        let options = SendOptions {
            connection_string: String::new(),
            count: 5,
            interval: Duration::ZERO,
            partition: None,
            partition_key: None,
            batch_size: 2,
            file: None,
        };
        let mut bodies = Bodies::open(&options).unwrap();
        let mut sizes = Vec::new();
        loop {
            let mut chunk = Vec::new();
            bodies.next_chunk(2, &mut chunk).unwrap();
            if chunk.is_empty() {
                break;
            }
            sizes.push(chunk.len());
        }
        assert_eq!(sizes, [2, 2, 1]);
    }

    #[test]
    fn a_file_is_read_line_by_line_within_bounds_and_only_if_regular() {
        let options = |file: &std::path::Path| SendOptions {
            connection_string: String::new(),
            count: 0,
            interval: Duration::ZERO,
            partition: None,
            partition_key: None,
            batch_size: 10,
            file: Some(file.to_path_buf()),
        };
        let all = |file: &std::path::Path| -> Result<Vec<String>, SendError> {
            let mut bodies = Bodies::open(&options(file))?;
            let mut out = Vec::new();
            loop {
                let before = out.len();
                bodies.next_chunk(10, &mut out)?;
                if out.len() == before {
                    return Ok(out);
                }
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("e.jsonl");
        std::fs::write(&file, "{\"a\":1}\r\n\n  \n{\"a\":2}").unwrap();
        assert_eq!(all(&file).unwrap(), ["{\"a\":1}", "{\"a\":2}"]);
        std::fs::write(&file, "x".repeat(MAX_LINE_BYTES + 10)).unwrap();
        let err = all(&file).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        for path in ["/dev/zero", "/proc/self/environ"] {
            let err = all(std::path::Path::new(path)).expect_err(path);
            assert!(
                err.to_string().contains("not a regular file")
                    || err.to_string().contains("kernel file system"),
                "{err}"
            );
        }
    }
}
