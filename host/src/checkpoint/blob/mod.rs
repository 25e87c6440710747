//! The checkpoint store in Azure Blob Storage, in the layout of the official Python/.NET/JS
//! stores, so that hubwasm and the official processors can share a container:
//!
//! | blob (name lowercased) | metadata |
//! |---|---|
//! | `<namespace>/<eventhub>/<consumergroup>/checkpoint/<partition>` | `sequencenumber`, `offset` |
//! | `<namespace>/<eventhub>/<consumergroup>/ownership/<partition>` | `ownerid` (`""` = relinquished) |
//! | `<namespace>/<eventhub>/<consumergroup>/hubwasm-retry/<partition>` | `sequencenumber`, `attempts` (hubwasm only) |
//!
//! Every blob is empty; the state is in its metadata. The whole name is lowercased, as the
//! official stores do (the Rust SDK's own store does not, which is why this one exists), while
//! the [`Checkpoint`]s and [`Ownership`]s it returns carry the names as the caller gave them.
//!
//! Ownership claims are optimistic: a partition never claimed is created with `If-None-Match: *`,
//! a claimed one updated with `If-Match: <etag>`; a claim that loses the race (409/412) is left
//! out of the result rather than reported as an error, and the ownerships returned carry the
//! blob's new etag and real `Last-Modified` (the SDK's load balancer expires ownerships by it).
//!
//! Authentication, retries, timeouts and error messages are the container's
//! ([`crate::azure_blob`]), shared with the Blob dead-letter sink.

use crate::event::PartitionContext;
use std::collections::HashMap;
use std::future::Future;

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::http::headers::{ETAG, LAST_MODIFIED};
use azure_core::http::{Etag, StatusCode};
use azure_core::time::parse_rfc7231;
use azure_core::{Error, Result};
use azure_storage_blob::models::{
    BlobClientDeleteOptions, BlobClientGetPropertiesOptions, BlobClientGetPropertiesResultHeaders,
    BlobClientSetMetadataOptions, BlobContainerClientListBlobsOptions, BlobItem,
    BlockBlobClientUploadOptions, ListBlobsIncludeItem,
};
use azure_storage_blob::{BlobClient, BlobContainerClient};
use futures::TryStreamExt;
use tracing::debug;

mod versions;

use super::{Checkpoint, CheckpointStore, Ownership, RetryState, RetryStore, Store};
use crate::azure_blob::{cause, empty, error_code, BlobContainer};
pub use crate::azure_blob::{sign_account_sas, BlobOptions as BlobStoreOptions};

/// Metadata keys, exactly as the official stores write and read them.
const OWNER_ID: &str = "ownerid";
const SEQUENCE_NUMBER: &str = "sequencenumber";
const OFFSET: &str = "offset";
/// hubwasm's own key on the retry blob.
const ATTEMPTS: &str = "attempts";
const PAUSED: &str = "paused";

const CHECKPOINT: &str = "checkpoint";
const OWNERSHIP: &str = "ownership";
const RETRY: &str = "hubwasm-retry";
/// The consumer group's plugin version: `<ns>/<hub>/<cg>/hubwasm-plugin/version`, its record as
/// hex-encoded JSON in the `record` metadata (metadata is ASCII only; paths need not be).
const PLUGIN: &str = "hubwasm-plugin";
const RECORD: &str = "record";
/// A version's outcome on one host: `<ns>/<hub>/<cg>/hubwasm-plugin/outcomes/<swap>/<instance>`.
const HANDLED: &str = "handled";
const FAILED: &str = "failed";
const HELD: &str = "held";

/// The checkpoint store in an Azure Blob Storage container (see the [module docs](self)).
pub struct BlobCheckpointStore {
    container: BlobContainer,
}

impl std::fmt::Debug for BlobCheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobCheckpointStore")
            .field("container", &self.container.describe())
            .finish_non_exhaustive()
    }
}

impl BlobCheckpointStore {
    /// A store in `container` (see [`BlobContainer`] for the ways to reach one).
    pub fn new(container: BlobContainer) -> Self {
        Self { container }
    }

    /// The same store with other retry and timeout settings.
    pub fn with_options(self, options: BlobStoreOptions) -> Result<Self> {
        self.container.with_options(options).map(Self::new)
    }

    /// The container the store works in.
    pub fn container(&self) -> &BlobContainer {
        &self.container
    }

    /// The container client the store works through (for diagnostics and tests).
    pub fn container_client(&self) -> &BlobContainerClient {
        self.container.client()
    }

    /// Create the container if it does not exist yet (see [`BlobContainer::ensure_container`]).
    pub async fn ensure_container(&self) -> Result<()> {
        self.container.ensure_container().await
    }

    fn blob(&self, name: &str) -> BlobClient {
        self.container.blob(name)
    }

    async fn timed<T>(&self, what: &str, request: impl Future<Output = Result<T>>) -> Result<T> {
        self.container.timed(what, request).await
    }

    fn error(&self, e: Error, what: &str, blob: Option<&str>) -> Error {
        self.container.error(e, what, blob)
    }

    /// Set the metadata of `name`, creating it empty if it does not exist (the official stores'
    /// way of writing a checkpoint).
    async fn upsert(
        &self,
        what: &str,
        name: &str,
        metadata: HashMap<String, String>,
    ) -> Result<()> {
        let blob = self.blob(name);
        let set = self.timed(what, blob.set_metadata(&metadata, None)).await;
        match set {
            Ok(_) => Ok(()),
            Err(e) if error_code(&e) == Some("BlobNotFound") => {
                let upload = BlockBlobClientUploadOptions {
                    metadata: Some(metadata),
                    ..Default::default()
                };
                self.timed(what, blob.upload(empty(), Some(upload)))
                    .await
                    .map(|_| ())
                    .map_err(|e| self.error(e, what, Some(name)))
            }
            Err(e) => Err(self.error(e, what, Some(name))),
        }
    }

    /// A blob's metadata, `None` when the blob does not exist.
    async fn metadata_of(&self, what: &str, name: &str) -> Result<Option<HashMap<String, String>>> {
        let response = self
            .timed(
                what,
                self.blob(name)
                    .get_properties(None::<BlobClientGetPropertiesOptions<'_>>),
            )
            .await;
        match response {
            Ok(response) => Ok(Some(response.metadata()?)),
            Err(e) if error_code(&e) == Some("BlobNotFound") => Ok(None),
            // A HEAD answer has no body; without the error-code header, a 404 is the blob's.
            Err(e) if e.http_status() == Some(StatusCode::NotFound) && error_code(&e).is_none() => {
                Ok(None)
            }
            Err(e) => Err(self.error(e, what, Some(name))),
        }
    }

    /// Claim one ownership blob: `Ok(None)` when another instance won it.
    async fn claim_one(&self, ownership: &Ownership) -> Result<Option<Ownership>> {
        let name = blob_name(
            &ownership.fully_qualified_namespace,
            &ownership.event_hub_name,
            &ownership.consumer_group,
            OWNERSHIP,
            &ownership.partition_id,
        )?;
        let what = "claiming partition ownership";
        let metadata = HashMap::from([(
            OWNER_ID.to_string(),
            ownership.owner_id.clone().unwrap_or_default(),
        )]);
        let blob = self.blob(&name);
        let result = match &ownership.etag {
            Some(etag) => {
                let options = BlobClientSetMetadataOptions {
                    if_match: Some(etag.clone()),
                    ..Default::default()
                };
                self.timed(what, blob.set_metadata(&metadata, Some(options)))
                    .await
                    .and_then(|response| {
                        let headers = response.headers();
                        let last_modified = headers
                            .get_optional_str(&LAST_MODIFIED)
                            .map(parse_rfc7231)
                            .transpose()?;
                        let etag = headers.get_optional_str(&ETAG).map(Etag::from);
                        Ok((etag, last_modified))
                    })
            }
            None => {
                let options = BlockBlobClientUploadOptions {
                    metadata: Some(metadata),
                    ..Default::default()
                }
                .if_not_exists();
                self.timed(what, blob.upload(empty(), Some(options)))
                    .await
                    .map(|uploaded| (uploaded.etag, uploaded.last_modified))
            }
        };
        match result {
            Ok((Some(etag), Some(last_modified))) => Ok(Some(Ownership {
                etag: Some(etag),
                last_modified_time: Some(last_modified),
                ..ownership.clone()
            })),
            Ok(_) => Err(Error::with_message(
                ErrorKind::DataConversion,
                format!("{what}: storage answered without ETag or Last-Modified for {name:?}"),
            )),
            Err(e)
                if matches!(
                    e.http_status(),
                    Some(StatusCode::Conflict | StatusCode::PreconditionFailed)
                ) || (ownership.etag.is_some() && error_code(&e) == Some("BlobNotFound")) =>
            {
                // Another instance changed (or removed) the blob since we listed it.
                debug!(blob = %name, owner = ?ownership.owner_id, "ownership claim lost: {}", cause(&e));
                Ok(None)
            }
            Err(e) => Err(self.error(e, what, Some(&name))),
        }
    }

    /// The blobs under a prefix, with their metadata.
    async fn list(&self, what: &str, prefix: String) -> Result<Vec<BlobItem>> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(prefix.clone()),
            include: Some(vec![ListBlobsIncludeItem::Metadata]),
            ..Default::default()
        };
        let listing = async {
            let pager = self.container.client().list_blobs(Some(options))?;
            pager.try_collect::<Vec<_>>().await
        };
        self.timed(what, listing)
            .await
            .map_err(|e| self.error(e, what, Some(&prefix)))
    }

    /// The named blobs under `prefix`, each made into a `T` by `each(name, metadata, blob)`.
    async fn list_as<T>(
        &self,
        what: &str,
        prefix: String,
        mut each: impl FnMut(&str, Option<&HashMap<String, String>>, &BlobItem) -> Result<T>,
    ) -> Result<Vec<T>> {
        let blobs = self.list(what, prefix).await?;
        let mut out = Vec::with_capacity(blobs.len());
        for blob in &blobs {
            if let Some(name) = blob.name.as_deref() {
                let metadata = blob.metadata.as_ref().and_then(|m| m.values.as_ref());
                out.push(each(name, metadata, blob)?);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl CheckpointStore for BlobCheckpointStore {
    /// Claims one ownership after the other; the claims lost to another instance are left out.
    /// Any other failure ends the call with an error (the claims made before it stand, and the
    /// load balancer sees them as this instance's on its next listing).
    async fn claim_ownership(&self, ownerships: &[Ownership]) -> Result<Vec<Ownership>> {
        let mut claimed = Vec::with_capacity(ownerships.len());
        for ownership in ownerships {
            if let Some(won) = self.claim_one(ownership).await? {
                claimed.push(won);
            }
        }
        Ok(claimed)
    }

    async fn list_checkpoints(&self, ns: &str, hub: &str, group: &str) -> Result<Vec<Checkpoint>> {
        let prefix = blob_prefix(ns, hub, group, CHECKPOINT)?;
        self.list_as("listing checkpoints", prefix, |name, metadata, _| {
            let sequence_number = metadata
                .and_then(|m| meta(m, SEQUENCE_NUMBER))
                .map(|s| parse_number::<i64>(s, name, SEQUENCE_NUMBER))
                .transpose()?;
            Ok(Checkpoint {
                fully_qualified_namespace: ns.to_string(),
                event_hub_name: hub.to_string(),
                consumer_group: group.to_string(),
                partition_id: partition_of(name).to_string(),
                offset: metadata.and_then(|m| meta(m, OFFSET)).map(str::to_string),
                sequence_number,
            })
        })
        .await
    }

    async fn list_ownerships(&self, ns: &str, hub: &str, group: &str) -> Result<Vec<Ownership>> {
        let prefix = blob_prefix(ns, hub, group, OWNERSHIP)?;
        self.list_as(
            "listing partition ownerships",
            prefix,
            |name, metadata, blob| {
                let owner_id = metadata
                    .and_then(|m| meta(m, OWNER_ID))
                    .filter(|owner| !owner.is_empty())
                    .map(str::to_string);
                let properties = blob.properties.as_ref();
                Ok(Ownership {
                    fully_qualified_namespace: ns.to_string(),
                    event_hub_name: hub.to_string(),
                    consumer_group: group.to_string(),
                    partition_id: partition_of(name).to_string(),
                    owner_id,
                    etag: properties.and_then(|p| p.etag.clone()),
                    last_modified_time: properties.and_then(|p| p.last_modified),
                })
            },
        )
        .await
    }

    async fn update_checkpoint(&self, checkpoint: Checkpoint) -> Result<()> {
        let name = blob_name(
            &checkpoint.fully_qualified_namespace,
            &checkpoint.event_hub_name,
            &checkpoint.consumer_group,
            CHECKPOINT,
            &checkpoint.partition_id,
        )?;
        let mut metadata = HashMap::new();
        if let Some(sequence_number) = checkpoint.sequence_number {
            metadata.insert(SEQUENCE_NUMBER.to_string(), sequence_number.to_string());
        }
        if let Some(offset) = checkpoint.offset {
            metadata.insert(OFFSET.to_string(), offset);
        }
        if metadata.is_empty() {
            return Err(Error::with_message(
                ErrorKind::DataConversion,
                format!(
                    "the checkpoint of partition {} has neither a sequence number nor an offset",
                    checkpoint.partition_id
                ),
            ));
        }
        self.upsert("updating the checkpoint", &name, metadata)
            .await
    }
}

/// The blob of a partition's retry state.
fn retry_blob(at: &PartitionContext) -> Result<String> {
    blob_name(
        &at.namespace,
        &at.event_hub,
        &at.consumer_group,
        RETRY,
        &at.partition_id,
    )
}

#[async_trait]
impl RetryStore for BlobCheckpointStore {
    async fn load_retry(&self, at: &PartitionContext) -> Result<Option<RetryState>> {
        let name = retry_blob(at)?;
        let what = "reading the retry state";
        let Some(metadata) = self.metadata_of(what, &name).await? else {
            return Ok(None);
        };
        let field = |key: &str| {
            meta(&metadata, key).ok_or_else(|| {
                Error::with_message(
                    ErrorKind::DataConversion,
                    format!("the retry blob {name:?} has no {key} metadata; delete it"),
                )
            })
        };
        Ok(Some(RetryState {
            sequence_number: parse_number(field(SEQUENCE_NUMBER)?, &name, SEQUENCE_NUMBER)?,
            attempts: parse_number(field(ATTEMPTS)?, &name, ATTEMPTS)?,
            paused: meta(&metadata, PAUSED).map(str::to_string),
        }))
    }

    async fn save_retry(&self, at: &PartitionContext, state: Option<RetryState>) -> Result<()> {
        let name = retry_blob(at)?;
        match state {
            Some(state) => {
                let mut metadata = HashMap::from([
                    (
                        SEQUENCE_NUMBER.to_string(),
                        state.sequence_number.to_string(),
                    ),
                    (ATTEMPTS.to_string(), state.attempts.to_string()),
                ]);
                if let Some(reason) = &state.paused {
                    metadata.insert(PAUSED.to_string(), RetryState::pause_reason(reason));
                }
                self.upsert("saving the retry state", &name, metadata).await
            }
            None => {
                let what = "clearing the retry state";
                let deleted = self
                    .timed(
                        what,
                        self.blob(&name).delete(None::<BlobClientDeleteOptions<'_>>),
                    )
                    .await;
                match deleted {
                    Ok(_) => Ok(()),
                    Err(e) if error_code(&e) == Some("BlobNotFound") => Ok(()),
                    Err(e) => Err(self.error(e, what, Some(&name))),
                }
            }
        }
    }
}

impl Store for BlobCheckpointStore {
    fn describe(&self) -> String {
        self.container.describe()
    }
}

/// `<namespace>/<eventhub>/<consumergroup>/<kind>/`, lowercased like the official stores.
fn blob_prefix(
    namespace: &str,
    event_hub: &str,
    consumer_group: &str,
    kind: &str,
) -> Result<String> {
    for (what, value) in [
        ("namespace", namespace),
        ("event hub name", event_hub),
        ("consumer group", consumer_group),
    ] {
        if value.is_empty() {
            return Err(Error::with_message(
                ErrorKind::DataConversion,
                format!("the {what} of a checkpoint-store blob is empty"),
            ));
        }
    }
    Ok(format!("{namespace}/{event_hub}/{consumer_group}/{kind}/").to_lowercase())
}

/// The blob of one partition, lowercased like the official stores (the whole name).
fn blob_name(
    namespace: &str,
    event_hub: &str,
    consumer_group: &str,
    kind: &str,
    partition_id: &str,
) -> Result<String> {
    if partition_id.is_empty() {
        return Err(Error::with_message(
            ErrorKind::DataConversion,
            "the partition id of a checkpoint-store blob is empty",
        ));
    }
    Ok(blob_prefix(namespace, event_hub, consumer_group, kind)? + &partition_id.to_lowercase())
}

fn partition_of(blob_name: &str) -> &str {
    blob_name.rsplit('/').next().unwrap_or_default()
}

/// A metadata value; keys are case-insensitive in Blob Storage.
fn meta<'a>(metadata: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    metadata
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

fn parse_number<T: std::str::FromStr>(value: &str, blob: &str, key: &str) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    value.trim().parse().map_err(|e| {
        Error::with_error(
            ErrorKind::DataConversion,
            e,
            format!("the {key} metadata of blob {blob:?} is not a number: {value:?}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercased_like_the_official_stores() {
        assert_eq!(
            blob_name(
                "MyNs.ServiceBus.Windows.Net",
                "Telemetry",
                "$Default",
                OWNERSHIP,
                "3"
            )
            .unwrap(),
            "myns.servicebus.windows.net/telemetry/$default/ownership/3"
        );
        assert_eq!(
            blob_prefix("NS", "Hub", "CG", CHECKPOINT).unwrap(),
            "ns/hub/cg/checkpoint/"
        );
        assert_eq!(
            blob_name("NS", "Hub", "CG", RETRY, "0").unwrap(),
            "ns/hub/cg/hubwasm-retry/0"
        );
        assert!(blob_name("", "h", "c", CHECKPOINT, "0").is_err());
        assert!(blob_name("n", "h", "c", CHECKPOINT, "").is_err());
        assert_eq!(partition_of("ns/hub/cg/checkpoint/12"), "12");
    }
}
