//! Recognising what a file is: not wasm, a core module, a component of the wrong world or contract
//! version, or a hubwasm plugin (and which world).

use std::path::Path;

use wasmtime::component::Component;
use wasmtime::Engine;

use super::contract::CONTRACT_VERSIONS;
use super::error::LoadError;

pub use super::contract::PluginKind;

/// What `hubwasm plugin inspect` reports.
#[derive(Debug, Clone)]
pub struct ComponentInfo {
    pub kind: PluginKind,
    /// `hubwasm:plugin@<version>` the component was built against.
    pub contract_version: String,
    /// Import names (interfaces), sorted.
    pub imports: Vec<String>,
    /// Export names (interfaces), sorted.
    pub exports: Vec<String>,
}

const PACKAGE: &str = "hubwasm:plugin/";

pub(crate) fn export_name(interface: &str, version: &str) -> String {
    format!("{PACKAGE}{interface}@{version}")
}

/// Refuse anything that is not a component before spending time compiling it.
pub fn check_header(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        // What the file holds is not quoted: a caller could name a secret to read it back.
        let found = if bytes.is_empty() {
            "the file is empty".to_string()
        } else {
            format!(
                "{} bytes that do not start with the WebAssembly magic `\\0asm`",
                bytes.len()
            )
        };
        return Err(LoadError::NotWasm {
            path: path.to_path_buf(),
            found,
        });
    }
    // Bytes 4..8: version and layer. Core modules are version 1 layer 0; components layer 1.
    match (bytes[6], bytes[7]) {
        (0, 0) => Err(LoadError::CoreModule {
            path: path.to_path_buf(),
        }),
        (1, 0) => Ok(()),
        _ => Err(LoadError::NotWasm {
            path: path.to_path_buf(),
            found: format!(
                "an unknown WebAssembly layer {:02x}{:02x}",
                bytes[6], bytes[7]
            ),
        }),
    }
}

/// Decide which plugin world a compiled component implements.
pub(crate) fn describe(
    path: &Path,
    engine: &Engine,
    component: &Component,
) -> Result<ComponentInfo, LoadError> {
    let ty = component.component_type();
    let mut imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
    let mut exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    imports.sort();
    exports.sort();

    // The newest version whose lifecycle and a handler the component exports.
    let found = CONTRACT_VERSIONS.iter().rev().find_map(|version| {
        let has = |iface: &str| exports.iter().any(|e| *e == export_name(iface, version));
        let kind = if has("batch-handler") {
            PluginKind::Batch
        } else if has("event-handler") {
            PluginKind::Event
        } else {
            return None;
        };
        has("lifecycle").then_some((kind, *version))
    });
    match found {
        Some((kind, version)) => Ok(ComponentInfo {
            kind,
            contract_version: version.to_string(),
            imports,
            exports,
        }),
        _ => {
            // Our package at another version means a contract mismatch, not a foreign component.
            let other_version = exports
                .iter()
                .chain(imports.iter())
                .filter_map(|e| e.strip_prefix(PACKAGE))
                .filter_map(|rest| rest.split_once('@').map(|(_, v)| v))
                .find(|v| !CONTRACT_VERSIONS.contains(v));
            match other_version {
                Some(found) => Err(LoadError::WrongContractVersion {
                    path: path.to_path_buf(),
                    expected: CONTRACT_VERSIONS.join(" and "),
                    found: found.to_string(),
                }),
                None => Err(LoadError::WrongWorld {
                    path: path.to_path_buf(),
                    found: if exports.is_empty() {
                        "none".to_string()
                    } else {
                        exports.join(", ")
                    },
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_check_names_what_the_file_is() {
        let p = Path::new("x.wasm");
        let err = check_header(p, b"hello world").unwrap_err();
        assert!(matches!(err, LoadError::NotWasm { .. }), "{err}");
        assert!(
            err.to_string().contains("is not a WebAssembly file"),
            "{err}"
        );
        let err = check_header(p, b"").unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        let core = [0, b'a', b's', b'm', 1, 0, 0, 0];
        assert!(matches!(
            check_header(p, &core),
            Err(LoadError::CoreModule { .. })
        ));
        let component = [0, b'a', b's', b'm', 0x0d, 0, 1, 0];
        assert!(check_header(p, &component).is_ok());
    }
}
