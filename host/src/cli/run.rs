//! `hubwasm run` (with its one embedded default), `status`, `send` and `hub serve`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::args::*;
use crate::plugin::RuntimeOptions;

fn use_built_sample_plugin(config: &mut crate::config::RunConfig) {
    let is_missing_sample =
        |p: &std::path::Path| p.file_name().is_some_and(|n| n == "json_filter.wasm") && !p.exists();
    let places = sample_plugin_places(|name| std::env::var_os(name));
    let Some(found) = places.iter().find(|p| p.is_file()) else {
        return;
    };
    let mut replaced = false;
    for path in config
        .plugins
        .iter_mut()
        .map(|p| &mut p.path)
        .chain(config.event_hubs.iter_mut().map(|h| &mut h.plugin))
    {
        if is_missing_sample(path) {
            *path = found.clone();
            replaced = true;
        }
    }
    if replaced {
        eprintln!(
            "hubwasm: json_filter.wasm is not beside the config: running the built sample plugin {}",
            found.display()
        );
    }
}

/// The config `hubwasm run` uses without --config.
fn default_config(args: &RunArgs) -> anyhow::Result<crate::config::RunConfig> {
    let plugin = match &args.plugin {
        Some(plugin) => plugin.clone(),
        None => {
            let places = sample_plugin_places(|name| std::env::var_os(name));
            let found = places.iter().find(|p| p.is_file()).cloned();
            let Some(found) = found else {
                let looked: Vec<String> = places.iter().map(|p| p.display().to_string()).collect();
                anyhow::bail!(
                    "no --plugin given and the sample plugin json_filter.wasm is not built; \
                     run scripts/build-plugins.sh, or give --plugin PATH (or --config FILE). \
                     Looked in: {}",
                    looked.join(", ")
                );
            };
            eprintln!(
                "hubwasm: no --plugin given: running the sample plugin {}",
                found.display()
            );
            found
        }
    };
    let mut text = String::from(
        "[embedded]\ndata = \".hubwasm/hub\"\n\n[checkpoints]\nstore = \"local\"\npath = \".hubwasm/checkpoints\"\n\n",
    );
    text.push_str(&format!(
        "[[eventhub]]\nname = \"events\"\nembedded = true\nplugin = {}\n",
        toml_string(&plugin.display().to_string())
    ));
    text.push_str("[eventhub.balancing]\nstrategy = \"greedy\"\nupdate_interval_ms = 1000\nownership_expiry_ms = 3000\n");
    if !args.plugin_config.is_empty() {
        text.push_str("[eventhub.plugin_config]\n");
        for (k, v) in &args.plugin_config {
            text.push_str(&format!("{} = {}\n", toml_string(k), toml_string(v)));
        }
    }
    Ok(crate::config::RunConfig::parse(
        &text,
        std::path::Path::new("(embedded default)"),
    )?)
}

/// Where `hubwasm run` without --plugin looks for the sample plugin (json-filter), in order:
/// `HUBWASM_SAMPLE_PLUGIN`, where scripts/build-plugins.sh builds it (`HUBWASM_PLUGINS_TARGET_DIR`,
/// `CARGO_TARGET_DIR/wasm-plugins`, `~/.cache/hubwasm/target/wasm-plugins`), and beside the binary.
fn sample_plugin_places(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Vec<PathBuf> {
    const BUILT: &str = "wasm32-wasip2/release/json_filter.wasm";
    let mut places = Vec::new();
    if let Some(path) = var("HUBWASM_SAMPLE_PLUGIN") {
        // Chosen explicitly: the only place.
        return vec![PathBuf::from(path)];
    }
    if let Some(dir) = var("HUBWASM_PLUGINS_TARGET_DIR") {
        places.push(PathBuf::from(dir).join(BUILT));
    }
    if let Some(dir) = var("CARGO_TARGET_DIR") {
        places.push(PathBuf::from(dir).join("wasm-plugins").join(BUILT));
    }
    if let Some(home) = var("HOME") {
        places.push(
            PathBuf::from(home)
                .join(".cache/hubwasm/target/wasm-plugins")
                .join(BUILT),
        );
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.to_path_buf()))
    {
        places.push(dir.join("json_filter.wasm"));
    }
    places
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub(super) async fn run_host(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => {
            let mut config = crate::config::RunConfig::load(path)?;
            use_built_sample_plugin(&mut config);
            config
        }
        None => default_config(&args)?,
    };
    let options = crate::host::RunOptions {
        exit_when_idle: args.exit_when_idle.map(Duration::from_secs_f64),
        instance_id: args.instance_id.clone(),
        send: args.send.clone(),
        runtime: RuntimeOptions {
            cache_dir: args.cache.dir(),
            max_component_bytes: config.max_component_bytes(),
            ..RuntimeOptions::default()
        },
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop_tx.send(true);
        // A second signal while stopping: leave at once.
        wait_for_signal().await;
        eprintln!("hubwasm: second signal, exiting without waiting");
        std::process::exit(130);
    });
    let report = |line: &str| {
        println!("hubwasm: {line}");
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    };
    let mut report = report;
    let mut admin = config.admin.clone();
    if let Some(listen) = args.admin {
        admin.get_or_insert_with(Default::default).listen = listen;
    }
    let mut tenant_tokens = Vec::new();
    for tenant in &config.tenants {
        let Some(var) = &tenant.admin_token_env else {
            continue;
        };
        match std::env::var(var).ok().filter(|t| !t.is_empty()) {
            Some(token) => tenant_tokens.push((tenant.name.clone(), token)),
            None if admin.is_some() => report(&format!(
                "tenant {}: ${var} is not set, so the tenant has no admin token",
                tenant.name
            )),
            None => {}
        }
    }
    if let Some(admin) = &admin {
        // One token, one caller: a tenant token equal to another's would be ambiguous.
        let operator = std::env::var(&admin.token_env).ok();
        for (i, (name, t)) in tenant_tokens.iter().enumerate() {
            if operator.as_deref() == Some(t.as_str())
                || tenant_tokens[..i].iter().any(|(_, other)| other == t)
            {
                anyhow::bail!(
                    "tenant {name}'s admin token is the same as another token (the operator's \
                     or another tenant's): give each its own"
                );
            }
        }
    }
    let host = crate::host::Host::start(config, options, &mut report).await?;
    if let Some(admin) = admin {
        let token = std::env::var(&admin.token_env)
            .ok()
            .filter(|t| !t.is_empty());
        let read_only = token.is_none() && tenant_tokens.is_empty();
        let server = crate::admin::serve(
            crate::admin::AdminOptions {
                listen: admin.listen,
                token,
                tenant_tokens,
                plugin_dirs: admin.plugin_dirs.clone(),
                max_component_bytes: admin.max_component_bytes,
                max_replay_bytes: admin.max_replay_bytes,
                upload_idle_timeout: admin.upload_idle_timeout,
                upload_timeout: admin.upload_timeout,
            },
            host.handle(),
            stop_rx.clone(),
        )
        .await?;
        report(&format!(
            "admin API on http://{}{}",
            server.local_addr,
            if read_only {
                format!(" (read-only: set ${} to allow swaps)", admin.token_env)
            } else {
                String::new()
            }
        ));
    }
    let report = host.wait(stop_rx, &mut report).await?;
    let s = &report.snapshot;
    println!(
        "hubwasm: stopped after {:.1} s: handled {}, failures {}, dead-lettered {}, checkpoints {}",
        report.elapsed.as_secs_f64(),
        s.handled,
        s.failures,
        s.dead_lettered,
        s.checkpoints
    );
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, or SIGTERM on Unix.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub(super) async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    if let Some(addr) = &args.admin {
        let token = std::env::var(&args.token_env)
            .ok()
            .filter(|t| !t.is_empty());
        let path = match &args.tenant {
            Some(name) => format!("/v1/tenants/{name}"),
            None => "/status".to_string(),
        };
        let answer = crate::admin::client::request(
            addr,
            "GET",
            &path,
            None,
            token.as_deref(),
            Duration::from_secs(10),
        )
        .await?;
        if answer.status != 200 {
            anyhow::bail!(
                "{addr}{path} answered HTTP {}: {}",
                answer.status,
                answer.body
            );
        }
        let lines = if args.tenant.is_some() {
            let tenant: crate::admin::TenantStatus = serde_json::from_str(&answer.body)?;
            crate::status::tenant_lines(&tenant)
        } else {
            let status: crate::admin::Status = serde_json::from_str(&answer.body)?;
            crate::status::status_lines(&status)
        };
        for line in lines {
            println!("{line}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let config = match &args.config {
        Some(path) => crate::config::RunConfig::load(path)?,
        None => crate::config::RunConfig::parse(
            "[checkpoints]\nstore = \"local\"\npath = \".hubwasm/checkpoints\"\n[embedded]\ndata = \".hubwasm/hub\"\n[[eventhub]]\nname = \"events\"\nembedded = true\nplugin = \"-\"\n",
            std::path::Path::new("(embedded default)"),
        )?,
    };
    let lines = crate::status::status(&config).await?;
    for line in lines {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn send(args: SendArgs) -> anyhow::Result<ExitCode> {
    let options = crate::send::SendOptions {
        count: args
            .count
            .unwrap_or(if args.file.is_some() { 0 } else { 10 }),
        connection_string: args.connection_string,
        interval: Duration::from_millis(args.interval_ms),
        partition: args.partition,
        partition_key: args.partition_key,
        batch_size: args.batch_size as usize,
        file: args.file,
    };
    let summary = crate::send::send(&options, |line| println!("{line}")).await?;
    println!(
        "sent {} events in {} batches in {:.1} ms",
        summary.sent,
        summary.batches,
        summary.elapsed.as_secs_f64() * 1e3
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => hubwasm_hub::HubConfig::load(path)?,
        None => hubwasm_hub::HubConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(data) = args.data {
        config.data_dir = data;
    }
    let hubs: Vec<String> = config.event_hubs.iter().map(|h| h.name.clone()).collect();
    let data_dir = config.data_dir.clone();
    let hub = hubwasm_hub::start(config).await?;
    println!(
        "hubwasm hub: listening on {} (data in {})",
        hub.local_addr(),
        data_dir.display()
    );
    for name in &hubs {
        println!("{name}: {}", hub.connection_string(name));
    }
    println!("Ctrl-C stops it.");
    use std::io::Write as _;
    std::io::stdout().flush()?;
    tokio::signal::ctrl_c().await?;
    hub.shutdown().await;
    println!("stopped");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_plugin_is_looked_for_where_the_build_script_puts_it() {
        let env = |name: &str| match name {
            "HUBWASM_PLUGINS_TARGET_DIR" => Some("/p".into()),
            "CARGO_TARGET_DIR" => Some("/t".into()),
            "HOME" => Some("/h".into()),
            _ => None,
        };
        let places = sample_plugin_places(env);
        assert_eq!(
            places[..3],
            [
                PathBuf::from("/p/wasm32-wasip2/release/json_filter.wasm"),
                PathBuf::from("/t/wasm-plugins/wasm32-wasip2/release/json_filter.wasm"),
                PathBuf::from(
                    "/h/.cache/hubwasm/target/wasm-plugins/wasm32-wasip2/release/json_filter.wasm"
                ),
            ]
        );
        assert!(places[3].ends_with("json_filter.wasm"), "beside the binary");
        let chosen = sample_plugin_places(|name| {
            (name == "HUBWASM_SAMPLE_PLUGIN").then(|| "/x/mine.wasm".into())
        });
        assert_eq!(chosen, [PathBuf::from("/x/mine.wasm")]);
    }
}
