//! The `hubwasm` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::plugin::{Limits, PluginSpec, Runtime, RuntimeOptions, CONTRACT_VERSIONS};
use crate::replay::{self, ReplayOptions};

/// Consume Azure Event Hubs partitions with sandboxed WebAssembly component plugins.
///
/// A plugin is a WebAssembly component implementing the hubwasm:plugin WIT contract (see wit/),
/// called once per event or once per batch. A partition's checkpoint moves only past events the
/// plugin handled successfully.
#[derive(Debug, Parser)]
#[command(name = "hubwasm", version, propagate_version = true)]
pub struct Cli {
    /// Log filter, e.g. `info`, `debug`, `hubwasm=debug` (also HUBWASM_LOG).
    #[arg(
        long,
        global = true,
        env = "HUBWASM_LOG",
        default_value = "info,azure_messaging_eventhubs=warn,azure_core_amqp=warn,fe2o3_amqp=warn"
    )]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect and test plugins offline.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// The embedded Event Hubs-compatible endpoint.
    #[command(subcommand)]
    Hub(HubCommand),
    /// Send events in the seed's JSON shape (or from a .jsonl file) to an event hub.
    ///
    /// Works against the embedded endpoint (a connection string with UseDevelopmentEmulator=true,
    /// as `hubwasm hub serve` prints) and against Event Hubs. Events go round-robin over the
    /// partitions unless --partition or --partition-key is given.
    Send(SendArgs),
    /// Consume event hubs with a plugin, load-balanced with every other instance that shares
    /// the checkpoint store; checkpoint only past events the plugin handled.
    ///
    /// Without --config: the embedded default. An in-process Event Hubs endpoint (one hub
    /// `events`, 4 partitions, data in .hubwasm/hub), a local checkpoint store
    /// (.hubwasm/checkpoints), dead letters in .hubwasm/dead-letter, and the plugin given by
    /// --plugin, else the sample plugin json-filter (as scripts/build-plugins.sh builds it).
    /// See examples/hubwasm.toml for every setting.
    ///
    /// Checkpoint stores: `[checkpoints] store = "local"` (a directory the processes of one
    /// machine share) or `store = "blob"` (Azure Blob Storage in the official processors'
    /// layout, shareable with them; sas_url, container_url + credential = "entra", or endpoint,
    /// account, key and container). Dead letters: a directory, a blob container or an event hub.
    /// `credential = "entra"` uses workload identity, the platform's managed identity or the
    /// Azure CLI sign-in, as the environment shows (HUBWASM_ENTRA_CREDENTIAL chooses).
    ///
    /// Guarantees: a partition's checkpoint never passes an event the plugin did not handle
    /// (or that was not dead-lettered); a crash, trap, timeout or storage outage may deliver
    /// events again, never lose them. Ctrl-C / SIGTERM finish the in-flight batch, write its
    /// checkpoint, release ownership, and exit 0.
    Run(RunArgs),
    /// Show owners, checkpoints and lag per partition, from the checkpoint store and the
    /// event hub.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The host config (TOML); see examples/hubwasm.toml.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The plugin for the embedded default (without --config) [default: the sample plugin
    /// json_filter.wasm: HUBWASM_SAMPLE_PLUGIN, else where scripts/build-plugins.sh builds it,
    /// else beside the hubwasm binary].
    #[arg(long, conflicts_with = "config")]
    pub plugin: Option<PathBuf>,
    /// Plugin configuration for the embedded default, as key=value (repeatable).
    #[arg(long = "plugin-config", value_name = "KEY=VALUE", value_parser = parse_key_value, conflicts_with = "config")]
    pub plugin_config: Vec<(String, String)>,
    /// Send the lines of this .jsonl file as events to every consumed event hub at start (for
    /// demos and trials).
    #[arg(long, value_name = "FILE")]
    pub send: Option<PathBuf>,
    /// Stop by itself once every partition is handled and checkpointed up to its last event
    /// and nothing happened for this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub exit_when_idle: Option<f64>,
    /// This instance's owner id in the checkpoint store [default: hubwasm-<host>-<pid>-<n>].
    #[arg(long)]
    pub instance_id: Option<String>,
    /// Serve the admin API on this address (overrides [admin] listen; port 0 picks a free
    /// one): /healthz, /readyz, /status, /metrics (Prometheus) and hot swap
    /// (`hubwasm plugin swap`). Swaps need the token in $HUBWASM_ADMIN_TOKEN.
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub cache: CacheArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The host config (TOML) whose event hubs and checkpoint store to show.
    #[arg(long, conflicts_with = "admin")]
    pub config: Option<PathBuf>,
    /// Ask a running host's admin API instead (HOST:PORT): its plugin versions, swaps,
    /// partitions and counters.
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
    /// With --admin: one tenant's limits, usage against them and event hubs.
    #[arg(long, requires = "admin")]
    pub tenant: Option<String>,
    /// With --admin: the environment variable holding a token to send (the operator's or a
    /// tenant's); needed once tenants have admin tokens. Sent only if set.
    #[arg(long, default_value = "HUBWASM_ADMIN_TOKEN")]
    pub token_env: String,
}

#[derive(Debug, Args)]
pub struct SwapArgs {
    /// The new plugin version: a component file (.wasm), whose bytes are uploaded to the host,
    /// which stores them for every host of the consumer group; or a registry reference
    /// oci://HOST/REPOSITORY:TAG, which the host pulls and pins to its digest.
    pub wasm: PathBuf,
    /// Sample events (.jsonl) the new version must handle without a failure before the swap
    /// (uploaded with it).
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
    #[command(flatten)]
    pub target: AdminTarget,
}

/// Which running host and event hub a change (swap, rollback) goes to.
#[derive(Debug, Args)]
pub struct AdminTarget {
    /// The running host's admin API (HOST:PORT).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9466")]
    pub admin: String,
    /// The event hub whose plugin to change.
    #[arg(long)]
    pub event_hub: String,
    /// The consumer group, when the host reads the event hub with several.
    #[arg(long)]
    pub consumer_group: Option<String>,
    /// The environment variable holding the admin token.
    #[arg(long, default_value = "HUBWASM_ADMIN_TOKEN")]
    pub token_env: String,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Connection string with EntityPath (also HUBWASM_CONNECTION_STRING).
    #[arg(long, env = "HUBWASM_CONNECTION_STRING")]
    pub connection_string: String,
    /// How many events [default: 10 generated ones; with --file, every line of the file].
    /// With --file: at most this many (0 = all).
    #[arg(long)]
    pub count: Option<usize>,
    /// Pause between sends, in milliseconds (the seed's producer uses 1000).
    #[arg(long, default_value_t = 0)]
    pub interval_ms: u64,
    /// Send every event to this partition.
    #[arg(long, conflicts_with = "partition_key")]
    pub partition: Option<String>,
    /// Send every event with this partition key.
    #[arg(long)]
    pub partition_key: Option<String>,
    /// Events per batch.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
    /// Send the lines of this .jsonl file as event bodies instead of generated seed events.
    #[arg(long)]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum HubCommand {
    /// Serve an Event Hubs-compatible AMQP endpoint that the official SDKs use unchanged.
    ///
    /// Without --config: namespace `hubwasm`, one event hub `events` with 4 partitions and the
    /// development policy RootManageSharedAccessKey / SAS_KEY_VALUE, on 127.0.0.1:5672 (the port
    /// the Python SDK's emulator mode dials). Prints one connection string per event hub; stops
    /// cleanly on Ctrl-C.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML file: namespace, [[event_hub]] (name, partitions, consumer_groups), [[policy]]
    /// (name, key), [storage] (fsync, retention_hours, retention_bytes, segment_bytes).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on (overrides the config).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Directory for partition data (overrides the config).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show a plugin's world, contract version, imports and exports.
    Inspect {
        /// The component file (.wasm).
        wasm: PathBuf,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Replay events from files through a plugin and print each verdict and a summary.
    ///
    /// Exits with status 1 if any event failed. Events are taken as bodies, one per line of a
    /// .jsonl file (or of every .jsonl file of a directory), numbered from sequence number 0.
    Test(TestArgs),
    /// Make a plugin project: the handler, the guest library pinned, sample events, a README.
    ///
    /// The project builds with `hubwasm plugin build` and passes `hubwasm plugin test` on its
    /// sample events as generated. See docs/plugins.md.
    New(NewArgs),
    /// Build a Rust, Python or JavaScript plugin project into a component (.wasm).
    ///
    /// The language is told by the project: Cargo.toml (Rust: cargo, wasm32-wasip2), app.py
    /// (Python: componentize-py, world batch-plugin-http), app.js (JavaScript: componentize-js,
    /// with `fetch`).
    /// Python and JavaScript builds are cached by content (the sources, the contract, the guest
    /// library and the tool's version), so rebuilding unchanged sources is a copy.
    Build(BuildArgs),
    /// Write editor types for a Python or JavaScript plugin, generated from the contract.
    ///
    /// Python: `.pyi` stubs of the bindings the guest library imports, in DIR/typings (pyright
    /// and Pylance look there; for mypy set MYPYPATH=typings). JavaScript: TypeScript
    /// declarations of the contract in DIR/hubwasm/types, which hubwasm/index.d.ts references.
    /// `plugin new` writes them already; run this after upgrading hubwasm.
    Types(TypesArgs),
    /// Hot-swap the plugin of an event hub in a running host (through its admin API).
    ///
    /// The host loads the new version and checks it first (world, contract version, `init`
    /// with the event hub's plugin config); if that fails it answers why and keeps the running
    /// version. Otherwise every partition switches at its next batch: the batch in flight
    /// finishes and is checkpointed on the old version, the old version's partition-closed and
    /// the new one's partition-opened are called, and no event is lost or repeated.
    Swap(SwapArgs),
    /// Return an event hub to the plugin version its last swap replaced (admin API).
    ///
    /// A new version that fails too often right after a swap is also rolled back by itself
    /// ([eventhub.rollback]). Every host of the consumer group follows a rollback.
    Rollback(RollbackArgs),
    /// Publish a component to an OCI registry (the layout wkg and oras use: one
    /// application/wasm layer), and print the reference pinned to its digest.
    ///
    /// Credentials come from $HUBWASM_REGISTRY_USERNAME and $HUBWASM_REGISTRY_PASSWORD when
    /// set (anonymous otherwise). Registries on loopback addresses are reached over plain HTTP,
    /// every other over HTTPS.
    Push(PushArgs),
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The component (.wasm).
    pub wasm: PathBuf,
    /// Where to publish it: oci://HOST[:PORT]/REPOSITORY:TAG.
    pub reference: String,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub target: AdminTarget,
}

#[derive(Debug, Args)]
pub struct TypesArgs {
    /// The project directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The language [default: told by the project: app.py or app.js].
    #[arg(long, value_enum)]
    pub lang: Option<crate::authoring::Lang>,
    /// Where to write the types [default: DIR/typings (Python), DIR/hubwasm/types (JavaScript)];
    /// its contents are replaced.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The project's language.
    #[arg(long, value_enum)]
    pub lang: crate::authoring::Lang,
    /// The project's name (letters, digits, `-`, `_`); also its directory.
    pub name: String,
    /// Where to make the project directory.
    #[arg(long, default_value = ".")]
    pub parent: PathBuf,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The project directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Where to write the component [default: DIR/<DIR's name>.wasm].
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// The build cache [default: $HUBWASM_BUILD_CACHE or ~/.cache/hubwasm/builds].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Build even if the cache holds the result.
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(Debug, Args)]
pub struct CacheArgs {
    /// Directory for compiled plugins [default: $HUBWASM_CACHE_DIR or ~/.cache/hubwasm/components].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Compile every time; do not read or write the compiled-plugin cache.
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The component file (.wasm).
    pub wasm: PathBuf,
    /// A .jsonl file (one event body per line) or a directory of .jsonl files.
    #[arg(long)]
    pub events: PathBuf,
    /// Events per call; 1 calls the plugin once per event.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    /// Plugin configuration passed to its `init`, as key=value (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub config: Vec<(String, String)>,
    /// Memory limit of the plugin, in MiB.
    #[arg(long, default_value_t = Limits::DEFAULT_MEMORY >> 20)]
    pub memory_mib: u64,
    /// Time limit of one call, in milliseconds.
    #[arg(long, default_value_t = Limits::DEFAULT_TIMEOUT.as_millis() as u64)]
    pub timeout_ms: u64,
    /// Instruction budget ("fuel") per call; off by default.
    #[arg(long)]
    pub fuel: Option<u64>,
    /// Print only failed events and the summary.
    #[arg(long, short)]
    pub quiet: bool,
    /// An output the plugin may emit to (repeatable); emitted events are printed, not sent.
    /// State and first-seen keys live in memory for the replay.
    #[arg(long = "output", value_name = "NAME")]
    pub outputs: Vec<String>,
    /// An origin the plugin may send HTTP requests to, such as http://127.0.0.1:8080
    /// (repeatable; as `allowed_outbound_hosts` in the config). Others are refused.
    #[arg(long = "allow-outbound-host", value_name = "ORIGIN", value_parser = crate::plugin::http::Origin::parse)]
    pub allowed_outbound_hosts: Vec<crate::plugin::http::Origin>,
    #[command(flatten)]
    pub cache: CacheArgs,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

impl CacheArgs {
    fn dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            None
        } else {
            self.cache_dir
                .clone()
                .or_else(crate::plugin::ComponentCache::default_dir)
        }
    }
}

/// Entry point of the binary: parse, set up logging and the async runtime, run, map the outcome
/// to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            // Each layer once: several error types print their source in their own message.
            eprintln!("error: {}", crate::errors::one_line(err.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Run a parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Plugin(PluginCommand::Inspect { wasm, cache }) => inspect(wasm, cache),
        Command::Plugin(PluginCommand::Test(args)) => test(args).await,
        Command::Plugin(PluginCommand::New(args)) => plugin_new(args),
        Command::Plugin(PluginCommand::Build(args)) => plugin_build(args),
        Command::Plugin(PluginCommand::Types(args)) => plugin_types(args),
        Command::Plugin(PluginCommand::Swap(args)) => plugin_swap(args).await,
        Command::Plugin(PluginCommand::Push(args)) => plugin_push(args).await,
        Command::Plugin(PluginCommand::Rollback(args)) => plugin_rollback(args).await,
        Command::Hub(HubCommand::Serve(args)) => serve(args).await,
        Command::Send(args) => send(args).await,
        Command::Run(args) => run_host(args).await,
        Command::Status(args) => status(args).await,
    }
}

fn plugin_new(args: NewArgs) -> anyhow::Result<ExitCode> {
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

async fn plugin_push(args: PushArgs) -> anyhow::Result<ExitCode> {
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

async fn plugin_swap(args: SwapArgs) -> anyhow::Result<ExitCode> {
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

async fn plugin_rollback(args: RollbackArgs) -> anyhow::Result<ExitCode> {
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

fn plugin_types(args: TypesArgs) -> anyhow::Result<ExitCode> {
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

fn plugin_build(args: BuildArgs) -> anyhow::Result<ExitCode> {
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

async fn run_host(args: RunArgs) -> anyhow::Result<ExitCode> {
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
                upload_idle_timeout: Duration::from_millis(admin.upload_idle_timeout_ms),
                upload_timeout: Duration::from_millis(admin.upload_timeout_ms),
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

async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
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
            crate::admin::tenant_lines(&tenant)
        } else {
            let status: crate::admin::Status = serde_json::from_str(&answer.body)?;
            crate::admin::status_lines(&status)
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

async fn send(args: SendArgs) -> anyhow::Result<ExitCode> {
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

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
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

fn inspect(wasm: PathBuf, cache: CacheArgs) -> anyhow::Result<ExitCode> {
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

async fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
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
