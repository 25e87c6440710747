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
mod harness;
mod languages;
mod oci;
mod stores;
mod swap_inputs;
mod tenants;

#[path = "../support/azurite.rs"]
mod azurite;
#[path = "../support/lang_plugins.rs"]
mod lang_plugins;
#[path = "../support/python.rs"]
mod python;
#[path = "../support/redis.rs"]
mod redis_server;
#[path = "../support/registry.rs"]
mod registry;
