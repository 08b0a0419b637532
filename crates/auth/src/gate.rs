//! The access-phase decision: find the token, verify it, and say what to answer.
//!
//! The token comes from the token cookie or, when there is none, from
//! `Authorization: Bearer` — never from the query string. Without a valid token, a browser
//! navigation (GET whose `Accept` contains `text/html`) is redirected to the login page with
//! the original path in `next`; anything else gets 401 with a `WWW-Authenticate: Bearer` value.
//! A valid token lacking a `ward_auth_require_claim` gets 403 (no redirect: logging in again
//! would not help).

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::config::AuthConfig;
use crate::cookie::find_cookie;
use crate::redirect::safe_next;
use crate::token::{Claims, TokenError};

/// What the access phase needs from a request (borrowed from nginx's request; no nginx types).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestView<'a> {
    /// Request method, e.g. `GET`.
    pub method: &'a [u8],
    /// The original request target (path and query, as received), used for `next=`.
    pub uri: &'a [u8],
    /// The `Accept` header, if any.
    pub accept: Option<&'a [u8]>,
    /// The `Authorization` header, if any.
    pub authorization: Option<&'a [u8]>,
    /// Every `Cookie` header value (HTTP/2 may split cookies over several).
    pub cookies: &'a [&'a [u8]],
}

/// The answer of the access phase.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Let the request through; `user` is the token's `sub`.
    Allow { user: String, claims: Claims },
    /// 302 to `location` (the login page with `next=`).
    Redirect { location: String, reason: TokenError },
    /// 401 with `WWW-Authenticate: <www_authenticate>`.
    Unauthorized { www_authenticate: &'static str, reason: TokenError },
    /// 403: the token is valid but a required claim is missing or different.
    Forbidden { user: String, reason: TokenError },
}

/// `WWW-Authenticate` when no token was sent (RFC 6750 §3).
pub const CHALLENGE_NO_TOKEN: &str = "Bearer realm=\"ward\"";
/// `WWW-Authenticate` when the token was refused (RFC 6750 §3.1).
pub const CHALLENGE_INVALID: &str = "Bearer realm=\"ward\", error=\"invalid_token\"";

/// Characters escaped in the `next` query value (everything but unreserved and `/`).
const NEXT_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

fn contains_ci(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

/// The bearer token of an `Authorization` header (scheme case-insensitive).
fn bearer(header: &[u8]) -> Option<&[u8]> {
    let h = header.trim_ascii();
    let scheme = h.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    Some(h.get(7..)?.trim_ascii())
}

impl AuthConfig {
    /// The token of a request: the token cookie first, else `Authorization: Bearer`.
    pub fn find_token<'a>(&self, req: &RequestView<'a>) -> Option<&'a [u8]> {
        find_cookie(req.cookies, &self.cookie_name)
            .filter(|t| !t.is_empty())
            .or_else(|| req.authorization.and_then(bearer))
    }

    /// `Location` of the login page for a request: `<login_path>?next=<encoded original path>`.
    pub fn login_location(&self, uri: &[u8]) -> String {
        let next = std::str::from_utf8(uri).map_or("/", safe_next);
        format!("{}?next={}", self.login_path, utf8_percent_encode(next, NEXT_ESCAPE))
    }

    /// Decides the access phase for a request.
    pub fn check(&self, req: &RequestView<'_>) -> Decision {
        let result = match self.find_token(req) {
            Some(token) => self.authenticate(token),
            None => Err(TokenError::Missing),
        };
        let reason = match result {
            Ok((user, claims)) => match self.check_required(&claims) {
                Ok(()) => return Decision::Allow { user, claims },
                Err(reason) => return Decision::Forbidden { user, reason },
            },
            Err(e) => e,
        };
        let navigation = req.method == b"GET" && req.accept.is_some_and(|a| contains_ci(a, b"text/html"));
        if navigation {
            return Decision::Redirect { location: self.login_location(req.uri), reason };
        }
        let www_authenticate = if reason == TokenError::Missing { CHALLENGE_NO_TOKEN } else { CHALLENGE_INVALID };
        Decision::Unauthorized { www_authenticate, reason }
    }
}
