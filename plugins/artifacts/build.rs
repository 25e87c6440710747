//! Builds the guest workspace `plugins/` for wasm32-wasip2 with a nested cargo, then writes one
//! path constant per plugin crate.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let plugins = manifest_dir.parent().unwrap().to_path_buf();
    let wit = plugins.parent().unwrap().join("wit");
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());

    // Share one wasm build between debug and release host builds:
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    let target_dir = env::var_os("HUBWASM_PLUGINS_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            out_dir
                .ancestors()
                .nth(4)
                .expect("OUT_DIR has the usual layout")
                .join("wasm-plugins")
        });
    println!("cargo:rerun-if-env-changed=HUBWASM_PLUGINS_TARGET_DIR");
    watch(&wit);
    println!(
        "cargo:rerun-if-changed={}",
        plugins.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        plugins.join("Cargo.lock").display()
    );

    let crates = plugin_crates(&plugins);
    for krate in &crates {
        watch(&plugins.join(krate));
    }

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--manifest-path",
    ])
    .arg(plugins.join("Cargo.toml"))
    .arg("--target-dir")
    .arg(&target_dir);
    // The outer build's settings must not leak into the nested wasm build.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        let leak = matches!(
            key.as_ref(),
            "CARGO_ENCODED_RUSTFLAGS"
                | "RUSTFLAGS"
                | "CARGO_TARGET_DIR"
                | "CARGO_BUILD_TARGET"
                | "RUSTC_WRAPPER"
                | "RUSTC_WORKSPACE_WRAPPER"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "OUT_DIR"
                | "TARGET"
                | "HOST"
                | "PROFILE"
                | "OPT_LEVEL"
                | "DEBUG"
                | "NUM_JOBS"
                | "RUSTC_LINKER"
        ) || key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_CFG_")
            || key.starts_with("DEP_");
        if leak {
            cmd.env_remove(key.as_ref());
        }
    }
    let output = cmd.output().expect("run cargo to build the plugins");
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("wasm32-wasip2")
            && stderr.contains("target may not be installed")
        {
            "\nthe wasm32-wasip2 target is missing: run `rustup target add wasm32-wasip2` (or scripts/setup.sh)"
        } else {
            ""
        };
        panic!(
            "building the plugins in {} failed:{hint}\n{stderr}",
            plugins.display()
        );
    }

    let built = target_dir.join("wasm32-wasip2").join("release");
    let mut consts = String::new();
    let mut all = String::from(
        "/// Every plugin: (crate name, path).\npub const ALL: &[(&str, &str)] = &[\n",
    );
    for krate in &crates {
        let file = built.join(format!("{}.wasm", krate.replace('-', "_")));
        assert!(
            file.exists(),
            "plugin {krate} was not built: {} is missing",
            file.display()
        );
        let name = krate.replace('-', "_").to_uppercase();
        consts.push_str(&format!(
            "/// `plugins/{krate}` built for wasm32-wasip2.\npub const {name}: &str = {:?};\n",
            file.display().to_string()
        ));
        all.push_str(&format!("    ({krate:?}, {name}),\n"));
    }
    all.push_str("];\n");
    fs::write(out_dir.join("plugins.rs"), consts + &all).unwrap();
}

/// Plugin crates: members of the guest workspace with a `cdylib` target.
fn plugin_crates(plugins: &Path) -> Vec<String> {
    let mut crates: Vec<String> = fs::read_dir(plugins)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let manifest = e.path().join("Cargo.toml");
            fs::read_to_string(manifest).is_ok_and(|m| m.contains("cdylib"))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    crates.sort();
    crates
}

/// Rebuild when anything under `dir` changes (skipping build output).
fn watch(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                watch(&path);
            }
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
