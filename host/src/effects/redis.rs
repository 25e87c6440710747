//! The `redis` store: dedupe keys in Redis (Azure Cache for Redis in production), shared by
//! host instances on any number of machines. Each key is a Redis key with an expiry:
//! `hubwasm:dedupe:<scope>:<key>`.

use std::time::Duration;

use redis::aio::ConnectionManager;

use super::dedupe::{DedupeError, DedupeStore};

/// How long one Redis call may take before the partition treats the store as down (and waits).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Dedupe keys in Redis.
pub struct RedisDedupe {
    /// The URL without its password, for messages.
    shown: String,
    client: redis::Client,
    /// Opened on first use and reopened by the manager after a failure.
    conn: tokio::sync::Mutex<Option<ConnectionManager>>,
}

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

impl RedisDedupe {
    /// A store at `url` (`redis://host:port[/db]`, `rediss://` for TLS). Nothing is connected
    /// until the first call, so a Redis that is down at start pauses partitions, as later.
    pub fn open(url: &str) -> Result<Self, DedupeError> {
        let shown = redact(url);
        let client = redis::Client::open(url).map_err(|e| DedupeError::Store {
            store: shown.clone(),
            message: format!("not a Redis URL: {e}"),
        })?;
        Ok(Self {
            shown,
            client,
            conn: tokio::sync::Mutex::new(None),
        })
    }

    fn fail(&self, message: impl std::fmt::Display) -> DedupeError {
        DedupeError::Store {
            store: self.shown.clone(),
            message: message.to_string(),
        }
    }

    /// Run one command pipeline with a timeout, connecting first if needed.
    async fn call<T: redis::FromRedisValue>(
        &self,
        pipe: redis::Pipeline,
    ) -> Result<T, DedupeError> {
        let mut guard = self.conn.lock().await;
        let conn = match guard.as_mut() {
            Some(conn) => conn,
            None => {
                let manager =
                    tokio::time::timeout(CALL_TIMEOUT, self.client.get_connection_manager())
                        .await
                        .map_err(|_| self.fail(format!("no connection within {CALL_TIMEOUT:?}")))?
                        .map_err(|e| self.fail(e))?;
                guard.insert(manager)
            }
        };
        match tokio::time::timeout(CALL_TIMEOUT, pipe.query_async::<T>(conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.fail(e)),
            Err(_) => {
                // A call that hangs may leave the connection mid-reply: start over.
                *guard = None;
                Err(self.fail(format!("no answer within {CALL_TIMEOUT:?}")))
            }
        }
    }
}

fn redis_key(scope: &str, key: &str) -> String {
    format!("hubwasm:dedupe:{scope}:{key}")
}

#[async_trait::async_trait]
impl DedupeStore for RedisDedupe {
    async fn seen(&self, scope: &str, keys: &[String]) -> Result<Vec<bool>, DedupeError> {
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.exists(redis_key(scope, key));
        }
        self.call::<Vec<bool>>(pipe).await
    }

    async fn record(&self, scope: &str, keys: &[String], ttl: Duration) -> Result<(), DedupeError> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut pipe = redis::pipe();
        pipe.atomic();
        for key in keys {
            pipe.cmd("SET")
                .arg(redis_key(scope, key))
                .arg(1)
                .arg("PX")
                .arg(ms)
                .ignore();
        }
        self.call::<()>(pipe).await
    }

    fn describe(&self) -> String {
        format!("Redis {}", self.shown)
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
