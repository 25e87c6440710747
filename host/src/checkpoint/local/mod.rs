//! A checkpoint store in a directory on this machine.
//!
//! The layout mirrors the Blob store's (names lowercased, one file per partition):
//! `<root>/<namespace>/<eventhub>/<consumergroup>/{checkpoint,ownership,hubwasm-retry}/<partition>.json`.
//! Every file is replaced atomically (written beside, fsynced, renamed), so a crash leaves the
//! old or the new version, never a torn one. Ownership claims are conditional like Blob claims
//! (`If-None-Match: *` for a new record, `If-Match: <etag>` otherwise) and are made under an
//! exclusive lock on `<consumergroup>/.lock`, so several host processes on the machine can share
//! the directory.

use crate::checkpoint::{
    check_sha256, check_swap_id, instance_file_name, GroupName, VersionOutcome, VersionRecord,
};
use crate::event::PartitionContext;
use azure_core::Result;
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

    /// `<group>/hubwasm-retry/<partition>.json`.
    fn retry_file(&self, at: &PartitionContext) -> PathBuf {
        let kind = "hubwasm-retry";
        self.file(
            &at.namespace,
            &at.event_hub,
            &at.consumer_group,
            kind,
            &at.partition_id,
        )
    }

    /// `<group>/hubwasm-plugin/version.json`.
    fn version_file(&self, group: GroupName<'_>) -> PathBuf {
        let (ns, hub, cg) = (group.namespace, group.event_hub, group.consumer_group);
        self.file(ns, hub, cg, "hubwasm-plugin", "version")
    }

    /// `<group>/hubwasm-plugin/outcomes/<swap id>/`.
    fn outcomes_dir(&self, group: GroupName<'_>, swap: &str) -> PathBuf {
        self.group_dir(group.namespace, group.event_hub, group.consumer_group)
            .join("hubwasm-plugin")
            .join("outcomes")
            .join(swap)
    }

    /// `<group>/hubwasm-plugin/components/<sha256>.wasm`.
    fn component_file(&self, group: GroupName<'_>, sha256: &str) -> Result<PathBuf> {
        check_sha256(sha256)?;
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
    ) -> Result<Vec<(String, T)>> {
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

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| error("parse", path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(error("read", path, e)),
    }
}

/// Replace `path` atomically with `value`.
fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec(value).expect("store records serialize");
    write_bytes(path, &bytes)
}

/// Write `bytes` as `path`, atomically (a reader sees all of it or nothing), durably.
fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
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
fn partition_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
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
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| azure_core::Error::with_message(ErrorKind::Other, e.to_string()))?
}

#[async_trait]
impl CheckpointStore for LocalCheckpointStore {
    async fn claim_ownership(&self, ownerships: &[Ownership]) -> Result<Vec<Ownership>> {
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

    async fn list_checkpoints(&self, ns: &str, hub: &str, group: &str) -> Result<Vec<Checkpoint>> {
        let files = self.list(ns, hub, group, "checkpoint").await?;
        Ok(files
            .into_iter()
            .map(
                |(partition_id, file): (String, CheckpointFile)| Checkpoint {
                    fully_qualified_namespace: ns.to_string(),
                    event_hub_name: hub.to_string(),
                    consumer_group: group.to_string(),
                    partition_id,
                    offset: file.offset,
                    sequence_number: file.sequence_number,
                },
            )
            .collect())
    }

    async fn list_ownerships(&self, ns: &str, hub: &str, group: &str) -> Result<Vec<Ownership>> {
        let files = self.list(ns, hub, group, "ownership").await?;
        Ok(files
            .into_iter()
            .map(|(partition_id, file): (String, OwnershipFile)| Ownership {
                fully_qualified_namespace: ns.to_string(),
                event_hub_name: hub.to_string(),
                consumer_group: group.to_string(),
                partition_id,
                // An empty owner is a released partition (as the official stores write it).
                owner_id: (!file.owner_id.is_empty()).then_some(file.owner_id),
                etag: Some(Etag::from(file.etag)),
                last_modified_time: to_time(file.last_modified_ms),
            })
            .collect())
    }

    async fn update_checkpoint(&self, checkpoint: Checkpoint) -> Result<()> {
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
    async fn load_retry(&self, at: &PartitionContext) -> Result<Option<RetryState>> {
        let path = self.retry_file(at);
        blocking(move || {
            Ok(read_json::<RetryFile>(&path)?.map(|f| RetryState {
                sequence_number: f.sequence_number,
                attempts: f.attempts,
                paused: f.paused,
            }))
        })
        .await
    }

    async fn save_retry(&self, at: &PartitionContext, state: Option<RetryState>) -> Result<()> {
        let path = self.retry_file(at);
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
    async fn load_version(&self, group: GroupName<'_>) -> Result<Option<VersionRecord>> {
        let path = self.version_file(group);
        blocking(move || read_json(&path)).await
    }

    async fn save_version(&self, group: GroupName<'_>, record: &VersionRecord) -> Result<()> {
        let path = self.version_file(group);
        let record = record.clone();
        blocking(move || write_json(&path, &record)).await
    }

    async fn save_component(&self, group: GroupName<'_>, sha256: &str, bytes: &[u8]) -> Result<()> {
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

    async fn save_outcome(&self, group: GroupName<'_>, outcome: &VersionOutcome) -> Result<()> {
        check_swap_id(&outcome.swap)?;
        let path = self
            .outcomes_dir(group, &outcome.swap)
            .join(format!("{}.json", instance_file_name(&outcome.instance)));
        let outcome = outcome.clone();
        blocking(move || write_json(&path, &outcome)).await
    }

    async fn load_outcomes(&self, group: GroupName<'_>, swap: &str) -> Result<Vec<VersionOutcome>> {
        check_swap_id(swap)?;
        let dir = self.outcomes_dir(group, swap);
        let swap = swap.to_string();
        blocking(move || {
            let mut out = Vec::new();
            for (_, path) in partition_files(&dir)? {
                if let Some(outcome) = read_json::<VersionOutcome>(&path)? {
                    out.push(VersionOutcome {
                        swap: swap.clone(),
                        ..outcome
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn load_component(
        &self,
        group: GroupName<'_>,
        sha256: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>> {
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
mod tests;
