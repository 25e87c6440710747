//! What happens besides the plugin's verdict: the host-side dedupe of `[eventhub.dedupe]` (the
//! seed's "second checkpoint"), contract 0.2's staged effects ([`journal`]: emitted events,
//! state writes, `first-seen` keys), partition [`state`], the [`outputs`] emitted events go to,
//! over the stores in [`sqlite`] (`local`) and [`redis`], opened once each by [`stores`].

pub mod dedupe;
pub mod journal;
pub mod outputs;
pub mod redis;
pub mod sqlite;
pub mod state;
pub mod stores;
