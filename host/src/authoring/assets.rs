//! What `plugin new` and `plugin build` write out: the contract, the guest libraries and the
//! scaffold templates, compiled into the binary from the repository's own files.

/// The contract Python and JavaScript plugins are built against (`wit/v0.2/plugin.wit`).
pub const WIT: &str = include_str!("../../../wit/v0.2/plugin.wit");
/// The contract the Rust guest crate `hubwasm-guest` binds (`wit/v0.2/plugin.wit`, as every
/// guest library does).
pub const WIT_RUST: &str = WIT;
/// The world JavaScript plugins are built for (componentize-js adds `wasi:http` itself, for
/// `fetch`).
pub const WORLD: &str = "batch-plugin";
/// The world Python plugins are built for: `batch-plugin` plus `wasi:http/outgoing-handler`
/// (`wit/v0.2/http.wit`), so the guest library's `http` has bindings to call.
pub const WORLD_HTTP: &str = "batch-plugin-http";
/// `wit/v0.2/http.wit`, staged beside the contract for Python builds.
pub const WIT_HTTP: &str = include_str!("../../../wit/v0.2/http.wit");
/// The WASI 0.2 packages `wit/v0.2/http.wit` needs (`wit/v0.2/deps`, as wasmtime-wasi-http ships
/// them).
pub const WASI_DEPS: &[(&str, &str)] = &[
    ("cli.wit", include_str!("../../../wit/v0.2/deps/cli.wit")),
    (
        "clocks.wit",
        include_str!("../../../wit/v0.2/deps/clocks.wit"),
    ),
    (
        "filesystem.wit",
        include_str!("../../../wit/v0.2/deps/filesystem.wit"),
    ),
    ("http.wit", include_str!("../../../wit/v0.2/deps/http.wit")),
    ("io.wit", include_str!("../../../wit/v0.2/deps/io.wit")),
    (
        "random.wit",
        include_str!("../../../wit/v0.2/deps/random.wit"),
    ),
    (
        "sockets.wit",
        include_str!("../../../wit/v0.2/deps/sockets.wit"),
    ),
];

/// The Python guest library (`plugins/python/hubwasm`).
pub const PYTHON_LIB: &str = include_str!("../../../plugins/python/hubwasm/__init__.py");

/// The JavaScript guest library (`plugins/js/hubwasm`) and its TypeScript declarations.
pub const JS_LIB: &str = include_str!("../../../plugins/js/hubwasm/index.js");
pub const JS_LIB_TYPES: &str = include_str!("../../../plugins/js/hubwasm/index.d.ts");

/// Editor stubs of the Python bindings (`plugins/python/typings`, from `hubwasm plugin types`).
pub const PYTHON_TYPES: &[(&str, &str)] = &[
    (
        "componentize_py_types.pyi",
        include_str!("../../../plugins/python/typings/componentize_py_types.pyi"),
    ),
    (
        "wit_world/__init__.pyi",
        include_str!("../../../plugins/python/typings/wit_world/__init__.pyi"),
    ),
    (
        "wit_world/exports/__init__.pyi",
        include_str!("../../../plugins/python/typings/wit_world/exports/__init__.pyi"),
    ),
    (
        "wit_world/exports/batch_handler.pyi",
        include_str!("../../../plugins/python/typings/wit_world/exports/batch_handler.pyi"),
    ),
    (
        "wit_world/exports/lifecycle.pyi",
        include_str!("../../../plugins/python/typings/wit_world/exports/lifecycle.pyi"),
    ),
    (
        "wit_world/imports/__init__.pyi",
        include_str!("../../../plugins/python/typings/wit_world/imports/__init__.pyi"),
    ),
    (
        "wit_world/imports/error.pyi",
        include_str!("../../../plugins/python/typings/wit_world/imports/error.pyi"),
    ),
    (
        "wit_world/imports/http_types.pyi",
        include_str!("../../../plugins/python/typings/wit_world/imports/http_types.pyi"),
    ),
    (
        "wit_world/imports/monotonic_clock.pyi",
        include_str!("../../../plugins/python/typings/wit_world/imports/monotonic_clock.pyi"),
    ),
    (
        "wit_world/imports/outgoing_handler.pyi",
        include_str!("../../../plugins/python/typings/wit_world/imports/outgoing_handler.pyi"),
    ),
    (
        "wit_world/imports/poll.pyi",
        include_str!("../../../plugins/python/typings/wit_world/imports/poll.pyi"),
    ),
    (
        "wit_world/imports/streams.pyi",
        include_str!("../../../plugins/python/typings/wit_world/imports/streams.pyi"),
    ),
    (
        "wit_world/imports/dedupe.pyi",
        include_str!("../../../plugins/python/typings/wit_world/imports/dedupe.pyi"),
    ),
    (
        "wit_world/imports/emit.pyi",
        include_str!("../../../plugins/python/typings/wit_world/imports/emit.pyi"),
    ),
    (
        "wit_world/imports/log.pyi",
        include_str!("../../../plugins/python/typings/wit_world/imports/log.pyi"),
    ),
    (
        "wit_world/imports/state.pyi",
        include_str!("../../../plugins/python/typings/wit_world/imports/state.pyi"),
    ),
    (
        "wit_world/imports/types.pyi",
        include_str!("../../../plugins/python/typings/wit_world/imports/types.pyi"),
    ),
];

/// TypeScript declarations of the contract (`plugins/js/hubwasm/types`, from `hubwasm plugin types`).
pub const JS_TYPES: &[(&str, &str)] = &[
    (
        "batch-plugin.d.ts",
        include_str!("../../../plugins/js/hubwasm/types/batch-plugin.d.ts"),
    ),
    (
        "interfaces/hubwasm-plugin-batch-handler.d.ts",
        include_str!(
            "../../../plugins/js/hubwasm/types/interfaces/hubwasm-plugin-batch-handler.d.ts"
        ),
    ),
    (
        "interfaces/hubwasm-plugin-lifecycle.d.ts",
        include_str!("../../../plugins/js/hubwasm/types/interfaces/hubwasm-plugin-lifecycle.d.ts"),
    ),
    (
        "interfaces/hubwasm-plugin-dedupe.d.ts",
        include_str!("../../../plugins/js/hubwasm/types/interfaces/hubwasm-plugin-dedupe.d.ts"),
    ),
    (
        "interfaces/hubwasm-plugin-emit.d.ts",
        include_str!("../../../plugins/js/hubwasm/types/interfaces/hubwasm-plugin-emit.d.ts"),
    ),
    (
        "interfaces/hubwasm-plugin-log.d.ts",
        include_str!("../../../plugins/js/hubwasm/types/interfaces/hubwasm-plugin-log.d.ts"),
    ),
    (
        "interfaces/hubwasm-plugin-state.d.ts",
        include_str!("../../../plugins/js/hubwasm/types/interfaces/hubwasm-plugin-state.d.ts"),
    ),
    (
        "interfaces/hubwasm-plugin-types.d.ts",
        include_str!("../../../plugins/js/hubwasm/types/interfaces/hubwasm-plugin-types.d.ts"),
    ),
];

/// The Rust guest crate (`plugins/hubwasm-guest`), vendored into Rust scaffolds.
pub const RUST_GUEST: &[(&str, &str)] = &[
    (
        "src/lib.rs",
        include_str!("../../../plugins/hubwasm-guest/src/lib.rs"),
    ),
    (
        "src/config.rs",
        include_str!("../../../plugins/hubwasm-guest/src/config.rs"),
    ),
    (
        "src/event.rs",
        include_str!("../../../plugins/hubwasm-guest/src/event.rs"),
    ),
    (
        "src/emit.rs",
        include_str!("../../../plugins/hubwasm-guest/src/emit.rs"),
    ),
    (
        "src/state.rs",
        include_str!("../../../plugins/hubwasm-guest/src/state.rs"),
    ),
    (
        "src/dedupe.rs",
        include_str!("../../../plugins/hubwasm-guest/src/dedupe.rs"),
    ),
];
/// The wit-bindgen the guest crate is built with (plugins/Cargo.toml).
pub const WIT_BINDGEN: &str = "0.61";

/// Sample events: the seed producer's JSON shape.
pub const SAMPLE_EVENTS: &str = include_str!("../../../examples/events/seed-sample.jsonl");

/// The scaffold templates (`host/src/authoring/templates`); `{{name}}` is the project name.
pub mod templates {
    pub const PYTHON_APP: &str = include_str!("templates/app.py");
    pub const JS_APP: &str = include_str!("templates/app.js");
    pub const RUST_LIB: &str = include_str!("templates/lib.rs");
    pub const README: &str = include_str!("templates/README.md");
}
