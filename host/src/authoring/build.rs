//! `hubwasm plugin build`: a Rust, Python or JavaScript project to a component.
//!
//! Python and JavaScript builds take seconds to tens of seconds (componentize-py bundles
//! CPython, componentize-js SpiderMonkey), so their results are cached by content: the key
//! covers the project's files, the contract, the guest library and the tool's version, and a
//! second build of unchanged sources is a copy. Rust builds use cargo's own incremental cache.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{assets, toolchain, wasm_name, Lang};

/// A project larger than this is refused (a build reads and hashes every file).
pub const MAX_PROJECT_FILES: usize = 10_000;
pub const MAX_PROJECT_BYTES: u64 = 256 * 1024 * 1024;

/// Directories a build neither reads nor copies.
const SKIPPED_DIRS: &[&str] = &["target", "node_modules", "__pycache__", "bindings", ".git"];

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The project directory.
    pub dir: PathBuf,
    /// Where to write the component (default: `<dir>/<dir name>.wasm`).
    pub out: Option<PathBuf>,
    /// The build cache (default: $HUBWASM_BUILD_CACHE or ~/.cache/hubwasm/builds).
    pub cache_dir: Option<PathBuf>,
    /// Build even if the cache has the result.
    pub no_cache: bool,
}

/// A finished build.
#[derive(Debug, Clone)]
pub struct Built {
    pub lang: Lang,
    pub wasm: PathBuf,
    pub bytes: u64,
    pub from_cache: bool,
    pub took: Duration,
}

impl From<super::toolchain::Missing> for BuildError {
    fn from(m: super::toolchain::Missing) -> Self {
        BuildError::ToolMissing {
            tool: m.tool,
            lang: m.lang,
            hint: m.hint,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "{dir}: not a plugin project: expected Cargo.toml (Rust), app.py (Python) or app.js \
         (JavaScript); `hubwasm plugin new --lang rust|python|js NAME` makes one"
    )]
    NotAPlugin { dir: PathBuf },
    #[error("{tool} is needed to build {lang} plugins and was not found: {hint}")]
    ToolMissing {
        tool: &'static str,
        lang: Lang,
        hint: &'static str,
    },
    #[error(
        "the wasm32-wasip2 Rust target is not installed: run `rustup target add wasm32-wasip2`"
    )]
    RustTargetMissing,
    #[error("{tool} failed ({status}) building {dir}:\n{output}")]
    ToolFailed {
        tool: &'static str,
        dir: PathBuf,
        status: String,
        output: String,
    },
    #[error(
        "{dir}: the project is too large to build (over {MAX_PROJECT_FILES} files or \
         {} MiB outside target/, node_modules/ and bindings/)",
        MAX_PROJECT_BYTES >> 20
    )]
    TooLarge { dir: PathBuf },
    #[error("cargo built no .wasm for {dir}: the crate needs `[lib] crate-type = [\"cdylib\"]`")]
    NoArtifact { dir: PathBuf },
    #[error("generating the {lang} types from the contract failed ({status}):\n{output}")]
    TypesFailed {
        lang: Lang,
        status: String,
        output: String,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

pub(super) fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> BuildError + 'a {
    move |source| BuildError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Build the project in `options.dir`; `progress` gets a line before long steps.
pub fn build(options: &BuildOptions, mut progress: impl FnMut(&str)) -> Result<Built, BuildError> {
    let started = Instant::now();
    let dir = &options.dir;
    let lang = Lang::detect(dir).ok_or_else(|| BuildError::NotAPlugin { dir: dir.clone() })?;
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| dir.join(wasm_name(dir)));
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_err("cannot create", parent))?;
    }
    if lang == Lang::Rust {
        build_rust(dir, &out, &mut progress)?;
        return finish(lang, out, false, started);
    }
    let tool = toolchain::find(lang)?;
    let files = project_files(dir)?;
    let key = cache_key(lang, &toolchain::version(&tool), dir, &files)?;
    let cache_dir = options.cache_dir.clone().unwrap_or_else(default_cache_dir);
    let cached = cache_dir.join(format!("{key}.wasm"));
    if !options.no_cache && cached.is_file() {
        copy_atomically(&cached, &out)?;
        return finish(lang, out, true, started);
    }
    let stage = stage_with_contract("hubwasm-build-")?;
    let stage = stage.path();
    let built = stage.join("out.wasm");
    progress(&format!(
        "building the {lang} plugin in {} with {} (a first build takes {})",
        dir.display(),
        tool.name,
        match lang {
            Lang::Python => "about 15 s",
            _ => "about 10 s",
        }
    ));
    let mut cmd = Command::new(&tool.path);
    match lang {
        Lang::Python => {
            write(&stage.join("lib/hubwasm/__init__.py"), assets::PYTHON_LIB)?;
            // The project's own copy of the library (a scaffold's pinned one) comes first.
            cmd.arg("-d")
                .arg(stage.join("wit"))
                .args(stage_python_world(stage)?)
                .args(["componentize", "app", "-p"])
                .arg(dir)
                .arg("-p")
                .arg(stage.join("lib"))
                .arg("-o")
                .arg(&built);
        }
        Lang::Js => {
            // componentize-js reads only below its working directory: stage the project in
            // `app/` beside the library in `hubwasm/` (what `../hubwasm/index.js` imports).
            write(&stage.join("hubwasm/index.js"), assets::JS_LIB)?;
            for file in &files {
                let to = stage.join("app").join(file);
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent).map_err(io_err("cannot create", parent))?;
                }
                std::fs::copy(dir.join(file), &to).map_err(io_err("cannot copy", &to))?;
            }
            cmd.current_dir(stage)
                .args(["app/app.js", "--wit", "wit", "--world-name", assets::WORLD])
                // `http` stays: it is `fetch` (wasi:http); the fetch-event export is for servers.
                .args(["-o", "out.wasm", "-d", "fetch-event"]);
        }
        Lang::Rust => unreachable!("handled above"),
    }
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(io_err("cannot run", &tool.path))?;
    if !output.status.success() || !built.is_file() {
        return Err(BuildError::ToolFailed {
            tool: tool.name,
            dir: dir.clone(),
            status: output.status.to_string(),
            output: tool_output(&output.stdout, &output.stderr),
        });
    }
    if !options.no_cache {
        // A cache that cannot be written only costs the next build its time.
        if std::fs::create_dir_all(&cache_dir).is_ok() {
            let _ = copy_atomically(&built, &cached);
        }
    }
    copy_atomically(&built, &out)?;
    finish(lang, out, false, started)
}

fn finish(
    lang: Lang,
    wasm: PathBuf,
    from_cache: bool,
    started: Instant,
) -> Result<Built, BuildError> {
    let bytes = std::fs::metadata(&wasm)
        .map_err(io_err("cannot read", &wasm))?
        .len();
    Ok(Built {
        lang,
        wasm,
        bytes,
        from_cache,
        took: started.elapsed(),
    })
}

fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HUBWASM_BUILD_CACHE") {
        return PathBuf::from(dir);
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/hubwasm/builds"))
        .unwrap_or_else(|| std::env::temp_dir().join("hubwasm-builds"))
}

/// A temporary directory holding the contract at `wit/plugin.wit`, where a tool runs.
pub(super) fn stage_with_contract(prefix: &str) -> Result<tempfile::TempDir, BuildError> {
    let stage = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(io_err(
            "cannot create a temporary directory in",
            &std::env::temp_dir(),
        ))?;
    write(&stage.path().join("wit/plugin.wit"), assets::WIT)?;
    Ok(stage)
}

/// Stage what Python's world needs beside the contract (`http.wit` and the WASI packages in
/// `wit/deps`) and return componentize-py's arguments choosing it. Two interfaces are called
/// `types` (the contract's and wasi:http's), so their modules are named.
pub(super) fn stage_python_world(stage: &Path) -> Result<[&'static str; 6], BuildError> {
    write(&stage.join("wit/http.wit"), assets::WIT_HTTP)?;
    for (name, text) in assets::WASI_DEPS {
        write(&stage.join("wit/deps").join(name), text)?;
    }
    Ok([
        "-w",
        assets::WORLD_HTTP,
        "--import-interface-name",
        "hubwasm:plugin/types@0.2.0=types",
        "--import-interface-name",
        "wasi:http/types@0.2.12=http_types",
    ])
}

pub(super) fn write(path: &Path, text: &str) -> Result<(), BuildError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err("cannot create", parent))?;
    }
    std::fs::write(path, text).map_err(io_err("cannot write", path))
}

/// Copy through a temporary file in the destination's directory, then rename: readers never
/// see half a component.
fn copy_atomically(from: &Path, to: &Path) -> Result<(), BuildError> {
    let parent = to
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(parent).map_err(io_err("cannot write in", parent))?;
    std::fs::copy(from, tmp.path()).map_err(io_err("cannot copy", from))?;
    tmp.persist(to).map_err(|e| BuildError::Io {
        what: "cannot write",
        path: to.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// The project's files (relative paths, sorted), outside build output and dependencies.
pub fn project_files(dir: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let mut files = Vec::new();
    let mut bytes = 0u64;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let here = dir.join(&rel);
        let entries = std::fs::read_dir(&here).map_err(io_err("cannot read", &here))?;
        for entry in entries {
            let entry = entry.map_err(io_err("cannot read", &here))?;
            let name = entry.file_name();
            let name_str = name.to_string_lossy();
            let kind = entry
                .file_type()
                .map_err(io_err("cannot read", &entry.path()))?;
            if kind.is_dir() {
                if !SKIPPED_DIRS.contains(&name_str.as_ref()) && !name_str.starts_with('.') {
                    stack.push(rel.join(&name));
                }
            } else if kind.is_file() && !name_str.ends_with(".wasm") {
                bytes = bytes.saturating_add(entry.metadata().map(|m| m.len()).unwrap_or(0));
                files.push(rel.join(&name));
                if files.len() > MAX_PROJECT_FILES || bytes > MAX_PROJECT_BYTES {
                    return Err(BuildError::TooLarge {
                        dir: dir.to_path_buf(),
                    });
                }
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The content key of a build: everything that goes into the component.
fn cache_key(
    lang: Lang,
    tool_version: &str,
    dir: &Path,
    files: &[PathBuf],
) -> Result<String, BuildError> {
    let mut hash = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    field(b"hubwasm plugin build 2"); // 2: Python with wasi:http, JS with fetch
    field(lang.to_string().as_bytes());
    field(tool_version.as_bytes());
    field(assets::WIT.as_bytes());
    field(assets::WIT_HTTP.as_bytes());
    field(match lang {
        Lang::Python => assets::PYTHON_LIB.as_bytes(),
        _ => assets::JS_LIB.as_bytes(),
    });
    for file in files {
        field(file.to_string_lossy().as_bytes());
        let path = dir.join(file);
        field(&std::fs::read(&path).map_err(io_err("cannot read", &path))?);
    }
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The end of a tool's output: enough to see the error (a Python traceback, a JS stack).
fn tool_output(stdout: &[u8], stderr: &[u8]) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(stdout),
        String::from_utf8_lossy(stderr)
    );
    // componentize-py appends its own Rust backtrace to a Python error: keep what precedes it.
    let text = text.split("\nStack backtrace:").next().unwrap_or("");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(40);
    lines[start..].join("\n")
}

fn build_rust(dir: &Path, out: &Path, progress: &mut impl FnMut(&str)) -> Result<(), BuildError> {
    let tool = toolchain::find(Lang::Rust)?;
    if !toolchain::rust_target_installed() {
        return Err(BuildError::RustTargetMissing);
    }
    progress(&format!(
        "building the rust plugin in {} with cargo (wasm32-wasip2, release)",
        dir.display()
    ));
    let output = Command::new(&tool.path)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .args([
            "--message-format",
            "json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(dir.join("Cargo.toml"))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(io_err("cannot run", &tool.path))?;
    if !output.status.success() {
        return Err(BuildError::ToolFailed {
            tool: "cargo",
            dir: dir.to_path_buf(),
            status: output.status.to_string(),
            output: "(cargo's messages are above)".into(),
        });
    }
    let manifest = dir
        .join("Cargo.toml")
        .canonicalize()
        .map_err(io_err("cannot read", &dir.join("Cargo.toml")))?;
    // The project's own cdylib: the last artifact of the package whose manifest this is.
    let wasm = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| m["manifest_path"].as_str().map(Path::new) == Some(manifest.as_path()))
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
                .collect::<Vec<_>>()
        })
        .rfind(|f| f.extension().is_some_and(|e| e == "wasm"))
        .ok_or_else(|| BuildError::NoArtifact {
            dir: dir.to_path_buf(),
        })?;
    copy_atomically(&wasm, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_follows_the_sources_and_skips_build_output() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.py"), "x = 1\n").unwrap();
        std::fs::create_dir_all(dir.path().join("__pycache__")).unwrap();
        std::fs::write(dir.path().join("__pycache__/app.pyc"), "junk").unwrap();
        std::fs::write(dir.path().join("old.wasm"), "junk").unwrap();
        std::fs::create_dir_all(dir.path().join("lib")).unwrap();
        std::fs::write(dir.path().join("lib/util.py"), "y = 2\n").unwrap();
        let files = project_files(dir.path()).unwrap();
        assert_eq!(
            files,
            vec![PathBuf::from("app.py"), PathBuf::from("lib/util.py")]
        );
        let key = |dir: &Path| {
            let files = project_files(dir).unwrap();
            cache_key(Lang::Python, "componentize-py 0.25.1", dir, &files).unwrap()
        };
        let first = key(dir.path());
        assert_eq!(first, key(dir.path()), "the same sources, the same key");
        std::fs::write(dir.path().join("__pycache__/app.pyc"), "other junk").unwrap();
        assert_eq!(first, key(dir.path()), "build output is not a source");
        std::fs::write(dir.path().join("lib/util.py"), "y = 3\n").unwrap();
        assert_ne!(first, key(dir.path()), "an edited source builds anew");
    }

    #[test]
    fn a_directory_without_a_project_says_what_it_expects() {
        let dir = tempfile::tempdir().unwrap();
        let options = BuildOptions {
            dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        let err = build(&options, |_| {}).unwrap_err().to_string();
        assert!(
            err.contains("not a plugin project") && err.contains("app.py"),
            "{err}"
        );
    }

    #[test]
    fn tool_output_keeps_the_python_error_and_drops_the_backtrace() {
        let out = tool_output(
            b"",
            b"Traceback (most recent call last):\n  File \"app.py\", line 3\nNameError: x\n\nStack backtrace:\n 0: foo\n",
        );
        assert!(out.ends_with("NameError: x"), "{out}");
    }
}
