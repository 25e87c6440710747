//! `$management` reads: event hub and partition properties.

use super::connection::*;
use super::namespace::now_ms;
use crate::amqp::message::Message;
use crate::amqp::Value;
use crate::sas;

impl Connection {
    pub(super) fn management(&mut self, request: &Message) -> (i32, String, Value) {
        let prop = |k: &str| {
            request
                .application_property(k)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        if prop("operation").as_deref() != Some("READ") {
            return (
                400,
                format!("unsupported operation {:?}", prop("operation")),
                Value::Null,
            );
        }
        let name = prop("name").unwrap_or_default();
        // Requests may carry their own token instead of a $cbs one.
        if let Some(token) = prop("security_token") {
            let now = (now_ms() / 1000) as u64;
            if let Ok(valid) = sas::validate(&token, self.ns.policies(), now) {
                self.keep_token(valid);
            }
        }
        if let Err(err) = self.authorized(&name, None) {
            return (401, err.description.unwrap_or_default(), Value::Null);
        }
        let Some(hub) = self.ns.hub(&name).cloned() else {
            return (
                404,
                format!("event hub `{name}` does not exist"),
                Value::Null,
            );
        };
        let entry = |k: &str, v: Value| (Value::string(k), v);
        match prop("type").as_deref() {
            Some("com.microsoft:eventhub") => (
                200,
                "OK".into(),
                Value::Map(vec![
                    entry("name", Value::string(hub.name.as_str())),
                    entry("type", Value::string("com.microsoft:eventhub")),
                    entry("created_at", Value::Timestamp(hub.created_at_ms)),
                    entry("partition_count", Value::Int(hub.partitions.len() as i32)),
                    entry(
                        "partition_ids",
                        Value::Array(
                            hub.partitions
                                .iter()
                                .map(|p| Value::string(p.id.as_str()))
                                .collect(),
                        ),
                    ),
                ]),
            ),
            Some("com.microsoft:partition") => {
                let id = prop("partition").unwrap_or_default();
                let Some(partition) = hub.partition(&id) else {
                    return (
                        404,
                        format!("event hub `{name}` has no partition `{id}`"),
                        Value::Null,
                    );
                };
                let info = partition.info();
                (
                    200,
                    "OK".into(),
                    Value::Map(vec![
                        entry("name", Value::string(hub.name.as_str())),
                        entry("type", Value::string("com.microsoft:partition")),
                        entry("partition", Value::string(id.as_str())),
                        entry(
                            "begin_sequence_number",
                            Value::Long(info.begin_sequence_number),
                        ),
                        entry(
                            "last_enqueued_sequence_number",
                            Value::Long(info.last_sequence_number),
                        ),
                        entry(
                            "last_enqueued_offset",
                            Value::string(info.last_offset.to_string()),
                        ),
                        entry(
                            "last_enqueued_time_utc",
                            Value::Timestamp(info.last_enqueued_time_ms),
                        ),
                        entry("is_partition_empty", Value::Bool(info.is_empty)),
                        entry("last_enqueued_sequence_number_epoch", Value::Long(0)),
                    ]),
                )
            }
            other => (
                400,
                format!("unsupported management type {other:?}"),
                Value::Null,
            ),
        }
    }
}
