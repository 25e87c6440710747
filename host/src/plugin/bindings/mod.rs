//! One `bindgen!` per contract version, each from its `wit/v0.x/plugin.wit`'s `plugin-host`
//! world. That world imports and exports everything either plugin world may use; the runtime
//! loads whichever handler interface a component actually exports through the per-interface
//! `GuestIndices`. [`super::contract`] puts the versions behind one API.

pub(crate) mod v0_1;
pub(crate) mod v0_2;
