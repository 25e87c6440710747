//! The offline replay harness behind `hubwasm plugin test`: run events from files through a
//! plugin exactly as the processor would (same batches, same verdict handling), print each
//! verdict and a summary.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::effects::dedupe::{DedupeStore, MemoryDedupe};
use crate::effects::journal::Binding;
use crate::effects::state::{MemoryState, PartitionState};
use crate::event::{Event, PartitionContext};
use crate::plugin::{FailureKind, LoadError, PluginError, PluginHandle, PluginSpec, Runtime};

/// Why a replay could not run at all (as opposed to events failing in it).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read events from {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    File(#[from] crate::files::FileError),
    #[error(
        "the events in {path} add up to more than {limit} bytes, the most a replay reads; use \
         fewer or smaller files"
    )]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("no events found in {path}: expected a .jsonl file (one event body per line) or a directory of them")]
    NoEvents { path: PathBuf },
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{0}")]
    Plugin(PluginError),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    #[error("the replay's in-memory effects failed: {0}")]
    Effects(String),
}

/// Read events: a `.jsonl` file (one body per non-empty line) or every `.jsonl` file of a
/// directory in name order, regular files only and at most `limit` bytes in all. Sequence
/// numbers count from 0 across files; offsets are byte offsets as Event Hubs reports them
/// (strings).
pub fn load_events(path: &Path, limit: u64) -> Result<Vec<Event>, ReplayError> {
    let read_err = |source| ReplayError::Read {
        path: path.to_path_buf(),
        source,
    };
    let files = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(read_err)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "jsonl"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut events = Vec::new();
    let mut offset = 0;
    let mut left = limit;
    for file in files {
        let text =
            crate::files::read(&file, crate::files::Bound::events(left)).map_err(
                |err| match err {
                    crate::files::FileError::TooLarge { .. } => ReplayError::TooLarge {
                        path: path.to_path_buf(),
                        limit,
                    },
                    other => other.into(),
                },
            )?;
        left -= text.len() as u64;
        append_events(&text, &mut events, &mut offset);
    }
    if events.is_empty() {
        return Err(ReplayError::NoEvents {
            path: path.to_path_buf(),
        });
    }
    Ok(events)
}

/// Events from `.jsonl` text (one body per non-empty line), numbered after those in `events`;
/// `offset` is the byte offset `text` starts at, and is moved past it.
pub fn append_events(text: &[u8], events: &mut Vec<Event>, offset: &mut usize) {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    for piece in text.split_inclusive(|&b| b == b'\n') {
        let line = piece.strip_suffix(b"\n").unwrap_or(piece);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.iter().all(u8::is_ascii_whitespace) {
            let mut event = Event::new(line.to_vec(), events.len() as i64, offset.to_string());
            event.enqueued_time_ms = now_ms;
            event.content_type = Some("application/json".into());
            events.push(event);
        }
        *offset += piece.len();
    }
}

/// Where a replay's events come from.
#[derive(Debug, Clone)]
pub enum EventsSource {
    /// A `.jsonl` file or a directory of them, at most this many bytes in all.
    Path(PathBuf, u64),
    /// `.jsonl` text already read (an upload).
    Text(Arc<[u8]>),
}

impl EventsSource {
    fn load(&self) -> Result<Vec<Event>, ReplayError> {
        match self {
            EventsSource::Path(path, limit) => load_events(path, *limit),
            EventsSource::Text(text) => {
                let mut events = Vec::new();
                append_events(text, &mut events, &mut 0);
                if events.is_empty() {
                    return Err(ReplayError::NoEvents {
                        path: PathBuf::from("the uploaded events"),
                    });
                }
                Ok(events)
            }
        }
    }
}

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub plugin: PluginSpec,
    pub events: EventsSource,
    /// Events per call (1 = one call per event).
    pub batch_size: usize,
    /// Print only failures and the summary.
    pub quiet: bool,
    /// Output names the plugin may emit to (its emitted events are printed, not sent).
    pub outputs: Vec<String>,
}

/// Counts and timings of a replay.
#[derive(Debug, Clone, Default)]
pub struct ReplaySummary {
    pub events: usize,
    pub succeeded: usize,
    /// Failures by label (`rejected`, `retryable`, `trapped`, ...).
    pub failed: BTreeMap<&'static str, usize>,
    pub calls: usize,
    /// Time spent inside plugin calls (including copying events in).
    pub plugin_time: Duration,
    pub wall: Duration,
    pub compile_time: Duration,
    pub from_cache: bool,
    /// Events the plugin emitted, and state keys it left.
    pub emitted: usize,
    pub state_keys: usize,
}

impl ReplaySummary {
    /// Number of events that failed.
    pub fn failures(&self) -> usize {
        self.failed.values().sum()
    }

    fn per_event(&self) -> Duration {
        self.plugin_time / self.events.max(1) as u32
    }
}

impl std::fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "summary: {} events, {} ok, {} failed",
            self.events,
            self.succeeded,
            self.failures()
        )?;
        if !self.failed.is_empty() {
            let parts: Vec<String> = self
                .failed
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            write!(f, " ({})", parts.join(", "))?;
        }
        if self.emitted > 0 {
            write!(f, ", {} emitted", self.emitted)?;
        }
        if self.state_keys > 0 {
            write!(f, ", {} state keys", self.state_keys)?;
        }
        writeln!(f)?;
        write!(
            f,
            "timing: {:.1} µs/event in the plugin over {} calls; wall {:.1} ms; plugin {} in {:.1} ms",
            self.per_event().as_secs_f64() * 1e6,
            self.calls,
            self.wall.as_secs_f64() * 1e3,
            if self.from_cache { "loaded from cache" } else { "compiled" },
            self.compile_time.as_secs_f64() * 1e3,
        )
    }
}

/// How many state entries the end of a replay shows.
const STATE_SHOWN: usize = 20;

/// A state value for people: text if it is printable UTF-8, a number if it is 8 bytes (the
/// guest libraries' counters), else hex.
fn show_value(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) if !text.chars().any(char::is_control) => format!("{text:?}"),
        _ => match <[u8; 8]>::try_from(value) {
            Ok(n) => format!("{} (u64)", u64::from_le_bytes(n)),
            Err(_) => value.iter().map(|b| format!("{b:02x}")).collect(),
        },
    }
}

/// The partition context replayed events claim to come from.
fn replay_context() -> PartitionContext {
    PartitionContext {
        namespace: "replay.local".into(),
        event_hub: "replay".into(),
        consumer_group: "$Default".into(),
        partition_id: "0".into(),
    }
}

/// Run the replay, writing verdict lines to `out` and progress lines to stderr.
pub async fn replay(
    runtime: &Runtime,
    options: &ReplayOptions,
    out: &mut (dyn Write + Send),
) -> Result<ReplaySummary, ReplayError> {
    let events = options.events.load()?;
    let started = Instant::now();
    let plugin = runtime.load(options.plugin.clone()).await?;
    let mut summary = ReplaySummary {
        events: events.len(),
        compile_time: plugin.compile_time(),
        from_cache: plugin.from_cache(),
        ..ReplaySummary::default()
    };
    writeln!(
        out,
        "replaying {} events through {} ({}, batch {})",
        events.len(),
        plugin.name(),
        plugin.kind(),
        options.batch_size
    )?;
    let handle = PluginHandle::new(plugin);
    let mut worker = handle.worker();
    let ctx = replay_context();
    // Effects stay in this process: emitted events are printed, state and keys kept in memory.
    let state = Arc::new(
        PartitionState::load(
            Arc::new(MemoryState::default()),
            "replay".into(),
            1 << 20,
            1 << 30,
        )
        .await
        .map_err(|e| ReplayError::Effects(e.to_string()))?,
    );
    let seen: Arc<dyn DedupeStore> = Arc::new(MemoryDedupe::default());
    worker.bind(Arc::new(Binding {
        outputs: options.outputs.clone(),
        state: Some(state.clone()),
        first_seen: Some((seen.clone(), "replay".into())),
        hub: "the replay (add the name with --output)".into(),
    }));
    worker.open(&ctx).await.map_err(ReplayError::Plugin)?;

    let batch_size = options.batch_size.max(1);
    let mut progress = Progress::new(events.len());
    let mut cursor = 0;
    // After a crash in a batch, events are replayed one at a time until past the culprit.
    let mut single_until = 0;
    while cursor < events.len() {
        let size = if cursor < single_until { 1 } else { batch_size };
        let batch = &events[cursor..(cursor + size).min(events.len())];
        let call_started = Instant::now();
        let result = worker.handle_batch(&ctx, batch).await;
        summary.plugin_time += call_started.elapsed();
        summary.calls += 1;
        let handled = match &result {
            Ok(()) => batch.len(),
            Err(failure) => failure.handled,
        };
        let effects = worker.take_effects();
        if handled > 0 {
            for e in &effects.emitted {
                summary.emitted += 1;
                if !options.quiet {
                    let body = String::from_utf8_lossy(&e.body);
                    let body: String = body.chars().take(200).collect();
                    writeln!(
                        out,
                        "  emit output={} source={} id={} body={body}",
                        options.outputs[e.output],
                        e.source,
                        crate::effects::outputs::message_id(&ctx, e.source, e.index)
                    )?;
                }
            }
            state
                .commit(batch[handled - 1].sequence_number, &effects.state_writes())
                .await
                .map_err(|e| ReplayError::Effects(e.to_string()))?;
            for (ttl, keys) in &effects.seen_by_ttl() {
                seen.record("replay", keys, *ttl)
                    .await
                    .map_err(|e| ReplayError::Effects(e.to_string()))?;
            }
        }
        if let Err(failure) = &result {
            if failure.error.kind() == FailureKind::Unavailable {
                return Err(ReplayError::Plugin(failure.error.clone()));
            }
            if failure.error.kind() == FailureKind::Crashed && batch.len() > 1 && handled == 0 {
                writeln!(
                    out,
                    "batch of {} starting at seq={} failed ({}); replaying it one event at a time",
                    batch.len(),
                    batch[0].sequence_number,
                    failure.error.label()
                )?;
                single_until = cursor + batch.len();
                continue;
            }
        }
        for event in &batch[..handled] {
            if !options.quiet {
                writeln!(
                    out,
                    "seq={} offset={} ok",
                    event.sequence_number, event.offset
                )?;
            }
        }
        summary.succeeded += handled;
        cursor += handled;
        if let Err(failure) = result {
            let event = &batch[handled];
            writeln!(
                out,
                "seq={} offset={} {}: {}",
                event.sequence_number,
                event.offset,
                failure.error.label().to_uppercase(),
                failure.error
            )?;
            *summary.failed.entry(failure.error.label()).or_default() += 1;
            // As a dead-letter policy would: record the failure and move past the event.
            cursor += 1;
        }
        progress.update(cursor);
    }
    worker
        .close(crate::plugin::CloseReason::Shutdown)
        .await
        .map_err(ReplayError::Plugin)?;
    let entries = state.scan("", None, usize::MAX);
    summary.state_keys = entries.len();
    if !entries.is_empty() && !options.quiet {
        writeln!(out, "state after the replay ({} keys):", entries.len())?;
        for (key, value) in entries.iter().take(STATE_SHOWN) {
            writeln!(out, "  {key} = {}", show_value(value))?;
        }
        if entries.len() > STATE_SHOWN {
            writeln!(out, "  ... {} more", entries.len() - STATE_SHOWN)?;
        }
    }
    summary.wall = started.elapsed();
    progress.finish();
    Ok(summary)
}

/// A progress line on stderr about once a second, for long replays.
struct Progress {
    total: usize,
    started: Instant,
    last: Instant,
    shown: bool,
}

impl Progress {
    const EVERY: Duration = Duration::from_secs(1);

    fn new(total: usize) -> Self {
        let now = Instant::now();
        Self {
            total,
            started: now,
            last: now,
            shown: false,
        }
    }

    fn update(&mut self, done: usize) {
        if self.last.elapsed() < Self::EVERY {
            return;
        }
        self.last = Instant::now();
        self.shown = true;
        let rate = done as f64 / self.started.elapsed().as_secs_f64();
        eprintln!(
            "progress: {done}/{} events ({:.0}%), {rate:.0} events/s",
            self.total,
            done as f64 * 100.0 / self.total as f64
        );
    }

    fn finish(&self) {
        if self.shown {
            eprintln!("progress: {}/{} events (100%)", self.total, self.total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_get_sequence_numbers_and_byte_offsets_across_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.jsonl"), "{\"n\":1}\n\n{\"n\":2}\n").unwrap();
        std::fs::write(dir.path().join("b.jsonl"), "{\"n\":3}").unwrap();
        std::fs::write(dir.path().join("ignored.txt"), "x").unwrap();
        let events = load_events(dir.path(), 1 << 20).unwrap();
        let seen: Vec<(i64, &str, &[u8])> = events
            .iter()
            .map(|e| (e.sequence_number, e.offset.as_str(), e.body.as_slice()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (0, "0", &b"{\"n\":1}"[..]),
                (1, "9", &b"{\"n\":2}"[..]),
                (2, "17", &b"{\"n\":3}"[..]),
            ]
        );
    }

    #[test]
    fn an_empty_events_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("empty.jsonl");
        std::fs::write(&file, "\n  \n").unwrap();
        let err = load_events(&file, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("empty.jsonl"), "{err}");
    }

    #[test]
    fn events_over_the_bound_and_files_that_are_not_regular_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.jsonl"), "{\"n\":1}\n").unwrap();
        std::fs::write(dir.path().join("b.jsonl"), "{\"n\":2}\n").unwrap();
        // 16 bytes in all: 15 is one byte short across the two files.
        assert_eq!(load_events(dir.path(), 16).unwrap().len(), 2);
        let err = load_events(dir.path(), 15).unwrap_err();
        assert!(
            matches!(err, ReplayError::TooLarge { limit: 15, .. }),
            "{err}"
        );
        let err = load_events(Path::new("/proc/self/environ"), 1 << 20).unwrap_err();
        assert!(matches!(err, ReplayError::File(_)), "{err}");
        assert!(!err.to_string().contains('='), "{err}");
        let err = load_events(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(matches!(err, ReplayError::File(_)), "{err}");
    }
}
