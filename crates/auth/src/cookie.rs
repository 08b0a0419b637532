//! Cookie reading (token and CSRF cookies from `Cookie` headers) and `Set-Cookie` values.
//!
//! Every cookie Ward sets is `HttpOnly; SameSite=Strict`, with `Secure` per
//! `ward_auth_cookie_secure`. The token cookie lives on `Path=/`; the CSRF cookie only on the
//! login path.

/// Lifetime of the CSRF cookie set with the login form (seconds).
pub const CSRF_MAX_AGE: u64 = 3600;

/// Finds the first cookie named `name` in the `Cookie` header values (HTTP/2 may send several).
/// Surrounding double quotes are removed from the value.
pub fn find_cookie<'a>(headers: &[&'a [u8]], name: &str) -> Option<&'a [u8]> {
    headers.iter().flat_map(|h| h.split(|b| *b == b';')).find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|b| *b == b'=')?;
        let (k, v) = (pair.get(..eq)?, pair.get(eq + 1..)?);
        if k.trim_ascii() != name.as_bytes() {
            return None;
        }
        let v = v.trim_ascii();
        Some(v.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(v))
    })
}

fn attributes(path: &str, max_age: u64, secure: bool) -> String {
    let mut s = format!("; HttpOnly; SameSite=Strict; Path={path}; Max-Age={max_age}");
    if max_age == 0 {
        s.push_str("; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
    }
    if secure {
        s.push_str("; Secure");
    }
    s
}

/// `Set-Cookie` value carrying a token (or any value) for `max_age` seconds on `Path=/`.
pub fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> String {
    format!("{name}={value}{}", attributes("/", max_age, secure))
}

/// `Set-Cookie` value removing cookie `name` from `path`.
pub fn clear_cookie(name: &str, path: &str, secure: bool) -> String {
    format!("{name}={}", attributes(path, 0, secure))
}

/// `Set-Cookie` value for the CSRF cookie, scoped to the login path.
pub fn csrf_cookie(name: &str, token: &str, login_path: &str, secure: bool) -> String {
    format!("{name}={token}{}", attributes(login_path, CSRF_MAX_AGE, secure))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::type_complexity)]
    fn find() {
        let cases: &[(&[&[u8]], &str, Option<&[u8]>)] = &[
            (&[b"ward_token=abc"], "ward_token", Some(b"abc")),
            (&[b"a=1; ward_token=abc; b=2"], "ward_token", Some(b"abc")),
            (&[b"a=1", b"ward_token=\"abc\""], "ward_token", Some(b"abc")),
            (&[b"ward_token_x=1; xward_token=2"], "ward_token", None),
            (&[b"ward_token=first; ward_token=second"], "ward_token", Some(b"first")),
            (&[b"ward_token="], "ward_token", Some(b"")),
            (&[b";;=;ward_token"], "ward_token", None),
            (&[], "ward_token", None),
        ];
        for (headers, name, want) in cases {
            assert_eq!(find_cookie(headers, name), *want, "{headers:?}");
        }
    }

    #[test]
    fn build() {
        assert_eq!(
            set_cookie("ward_token", "t", 28800, true),
            "ward_token=t; HttpOnly; SameSite=Strict; Path=/; Max-Age=28800; Secure"
        );
        assert_eq!(
            clear_cookie("ward_token", "/", false),
            "ward_token=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        );
        assert_eq!(
            csrf_cookie("ward_csrf", "c", "/login", false),
            "ward_csrf=c; HttpOnly; SameSite=Strict; Path=/login; Max-Age=3600"
        );
    }
}
