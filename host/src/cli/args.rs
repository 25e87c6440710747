//! The command line's types: every verb, its arguments and their `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::plugin::Limits;

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
    pub(crate) fn dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            None
        } else {
            self.cache_dir
                .clone()
                .or_else(crate::plugin::ComponentCache::default_dir)
        }
    }
}
