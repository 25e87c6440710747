//! Durable partitions: one append-only segment log per partition.
//!
//! A partition is a directory of segment files named by the sequence number of their first
//! record (`00000000000000000000.log`). Each segment starts with an 8-byte header holding the
//! logical offset of its first byte, so offsets keep growing across segments, restarts and
//! retention. A record is:
//!
//! ```text
//! [u32 len][u32 crc32][i64 sequence][i64 enqueued ms][u16 key len][key][payload]
//! ```
//!
//! `len` counts everything after the crc; the crc covers the same bytes. A record's offset (as
//! Event Hubs reports it) is its segment's base offset plus its position in the segment.
//!
//! On open every segment is scanned. A torn record at the end of the last segment (a crash
//! during a write) is cut off; a bad record anywhere else is reported as corruption.
//!
//! The whole index (sequence → segment, position, offset, time: 40 bytes per event) is kept in
//! memory; that is 40 MB per million retained events.
//!
//! Why not an embedded database: a partition is strictly append-only and read sequentially, which
//! a segment log does with one `write` per batch and no compaction; an LSM or B-tree would add
//! write amplification and a large dependency for features (random updates, range deletes) that
//! are not needed.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// When appended records reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync after every append: nothing acknowledged is ever lost.
    Always,
    /// fsync at most this often: on append once the interval has passed, and by
    /// [`PartitionLog::sync_if_due`] (which the endpoint calls on a timer) for the tail of a
    /// burst that no append follows. A crash may lose the last interval.
    EveryMillis(u64),
    /// Leave it to the OS.
    Never,
}

/// What to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    pub max_age: Option<Duration>,
    pub max_bytes: Option<u64>,
}

/// Settings of a partition log.
#[derive(Debug, Clone)]
pub struct LogOptions {
    pub fsync: FsyncPolicy,
    pub segment_bytes: u64,
    pub retention: Retention,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            fsync: FsyncPolicy::EveryMillis(100),
            segment_bytes: 64 << 20,
            retention: Retention::default(),
        }
    }
}

/// An event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendEvent {
    pub partition_key: Option<String>,
    pub payload: Vec<u8>,
}

/// An event read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub sequence_number: i64,
    pub offset: i64,
    pub enqueued_time_ms: i64,
    pub partition_key: Option<String>,
    pub payload: Vec<u8>,
}

/// A storage failure, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: a record of {size} bytes is too large to store (at most {max})")]
    TooLarge {
        path: PathBuf,
        size: usize,
        max: u32,
    },
    #[error("{path} is corrupt at byte {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
}

const SEGMENT_HEADER: u64 = 8;
const RECORD_HEADER: usize = 4 + 4 + 8 + 8 + 2;
/// Refuse records larger than this when scanning (a corrupt length).
const MAX_RECORD: u32 = 64 << 20;

#[derive(Debug, Clone, Copy)]
struct IndexEntry {
    sequence: i64,
    offset: i64,
    time_ms: i64,
    /// Index into `segments`' positions are relative to the segment file.
    position: u64,
    len: u32,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    base_offset: i64,
    /// First sequence number stored in it (its name).
    first_sequence: i64,
    /// Bytes used, header included.
    size: u64,
    /// Index entries of this segment.
    entries: Vec<IndexEntry>,
}

/// One partition's log.
pub struct PartitionLog {
    dir: PathBuf,
    options: LogOptions,
    segments: Vec<Segment>,
    active: File,
    next_sequence: i64,
    last_sync: Instant,
    dirty: bool,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn segment_path(dir: &Path, first_sequence: i64) -> PathBuf {
    dir.join(format!("{first_sequence:020}.log"))
}

impl PartitionLog {
    /// Open or create the log in `dir`, recovering its state.
    pub fn open(dir: &Path, options: LogOptions) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut names: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let path = e.path();
                let stem = path.file_stem()?.to_str()?.to_string();
                (path.extension()? == "log")
                    .then(|| stem.parse::<i64>().ok().map(|n| (n, path)))
                    .flatten()
            })
            .collect();
        names.sort();
        let count = names.len();
        let mut segments = Vec::with_capacity(count);
        for (i, (first_sequence, path)) in names.into_iter().enumerate() {
            segments.push(scan(&path, first_sequence, i + 1 == count)?);
        }
        if segments.is_empty() {
            segments.push(create_segment(dir, 0, 0)?);
        }
        let last = segments.last().expect("at least one segment");
        let next_sequence = segments
            .iter()
            .rev()
            .find_map(|s| s.entries.last().map(|e| e.sequence + 1))
            .unwrap_or(last.first_sequence);
        let active = OpenOptions::new()
            .append(true)
            .open(&last.path)
            .map_err(io(&last.path))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            options,
            segments,
            active,
            next_sequence,
            last_sync: Instant::now(),
            dirty: false,
        })
    }

    /// Append a batch atomically (one write); returns each event's (sequence, offset).
    pub fn append(
        &mut self,
        events: &[AppendEvent],
        enqueued_time_ms: i64,
    ) -> Result<Vec<(i64, i64)>, StorageError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        if self.active_segment().size >= self.options.segment_bytes
            && !self.active_segment().entries.is_empty()
        {
            self.roll()?;
        }
        // A longer record would be written, then taken for a corrupt length on reopen.
        for event in events {
            let key = event.partition_key.as_deref().unwrap_or("").len();
            let size = (8 + 8 + 2 + key.min(u16::MAX as usize)).saturating_add(event.payload.len());
            if size > MAX_RECORD as usize {
                return Err(StorageError::TooLarge {
                    path: self.active_segment().path.clone(),
                    size,
                    max: MAX_RECORD,
                });
            }
        }
        let segment = self.segments.last_mut().expect("active segment");
        let mut buf = Vec::new();
        let mut entries = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            let sequence = self.next_sequence + i as i64;
            let position = segment.size + buf.len() as u64;
            let key = event.partition_key.as_deref().unwrap_or("").as_bytes();
            let key = &key[..key.len().min(u16::MAX as usize)];
            let len = (8 + 8 + 2 + key.len() + event.payload.len()) as u32;
            let start = buf.len();
            buf.extend_from_slice(&len.to_be_bytes());
            buf.extend_from_slice(&[0; 4]);
            buf.extend_from_slice(&sequence.to_be_bytes());
            buf.extend_from_slice(&enqueued_time_ms.to_be_bytes());
            // A key length of 0xFFFF would be ambiguous with "absent"; absent is encoded as 0
            // plus an empty key, and keys are never empty in Event Hubs.
            buf.extend_from_slice(&(key.len() as u16).to_be_bytes());
            buf.extend_from_slice(key);
            buf.extend_from_slice(&event.payload);
            let crc = crc32fast::hash(&buf[start + 8..]);
            buf[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
            entries.push(IndexEntry {
                sequence,
                offset: segment.base_offset + position as i64,
                time_ms: enqueued_time_ms,
                position,
                len: len + 8,
            });
        }
        self.active.write_all(&buf).map_err(io(&segment.path))?;
        segment.size += buf.len() as u64;
        let positions = entries.iter().map(|e| (e.sequence, e.offset)).collect();
        segment.entries.extend(entries);
        self.next_sequence += events.len() as i64;
        self.dirty = true;
        match self.options.fsync {
            FsyncPolicy::Always => self.flush()?,
            FsyncPolicy::EveryMillis(ms)
                if self.last_sync.elapsed() >= Duration::from_millis(ms) =>
            {
                self.flush()?
            }
            _ => {}
        }
        Ok(positions)
    }

    /// Events with sequence number ≥ `first_sequence`, in order: at most `max_events`, and at
    /// most `max_bytes` of payload (but at least one event if any is available).
    pub fn read_from_sequence(
        &self,
        first_sequence: i64,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredEvent>, StorageError> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for segment in &self.segments {
            let Some(last) = segment.entries.last() else {
                continue;
            };
            if last.sequence < first_sequence {
                continue;
            }
            let start = segment
                .entries
                .partition_point(|e| e.sequence < first_sequence);
            let wanted = &segment.entries[start..];
            if wanted.is_empty() {
                continue;
            }
            let mut file = File::open(&segment.path).map_err(io(&segment.path))?;
            file.seek(SeekFrom::Start(wanted[0].position))
                .map_err(io(&segment.path))?;
            let mut reader = std::io::BufReader::with_capacity(64 * 1024, file);
            for entry in wanted {
                if out.len() >= max_events || (!out.is_empty() && bytes >= max_bytes) {
                    return Ok(out);
                }
                let mut record = vec![0u8; entry.len as usize];
                reader.read_exact(&mut record).map_err(io(&segment.path))?;
                let event = decode_record(&record, entry).ok_or_else(|| StorageError::Corrupt {
                    path: segment.path.clone(),
                    position: entry.position,
                    reason: "record changed on disk since it was indexed".into(),
                })?;
                bytes += event.payload.len();
                out.push(event);
            }
        }
        Ok(out)
    }

    fn entries(&self) -> impl DoubleEndedIterator<Item = &IndexEntry> {
        self.segments.iter().flat_map(|s| s.entries.iter())
    }

    /// First sequence number whose offset is after `offset` (or at it, if `inclusive`).
    pub fn sequence_for_offset(&self, offset: i64, inclusive: bool) -> Option<i64> {
        self.entries()
            .find(|e| {
                if inclusive {
                    e.offset >= offset
                } else {
                    e.offset > offset
                }
            })
            .map(|e| e.sequence)
    }

    /// First sequence number enqueued strictly after `enqueued_time_ms`.
    pub fn sequence_for_time(&self, enqueued_time_ms: i64) -> Option<i64> {
        self.entries()
            .find(|e| e.time_ms > enqueued_time_ms)
            .map(|e| e.sequence)
    }

    /// First retained sequence number (the next one to be written when nothing is retained).
    pub fn begin_sequence_number(&self) -> i64 {
        self.entries()
            .next()
            .map(|e| e.sequence)
            .unwrap_or(self.next_sequence)
    }

    /// Last sequence number, -1 when nothing was ever written.
    pub fn last_sequence_number(&self) -> i64 {
        self.next_sequence - 1
    }

    /// Offset of the last event, -1 when empty.
    pub fn last_offset(&self) -> i64 {
        self.entries().next_back().map(|e| e.offset).unwrap_or(-1)
    }

    /// Enqueued time of the last event, 0 when empty.
    pub fn last_enqueued_time_ms(&self) -> i64 {
        self.entries().next_back().map(|e| e.time_ms).unwrap_or(0)
    }

    /// True if no event is retained.
    pub fn is_empty(&self) -> bool {
        self.entries().next().is_none()
    }

    /// Delete whole old segments (never the active one) past the retention limits.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<(), StorageError> {
        let retention = self.options.retention;
        loop {
            if self.segments.len() <= 1 {
                return Ok(());
            }
            let total: u64 = self.segments.iter().map(|s| s.size).sum();
            let oldest = &self.segments[0];
            let too_old = retention.max_age.is_some_and(|age| {
                oldest.entries.last().is_some_and(|e| {
                    // An age beyond i64 ms keeps everything (`as` would wrap it negative).
                    let max_ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
                    now_ms.saturating_sub(e.time_ms) > max_ms
                })
            });
            let too_big = retention.max_bytes.is_some_and(|max| total > max);
            if !(too_old || too_big) {
                return Ok(());
            }
            let removed = self.segments.remove(0);
            std::fs::remove_file(&removed.path).map_err(io(&removed.path))?;
            tracing::info!(segment = %removed.path.display(), events = removed.entries.len(), "Retention removed a segment");
        }
    }

    /// Under [`FsyncPolicy::EveryMillis`], fsync if records are unsynced and the interval has
    /// passed since the last fsync; returns whether it synced. Other policies need no timer.
    pub fn sync_if_due(&mut self) -> Result<bool, StorageError> {
        match self.options.fsync {
            FsyncPolicy::EveryMillis(ms)
                if self.dirty && self.last_sync.elapsed() >= Duration::from_millis(ms) =>
            {
                self.flush()?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Whether appended records may not have reached the disk yet (no fsync since).
    pub fn has_unsynced(&self) -> bool {
        self.dirty
    }

    /// fsync the active segment now.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        if self.dirty {
            let path = &self.active_segment().path;
            self.active.sync_data().map_err(io(path))?;
            self.dirty = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    fn active_segment(&self) -> &Segment {
        self.segments.last().expect("active segment")
    }

    fn roll(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        let last = self.active_segment();
        let base = last.base_offset + last.size as i64;
        let segment = create_segment(&self.dir, self.next_sequence, base)?;
        self.active = OpenOptions::new()
            .append(true)
            .open(&segment.path)
            .map_err(io(&segment.path))?;
        self.segments.push(segment);
        Ok(())
    }
}

impl Drop for PartitionLog {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

fn create_segment(
    dir: &Path,
    first_sequence: i64,
    base_offset: i64,
) -> Result<Segment, StorageError> {
    let path = segment_path(dir, first_sequence);
    let mut file = File::create(&path).map_err(io(&path))?;
    file.write_all(&base_offset.to_be_bytes())
        .map_err(io(&path))?;
    file.sync_all().map_err(io(&path))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all(); // make the new name durable
    }
    Ok(Segment {
        path,
        base_offset,
        first_sequence,
        size: SEGMENT_HEADER,
        entries: Vec::new(),
    })
}

fn decode_record(record: &[u8], entry: &IndexEntry) -> Option<StoredEvent> {
    if record.len() < RECORD_HEADER {
        return None;
    }
    let crc = u32::from_be_bytes(record[4..8].try_into().ok()?);
    if crc32fast::hash(&record[8..]) != crc {
        return None;
    }
    let sequence = i64::from_be_bytes(record[8..16].try_into().ok()?);
    let time_ms = i64::from_be_bytes(record[16..24].try_into().ok()?);
    let key_len = u16::from_be_bytes(record[24..26].try_into().ok()?) as usize;
    let key = record.get(26..26 + key_len)?;
    if sequence != entry.sequence {
        return None;
    }
    Some(StoredEvent {
        sequence_number: sequence,
        offset: entry.offset,
        enqueued_time_ms: time_ms,
        partition_key: (key_len > 0).then(|| String::from_utf8_lossy(key).into_owned()),
        payload: record[26 + key_len..].to_vec(),
    })
}

/// Read a segment's index; cut a torn tail if it is the last segment.
fn scan(path: &Path, first_sequence: i64, is_last: bool) -> Result<Segment, StorageError> {
    let data = std::fs::read(path).map_err(io(path))?;
    let corrupt = |position: u64, reason: &str| StorageError::Corrupt {
        path: path.to_path_buf(),
        position,
        reason: reason.to_string(),
    };
    if data.len() < SEGMENT_HEADER as usize {
        if is_last {
            // Crashed while creating it: recreate the header below.
            let segment = Segment {
                path: path.to_path_buf(),
                base_offset: 0,
                first_sequence,
                size: SEGMENT_HEADER,
                entries: Vec::new(),
            };
            let mut f = File::create(path).map_err(io(path))?;
            f.write_all(&0i64.to_be_bytes()).map_err(io(path))?;
            return Ok(segment);
        }
        return Err(corrupt(0, "segment header is missing"));
    }
    let base_offset = i64::from_be_bytes(data[..8].try_into().expect("8 bytes"));
    let mut entries = Vec::new();
    let mut pos = SEGMENT_HEADER as usize;
    let mut expected = first_sequence;
    let mut torn = None;
    while pos < data.len() {
        let rest = &data[pos..];
        let bad = if rest.len() < RECORD_HEADER {
            Some("truncated record header")
        } else {
            let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes"));
            if len > MAX_RECORD
                || len as usize + 8 > rest.len()
                || (len as usize) < RECORD_HEADER - 8
            {
                Some("record length runs past the end of the segment")
            } else {
                let record = &rest[..len as usize + 8];
                let probe = IndexEntry {
                    sequence: expected,
                    offset: 0,
                    time_ms: 0,
                    position: 0,
                    len: len + 8,
                };
                match decode_record(record, &probe) {
                    Some(event) => {
                        entries.push(IndexEntry {
                            sequence: event.sequence_number,
                            offset: base_offset + pos as i64,
                            time_ms: event.enqueued_time_ms,
                            position: pos as u64,
                            len: len + 8,
                        });
                        expected += 1;
                        pos += len as usize + 8;
                        None
                    }
                    None => Some("checksum or sequence mismatch"),
                }
            }
        };
        if let Some(reason) = bad {
            torn = Some((pos, reason));
            break;
        }
    }
    if let Some((at, reason)) = torn {
        if !is_last {
            return Err(corrupt(at as u64, reason));
        }
        tracing::warn!(segment = %path.display(), position = at, reason, "Cutting a torn record off the end of the log");
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io(path))?;
        f.set_len(at as u64).map_err(io(path))?;
        f.sync_all().map_err(io(path))?;
    }
    Ok(Segment {
        path: path.to_path_buf(),
        base_offset,
        first_sequence,
        size: pos as u64,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(n: usize, tag: &str) -> Vec<AppendEvent> {
        (0..n)
            .map(|i| AppendEvent {
                partition_key: (i % 2 == 0).then(|| format!("key-{i}")),
                payload: format!("{tag}-{i}").into_bytes(),
            })
            .collect()
    }

    fn options() -> LogOptions {
        LogOptions {
            fsync: FsyncPolicy::Never,
            ..LogOptions::default()
        }
    }

    #[test]
    fn appended_events_read_back_with_consecutive_sequence_numbers_and_growing_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), options()).unwrap();
        assert_eq!(log.last_sequence_number(), -1);
        assert_eq!(log.last_offset(), -1);
        assert!(log.is_empty());
        let first = log.append(&events(3, "a"), 1000).unwrap();
        let second = log.append(&events(2, "b"), 2000).unwrap();
        assert_eq!(first.iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(second.iter().map(|p| p.0).collect::<Vec<_>>(), vec![3, 4]);
        let offsets: Vec<i64> = first.iter().chain(&second).map(|p| p.1).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");

        let read = log.read_from_sequence(0, 100, usize::MAX).unwrap();
        assert_eq!(read.len(), 5);
        assert_eq!(read[0].payload, b"a-0");
        assert_eq!(read[0].partition_key.as_deref(), Some("key-0"));
        assert_eq!(read[1].partition_key, None);
        assert_eq!(read[4].payload, b"b-1");
        assert_eq!(read[4].enqueued_time_ms, 2000);
        assert_eq!(read[3].offset, second[0].1);
        assert_eq!(log.last_sequence_number(), 4);
        assert_eq!(log.last_offset(), second[1].1);
        assert_eq!(log.last_enqueued_time_ms(), 2000);
        // Limits.
        assert_eq!(log.read_from_sequence(3, 1, usize::MAX).unwrap().len(), 1);
        assert_eq!(
            log.read_from_sequence(0, 100, 1).unwrap().len(),
            1,
            "at least one"
        );
        assert!(log
            .read_from_sequence(5, 100, usize::MAX)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn reopening_continues_sequence_numbers_and_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let before = {
            let mut log = PartitionLog::open(dir.path(), options()).unwrap();
            log.append(&events(4, "a"), 1).unwrap()
        };
        let mut log = PartitionLog::open(dir.path(), options()).unwrap();
        assert_eq!(log.last_sequence_number(), 3);
        let after = log.append(&events(1, "b"), 2).unwrap();
        assert_eq!(after[0].0, 4);
        assert!(after[0].1 > before[3].1);
        let read = log.read_from_sequence(0, 100, usize::MAX).unwrap();
        assert_eq!(read.len(), 5);
        assert_eq!(read[2].payload, b"a-2");
        assert_eq!(read[2].offset, before[2].1, "offsets survive a restart");
    }

    #[test]
    fn a_torn_tail_is_cut_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = PartitionLog::open(dir.path(), options()).unwrap();
            log.append(&events(3, "a"), 1).unwrap();
        }
        let segment = segment_path(dir.path(), 0);
        let mut f = OpenOptions::new().append(true).open(&segment).unwrap();
        f.write_all(&[0, 0, 0, 200, 1, 2, 3]).unwrap(); // half a record
        drop(f);
        let mut log = PartitionLog::open(dir.path(), options()).unwrap();
        assert_eq!(log.last_sequence_number(), 2);
        assert_eq!(log.append(&events(1, "b"), 2).unwrap()[0].0, 3);
        drop(log);
        let log = PartitionLog::open(dir.path(), options()).unwrap();
        let read = log.read_from_sequence(0, 100, usize::MAX).unwrap();
        assert_eq!(read.len(), 4);
        assert_eq!(read[3].payload, b"b-0");
    }

    #[test]
    fn corruption_inside_an_older_segment_is_reported_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = PartitionLog::open(
                dir.path(),
                LogOptions {
                    segment_bytes: 64,
                    ..options()
                },
            )
            .unwrap();
            for _ in 0..4 {
                log.append(&events(2, "x"), 1).unwrap();
            }
        }
        let first = segment_path(dir.path(), 0);
        let mut bytes = std::fs::read(&first).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&first, bytes).unwrap();
        let err = PartitionLog::open(dir.path(), options()).err().unwrap();
        assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
        assert!(
            err.to_string().contains("00000000000000000000.log"),
            "{err}"
        );
    }

    #[test]
    fn segments_roll_and_reads_cross_them() {
        let dir = tempfile::tempdir().unwrap();
        let opts = LogOptions {
            segment_bytes: 100,
            ..options()
        };
        let mut log = PartitionLog::open(dir.path(), opts.clone()).unwrap();
        for i in 0..10 {
            log.append(&events(1, &format!("e{i}")), i).unwrap();
        }
        assert!(log.segments.len() > 2, "{} segments", log.segments.len());
        let read = log.read_from_sequence(2, 100, usize::MAX).unwrap();
        assert_eq!(read.len(), 8);
        assert_eq!(read[0].payload, b"e2-0");
        assert!(read.windows(2).all(|w| w[0].offset < w[1].offset));
        drop(log);
        let log = PartitionLog::open(dir.path(), opts).unwrap();
        assert_eq!(
            log.read_from_sequence(0, 100, usize::MAX).unwrap().len(),
            10
        );
    }

    #[test]
    fn retention_drops_old_segments_but_keeps_positions_and_the_active_segment() {
        let dir = tempfile::tempdir().unwrap();
        let opts = LogOptions {
            segment_bytes: 100,
            retention: Retention {
                max_age: Some(Duration::from_millis(1000)),
                max_bytes: None,
            },
            ..options()
        };
        let mut log = PartitionLog::open(dir.path(), opts.clone()).unwrap();
        let mut positions = Vec::new();
        for i in 0..10 {
            positions.extend(log.append(&events(1, "e"), i * 1000).unwrap());
        }
        log.apply_retention(9_500).unwrap();
        let begin = log.begin_sequence_number();
        assert!(begin > 0, "old segments removed");
        let read = log.read_from_sequence(0, 100, usize::MAX).unwrap();
        assert_eq!(read[0].sequence_number, begin);
        assert_eq!(
            read[0].offset, positions[begin as usize].1,
            "offsets unchanged"
        );
        assert_eq!(log.last_sequence_number(), 9);
        // Everything is too old, but the active segment stays.
        log.apply_retention(1_000_000).unwrap();
        assert_eq!(log.segments.len(), 1);
        drop(log);
        let log = PartitionLog::open(dir.path(), opts).unwrap();
        assert_eq!(log.last_sequence_number(), 9);
        assert!(log.begin_sequence_number() >= begin);

        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(
            dir.path(),
            LogOptions {
                segment_bytes: 100,
                retention: Retention {
                    max_age: None,
                    max_bytes: Some(300),
                },
                ..options()
            },
        )
        .unwrap();
        for i in 0..20 {
            log.append(&events(1, "e"), i).unwrap();
        }
        log.apply_retention(0).unwrap();
        let total: u64 = log.segments.iter().map(|s| s.size).sum();
        assert!(total <= 300 + 100, "{total}");
        assert!(log.begin_sequence_number() > 0);
    }

    #[test]
    fn sync_if_due_syncs_only_an_interval_policy_once_its_interval_has_passed() {
        let open = |fsync| {
            let dir = tempfile::tempdir().unwrap();
            let log = PartitionLog::open(
                dir.path(),
                LogOptions {
                    fsync,
                    ..LogOptions::default()
                },
            )
            .unwrap();
            (dir, log)
        };
        // Never: left to the OS, no timer sync.
        let (_dir, mut log) = open(FsyncPolicy::Never);
        log.append(&events(1, "a"), 1).unwrap();
        assert!(log.has_unsynced());
        assert!(!log.sync_if_due().unwrap());
        assert!(log.has_unsynced());
        // Always: every append syncs.
        let (_dir, mut log) = open(FsyncPolicy::Always);
        log.append(&events(1, "a"), 1).unwrap();
        assert!(!log.has_unsynced());
        // An interval that has not passed: not yet.
        let (_dir, mut log) = open(FsyncPolicy::EveryMillis(u64::MAX));
        log.append(&events(1, "a"), 1).unwrap();
        assert!(log.has_unsynced());
        assert!(!log.sync_if_due().unwrap());
        // A short interval: synced once it has passed (polled; no timing assertion).
        let (_dir, mut log) = open(FsyncPolicy::EveryMillis(20));
        while !log.has_unsynced() {
            log.append(&events(1, "a"), 1).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while !log.sync_if_due().unwrap() {
            assert!(Instant::now() < deadline, "never due");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!log.has_unsynced());
        assert!(!log.sync_if_due().unwrap(), "nothing left to sync");
    }

    #[test]
    fn an_unbounded_retention_age_keeps_everything() {
        // Duration::MAX in ms does not fit an i64: truncated, it became -1 ms and every old
        // segment was "too old".
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(
            dir.path(),
            LogOptions {
                segment_bytes: 100,
                retention: Retention {
                    max_age: Some(Duration::MAX),
                    max_bytes: None,
                },
                ..options()
            },
        )
        .unwrap();
        for i in 0..10 {
            log.append(&events(1, "e"), i).unwrap();
        }
        let segments = log.segments.len();
        assert!(segments > 2);
        log.apply_retention(i64::MAX).unwrap();
        assert_eq!(log.segments.len(), segments);
        assert_eq!(log.begin_sequence_number(), 0);
    }

    #[test]
    fn a_record_too_large_to_be_read_back_is_refused() {
        // It would be written, then taken for a corrupt length when the log is reopened.
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), options()).unwrap();
        let huge = AppendEvent {
            partition_key: None,
            payload: vec![0; MAX_RECORD as usize],
        };
        let err = log.append(&[huge], 1).unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
        assert!(log.is_empty());
        log.append(&events(1, "ok"), 2).unwrap();
        drop(log);
        let log = PartitionLog::open(dir.path(), options()).unwrap();
        assert_eq!(log.read_from_sequence(0, 10, usize::MAX).unwrap().len(), 1);
    }

    #[test]
    fn offset_and_time_lookups() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), options()).unwrap();
        let p = log.append(&events(3, "a"), 100).unwrap();
        log.append(&events(2, "b"), 200).unwrap();
        assert_eq!(log.sequence_for_offset(p[1].1, false), Some(2));
        assert_eq!(log.sequence_for_offset(p[1].1, true), Some(1));
        assert_eq!(log.sequence_for_offset(-1, false), Some(0));
        assert_eq!(log.sequence_for_offset(i64::MAX, false), None);
        assert_eq!(log.sequence_for_time(99), Some(0));
        assert_eq!(log.sequence_for_time(100), Some(3));
        assert_eq!(log.sequence_for_time(200), None);
    }
}
