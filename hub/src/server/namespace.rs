//! The namespace's shared state: event hubs, their partitions (log + who reads them), SAS
//! policies. Connections share one `Namespace` behind an `Arc`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use crate::amqp::message::Message;
use crate::config::{Fsync, HubConfig, PolicyConfig, Right};
use crate::server::{stored, StartError};
use crate::storage::{
    AppendEvent, FsyncPolicy, LogOptions, PartitionLog, Retention, StorageError, StoredEvent,
};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The state every connection shares.
pub struct Namespace {
    pub name: String,
    hubs: HashMap<String, Arc<EventHub>>,
    policies: Vec<PolicyConfig>,
    next_reader_id: AtomicU64,
    fsync: FsyncPolicy,
    /// What a client may make the endpoint hold.
    pub limits: super::limits::Limits,
    /// Connections served now (`limits.max_connections`).
    pub(super) connections: AtomicUsize,
    /// Connections being told they are over `limits.max_connections`.
    pub(super) refusing: AtomicUsize,
    /// Bytes handed to connections' writers and not written to their sockets yet.
    pub(super) queued: Arc<AtomicUsize>,
}

/// One event hub.
pub struct EventHub {
    pub name: String,
    pub created_at_ms: i64,
    pub partitions: Vec<Arc<Partition>>,
    pub consumer_groups: Vec<String>,
    round_robin: AtomicUsize,
}

/// One partition: its log, a watch of the last sequence number for waiting readers, and the
/// receivers currently attached per consumer group.
pub struct Partition {
    pub id: String,
    log: Mutex<PartitionLog>,
    last_sequence: watch::Sender<i64>,
    readers: Mutex<HashMap<String, Vec<Reader>>>,
    /// Receivers per consumer group (`limits.max_receivers_per_partition`).
    max_readers: usize,
}

/// A receiver registered on a partition.
struct Reader {
    id: u64,
    epoch: Option<i64>,
    kick: mpsc::UnboundedSender<Kick>,
}

/// Told to a connection whose receiver must go: it is detached with `condition` and `reason`.
#[derive(Debug, Clone)]
pub struct Kick {
    pub reader_id: u64,
    /// `amqp:link:stolen` (a higher epoch took the partition) or `amqp:internal-error` (its
    /// pump failed).
    pub condition: &'static str,
    pub reason: String,
}

/// Why a receiver may not attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderRefusal {
    /// A receiver with a higher (or, for a plain receiver, any) epoch holds the partition.
    EpochTooLow(String),
    /// The consumer group has `limits.max_receivers_per_partition` receivers on it already.
    TooManyReaders,
}

impl Namespace {
    /// Validate `config` and open (or create) every partition's log under `config.data_dir`.
    pub fn open(config: &HubConfig) -> Result<Self, StartError> {
        // An event hub without partitions could route nowhere; validation refuses it.
        config.validate()?;
        let fsync = match config.fsync_policy()? {
            Fsync::Always => FsyncPolicy::Always,
            Fsync::EveryMillis(ms) => FsyncPolicy::EveryMillis(ms),
            Fsync::Never => FsyncPolicy::Never,
        };
        let options = LogOptions {
            fsync,
            segment_bytes: config.storage.segment_bytes,
            retention: Retention {
                max_age: config
                    .storage
                    .retention_hours
                    .map(|h| Duration::from_secs(h.saturating_mul(3600))),
                max_bytes: config.storage.retention_bytes,
            },
        };
        let mut hubs = HashMap::new();
        for hub in &config.event_hubs {
            let dir = config.data_dir.join(&hub.name);
            let created_at_ms = created_at(&dir);
            let mut partitions = Vec::new();
            for p in 0..hub.partitions {
                let log = PartitionLog::open(&dir.join(p.to_string()), options.clone())?;
                let (last_sequence, _) = watch::channel(log.last_sequence_number());
                partitions.push(Arc::new(Partition {
                    id: p.to_string(),
                    log: Mutex::new(log),
                    last_sequence,
                    readers: Mutex::new(HashMap::new()),
                    max_readers: config.limits.max_receivers_per_partition,
                }));
            }
            hubs.insert(
                hub.name.to_ascii_lowercase(),
                Arc::new(EventHub {
                    name: hub.name.clone(),
                    created_at_ms,
                    partitions,
                    consumer_groups: HubConfig::consumer_groups(hub),
                    round_robin: AtomicUsize::new(0),
                }),
            );
        }
        Ok(Self {
            name: config.namespace.clone(),
            hubs,
            policies: config.policies.clone(),
            next_reader_id: AtomicU64::new(1),
            limits: config.limits.clone(),
            connections: AtomicUsize::new(0),
            refusing: AtomicUsize::new(0),
            queued: Arc::new(AtomicUsize::new(0)),
            fsync,
        })
    }

    /// An event hub by name (case-insensitive, as Event Hubs).
    pub fn hub(&self, name: &str) -> Option<&Arc<EventHub>> {
        self.hubs.get(&name.to_ascii_lowercase())
    }

    /// All event hubs.
    pub fn hubs(&self) -> impl Iterator<Item = &Arc<EventHub>> {
        self.hubs.values()
    }

    /// Connections served now.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    /// Bytes waiting for clients' sockets (sent by the endpoint, not written yet), over all
    /// connections.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// `(name, key)` of every policy.
    pub fn policies(&self) -> impl Iterator<Item = (&str, &str)> {
        self.policies
            .iter()
            .map(|p| (p.name.as_str(), p.key.as_str()))
    }

    /// Whether the policy named `name` grants `need` (any right at all when `None`).
    pub fn policy_allows(&self, name: &str, need: Option<Right>) -> bool {
        self.policies
            .iter()
            .find(|p| p.name == name)
            .is_some_and(|p| need.is_none_or(|need| p.allows(need)))
    }

    /// The rights of the policy named `name`, for messages.
    pub fn policy_rights(&self, name: &str) -> Vec<Right> {
        self.policies
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.rights.clone())
            .unwrap_or_default()
    }

    /// Apply retention on every partition.
    pub fn apply_retention(&self) {
        let now = now_ms();
        for hub in self.hubs.values() {
            for p in &hub.partitions {
                if let Err(err) = p
                    .log
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .apply_retention(now)
                {
                    tracing::warn!(hub = %hub.name, partition = %p.id, error = %err, "Retention failed");
                }
            }
        }
    }

    /// How often [`Namespace::sync_due`] should run: the fsync interval, when there is one
    /// (`storage.fsync = "<ms>"` with ms > 0; with 0 every append syncs).
    pub fn sync_interval(&self) -> Option<Duration> {
        match self.fsync {
            FsyncPolicy::EveryMillis(ms) if ms > 0 => Some(Duration::from_millis(ms)),
            _ => None,
        }
    }

    /// fsync every partition whose unsynced appends are older than the fsync interval, so the
    /// tail of a burst reaches the disk without waiting for another append. Blocking.
    pub fn sync_due(&self) {
        self.each_log(|log| log.sync_if_due().map(|_| ()));
    }

    /// fsync every partition with unsynced appends now (at shutdown). Blocking.
    pub fn sync_all(&self) {
        self.each_log(PartitionLog::flush);
    }

    fn each_log(&self, mut f: impl FnMut(&mut PartitionLog) -> Result<(), StorageError>) {
        for hub in self.hubs.values() {
            for p in &hub.partitions {
                let mut log = p.log.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(err) = f(&mut log) {
                    tracing::warn!(hub = %hub.name, partition = %p.id, error = %err, "fsync failed");
                }
            }
        }
    }

    pub(crate) fn next_reader_id(&self) -> u64 {
        self.next_reader_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// When the hub's directory was first created (ms), for `created_at`.
fn created_at(dir: &std::path::Path) -> i64 {
    let _ = std::fs::create_dir_all(dir);
    std::fs::metadata(dir)
        .and_then(|m| m.created().or_else(|_| m.modified()))
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or_else(now_ms)
}

impl EventHub {
    /// The partition with this id.
    pub fn partition(&self, id: &str) -> Option<&Arc<Partition>> {
        self.partitions.iter().find(|p| p.id == id)
    }

    /// Whether the consumer group exists (case-insensitive).
    pub fn has_consumer_group(&self, group: &str) -> bool {
        self.consumer_groups
            .iter()
            .any(|g| g.eq_ignore_ascii_case(group))
    }

    /// Where an event without a fixed partition goes: a stable hash of its partition key, or
    /// round-robin when it has none.
    pub fn route(&self, partition_key: Option<&str>) -> &Arc<Partition> {
        let n = self.partitions.len();
        let index = match partition_key {
            Some(key) => (fnv1a(key.as_bytes()) % n as u64) as usize,
            None => self.round_robin.fetch_add(1, Ordering::Relaxed) % n,
        };
        &self.partitions[index]
    }
}

/// FNV-1a: stable across runs and platforms, so a key always lands on the same partition.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A snapshot of a partition for management responses.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionInfo {
    pub begin_sequence_number: i64,
    pub last_sequence_number: i64,
    pub last_offset: i64,
    pub last_enqueued_time_ms: i64,
    pub is_empty: bool,
}

impl Partition {
    /// Append events (their messages) atomically; returns their sequence numbers.
    pub fn append(&self, messages: &[Message]) -> Result<Vec<i64>, StorageError> {
        let events: Vec<AppendEvent> = messages
            .iter()
            .map(|m| AppendEvent {
                partition_key: m.partition_key().map(str::to_string),
                payload: stored::encode(m),
            })
            .collect();
        let positions = {
            let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            log.append(&events, now_ms())?
        };
        if let Some((last, _)) = positions.last() {
            self.last_sequence.send_replace(*last);
        }
        Ok(positions.into_iter().map(|(seq, _)| seq).collect())
    }

    /// Read stored events from `first_sequence`.
    pub fn read(
        &self,
        first_sequence: i64,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredEvent>, StorageError> {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .read_from_sequence(first_sequence, max_events, max_bytes)
    }

    /// Subscribe to the last sequence number, to wait for new events.
    pub fn watch(&self) -> watch::Receiver<i64> {
        self.last_sequence.subscribe()
    }

    /// The first sequence number a receiver at `position` reads.
    pub fn resolve(&self, position: super::filter::StartPosition) -> i64 {
        use super::filter::StartPosition::*;
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let after_last = log.last_sequence_number() + 1;
        match position {
            Earliest => log.begin_sequence_number(),
            Latest => after_last,
            Sequence {
                sequence,
                inclusive,
            } => {
                let first = if inclusive {
                    Some(sequence)
                } else {
                    sequence.checked_add(1)
                };
                match first {
                    Some(first) => first.max(log.begin_sequence_number()),
                    // After i64::MAX nothing can ever come: the end, never the start.
                    None => after_last,
                }
            }
            Offset { offset, inclusive } => log
                .sequence_for_offset(offset, inclusive)
                .unwrap_or(after_last),
            EnqueuedAfter { time_ms, inclusive } => {
                // `>= t` is `> t - 1`; `>= i64::MIN` is everything.
                let after = if inclusive {
                    time_ms.checked_sub(1)
                } else {
                    Some(time_ms)
                };
                match after {
                    Some(after) => log.sequence_for_time(after).unwrap_or(after_last),
                    None => log.begin_sequence_number(),
                }
            }
        }
    }

    /// Whether appended events may not have reached the disk yet (see `storage.fsync`).
    pub fn has_unsynced(&self) -> bool {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .has_unsynced()
    }

    /// Positions for management responses.
    pub fn info(&self) -> PartitionInfo {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        PartitionInfo {
            begin_sequence_number: log.begin_sequence_number(),
            last_sequence_number: log.last_sequence_number(),
            last_offset: log.last_offset(),
            last_enqueued_time_ms: log.last_enqueued_time_ms(),
            is_empty: log.is_empty(),
        }
    }

    /// Register a receiver of `group` with an optional owner level. A higher epoch kicks out the
    /// lower ones; a lower one (or a plain receiver while an epoch receiver holds the partition)
    /// is refused.
    pub fn add_reader(
        &self,
        group: &str,
        id: u64,
        epoch: Option<i64>,
        kick: mpsc::UnboundedSender<Kick>,
    ) -> Result<(), ReaderRefusal> {
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        let list = readers.entry(group.to_ascii_lowercase()).or_default();
        let highest = list.iter().filter_map(|r| r.epoch).max();
        match (epoch, highest) {
            (Some(mine), Some(theirs)) if mine < theirs => {
                return Err(ReaderRefusal::EpochTooLow(format!(
                    "a receiver with epoch {theirs} owns partition {} of consumer group {group}; \
                     epoch {mine} is lower",
                    self.id
                )))
            }
            (None, Some(theirs)) => {
                return Err(ReaderRefusal::EpochTooLow(format!(
                    "a receiver with epoch {theirs} owns partition {} of consumer group {group}; \
                     a receiver without an epoch cannot join",
                    self.id
                )))
            }
            (Some(mine), _) => {
                // Everyone with a lower epoch or none is stolen from.
                list.retain(|r| {
                    let stays = r.epoch.is_some_and(|theirs| theirs >= mine);
                    if !stays {
                        let _ = r.kick.send(Kick {
                            reader_id: r.id,
                            condition: crate::amqp::performative::condition::STOLEN,
                            reason: format!(
                                "a receiver with a higher epoch ({mine}) took partition {} of \
                                 consumer group {group}",
                                self.id
                            ),
                        });
                    }
                    stays
                });
            }
            (None, None) => {}
        }
        if list.len() >= self.max_readers {
            return Err(ReaderRefusal::TooManyReaders);
        }
        list.push(Reader { id, epoch, kick });
        Ok(())
    }

    /// How many receivers of `group` read this partition now.
    pub fn reader_count(&self, group: &str) -> usize {
        let readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        readers.get(&group.to_ascii_lowercase()).map_or(0, Vec::len)
    }

    /// Forget a receiver (link detached or connection gone).
    pub fn remove_reader(&self, group: &str, id: u64) {
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = readers.get_mut(&group.to_ascii_lowercase()) {
            list.retain(|r| r.id != id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EventHubConfig;

    fn partition(dir: &std::path::Path) -> Arc<Partition> {
        let config = HubConfig {
            data_dir: dir.to_path_buf(),
            event_hubs: vec![EventHubConfig {
                name: "h".into(),
                partitions: 1,
                consumer_groups: vec![],
            }],
            ..HubConfig::default()
        };
        let ns = Namespace::open(&config).unwrap();
        ns.hub("H").expect("case-insensitive").partitions[0].clone()
    }

    #[test]
    fn a_higher_epoch_kicks_lower_ones_and_a_lower_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = partition(dir.path());
        let (tx, mut rx) = mpsc::unbounded_channel();
        p.add_reader("$Default", 1, None, tx.clone()).unwrap();
        p.add_reader("$Default", 2, Some(5), tx.clone()).unwrap();
        let kick = rx.try_recv().expect("the plain receiver is kicked");
        assert_eq!(kick.reader_id, 1);
        assert!(kick.reason.contains("higher epoch (5)"), "{}", kick.reason);

        assert!(matches!(
            p.add_reader("$Default", 3, Some(4), tx.clone()),
            Err(ReaderRefusal::EpochTooLow(_))
        ));
        assert!(matches!(
            p.add_reader("$Default", 4, None, tx.clone()),
            Err(ReaderRefusal::EpochTooLow(_))
        ));
        p.add_reader("$Default", 5, Some(6), tx.clone()).unwrap();
        assert_eq!(rx.try_recv().unwrap().reader_id, 2);
        // Another consumer group is independent.
        p.add_reader("other", 6, None, tx.clone()).unwrap();
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn at_most_five_plain_receivers_per_group_and_leaving_frees_a_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = partition(dir.path());
        let (tx, _rx) = mpsc::unbounded_channel();
        for id in 0..5 {
            p.add_reader("$Default", id, None, tx.clone()).unwrap();
        }
        assert_eq!(
            p.add_reader("$Default", 99, None, tx.clone()),
            Err(ReaderRefusal::TooManyReaders)
        );
        p.remove_reader("$default", 0);
        p.add_reader("$Default", 99, None, tx).unwrap();
    }

    #[test]
    fn start_positions_past_the_last_possible_event_mean_the_end_not_the_start() {
        use crate::server::filter::{parse_selector, StartPosition::*};
        let dir = tempfile::tempdir().unwrap();
        let p = partition(dir.path());
        let msgs: Vec<Message> = (0..3).map(|i| Message::with_data(vec![i])).collect();
        p.append(&msgs).unwrap();
        let after_last = 3;
        // `> i64::MAX`: no event can come after it; the end, never the start.
        let beyond =
            parse_selector("amqp.annotation.x-opt-sequence-number > '9223372036854775807'")
                .unwrap();
        assert_eq!(p.resolve(beyond), after_last);
        assert_eq!(
            p.resolve(Sequence {
                sequence: i64::MAX,
                inclusive: false
            }),
            after_last
        );
        assert_eq!(
            p.resolve(EnqueuedAfter {
                time_ms: i64::MAX,
                inclusive: false
            }),
            after_last
        );
        assert_eq!(
            p.resolve(EnqueuedAfter {
                time_ms: i64::MAX,
                inclusive: true
            }),
            after_last
        );
        // `>= i64::MIN` ms: everything.
        assert_eq!(
            p.resolve(EnqueuedAfter {
                time_ms: i64::MIN,
                inclusive: true
            }),
            0
        );
        assert_eq!(
            p.resolve(EnqueuedAfter {
                time_ms: i64::MIN,
                inclusive: false
            }),
            0
        );
        assert_eq!(
            p.resolve(Sequence {
                sequence: i64::MIN,
                inclusive: false
            }),
            0
        );
        assert_eq!(
            p.resolve(Offset {
                offset: i64::MAX,
                inclusive: false
            }),
            after_last
        );
    }

    #[test]
    fn a_huge_retention_setting_opens_and_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = HubConfig {
            data_dir: dir.path().to_path_buf(),
            ..HubConfig::default()
        };
        // retention_hours * 3600 overflowed (a panic in debug builds).
        config.storage.retention_hours = Some(u64::MAX);
        let ns = Namespace::open(&config).unwrap();
        let p = &ns.hub("events").unwrap().partitions[0];
        p.append(&[Message::with_data(vec![1])]).unwrap();
        ns.apply_retention();
        assert_eq!(p.info().begin_sequence_number, 0);
    }

    #[test]
    fn keys_route_stably_and_unkeyed_events_go_round_robin() {
        let dir = tempfile::tempdir().unwrap();
        let config = HubConfig {
            data_dir: dir.path().to_path_buf(),
            ..HubConfig::default()
        };
        let ns = Namespace::open(&config).unwrap();
        let hub = ns.hub("events").unwrap();
        let first = hub.route(Some("device-1")).id.clone();
        assert!((0..10).all(|_| hub.route(Some("device-1")).id == first));
        let spread: std::collections::HashSet<String> =
            (0..4).map(|_| hub.route(None).id.clone()).collect();
        assert_eq!(spread.len(), 4);
    }
}
