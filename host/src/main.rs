//! The `hubwasm` binary; all logic lives in the library (`hubwasm::cli`).

fn main() -> std::process::ExitCode {
    hubwasm::cli::main()
}
