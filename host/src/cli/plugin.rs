//! `hubwasm plugin ...`: new, build, types, inspect, test, push, swap, rollback.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use super::args::*;
use crate::plugin::{Limits, PluginSpec, Runtime, RuntimeOptions, CONTRACT_VERSIONS};
use crate::replay::{self, ReplayOptions};

pub(super) fn plugin_new(args: NewArgs) -> anyhow::Result<ExitCode> {
    let made = crate::authoring::new::new(args.lang, &args.name, &args.parent)?;
    println!(
        "made the {} plugin project {}:",
        args.lang,
        made.dir.display()
    );
    // Generated editor types are many small files: one line for their directory.
    let mut shown = std::collections::BTreeSet::new();
    for file in &made.files {
        let generated = ["typings", "hubwasm/types"]
            .into_iter()
            .find(|dir| file.starts_with(dir));
        match generated {
            Some(dir) if shown.insert(dir) => {
                let n = made.files.iter().filter(|f| f.starts_with(dir)).count();
                println!("  {dir}/ ({n} files of editor types, from the contract)");
            }
            Some(_) => {}
            None => println!("  {}", file.display()),
        }
    }
    let wasm = crate::authoring::wasm_name(&made.dir);
    println!(
        "next:\n  cd {}\n  hubwasm plugin build .\n  hubwasm plugin test {wasm} --events events/sample.jsonl",
        made.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A file of ours the CLI sends (a host or registry then applies its own bound).
fn read_to_send(path: &std::path::Path, bound: crate::files::Bound) -> anyhow::Result<Vec<u8>> {
    crate::files::read(path, bound).with_context(|| format!("cannot send {}", path.display()))
}

/// The largest component the CLI sends (1 GiB: the largest bound a host may set).
fn component_to_send() -> crate::files::Bound {
    crate::files::Bound::component(crate::files::DEFAULT_MAX_COMPONENT_BYTES << 4)
}

pub(super) async fn plugin_push(args: PushArgs) -> anyhow::Result<ExitCode> {
    let reference = crate::registry::OciRef::parse(&args.reference)?;
    let bytes = read_to_send(&args.wasm, component_to_send())?;
    // Refuse what no host would run, before it reaches the registry.
    crate::plugin::check_header(&args.wasm, &bytes)?;
    let mut credentials = std::collections::HashMap::new();
    if let (Ok(user), Ok(password)) = (
        std::env::var("HUBWASM_REGISTRY_USERNAME"),
        std::env::var("HUBWASM_REGISTRY_PASSWORD"),
    ) {
        credentials.insert(reference.registry().to_string(), (user, password));
    }
    let pinned = crate::registry::Registries::new(credentials, None)
        .push(&reference, &bytes)
        .await?;
    println!(
        "pushed {} ({} bytes) as {pinned}",
        args.wasm.display(),
        bytes.len()
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn plugin_swap(args: SwapArgs) -> anyhow::Result<ExitCode> {
    if let Some(reference) = crate::registry::as_reference(&args.wasm) {
        // A registry reference: the host pulls it and pins it to its digest.
        let body = serde_json::to_string(&crate::admin::SwapRequest {
            plugin: reference.to_string(),
            consumer_group: args.target.consumer_group.clone(),
            replay: None,
        })?;
        if args.replay.is_some() {
            anyhow::bail!("--replay goes with a component file, not a registry reference");
        }
        return admin_change(
            &args.target,
            "swap",
            body.as_bytes(),
            Some("application/json"),
        )
        .await;
    }
    // The component travels as bytes: the host never reads a path of ours.
    let wasm = read_to_send(&args.wasm, component_to_send())?;
    let name = args
        .wasm
        .file_stem()
        .map_or("plugin".into(), |s| s.to_string_lossy().into_owned());
    let file_name = format!("{name}.wasm");
    let (body, content_type) = match &args.replay {
        Some(replay) => {
            let events = read_to_send(
                replay,
                crate::files::Bound::events(crate::files::DEFAULT_MAX_EVENTS_BYTES << 6),
            )?;
            crate::admin::client::multipart(&[
                ("plugin", &file_name, &wasm),
                ("replay", "replay.jsonl", &events),
            ])
        }
        None => (wasm, "application/wasm".to_string()),
    };
    let mut query = format!("name={}", percent_encode(&name));
    if let Some(group) = &args.target.consumer_group {
        query.push_str(&format!("&consumer_group={}", percent_encode(group)));
    }
    admin_change(
        &args.target,
        &format!("swap?{query}"),
        &body,
        Some(&content_type),
    )
    .await
}

pub(super) async fn plugin_rollback(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let body = serde_json::to_string(&crate::admin::RollbackRequest {
        consumer_group: args.target.consumer_group.clone(),
    })?;
    admin_change(
        &args.target,
        "rollback",
        body.as_bytes(),
        Some("application/json"),
    )
    .await
}

/// POST a change (`swap`, `rollback`) for the target's event hub to the admin API with the
/// token from its `token_env`; print the swap it made.
async fn admin_change(
    target: &AdminTarget,
    action: &str,
    body: &[u8],
    content_type: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let AdminTarget {
        admin,
        event_hub,
        token_env,
        ..
    } = target;
    let path = format!("/v1/event-hubs/{}/{action}", percent_encode(event_hub));
    let token = std::env::var(token_env).ok().filter(|t| !t.is_empty());
    if token.is_none() {
        anyhow::bail!(
            "${token_env} is not set: changes need the host's admin token in it (or name another \
             variable with --token-env)"
        );
    }
    let answer = crate::admin::client::send(
        admin,
        "POST",
        &path,
        body,
        content_type,
        token.as_deref(),
        Duration::from_secs(300),
    )
    .await?;
    if answer.status == 200 {
        let record: crate::host::SwapRecord = serde_json::from_str(&answer.body)?;
        let short = |d: &str| d[..d.len().min(12)].to_string();
        println!(
            "{} on event hub {event_hub}: {} ({}) -> {} ({}); partitions switch at their next batch",
            record.reason,
            record.from.name,
            short(&record.from.digest),
            record.to.name,
            short(&record.to.digest),
        );
        return Ok(ExitCode::SUCCESS);
    }
    let message = serde_json::from_str::<crate::admin::ErrorBody>(&answer.body)
        .map(|e| e.error)
        .unwrap_or(answer.body);
    eprintln!("error: refused (HTTP {}): {message}", answer.status);
    Ok(ExitCode::FAILURE)
}

/// An event hub name as one path segment.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(super) fn plugin_types(args: TypesArgs) -> anyhow::Result<ExitCode> {
    use crate::authoring::{types, Lang};
    let lang = match args.lang.or_else(|| Lang::detect(&args.dir)) {
        Some(Lang::Rust) => anyhow::bail!(
            "Rust plugins need no generated types: wit-bindgen binds the contract as they compile"
        ),
        Some(lang) => lang,
        None => anyhow::bail!(
            "{}: not a Python or JavaScript plugin project (no app.py or app.js); give --lang",
            args.dir.display()
        ),
    };
    let out = args
        .out
        .unwrap_or_else(|| args.dir.join(types::default_dir(lang).unwrap_or(".")));
    let files = types::generate(lang, &out)?;
    println!(
        "wrote {} {lang} type files to {}",
        files.len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn plugin_build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let options = crate::authoring::build::BuildOptions {
        dir: args.dir,
        out: args.out,
        cache_dir: args.cache_dir,
        no_cache: args.no_cache,
    };
    let built = crate::authoring::build::build(&options, |line| eprintln!("hubwasm: {line}"))?;
    println!(
        "built {} ({} plugin, {:.1} MB{}) in {:.1} s",
        built.wasm.display(),
        built.lang,
        built.bytes as f64 / 1e6,
        if built.from_cache {
            ", from the build cache"
        } else {
            ""
        },
        built.took.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// The shipped example configs name the sample plugin as `json_filter.wasm` beside them; where
/// no such file is there, the built sample plugin is used (as `hubwasm run` does without a
/// config), so the examples run as shipped.
pub(super) fn inspect(wasm: PathBuf, cache: CacheArgs) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: cache.dir(),
        ..RuntimeOptions::default()
    })?;
    let info = runtime.inspect(&wasm)?;
    println!("file:     {}", wasm.display());
    println!(
        "world:    hubwasm:plugin/{}@{}",
        info.kind.world(),
        info.contract_version
    );
    println!(
        "contract: hubwasm:plugin@{} (this host speaks {})",
        info.contract_version,
        CONTRACT_VERSIONS.join(" and ")
    );
    println!("imports:");
    for import in &info.imports {
        println!("  {import}");
    }
    println!("exports:");
    for export in &info.exports {
        println!("  {export}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The most bytes of events `hubwasm plugin test` reads (1 GiB).
const PLUGIN_TEST_MAX_EVENTS_BYTES: u64 = 1 << 30;

pub(super) async fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: args.cache.dir(),
        fuel: args.fuel.is_some(),
        max_memory_bytes: (args.memory_mib << 20).max(RuntimeOptions::default().max_memory_bytes),
        ..RuntimeOptions::default()
    })?;
    let mut plugin = PluginSpec::new(&args.wasm);
    plugin.config = args.config;
    plugin.allowed_outbound_hosts = args.allowed_outbound_hosts;
    plugin.limits = Limits {
        memory_bytes: args.memory_mib << 20,
        timeout: Duration::from_millis(args.timeout_ms),
        fuel: args.fuel,
    };
    let options = ReplayOptions {
        plugin,
        // `plugin test` reads the caller's own files: bounded, but generously.
        events: replay::EventsSource::Path(args.events, PLUGIN_TEST_MAX_EVENTS_BYTES),
        batch_size: args.batch as usize,
        quiet: args.quiet,
        outputs: args.outputs,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout);
    let summary = replay::replay(&runtime, &options, &mut out)
        .await
        .with_context(|| format!("replay of {} failed", options.plugin.path.display()))?;
    use std::io::Write as _;
    writeln!(out, "{summary}")?;
    out.flush()?;
    Ok(if summary.failures() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
