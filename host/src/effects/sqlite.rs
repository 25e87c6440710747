//! The `local` stores: SQLite (the bundled library) in a file, shared safely by the host
//! processes of one machine (WAL journal, a busy timeout for writers that meet). Dedupe keys
//! ([`SqliteDedupe`]) and partition state ([`SqliteState`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::dedupe::{Claim, DedupeError, DedupeStore};
use super::state::{Change, Committed, StateError, StateStore};

/// How long a writer waits for another process's write to finish before it reports an error.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Keys per lookup statement (SQLite allows 32 766 parameters).
const KEYS_PER_STATEMENT: usize = 500;
/// Expired keys are purged this often (and on opening): a purge scans the table.
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// Dedupe keys in a SQLite file.
pub struct SqliteDedupe {
    db: Db,
    /// When expired keys were last purged.
    purged: Mutex<std::time::Instant>,
}

/// Open (or create) a database at `path`, creating its directory, set up for several processes.
fn connect(path: &Path) -> Result<Connection, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let conn = Connection::open(path).map_err(|e| e.to_string())?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| e.to_string())?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| e.to_string())?;
    // WAL with NORMAL sync is durable across process crashes (what redelivery needs).
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| e.to_string())?;
    // A batch of new keys dirties pages all over the index: a larger cache and fewer WAL
    // checkpoints (each one syncs the database file) keep that off the hot path.
    conn.pragma_update(None, "cache_size", -65536)
        .map_err(|e| e.to_string())?;
    conn.pragma_update(None, "wal_autocheckpoint", 16384)
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// A database file's connection, shared by the calls of one store.
struct Db {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

/// A call that failed, as each store's error says it.
struct DbFailed {
    store: String,
    message: String,
}

impl DbFailed {
    fn at(path: &Path, message: String) -> Self {
        DbFailed {
            store: path.display().to_string(),
            message,
        }
    }
}

/// Each store's error names the database and what failed.
macro_rules! from_db_failed {
    ($($error:ident),*) => {$(
        impl From<DbFailed> for $error {
            fn from(f: DbFailed) -> Self {
                $error::Store { store: f.store, message: f.message }
            }
        }
    )*};
}
from_db_failed!(DedupeError, StateError);

impl Db {
    /// Open (or create) the database at `path` and its tables (`schema`).
    fn open(path: &Path, schema: &str) -> Result<Self, DbFailed> {
        let conn = connect(path).map_err(|message| DbFailed::at(path, message))?;
        conn.execute_batch(schema)
            .map_err(|e| DbFailed::at(path, e.to_string()))?;
        Ok(Db {
            path: path.to_path_buf(),
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Run `f` on the connection now (while the store is being opened).
    fn set_up(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<()>) -> Result<(), DbFailed> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&conn).map_err(|e| DbFailed::at(&self.path, e.to_string()))
    }

    /// Run `f` on the connection off the async threads.
    async fn run<T: Send + 'static, E: From<DbFailed>>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, E> {
        let conn = self.conn.clone();
        let done = tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut conn).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        done.map_err(|message| E::from(DbFailed::at(&self.path, message)))
    }
}

/// `ttl` in milliseconds, as the `expires_ms` column counts (saturating).
fn millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The dedupe table. `pending`: the event holding a claim not yet committed (NULL once
/// committed).
const DEDUPE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS dedupe (
         scope TEXT NOT NULL,
         key TEXT NOT NULL,
         expires_ms INTEGER NOT NULL,
         PRIMARY KEY (scope, key)
     ) WITHOUT ROWID;";

impl SqliteDedupe {
    /// Open (or create) the store at `path`, creating its directory.
    pub fn open(path: &Path) -> Result<Self, DedupeError> {
        let db = Db::open(path, DEDUPE_SCHEMA)?;
        db.set_up(|conn| {
            // Files written before claims existed get the column; their keys count as
            // committed.
            let has_pending: i64 = conn.query_row(
                "SELECT COUNT(*) FROM pragma_table_info('dedupe') WHERE name = 'pending'",
                [],
                |row| row.get(0),
            )?;
            if has_pending == 0 {
                conn.execute_batch("ALTER TABLE dedupe ADD COLUMN pending TEXT")?;
            }
            conn.execute(
                "DELETE FROM dedupe WHERE expires_ms <= ?1",
                params![now_ms()],
            )
            .map(drop)
        })?;
        Ok(Self {
            db,
            purged: Mutex::new(std::time::Instant::now()),
        })
    }
}

#[async_trait::async_trait]
impl DedupeStore for SqliteDedupe {
    async fn seen(&self, scope: &str, keys: &[String]) -> Result<Vec<bool>, DedupeError> {
        let scope = scope.to_string();
        let keys = keys.to_vec();
        self.db
            .run(move |conn| {
                let now = now_ms();
                // One read transaction, one statement per chunk of keys (`key IN (...)`).
                let tx = conn.transaction()?;
                let mut found = std::collections::HashSet::new();
                for chunk in keys.chunks(KEYS_PER_STATEMENT) {
                    let marks = vec!["?"; chunk.len()].join(",");
                    let mut query = tx.prepare_cached(&format!(
                    "SELECT key FROM dedupe WHERE scope = ? AND expires_ms > ? AND key IN ({marks})"
                ))?;
                    let mut args: Vec<&dyn rusqlite::ToSql> = vec![&scope, &now];
                    args.extend(chunk.iter().map(|k| k as &dyn rusqlite::ToSql));
                    let mut rows = query.query(args.as_slice())?;
                    while let Some(row) = rows.next()? {
                        found.insert(row.get::<_, String>(0)?);
                    }
                }
                tx.commit()?;
                Ok(keys.iter().map(|k| found.contains(k)).collect())
            })
            .await
    }

    async fn record(&self, scope: &str, keys: &[String], ttl: Duration) -> Result<(), DedupeError> {
        let scope = scope.to_string();
        let keys = keys.to_vec();
        let purge = {
            let mut purged = self.purged.lock().unwrap_or_else(|e| e.into_inner());
            let due = purged.elapsed() >= PURGE_EVERY;
            if due {
                *purged = std::time::Instant::now();
            }
            due
        };
        let ttl_ms = millis(ttl);
        self.db
            .run(move |conn| {
                let now = now_ms();
                let expires = now.saturating_add(ttl_ms);
                let tx = conn.transaction()?;
                // Multi-row upserts: one statement per chunk of keys.
                for chunk in keys.chunks(KEYS_PER_STATEMENT / 2) {
                    let rows: Vec<String> = (0..chunk.len())
                        .map(|i| format!("(?1, ?2, ?{})", i + 3))
                        .collect();
                    let rows = rows.join(",");
                    let mut insert = tx.prepare_cached(&format!(
                        "INSERT INTO dedupe (scope, expires_ms, key) VALUES {rows}
                     ON CONFLICT (scope, key) DO UPDATE SET expires_ms = excluded.expires_ms,
                                                            pending = NULL"
                    ))?;
                    let mut args: Vec<&dyn rusqlite::ToSql> = vec![&scope, &expires];
                    args.extend(chunk.iter().map(|k| k as &dyn rusqlite::ToSql));
                    insert.execute(args.as_slice())?;
                }
                if purge {
                    tx.execute("DELETE FROM dedupe WHERE expires_ms <= ?1", params![now])?;
                }
                tx.commit()
            })
            .await
    }

    async fn claim(&self, scope: &str, claims: &[Claim]) -> Result<Vec<bool>, DedupeError> {
        let scope = scope.to_string();
        let claims = claims.to_vec();
        self.db
            .run(move |conn| {
                let now = now_ms();
                // IMMEDIATE takes the file's write lock first: no other process reads between this
                // one's look and its claim.
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let mut mine = Vec::with_capacity(claims.len());
                {
                    let mut look = tx.prepare_cached(
                        "SELECT expires_ms, pending FROM dedupe WHERE scope = ?1 AND key = ?2",
                    )?;
                    let mut take = tx.prepare_cached(
                    "INSERT INTO dedupe (scope, key, expires_ms, pending) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (scope, key) DO UPDATE SET expires_ms = excluded.expires_ms,
                                                            pending = excluded.pending",
                )?;
                    for claim in &claims {
                        let held: Option<(i64, Option<String>)> = look
                            .query_row(params![scope, claim.key], |row| {
                                Ok((row.get(0)?, row.get(1)?))
                            })
                            .optional()?;
                        mine.push(match held {
                            Some((until, pending)) if until > now => {
                                pending.as_deref() == Some(claim.owner.as_str())
                            }
                            _ => {
                                let expires = now.saturating_add(millis(claim.ttl));
                                take.execute(params![scope, claim.key, expires, claim.owner])?;
                                true
                            }
                        });
                    }
                }
                tx.commit()?;
                Ok(mine)
            })
            .await
    }

    fn describe(&self) -> String {
        format!("SQLite {}", self.db.path.display())
    }
}

/// Partition state in a SQLite file: one row per entry, one row per partition's position,
/// committed together in one `IMMEDIATE` transaction (one writer at a time across processes).
pub struct SqliteState {
    db: Db,
}

/// A partition's entries and its position, committed together.
const STATE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS state (
         scope TEXT NOT NULL,
         key TEXT NOT NULL,
         value BLOB NOT NULL,
         PRIMARY KEY (scope, key)
     ) WITHOUT ROWID;
     CREATE TABLE IF NOT EXISTS state_position (
         scope TEXT PRIMARY KEY NOT NULL,
         position INTEGER NOT NULL
     );";

impl SqliteState {
    /// Open (or create) the store at `path`, creating its directory.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        Ok(Self {
            db: Db::open(path, STATE_SCHEMA)?,
        })
    }
}

/// The position a partition's state was last committed with.
fn stored_position(conn: &Connection, scope: &str) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT position FROM state_position WHERE scope = ?1",
        params![scope],
        |row| row.get(0),
    )
    .optional()
}

#[async_trait::async_trait]
impl StateStore for SqliteState {
    async fn load(&self, scope: &str) -> Result<(Option<i64>, Vec<(String, Vec<u8>)>), StateError> {
        let scope = scope.to_string();
        self.db
            .run(move |conn| {
                // One read transaction: the entries and the position belong together.
                let tx = conn.transaction()?;
                let position = stored_position(&tx, &scope)?;
                let rows = {
                    let mut query = tx.prepare("SELECT key, value FROM state WHERE scope = ?1")?;
                    let rows = query
                        .query_map(params![scope], |row| Ok((row.get(0)?, row.get(1)?)))?
                        .collect::<rusqlite::Result<Vec<(String, Vec<u8>)>>>()?;
                    rows
                };
                tx.commit()?;
                Ok((position, rows))
            })
            .await
    }

    async fn commit(&self, scope: &str, change: Change<'_>) -> Result<Committed, StateError> {
        let scope = scope.to_string();
        let (expected, position, writes) =
            (change.expected, change.position, change.writes.to_vec());
        self.db
            .run(move |conn| {
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let stored = stored_position(&tx, &scope)?;
                if stored != expected {
                    return Ok(Committed::Fenced);
                }
                {
                    let mut set = tx.prepare_cached(
                        "INSERT INTO state (scope, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value",
                    )?;
                    let mut delete =
                        tx.prepare_cached("DELETE FROM state WHERE scope = ?1 AND key = ?2")?;
                    for (key, value) in &writes {
                        match value {
                            Some(value) => set.execute(params![scope, key, value])?,
                            None => delete.execute(params![scope, key])?,
                        };
                    }
                    tx.execute(
                        "INSERT INTO state_position (scope, position) VALUES (?1, ?2)
                     ON CONFLICT (scope) DO UPDATE SET position = excluded.position",
                        params![scope, position],
                    )?;
                }
                tx.commit()?;
                Ok(Committed::Done)
            })
            .await
    }

    fn describe(&self) -> String {
        format!("SQLite {}", self.db.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_are_seen_once_recorded_per_scope_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dedupe.sqlite");
        let store = SqliteDedupe::open(&path).unwrap();
        let keys = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            store.seen("a", &keys(&["x", "y"])).await.unwrap(),
            [false, false]
        );
        store
            .record("a", &keys(&["x"]), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            store.seen("a", &keys(&["x", "y"])).await.unwrap(),
            [true, false]
        );
        assert_eq!(
            store.seen("b", &keys(&["x"])).await.unwrap(),
            [false],
            "scopes apart"
        );
        // A second connection (another process) sees what the first recorded.
        let other = SqliteDedupe::open(&path).unwrap();
        assert_eq!(other.seen("a", &keys(&["x"])).await.unwrap(), [true]);
        // Expired keys are not seen.
        store
            .record("a", &keys(&["gone"]), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(store.seen("a", &keys(&["gone"])).await.unwrap(), [false]);
    }

    #[tokio::test]
    async fn state_commits_only_over_the_expected_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let store = SqliteState::open(&path).unwrap();
        let change = |expected, position, writes| Change {
            expected,
            position,
            writes,
        };
        assert_eq!(store.load("p").await.unwrap(), (None, vec![]));
        let w = |k: &str, v: Option<&str>| (k.to_string(), v.map(|v| v.as_bytes().to_vec()));
        let first = [w("a", Some("1")), w("b", Some("2"))];
        assert_eq!(
            store.commit("p", change(None, 10, &first)).await.unwrap(),
            Committed::Done
        );
        // A host that still thinks the position is unset (it lost the partition) is fenced.
        let stale = [w("a", Some("9"))];
        assert_eq!(
            store.commit("p", change(None, 12, &stale)).await.unwrap(),
            Committed::Fenced
        );
        let next = [w("a", None), w("c", Some("3"))];
        assert_eq!(
            store
                .commit("p", change(Some(10), 20, &next))
                .await
                .unwrap(),
            Committed::Done
        );
        // Another process sees the committed state and position; other scopes are apart.
        let other = SqliteState::open(&path).unwrap();
        let (position, mut rows) = other.load("p").await.unwrap();
        rows.sort();
        assert_eq!(position, Some(20));
        assert_eq!(
            rows,
            vec![
                ("b".to_string(), b"2".to_vec()),
                ("c".to_string(), b"3".to_vec())
            ]
        );
        assert_eq!(other.load("q").await.unwrap(), (None, vec![]));
    }

    #[test]
    fn an_unusable_path_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let err = SqliteDedupe::open(&file.join("dedupe.sqlite"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("file"), "{err}");
    }
}
