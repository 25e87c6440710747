//! The `hubwasm` binary; all logic lives in the library (`hubwasm::cli`).

/// mimalloc rather than the system allocator: the event path allocates and frees many small
/// buffers across threads (AMQP frames, SDK messages, batches), where glibc's malloc contends on
/// its arena locks (a third of the end-to-end benchmark's profile was malloc, free and lock
/// waits). `host/benches/end_to_end.rs` uses the same allocator, so it measures this binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hubwasm::cli::main()
}
