//! `$cbs`: put-token, the tokens a connection keeps, and authorization by them.

use super::connection::*;
use super::namespace::now_ms;
use crate::amqp::message::Message;
use crate::amqp::performative::{condition, AmqpError};
use crate::amqp::Value;
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

    /// Whether a valid token covers `entity`.
    pub(super) fn authorized(&mut self, entity: &str) -> Result<(), AmqpError> {
        let now = (now_ms() / 1000) as u64;
        self.tokens.retain(|t| t.expires_at > now);
        if self.tokens.iter().any(|t| t.covers(entity).is_ok()) {
            Ok(())
        } else {
            Err(AmqpError::new(
                condition::UNAUTHORIZED,
                format!(
                    "no valid token for `{entity}`: put a SAS token for it on $cbs first \
                     (status 401)"
                ),
            ))
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
