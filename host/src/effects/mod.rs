//! What happens besides the plugin's verdict. Today: the host-side dedupe of
//! `[eventhub.dedupe]` (the seed's "second checkpoint"), over the stores in [`sqlite`] (`local`)
//! and [`redis`].
//! Emit, state and outbound HTTP arrive here with contract 0.2's imports.

pub mod dedupe;
pub mod redis;
pub mod sqlite;
