//! Writing plugins: `hubwasm plugin new` scaffolds a project in Rust, Python or JavaScript and
//! `hubwasm plugin build` turns any of the three into a component.
//!
//! The contract and the guest libraries are compiled into this binary ([`assets`]), so a
//! project builds against the WIT of the host that will run it, wherever the project lives.

pub mod assets;
pub mod build;
pub mod new;
pub mod toolchain;
pub mod types;

use std::fmt;
use std::path::Path;

/// A plugin's source language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

impl Lang {
    /// The language of the project in `dir`, from the file that marks it.
    pub fn detect(dir: &Path) -> Option<Lang> {
        if dir.join("Cargo.toml").is_file() {
            Some(Lang::Rust)
        } else if dir.join("app.py").is_file() {
            Some(Lang::Python)
        } else if dir.join("app.js").is_file() {
            Some(Lang::Js)
        } else {
            None
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        })
    }
}

/// The component file name for a project directory: its name, `-` as `_`, `.wasm`.
pub fn wasm_name(dir: &Path) -> String {
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "plugin".into());
    format!("{}.wasm", name.replace('-', "_"))
}
