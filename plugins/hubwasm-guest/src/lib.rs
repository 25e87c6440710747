//! Write hubwasm batch plugins in Rust, against contract `hubwasm:plugin@0.2.0`.
//!
//! The host hands a plugin a whole batch of events laid out for a cheap copy (one byte buffer
//! plus little-endian byte columns of fixed-size metadata per event). This crate gives you
//! zero-copy [`Event`] views of it, a [`Plugin`] trait with sensible defaults, and
//! [`export_plugin!`] to export the `hubwasm:plugin/batch-plugin` world. The contract's effects
//! are modules: [`emit`] (send events to outputs), [`state`] (keyed state, exactly once with the
//! checkpoint), [`dedupe`] (first-seen keys) and [`log`]. Their errors convert into
//! [`EventError`], so `?` works inside [`Plugin::handle`].
//!
//! ```no_run
//! use hubwasm_guest::{export_plugin, reject, Config, Event, EventError, PartitionContext, Plugin};
//!
//! struct NonEmpty;
//!
//! impl Plugin for NonEmpty {
//!     fn init(_config: Config) -> Result<Self, String> {
//!         Ok(NonEmpty)
//!     }
//!
//!     fn handle(&mut self, _ctx: &PartitionContext, event: Event<'_>) -> Result<(), EventError> {
//!         if event.body().is_empty() {
//!             return Err(reject("empty body"));
//!         }
//!         Ok(())
//!     }
//! }
//!
//! export_plugin!(NonEmpty);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2` and a `cdylib` crate type. A
//! component imports only the effects it calls, so a plugin that uses none of them also loads
//! where the operator configured none.

mod config;
pub mod dedupe;
pub mod emit;
mod event;
pub mod state;

/// Bindings generated from `wit/` (world `batch-plugin`). Use the re-exports at the crate root.
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "batch-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_batch_plugin",
    });
}

pub use bindings::hubwasm::plugin::types::{
    BatchError, CloseReason, EventBatch, EventError, PartitionContext, RetryableError,
};
pub use config::Config;
pub use emit::{EmitError, Outgoing};
pub use event::{Batch, Event, Events, Value};
pub use state::StateError;

/// A transient failure: the host retries the event later.
pub fn retry(message: impl Into<String>) -> EventError {
    EventError::Retryable(RetryableError {
        message: message.into(),
        retry_after_ms: None,
    })
}

/// A transient failure that should not be retried for at least `ms` milliseconds.
pub fn retry_after(message: impl Into<String>, ms: u32) -> EventError {
    EventError::Retryable(RetryableError {
        message: message.into(),
        retry_after_ms: Some(ms),
    })
}

/// The event is bad (poison): the host dead-letters it or halts, as configured.
pub fn reject(message: impl Into<String>) -> EventError {
    EventError::Rejected(message.into())
}

/// Logging into the host's log, tagged with the plugin's name.
pub mod log {
    pub use crate::bindings::hubwasm::plugin::log::Level;

    /// Log `message` with key/value fields at `level`.
    pub fn log_with(level: Level, message: &str, fields: &[(&str, &str)]) {
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        crate::bindings::hubwasm::plugin::log::log(level, message, &fields);
    }

    /// Log at trace level.
    pub fn trace(message: &str) {
        log_with(Level::Trace, message, &[]);
    }
    /// Log at debug level.
    pub fn debug(message: &str) {
        log_with(Level::Debug, message, &[]);
    }
    /// Log at info level.
    pub fn info(message: &str) {
        log_with(Level::Info, message, &[]);
    }
    /// Log at warn level.
    pub fn warn(message: &str) {
        log_with(Level::Warn, message, &[]);
    }
    /// Log at error level.
    pub fn error(message: &str) {
        log_with(Level::Error, message, &[]);
    }
}

/// A batch plugin. Implement [`Plugin::handle`] (per event) and, if a whole batch can be handled
/// faster at once, [`Plugin::handle_batch`].
pub trait Plugin: Sized + 'static {
    /// Create the plugin from its configuration; an `Err` refuses to start and is shown to the
    /// operator, so name the key and what is wrong.
    fn init(config: Config) -> Result<Self, String>;

    /// Handle one event.
    fn handle(&mut self, ctx: &PartitionContext, event: Event<'_>) -> Result<(), EventError>;

    /// Handle a batch. The default calls [`Plugin::handle`] in order and stops at the first
    /// failure, reporting its index so the host checkpoints up to the events before it.
    fn handle_batch(&mut self, ctx: &PartitionContext, batch: Batch<'_>) -> Result<(), BatchError> {
        for (index, event) in batch.iter().enumerate() {
            if let Err(error) = self.handle(ctx, event) {
                return Err(BatchError {
                    failed_at: index as u32,
                    error,
                });
            }
        }
        Ok(())
    }

    /// The host starts delivering this partition.
    fn opened(&mut self, _ctx: &PartitionContext) {}

    /// The host stops delivering this partition.
    fn closed(&mut self, _ctx: &PartitionContext, _reason: CloseReason) {}

    /// The host hit an error on this partition outside the plugin (informational).
    fn error(&mut self, _ctx: &PartitionContext, _message: &str) {}
}

/// Export a [`Plugin`] type as the component's `batch-plugin` world.
///
/// The plugin value lives in a thread-local set by `init`; calls before `init` fail with a
/// retryable error.
#[macro_export]
macro_rules! export_plugin {
    ($ty:ty) => {
        const _: () = {
            struct __HubwasmExport;

            ::std::thread_local! {
                static __HUBWASM_PLUGIN: ::core::cell::RefCell<::core::option::Option<$ty>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }

            fn __with_plugin(f: impl FnOnce(&mut $ty)) {
                __HUBWASM_PLUGIN.with(|cell| {
                    if let ::core::option::Option::Some(plugin) = cell.borrow_mut().as_mut() {
                        f(plugin)
                    }
                })
            }

            impl $crate::bindings::exports::hubwasm::plugin::lifecycle::Guest for __HubwasmExport {
                fn init(
                    config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    let plugin = <$ty as $crate::Plugin>::init($crate::Config::new(config))?;
                    __HUBWASM_PLUGIN.with(|cell| *cell.borrow_mut() = ::core::option::Option::Some(plugin));
                    ::core::result::Result::Ok(())
                }

                fn partition_opened(context: $crate::PartitionContext) {
                    __with_plugin(|p| $crate::Plugin::opened(p, &context));
                }

                fn partition_closed(context: $crate::PartitionContext, reason: $crate::CloseReason) {
                    __with_plugin(|p| $crate::Plugin::closed(p, &context, reason));
                }

                fn partition_error(context: $crate::PartitionContext, message: ::std::string::String) {
                    __with_plugin(|p| $crate::Plugin::error(p, &context, &message));
                }
            }

            impl $crate::bindings::exports::hubwasm::plugin::batch_handler::Guest for __HubwasmExport {
                fn handle_batch(
                    context: $crate::PartitionContext,
                    batch: $crate::EventBatch,
                ) -> ::core::result::Result<(), $crate::BatchError> {
                    __HUBWASM_PLUGIN.with(|cell| match cell.borrow_mut().as_mut() {
                        ::core::option::Option::Some(plugin) => {
                            $crate::Plugin::handle_batch(plugin, &context, $crate::Batch::new(&batch))
                        }
                        ::core::option::Option::None => ::core::result::Result::Err($crate::BatchError {
                            failed_at: 0,
                            error: $crate::retry("plugin not initialised: the host must call init first"),
                        }),
                    })
                }
            }

            $crate::bindings::__export_batch_plugin!(__HubwasmExport with_types_in $crate::bindings);
        };
    };
}
