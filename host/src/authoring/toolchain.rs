//! Finding the tools that turn a project into a component: where the project's setup
//! (`scripts/setup.sh`) installs them, then an override, then `PATH`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::Lang;

/// A tool a build needs, and where it was found.
#[derive(Debug, Clone)]
pub struct Tool {
    pub name: &'static str,
    pub path: PathBuf,
}

/// What to do when a tool is missing.
pub fn install_hint(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => {
            "install Rust (https://rustup.rs), then `rustup target add wasm32-wasip2`; in a \
             hubwasm checkout `bash scripts/setup.sh` does the second"
        }
        Lang::Python => {
            "in a hubwasm checkout run `bash scripts/setup.sh` (it installs componentize-py 0.25 \
             into ~/.cache/hubwasm/venv); elsewhere `pip install componentize-py==0.25.1` and \
             put it on PATH or set HUBWASM_COMPONENTIZE_PY"
        }
        Lang::Js => {
            "in a hubwasm checkout run `bash scripts/setup.sh` (it installs componentize-js 0.23 \
             into ~/.cache/hubwasm/node-plugins); elsewhere `npm install \
             @bytecodealliance/componentize-js@0.23` and set HUBWASM_COMPONENTIZE_JS to its \
             node_modules/.bin/componentize-js"
        }
    }
}

fn cache_home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("hubwasm"))
}

/// Places to look for a tool, in order: the override variable, the setup's locations, PATH.
fn candidates(lang: Lang, env: impl Fn(&str) -> Option<String>) -> (&'static str, Vec<PathBuf>) {
    let mut places = Vec::new();
    let (name, var) = match lang {
        Lang::Rust => ("cargo", "CARGO"),
        Lang::Python => ("componentize-py", "HUBWASM_COMPONENTIZE_PY"),
        Lang::Js => ("componentize-js", "HUBWASM_COMPONENTIZE_JS"),
    };
    if let Some(path) = env(var) {
        places.push(PathBuf::from(path));
    }
    match lang {
        Lang::Rust => {}
        Lang::Python => {
            if let Some(venv) = env("HUBWASM_VENV") {
                places.push(Path::new(&venv).join("bin").join(name));
            }
            if let Some(home) = cache_home() {
                places.push(home.join("venv").join("bin").join(name));
            }
        }
        Lang::Js => {
            if let Some(dir) = env("HUBWASM_PLUGIN_NODE_DIR") {
                places.push(Path::new(&dir).join("node_modules/.bin").join(name));
            }
            if let Some(home) = cache_home() {
                places.push(home.join("node-plugins/node_modules/.bin").join(name));
            }
        }
    }
    if let Some(path) = env("PATH") {
        places.extend(std::env::split_paths(&path).map(|d| d.join(name)));
    }
    (name, places)
}

/// A tool that was looked for and not found: which, for what, and how to install it.
#[derive(Debug, Clone, Copy)]
pub struct Missing {
    pub tool: &'static str,
    pub lang: Lang,
    pub hint: &'static str,
}

/// The tool that builds `lang`, or what was looked at and what to install.
pub fn find(lang: Lang) -> Result<Tool, Missing> {
    let (name, places) = candidates(lang, |v| std::env::var(v).ok());
    match places.iter().find(|p| p.is_file()) {
        Some(path) => Ok(Tool {
            name,
            path: path.clone(),
        }),
        None => Err(Missing {
            tool: name,
            lang,
            hint: install_hint(lang),
        }),
    }
}

/// The tool's version line, for the build cache key (empty if it cannot say).
pub fn version(tool: &Tool) -> String {
    Command::new(&tool.path)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Whether rustup lists the wasm32-wasip2 target as installed (true when rustup is absent:
/// cargo then says what is missing).
pub fn rust_target_installed() -> bool {
    match Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.trim() == "wasm32-wasip2"),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_override_comes_first_then_the_setup_then_path() {
        let env = |v: &str| match v {
            "HUBWASM_COMPONENTIZE_PY" => Some("/opt/cpy".to_string()),
            "HUBWASM_VENV" => Some("/venv".to_string()),
            "PATH" => Some("/usr/bin:/bin".to_string()),
            _ => None,
        };
        let (name, places) = candidates(Lang::Python, env);
        assert_eq!(name, "componentize-py");
        assert_eq!(places[0], PathBuf::from("/opt/cpy"));
        assert_eq!(places[1], PathBuf::from("/venv/bin/componentize-py"));
        assert_eq!(
            places.last().unwrap(),
            &PathBuf::from("/bin/componentize-py")
        );
    }
}
