//! test-describe: rejects the event at index `at` of each batch with a message describing every
//! field the plugin saw (sequence number, offset, enqueued time, key, ids, properties). Tests use
//! it to check that host and guest agree on the batch layout. Events before `at` succeed.
//!
//! Config: `at` (index within the batch, default 0).

use hubwasm_guest::{
    export_plugin, reject, Batch, BatchError, Config, Event, EventError, PartitionContext, Plugin,
    Value,
};

struct Describe {
    at: usize,
}

fn describe(ctx: &PartitionContext, event: &Event<'_>) -> String {
    let properties: Vec<String> = event
        .properties()
        .map(|(key, value)| match value {
            Value::Null => format!("{key}=null"),
            Value::Bool(b) => format!("{key}=bool:{b}"),
            Value::Int(i) => format!("{key}=int:{i}"),
            Value::Double(d) => format!("{key}=double:{d}"),
            Value::Text(t) => format!("{key}=text:{t}"),
            Value::Binary(b) => format!("{key}=binary:{b:?}"),
            Value::Timestamp(t) => format!("{key}=timestamp:{t}"),
            Value::Uuid(u) => format!("{key}=uuid:{u}"),
        })
        .collect();
    format!(
        "partition={}/{}/{}/{} seq={} offset={} enqueued={} body={} key={:?} content_type={:?} \
         correlation_id={:?} message_id={:?} properties=[{}]",
        ctx.namespace,
        ctx.event_hub,
        ctx.consumer_group,
        ctx.partition_id,
        event.sequence_number(),
        event.offset(),
        event.enqueued_time_ms(),
        String::from_utf8_lossy(event.body()),
        event.partition_key(),
        event.content_type(),
        event.correlation_id(),
        event.message_id(),
        properties.join(",")
    )
}

impl Plugin for Describe {
    fn init(config: Config) -> Result<Self, String> {
        Ok(Self {
            at: config.parse("at")?.unwrap_or(0),
        })
    }

    fn handle(&mut self, ctx: &PartitionContext, event: Event<'_>) -> Result<(), EventError> {
        Err(reject(describe(ctx, &event)))
    }

    fn handle_batch(&mut self, ctx: &PartitionContext, batch: Batch<'_>) -> Result<(), BatchError> {
        match batch.get(self.at) {
            Some(event) => Err(BatchError {
                failed_at: self.at as u32,
                error: reject(describe(ctx, &event)),
            }),
            None => Ok(()),
        }
    }
}

export_plugin!(Describe);
