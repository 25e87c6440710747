//! Contract 0.2's effect imports (`emit`, `state`, `dedupe`) and outbound HTTP, on an
//! instance's [`HostState`]. The imports only stage: the partition commits a batch's effects
//! after the plugin returns (see `crate::effects::journal`).
//!
//! A plugin's own mistakes (a value too large, a source outside the call) come back to it as
//! errors. A fault of the deployment (an output, state or dedupe store not configured for the
//! event hub, a dedupe store that does not answer) stops the call with an [`EffectFault`]: the
//! partition pauses before the event and never dead-letters it.

use std::time::Duration;

use super::bindings::v0_2::{dedupe, emit, state, types};
use super::sandbox::HostState;
use crate::effects::journal::{Emitted, MAX_EMIT_BODY, MAX_EMIT_BYTES_PER_CALL};
use crate::effects::state::{MAX_KEY_BYTES, MAX_SCAN};
use crate::event::PropertyValue;

/// An effect the deployment does not provide; stops the call (see the module docs).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EffectFault(pub String);

fn fault(message: String) -> wasmtime::Error {
    wasmtime::Error::new(EffectFault(message))
}

impl HostState {
    fn hub(&self) -> String {
        self.effects
            .binding
            .as_ref()
            .map(|b| b.hub.clone())
            .unwrap_or_else(|| "this event hub".into())
    }
}

fn property(value: types::PropertyValue) -> PropertyValue {
    use types::PropertyValue as V;
    match value {
        V::Null => PropertyValue::Null,
        V::Boolean(b) => PropertyValue::Bool(b),
        V::Integer(i) => PropertyValue::Int(i),
        V::Double(d) => PropertyValue::Double(d),
        V::Text(t) => PropertyValue::Text(t),
        V::Binary(b) => PropertyValue::Binary(b),
        V::Timestamp(t) => PropertyValue::Timestamp(t),
        V::Uuid(u) => PropertyValue::Uuid(u),
    }
}

impl emit::Host for HostState {
    fn send(
        &mut self,
        output: String,
        source: i64,
        event: emit::OutgoingEvent,
    ) -> wasmtime::Result<Result<(), emit::EmitError>> {
        let outputs = self.effects.binding.as_ref().map(|b| &b.outputs[..]);
        let Some(index) = outputs.and_then(|o| o.iter().position(|o| *o == output)) else {
            let configured = match outputs {
                Some(names) if !names.is_empty() => format!("configured: {}", names.join(", ")),
                _ => "none is configured".to_string(),
            };
            return Err(fault(format!(
                "the plugin emitted to output `{output}`, which {} does not have ({configured}); \
                 add an [[eventhub.output]] named `{output}` or fix the plugin's output name",
                self.hub()
            )));
        };
        match self.effects.range {
            Some((first, last)) if (first..=last).contains(&source) => {}
            _ => return Ok(Err(emit::EmitError::InvalidSource(source))),
        }
        let size = event.body.len();
        if size > MAX_EMIT_BODY {
            return Ok(Err(emit::EmitError::TooLarge(format!(
                "the event's body is {size} bytes; an emitted event may have at most \
                 {MAX_EMIT_BODY}"
            ))));
        }
        let queued = self.effects.batch.emitted_bytes + self.effects.call.emitted_bytes;
        if queued.saturating_add(size) > MAX_EMIT_BYTES_PER_CALL {
            return Ok(Err(emit::EmitError::TooLarge(format!(
                "the batch already emitted {queued} bytes; at most {MAX_EMIT_BYTES_PER_CALL} \
                 may wait for one batch (use smaller batches)"
            ))));
        }
        let index_in_source = self.effects.next_index(source);
        let call = &mut self.effects.call;
        call.emitted_bytes += size;
        call.emitted.push(Emitted {
            output: index,
            source,
            index: index_in_source,
            body: event.body,
            partition_key: event.partition_key,
            content_type: event.content_type,
            properties: event
                .properties
                .into_iter()
                .map(|p| (p.key, property(p.value)))
                .collect(),
        });
        Ok(Ok(()))
    }
}

impl HostState {
    /// The partition's state, or a fault naming the missing configuration.
    fn require_state(&self) -> wasmtime::Result<()> {
        let configured = self
            .effects
            .binding
            .as_ref()
            .is_some_and(|b| b.state.is_some());
        if configured {
            Ok(())
        } else {
            Err(fault(format!(
                "the plugin uses state, which {} does not have; add [eventhub.state] (store = \
                 \"local\" or \"redis\") for it",
                self.hub()
            )))
        }
    }
}

impl state::Host for HostState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        self.require_state()?;
        Ok(self.effects.get(&key))
    }

    fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), state::StateError>> {
        self.require_state()?;
        if key.len() > MAX_KEY_BYTES {
            return Ok(Err(state::StateError::KeyTooLarge(MAX_KEY_BYTES as u32)));
        }
        let state = self
            .effects
            .binding
            .as_ref()
            .and_then(|b| b.state.clone())
            .expect("required above");
        if value.len() > state.max_value_bytes {
            return Ok(Err(state::StateError::ValueTooLarge(
                u32::try_from(state.max_value_bytes).unwrap_or(u32::MAX),
            )));
        }
        let change = self.effects.size_change(&key, Some(value.len()));
        let after = (self.effects.state_bytes() as i64 + change).max(0) as usize;
        if after > state.max_bytes {
            return Ok(Err(state::StateError::Full(format!(
                "the partition's state would be {after} bytes; max_bytes is {}",
                state.max_bytes
            ))));
        }
        self.effects.stage_write(key, Some(value), change);
        Ok(Ok(()))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        self.require_state()?;
        if key.len() <= MAX_KEY_BYTES {
            let change = self.effects.size_change(&key, None);
            self.effects.stage_write(key, None, change);
        }
        Ok(())
    }

    fn scan_prefix(
        &mut self,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> wasmtime::Result<Vec<(String, Vec<u8>)>> {
        self.require_state()?;
        let limit = (limit as usize).min(MAX_SCAN);
        Ok(self.effects.scan(&prefix, after.as_deref(), limit))
    }
}

impl dedupe::Host for HostState {
    async fn first_seen(&mut self, key: String, ttl_secs: u32) -> wasmtime::Result<bool> {
        let Some((store, scope)) = self
            .effects
            .binding
            .as_ref()
            .and_then(|b| b.first_seen.clone())
        else {
            return Err(fault(format!(
                "the plugin uses dedupe.first-seen, which {} does not have; add \
                 [eventhub.dedupe] (a store; `key` may be left out) for it",
                self.hub()
            )));
        };
        if self.effects.seen_in_batch(&key) {
            return Ok(false);
        }
        let seen = store
            .seen(&scope, std::slice::from_ref(&key))
            .await
            .map_err(|e| fault(format!("dedupe.first-seen cannot ask its store: {e}")))?;
        if seen.first().copied().unwrap_or(false) {
            return Ok(false);
        }
        self.effects
            .stage_seen(key, Duration::from_secs(ttl_secs.max(1).into()));
        Ok(true)
    }
}
