//! What `plugin new` and `plugin build` write out: the contract, the guest libraries and the
//! scaffold templates, compiled into the binary from the repository's own files.

/// The plugin contract (`wit/plugin.wit`).
pub const WIT: &str = include_str!("../../../wit/plugin.wit");
/// The world every Python and JavaScript plugin is built for.
pub const WORLD: &str = "batch-plugin";

/// The Python guest library (`plugins/python/hubwasm`).
pub const PYTHON_LIB: &str = include_str!("../../../plugins/python/hubwasm/__init__.py");

/// The JavaScript guest library (`plugins/js/hubwasm`) and its TypeScript declarations.
pub const JS_LIB: &str = include_str!("../../../plugins/js/hubwasm/index.js");
pub const JS_LIB_TYPES: &str = include_str!("../../../plugins/js/hubwasm/index.d.ts");

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
