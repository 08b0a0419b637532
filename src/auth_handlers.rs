//! Content handlers of the login gate: `ward_auth_login` (GET: the form; POST: check the
//! credentials, set the token cookie, 303 back), `ward_auth_logout` (clear the cookie, 303 to
//! the login page) and `ward_auth_verify` (204 / 401 / 403 for nginx's `auth_request`).
//!
//! The login POST body is read with the adapter's body reader; when the WAF already read it
//! in the access phase (it inspects the login POST too), nginx hands it over at once.

use ngx::ffi::{
    ngx_chain_t, ngx_http_request_t, ngx_int_t, ngx_uint_t, off_t, NGX_DONE, NGX_ERROR, NGX_HTTP_FORBIDDEN,
    NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_NOT_ALLOWED, NGX_HTTP_UNAUTHORIZED, NGX_LOG_ERR, NGX_LOG_INFO,
    NGX_LOG_WARN, NGX_OK,
};
use ward_auth::cookie::find_cookie;
use ward_auth::{
    AuthConfig, Decision, LoginFailure, LoginOutcome, LoginPage, TokenError, CHALLENGE_INVALID, CHALLENGE_NO_TOKEN,
    CSRF_COOKIE, LOGIN_PAGE_HEADERS,
};

use crate::auth_gate::{push_header, remember, set_www_authenticate, Incoming};
use crate::body::{self, BodyRead};
use crate::config::LocConf;
use crate::guard;
use crate::request::{self, Req};

const SERVER_ERROR: ngx_int_t = NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
const ERROR: ngx_int_t = NGX_ERROR as ngx_int_t;
const OK: ngx_int_t = NGX_OK as ngx_int_t;

/// The gate configuration of the request's location (always loaded where a handler is set).
fn config<'r>(req: Req<'r>) -> Option<&'r AuthConfig> {
    req.loc_conf::<LocConf>(crate::module()).and_then(|c| c.auth.config.as_deref())
}

/// The request came over TLS (for `ward_auth_cookie_secure auto`).
fn over_tls(req: Req<'_>) -> bool {
    // SAFETY: a live request has a live connection; `ssl` is NULL on plain connections.
    unsafe {
        let c = (*req.raw()).connection;
        !c.is_null() && !(*c).ssl.is_null()
    }
}

fn query(req: Req<'_>) -> &[u8] {
    // SAFETY: live request; `args` is the query string (possibly empty).
    unsafe { (*req.raw()).args.as_bytes() }
}

/// Runs a content handler body behind the panic guard.
fn entry(r: *mut ngx_http_request_t, what: &str, f: impl FnOnce(Req<'_>) -> ngx_int_t) -> ngx_int_t {
    // SAFETY: nginx passes the live request to content handlers.
    let Some(req) = (unsafe { Req::from_raw(r) }) else { return ERROR };
    guard::catch(req.log(), what, SERVER_ERROR, || f(req))
}

/// Drops a request body nobody needs; Err carries the status to answer.
fn discard_body(req: Req<'_>) -> Result<(), ngx_int_t> {
    // SAFETY: live request.
    let rc = unsafe { ngx::ffi::ngx_http_discard_request_body(req.raw()) };
    if rc != OK {
        return Err(rc);
    }
    Ok(())
}

// ------------------------------------------------------------------ responses

/// Sends a complete response (headers, then `body` as one buffer) and returns what the
/// caller finalizes the request with.
fn send(req: Req<'_>, status: u16, content_type: Option<&str>, headers: &[(&str, &str)], body: &[u8]) -> ngx_int_t {
    let r = req.raw();
    for (k, v) in headers {
        if push_header(req, k.as_bytes(), v.as_bytes()).is_none() {
            return SERVER_ERROR;
        }
    }
    // SAFETY: live request not yet answered; strings and buffers come from its pool.
    unsafe {
        (*r).headers_out.status = status as ngx_uint_t;
        if let Some(ct) = content_type {
            let Some(s) = ngx::ffi::ngx_str_t::from_bytes((*r).pool, ct.as_bytes()) else {
                return SERVER_ERROR;
            };
            (*r).headers_out.content_type_len = s.len;
            (*r).headers_out.content_type = s;
            (*r).headers_out.content_type_lowcase = std::ptr::null_mut();
        }
        (*r).headers_out.content_length_n = body.len() as off_t;
        if body.is_empty() {
            (*r).set_header_only(1);
        }
        let rc = ngx::ffi::ngx_http_send_header(r);
        if rc == ERROR || rc > OK || (*r).header_only() != 0 {
            return rc;
        }
        let b = ngx::ffi::ngx_create_temp_buf((*r).pool, body.len());
        if b.is_null() {
            return SERVER_ERROR;
        }
        std::ptr::copy_nonoverlapping(body.as_ptr(), (*b).pos, body.len());
        (*b).last = (*b).pos.add(body.len());
        (*b).set_last_buf(u32::from(req.is_main()));
        (*b).set_last_in_chain(1);
        let mut out = ngx_chain_t { buf: b, next: std::ptr::null_mut() };
        ngx::ffi::ngx_http_output_filter(r, &mut out)
    }
}

/// Sends a login page with its security headers and cookies.
fn send_page(req: Req<'_>, page: &LoginPage) -> ngx_int_t {
    let mut headers: Vec<(&str, &str)> =
        LOGIN_PAGE_HEADERS.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("content-type")).copied().collect();
    let content_type = LOGIN_PAGE_HEADERS.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-type")).map(|(_, v)| *v);
    headers.extend(page.set_cookies.iter().map(|c| ("Set-Cookie", c.as_str())));
    send(req, page.status, content_type, &headers, page.body.as_bytes())
}

/// 303 See Other to `location` with `Set-Cookie` headers.
fn see_other(req: Req<'_>, location: &str, cookies: &[String]) -> ngx_int_t {
    if !request::set_location(req, location.as_bytes()) {
        return SERVER_ERROR;
    }
    let mut headers: Vec<(&str, &str)> = vec![("Cache-Control", "no-store")];
    headers.extend(cookies.iter().map(|c| ("Set-Cookie", c.as_str())));
    send(req, 303, None, &headers, b"")
}

/// Untrusted text (a submitted user name) made safe for one log line.
fn log_safe(s: &str) -> String {
    let mut out: String = s.chars().take(64).flat_map(char::escape_default).collect();
    if s.chars().count() > 64 {
        out.push_str("...");
    }
    out
}

// ------------------------------------------------------------------ ward_auth_login

pub unsafe extern "C" fn login_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    entry(r, "ward_auth_login", |req| {
        let Some(cfg) = config(req) else { return SERVER_ERROR };
        match req.method_name() {
            b"GET" | b"HEAD" => {
                if let Err(rc) = discard_body(req) {
                    return rc;
                }
                send_page(req, &cfg.login_get(query(req), over_tls(req)))
            }
            b"POST" => match body::read_request_body(req, login_body_ready) {
                BodyRead::Failed(rc) => rc,
                // The content phase finalizes with NGX_DONE, balancing the body reader's
                // reference; the callback answers.
                BodyRead::Started => NGX_DONE as ngx_int_t,
            },
            _ => NGX_HTTP_NOT_ALLOWED as ngx_int_t,
        }
    })
}

unsafe extern "C" fn login_body_ready(r: *mut ngx_http_request_t) {
    let rc = entry(r, "ward_auth_login POST", login_post);
    // SAFETY: live request whose body was read; this answers it.
    unsafe { ngx::ffi::ngx_http_finalize_request(r, rc) };
}

fn login_post(req: Req<'_>) -> ngx_int_t {
    let Some(cfg) = config(req) else { return SERVER_ERROR };
    // One byte over the form limit is enough for the crate to refuse it.
    let limit = ward_auth::login::MAX_FORM_LEN + 1;
    let mut form = Vec::new();
    let read = body::for_each_chunk(body::request_body_chain(req), |chunk| {
        let take = chunk.len().min(limit - form.len());
        form.extend_from_slice(chunk.get(..take).unwrap_or_default());
        form.len() < limit
    });
    if let Err(e) = read {
        let msg = format!("ward_auth: cannot read the login form: {e}");
        guard::log_bytes(req.log(), NGX_LOG_ERR as ngx_uint_t, msg.as_bytes());
        return SERVER_ERROR;
    }
    let inc = Incoming::of(req);
    let csrf = find_cookie(&inc.cookies, CSRF_COOKIE).and_then(|v| std::str::from_utf8(v).ok());
    let (client, _) = req.client_addr();
    match cfg.handle_login_post(&form, csrf, over_tls(req)) {
        LoginOutcome::Success { user, location, set_cookies } => {
            let msg = format!("ward_auth: user \"{}\" logged in from {client}", log_safe(&user));
            guard::log_bytes(req.log(), NGX_LOG_INFO as ngx_uint_t, msg.as_bytes());
            remember(req, user, Default::default());
            see_other(req, &location, &set_cookies)
        }
        LoginOutcome::Failure { reason, user, page } => {
            let why = match reason {
                LoginFailure::BadCredentials => "invalid username or password",
                LoginFailure::Csrf => "missing or wrong CSRF token",
                LoginFailure::BadForm => "malformed login form",
                LoginFailure::Unavailable => "login unavailable (no users file or signing key)",
            };
            let level = if reason == LoginFailure::Unavailable { NGX_LOG_ERR } else { NGX_LOG_WARN };
            let msg = format!(
                "ward_auth: failed login for user \"{}\" from {client}: {why}",
                log_safe(user.as_deref().unwrap_or(""))
            );
            guard::log_bytes(req.log(), level as ngx_uint_t, msg.as_bytes());
            send_page(req, &page)
        }
    }
}

// ------------------------------------------------------------------ ward_auth_logout

pub unsafe extern "C" fn logout_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    entry(r, "ward_auth_logout", |req| {
        let Some(cfg) = config(req) else { return SERVER_ERROR };
        if let Err(rc) = discard_body(req) {
            return rc;
        }
        let cookie = cfg.logout_cookie(over_tls(req));
        see_other(req, cfg.login_path(), &[cookie])
    })
}

// ------------------------------------------------------------------ ward_auth_verify

/// 204 for a valid token, 401 (with `WWW-Authenticate`) otherwise, 403 when a required
/// claim is missing. Works as an `auth_request` target (a subrequest) and directly.
pub unsafe extern "C" fn verify_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    entry(r, "ward_auth_verify", |req| {
        let Some(cfg) = config(req) else { return SERVER_ERROR };
        if let Err(rc) = discard_body(req) {
            return rc;
        }
        let inc = Incoming::of(req);
        let (status, challenge) = match cfg.check(&inc.view(req)) {
            Decision::Allow { user, claims } => {
                remember(req, user, claims);
                (204, None)
            }
            // A browser navigation is still answered 401 here: auth_request decides.
            Decision::Redirect { reason, .. } => {
                let c = if reason == TokenError::Missing { CHALLENGE_NO_TOKEN } else { CHALLENGE_INVALID };
                (NGX_HTTP_UNAUTHORIZED as u16, Some(c))
            }
            Decision::Unauthorized { www_authenticate, .. } => (NGX_HTTP_UNAUTHORIZED as u16, Some(www_authenticate)),
            Decision::Forbidden { .. } => (NGX_HTTP_FORBIDDEN as u16, None),
        };
        if let Some(c) = challenge {
            if !set_www_authenticate(req, c.as_bytes()) {
                return SERVER_ERROR;
            }
        }
        send(req, status, None, &[("Cache-Control", "no-store")], b"")
    })
}
