//! Contract `hubwasm:plugin@0.2.0` (`wit/v0.2/plugin.wit`).

wasmtime::component::bindgen!({
    path: "../wit/v0.2",
    world: "plugin-host",
    imports: { default: tracing },
    exports: { default: async },
});

pub use self::hubwasm::plugin::log;
pub use self::hubwasm::plugin::types;
pub use exports::hubwasm::plugin::{batch_handler, event_handler, lifecycle};
