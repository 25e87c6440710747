//! The plugin's configuration, as given to `init`.

use std::fmt::Display;
use std::str::FromStr;

/// String key/values from the host config.
#[derive(Debug, Clone, Default)]
pub struct Config {
    entries: Vec<(String, String)>,
}

impl Config {
    /// Wrap the key/values passed to `init`.
    pub fn new(entries: Vec<(String, String)>) -> Self {
        Self { entries }
    }

    /// The value of `key` (the last one if given twice).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key` parsed as `T`; `Ok(None)` if absent; an error naming the key and the
    /// bad value if it does not parse.
    pub fn parse<T>(&self, key: &str) -> Result<Option<T>, String>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.get(key)
            .map(|raw| {
                raw.parse::<T>()
                    .map_err(|e| format!("config `{key}` = `{raw}` is invalid: {e}"))
            })
            .transpose()
    }

    /// Like [`Config::parse`], but the key must be present.
    pub fn require<T>(&self, key: &str) -> Result<T, String>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.parse(key)?
            .ok_or_else(|| format!("config `{key}` is required"))
    }

    /// All key/values in the order given.
    pub fn entries(&self) -> &[(String, String)] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn values_parse_and_errors_name_the_key() {
        let c = config(&[("n", "5"), ("bad", "x"), ("n", "7")]);
        assert_eq!(c.get("n"), Some("7"), "the last value wins");
        assert_eq!(c.parse::<i64>("n"), Ok(Some(7)));
        assert_eq!(c.parse::<i64>("absent"), Ok(None));
        let err = c.parse::<i64>("bad").unwrap_err();
        assert!(err.contains("`bad`") && err.contains("`x`"), "{err}");
        assert_eq!(c.require::<u32>("n"), Ok(7));
        assert!(c.require::<u32>("absent").unwrap_err().contains("required"));
    }
}
