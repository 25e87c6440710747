//! The reliability suite: real processes under faults, each scenario bounded in time and
//! stopping by itself. What each measures is printed as one `reliability:` line (and appended
//! to `$HUBWASM_RELIABILITY_REPORT` when set); RELIABILITY.md has the figures and commands.
//!
//! - [`kill_soak`]: 3 hosts on 8 partitions under continuous load; a random host is killed with
//!   SIGKILL and a new one started, again and again (`HUBWASM_SOAK_KILLS`, 5 by default; the
//!   long form is `scripts/soak.sh`): no event lost, duplicates bounded.
//! - [`outages`]: the Blob store (Azurite) stopped for 10 s, and the endpoint restarted, while
//!   events flow: nothing lost.
//! - [`hostile`]: hostile clients next to an honest one: the honest one is served, the
//!   endpoint's memory stays bounded, nothing panics.

mod hostile;
mod kill_soak;
mod load;
mod outages;

use hubwasm_testkit::harness;

use hubwasm_testkit::azurite;

/// The scenarios load the 2-core machine on their own; one at a time keeps their figures
/// comparable (each test holds this while it runs).
pub(crate) async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Print a figure of the suite, and append it to `$HUBWASM_RELIABILITY_REPORT` if set.
pub(crate) fn report(line: &str) {
    println!("reliability: {line}");
    if let Some(path) = std::env::var_os("HUBWASM_RELIABILITY_REPORT") {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(file, "{line}");
        }
    }
}
