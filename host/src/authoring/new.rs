//! `hubwasm plugin new`: a plugin project that builds and passes `plugin test` as generated.

use std::path::{Path, PathBuf};

use super::{assets, build::BuildError, wasm_name, Lang};

/// What was made.
#[derive(Debug, Clone)]
pub struct Scaffold {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum NewError {
    #[error(
        "plugin name `{0}` is invalid: use 1 to 64 ASCII letters, digits, `-` or `_`, starting \
         with a letter"
    )]
    BadName(String),
    #[error("{0} already exists; choose another name or remove it")]
    Exists(PathBuf),
    #[error(transparent)]
    Io(#[from] BuildError),
}

/// Make the project `name` in `parent`.
pub fn new(lang: Lang, name: &str, parent: &Path) -> Result<Scaffold, NewError> {
    let valid = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(NewError::BadName(name.to_string()));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(NewError::Exists(dir));
    }
    let wasm = format!("{}.wasm", name.replace('-', "_"));
    let type_name: String = name
        .split(['-', '_'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{wasm}}", &wasm)
            .replace("{{type}}", &type_name)
    };
    let (language, source, library, verdicts, types) = match lang {
        Lang::Python => (
            "Python",
            "app.py",
            "`hubwasm/__init__.py`",
            "`raise hubwasm.Retry(...)` for a transient failure (retried with backoff), \
             `raise hubwasm.Reject(...)` for a poison event (dead-lettered)",
            "- `typings/`: editor stubs generated from the contract (pyright and Pylance read \
             them as they are; `MYPYPATH=typings mypy --strict app.py` checks the handler). \
             `hubwasm plugin types` writes them again after an upgrade.\n",
        ),
        Lang::Js => (
            "JavaScript",
            "app.js",
            "`hubwasm/index.js` (types in `hubwasm/index.d.ts`)",
            "`throw new Retry(...)` for a transient failure (retried with backoff), \
             `throw new Reject(...)` for a poison event (dead-lettered)",
            "- `hubwasm/types/`: TypeScript declarations generated from the contract; with \
             `jsconfig.json` editors check the handler as you type (`tsc -p jsconfig.json` on \
             the command line). `hubwasm plugin types` writes them again after an upgrade.\n",
        ),
        Lang::Rust => (
            "Rust",
            "src/lib.rs",
            "`hubwasm-guest/` (with the contract in `hubwasm-guest/wit/`)",
            "`Err(retry(..))` for a transient failure (retried with backoff), `Err(reject(..))` \
             for a poison event (dead-lettered)",
            "",
        ),
    };
    let readme = fill(assets::templates::README)
        .replace("{{language}}", language)
        .replace("{{source}}", source)
        .replace("{{library}}", library)
        .replace("{{verdicts}}", verdicts)
        .replace("{{types}}", types);
    let mut files: Vec<(String, String)> = vec![
        ("README.md".into(), readme),
        ("events/sample.jsonl".into(), assets::SAMPLE_EVENTS.into()),
    ];
    match lang {
        Lang::Python => {
            files.push(("app.py".into(), fill(assets::templates::PYTHON_APP)));
            files.push(("hubwasm/__init__.py".into(), assets::PYTHON_LIB.into()));
            for (path, text) in assets::PYTHON_TYPES {
                files.push((format!("typings/{path}"), (*text).into()));
            }
            files.push((
                ".gitignore".into(),
                "*.wasm\n__pycache__/\nbindings/\n".into(),
            ));
        }
        Lang::Js => {
            files.push(("app.js".into(), fill(assets::templates::JS_APP)));
            files.push(("hubwasm/index.js".into(), assets::JS_LIB.into()));
            files.push(("hubwasm/index.d.ts".into(), assets::JS_LIB_TYPES.into()));
            for (path, text) in assets::JS_TYPES {
                files.push((format!("hubwasm/types/{path}"), (*text).into()));
            }
            files.push(("jsconfig.json".into(), JSCONFIG.into()));
            files.push((".gitignore".into(), "*.wasm\n".into()));
        }
        Lang::Rust => {
            files.push(("src/lib.rs".into(), fill(assets::templates::RUST_LIB)));
            files.push(("Cargo.toml".into(), rust_manifest(name)));
            files.push((
                "hubwasm-guest/Cargo.toml".into(),
                format!(
                    "[package]\nname = \"hubwasm-guest\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\nwit-bindgen = \"{}\"\n",
                    assets::WIT_BINDGEN
                ),
            ));
            for (path, text) in assets::RUST_GUEST {
                files.push((format!("hubwasm-guest/{path}"), (*text).into()));
            }
            files.push((
                "hubwasm-guest/wit/plugin.wit".into(),
                assets::WIT_RUST.into(),
            ));
            files.push((".gitignore".into(), "target/\n*.wasm\n".into()));
        }
    }
    let mut written = Vec::new();
    for (path, text) in files {
        let to = dir.join(&path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|source| BuildError::Io {
                what: "cannot create",
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&to, text).map_err(|source| BuildError::Io {
            what: "cannot write",
            path: to.clone(),
            source,
        })?;
        written.push(PathBuf::from(path));
    }
    debug_assert_eq!(wasm_name(&dir), wasm);
    Ok(Scaffold {
        dir,
        files: written,
    })
}

/// Type checking for editors and `tsc -p jsconfig.json`: the handler against the library's
/// declarations (not the library's own JavaScript).
const JSCONFIG: &str = r#"{
  "compilerOptions": {
    "checkJs": true,
    "strict": true,
    "noEmit": true,
    "module": "es2022",
    "moduleResolution": "bundler",
    "target": "es2022"
  },
  "include": ["*.js", "hubwasm/index.d.ts"]
}
"#;

fn rust_manifest(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
hubwasm-guest = {{ path = "hubwasm-guest" }}
serde_json = "1"

# A workspace of its own, so the project builds wherever it is put.
[workspace]

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
# Keep function names so the host's trap backtraces are readable.
strip = "none"
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_projects_not_overwritten() {
        let parent = tempfile::tempdir().unwrap();
        for bad in ["", "9lives", "a/b", "../x", "a b", &"x".repeat(65)] {
            assert!(
                matches!(
                    new(Lang::Python, bad, parent.path()),
                    Err(NewError::BadName(_))
                ),
                "{bad:?}"
            );
        }
        let made = new(Lang::Js, "my-filter", parent.path()).unwrap();
        assert!(made.dir.join("app.js").is_file());
        assert!(made.dir.join("hubwasm/index.js").is_file());
        let again = new(Lang::Js, "my-filter", parent.path()).unwrap_err();
        assert!(again.to_string().contains("already exists"), "{again}");
    }

    #[test]
    fn a_rust_scaffold_vendors_the_guest_crate_with_its_contract() {
        let parent = tempfile::tempdir().unwrap();
        let made = new(Lang::Rust, "count_things", parent.path()).unwrap();
        let lib = std::fs::read_to_string(made.dir.join("src/lib.rs")).unwrap();
        assert!(
            lib.contains("struct CountThings") && !lib.contains("{{"),
            "{lib}"
        );
        let guest = std::fs::read_to_string(made.dir.join("hubwasm-guest/src/lib.rs")).unwrap();
        assert!(guest.contains("path: \"wit\""));
        assert_eq!(
            std::fs::read_to_string(made.dir.join("hubwasm-guest/wit/plugin.wit")).unwrap(),
            assets::WIT_RUST
        );
    }
}
