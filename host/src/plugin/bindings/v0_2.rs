//! Contract `hubwasm:plugin@0.2.0` (`wit/v0.2/plugin.wit`).

wasmtime::component::bindgen!({
    path: "../wit/v0.2",
    world: "plugin-host",
    imports: {
        // Effects that the deployment may not provide stop the call (`EffectFault`).
        "hubwasm:plugin/emit.send": tracing | trappable,
        "hubwasm:plugin/state": tracing | trappable,
        // Asks the dedupe store (SQLite or Redis) while the call waits.
        "hubwasm:plugin/dedupe.first-seen": async | tracing | trappable,
        default: tracing,
    },
    exports: { default: async },
});

pub use self::hubwasm::plugin::types;
pub use self::hubwasm::plugin::{dedupe, emit, log, state};
pub use exports::hubwasm::plugin::{batch_handler, event_handler, lifecycle};
