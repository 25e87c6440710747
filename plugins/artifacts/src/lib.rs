//! Paths of the plugins in `plugins/`, built for `wasm32-wasip2` by this crate's build script.
//!
//! Depending on this crate (as the host's dev-dependency does) guarantees every plugin is built
//! against the current `wit/` before a test or benchmark runs, so no test is skipped for lack of
//! a `.wasm`. Each constant is the absolute path of one component, named after its crate
//! (`json-filter` → [`JSON_FILTER`]).

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
