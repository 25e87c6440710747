//! Times in the config: the TOML keys keep their unit in the name (`max_wait_ms`, `ttl_secs`),
//! the fields are `Duration`s.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A whole number of milliseconds.
pub(crate) mod millis {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// A whole number of seconds.
pub(crate) mod secs {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}
