//! The event hub dead-letter sink.

use std::sync::Arc;

use async_trait::async_trait;
use azure_messaging_eventhubs::models::{AmqpSimpleValue, EventData};
use azure_messaging_eventhubs::ProducerClient;

use super::{DeadLetter, DeadLetterError, DeadLetterSink};

/// Dead letters sent to another event hub: the original body, its properties, and the failure
/// as `hubwasm-*` properties; keyed by the original partition so one partition's dead letters
/// stay in order.
pub struct EventHubSink {
    producer: Arc<ProducerClient>,
    name: String,
}

impl EventHubSink {
    pub fn new(producer: ProducerClient, name: String) -> Self {
        Self {
            producer: Arc::new(producer),
            name,
        }
    }
}

#[async_trait]
impl DeadLetterSink for EventHubSink {
    async fn write(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        let body = match (&letter.body, &letter.body_base64) {
            (Some(text), _) => text.as_bytes().to_vec(),
            (None, Some(b64)) => b64.as_bytes().to_vec(),
            _ => Vec::new(),
        };
        let text = |s: &str| AmqpSimpleValue::String(s.to_string());
        let mut builder = EventData::builder()
            .with_body(body)
            .add_property(
                "hubwasm-source".into(),
                text(&format!(
                    "{}/{}/{}",
                    letter.event_hub, letter.consumer_group, letter.partition_id
                )),
            )
            .add_property(
                "hubwasm-sequence-number".into(),
                AmqpSimpleValue::Long(letter.sequence_number),
            )
            .add_property("hubwasm-offset".into(), text(&letter.offset))
            .add_property("hubwasm-error".into(), text(&letter.error))
            .add_property("hubwasm-error-kind".into(), text(&letter.error_kind))
            .add_property(
                "hubwasm-attempts".into(),
                AmqpSimpleValue::UInt(letter.attempts),
            )
            .add_property("hubwasm-plugin".into(), text(&letter.plugin))
            .add_property(
                "hubwasm-plugin-version".into(),
                text(&letter.plugin_version),
            );
        if let Some(ct) = &letter.content_type {
            builder = builder.with_content_type(ct.clone());
        }
        for (k, v) in &letter.properties {
            builder = builder.add_property(k.clone(), text(&v.to_string()));
        }
        self.producer
            .send_event(builder.build(), None)
            .await
            .map_err(|e| DeadLetterError {
                sink: self.describe(),
                message: e.to_string(),
            })
    }

    fn describe(&self) -> String {
        format!("event hub {}", self.name)
    }
}
