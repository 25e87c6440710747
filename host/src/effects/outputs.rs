//! The event hubs a plugin emits to (`[[eventhub.output]]`), through the SDK's producer.
//!
//! A batch's emitted events are sent in order, grouped by output and partition key into as few
//! producer batches as fit, after the plugin succeeded and before the source checkpoint moves.
//! Each carries the message id `<event hub>/<partition>/<source sequence number>/<n>`: a replay
//! after a crash sends the same ids, so a consumer downstream can drop the repeats.

use azure_messaging_eventhubs::models::{AmqpSimpleValue, EventData};
use azure_messaging_eventhubs::{EventDataBatchOptions, ProducerClient};

use super::journal::Emitted;
use crate::event::{PartitionContext, PropertyValue};

/// An output did not acknowledge (the partition waits and sends again; nothing is lost).
#[derive(Debug, thiserror::Error)]
#[error("output `{output}` (event hub {event_hub}): {message}")]
pub struct OutputError {
    pub output: String,
    pub event_hub: String,
    pub message: String,
}

/// One configured output.
pub struct Output {
    pub name: String,
    pub event_hub: String,
    pub producer: ProducerClient,
}

/// An event hub's outputs, in configuration order (`Emitted::output` indexes them).
#[derive(Default)]
pub struct Outputs {
    pub list: Vec<Output>,
}

/// The message id of the `index`th event emitted for event `source` of `ctx`'s partition.
pub fn message_id(ctx: &PartitionContext, source: i64, index: u32) -> String {
    format!("{}/{}/{source}/{index}", ctx.event_hub, ctx.partition_id)
}

fn to_amqp(value: &PropertyValue) -> AmqpSimpleValue {
    match value {
        PropertyValue::Null => AmqpSimpleValue::Null,
        PropertyValue::Bool(b) => AmqpSimpleValue::Boolean(*b),
        PropertyValue::Int(i) | PropertyValue::Timestamp(i) => AmqpSimpleValue::Long(*i),
        PropertyValue::Double(d) => AmqpSimpleValue::Double(*d),
        PropertyValue::Text(t) | PropertyValue::Uuid(t) => AmqpSimpleValue::String(t.clone()),
        PropertyValue::Binary(b) => AmqpSimpleValue::Binary(b.clone()),
    }
}

fn event_data(ctx: &PartitionContext, e: &Emitted) -> EventData {
    let mut builder = EventData::builder()
        .with_body(e.body.clone())
        .with_message_id(message_id(ctx, e.source, e.index));
    if let Some(ct) = &e.content_type {
        builder = builder.with_content_type(ct.clone());
    }
    for (k, v) in &e.properties {
        builder = builder.add_property(k.clone(), to_amqp(v));
    }
    builder.build()
}

impl Outputs {
    /// The outputs' names, in order.
    pub fn names(&self) -> Vec<String> {
        self.list.iter().map(|o| o.name.clone()).collect()
    }

    /// Send `emitted` (events of `ctx`'s partition, in order) and wait for every
    /// acknowledgement. On an error some may have been sent: sending again repeats them with
    /// the same message ids.
    pub async fn send(
        &self,
        ctx: &PartitionContext,
        emitted: &[Emitted],
    ) -> Result<(), OutputError> {
        let mut rest = emitted;
        while let Some(first) = rest.first() {
            // A run of events for one output and partition key goes into one producer batch
            // (or several, when it does not fit).
            let run = rest
                .iter()
                .take_while(|e| e.output == first.output && e.partition_key == first.partition_key)
                .count();
            let (now, later) = rest.split_at(run);
            rest = later;
            let output = &self.list[first.output];
            let fail = |message: String| OutputError {
                output: output.name.clone(),
                event_hub: output.event_hub.clone(),
                message,
            };
            let options = || EventDataBatchOptions {
                partition_key: first.partition_key.clone(),
                ..Default::default()
            };
            let mut pending = now;
            while !pending.is_empty() {
                let batch = output
                    .producer
                    .create_batch(Some(options()))
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                let mut added = 0;
                for e in pending {
                    if !batch
                        .try_add_event_data(event_data(ctx, e), None)
                        .map_err(|e| fail(e.to_string()))?
                    {
                        break;
                    }
                    added += 1;
                }
                if added == 0 {
                    return Err(fail(format!(
                        "an emitted event of {} bytes does not fit in a batch of the event hub",
                        pending[0].body.len()
                    )));
                }
                output
                    .producer
                    .send_batch(batch, None)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                pending = &pending[added..];
            }
        }
        Ok(())
    }
}
