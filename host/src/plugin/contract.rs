//! The contract versions this host speaks, behind one API.
//!
//! Each version has its own `bindgen!` ([`super::bindings`]) and so its own Rust types; the
//! worker and the runtime only see [`Indices`] (what a compiled component exports) and
//! [`Exports`] (those exports loaded in one instance), whose calls take the host's own types
//! and convert to the version's records. A new version adds one line to [`versioned!`]'s uses
//! and one arm to each `match` below.

use wasmtime::component::{Instance, InstancePre};
use wasmtime::Store;

use super::encode::BatchEncoder;
use super::sandbox::HostState;
use crate::event::{Event, PartitionContext, PropertyValue};

/// The plugin worlds of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    /// World `event-plugin`: called once per event.
    Event,
    /// World `batch-plugin`: called once per batch.
    Batch,
}

impl PluginKind {
    /// The WIT world name.
    pub fn world(self) -> &'static str {
        match self {
            Self::Event => "event-plugin",
            Self::Batch => "batch-plugin",
        }
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.world())
    }
}

/// Every contract version this host runs, oldest first (`hubwasm:plugin@<version>`).
pub const CONTRACT_VERSIONS: &[&str] = &["0.1.0", "0.2.0"];

/// The newest contract version: what `hubwasm plugin new` builds Python and JavaScript against.
pub const CONTRACT_VERSION: &str = "0.2.0";

/// Why the host stops calling the plugin for a partition (`close-reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Another host instance took the partition over (load balancing or a lost claim).
    OwnershipLost,
    /// The host is shutting down.
    Shutdown,
}

/// An error the plugin returned for one event (`event-error`), in any version.
#[derive(Debug, Clone)]
pub(crate) enum Verdict {
    Retryable {
        message: String,
        retry_after_ms: Option<u32>,
    },
    Rejected(String),
}

/// A handler call's outcome: `Err((index, verdict))` says which event failed and why.
pub(crate) type Outcome = Result<(), (u32, Verdict)>;

/// A plugin's lifecycle interface and its one handler (per event or per batch), in every
/// contract version alike: as type-checked indices, and as exports loaded in an instance.
pub(crate) struct Parts<L, E, B> {
    lifecycle: L,
    handler: Handler<E, B>,
}

enum Handler<E, B> {
    Event(E),
    Batch(B),
}

/// Generates, for one contract version's bindings module, the conversions from host types and
/// the loaded exports with their calls. Every version's export shapes are the same functions,
/// so one body serves all of them.
macro_rules! versioned {
    ($version:ident, $encode:ident) => {
        pub(crate) mod $version {
            use super::*;
            use crate::plugin::bindings::$version::{
                batch_handler, event_handler, lifecycle, types as wit,
            };

            /// What a compiled component exports, type-checked.
            pub(crate) type Indices = Parts<
                lifecycle::GuestIndices,
                event_handler::GuestIndices,
                batch_handler::GuestIndices,
            >;

            /// Those exports loaded in one instance.
            pub(crate) type Exports =
                Parts<lifecycle::Guest, event_handler::Guest, batch_handler::Guest>;

            impl Indices {
                /// Type-check the exports of `kind`; `Err` names the interface that differs.
                pub(crate) fn new(
                    pre: &InstancePre<HostState>,
                    kind: PluginKind,
                ) -> Result<Self, (&'static str, wasmtime::Error)> {
                    let lifecycle =
                        lifecycle::GuestIndices::new(pre).map_err(|e| ("lifecycle", e))?;
                    let handler = match kind {
                        PluginKind::Event => Handler::Event(
                            event_handler::GuestIndices::new(pre)
                                .map_err(|e| ("event-handler", e))?,
                        ),
                        PluginKind::Batch => Handler::Batch(
                            batch_handler::GuestIndices::new(pre)
                                .map_err(|e| ("batch-handler", e))?,
                        ),
                    };
                    Ok(Self { lifecycle, handler })
                }

                pub(crate) fn load(
                    &self,
                    store: &mut Store<HostState>,
                    instance: &Instance,
                ) -> Result<Exports, (&'static str, wasmtime::Error)> {
                    let lifecycle = self
                        .lifecycle
                        .load(&mut *store, instance)
                        .map_err(|e| ("lifecycle", e))?;
                    let handler = match &self.handler {
                        Handler::Event(h) => Handler::Event(
                            h.load(&mut *store, instance)
                                .map_err(|e| ("event-handler", e))?,
                        ),
                        Handler::Batch(h) => Handler::Batch(
                            h.load(&mut *store, instance)
                                .map_err(|e| ("batch-handler", e))?,
                        ),
                    };
                    Ok(Exports { lifecycle, handler })
                }
            }

            impl Exports {
                pub(crate) async fn init(
                    &self,
                    store: &mut Store<HostState>,
                    config: &[(String, String)],
                ) -> wasmtime::Result<Result<(), String>> {
                    self.lifecycle.call_init(store, config).await
                }

                pub(crate) async fn opened(
                    &self,
                    store: &mut Store<HostState>,
                    ctx: &PartitionContext,
                ) -> wasmtime::Result<()> {
                    self.lifecycle
                        .call_partition_opened(store, &context(ctx))
                        .await
                }

                pub(crate) async fn closed(
                    &self,
                    store: &mut Store<HostState>,
                    ctx: &PartitionContext,
                    reason: CloseReason,
                ) -> wasmtime::Result<()> {
                    let reason = match reason {
                        CloseReason::OwnershipLost => wit::CloseReason::OwnershipLost,
                        CloseReason::Shutdown => wit::CloseReason::Shutdown,
                    };
                    self.lifecycle
                        .call_partition_closed(store, &context(ctx), reason)
                        .await
                }

                pub(crate) async fn error(
                    &self,
                    store: &mut Store<HostState>,
                    ctx: &PartitionContext,
                    message: &str,
                ) -> wasmtime::Result<()> {
                    self.lifecycle
                        .call_partition_error(store, &context(ctx), message)
                        .await
                }

                pub(crate) fn is_batch(&self) -> bool {
                    matches!(self.handler, Handler::Batch(_))
                }

                /// One batch through the batch handler (`is_batch`).
                pub(crate) async fn handle_batch(
                    &self,
                    store: &mut Store<HostState>,
                    ctx: &PartitionContext,
                    events: &[Event],
                    encoder: &mut BatchEncoder,
                ) -> wasmtime::Result<Outcome> {
                    let Handler::Batch(handler) = &self.handler else {
                        unreachable!("handle_batch on a per-event plugin");
                    };
                    let batch = encoder.$encode(events);
                    let result = handler
                        .call_handle_batch(store, &context(ctx), batch)
                        .await?;
                    Ok(result.map_err(|e| (e.failed_at, verdict(e.error))))
                }

                /// One event through the per-event handler (not `is_batch`).
                pub(crate) async fn handle_event(
                    &self,
                    store: &mut Store<HostState>,
                    ctx: &PartitionContext,
                    event: &Event,
                ) -> wasmtime::Result<Result<(), Verdict>> {
                    let Handler::Event(handler) = &self.handler else {
                        unreachable!("handle_event on a batch plugin");
                    };
                    let result = handler
                        .call_handle_event(store, &context(ctx), &event_record(event))
                        .await?;
                    Ok(result.map_err(verdict))
                }
            }

            fn context(ctx: &PartitionContext) -> wit::PartitionContext {
                wit::PartitionContext {
                    namespace: ctx.namespace.clone(),
                    event_hub: ctx.event_hub.clone(),
                    consumer_group: ctx.consumer_group.clone(),
                    partition_id: ctx.partition_id.clone(),
                }
            }

            fn verdict(error: wit::EventError) -> Verdict {
                match error {
                    wit::EventError::Retryable(r) => Verdict::Retryable {
                        message: r.message,
                        retry_after_ms: r.retry_after_ms,
                    },
                    wit::EventError::Rejected(message) => Verdict::Rejected(message),
                }
            }

            /// The self-contained event record of the per-event world.
            fn event_record(event: &Event) -> wit::Event {
                wit::Event {
                    body: event.body.clone(),
                    sequence_number: event.sequence_number,
                    offset: event.offset.clone(),
                    enqueued_time_ms: event.enqueued_time_ms,
                    partition_key: event.partition_key.clone(),
                    content_type: event.content_type.clone(),
                    correlation_id: event.correlation_id.clone(),
                    message_id: event.message_id.clone(),
                    properties: event
                        .properties
                        .iter()
                        .map(|(key, value)| wit::Property {
                            key: key.clone(),
                            value: match value {
                                PropertyValue::Null => wit::PropertyValue::Null,
                                PropertyValue::Bool(b) => wit::PropertyValue::Boolean(*b),
                                PropertyValue::Int(i) => wit::PropertyValue::Integer(*i),
                                PropertyValue::Double(d) => wit::PropertyValue::Double(*d),
                                PropertyValue::Text(s) => wit::PropertyValue::Text(s.clone()),
                                PropertyValue::Binary(b) => wit::PropertyValue::Binary(b.clone()),
                                PropertyValue::Timestamp(t) => wit::PropertyValue::Timestamp(*t),
                                PropertyValue::Uuid(s) => wit::PropertyValue::Uuid(s.clone()),
                            },
                        })
                        .collect(),
                }
            }
        }
    };
}

versioned!(v0_1, v0_1);
versioned!(v0_2, v0_2);

/// What a compiled component exports, type-checked against its contract version.
pub(crate) enum Indices {
    V0_1(v0_1::Indices),
    V0_2(v0_2::Indices),
}

/// One instance's exports.
pub(crate) enum Exports {
    V0_1(v0_1::Exports),
    V0_2(v0_2::Exports),
}

impl Indices {
    /// Type-check the exports of a component of `version` and `kind`; `Err` names the interface
    /// that differs. `version` is one of [`CONTRACT_VERSIONS`].
    pub(crate) fn new(
        pre: &InstancePre<HostState>,
        version: &str,
        kind: PluginKind,
    ) -> Result<Self, (&'static str, wasmtime::Error)> {
        match version {
            "0.1.0" => v0_1::Indices::new(pre, kind).map(Self::V0_1),
            _ => v0_2::Indices::new(pre, kind).map(Self::V0_2),
        }
    }

    pub(crate) fn load(
        &self,
        store: &mut Store<HostState>,
        instance: &Instance,
    ) -> Result<Exports, (&'static str, wasmtime::Error)> {
        match self {
            Self::V0_1(i) => i.load(store, instance).map(Exports::V0_1),
            Self::V0_2(i) => i.load(store, instance).map(Exports::V0_2),
        }
    }
}

/// `impl Exports` with each call passed on to whichever version the exports are.
macro_rules! dispatch {
    ($(async fn $name:ident(store: &mut Store<HostState> $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        impl Exports {
            $(
                pub(crate) async fn $name(&self, store: &mut Store<HostState> $(, $arg: $ty)*) -> $ret {
                    match self {
                        Exports::V0_1(e) => e.$name(store $(, $arg)*).await,
                        Exports::V0_2(e) => e.$name(store $(, $arg)*).await,
                    }
                }
            )*

            pub(crate) fn is_batch(&self) -> bool {
                match self {
                    Exports::V0_1(e) => e.is_batch(),
                    Exports::V0_2(e) => e.is_batch(),
                }
            }
        }
    };
}

dispatch! {
    async fn init(store: &mut Store<HostState>, config: &[(String, String)]) -> wasmtime::Result<Result<(), String>>;
    async fn opened(store: &mut Store<HostState>, ctx: &PartitionContext) -> wasmtime::Result<()>;
    async fn closed(store: &mut Store<HostState>, ctx: &PartitionContext, reason: CloseReason) -> wasmtime::Result<()>;
    async fn error(store: &mut Store<HostState>, ctx: &PartitionContext, message: &str) -> wasmtime::Result<()>;
    async fn handle_batch(store: &mut Store<HostState>, ctx: &PartitionContext, events: &[Event], encoder: &mut BatchEncoder) -> wasmtime::Result<Outcome>;
    async fn handle_event(store: &mut Store<HostState>, ctx: &PartitionContext, event: &Event) -> wasmtime::Result<Result<(), Verdict>>;
}
