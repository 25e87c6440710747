//! `$cbs`: put-token, the tokens a connection keeps, and authorization by them.

use super::attach::drop_link;
use super::connection::*;
use super::namespace::now_ms;
use crate::amqp::message::Message;
use crate::amqp::performative::{condition, AmqpError, Detach};
use crate::amqp::Value;
use crate::config::Right;
use crate::sas::{self, ValidToken};

impl Connection {
    /// Keep a validated token. One per resource (a renewal replaces the token it renews), and
    /// at most `limits.max_tokens`: a client putting ever more tokens loses its oldest ones.
    pub(super) fn keep_token(&mut self, valid: ValidToken) {
        self.tokens.retain(|t| t.resource != valid.resource);
        let max = self.ns.limits.max_tokens;
        if self.tokens.len() >= max {
            let excess = self.tokens.len() + 1 - max;
            self.tokens.drain(..excess);
        }
        self.tokens.push(valid);
    }

    /// Whether a valid token covers `entity` and its policy grants `need` (any right when
    /// `None`, for reads).
    pub(super) fn authorized(
        &mut self,
        entity: &str,
        need: Option<Right>,
    ) -> Result<(), AmqpError> {
        let now = (now_ms() / 1000) as u64;
        self.tokens.retain(|t| t.expires_at > now);
        let mut covering = self
            .tokens
            .iter()
            .filter(|t| t.covers(entity).is_ok())
            .peekable();
        let Some(first) = covering.peek().map(|t| t.key_name.clone()) else {
            return Err(AmqpError::new(
                condition::UNAUTHORIZED,
                format!(
                    "no valid token for `{entity}`: put a SAS token for it on $cbs first \
                     (status 401)"
                ),
            ));
        };
        if covering.any(|t| self.ns.policy_allows(&t.key_name, need)) {
            return Ok(());
        }
        Err(AmqpError::new(
            condition::UNAUTHORIZED,
            format!(
                "the token for `{entity}` is signed with policy `{first}`, whose rights {:?} do \
                 not include {:?} (status 401)",
                self.ns.policy_rights(&first),
                need.unwrap_or(Right::Manage)
            ),
        ))
    }

    /// When the first token the connection keeps expires.
    pub(super) fn next_expiry(&self) -> Option<tokio::time::Instant> {
        let at = self.tokens.iter().map(|t| t.expires_at).min()?;
        let wait_ms = (at as i64 * 1000 - now_ms()).max(0) as u64;
        Some(tokio::time::Instant::now() + std::time::Duration::from_millis(wait_ms))
    }

    /// Tokens expired: detach every sender and receiver no valid token covers any more (as
    /// Event Hubs does, unless the client put a new token before the old one expired).
    pub(super) async fn expire_links(&mut self) {
        // Expired tokens go first, or the next expiry would be this one again.
        let now = (now_ms() / 1000) as u64;
        self.tokens.retain(|t| t.expires_at > now);
        let mut expired = Vec::new();
        let links: Vec<(u16, u32, String, Right)> = self
            .sessions
            .iter()
            .flat_map(|(channel, session)| {
                session
                    .links
                    .iter()
                    .filter_map(|(handle, link)| match link {
                        Link::Ingest { path, .. } => {
                            Some((*channel, *handle, path.clone(), Right::Send))
                        }
                        Link::Deliver { path, .. } => {
                            Some((*channel, *handle, path.clone(), Right::Listen))
                        }
                        _ => None,
                    })
            })
            .collect();
        for (channel, handle, path, need) in links {
            if self.authorized(&path, Some(need)).is_err() {
                expired.push((channel, handle, path));
            }
        }
        for (channel, handle, path) in expired {
            let Some(link) = self
                .sessions
                .get_mut(&channel)
                .and_then(|s| s.links.remove(&handle))
            else {
                continue;
            };
            tracing::debug!(channel, handle, %path, "Token expired; link detached");
            drop_link(link);
            let detach = Detach {
                handle,
                closed: true,
                error: Some(AmqpError::new(
                    condition::UNAUTHORIZED,
                    format!(
                        "the token for `{path}` expired; put a new token on $cbs before the \
                         old one expires to keep the link"
                    ),
                )),
            };
            self.send(channel, detach.to_value()).await;
        }
    }

    pub(super) fn put_token(&mut self, request: &Message) -> (i32, String) {
        let operation = request
            .application_property("operation")
            .and_then(Value::as_str);
        if operation != Some("put-token") {
            return (400, format!("unsupported $cbs operation {operation:?}"));
        }
        let audience = request
            .application_property("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let token = match request.body_value() {
            Some(Value::String(s)) => Some(s.clone()),
            _ => request
                .data_sections()
                .next()
                .and_then(|d| String::from_utf8(d.to_vec()).ok()),
        };
        let Some(token) = token else {
            return (400, "the put-token request carries no token".into());
        };
        // The Rust SDK labels every token "jwt"; what counts is what the token is.
        if !token.starts_with("SharedAccessSignature ") {
            return (
                401,
                "only SAS tokens (SharedAccessSignature sr=..&sig=..&se=..&skn=..) are accepted; \
                 Microsoft Entra tokens cannot be checked by this endpoint"
                    .into(),
            );
        }
        let now = (now_ms() / 1000) as u64;
        match sas::validate(&token, self.ns.policies(), now)
            .and_then(|valid| valid.covers(&audience).map(|()| valid))
        {
            Ok(valid) => {
                tracing::debug!(%audience, resource = %valid.resource, "Token accepted");
                self.keep_token(valid);
                (202, "Accepted".into())
            }
            Err(err) => {
                tracing::debug!(%audience, error = %err, "Token refused");
                (401, format!("Unauthorized: {err}"))
            }
        }
    }
}
