//! JWT verification and issuing with `jsonwebtoken`.
//!
//! Verification: size limit first (no parsing of oversized input), then shape (three base64url
//! parts), then key selection by `kid`, then the key's explicit algorithm allow-list, then the
//! signature, then `exp` (required), `nbf`, `iss`, `aud` (with leeway) and `sub` (required, it is
//! the user), and finally the `ward_auth_require_claim` list.
//! Issuing: `sub`, `iat`, `exp`, `iss`, `aud`, a random `jti`, plus extra claims.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, encode, Header};
use serde_json::{Map, Value};

use crate::config::AuthConfig;
use crate::error::AuthError;

/// Claims of a verified token.
pub type Claims = Map<String, Value>;

/// Why a token was refused (for logs; clients only see 302/401/403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// No token in the cookie nor in `Authorization: Bearer`.
    Missing,
    /// Longer than the configured maximum; not parsed.
    TooLarge,
    /// Not three base64url parts, or a header/payload that is not valid JSON.
    Malformed,
    /// The header names an algorithm the selected key does not allow (including `none`).
    Algorithm,
    /// The header's `kid` names no key of the key file.
    UnknownKid,
    /// The signature does not verify.
    Signature,
    Expired,
    NotYetValid,
    Issuer,
    Audience,
    /// A required registered claim (`exp`, `sub`, `iss`, `aud`) is missing or of the wrong type.
    MissingClaim(String),
    /// A `ward_auth_require_claim` is missing or has another value (answered with 403).
    Forbidden(String),
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Missing => f.write_str("no token"),
            TokenError::TooLarge => f.write_str("token too large"),
            TokenError::Malformed => f.write_str("malformed token"),
            TokenError::Algorithm => f.write_str("token algorithm not allowed for the key"),
            TokenError::UnknownKid => f.write_str("token kid matches no key"),
            TokenError::Signature => f.write_str("invalid token signature"),
            TokenError::Expired => f.write_str("token expired"),
            TokenError::NotYetValid => f.write_str("token not yet valid (nbf)"),
            TokenError::Issuer => f.write_str("wrong token issuer"),
            TokenError::Audience => f.write_str("wrong token audience"),
            TokenError::MissingClaim(c) => write!(f, "token claim \"{c}\" missing or invalid"),
            TokenError::Forbidden(c) => write!(f, "required claim \"{c}\" missing or not matching"),
        }
    }
}

fn map_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::Signature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::Issuer,
        ErrorKind::InvalidAudience => TokenError::Audience,
        ErrorKind::MissingRequiredClaim(c) | ErrorKind::InvalidClaimFormat(c) => TokenError::MissingClaim(c.clone()),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm | ErrorKind::InvalidAlgorithmName => {
            TokenError::Algorithm
        }
        // Keys that cannot be built for this algorithm (e.g. EC key with ES384 token) or a
        // signature of the wrong length also land here.
        ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidEddsaKey | ErrorKind::InvalidRsaKey(_) => TokenError::Signature,
        ErrorKind::Provider(_) | ErrorKind::Signing(_) | ErrorKind::RsaFailedSigning => TokenError::Signature,
        _ => TokenError::Malformed,
    }
}

/// A JWT is three non-empty base64url parts (RFC 7515 compact serialization).
fn well_formed(token: &[u8]) -> bool {
    let mut parts = 0;
    for part in token.split(|b| *b == b'.') {
        parts += 1;
        let sig_may_be_empty = parts == 3;
        if (part.is_empty() && !sig_may_be_empty)
            || !part.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        {
            return false;
        }
    }
    parts == 3
}

fn claim_matches(value: &Value, want: &str) -> bool {
    match value {
        Value::String(s) => s == want,
        Value::Array(items) => items.iter().any(|v| matches!(v, Value::String(s) if s == want)),
        Value::Bool(b) => want == if *b { "true" } else { "false" },
        Value::Number(n) => n.to_string() == want,
        _ => false,
    }
}

/// A claim as text for `$ward_jwt_claim_NAME`: strings as-is, other values as JSON.
pub fn claim_text<'a>(claims: &'a Claims, name: &str) -> Option<Cow<'a, str>> {
    match claims.get(name)? {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Null => None,
        other => Some(Cow::Owned(other.to_string())),
    }
}

/// The user is the token's `sub`, a non-empty string.
fn subject(claims: Claims) -> Result<(String, Claims), TokenError> {
    match claims.get("sub") {
        Some(Value::String(s)) if !s.is_empty() => Ok((s.clone(), claims)),
        _ => Err(TokenError::MissingClaim("sub".into())),
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn random_id() -> Result<String, AuthError> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).map_err(|e| AuthError::Issue(format!("OS random generator: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

impl AuthConfig {
    /// Verifies a token, required claims included; on success returns `(sub, claims)`.
    pub fn verify_token(&self, token: &[u8]) -> Result<(String, Claims), TokenError> {
        let (sub, claims) = self.authenticate(token)?;
        self.check_required(&claims)?;
        Ok((sub, claims))
    }

    /// Everything but the `ward_auth_require_claim` list (authentication, not authorization).
    pub(crate) fn authenticate(&self, token: &[u8]) -> Result<(String, Claims), TokenError> {
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        if token.len() > self.max_token_len {
            return Err(TokenError::TooLarge);
        }
        if !well_formed(token) {
            return Err(TokenError::Malformed);
        }
        let header = decode_header(token).map_err(|e| match e.kind() {
            // Unknown algorithm names (`none`, `HS1`, ...) fail header parsing.
            ErrorKind::Json(err) if err.to_string().contains("unknown variant") => TokenError::Algorithm,
            k => map_error(k),
        })?;
        // Keys for this kid (keys without a kid accept any); a kid nobody has is refused.
        let by_kid: Vec<_> = self
            .keys
            .verify
            .iter()
            .filter(|k| header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
            .collect();
        if by_kid.is_empty() {
            return Err(TokenError::UnknownKid);
        }
        let mut last = TokenError::Algorithm;
        for key in by_kid.into_iter().filter(|k| k.algs.contains(&header.alg)) {
            match decode::<Claims>(token, &key.key, &key.validation) {
                Ok(data) => return subject(data.claims),
                // Another key may have signed it (rotation without kid).
                Err(e) if matches!(map_error(e.kind()), TokenError::Signature) => last = TokenError::Signature,
                Err(e) => return Err(map_error(e.kind())),
            }
        }
        Err(last)
    }

    /// Checks the `ward_auth_require_claim` list.
    pub(crate) fn check_required(&self, claims: &Claims) -> Result<(), TokenError> {
        for (name, want) in &self.required_claims {
            if !claims.get(name).is_some_and(|v| claim_matches(v, want)) {
                return Err(TokenError::Forbidden(name.clone()));
            }
        }
        Ok(())
    }

    /// Issues a signed token for `sub` valid for `ttl` (the configured TTL when `None`), with
    /// `iat`, `exp`, `iss`/`aud` when configured, a random `jti`, and `extra` claims (which
    /// cannot override those).
    pub fn issue_token(&self, sub: &str, extra: &Claims, ttl: Option<Duration>) -> Result<String, AuthError> {
        let key = self.keys.sign.as_ref().ok_or_else(|| {
            AuthError::Issue("the key file holds no HMAC secret or private key to sign tokens with".into())
        })?;
        if sub.is_empty() {
            return Err(AuthError::Issue("the token subject is empty".into()));
        }
        let ttl = ttl.unwrap_or(self.ttl).as_secs().max(1);
        let iat = now();
        let mut claims = extra.clone();
        claims.insert("sub".into(), Value::from(sub));
        claims.insert("iat".into(), Value::from(iat));
        claims.insert("exp".into(), Value::from(iat.saturating_add(ttl)));
        claims.insert("jti".into(), Value::from(random_id()?));
        if let Some(iss) = &self.issuer {
            claims.insert("iss".into(), Value::from(iss.as_str()));
        }
        if let Some(aud) = &self.audience {
            claims.insert("aud".into(), Value::from(aud.as_str()));
        }
        let mut header = Header::new(key.alg);
        header.kid = key.kid.clone();
        encode(&header, &claims, &key.key).map_err(|e| AuthError::Issue(format!("signing failed: {e}")))
    }
}

/// Free-function form of [`AuthConfig::issue_token`] for the CLI.
pub fn issue_token(config: &AuthConfig, sub: &str, extra: &Claims, ttl: Option<Duration>) -> Result<String, AuthError> {
    config.issue_token(sub, extra, ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let cases: &[(&str, bool)] = &[
            ("a.b.c", true),
            ("a.b.", true),
            ("a.b", false),
            ("a.b.c.d", false),
            (".b.c", false),
            ("a..c", false),
            ("a.b.c=", false),
            ("a+b.c.d", false),
            ("a.b.c ", false),
            ("", false),
        ];
        for (t, want) in cases {
            assert_eq!(well_formed(t.as_bytes()), *want, "{t}");
        }
    }

    #[test]
    fn claim_matching() {
        let cases: &[(Value, &str, bool)] = &[
            (Value::from("admin"), "admin", true),
            (Value::from("Admin"), "admin", false),
            (serde_json::json!(["user", "admin"]), "admin", true),
            (serde_json::json!(["user"]), "admin", false),
            (Value::from(true), "true", true),
            (Value::from(3), "3", true),
            (Value::Null, "null", false),
            (serde_json::json!({"a": "admin"}), "admin", false),
        ];
        for (v, want, ok) in cases {
            assert_eq!(claim_matches(v, want), *ok, "{v} {want}");
        }
    }

    #[test]
    fn claim_texts() {
        let c: Claims = serde_json::from_str(r#"{"a":"x","b":3,"c":["r"],"d":null}"#).unwrap();
        assert_eq!(claim_text(&c, "a").as_deref(), Some("x"));
        assert_eq!(claim_text(&c, "b").as_deref(), Some("3"));
        assert_eq!(claim_text(&c, "c").as_deref(), Some("[\"r\"]"));
        assert_eq!(claim_text(&c, "d"), None);
        assert_eq!(claim_text(&c, "e"), None);
    }
}
