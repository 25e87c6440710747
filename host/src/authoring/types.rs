//! `hubwasm plugin types`: declarations for editors, generated from the contract by each
//! language's own binding generator, so they say exactly what the build will bind.
//!
//! Python gets `.pyi` stubs of the `wit_world` package componentize-py generates (the guest
//! library imports from it), under `typings/` where pyright looks by default (`MYPYPATH` for
//! mypy). JavaScript gets jco's guest declarations (`declare module 'hubwasm:plugin/...'`)
//! under `hubwasm/types/`, which the guest library's `index.d.ts` references.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::build::{io_err, stage_python_world, stage_with_contract, write, BuildError};
use super::{assets, toolchain, Lang};

/// The jco guest-types driver (see the script for why it is not `jco types`).
const JCO_TYPES_SCRIPT: &str = include_str!("guest-types.mjs");

/// Where a project keeps its generated types, relative to the project directory.
pub fn default_dir(lang: Lang) -> Option<&'static str> {
    match lang {
        Lang::Python => Some("typings"),
        Lang::Js => Some("hubwasm/types"),
        // Rust binds the WIT at compile time (wit-bindgen): nothing to generate.
        Lang::Rust => None,
    }
}

/// Generate `lang`'s declarations for the contract into `out` (replacing what is there) and
/// return the files written, relative to `out`, sorted.
pub fn generate(lang: Lang, out: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let tool = toolchain::find(lang)?;
    let stage = stage_with_contract("hubwasm-types-")?;
    let stage = stage.path();
    let wit = stage.join("wit");
    let generated = stage.join("out");
    let mut cmd = match lang {
        Lang::Python => {
            let mut cmd = Command::new(&tool.path);
            cmd.arg("-d")
                .arg(&wit)
                .args(stage_python_world(stage)?)
                .arg("bindings")
                .arg(&generated);
            cmd
        }
        Lang::Js => {
            // <node dir>/node_modules/.bin/componentize-js: jco-transpile sits beside it.
            let node_dir = tool
                .path
                .ancestors()
                .nth(3)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let script = stage.join("guest-types.mjs");
            write(&script, JCO_TYPES_SCRIPT)?;
            let mut cmd = Command::new("node");
            cmd.arg(&script)
                .arg(node_dir)
                .arg(&wit)
                .arg(assets::WORLD)
                .arg(&generated);
            cmd
        }
        Lang::Rust => return Ok(Vec::new()),
    };
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(io_err("cannot run", &tool.path))?;
    if !output.status.success() {
        return Err(BuildError::TypesFailed {
            lang,
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    // Python: the typed modules the guest library imports, as stubs. The asyncio support and
    // poll loop componentize-py also writes are not used: `hubwasm.http` blocks on pollables.
    let mut files = Vec::new();
    collect(&generated, Path::new(""), &mut files)?;
    let keep: Vec<(PathBuf, PathBuf)> = files
        .into_iter()
        .filter_map(|rel| match lang {
            Lang::Python => {
                let s = rel.to_string_lossy();
                let wanted = s.starts_with("wit_world/") || s == "componentize_py_types.py";
                (wanted && s.ends_with(".py")).then(|| (rel.clone(), rel.with_extension("pyi")))
            }
            _ => Some((rel.clone(), rel)),
        })
        .collect();
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(io_err("cannot replace", out))?;
    }
    let mut written = Vec::new();
    for (from, to) in keep {
        let from = generated.join(&from);
        let text = std::fs::read_to_string(&from).map_err(io_err("cannot read", &from))?;
        write(&out.join(&to), &text)?;
        written.push(to);
    }
    written.sort();
    Ok(written)
}

fn collect(root: &Path, rel: &Path, files: &mut Vec<PathBuf>) -> Result<(), BuildError> {
    let dir = root.join(rel);
    let entries = std::fs::read_dir(&dir).map_err(io_err("cannot read", &dir))?;
    for entry in entries.flatten() {
        let name = rel.join(entry.file_name());
        if entry.path().is_dir() {
            collect(root, &name, files)?;
        } else {
            files.push(name);
        }
    }
    Ok(())
}
