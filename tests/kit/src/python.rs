//! The official Python SDKs' scripts in `tests/python/`, run with the venv that
//! `scripts/setup.sh` creates (`HUBWASM_PYTHON`, else `~/.cache/hubwasm/venv/bin/python`).

use std::path::PathBuf;
use std::process::Command;

/// The venv's Python.
pub fn binary() -> PathBuf {
    crate::installed(
        "HUBWASM_PYTHON",
        "venv/bin/python",
        "the official Python SDKs",
    )
}

/// A script in `tests/python/`.
pub fn script(name: &str) -> PathBuf {
    crate::repo().join("tests/python").join(name)
}

/// `python <script>`, to add arguments to.
pub fn command(name: &str) -> Command {
    let mut cmd = Command::new(binary());
    cmd.arg(script(name));
    cmd
}

/// Run `cmd` off the async runtime and parse the JSON object on the last line of its stdout;
/// panics with its output if it fails or prints none.
pub async fn json_result(what: &str, mut cmd: Command) -> serde_json::Value {
    let output = tokio::task::spawn_blocking(move || cmd.output().expect("run python"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{stdout}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{what} printed no JSON ({e}):\n{stdout}"))
}
