//! The login gate's configuration: directive values in, an immutable `AuthConfig` out.
//!
//! The nginx adapter collects the `ward_auth_*` directive values into an `AuthSettings`
//! (parsing times with `parse_time` and secure modes with `CookieSecure::parse` at directive time,
//! so errors point at the nginx.conf line), then the master calls `AuthConfig::load` once at
//! config load: it reads the key and users files (they may be root-only, mode 0600), checks
//! every setting and prebuilds the token validation. The result is shared read-only by workers.

use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Validation;

use crate::credentials::UserDb;
use crate::error::AuthError;
use crate::keys::KeySet;

/// Name of the token cookie when `ward_auth_cookie` is not set.
pub const DEFAULT_COOKIE: &str = "ward_token";
/// Name of the CSRF double-submit cookie set with the login form.
pub const CSRF_COOKIE: &str = "ward_csrf";
/// Tokens longer than this are refused before any parsing.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// `ward_auth_cookie_secure on | off | auto`: when the cookies carry the `Secure` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CookieSecure {
    On,
    Off,
    /// `Secure` whenever the request came over TLS.
    #[default]
    Auto,
}

impl CookieSecure {
    /// Parses the directive argument.
    pub fn parse(value: &str) -> Result<CookieSecure, AuthError> {
        match value {
            "on" => Ok(CookieSecure::On),
            "off" => Ok(CookieSecure::Off),
            "auto" => Ok(CookieSecure::Auto),
            _ => Err(AuthError::Config(format!("ward_auth_cookie_secure: \"{value}\" is not one of on, off, auto"))),
        }
    }

    /// Whether a cookie set in answer to this request gets `Secure`.
    pub fn applies(self, secure_request: bool) -> bool {
        match self {
            CookieSecure::On => true,
            CookieSecure::Off => false,
            CookieSecure::Auto => secure_request,
        }
    }
}

/// Parses an nginx-style time: `45s`, `30m`, `8h`, `1d`, `2w`, `1h30m`, `500ms`; a bare number
/// is seconds (units as in nginx: ms s m h d w M=30d y=365d).
pub fn parse_time(value: &str) -> Result<Duration, AuthError> {
    let err = || AuthError::Config(format!("\"{value}\" is not a valid time (e.g. 45s, 30m, 8h, 1d)"));
    let mut total: u64 = 0; // milliseconds
    let mut rest = value.trim();
    if rest.is_empty() {
        return Err(err());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(err());
        }
        let (num, tail) = rest.split_at(digits);
        let n: u64 = num.parse().map_err(|_| err())?;
        let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(unit_len);
        let ms: u64 = match unit {
            "ms" => 1,
            "" | "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "M" => 30 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return Err(err()),
        };
        total = n.checked_mul(ms).and_then(|v| total.checked_add(v)).ok_or_else(err)?;
        rest = tail.trim_start();
    }
    Ok(Duration::from_millis(total))
}

/// The directive values, as the adapter collected them (after merging levels).
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `ward_auth_key_file`: required.
    pub key_file: Option<PathBuf>,
    /// `ward_auth_users_file`: required when `login` is set.
    pub users_file: Option<PathBuf>,
    /// `ward_auth_token_ttl` (default 8h): lifetime of issued tokens and of the cookie.
    pub token_ttl: Duration,
    /// `ward_auth_issuer`: required `iss` of accepted tokens, and `iss` of issued ones.
    pub issuer: Option<String>,
    /// `ward_auth_audience`: required `aud` of accepted tokens, and `aud` of issued ones.
    pub audience: Option<String>,
    /// `ward_auth_leeway` (default 30s): clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// `ward_auth_require_claim NAME VALUE` (repeatable): claims a token must carry, else 403.
    pub required_claims: Vec<(String, String)>,
    /// `ward_auth_cookie` (default `ward_token`).
    pub cookie_name: String,
    /// `ward_auth_cookie_secure` (default auto).
    pub cookie_secure: CookieSecure,
    /// Where browsers are sent to log in (the `location` holding `ward_auth_login`), default `/login`.
    pub login_path: String,
    /// `ward_auth_login` is used somewhere: issuing must be possible and a users file present.
    pub login: bool,
    /// Tokens longer than this are refused unparsed (default 8 KiB).
    pub max_token_len: usize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            key_file: None,
            users_file: None,
            token_ttl: Duration::from_secs(8 * 3600),
            issuer: None,
            audience: None,
            leeway: Duration::from_secs(30),
            required_claims: Vec::new(),
            cookie_name: DEFAULT_COOKIE.to_string(),
            cookie_secure: CookieSecure::Auto,
            login_path: "/login".to_string(),
            login: false,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
        }
    }
}

/// The loaded, immutable login gate configuration.
#[derive(Debug)]
pub struct AuthConfig {
    pub(crate) keys: KeySet,
    pub(crate) users: Option<UserDb>,
    pub(crate) ttl: Duration,
    pub(crate) issuer: Option<String>,
    pub(crate) audience: Option<String>,
    pub(crate) required_claims: Vec<(String, String)>,
    pub(crate) cookie_name: String,
    pub(crate) cookie_secure: CookieSecure,
    pub(crate) login_path: String,
    pub(crate) max_token_len: usize,
}

/// RFC 6265 cookie-name: an HTTP token.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn printable(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

impl AuthConfig {
    /// Reads the key and users files and checks every setting.
    pub fn load(settings: &AuthSettings) -> Result<AuthConfig, AuthError> {
        let key_file =
            settings.key_file.as_deref().ok_or_else(|| AuthError::Config("ward_auth_key_file is not set".into()))?;
        if !is_token(&settings.cookie_name) {
            return Err(AuthError::Config(format!(
                "ward_auth_cookie: \"{}\" is not a valid cookie name",
                settings.cookie_name
            )));
        }
        if settings.cookie_name == CSRF_COOKIE {
            return Err(AuthError::Config(format!("ward_auth_cookie: \"{CSRF_COOKIE}\" is reserved")));
        }
        let login_ok = settings.login_path.starts_with('/')
            && !settings.login_path.starts_with("//")
            && settings.login_path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\' && b != b'?' && b != b';');
        if !login_ok {
            return Err(AuthError::Config(format!(
                "the login path \"{}\" must be an absolute path like /login",
                settings.login_path
            )));
        }
        if settings.token_ttl.as_secs() == 0 {
            return Err(AuthError::Config("ward_auth_token_ttl must be at least 1s".into()));
        }
        for (what, value) in [("ward_auth_issuer", &settings.issuer), ("ward_auth_audience", &settings.audience)] {
            if let Some(v) = value {
                if v.is_empty() || !printable(v) {
                    return Err(AuthError::Config(format!("{what}: \"{v}\" must be non-empty printable text")));
                }
            }
        }
        for (name, _) in &settings.required_claims {
            if name.is_empty() {
                return Err(AuthError::Config("ward_auth_require_claim: the claim name is empty".into()));
            }
        }
        // Also keeps `now - leeway` in the expiry check far from underflow.
        if settings.leeway > Duration::from_secs(86_400) {
            return Err(AuthError::Config("ward_auth_leeway must be at most 1d".into()));
        }
        if settings.max_token_len < 64 {
            return Err(AuthError::Config("the maximum token length is too small".into()));
        }

        let mut keys = KeySet::load(key_file)?;
        let users = match &settings.users_file {
            Some(path) => Some(UserDb::load(path)?),
            None => None,
        };
        if settings.login {
            if !keys.can_sign() {
                return Err(AuthError::Config(format!(
                    "ward_auth_login needs an HMAC secret, a private key or an oct JWK in ward_auth_key_file {}, \
                     which holds only public keys (tokens issued elsewhere can still be verified)",
                    key_file.display()
                )));
            }
            if users.is_none() {
                return Err(AuthError::Config("ward_auth_login needs ward_auth_users_file".into()));
            }
        }

        // The claims policy shared by every key (each key then sets its own algorithm list).
        let mut policy = Validation::new(jsonwebtoken::Algorithm::HS256);
        policy.leeway = settings.leeway.as_secs();
        policy.validate_exp = true;
        policy.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &settings.issuer {
            Some(iss) => {
                policy.set_issuer(&[iss]);
                required.push("iss");
            }
            None => policy.iss = None,
        }
        match &settings.audience {
            Some(aud) => {
                policy.set_audience(&[aud]);
                required.push("aud");
            }
            // Without a configured audience, any `aud` is accepted.
            None => policy.validate_aud = false,
        }
        policy.set_required_spec_claims(&required);
        keys.finish(&policy);

        Ok(AuthConfig {
            keys,
            users,
            ttl: settings.token_ttl,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            required_claims: settings.required_claims.clone(),
            cookie_name: settings.cookie_name.clone(),
            cookie_secure: settings.cookie_secure,
            login_path: settings.login_path.clone(),
            max_token_len: settings.max_token_len,
        })
    }

    /// Whether tokens can be issued (built-in login, `ward token`).
    pub fn can_issue(&self) -> bool {
        self.keys.can_sign()
    }

    /// Lifetime of issued tokens.
    pub fn token_ttl(&self) -> Duration {
        self.ttl
    }

    /// Name of the token cookie.
    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    /// Path of the login page.
    pub fn login_path(&self) -> &str {
        &self.login_path
    }

    /// Whether a cookie set in answer to a request (over TLS or not) gets `Secure`.
    pub fn cookie_secure(&self, secure_request: bool) -> bool {
        self.cookie_secure.applies(secure_request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let ok: &[(&str, u64)] = &[
            ("45s", 45_000),
            ("30m", 1_800_000),
            ("8h", 28_800_000),
            ("1d", 86_400_000),
            ("1w", 604_800_000),
            ("1M", 2_592_000_000),
            ("1y", 31_536_000_000),
            ("90", 90_000),
            ("500ms", 500),
            ("1h30m", 5_400_000),
            ("1h 30m", 5_400_000),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_time(s).unwrap(), Duration::from_millis(*ms), "{s}");
        }
        for bad in ["", "h", "8x", "-1s", "1.5h", "8h!", "99999999999999999999y"] {
            let e = parse_time(bad).unwrap_err().to_string();
            assert!(e.contains("not a valid time"), "{bad}: {e}");
        }
    }

    #[test]
    fn secure_modes() {
        let cases = [
            ("on", false, true),
            ("on", true, true),
            ("off", true, false),
            ("auto", true, true),
            ("auto", false, false),
        ];
        for (mode, tls, want) in cases {
            assert_eq!(CookieSecure::parse(mode).unwrap().applies(tls), want, "{mode} {tls}");
        }
        assert!(CookieSecure::parse("yes").unwrap_err().to_string().contains("on, off, auto"));
    }

    #[test]
    fn settings_errors() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        crate::tests::write_mode(&key, &[1u8; 32], 0o600);
        let base = AuthSettings { key_file: Some(key.clone()), ..AuthSettings::default() };
        assert!(AuthConfig::load(&base).is_ok());
        let cases: Vec<(AuthSettings, &str)> = vec![
            (AuthSettings::default(), "ward_auth_key_file is not set"),
            (AuthSettings { cookie_name: "a b".into(), ..base.clone() }, "not a valid cookie name"),
            (AuthSettings { cookie_name: CSRF_COOKIE.into(), ..base.clone() }, "reserved"),
            (AuthSettings { login_path: "login".into(), ..base.clone() }, "absolute path"),
            (AuthSettings { login_path: "//evil".into(), ..base.clone() }, "absolute path"),
            (AuthSettings { token_ttl: Duration::ZERO, ..base.clone() }, "at least 1s"),
            (AuthSettings { leeway: Duration::from_secs(86_401), ..base.clone() }, "at most 1d"),
            (AuthSettings { issuer: Some(String::new()), ..base.clone() }, "ward_auth_issuer"),
            (AuthSettings { required_claims: vec![(String::new(), "x".into())], ..base.clone() }, "claim name"),
            (AuthSettings { login: true, ..base.clone() }, "ward_auth_users_file"),
            (AuthSettings { key_file: Some(dir.path().join("missing")), ..base.clone() }, "missing: No such file"),
        ];
        for (s, want) in cases {
            let e = AuthConfig::load(&s).unwrap_err().to_string();
            assert!(e.contains(want), "want {want:?} in {e:?}");
        }
    }

    #[test]
    fn world_readable_secret_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        crate::tests::write_mode(&key, &[1u8; 32], 0o644);
        let s = AuthSettings { key_file: Some(key), ..AuthSettings::default() };
        let e = AuthConfig::load(&s).unwrap_err().to_string();
        assert!(e.contains("world-readable") && e.contains("chmod 600") && e.contains("/key"), "{e}");
    }
}
