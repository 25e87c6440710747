//! The one `bindgen!` of the host, generated from `wit/plugin.wit`'s `plugin-host` world.
//!
//! That world imports and exports everything either plugin world may use; the runtime loads
//! whichever handler interface a component actually exports through the per-interface
//! `GuestIndices`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin-host",
    imports: { default: tracing },
    exports: { default: async },
});

pub use self::hubwasm::plugin::log;
pub use self::hubwasm::plugin::types;
pub use exports::hubwasm::plugin::{batch_handler, event_handler, lifecycle};
