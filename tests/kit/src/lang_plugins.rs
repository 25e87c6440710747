//! The Python and JavaScript plugins of `plugins/`, built for the tests with the real
//! `hubwasm plugin build` (componentize-py, componentize-js) from the current WIT. Builds are
//! cached by content (~/.cache/hubwasm/builds), so after the first run this is a copy.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// The repository's `plugins/` directory.
pub fn plugins_dir() -> PathBuf {
    crate::repo().join("plugins")
}

/// `plugins/<lang>/<name>` (e.g. `python/json-filter`) built; panics with the tool's message if
/// the build fails (scripts/setup.sh installs the toolchains).
pub fn built(rel: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(path) = built.get(rel) {
        return path.clone();
    }
    let (lang, name) = rel.split_once('/').expect("<lang>/<name>");
    let out = crate::hubwasm_bin()
        .with_file_name("tmp")
        .join("lang-plugins")
        .join(format!("{}_{lang}.wasm", name.replace('-', "_")));
    let output = Command::new(crate::hubwasm_bin())
        .args(["plugin", "build"])
        .arg(plugins_dir().join(rel))
        .arg("-o")
        .arg(&out)
        .output()
        .expect("run hubwasm plugin build");
    assert!(
        output.status.success(),
        "hubwasm plugin build plugins/{rel} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    built.insert(rel.to_string(), out.clone());
    out
}
