//! Ward login gate logic (tokens, credentials, login page), without nginx.
//!
//! The nginx adapter builds one [`AuthConfig`] per configuration at load (master process,
//! from [`AuthSettings`]), then calls [`AuthConfig::check`] in the access phase,
//! [`AuthConfig::login_get`] / [`AuthConfig::handle_login_post`] from `ward_auth_login` and
//! [`AuthConfig::logout_cookie`] from `ward_auth_logout`. The `ward` CLI uses
//! [`hash_password`], [`update_users_file`], [`generate_hmac_secret`] and [`issue_token`].

pub mod config;
pub mod cookie;
pub mod credentials;
pub mod error;
pub mod gate;
pub mod keys;
pub mod login;
pub mod redirect;
pub mod token;

pub use config::{parse_time, AuthConfig, AuthSettings, CookieSecure, CSRF_COOKIE, DEFAULT_COOKIE};
pub use credentials::{hash_password, update_users_file, valid_user_name, UserDb};
pub use error::AuthError;
pub use gate::{Decision, RequestView, CHALLENGE_INVALID, CHALLENGE_NO_TOKEN};
pub use keys::KeySet;
pub use login::{LoginFailure, LoginOutcome, LoginPage, LOGIN_PAGE_HEADERS};
pub use redirect::safe_next;
pub use token::{claim_text, issue_token, Claims, TokenError};

/// A new HMAC secret for `ward keygen`: 48 bytes from the OS RNG, base64url-encoded (64 ASCII
/// bytes, 384 bits), so the file's bytes are also a usable string for other issuers.
pub fn generate_hmac_secret() -> Result<Vec<u8>, AuthError> {
    use base64::Engine;
    let mut b = [0u8; 48];
    getrandom::getrandom(&mut b).map_err(|e| AuthError::Config(format!("OS random generator: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b).into_bytes())
}

#[cfg(test)]
mod tests;
