//! A checkpoint store in a directory on this machine.
//!
//! The layout mirrors the Blob store's (names lowercased, one file per partition):
//! `<root>/<namespace>/<eventhub>/<consumergroup>/{checkpoint,ownership,hubwasm-retry}/<partition>.json`.
//! Every file is replaced atomically (written beside, fsynced, renamed), so a crash leaves the
//! old or the new version, never a torn one. Ownership claims are conditional like Blob claims
//! (`If-None-Match: *` for a new record, `If-Match: <etag>` otherwise) and are made under an
//! exclusive lock on `<consumergroup>/.lock`, so several host processes on the machine can share
//! the directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::http::Etag;
use azure_core::time::OffsetDateTime;
use serde::{Deserialize, Serialize};

use super::{Checkpoint, CheckpointStore, Ownership, RetryState, RetryStore, Store};

/// A checkpoint store in a local directory.
#[derive(Debug, Clone)]
pub struct LocalCheckpointStore {
    root: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
struct OwnershipFile {
    owner_id: String,
    etag: String,
    last_modified_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointFile {
    sequence_number: Option<i64>,
    offset: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RetryFile {
    sequence_number: i64,
    attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    paused: Option<String>,
}

fn error(
    what: impl std::fmt::Display,
    path: &Path,
    err: impl std::fmt::Display,
) -> azure_core::Error {
    azure_core::Error::with_message(
        ErrorKind::Io,
        format!(
            "local checkpoint store: cannot {what} {}: {err}; check that the directory exists \
             and is writable",
            path.display()
        ),
    )
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn to_time(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).ok()
}

/// A fresh entity tag: unique per write across processes (pid, time, counter).
fn new_etag() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "\"{:x}-{:x}-{:x}\"",
        std::process::id(),
        OffsetDateTime::now_utc().unix_timestamp_nanos(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl LocalCheckpointStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory of a consumer group (names lowercased, like the official Blob layout).
    fn group_dir(&self, namespace: &str, event_hub: &str, consumer_group: &str) -> PathBuf {
        self.root
            .join(sanitize(namespace))
            .join(sanitize(event_hub))
            .join(sanitize(consumer_group))
    }

    fn file(&self, ns: &str, hub: &str, cg: &str, kind: &str, partition: &str) -> PathBuf {
        self.group_dir(ns, hub, cg)
            .join(kind)
            .join(format!("{}.json", sanitize(partition)))
    }

    /// `<group>/hubwasm-plugin/outcomes/<swap id>/`.
    fn outcomes_dir(&self, group: &crate::checkpoint::GroupName<'_>, swap: &str) -> PathBuf {
        self.group_dir(group.namespace, group.event_hub, group.consumer_group)
            .join("hubwasm-plugin")
            .join("outcomes")
            .join(swap)
    }

    /// `<group>/hubwasm-plugin/components/<sha256>.wasm`.
    fn component_file(
        &self,
        group: &crate::checkpoint::GroupName<'_>,
        sha256: &str,
    ) -> azure_core::Result<PathBuf> {
        crate::checkpoint::check_sha256(sha256)?;
        Ok(self
            .group_dir(group.namespace, group.event_hub, group.consumer_group)
            .join("hubwasm-plugin")
            .join("components")
            .join(format!("{sha256}.wasm")))
    }

    /// Every partition's record of one kind (`checkpoint`, `ownership`) in a group, read off
    /// the async runtime.
    async fn list<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        namespace: &str,
        event_hub_name: &str,
        consumer_group: &str,
        kind: &str,
    ) -> azure_core::Result<Vec<(String, T)>> {
        let dir = self
            .group_dir(namespace, event_hub_name, consumer_group)
            .join(kind);
        blocking(move || {
            let mut out = Vec::new();
            for (partition_id, path) in partition_files(&dir)? {
                if let Some(file) = read_json::<T>(&path)? {
                    out.push((partition_id, file));
                }
            }
            Ok(out)
        })
        .await
    }
}

/// Lowercase, and keep path separators and dots out of a name.
fn sanitize(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .map(|c| match c {
            '/' | '\\' | ':' => '_',
            c => c,
        })
        .collect::<String>()
        .replace("..", "__")
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> azure_core::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| error("parse", path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(error("read", path, e)),
    }
}

/// Replace `path` atomically with `value`.
fn write_json<T: Serialize>(path: &Path, value: &T) -> azure_core::Result<()> {
    let bytes = serde_json::to_vec(value).expect("store records serialize");
    write_bytes(path, &bytes)
}

/// Write `bytes` as `path`, atomically (a reader sees all of it or nothing), durably.
fn write_bytes(path: &Path, bytes: &[u8]) -> azure_core::Result<()> {
    let dir = path.parent().expect("store files live in a directory");
    std::fs::create_dir_all(dir).map_err(|e| error("create", dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| error("create", dir, e))?;
    tmp.write_all(bytes)
        .map_err(|e| error("write", tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| error("sync", tmp.path(), e))?;
    tmp.persist(path)
        .map(|_| ())
        .map_err(|e| error("replace", path, e.error))
}

/// Every `*.json` file in `dir` as (partition id, path).
fn partition_files(dir: &Path) -> azure_core::Result<Vec<(String, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(error("list", dir, e)),
    };
    let mut files: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let path = e.path();
            let name = path.file_name()?.to_str()?;
            let id = name.strip_suffix(".json")?;
            (!id.starts_with('.')).then(|| (id.to_string(), path.clone()))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Run blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> azure_core::Result<T> + Send + 'static,
) -> azure_core::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| azure_core::Error::with_message(ErrorKind::Other, e.to_string()))?
}

#[async_trait]
impl CheckpointStore for LocalCheckpointStore {
    async fn claim_ownership(
        &self,
        ownerships: &[Ownership],
    ) -> azure_core::Result<Vec<Ownership>> {
        let store = self.clone();
        let requested = ownerships.to_vec();
        blocking(move || {
            let mut claimed = Vec::new();
            // Claims of one call share a consumer group in practice; lock each group once.
            let mut groups: Vec<PathBuf> = requested
                .iter()
                .map(|o| {
                    store.group_dir(
                        &o.fully_qualified_namespace,
                        &o.event_hub_name,
                        &o.consumer_group,
                    )
                })
                .collect();
            groups.sort();
            groups.dedup();
            for group in groups {
                std::fs::create_dir_all(&group).map_err(|e| error("create", &group, e))?;
                let lock_path = group.join(".lock");
                let lock = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)
                    .map_err(|e| error("open", &lock_path, e))?;
                lock.lock().map_err(|e| error("lock", &lock_path, e))?;
                for o in &requested {
                    let path = store.file(
                        &o.fully_qualified_namespace,
                        &o.event_hub_name,
                        &o.consumer_group,
                        "ownership",
                        &o.partition_id,
                    );
                    if !path.starts_with(&group) {
                        continue;
                    }
                    let current: Option<OwnershipFile> = read_json(&path)?;
                    let wins = match (&o.etag, &current) {
                        (None, None) => true,
                        (Some(etag), Some(current)) => etag.to_string() == current.etag,
                        _ => false,
                    };
                    if !wins {
                        tracing::debug!(partition = %o.partition_id, "Ownership claim lost");
                        continue;
                    }
                    let record = OwnershipFile {
                        owner_id: o.owner_id.clone().unwrap_or_default(),
                        etag: new_etag(),
                        last_modified_ms: now_ms(),
                    };
                    write_json(&path, &record)?;
                    claimed.push(Ownership {
                        etag: Some(Etag::from(record.etag)),
                        last_modified_time: to_time(record.last_modified_ms),
                        owner_id: (!record.owner_id.is_empty()).then_some(record.owner_id),
                        ..o.clone()
                    });
                }
                // Dropping the file releases the lock.
                drop(lock);
            }
            Ok(claimed)
        })
        .await
    }

    async fn list_checkpoints(
        &self,
        namespace: &str,
        event_hub_name: &str,
        consumer_group: &str,
    ) -> azure_core::Result<Vec<Checkpoint>> {
        let files = self
            .list(namespace, event_hub_name, consumer_group, "checkpoint")
            .await?;
        Ok(files
            .into_iter()
            .map(
                |(partition_id, file): (String, CheckpointFile)| Checkpoint {
                    fully_qualified_namespace: namespace.to_string(),
                    event_hub_name: event_hub_name.to_string(),
                    consumer_group: consumer_group.to_string(),
                    partition_id,
                    offset: file.offset,
                    sequence_number: file.sequence_number,
                },
            )
            .collect())
    }

    async fn list_ownerships(
        &self,
        namespace: &str,
        event_hub_name: &str,
        consumer_group: &str,
    ) -> azure_core::Result<Vec<Ownership>> {
        let files = self
            .list(namespace, event_hub_name, consumer_group, "ownership")
            .await?;
        Ok(files
            .into_iter()
            .map(|(partition_id, file): (String, OwnershipFile)| Ownership {
                fully_qualified_namespace: namespace.to_string(),
                event_hub_name: event_hub_name.to_string(),
                consumer_group: consumer_group.to_string(),
                partition_id,
                // An empty owner is a released partition (as the official stores write it).
                owner_id: (!file.owner_id.is_empty()).then_some(file.owner_id),
                etag: Some(Etag::from(file.etag)),
                last_modified_time: to_time(file.last_modified_ms),
            })
            .collect())
    }

    async fn update_checkpoint(&self, checkpoint: Checkpoint) -> azure_core::Result<()> {
        let path = self.file(
            &checkpoint.fully_qualified_namespace,
            &checkpoint.event_hub_name,
            &checkpoint.consumer_group,
            "checkpoint",
            &checkpoint.partition_id,
        );
        blocking(move || {
            write_json(
                &path,
                &CheckpointFile {
                    sequence_number: checkpoint.sequence_number,
                    offset: checkpoint.offset,
                },
            )
        })
        .await
    }
}

#[async_trait]
impl RetryStore for LocalCheckpointStore {
    async fn load_retry(
        &self,
        namespace: &str,
        event_hub: &str,
        consumer_group: &str,
        partition_id: &str,
    ) -> azure_core::Result<Option<RetryState>> {
        let path = self.file(
            namespace,
            event_hub,
            consumer_group,
            "hubwasm-retry",
            partition_id,
        );
        blocking(move || {
            Ok(read_json::<RetryFile>(&path)?.map(|f| RetryState {
                sequence_number: f.sequence_number,
                attempts: f.attempts,
                paused: f.paused,
            }))
        })
        .await
    }

    async fn save_retry(
        &self,
        namespace: &str,
        event_hub: &str,
        consumer_group: &str,
        partition_id: &str,
        state: Option<RetryState>,
    ) -> azure_core::Result<()> {
        let path = self.file(
            namespace,
            event_hub,
            consumer_group,
            "hubwasm-retry",
            partition_id,
        );
        blocking(move || match state {
            Some(s) => write_json(
                &path,
                &RetryFile {
                    sequence_number: s.sequence_number,
                    attempts: s.attempts,
                    paused: s.paused,
                },
            ),
            None => match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(error("remove", &path, e)),
            },
        })
        .await
    }
}

#[async_trait]
impl crate::checkpoint::VersionStore for LocalCheckpointStore {
    async fn load_version(
        &self,
        namespace: &str,
        event_hub: &str,
        consumer_group: &str,
    ) -> azure_core::Result<Option<crate::checkpoint::VersionRecord>> {
        let path = self.file(
            namespace,
            event_hub,
            consumer_group,
            "hubwasm-plugin",
            "version",
        );
        blocking(move || read_json(&path)).await
    }

    async fn save_version(
        &self,
        namespace: &str,
        event_hub: &str,
        consumer_group: &str,
        record: &crate::checkpoint::VersionRecord,
    ) -> azure_core::Result<()> {
        let path = self.file(
            namespace,
            event_hub,
            consumer_group,
            "hubwasm-plugin",
            "version",
        );
        let record = record.clone();
        blocking(move || write_json(&path, &record)).await
    }

    async fn save_component(
        &self,
        group: &crate::checkpoint::GroupName<'_>,
        sha256: &str,
        bytes: &[u8],
    ) -> azure_core::Result<()> {
        let path = self.component_file(group, sha256)?;
        let bytes = bytes.to_vec();
        blocking(move || {
            if path.exists() {
                return Ok(());
            }
            write_bytes(&path, &bytes)
        })
        .await
    }

    async fn save_outcome(
        &self,
        group: &crate::checkpoint::GroupName<'_>,
        swap: &str,
        outcome: &crate::checkpoint::VersionOutcome,
    ) -> azure_core::Result<()> {
        crate::checkpoint::check_swap_id(swap)?;
        let path = self.outcomes_dir(group, swap).join(format!(
            "{}.json",
            crate::checkpoint::instance_file_name(&outcome.instance)
        ));
        let outcome = outcome.clone();
        blocking(move || write_json(&path, &outcome)).await
    }

    async fn load_outcomes(
        &self,
        group: &crate::checkpoint::GroupName<'_>,
        swap: &str,
    ) -> azure_core::Result<Vec<crate::checkpoint::VersionOutcome>> {
        crate::checkpoint::check_swap_id(swap)?;
        let dir = self.outcomes_dir(group, swap);
        blocking(move || {
            let mut out = Vec::new();
            for (_, path) in partition_files(&dir)? {
                if let Some(outcome) = read_json(&path)? {
                    out.push(outcome);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn load_component(
        &self,
        group: &crate::checkpoint::GroupName<'_>,
        sha256: &str,
        limit: u64,
    ) -> azure_core::Result<Option<Vec<u8>>> {
        let path = self.component_file(group, sha256)?;
        blocking(
            move || match crate::files::read(&path, crate::files::Bound::component(limit)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(crate::files::FileError::Open { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    Ok(None)
                }
                Err(crate::files::FileError::TooLarge { limit, .. }) => {
                    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    Err(crate::checkpoint::component_too_large(
                        &path.display().to_string(),
                        size,
                        limit,
                    ))
                }
                Err(e) => Err(azure_core::Error::with_message(
                    ErrorKind::Io,
                    e.to_string(),
                )),
            },
        )
        .await
    }
}

impl Store for LocalCheckpointStore {
    fn describe(&self) -> String {
        format!("local directory {}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

        assert_eq!(
            store.load_retry("ns", "hub", "cg", "3").await.unwrap(),
            None
        );
        let state = RetryState {
            sequence_number: 8,
            attempts: 2,
            paused: Some("plugin `p` refused to start: bad config".into()),
        };
        store
            .save_retry("ns", "hub", "cg", "3", Some(state.clone()))
            .await
            .unwrap();
        assert_eq!(
            store.load_retry("ns", "hub", "cg", "3").await.unwrap(),
            Some(state)
        );
        store
            .save_retry("ns", "hub", "cg", "3", None)
            .await
            .unwrap();
        store
            .save_retry("ns", "hub", "cg", "3", None)
            .await
            .unwrap();
        assert_eq!(
            store.load_retry("ns", "hub", "cg", "3").await.unwrap(),
            None
        );
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
        assert_eq!(store.load_component(&group, &sha, 100).await.unwrap(), None);
        store.save_component(&group, &sha, &bytes).await.unwrap();
        assert_eq!(
            store.load_component(&group, &sha, 100).await.unwrap(),
            Some(bytes.clone())
        );
        let err = store.load_component(&group, &sha, 5).await.unwrap_err();
        assert!(err.to_string().contains("max_component_bytes"), "{err}");
        for bad in ["../../../etc/passwd", "ABC", ""] {
            assert!(store.load_component(&group, bad, 100).await.is_err());
            assert!(store.save_component(&group, bad, b"x").await.is_err());
        }
        // A tampered object is refused by the fetch; a missing one says so.
        let path = store.component_file(&group, &sha).unwrap();
        std::fs::write(&path, b"\0asm changed").unwrap();
        let err = crate::artifact::fetch(&store, &group, Some(&sha), "p", "upload", 100)
            .await
            .unwrap_err();
        assert!(
            matches!(err, crate::artifact::FetchError::Tampered { .. }),
            "{err}"
        );
        let other = "0".repeat(64);
        let err = crate::artifact::fetch(&store, &group, Some(&other), "p", "upload", 100)
            .await
            .unwrap_err();
        assert!(
            matches!(err, crate::artifact::FetchError::Missing { .. }),
            "{err}"
        );
        let err = crate::artifact::fetch(&store, &group, None, "p", "upload", 100)
            .await
            .unwrap_err();
        assert!(
            matches!(err, crate::artifact::FetchError::NoDigest),
            "{err}"
        );

        // Outcomes: one record per host and swap, replaced on each save.
        let swap = swap_id(&sha, 1_800_000_000_000);
        let outcome = |instance: &str, failed| VersionOutcome {
            instance: instance.into(),
            handled: 3,
            failed,
            held: 1,
        };
        store
            .save_outcome(&group, &swap, &outcome("a", 5))
            .await
            .unwrap();
        store
            .save_outcome(&group, &swap, &outcome("b", 2))
            .await
            .unwrap();
        store
            .save_outcome(&group, &swap, &outcome("a", 7))
            .await
            .unwrap();
        let mut all = store.load_outcomes(&group, &swap).await.unwrap();
        all.sort_by(|x, y| x.instance.cmp(&y.instance));
        assert_eq!(all, vec![outcome("a", 7), outcome("b", 2)]);
        let earlier = swap_id(&sha, 1);
        assert!(store
            .load_outcomes(&group, &earlier)
            .await
            .unwrap()
            .is_empty());
        assert!(store.load_outcomes(&group, "../x").await.is_err());
    }
}
