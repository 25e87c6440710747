//! `hubwasm run` end to end: real host processes, the embedded endpoint, a checkpoint store
//! shared by the processes (local, or Blob on Azurite, which the official Python processor also
//! reads and writes), and the `test-record` plugin, whose log lines
//! (`handled group=.. partition=.. seq=..`) tell which events each host handled.
//!
//! Waits are bounded (a broken host fails the test instead of hanging it) but nothing asserts
//! how fast something happened, except the takeover after `kill -9`, which the issue bounds by
//! the ownership expiry plus the update interval (checked with a generous margin).

mod admin;
mod balancing;
mod cli;
mod dedupe;
mod effects;
mod failures;
mod fleet;
use hubwasm_testkit::harness;
mod languages;
mod oci;
mod stopping;
mod stores;
mod swap_inputs;
mod tenants;

use hubwasm_testkit::azurite;
use hubwasm_testkit::lang_plugins;
use hubwasm_testkit::python;
use hubwasm_testkit::redis as redis_server;
use hubwasm_testkit::registry;
