//! What a plugin instance sees of the world: a deny-by-default WASI context (no files, no
//! environment, no sockets), its stdout/stderr forwarded to the host log, and the `log` import.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::MemoryLimiter;

/// How many trailing stderr lines are kept to explain a trap (a Rust panic prints there).
const STDERR_TAIL_LINES: usize = 8;

/// The data of one plugin instance's `Store`.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    /// Epoch ticks the running call may still use before it is stopped (see `instance::arm`).
    pub(crate) ticks_left: u64,
    plugin: Arc<str>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    /// Contract 0.2's effects: the partition's binding and what calls staged.
    pub(crate) effects: crate::effects::journal::Effects,
    http: wasmtime_wasi_http::WasiHttpCtx,
    http_policy: super::http::HttpPolicy,
}

impl HostState {
    pub(crate) fn new(
        plugin: Arc<str>,
        memory_limit: u64,
        memory_peak: Option<Arc<std::sync::atomic::AtomicU64>>,
        http_policy: super::http::HttpPolicy,
    ) -> Self {
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let mut wasi = WasiCtx::builder();
        // The builder's defaults already give no preopened dirs, no env, no args; say it anyway
        // so a later default change cannot open the sandbox.
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stdout(LogStream {
                plugin: plugin.clone(),
                stream: "stdout",
                tail: None,
            })
            .stderr(LogStream {
                plugin: plugin.clone(),
                stream: "stderr",
                tail: Some(stderr_tail.clone()),
            });
        Self {
            ticks_left: 0,
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(memory_limit, memory_peak),
            plugin,
            stderr_tail,
            effects: Default::default(),
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            http_policy,
        }
    }

    /// Take the stderr lines written since the last call, joined.
    pub(crate) fn take_stderr_tail(&self) -> String {
        let mut tail = self.stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
        tail.drain(..).collect::<Vec<_>>().join("\n")
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for HostState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_policy,
        }
    }
}

/// The `log` import of each contract version (same shape, its own types).
macro_rules! log_host {
    ($version:ident) => {
        impl super::bindings::$version::types::Host for HostState {}

        impl super::bindings::$version::log::Host for HostState {
            fn log(
                &mut self,
                level: super::bindings::$version::log::Level,
                message: String,
                fields: Vec<(String, String)>,
            ) {
                use super::bindings::$version::log::Level as L;
                let level = match level {
                    L::Trace => tracing::Level::TRACE,
                    L::Debug => tracing::Level::DEBUG,
                    L::Info => tracing::Level::INFO,
                    L::Warn => tracing::Level::WARN,
                    L::Error => tracing::Level::ERROR,
                };
                self.write_log(level, &message, &fields);
            }
        }
    };
}

log_host!(v0_1);
log_host!(v0_2);

impl HostState {
    fn write_log(&self, level: tracing::Level, message: &str, fields: &[(String, String)]) {
        let plugin = &*self.plugin;
        let fields = Fields(fields);
        // `tracing`'s macros need the level as a constant.
        match level {
            tracing::Level::TRACE => {
                tracing::trace!(target: "hubwasm::plugin", plugin, %fields, "{message}")
            }
            tracing::Level::DEBUG => {
                tracing::debug!(target: "hubwasm::plugin", plugin, %fields, "{message}")
            }
            tracing::Level::INFO => {
                tracing::info!(target: "hubwasm::plugin", plugin, %fields, "{message}")
            }
            tracing::Level::WARN => {
                tracing::warn!(target: "hubwasm::plugin", plugin, %fields, "{message}")
            }
            tracing::Level::ERROR => {
                tracing::error!(target: "hubwasm::plugin", plugin, %fields, "{message}")
            }
        }
    }
}

/// `k=v k=v` rendering of a plugin's log fields.
struct Fields<'a>(&'a [(String, String)]);

impl std::fmt::Display for Fields<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// A plugin's stdout or stderr: each complete line becomes one host log record.
#[derive(Clone)]
struct LogStream {
    plugin: Arc<str>,
    stream: &'static str,
    tail: Option<Arc<Mutex<VecDeque<String>>>>,
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineWriter {
            target: self.clone(),
            pending: Vec::new(),
        })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(AsyncLineWriter(LineWriter {
            target: self.clone(),
            pending: Vec::new(),
        }))
    }
}

/// Largest partial line kept before it is logged anyway.
const MAX_PENDING: usize = 16 * 1024;

struct LineWriter {
    target: LogStream,
    pending: Vec<u8>,
}

impl LineWriter {
    fn write_bytes(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        while let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=pos).collect();
            self.emit(&line[..line.len() - 1]);
        }
        if self.pending.len() > MAX_PENDING {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
    }

    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            return;
        }
        tracing::info!(
            target: "hubwasm::plugin",
            plugin = &*self.target.plugin,
            stream = self.target.stream,
            "{line}"
        );
        if let Some(tail) = &self.target.tail {
            let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
            if tail.len() == STDERR_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.to_string());
        }
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
    }
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

struct AsyncLineWriter(LineWriter);

impl tokio::io::AsyncWrite for AsyncLineWriter {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.write_bytes(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
