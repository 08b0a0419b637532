//! The built-in login: the HTML form (GET), the credential check and token issue (POST), and
//! the logout cookie.
//!
//! CSRF protection is double-submit: GET sets a random token in the `ward_csrf` cookie
//! (`SameSite=Strict`, scoped to the login path) and echoes it in the form's hidden
//! `csrf_token`; POST requires both to be equal (constant-time compare). Wrong password and
//! unknown user get the same answer (401, the form, one generic message) after the same work.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use percent_encoding::percent_decode;
use subtle::ConstantTimeEq;

use crate::config::{AuthConfig, CSRF_COOKIE};
use crate::cookie::{clear_cookie, csrf_cookie, set_cookie};
use crate::credentials::valid_user_name;
use crate::redirect::safe_next;

/// Login forms larger than this are refused without being parsed.
pub const MAX_FORM_LEN: usize = 16 * 1024;
/// Length of a CSRF token (32 random bytes, base64url).
const CSRF_LEN: usize = 43;

/// The one message shown for any credential failure (no user enumeration).
pub const MSG_BAD_CREDENTIALS: &str = "Invalid username or password.";
/// Shown when the CSRF check fails (stale form, cookies blocked, cross-site post).
pub const MSG_CSRF: &str = "Your sign-in form expired. Please try again.";
const MSG_UNAVAILABLE: &str = "Sign-in is not available right now.";

/// Headers the adapter should add to every login page answer.
pub const LOGIN_PAGE_HEADERS: &[(&str, &str)] = &[
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "no-store"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
];

/// An answer carrying the login page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginPage {
    /// 200 for GET; 400, 401, 403, 503 for failed POSTs.
    pub status: u16,
    /// The HTML page (send with `LOGIN_PAGE_HEADERS`).
    pub body: String,
    /// `Set-Cookie` values to send, one header each.
    pub set_cookies: Vec<String>,
}

/// Why a login POST failed (for the error log; the client sees only the page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// Body too large or not `application/x-www-form-urlencoded`-shaped.
    BadForm,
    /// CSRF cookie missing or different from the form's `csrf_token`.
    Csrf,
    /// Unknown user or wrong password (deliberately not told apart).
    BadCredentials,
    /// No users file or no signing key, or signing failed.
    Unavailable,
}

/// The result of a login POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Answer 303 See Other to `location` with every `set_cookies` value (token cookie, CSRF
    /// cookie cleared).
    Success { user: String, location: String, set_cookies: Vec<String> },
    /// Answer `page`; `user` is the submitted user name (untrusted: escape it when logging).
    Failure { reason: LoginFailure, user: Option<String>, page: LoginPage },
}

/// Escapes text for HTML element content and double-quoted attribute values.
fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Fields of an urlencoded body or query string, decoded to bytes; the first occurrence wins.
struct Form {
    username: Option<Vec<u8>>,
    password: Option<Vec<u8>>,
    csrf_token: Option<Vec<u8>>,
    next: Option<Vec<u8>>,
}

fn form_decode(v: &[u8]) -> Vec<u8> {
    let plus: Vec<u8> = v.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
    percent_decode(&plus).collect()
}

fn parse_form(body: &[u8]) -> Form {
    let mut f = Form { username: None, password: None, csrf_token: None, next: None };
    for pair in body.split(|b| *b == b'&') {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (pair.get(..i).unwrap_or_default(), pair.get(i + 1..).unwrap_or_default()),
            None => (pair, &b""[..]),
        };
        let slot = match form_decode(k).as_slice() {
            b"username" => &mut f.username,
            b"password" => &mut f.password,
            b"csrf_token" => &mut f.csrf_token,
            b"next" => &mut f.next,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(form_decode(v));
        }
    }
    f
}

/// A fresh random CSRF token (32 bytes from the OS RNG, base64url).
pub fn new_csrf_token() -> String {
    let mut b = [0u8; 32];
    // The OS RNG does not fail on Linux once booted; an all-zero token would still only be
    // as good as the SameSite cookie, never a bypass.
    let _ = getrandom::getrandom(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

fn csrf_ok(form: Option<&[u8]>, cookie: Option<&str>) -> bool {
    match (form, cookie) {
        (Some(f), Some(c)) if f.len() == CSRF_LEN && c.len() == CSRF_LEN => f.ct_eq(c.as_bytes()).into(),
        _ => false,
    }
}

/// `next` from a decoded form/query value, restricted to a safe same-site path.
fn next_of(v: Option<&[u8]>) -> String {
    let s = v.and_then(|b| std::str::from_utf8(b).ok()).unwrap_or("/");
    safe_next(s).to_string()
}

impl AuthConfig {
    /// The login page HTML: a form posting `username`, `password`, `csrf_token` and `next`
    /// to the login path. `error` is shown above the form (escaped).
    pub fn login_page(&self, next: &str, csrf: &str, error: Option<&str>) -> String {
        let action = escape_html(&self.login_path);
        let next = escape_html(safe_next(next));
        let csrf = escape_html(csrf);
        let error = match error {
            Some(m) => format!("<p class=\"error\" role=\"alert\" id=\"error\">{}</p>\n", escape_html(m)),
            None => String::new(),
        };
        let described = if error.is_empty() { "" } else { " aria-describedby=\"error\"" };
        format!(
            r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Sign in</title>
<style>
body{{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f4f5f7;color:#1d1d1f}}
main{{max-width:22rem;margin:12vh auto;padding:2rem;background:#fff;border-radius:.5rem;box-shadow:0 1px 4px rgba(0,0,0,.15)}}
h1{{font-size:1.4rem;margin:0 0 1.5rem}}
label{{display:block;font-weight:600;margin:1rem 0 .3rem}}
input{{box-sizing:border-box;width:100%;padding:.6rem;font-size:1rem;border:1px solid #767676;border-radius:.3rem}}
input:focus,button:focus{{outline:3px solid #0b57d0;outline-offset:1px}}
button{{margin-top:1.5rem;width:100%;padding:.7rem;font-size:1rem;font-weight:600;color:#fff;background:#0b57d0;border:0;border-radius:.3rem;cursor:pointer}}
.error{{padding:.6rem;border-radius:.3rem;background:#fdecea;color:#8a1c1c;border:1px solid #e0a0a0}}
</style>
</head>
<body>
<main>
<h1>Sign in</h1>
{error}<form method="post" action="{action}"{described}>
<input type="hidden" name="csrf_token" value="{csrf}">
<input type="hidden" name="next" value="{next}">
<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
</main>
</body>
</html>
"#
        )
    }

    fn page_with_new_csrf(&self, status: u16, next: &str, error: Option<&str>, secure_request: bool) -> LoginPage {
        let csrf = new_csrf_token();
        LoginPage {
            status,
            body: self.login_page(next, &csrf, error),
            set_cookies: vec![csrf_cookie(CSRF_COOKIE, &csrf, &self.login_path, self.cookie_secure(secure_request))],
        }
    }

    /// GET on the login location: the page with a fresh CSRF token (and its cookie).
    /// `query` is the raw query string (`next=...`).
    pub fn login_get(&self, query: &[u8], secure_request: bool) -> LoginPage {
        let form = parse_form(query);
        self.page_with_new_csrf(200, &next_of(form.next.as_deref()), None, secure_request)
    }

    /// POST on the login location: checks the CSRF token and the credentials, issues a token.
    /// `csrf_cookie` is the value of the `ward_csrf` cookie (see `cookie::find_cookie`).
    pub fn handle_login_post(&self, form_body: &[u8], csrf_cookie: Option<&str>, secure_request: bool) -> LoginOutcome {
        let fail = |reason, user: Option<String>, status, next: &str, msg| LoginOutcome::Failure {
            reason,
            user,
            page: self.page_with_new_csrf(status, next, Some(msg), secure_request),
        };
        let Some(users) = self.users.as_ref().filter(|_| self.can_issue()) else {
            return fail(LoginFailure::Unavailable, None, 503, "/", MSG_UNAVAILABLE);
        };
        if form_body.len() > MAX_FORM_LEN {
            return fail(LoginFailure::BadForm, None, 400, "/", MSG_BAD_CREDENTIALS);
        }
        let form = parse_form(form_body);
        let next = next_of(form.next.as_deref());
        let user_text = form.username.as_deref().map(|u| String::from_utf8_lossy(u).into_owned());
        if !csrf_ok(form.csrf_token.as_deref(), csrf_cookie) {
            return fail(LoginFailure::Csrf, user_text, 403, &next, MSG_CSRF);
        }
        // Names that cannot exist still cost a full (dummy) hash check.
        let name = form
            .username
            .as_deref()
            .and_then(|u| std::str::from_utf8(u).ok())
            .filter(|u| valid_user_name(u))
            .unwrap_or("");
        let password = form.password.as_deref().unwrap_or_default();
        if !users.verify(name, password) || name.is_empty() {
            return fail(LoginFailure::BadCredentials, user_text, 401, &next, MSG_BAD_CREDENTIALS);
        }
        match self.issue_token(name, &Default::default(), None) {
            Ok(token) => {
                let secure = self.cookie_secure(secure_request);
                LoginOutcome::Success {
                    user: name.to_string(),
                    location: next,
                    set_cookies: vec![
                        set_cookie(&self.cookie_name, &token, self.ttl.as_secs(), secure),
                        clear_cookie(CSRF_COOKIE, &self.login_path, secure),
                    ],
                }
            }
            Err(_) => fail(LoginFailure::Unavailable, user_text, 503, &next, MSG_UNAVAILABLE),
        }
    }

    /// `Set-Cookie` value that removes the token cookie (for `ward_auth_logout`).
    pub fn logout_cookie(&self, secure_request: bool) -> String {
        clear_cookie(&self.cookie_name, "/", self.cookie_secure(secure_request))
    }

    /// `Set-Cookie` value carrying a token (e.g. for an adapter issuing tokens itself).
    pub fn token_cookie(&self, token: &str, secure_request: bool) -> String {
        set_cookie(&self.cookie_name, token, self.ttl.as_secs(), self.cookie_secure(secure_request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape_html("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn form_parsing() {
        let f = parse_form(b"username=al%69ce&password=a+b%26c%3D&csrf_token=t&next=%2Fapp%3Fx%3D1&username=bob&x");
        assert_eq!(f.username.as_deref(), Some(&b"alice"[..]));
        assert_eq!(f.password.as_deref(), Some(&b"a b&c="[..]));
        assert_eq!(f.csrf_token.as_deref(), Some(&b"t"[..]));
        assert_eq!(f.next.as_deref(), Some(&b"/app?x=1"[..]));
        let f = parse_form(b"");
        assert!(f.username.is_none() && f.password.is_none());
        let f = parse_form(b"password=%ff%00");
        assert_eq!(f.password.as_deref(), Some(&[0xff, 0][..]));
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn csrf_compare() {
        let t = new_csrf_token();
        assert_eq!(t.len(), CSRF_LEN);
        assert_ne!(t, new_csrf_token());
        let other = new_csrf_token();
        let cases: &[(Option<&[u8]>, Option<&str>, bool)] = &[
            (Some(t.as_bytes()), Some(&t), true),
            (Some(t.as_bytes()), Some(&other), false),
            (Some(t.as_bytes()), None, false),
            (None, Some(&t), false),
            (Some(b""), Some(""), false),
            (Some(b"short"), Some("short"), false),
        ];
        for (f, c, want) in cases {
            assert_eq!(csrf_ok(*f, *c), *want, "{f:?} {c:?}");
        }
    }
}
