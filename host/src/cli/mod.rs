//! The `hubwasm` command line: `args.rs` (clap types and `--help`), `run.rs` (`run` with its
//! one embedded default, `status`, `send`, `hub serve`), `plugin.rs` (the `plugin` verbs).

mod args;
mod plugin;
mod run;

use std::process::ExitCode;

use clap::Parser;

pub use args::*;

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
        Command::Plugin(PluginCommand::Inspect { wasm, cache }) => plugin::inspect(wasm, cache),
        Command::Plugin(PluginCommand::Test(args)) => plugin::test(args).await,
        Command::Plugin(PluginCommand::New(args)) => plugin::plugin_new(args),
        Command::Plugin(PluginCommand::Build(args)) => plugin::plugin_build(args),
        Command::Plugin(PluginCommand::Types(args)) => plugin::plugin_types(args),
        Command::Plugin(PluginCommand::Swap(args)) => plugin::plugin_swap(args).await,
        Command::Plugin(PluginCommand::Push(args)) => plugin::plugin_push(args).await,
        Command::Plugin(PluginCommand::Rollback(args)) => plugin::plugin_rollback(args).await,
        Command::Hub(HubCommand::Serve(args)) => run::serve(args).await,
        Command::Send(args) => run::send(args).await,
        Command::Run(args) => run::run_host(args).await,
        Command::Status(args) => run::status(args).await,
    }
}
