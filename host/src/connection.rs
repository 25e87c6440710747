//! How hubwasm reaches an event hub: connection strings (SAS), Microsoft Entra credentials, and
//! the embedded endpoint, all through the official Rust SDK's clients.

use std::sync::Arc;

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
}

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
    /// Real Event Hubs with a Microsoft Entra identity (environment, managed identity, Azure CLI,
    /// ... as `azure_identity`'s developer and workload credentials find it).
    pub fn entra(namespace: &str, event_hub: &str) -> Result<Self, ConnectionError> {
        let credential = azure_identity::DeveloperToolsCredential::new(None)
            .map_err(|e| ConnectionError::Credential(e.to_string()))?;
        Ok(Self {
            namespace: namespace.to_string(),
            event_hub: event_hub.to_string(),
            credential,
            custom_endpoint: None,
        })
    }

    fn open_error(&self, source: EventHubsError) -> ConnectionError {
        ConnectionError::Open {
            host: self
                .custom_endpoint
                .clone()
                .unwrap_or_else(|| self.namespace.clone()),
            hub: self.event_hub.clone(),
            source: Box::new(source),
        }
    }

    pub async fn producer(&self) -> Result<ProducerClient, ConnectionError> {
        let mut builder = ProducerClient::builder();
        if let Some(endpoint) = &self.custom_endpoint {
            builder = builder.with_custom_endpoint(endpoint.clone());
        }
        builder
            .open(&self.namespace, &self.event_hub, self.credential.clone())
            .await
            .map_err(|e| self.open_error(e))
    }

    pub async fn consumer(&self, consumer_group: &str) -> Result<ConsumerClient, ConnectionError> {
        self.open_consumer(consumer_group, None).await
    }

    /// A consumer whose connection name is `owner_id`: the SDK's processor uses it as this
    /// instance's owner id in the checkpoint store.
    pub async fn consumer_with_owner(
        &self,
        consumer_group: &str,
        owner_id: &str,
    ) -> Result<ConsumerClient, ConnectionError> {
        self.open_consumer(consumer_group, Some(owner_id)).await
    }

    async fn open_consumer(
        &self,
        consumer_group: &str,
        owner_id: Option<&str>,
    ) -> Result<ConsumerClient, ConnectionError> {
        let mut builder = ConsumerClient::builder().with_consumer_group(consumer_group.to_string());
        if let Some(id) = owner_id {
            builder = builder.with_application_id(id.to_string());
        }
        if let Some(endpoint) = &self.custom_endpoint {
            builder = builder.with_custom_endpoint(endpoint.clone());
        }
        builder
            .open(
                &self.namespace,
                self.event_hub.clone(),
                self.credential.clone(),
            )
            .await
            .map_err(|e| self.open_error(e))
    }
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
