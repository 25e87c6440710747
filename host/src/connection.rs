//! How hubwasm reaches an event hub: connection strings (SAS), Microsoft Entra credentials, and
//! the embedded endpoint, all through the official Rust SDK's clients.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_messaging_eventhubs::{ConsumerClient, EventHubsError, ProducerClient};
pub use hubwasm_hub::sas::SasCredential;

/// An event hub could not be reached or is described wrongly.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error(
        "invalid connection string: {0} (expected Endpoint=sb://<host>/;SharedAccessKeyName=..;\
         SharedAccessKey=..;EntityPath=<hub>)"
    )]
    ConnectionString(String),
    #[error("cannot get a Microsoft Entra credential: {0}")]
    Credential(String),
    #[error("cannot connect to event hub `{hub}` at {host}: {source}")]
    Open {
        host: String,
        hub: String,
        #[source]
        source: Box<EventHubsError>,
    },
    #[error(
        "event hub `{hub}` at {host} did not answer within {after:?} (a network that drops \
         packets, an endpoint that is not Event Hubs, or one stuck restarting); trying again"
    )]
    NoAnswer {
        host: String,
        hub: String,
        after: Duration,
    },
}

/// How long opening a client may take: an endpoint that took the connection and never answers
/// would otherwise hold its caller (a processor's restart, `/status`, `hubwasm status`) forever.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// The parts of a connection string the SDK clients need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionString {
    /// Host and optional port, e.g. `myns.servicebus.windows.net` or `localhost:5673`.
    pub host: String,
    pub key_name: String,
    pub key: String,
    pub entity_path: String,
    /// `UseDevelopmentEmulator=true`: plain AMQP on loopback.
    pub emulator: bool,
}

impl ConnectionString {
    /// Parse `Key=Value;...` (keys case-insensitive, as the SDKs do).
    pub fn parse(s: &str) -> Result<Self, ConnectionError> {
        let mut get = std::collections::HashMap::new();
        for part in s.split(';').filter(|p| !p.trim().is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                ConnectionError::ConnectionString(format!("`{part}` is not Key=Value"))
            })?;
            get.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        let need = |k: &str| {
            get.get(k)
                .cloned()
                .ok_or_else(|| ConnectionError::ConnectionString(format!("`{k}` is missing")))
        };
        let endpoint = need("endpoint")?;
        let host = endpoint
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or(&endpoint)
            .trim_end_matches('/')
            .to_string();
        Ok(Self {
            host,
            key_name: need("sharedaccesskeyname")?,
            key: need("sharedaccesskey")?,
            entity_path: need("entitypath")?,
            emulator: get
                .get("usedevelopmentemulator")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        })
    }

    /// The host without a port.
    pub fn host_name(&self) -> &str {
        self.host.split(':').next().unwrap_or(&self.host)
    }

    /// Where and how to connect.
    pub fn target(&self) -> EventHubTarget {
        let custom_endpoint = self.emulator.then(|| {
            // The Rust SDK ignores UseDevelopmentEmulator: reach the emulator with its custom
            // endpoint option; `amqp://` is plain TCP.
            let port = self
                .host
                .split_once(':')
                .map(|(_, p)| p.to_string())
                .unwrap_or_else(|| "5672".into());
            format!("amqp://127.0.0.1:{port}")
        });
        EventHubTarget {
            namespace: self.host_name().to_string(),
            event_hub: self.entity_path.clone(),
            credential: Arc::new(SasCredential {
                resource: format!("sb://{}/", self.host_name()),
                key_name: self.key_name.clone(),
                key: self.key.clone(),
            }),
            custom_endpoint,
        }
    }

    /// A producer for the connection string's event hub.
    pub async fn producer(&self) -> Result<ProducerClient, ConnectionError> {
        self.target().producer().await
    }
}

/// An event hub and how to authenticate to it.
#[derive(Clone)]
pub struct EventHubTarget {
    /// Fully qualified namespace, e.g. `myns.servicebus.windows.net` (`localhost` for the
    /// embedded endpoint).
    pub namespace: String,
    pub event_hub: String,
    pub credential: Arc<dyn TokenCredential>,
    /// `amqp://127.0.0.1:PORT` for the embedded endpoint or an emulator.
    pub custom_endpoint: Option<String>,
}

impl std::fmt::Debug for EventHubTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHubTarget")
            .field("namespace", &self.namespace)
            .field("event_hub", &self.event_hub)
            .field("custom_endpoint", &self.custom_endpoint)
            .finish_non_exhaustive()
    }
}

impl EventHubTarget {
    /// Where it is, for people: the custom endpoint (embedded, emulator) or the namespace.
    pub fn endpoint(&self) -> String {
        self.custom_endpoint
            .clone()
            .unwrap_or_else(|| self.namespace.clone())
    }

    /// Real Event Hubs with a Microsoft Entra identity ([`entra_credential`]).
    pub fn entra(namespace: &str, event_hub: &str) -> Result<Self, ConnectionError> {
        let credential = entra_credential()?;
        Ok(Self {
            namespace: namespace.to_string(),
            event_hub: event_hub.to_string(),
            credential,
            custom_endpoint: None,
        })
    }

    /// `open`, bounded by `within`.
    async fn bounded<T>(
        &self,
        within: Duration,
        open: impl std::future::Future<Output = Result<T, EventHubsError>>,
    ) -> Result<T, ConnectionError> {
        match tokio::time::timeout(within, open).await {
            Ok(opened) => opened.map_err(|source| ConnectionError::Open {
                host: self.endpoint(),
                hub: self.event_hub.clone(),
                source: Box::new(source),
            }),
            Err(_) => Err(ConnectionError::NoAnswer {
                host: self.endpoint(),
                hub: self.event_hub.clone(),
                after: within,
            }),
        }
    }

    pub async fn producer(&self) -> Result<ProducerClient, ConnectionError> {
        let mut builder = ProducerClient::builder();
        if let Some(endpoint) = &self.custom_endpoint {
            builder = builder.with_custom_endpoint(endpoint.clone());
        }
        let open = builder.open(&self.namespace, &self.event_hub, self.credential.clone());
        self.bounded(OPEN_TIMEOUT, open).await
    }

    pub async fn consumer(&self, consumer_group: &str) -> Result<ConsumerClient, ConnectionError> {
        self.open_consumer(consumer_group, None, OPEN_TIMEOUT).await
    }

    /// A consumer whose connection name is `owner_id`: the SDK's processor uses it as this
    /// instance's owner id in the checkpoint store.
    pub async fn consumer_with_owner(
        &self,
        consumer_group: &str,
        owner_id: &str,
    ) -> Result<ConsumerClient, ConnectionError> {
        self.open_consumer(consumer_group, Some(owner_id), OPEN_TIMEOUT)
            .await
    }

    async fn open_consumer(
        &self,
        consumer_group: &str,
        owner_id: Option<&str>,
        within: Duration,
    ) -> Result<ConsumerClient, ConnectionError> {
        let mut builder = ConsumerClient::builder().with_consumer_group(consumer_group.to_string());
        if let Some(id) = owner_id {
            builder = builder.with_application_id(id.to_string());
        }
        if let Some(endpoint) = &self.custom_endpoint {
            builder = builder.with_custom_endpoint(endpoint.clone());
        }
        let open = builder.open(
            &self.namespace,
            self.event_hub.clone(),
            self.credential.clone(),
        );
        self.bounded(within, open).await
    }
}

/// Which Microsoft Entra credential `credential = "entra"` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntraSource {
    /// Azure CLI or Azure Developer CLI sign-in (a developer's machine).
    DeveloperTools,
    /// The managed identity of the VM, App Service, Container App or Function
    /// (`AZURE_CLIENT_ID` picks a user-assigned one).
    ManagedIdentity,
    /// Kubernetes workload identity (`AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID`,
    /// `AZURE_TENANT_ID`, as AKS injects them).
    WorkloadIdentity,
}

impl EntraSource {
    /// `HUBWASM_ENTRA_CREDENTIAL` (`developer-tools` | `managed-identity` | `workload-identity`)
    /// if set; otherwise what the environment shows: workload identity where AKS injected its
    /// token file, the platform's managed identity where App Service and its kin set
    /// `IDENTITY_ENDPOINT`, else the developer's sign-in. A VM's managed identity leaves no
    /// trace in the environment: set `HUBWASM_ENTRA_CREDENTIAL=managed-identity` there.
    pub fn choose(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        if let Some(chosen) = var("HUBWASM_ENTRA_CREDENTIAL") {
            return match chosen.as_str() {
                "developer-tools" => Ok(Self::DeveloperTools),
                "managed-identity" => Ok(Self::ManagedIdentity),
                "workload-identity" => Ok(Self::WorkloadIdentity),
                other => Err(format!(
                    "HUBWASM_ENTRA_CREDENTIAL = `{other}`: use developer-tools, \
                     managed-identity or workload-identity"
                )),
            };
        }
        if var("AZURE_FEDERATED_TOKEN_FILE").is_some() {
            Ok(Self::WorkloadIdentity)
        } else if var("IDENTITY_ENDPOINT").is_some() || var("MSI_ENDPOINT").is_some() {
            Ok(Self::ManagedIdentity)
        } else {
            Ok(Self::DeveloperTools)
        }
    }
}

/// The Microsoft Entra credential for this environment (see [`EntraSource::choose`]).
pub fn entra_credential() -> Result<Arc<dyn TokenCredential>, ConnectionError> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let source = EntraSource::choose(var).map_err(ConnectionError::Credential)?;
    let fail = |e: azure_core::Error| ConnectionError::Credential(format!("{source:?}: {e}"));
    Ok(match source {
        EntraSource::DeveloperTools => {
            azure_identity::DeveloperToolsCredential::new(None).map_err(fail)?
        }
        EntraSource::ManagedIdentity => {
            let options = azure_identity::ManagedIdentityCredentialOptions {
                user_assigned_id: var("AZURE_CLIENT_ID")
                    .map(azure_identity::UserAssignedId::ClientId),
                ..Default::default()
            };
            azure_identity::ManagedIdentityCredential::new(Some(options)).map_err(fail)?
        }
        EntraSource::WorkloadIdentity => {
            azure_identity::WorkloadIdentityCredential::new(None).map_err(fail)?
        }
    })
}

/// Receiver options that read a partition from its first retained event.
pub fn from_earliest(prefetch: Option<u32>) -> azure_messaging_eventhubs::OpenReceiverOptions {
    azure_messaging_eventhubs::OpenReceiverOptions {
        prefetch,
        start_position: Some(azure_messaging_eventhubs::StartPosition {
            location: azure_messaging_eventhubs::StartLocation::Earliest,
            inclusive: false,
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_endpoint_that_never_answers_is_an_error_naming_it() {
        // A listener that takes connections and never says a word.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                open.push(socket);
            }
        });
        let target = ConnectionString::parse(&format!(
            "Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=k;SharedAccessKey=s;\
             UseDevelopmentEmulator=true;EntityPath=orders"
        ))
        .unwrap()
        .target();
        let within = Duration::from_millis(500);
        let opened = target.open_consumer("$Default", None, within);
        let bounded = tokio::time::timeout(Duration::from_secs(10), opened).await;
        let Err(err) = bounded.expect("the open gives up by itself") else {
            panic!("opened a consumer on an endpoint that never answers");
        };
        assert!(
            matches!(&err, ConnectionError::NoAnswer { hub, after, .. } if hub == "orders" && *after == within),
            "{err}"
        );
        let text = err.to_string();
        assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
        held.abort();
    }

    #[test]
    fn the_entra_credential_follows_the_environment_unless_chosen() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            EntraSource::choose(env(&[])),
            Ok(EntraSource::DeveloperTools)
        );
        assert_eq!(
            EntraSource::choose(env(&[("IDENTITY_ENDPOINT", "http://169.254.1.1")])),
            Ok(EntraSource::ManagedIdentity)
        );
        assert_eq!(
            EntraSource::choose(env(&[
                ("IDENTITY_ENDPOINT", "http://169.254.1.1"),
                ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token")
            ])),
            Ok(EntraSource::WorkloadIdentity)
        );
        assert_eq!(
            EntraSource::choose(env(&[
                ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
                ("HUBWASM_ENTRA_CREDENTIAL", "managed-identity")
            ])),
            Ok(EntraSource::ManagedIdentity)
        );
        let err = EntraSource::choose(env(&[("HUBWASM_ENTRA_CREDENTIAL", "cli")])).unwrap_err();
        assert!(
            err.contains("`cli`") && err.contains("managed-identity"),
            "{err}"
        );
    }

    #[test]
    fn connection_strings_parse_with_and_without_emulator_and_port() {
        let c = ConnectionString::parse(
            "Endpoint=sb://localhost:5673;SharedAccessKeyName=Root;SharedAccessKey=k=v;UseDevelopmentEmulator=true;EntityPath=events",
        )
        .unwrap();
        assert_eq!(c.host, "localhost:5673");
        assert_eq!(c.host_name(), "localhost");
        assert_eq!(c.key, "k=v", "keys may contain '='");
        assert!(c.emulator);
        assert_eq!(
            c.target().custom_endpoint.as_deref(),
            Some("amqp://127.0.0.1:5673")
        );
        let c = ConnectionString::parse(
            "endpoint=sb://ns.servicebus.windows.net/;sharedaccesskeyname=a;sharedaccesskey=b;entitypath=h",
        )
        .unwrap();
        assert_eq!(c.host, "ns.servicebus.windows.net");
        assert!(!c.emulator);
        assert_eq!(c.target().custom_endpoint, None);
        let err = ConnectionString::parse("Endpoint=sb://x").unwrap_err();
        assert!(err.to_string().contains("sharedaccesskeyname"), "{err}");
    }
}
