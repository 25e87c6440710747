//! test-wrong-version: a component built against a made-up `hubwasm:plugin@0.9.0` (its own
//! `wit/`), which the host must refuse naming both versions. No config.

wit_bindgen::generate!({ path: "wit", world: "batch-plugin" });

struct WrongVersion;

impl exports::hubwasm::plugin::batch_handler::Guest for WrongVersion {
    fn handle_batch(x: u32) -> u32 {
        x
    }
}

export!(WrongVersion);
