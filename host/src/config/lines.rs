//! Where each key of the array tables (`[[eventhub]]`, `[[tenant]]`, `[[plugin]]`) sits in the
//! file, so errors found after parsing (a reference to a tenant that does not exist, a limit
//! above the tenant's) can name the line as syntax errors do.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

type Table = BTreeMap<String, Spanned<toml::Value>>;

/// A second, lenient read of the file: only spans, no types (the typed read already passed).
#[derive(Default, Deserialize)]
struct Shadow {
    #[serde(default)]
    eventhub: Vec<Spanned<Table>>,
    #[serde(default)]
    tenant: Vec<Spanned<Table>>,
    #[serde(default)]
    plugin: Vec<Spanned<Table>>,
}

/// One array table's line and its keys' lines.
type TableLines = (usize, BTreeMap<String, usize>);

/// 1-based line numbers of the array tables' keys.
#[derive(Debug, Clone, Default)]
pub struct Lines {
    sections: BTreeMap<&'static str, Vec<TableLines>>,
}

impl Lines {
    pub(super) fn read(text: &str) -> Self {
        let Ok(shadow) = toml::from_str::<Shadow>(text) else {
            return Self::default();
        };
        let line = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let lines = |tables: Vec<Spanned<Table>>| {
            tables
                .into_iter()
                .map(|t| {
                    let start = line(t.span().start);
                    let keys = t
                        .into_inner()
                        .into_iter()
                        .map(|(k, v)| (k, line(v.span().start)))
                        .collect();
                    (start, keys)
                })
                .collect()
        };
        let mut sections = BTreeMap::new();
        sections.insert("eventhub", lines(shadow.eventhub));
        sections.insert("tenant", lines(shadow.tenant));
        sections.insert("plugin", lines(shadow.plugin));
        Self { sections }
    }

    /// The line of `key` in the `index`th `[[section]]`, else of the table itself.
    pub fn of(&self, section: &str, index: usize, key: &str) -> Option<usize> {
        let (start, keys) = self.sections.get(section)?.get(index)?;
        Some(keys.get(key).copied().unwrap_or(*start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_array_tables_have_their_lines() {
        let text = "[[tenant]]\nname = \"a\"\n\n[[tenant]]\nname = \"b\"\n[tenant.limits]\nmax_in_flight = 1\n\n[[eventhub]]\nname = \"x\"\ntenant = \"b\"\n";
        let lines = Lines::read(text);
        assert_eq!(lines.of("tenant", 0, "name"), Some(2));
        assert_eq!(lines.of("tenant", 1, "name"), Some(5));
        assert_eq!(lines.of("tenant", 1, "limits"), Some(6));
        assert_eq!(lines.of("eventhub", 0, "tenant"), Some(11));
        assert_eq!(lines.of("plugin", 0, "name"), None);
    }
}
