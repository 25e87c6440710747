//! The `redis` stores (Azure Cache for Redis in production), shared by host instances on any
//! number of machines: dedupe keys, each a Redis key with an expiry
//! (`hubwasm:dedupe:{<scope>}:<key>`), and partition state ([`RedisState`]).

use std::time::Duration;

use redis::aio::ConnectionManager;

use super::dedupe::{Claim, DedupeError, DedupeStore};
use super::state::{Change, Committed, StateError, StateStore};

/// How long one Redis call may take before the partition treats the store as down (and waits).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// `redis://user:password@host:port/db` with the password replaced.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// One Redis server, connected on first use and reconnected after a failure.
struct Redis {
    /// The URL without its password, for messages.
    shown: String,
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<ConnectionManager>>,
}

impl Redis {
    /// A store at `url` (`redis://host:port[/db]`, `rediss://` for TLS). Nothing is connected
    /// until the first call, so a Redis that is down at start pauses partitions, as later.
    fn open(url: &str) -> Result<Self, String> {
        let shown = redact(url);
        let client =
            redis::Client::open(url).map_err(|e| format!("{shown}: not a Redis URL: {e}"))?;
        Ok(Self {
            shown,
            client,
            conn: tokio::sync::Mutex::new(None),
        })
    }

    /// Run one call with a timeout, connecting first if needed.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, String>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let mut guard = self.conn.lock().await;
        let conn = match guard.as_ref() {
            Some(conn) => conn.clone(),
            None => {
                let manager =
                    tokio::time::timeout(CALL_TIMEOUT, self.client.get_connection_manager())
                        .await
                        .map_err(|_| format!("no connection within {CALL_TIMEOUT:?}"))?
                        .map_err(|e| e.to_string())?;
                guard.insert(manager).clone()
            }
        };
        match tokio::time::timeout(CALL_TIMEOUT, f(conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => {
                // A call that hangs may leave the connection mid-reply: start over.
                *guard = None;
                Err(format!("no answer within {CALL_TIMEOUT:?}"))
            }
        }
    }
}

/// Dedupe keys in Redis.
pub struct RedisDedupe {
    redis: Redis,
}

impl RedisDedupe {
    /// A store at `url`; see [`Redis::open`].
    pub fn open(url: &str) -> Result<Self, DedupeError> {
        let redis = Redis::open(url).map_err(|message| DedupeError::Store {
            store: redact(url),
            message,
        })?;
        Ok(Self { redis })
    }

    async fn call<T: redis::FromRedisValue>(
        &self,
        pipe: redis::Pipeline,
    ) -> Result<T, DedupeError> {
        self.redis
            .call(|mut conn| async move { pipe.query_async::<T>(&mut conn).await })
            .await
            .map_err(|message| DedupeError::Store {
                store: self.redis.shown.clone(),
                message,
            })
    }
}

/// Set every key in `KEYS` to 1 for `ARGV[1]` milliseconds.
const RECORD: &str = r#"
for _, key in ipairs(KEYS) do
  redis.call('SET', key, 1, 'PX', ARGV[1])
end
"#;

/// Claim each key `KEYS[i]` for the event `ARGV[2i - 1]` (a pending claim holds `p:<event>`, a
/// committed key anything else), for `ARGV[2i]` milliseconds; 1 where the event may go on.
/// One script, so nothing runs between a look and a claim.
const CLAIM: &str = r#"
local out = {}
for i, key in ipairs(KEYS) do
  local mine = 'p:' .. ARGV[2 * i - 1]
  if redis.call('SET', key, mine, 'NX', 'PX', ARGV[2 * i]) then
    out[i] = 1
  elseif redis.call('GET', key) == mine then
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"#;

/// `ttl` as `PX` takes it: whole milliseconds, at least one.
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A scope's keys share one hash tag, so a batch's MGET and script stay in one slot of a
/// Redis cluster.
fn redis_key(scope: &str, key: &str) -> String {
    format!("hubwasm:dedupe:{{{scope}}}:{key}")
}

#[async_trait::async_trait]
impl DedupeStore for RedisDedupe {
    async fn seen(&self, scope: &str, keys: &[String]) -> Result<Vec<bool>, DedupeError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // One MGET per batch: a recorded key holds "1", an unknown or expired one nil.
        let mut pipe = redis::pipe();
        pipe.cmd("MGET")
            .arg(keys.iter().map(|k| redis_key(scope, k)).collect::<Vec<_>>());
        let (values,): (Vec<Option<String>>,) = self.call(pipe).await?;
        Ok(values.into_iter().map(|v| v.is_some()).collect())
    }

    async fn record(&self, scope: &str, keys: &[String], ttl: Duration) -> Result<(), DedupeError> {
        if keys.is_empty() {
            return Ok(());
        }
        let ms = millis(ttl);
        // One script per batch: the server sets every key with its expiry in one round trip.
        let script = redis::Script::new(RECORD);
        let mut invocation = script.prepare_invoke();
        invocation.arg(ms);
        for key in keys {
            invocation.key(redis_key(scope, key));
        }
        self.redis
            .call(|mut conn| async move { invocation.invoke_async::<()>(&mut conn).await })
            .await
            .map_err(|message| DedupeError::Store {
                store: self.redis.shown.clone(),
                message,
            })
    }

    async fn claim(&self, scope: &str, claims: &[Claim]) -> Result<Vec<bool>, DedupeError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let script = redis::Script::new(CLAIM);
        let mut invocation = script.prepare_invoke();
        for claim in claims {
            invocation.key(redis_key(scope, &claim.key));
            invocation.arg(&claim.owner).arg(millis(claim.ttl));
        }
        let mine: Vec<i64> = self
            .redis
            .call(|mut conn| async move { invocation.invoke_async::<Vec<i64>>(&mut conn).await })
            .await
            .map_err(|message| DedupeError::Store {
                store: self.redis.shown.clone(),
                message,
            })?;
        Ok(mine.into_iter().map(|m| m == 1).collect())
    }

    fn describe(&self) -> String {
        format!("Redis {}", self.redis.shown)
    }
}

/// Partition state in Redis: a hash of entries and a position key per partition, both under
/// one hash tag (one cluster slot), committed by one script (atomic on the server).
pub struct RedisState {
    redis: Redis,
}

/// Apply the writes and move the position if it is still the expected one (`ARGV[1]`, `""`
/// for none). `ARGV[2]`: the new position; `ARGV[3]`: how many key/value pairs follow; then
/// the keys to delete.
const COMMIT: &str = r#"
local current = redis.call('GET', KEYS[2])
if current == false then current = '' end
if current ~= ARGV[1] then return 0 end
local sets = tonumber(ARGV[3])
local i = 4
for _ = 1, sets do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i <= #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
  i = i + 1
end
redis.call('SET', KEYS[2], ARGV[2])
return 1
"#;

fn state_keys(scope: &str) -> (String, String) {
    (
        format!("hubwasm:state:{{{scope}}}"),
        format!("hubwasm:state-position:{{{scope}}}"),
    )
}

impl RedisState {
    /// A store at `url`; see [`Redis::open`].
    pub fn open(url: &str) -> Result<Self, StateError> {
        let redis = Redis::open(url).map_err(|message| StateError::Store {
            store: redact(url),
            message,
        })?;
        Ok(Self { redis })
    }

    fn fail(&self, message: String) -> StateError {
        StateError::Store {
            store: self.redis.shown.clone(),
            message,
        }
    }
}

#[async_trait::async_trait]
impl StateStore for RedisState {
    async fn load(&self, scope: &str) -> Result<(Option<i64>, Vec<(String, Vec<u8>)>), StateError> {
        let (entries, position) = state_keys(scope);
        let mut pipe = redis::pipe();
        pipe.atomic().get(&position).hgetall(&entries);
        let (position, rows): (Option<i64>, std::collections::HashMap<String, Vec<u8>>) = self
            .redis
            .call(|mut conn| async move { pipe.query_async(&mut conn).await })
            .await
            .map_err(|m| self.fail(m))?;
        Ok((position, rows.into_iter().collect()))
    }

    async fn commit(&self, scope: &str, change: Change<'_>) -> Result<Committed, StateError> {
        let (entries, position_key) = state_keys(scope);
        let script = redis::Script::new(COMMIT);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(entries)
            .key(position_key)
            .arg(change.expected.map(|p| p.to_string()).unwrap_or_default())
            .arg(change.position.to_string())
            .arg(change.writes.iter().filter(|(_, v)| v.is_some()).count());
        for (key, value) in change.writes {
            if let Some(value) = value {
                invocation.arg(key).arg(value.as_slice());
            }
        }
        for (key, value) in change.writes {
            if value.is_none() {
                invocation.arg(key);
            }
        }
        let done: i64 = self
            .redis
            .call(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await
            .map_err(|m| self.fail(m))?;
        Ok(if done == 1 {
            Committed::Done
        } else {
            Committed::Fenced
        })
    }

    fn describe(&self) -> String {
        format!("Redis {}", self.redis.shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("redis://user:s3cret@cache.example:6380/0"),
            "redis://user:***@cache.example:6380/0"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert!(RedisDedupe::open("not a url").is_err());
    }
}
