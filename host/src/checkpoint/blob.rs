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
//! Authentication: a container SAS URL, a container URL plus a Microsoft Entra
//! [`TokenCredential`], or an account name and key, from which the store signs short-lived
//! account SAS tokens itself (`azure_storage_blob` 1.1 has no shared-key authentication; this is
//! also how the tests reach Azurite with its well-known development key).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::error::ErrorKind;
use azure_core::http::headers::{ETAG, LAST_MODIFIED};
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{
    ClientOptions, Context, Etag, ExponentialRetryOptions, NoFormat, Request, RequestContent,
    RetryOptions, StatusCode, Url, UrlExt,
};
use azure_core::time::{parse_rfc7231, OffsetDateTime};
use azure_core::{Bytes, Error, Result};
use azure_storage_blob::models::{
    BlobClientDeleteOptions, BlobClientGetPropertiesOptions, BlobClientGetPropertiesResultHeaders,
    BlobClientSetMetadataOptions, BlobContainerClientListBlobsOptions,
    BlockBlobClientUploadOptions, ListBlobsIncludeItem,
};
use azure_storage_blob::{BlobClient, BlobContainerClient, BlobContainerClientOptions};
use futures::TryStreamExt;
use tracing::debug;

use super::{Checkpoint, CheckpointStore, Ownership, RetryState, RetryStore, Store};

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

/// How patiently the store talks to storage.
///
/// Each storage request is retried on transient failures (connection refused or reset, 408,
/// 429, 5xx) with exponential backoff, and one request, retries included, is abandoned after
/// `request_timeout`: an outage turns into errors the caller sees (and the SDK's load balancer
/// retries on its next cycle), never into a call that hangs.
#[derive(Debug, Clone)]
pub struct BlobStoreOptions {
    /// Retries of one request after a transient failure.
    pub max_retries: u32,
    /// Delay before the first retry; it doubles up to `max_retry_delay`.
    pub initial_retry_delay: Duration,
    /// Longest delay between two tries.
    pub max_retry_delay: Duration,
    /// Upper bound on one request, retries included.
    pub request_timeout: Duration,
}

impl Default for BlobStoreOptions {
    fn default() -> Self {
        Self {
            max_retries: 3,
            initial_retry_delay: Duration::from_millis(250),
            max_retry_delay: Duration::from_secs(4),
            request_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Clone)]
enum Auth {
    /// The SAS token is in the container URL's query.
    Sas,
    Credential(Arc<dyn TokenCredential>),
    AccountKey(Arc<AccountSasPolicy>),
}

impl Auth {
    fn describe(&self) -> &'static str {
        match self {
            Auth::Sas => "SAS token",
            Auth::Credential(_) => "Microsoft Entra ID",
            Auth::AccountKey(_) => "account key",
        }
    }
}

/// The checkpoint store in an Azure Blob Storage container (see the [module docs](self)).
pub struct BlobCheckpointStore {
    /// The container URL, with the SAS token if that is the authentication.
    url: Url,
    auth: Auth,
    options: BlobStoreOptions,
    container: BlobContainerClient,
}

impl std::fmt::Debug for BlobCheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobCheckpointStore")
            .field("container", &self.describe())
            .finish_non_exhaustive()
    }
}

impl BlobCheckpointStore {
    /// A store in the container of a container SAS URL,
    /// `https://<account>.blob.core.windows.net/<container>?sv=...&sig=...`. The token needs
    /// read, add, create, write, delete and list permissions (`sp=racwdl`) on the container.
    pub fn from_container_sas_url(container_sas_url: &str) -> Result<Self> {
        let url = parse_container_url(container_sas_url)?;
        if !url.query_pairs().any(|(k, _)| k == "sig") {
            return Err(Error::with_message(
                ErrorKind::Credential,
                format!(
                    "the container URL {} carries no SAS token (no sig= in its query): append the \
                     container's SAS token, or authenticate with Microsoft Entra ID \
                     (BlobCheckpointStore::with_credential) or the account key",
                    without_query(&url)
                ),
            ));
        }
        Self::build(url, Auth::Sas, BlobStoreOptions::default())
    }

    /// A store in the container at `container_url`
    /// (`https://<account>.blob.core.windows.net/<container>`), authenticated with Microsoft
    /// Entra ID; the identity needs the *Storage Blob Data Contributor* role on the container.
    pub fn with_credential(
        container_url: &str,
        credential: Arc<dyn TokenCredential>,
    ) -> Result<Self> {
        let url = parse_container_url(container_url)?;
        if url.scheme() != "https" {
            return Err(Error::with_message(
                ErrorKind::Credential,
                format!(
                    "{}: Microsoft Entra ID tokens are only sent over https; use an https \
                     container URL",
                    without_query(&url)
                ),
            ));
        }
        Self::build(
            url,
            Auth::Credential(credential),
            BlobStoreOptions::default(),
        )
    }

    /// A store in `container` of the storage account `account` at `endpoint` (the blob service
    /// URL: `https://<account>.blob.core.windows.net`, or `http://127.0.0.1:10000/devstoreaccount1`
    /// for Azurite), authenticated with the account's key (base64, as the portal shows it). The
    /// store signs short-lived account SAS tokens with the key and renews them as they age; the
    /// key itself never goes over the wire.
    pub fn with_account_key(
        endpoint: &str,
        account: &str,
        key: &str,
        container: &str,
    ) -> Result<Self> {
        let mut url = Url::parse(endpoint).map_err(|e| {
            Error::with_error(
                ErrorKind::DataConversion,
                e,
                format!("the blob endpoint {endpoint:?} is not a URL"),
            )
        })?;
        if url.cannot_be_a_base() || !matches!(url.scheme(), "http" | "https") {
            return Err(Error::with_message(
                ErrorKind::DataConversion,
                format!("the blob endpoint {endpoint:?} must be an http(s) URL"),
            ));
        }
        if container.is_empty() || container.contains('/') {
            return Err(Error::with_message(
                ErrorKind::DataConversion,
                format!("{container:?} is not a container name"),
            ));
        }
        url.set_query(None);
        url.append_path(container);
        let policy = AccountSasPolicy::new(account, key)?;
        Self::build(
            url,
            Auth::AccountKey(Arc::new(policy)),
            BlobStoreOptions::default(),
        )
    }

    /// The same store with other retry and timeout settings.
    pub fn with_options(self, options: BlobStoreOptions) -> Result<Self> {
        Self::build(self.url, self.auth, options)
    }

    fn build(url: Url, auth: Auth, options: BlobStoreOptions) -> Result<Self> {
        let to_time = |d: Duration| azure_core::time::Duration::try_from(d).unwrap_or_default();
        let mut client_options = ClientOptions {
            retry: RetryOptions::exponential(ExponentialRetryOptions {
                initial_delay: to_time(options.initial_retry_delay),
                max_retries: options.max_retries,
                max_total_elapsed: to_time(options.request_timeout),
                max_delay: to_time(options.max_retry_delay),
            }),
            ..ClientOptions::default()
        };
        let credential = match &auth {
            Auth::Sas => None,
            Auth::Credential(credential) => Some(credential.clone()),
            Auth::AccountKey(policy) => {
                client_options
                    .per_call_policies
                    .push(policy.clone() as Arc<dyn Policy>);
                None
            }
        };
        let container = BlobContainerClient::new(
            url.clone(),
            credential,
            Some(BlobContainerClientOptions {
                client_options,
                ..BlobContainerClientOptions::default()
            }),
        )
        .map_err(|e| {
            // The client's message names the URL: never with its SAS token.
            let message = format!(
                "cannot use the container URL {}: {}",
                without_query(&url),
                redact_sas(&e.to_string())
            );
            Error::with_message(e.kind().clone(), message)
        })?;
        Ok(Self {
            url,
            auth,
            options,
            container,
        })
    }

    /// The container client the store works through (for diagnostics and tests).
    pub fn container_client(&self) -> &BlobContainerClient {
        &self.container
    }

    /// Create the container if it does not exist yet.
    ///
    /// Needs an account-level permission (the account key, an account SAS, or an Entra ID role
    /// on the account); a container SAS cannot create its own container.
    pub async fn ensure_container(&self) -> Result<()> {
        let result = self
            .timed("creating the container", self.container.create(None))
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.http_status() == Some(StatusCode::Conflict)
                    && matches!(error_code(&e), None | Some("ContainerAlreadyExists")) =>
            {
                Ok(())
            }
            Err(e) => Err(self.error(e, "creating the container", None)),
        }
    }

    /// Write `body` as the blob `name` (replacing it), with the store's authentication, retries
    /// and error messages: the Blob dead-letter sink keeps one blob per dead letter this way.
    pub async fn put(&self, name: &str, body: Vec<u8>, content_type: &str) -> Result<()> {
        let what = "writing a blob";
        let upload = BlockBlobClientUploadOptions {
            blob_content_type: Some(content_type.to_string()),
            ..Default::default()
        };
        self.timed(
            what,
            self.blob(name)
                .upload(RequestContent::from(body), Some(upload)),
        )
        .await
        .map(|_| ())
        .map_err(|e| self.error(e, what, Some(name)))
    }

    fn blob(&self, name: &str) -> BlobClient {
        self.container.blob_client(name)
    }

    /// Run one storage request, abandoning it after the request timeout.
    async fn timed<T>(&self, what: &str, request: impl Future<Output = Result<T>>) -> Result<T> {
        match tokio::time::timeout(self.options.request_timeout, request).await {
            Ok(result) => result,
            Err(_) => Err(Error::with_message(
                ErrorKind::Io,
                format!(
                    "{what}: storage did not answer within {:?}",
                    self.options.request_timeout
                ),
            )),
        }
    }

    /// A storage error with the container, the blob and what to do about it.
    fn error(&self, e: Error, what: &str, blob: Option<&str>) -> Error {
        let code = error_code(&e).unwrap_or_default().to_string();
        let hint = match (e.kind(), e.http_status()) {
            _ if code == "ContainerNotFound" => {
                "the container does not exist: create it (`az storage container create`, the \
                 portal, or BlobCheckpointStore::ensure_container)"
                    .to_string()
            }
            (_, Some(StatusCode::Forbidden | StatusCode::Unauthorized)) => format!(
                "storage refused the {}: {}",
                self.auth.describe(),
                match self.auth {
                    Auth::Sas => {
                        "check that the SAS token is for this container, grants read, add, \
                         create, write, delete and list (sp=racwdl), has not expired, and that \
                         this machine's clock is right"
                    }
                    Auth::Credential(_) => {
                        "check that the identity has the Storage Blob Data Contributor role on \
                         the container (role assignments take minutes to apply)"
                    }
                    Auth::AccountKey(_) => {
                        "check the account name and key (key1 or key2 under the account's Access \
                         keys), and that this machine's clock is right"
                    }
                }
            ),
            (ErrorKind::HttpResponse { .. }, _) => {
                "storage answered with an error; the call can be retried".to_string()
            }
            _ => "storage is unreachable: check the endpoint, the network, and that the storage \
                  account (or Azurite) is up; the call can be retried"
                .to_string(),
        };
        let container = without_query(&self.url);
        let place = match blob {
            Some(prefix) if prefix.ends_with('/') => {
                format!("blobs {prefix}* in container {container}")
            }
            Some(blob) => format!("blob {blob} in container {container}"),
            None => format!("container {container}"),
        };
        let message = format!("{what} ({place}) failed: {}; {hint}", cause(&e));
        // A new error rather than `with_context`: the original's chain can hold the request URL,
        // SAS token included (reqwest's connection errors do). The kind (and HTTP status) stays.
        Error::with_message(e.kind().clone(), message)
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
    async fn list(
        &self,
        what: &str,
        prefix: String,
    ) -> Result<Vec<azure_storage_blob::models::BlobItem>> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(prefix.clone()),
            include: Some(vec![ListBlobsIncludeItem::Metadata]),
            ..Default::default()
        };
        let listing = async {
            let pager = self.container.list_blobs(Some(options))?;
            pager.try_collect::<Vec<_>>().await
        };
        self.timed(what, listing)
            .await
            .map_err(|e| self.error(e, what, Some(&prefix)))
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

    async fn list_checkpoints(
        &self,
        namespace: &str,
        event_hub_name: &str,
        consumer_group: &str,
    ) -> Result<Vec<Checkpoint>> {
        let prefix = blob_prefix(namespace, event_hub_name, consumer_group, CHECKPOINT)?;
        let blobs = self.list("listing checkpoints", prefix).await?;
        let mut checkpoints = Vec::with_capacity(blobs.len());
        for blob in blobs {
            let Some(name) = blob.name.as_deref() else {
                continue;
            };
            let metadata = blob.metadata.as_ref().and_then(|m| m.values.as_ref());
            let sequence_number = metadata
                .and_then(|m| meta(m, SEQUENCE_NUMBER))
                .map(|s| parse_number::<i64>(s, name, SEQUENCE_NUMBER))
                .transpose()?;
            checkpoints.push(Checkpoint {
                fully_qualified_namespace: namespace.to_string(),
                event_hub_name: event_hub_name.to_string(),
                consumer_group: consumer_group.to_string(),
                partition_id: partition_of(name).to_string(),
                offset: metadata.and_then(|m| meta(m, OFFSET)).map(str::to_string),
                sequence_number,
            });
        }
        Ok(checkpoints)
    }

    async fn list_ownerships(
        &self,
        namespace: &str,
        event_hub_name: &str,
        consumer_group: &str,
    ) -> Result<Vec<Ownership>> {
        let prefix = blob_prefix(namespace, event_hub_name, consumer_group, OWNERSHIP)?;
        let blobs = self.list("listing partition ownerships", prefix).await?;
        let mut ownerships = Vec::with_capacity(blobs.len());
        for blob in blobs {
            let Some(name) = blob.name.as_deref() else {
                continue;
            };
            let owner_id = blob
                .metadata
                .as_ref()
                .and_then(|m| m.values.as_ref())
                .and_then(|m| meta(m, OWNER_ID))
                .filter(|owner| !owner.is_empty())
                .map(str::to_string);
            let properties = blob.properties.as_ref();
            ownerships.push(Ownership {
                fully_qualified_namespace: namespace.to_string(),
                event_hub_name: event_hub_name.to_string(),
                consumer_group: consumer_group.to_string(),
                partition_id: partition_of(name).to_string(),
                owner_id,
                etag: properties.and_then(|p| p.etag.clone()),
                last_modified_time: properties.and_then(|p| p.last_modified),
            });
        }
        Ok(ownerships)
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

#[async_trait]
impl RetryStore for BlobCheckpointStore {
    async fn load_retry(
        &self,
        namespace: &str,
        event_hub: &str,
        consumer_group: &str,
        partition_id: &str,
    ) -> Result<Option<RetryState>> {
        let name = blob_name(namespace, event_hub, consumer_group, RETRY, partition_id)?;
        let what = "reading the retry state";
        let response = self
            .timed(
                what,
                self.blob(&name)
                    .get_properties(None::<BlobClientGetPropertiesOptions<'_>>),
            )
            .await;
        let response = match response {
            Ok(response) => response,
            Err(e) if error_code(&e) == Some("BlobNotFound") => return Ok(None),
            // A HEAD answer has no body; without the error-code header, a 404 is the blob's.
            Err(e) if e.http_status() == Some(StatusCode::NotFound) && error_code(&e).is_none() => {
                return Ok(None)
            }
            Err(e) => return Err(self.error(e, what, Some(&name))),
        };
        let metadata = response.metadata()?;
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

    async fn save_retry(
        &self,
        namespace: &str,
        event_hub: &str,
        consumer_group: &str,
        partition_id: &str,
        state: Option<RetryState>,
    ) -> Result<()> {
        let name = blob_name(namespace, event_hub, consumer_group, RETRY, partition_id)?;
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
        format!(
            "Azure Blob container {} ({})",
            without_query(&self.url),
            self.auth.describe()
        )
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

/// What went wrong, in one line: the status and storage error code of an HTTP error (not the
/// XML body), else the error and its causes (e.g. "connection refused" under "retry policy
/// expired").
fn cause(e: &Error) -> String {
    if let ErrorKind::HttpResponse {
        status, error_code, ..
    } = e.kind()
    {
        return format!(
            "HTTP {status} {} ({})",
            status.canonical_reason(),
            error_code.as_deref().unwrap_or("no error code")
        );
    }
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        let text = inner.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = inner.source();
    }
    redact_sas(&parts.join(": ").replace('\n', " "))
}

/// `text` with the value of every `sig=` (a SAS signature) replaced.
fn redact_sas(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("sig=") {
        out.push_str(&rest[..at + 4]);
        out.push_str("REDACTED");
        rest = &rest[at + 4..];
        let end = rest.find(['&', ')', ' ', '"', '\'']).unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn error_code(e: &Error) -> Option<&str> {
    match e.kind() {
        ErrorKind::HttpResponse { error_code, .. } => error_code.as_deref(),
        _ => None,
    }
}

fn empty() -> RequestContent<Bytes, NoFormat> {
    RequestContent::from(Vec::new())
}

fn parse_container_url(url: &str) -> Result<Url> {
    let parsed = Url::parse(url).map_err(|e| {
        // The URL may carry a SAS token: never echo it.
        Error::with_error(
            ErrorKind::DataConversion,
            e,
            "the container URL is not a URL (expected https://<account>.blob.core.windows.net/<container>)",
        )
    })?;
    let container = parsed
        .path_segments()
        .and_then(|mut segments| segments.rfind(|s| !s.is_empty()));
    if !matches!(parsed.scheme(), "http" | "https") || container.is_none() {
        return Err(Error::with_message(
            ErrorKind::DataConversion,
            format!(
                "{} is not a container URL (expected https://<account>.blob.core.windows.net/<container>)",
                without_query(&parsed)
            ),
        ));
    }
    Ok(parsed)
}

/// A URL without its query (which may hold a SAS token), for messages.
fn without_query(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

/// Sign an account SAS for the blob service: the query string
/// (`sv=...&ss=b&srt=sco&sp=rwdlac&se=...&spr=https,http&sig=...`) of a token valid until
/// `expiry`, for every container and blob of `account`. `key` is the account key in base64.
pub fn sign_account_sas(account: &str, key: &str, expiry: OffsetDateTime) -> Result<String> {
    let mut url = Url::parse("http://sas.invalid/").expect("static URL");
    {
        let mut query = url.query_builder();
        for (k, v) in account_sas_pairs(account, &Secret::new(key.to_string()), expiry)? {
            query.append_pair(k, v);
        }
        query.build();
    }
    Ok(url.query().unwrap_or_default().to_string())
}

/// The service version the account SAS is signed for (the string-to-sign's shape depends on it:
/// from 2020-12-06 on it ends with the encryption scope).
const SAS_VERSION: &str = "2022-11-02";

/// The query parameters of a SAS token.
type SasPairs = Vec<(&'static str, String)>;

fn account_sas_pairs(account: &str, key: &Secret, expiry: OffsetDateTime) -> Result<SasPairs> {
    let (permissions, services, resource_types, protocol) = ("rwdlac", "b", "sco", "https,http");
    let expiry = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        expiry.year(),
        u8::from(expiry.month()),
        expiry.day(),
        expiry.hour(),
        expiry.minute(),
        expiry.second()
    );
    // accountname, permissions, services, resource types, start, expiry, IP, protocol,
    // version, encryption scope, and a final newline.
    let string_to_sign = format!(
        "{account}\n{permissions}\n{services}\n{resource_types}\n\n{expiry}\n\n{protocol}\n{SAS_VERSION}\n\n"
    );
    let signature = azure_core::hmac::hmac_sha256(&string_to_sign, key)?;
    Ok(vec![
        ("sv", SAS_VERSION.to_string()),
        ("ss", services.to_string()),
        ("srt", resource_types.to_string()),
        ("sp", permissions.to_string()),
        ("se", expiry),
        ("spr", protocol.to_string()),
        ("sig", signature),
    ])
}

/// Adds a fresh account SAS to every request, renewed well before it expires.
struct AccountSasPolicy {
    account: String,
    key: Secret,
    current: Mutex<Option<(OffsetDateTime, SasPairs)>>,
}

/// How long a signed token is valid, and how long before its expiry it is renewed.
const SAS_VALIDITY: azure_core::time::Duration = azure_core::time::Duration::hours(2);
const SAS_RENEW_BEFORE: azure_core::time::Duration = azure_core::time::Duration::hours(1);

impl AccountSasPolicy {
    fn new(account: &str, key: &str) -> Result<Self> {
        if account.is_empty() {
            return Err(Error::with_message(
                ErrorKind::Credential,
                "the storage account name is empty",
            ));
        }
        let key = Secret::new(key.trim().to_string());
        if azure_core::base64::decode(key.secret()).is_err() {
            return Err(Error::with_message(
                ErrorKind::Credential,
                format!(
                    "the key of storage account {account} is not base64; copy key1 or key2 \
                     from the account's Access keys"
                ),
            ));
        }
        Ok(Self {
            account: account.to_string(),
            key,
            current: Mutex::new(None),
        })
    }

    fn pairs(&self) -> Result<SasPairs> {
        let now = OffsetDateTime::now_utc();
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((expiry, pairs)) = current.as_ref() {
            if *expiry - now > SAS_RENEW_BEFORE {
                return Ok(pairs.clone());
            }
        }
        let expiry = now + SAS_VALIDITY;
        let pairs = account_sas_pairs(&self.account, &self.key, expiry)?;
        *current = Some((expiry, pairs.clone()));
        Ok(pairs)
    }
}

impl std::fmt::Debug for AccountSasPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountSasPolicy")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Policy for AccountSasPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let pairs = self.pairs()?;
        {
            let mut query = request.url_mut().query_builder();
            for (k, v) in pairs {
                query.set_pair(k, v);
            }
            query.build();
        }
        next[0].send(ctx, request, &next[1..]).await
    }
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

    #[test]
    fn account_sas_signature_matches_a_known_value() {
        // The string to sign for sv=2022-11-02 (with the trailing encryption-scope line),
        // signed with the Azurite development key; checked against the Python SDK's
        // generate_account_sas for the same inputs.
        let key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
        let expiry = OffsetDateTime::from_unix_timestamp(1_893_456_000).unwrap(); // 2030-01-01
        let pairs = account_sas_pairs("devstoreaccount1", &Secret::new(key), expiry).unwrap();
        let get = |k: &str| pairs.iter().find(|(n, _)| *n == k).unwrap().1.clone();
        assert_eq!(get("se"), "2030-01-01T00:00:00Z");
        assert_eq!(get("sv"), SAS_VERSION);
        assert_eq!(get("sig"), EXPECTED_SIG);
    }

    const EXPECTED_SIG: &str = "8wjnWxP8F5T/UlX9mpdTCIE1FcMiFLJkQG7OPybci4k=";

    #[test]
    fn urls_without_a_sas_or_container_are_refused_without_echoing_secrets() {
        let e = BlobCheckpointStore::from_container_sas_url("https://a.blob.core.windows.net/c")
            .unwrap_err();
        assert!(e.to_string().contains("no SAS token"), "{e}");
        let e =
            BlobCheckpointStore::from_container_sas_url("https://a.blob.core.windows.net/?sig=x")
                .unwrap_err();
        assert!(!e.to_string().contains("sig=x"), "{e}");
        let store = BlobCheckpointStore::from_container_sas_url(
            "https://a.blob.core.windows.net/c?sv=2022-11-02&sp=racwdl&sig=secret",
        )
        .unwrap();
        assert_eq!(
            store.describe(),
            "Azure Blob container https://a.blob.core.windows.net/c (SAS token)"
        );
        assert!(!format!("{store:?}").contains("secret"));
    }

    #[test]
    fn sas_signatures_are_redacted_from_messages() {
        assert_eq!(
            redact_sas("for url (http://h/c/b?se=x&sig=abc%2B%3D&sp=r): refused"),
            "for url (http://h/c/b?se=x&sig=REDACTED&sp=r): refused"
        );
        assert_eq!(
            redact_sas("u?sig=abc) and v?sig=def"),
            "u?sig=REDACTED) and v?sig=REDACTED"
        );
        assert_eq!(redact_sas("nothing here"), "nothing here");
    }

    #[test]
    fn account_keys_must_be_base64() {
        let e = BlobCheckpointStore::with_account_key(
            "http://127.0.0.1:1/devstoreaccount1",
            "devstoreaccount1",
            "not base64!",
            "c",
        )
        .unwrap_err();
        assert!(e.to_string().contains("not base64"), "{e}");
    }
}
