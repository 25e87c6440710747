//! Shared access signature tokens, as Event Hubs checks them.
//!
//! `SharedAccessSignature sr=<resource>&sig=<signature>&se=<expiry>&skn=<key name>`, where the
//! signature is base64(HMAC-SHA256(key as UTF-8 bytes, "<sr exactly as in the token>\n<se>")).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A token that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidToken {
    /// The decoded resource URI the token covers.
    pub resource: String,
    /// Unix seconds.
    pub expires_at: u64,
    pub key_name: String,
}

/// Why a token was refused. The message is sent back to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SasError {
    #[error("the token is not a SharedAccessSignature with sr, sig, se and skn")]
    Malformed,
    #[error("the token expired at {expired_at} (unix seconds)")]
    Expired { expired_at: u64 },
    #[error("no shared access policy is named `{0}`")]
    UnknownKeyName(String),
    #[error("the signature does not match the key of policy `{0}`")]
    BadSignature(String),
    #[error("the token for `{resource}` does not cover `{requested}`")]
    WrongResource { resource: String, requested: String },
}

/// SAS tokens signed with a policy key, handed to the official Rust SDK as a token credential
/// (the Rust SDK takes no connection strings). Each token is valid for an hour.
#[derive(Debug, Clone)]
pub struct SasCredential {
    /// What the tokens cover, e.g. `sb://localhost/`.
    pub resource: String,
    pub key_name: String,
    pub key: String,
}

#[async_trait::async_trait]
impl azure_core::credentials::TokenCredential for SasCredential {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        let expires =
            azure_core::time::OffsetDateTime::now_utc() + std::time::Duration::from_secs(3600);
        let token = sign(
            &self.resource,
            &self.key_name,
            &self.key,
            expires.unix_timestamp() as u64,
        );
        Ok(azure_core::credentials::AccessToken::new(
            azure_core::credentials::Secret::new(token),
            expires,
        ))
    }
}

/// Sign a token (for clients and tests).
pub fn sign(resource: &str, key_name: &str, key: &str, expires_at: u64) -> String {
    let sr = percent_encode(resource);
    let sig = signature(key, &sr, expires_at);
    format!(
        "SharedAccessSignature sr={sr}&sig={}&se={expires_at}&skn={key_name}",
        percent_encode(&sig)
    )
}

fn signature(key: &str, sr_as_sent: &str, expires_at: u64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(format!("{sr_as_sent}\n{expires_at}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Check `token` against the policies `(name, key)` at time `now` (unix seconds).
pub fn validate<'a>(
    token: &str,
    policies: impl IntoIterator<Item = (&'a str, &'a str)>,
    now: u64,
) -> Result<ValidToken, SasError> {
    let rest = token
        .trim()
        .strip_prefix("SharedAccessSignature ")
        .ok_or(SasError::Malformed)?;
    let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
    for part in rest.split('&') {
        let (k, v) = part.split_once('=').ok_or(SasError::Malformed)?;
        match k {
            "sr" => sr = Some(v),
            "sig" => sig = Some(v),
            "se" => se = Some(v),
            "skn" => skn = Some(v),
            _ => {}
        }
    }
    let (sr, sig, se, skn) = match (sr, sig, se, skn) {
        (Some(a), Some(b), Some(c), Some(d)) => (a, b, c, d),
        _ => return Err(SasError::Malformed),
    };
    let expires_at: u64 = se.parse().map_err(|_| SasError::Malformed)?;
    let key_name = percent_decode(skn).ok_or(SasError::Malformed)?;
    let key = policies
        .into_iter()
        .find(|(name, _)| *name == key_name)
        .map(|(_, key)| key)
        .ok_or_else(|| SasError::UnknownKeyName(key_name.clone()))?;
    let given = percent_decode(sig).ok_or(SasError::Malformed)?;
    if !constant_time_eq(signature(key, sr, expires_at).as_bytes(), given.as_bytes()) {
        return Err(SasError::BadSignature(key_name));
    }
    if expires_at <= now {
        return Err(SasError::Expired {
            expired_at: expires_at,
        });
    }
    Ok(ValidToken {
        resource: percent_decode(sr).ok_or(SasError::Malformed)?,
        expires_at,
        key_name,
    })
}

impl ValidToken {
    /// Whether the token covers `requested` (a URI or an entity path): the token's path must be
    /// a prefix of the requested path, segment-wise and case-insensitively; scheme and host are
    /// ignored (clients use sb://, amqp:// and amqps:// for the same entity).
    pub fn covers(&self, requested: &str) -> Result<(), SasError> {
        let have = entity_path(&self.resource);
        let want = entity_path(requested);
        // Compared as bytes: `have.len()` may fall inside a multi-byte character of `want`
        // (client-controlled), where slicing the str would panic.
        let (have, want) = (have.as_bytes(), want.as_bytes());
        let ok = have.is_empty()
            || (want.len() >= have.len()
                && want[..have.len()].eq_ignore_ascii_case(have)
                && want.get(have.len()).is_none_or(|&b| b == b'/'));
        if ok {
            Ok(())
        } else {
            Err(SasError::WrongResource {
                resource: self.resource.clone(),
                requested: requested.to_string(),
            })
        }
    }
}

/// The path of a resource URI without scheme, host and surrounding slashes.
pub fn entity_path(uri: &str) -> String {
    let without_scheme = uri.split_once("://").map(|(_, r)| r).unwrap_or(uri);
    let path = if uri.contains("://") {
        without_scheme.split_once('/').map(|(_, p)| p).unwrap_or("")
    } else {
        without_scheme
    };
    path.trim_matches('/').to_string()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// RFC 3986 percent-encoding of everything but unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decoding (`+` stays `+`, as in the SDKs' tokens); `None` on invalid input.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICIES: [(&str, &str); 1] = [("RootManageSharedAccessKey", "SAS_KEY_VALUE")];

    #[test]
    fn a_signed_token_validates_and_covers_its_entities() {
        let token = sign(
            "sb://localhost/events",
            "RootManageSharedAccessKey",
            "SAS_KEY_VALUE",
            2_000,
        );
        let valid = validate(&token, POLICIES, 1_000).unwrap();
        assert_eq!(valid.resource, "sb://localhost/events");
        assert_eq!(valid.expires_at, 2_000);
        valid
            .covers("amqp://127.0.0.1:5672/events/Partitions/0")
            .unwrap();
        valid
            .covers("events/ConsumerGroups/$Default/Partitions/3")
            .unwrap();
        valid.covers("sb://localhost/EVENTS").unwrap();
        assert!(
            valid.covers("sb://localhost/events2").is_err(),
            "prefix must end at a segment"
        );
        assert!(valid.covers("sb://localhost/other").is_err());
        let namespace_wide = sign(
            "sb://localhost/",
            "RootManageSharedAccessKey",
            "SAS_KEY_VALUE",
            2_000,
        );
        validate(&namespace_wide, POLICIES, 1_000)
            .unwrap()
            .covers("anything/at/all")
            .unwrap();
    }

    #[test]
    fn wrong_key_expired_unknown_policy_and_garbage_are_refused() {
        let wrong = sign(
            "sb://localhost/events",
            "RootManageSharedAccessKey",
            "nope",
            2_000,
        );
        assert!(matches!(
            validate(&wrong, POLICIES, 1_000),
            Err(SasError::BadSignature(_))
        ));
        let old = sign(
            "sb://localhost/events",
            "RootManageSharedAccessKey",
            "SAS_KEY_VALUE",
            999,
        );
        assert_eq!(
            validate(&old, POLICIES, 1_000),
            Err(SasError::Expired { expired_at: 999 })
        );
        let other = sign("sb://localhost/events", "send", "SAS_KEY_VALUE", 2_000);
        assert_eq!(
            validate(&other, POLICIES, 1_000),
            Err(SasError::UnknownKeyName("send".into()))
        );
        for garbage in [
            "",
            "Bearer x",
            "SharedAccessSignature sr=a",
            "SharedAccessSignature sr=a&sig=b&se=x&skn=c",
        ] {
            assert_eq!(
                validate(garbage, POLICIES, 1_000),
                Err(SasError::Malformed),
                "{garbage}"
            );
        }
    }

    #[test]
    fn non_ascii_resources_and_requests_never_panic() {
        let token = |resource: &str| ValidToken {
            resource: resource.into(),
            expires_at: 2_000,
            key_name: "k".into(),
        };
        // The token's path ends inside the requested path's 2-byte `é`.
        assert!(token("sb://h/ab").covers("sb://h/aé").is_err());
        assert!(token("sb://h/ab").covers("aé/x").is_err());
        assert!(token("sb://h/a").covers("😀").is_err());
        assert!(token("sb://h/é").covers("sb://h/e").is_err());
        // Non-ASCII paths still match themselves, segment-wise.
        token("sb://h/événements")
            .covers("événements/Partitions/0")
            .unwrap();
        assert!(token("sb://h/événements").covers("événements2").is_err());
        // ASCII case is ignored, other case is not (as before).
        token("sb://h/Événements").covers("Événements").unwrap();
        assert!(token("sb://h/événements").covers("Événements").is_err());
    }

    #[test]
    fn the_signature_is_over_sr_exactly_as_sent() {
        // A token signed over a lower-case-escaped sr (as some SDKs produce) still validates,
        // because the server signs the sr text it received, not a re-encoding of it.
        let sr = "sb%3a%2f%2flocalhost%2fevents";
        let sig = super::signature("SAS_KEY_VALUE", sr, 2_000);
        let token = format!(
            "SharedAccessSignature sr={sr}&sig={}&se=2000&skn=RootManageSharedAccessKey",
            percent_encode(&sig)
        );
        let valid = validate(&token, POLICIES, 1_000).unwrap();
        assert_eq!(valid.resource, "sb://localhost/events");
    }
}
