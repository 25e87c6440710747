//! Access to one Azure Blob Storage container, shared by the Blob checkpoint store
//! ([`crate::checkpoint::blob`]) and the Blob dead-letter sink ([`crate::sink::blob`]):
//! authentication (a container SAS URL; a container URL with a Microsoft Entra
//! [`TokenCredential`]; or an account name and key, from which short-lived account SAS tokens are
//! signed here, since `azure_storage_blob` 1.1 has no shared-key authentication), bounded retries
//! and timeouts, and error messages that name the container and what to do, never a SAS token.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::error::ErrorKind;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{
    ClientOptions, Context, ExponentialRetryOptions, NoFormat, Request, RequestContent,
    RetryOptions, StatusCode, Url, UrlExt,
};
use azure_core::time::OffsetDateTime;
use azure_core::{Bytes, Error, Result};
use azure_storage_blob::models::BlockBlobClientUploadOptions;
use azure_storage_blob::{BlobClient, BlobContainerClient, BlobContainerClientOptions};

use crate::config::{BlobAuth, BlobContainerConfig, BLOB_AUTH_HINT};

/// How patiently a container is talked to.
///
/// Each storage request is retried on transient failures (connection refused or reset, 408,
/// 429, 5xx) with exponential backoff, and one request, retries included, is abandoned after
/// `request_timeout`: an outage turns into errors the caller sees, never into a call that hangs.
#[derive(Debug, Clone)]
pub struct BlobOptions {
    /// Retries of one request after a transient failure.
    pub max_retries: u32,
    /// Delay before the first retry; it doubles up to `max_retry_delay`.
    pub initial_retry_delay: Duration,
    /// Longest delay between two tries.
    pub max_retry_delay: Duration,
    /// Upper bound on one request, retries included.
    pub request_timeout: Duration,
}

impl Default for BlobOptions {
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

/// One Azure Blob Storage container, authenticated, with bounded retries and error messages
/// that name the container and never a SAS token.
pub struct BlobContainer {
    /// The container URL, with the SAS token if that is the authentication.
    url: Url,
    auth: Auth,
    options: BlobOptions,
    client: BlobContainerClient,
}

impl std::fmt::Debug for BlobContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobContainer")
            .field("container", &self.describe())
            .finish_non_exhaustive()
    }
}

impl BlobContainer {
    /// The container of a container SAS URL,
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
                     (credential = \"entra\") or the account key",
                    without_query(&url)
                ),
            ));
        }
        Self::build(url, Auth::Sas, BlobOptions::default())
    }

    /// The container at `container_url`
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
        Self::build(url, Auth::Credential(credential), BlobOptions::default())
    }

    /// `container` of the storage account `account` at `endpoint` (the blob service
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
            BlobOptions::default(),
        )
    }

    /// The same container with other retry and timeout settings.
    pub fn with_options(self, options: BlobOptions) -> Result<Self> {
        Self::build(self.url, self.auth, options)
    }

    fn build(url: Url, auth: Auth, options: BlobOptions) -> Result<Self> {
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
        let client = BlobContainerClient::new(
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
            client,
        })
    }

    /// The SDK's container client.
    pub fn client(&self) -> &BlobContainerClient {
        &self.client
    }

    /// `Azure Blob container <url without query> (<how it authenticates>)`: no secrets.
    pub fn describe(&self) -> String {
        format!(
            "Azure Blob container {} ({})",
            without_query(&self.url),
            self.auth.describe()
        )
    }

    /// Create the container if it does not exist yet.
    ///
    /// Needs an account-level permission (the account key, an account SAS, or an Entra ID role
    /// on the account); a container SAS cannot create its own container.
    pub async fn ensure_container(&self) -> Result<()> {
        let result = self
            .timed("creating the container", self.client.create(None))
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

    /// Write `body` as the blob `name` (replacing it): the Blob dead-letter sink keeps one blob
    /// per dead letter this way.
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

    /// A client for the blob `name` of this container.
    pub fn blob(&self, name: &str) -> BlobClient {
        self.client.blob_client(name)
    }

    /// Run one storage request, abandoning it after the request timeout.
    pub async fn timed<T>(
        &self,
        what: &str,
        request: impl Future<Output = Result<T>>,
    ) -> Result<T> {
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
    pub fn error(&self, e: Error, what: &str, blob: Option<&str>) -> Error {
        let code = error_code(&e).unwrap_or_default().to_string();
        let hint = match (e.kind(), e.http_status()) {
            _ if code == "ContainerNotFound" => {
                "the container does not exist: create it (`az storage container create`, the \
                 portal, BlobContainer::ensure_container, or give hubwasm the account key, with which it creates the container)"
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
}

/// Open the container a config names; with the account key (which may create containers) make
/// sure it exists. The one place that decides how a [`BlobContainerConfig`] authenticates.
pub async fn open(config: &BlobContainerConfig) -> std::result::Result<BlobContainer, String> {
    let auth = config.auth().ok_or_else(|| BLOB_AUTH_HINT.to_string())?;
    let store = match auth {
        BlobAuth::SasUrl(url) => BlobContainer::from_container_sas_url(url),
        BlobAuth::Entra { container_url } => {
            let credential = crate::connection::entra_credential().map_err(|e| e.to_string())?;
            BlobContainer::with_credential(container_url, credential)
        }
        BlobAuth::AccountKey {
            endpoint,
            account,
            key,
            container,
        } => BlobContainer::with_account_key(endpoint, account, key, container),
    }
    .map_err(|e| e.to_string())?;
    if let BlobAuth::AccountKey { .. } = auth {
        if let Err(e) = store.ensure_container().await {
            // A refused key is a config error; an unreachable account is an outage the store's
            // callers ride out (the processor retries store calls).
            if matches!(
                e.http_status(),
                Some(
                    azure_core::http::StatusCode::Forbidden
                        | azure_core::http::StatusCode::Unauthorized
                )
            ) {
                return Err(e.to_string());
            }
            tracing::warn!(store = %store.describe(), error = %e, "cannot create the container yet; going on");
        }
    }
    Ok(store)
}

/// What went wrong, in one line: the status and storage error code of an HTTP error (not the
/// XML body), else the error and its causes (e.g. "connection refused" under "retry policy
/// expired").
pub(crate) fn cause(e: &Error) -> String {
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
pub(crate) fn redact_sas(text: &str) -> String {
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

pub(crate) fn error_code(e: &Error) -> Option<&str> {
    match e.kind() {
        ErrorKind::HttpResponse { error_code, .. } => error_code.as_deref(),
        _ => None,
    }
}

pub(crate) fn empty() -> RequestContent<Bytes, NoFormat> {
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
pub(crate) fn without_query(url: &Url) -> String {
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
        let e =
            BlobContainer::from_container_sas_url("https://a.blob.core.windows.net/c").unwrap_err();
        assert!(e.to_string().contains("no SAS token"), "{e}");
        let e = BlobContainer::from_container_sas_url("https://a.blob.core.windows.net/?sig=x")
            .unwrap_err();
        assert!(!e.to_string().contains("sig=x"), "{e}");
        let store = BlobContainer::from_container_sas_url(
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
        let e = BlobContainer::with_account_key(
            "http://127.0.0.1:1/devstoreaccount1",
            "devstoreaccount1",
            "not base64!",
            "c",
        )
        .unwrap_err();
        assert!(e.to_string().contains("not base64"), "{e}");
    }
}
