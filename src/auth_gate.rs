//! The login gate in the access phase, the authenticated user kept for the request, and the
//! `$ward_auth_user` / `$ward_jwt_claim_NAME` variables.
//!
//! The gate's access handler is registered after the WAF's, and nginx runs a phase's
//! handlers in reverse registration order, so the token is checked before the WAF reads the
//! request body: a request without a valid token costs no body reading or rule evaluation.
//! Refusals finalize the request here (302 to the login page, 401 with `WWW-Authenticate`,
//! 403 for a missing required claim), as the WAF does, so `satisfy any` cannot undo them.

use std::ffi::c_void;

use ngx::ffi::{
    ngx_conf_t, ngx_http_phases_NGX_HTTP_ACCESS_PHASE, ngx_http_request_t, ngx_http_variable_value_t, ngx_int_t,
    ngx_str_t, ngx_table_elt_t, ngx_uint_t, NGX_DECLINED, NGX_DONE, NGX_ERROR, NGX_HTTP_FORBIDDEN,
    NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_UNAUTHORIZED, NGX_HTTP_VAR_NOCACHEABLE, NGX_HTTP_VAR_PREFIX, NGX_LOG_INFO,
};
use ward_auth::{claim_text, Claims, Decision, RequestView, TokenError};

use crate::config::LocConf;
use crate::guard;
use crate::request::{self, Req};

const DECLINED: ngx_int_t = NGX_DECLINED as ngx_int_t;
const DONE: ngx_int_t = NGX_DONE as ngx_int_t;
const SERVER_ERROR: ngx_int_t = NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;

/// Prefix of the per-claim variables.
const CLAIM_PREFIX: &str = "ward_jwt_claim_";

/// Adds the gate's access handler; call after the WAF's so that it runs first.
pub fn register(cf: *mut ngx_conf_t) -> Result<(), String> {
    crate::handler::push_phase_handler(cf, ngx_http_phases_NGX_HTTP_ACCESS_PHASE as usize, access_handler)
}

// ------------------------------------------------------------------ request view

/// The headers the gate reads, borrowed from the request.
pub struct Incoming<'r> {
    pub accept: Option<&'r [u8]>,
    pub authorization: Option<&'r [u8]>,
    pub cookies: Vec<&'r [u8]>,
}

impl<'r> Incoming<'r> {
    pub fn of(req: Req<'r>) -> Incoming<'r> {
        let mut inc = Incoming { accept: None, authorization: None, cookies: Vec::new() };
        for (name, value) in req.headers_in() {
            if name.eq_ignore_ascii_case(b"cookie") {
                inc.cookies.push(value);
            } else if name.eq_ignore_ascii_case(b"authorization") {
                inc.authorization.get_or_insert(value);
            } else if name.eq_ignore_ascii_case(b"accept") {
                inc.accept.get_or_insert(value);
            }
        }
        inc
    }

    pub fn view<'a>(&'a self, req: Req<'r>) -> RequestView<'a> {
        RequestView {
            method: req.method_name(),
            uri: req.unparsed_uri(),
            accept: self.accept,
            authorization: self.authorization,
            cookies: &self.cookies,
        }
    }
}

// ------------------------------------------------------------------ access phase

unsafe extern "C" fn access_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes the live request being processed.
    let Some(req) = (unsafe { Req::from_raw(r) }) else { return DECLINED };
    guard::catch(req.log(), "login gate", SERVER_ERROR, || access(req))
}

fn access(req: Req<'_>) -> ngx_int_t {
    if !req.is_main() {
        return DECLINED;
    }
    let Some(gate) = req.loc_conf::<LocConf>(crate::module()).and_then(|c| c.auth.gate()) else {
        return DECLINED;
    };
    let inc = Incoming::of(req);
    let status = match gate.check(&inc.view(req)) {
        Decision::Allow { user, claims } => {
            remember(req, user, claims);
            return DECLINED;
        }
        Decision::Redirect { location, reason } => {
            log_refusal(req, 302, &reason);
            if !request::set_location(req, location.as_bytes()) {
                return SERVER_ERROR;
            }
            302
        }
        Decision::Unauthorized { www_authenticate, reason } => {
            log_refusal(req, 401, &reason);
            if !set_www_authenticate(req, www_authenticate.as_bytes()) {
                return SERVER_ERROR;
            }
            NGX_HTTP_UNAUTHORIZED as ngx_int_t
        }
        Decision::Forbidden { user, reason } => {
            log_refusal(req, 403, &reason);
            remember(req, user, Claims::new());
            NGX_HTTP_FORBIDDEN as ngx_int_t
        }
    };
    // SAFETY: live request; finalizing with a status sends the (error_page-aware) answer.
    unsafe { ngx::ffi::ngx_http_finalize_request(req.raw(), status) };
    DONE
}

/// Refusals of a presented token are logged at `info` (a missing token is the normal
/// first visit and is not logged).
fn log_refusal(req: Req<'_>, status: u16, reason: &TokenError) {
    if *reason == TokenError::Missing {
        return;
    }
    let (client, _) = req.client_addr();
    let msg = format!("ward_auth: {status} from {client}: {reason}");
    guard::log_bytes(req.log(), NGX_LOG_INFO as ngx_uint_t, msg.as_bytes());
}

/// Adds `WWW-Authenticate` and points `headers_out.www_authenticate` at it (auth_request
/// copies that one from a subrequest).
pub fn set_www_authenticate(req: Req<'_>, value: &[u8]) -> bool {
    match push_header(req, b"WWW-Authenticate", value) {
        Some(h) => {
            // SAFETY: live request; `h` is in its output header list.
            unsafe { (*req.raw()).headers_out.www_authenticate = h };
            true
        }
        None => false,
    }
}

/// Appends an output header (key and value copied into the request pool).
pub fn push_header(req: Req<'_>, key: &[u8], value: &[u8]) -> Option<*mut ngx_table_elt_t> {
    let r = req.raw();
    // SAFETY: live request; the element and its strings live in the request pool, as
    // nginx's own add_header does; every field of the new element is written.
    unsafe {
        let h = ngx::ffi::ngx_list_push(&mut (*r).headers_out.headers).cast::<ngx_table_elt_t>();
        if h.is_null() {
            return None;
        }
        let k = ngx_str_t::from_bytes((*r).pool, key)?;
        let v = ngx_str_t::from_bytes((*r).pool, value)?;
        (*h).hash = 1;
        (*h).key = k;
        (*h).value = v;
        (*h).lowcase_key = std::ptr::null_mut();
        Some(h)
    }
}

// ------------------------------------------------------------------ who is logged in

/// The authenticated user of a request (kept in the request pool, so it survives internal
/// redirects and is shared with `auth_request` subrequests, which use the same pool).
pub struct AuthInfo {
    pub user: String,
    pub claims: Claims,
}

unsafe extern "C" fn info_cleanup(data: *mut c_void) {
    // SAFETY: `data` is the Box<AuthInfo> attached in `remember`.
    unsafe { crate::pool::drop_box::<AuthInfo>(data) }
}

/// Records the user (replacing an earlier one of the same request).
pub fn remember(req: Req<'_>, user: String, claims: Claims) {
    if let Some(info) = find(req) {
        *info = AuthInfo { user, claims };
        return;
    }
    // SAFETY: the request pool is live and outlives every reader of the value; on
    // allocation failure the variables are just "not found".
    let _ = unsafe { crate::pool::attach_with(req.pool(), AuthInfo { user, claims }, info_cleanup) };
}

/// The user recorded for this request, if any.
pub fn find<'r>(req: Req<'r>) -> Option<&'r mut AuthInfo> {
    let pool = req.pool();
    if pool.is_null() {
        return None;
    }
    let ours = info_cleanup as unsafe extern "C" fn(*mut c_void) as usize;
    // SAFETY: the pool's cleanup list is a NULL-terminated chain of live entries; the entry
    // with our handler holds a live Box<AuthInfo> (workers are single-threaded).
    unsafe {
        let mut c = (*pool).cleanup;
        while !c.is_null() {
            if (*c).handler.map(|h| h as usize) == Some(ours) && !(*c).data.is_null() {
                return Some(&mut *(*c).data.cast::<AuthInfo>());
            }
            c = (*c).next;
        }
    }
    None
}

// ------------------------------------------------------------------ variables

/// Registers `$ward_auth_user` and the `$ward_jwt_claim_` prefix (preconfiguration).
pub fn register_variables(cf: *mut ngx_conf_t) -> Result<(), String> {
    add_variable(cf, "ward_auth_user", NGX_HTTP_VAR_NOCACHEABLE as usize, get_user)?;
    add_variable(cf, CLAIM_PREFIX, (NGX_HTTP_VAR_NOCACHEABLE | NGX_HTTP_VAR_PREFIX) as usize, get_claim)
}

type GetFn = unsafe extern "C" fn(*mut ngx_http_request_t, *mut ngx_http_variable_value_t, usize) -> ngx_int_t;

fn add_variable(cf: *mut ngx_conf_t, name: &str, flags: usize, get: GetFn) -> Result<(), String> {
    let mut ngx_name = ngx_str_t { len: name.len(), data: name.as_ptr() as *mut u8 };
    // SAFETY: preconfiguration `cf` is live; nginx copies the name into its own pool.
    let v = unsafe { ngx::ffi::ngx_http_add_variable(cf, &mut ngx_name, flags) };
    if v.is_null() {
        return Err(format!("ward: cannot add variable ${name}"));
    }
    // SAFETY: nginx returned a live variable descriptor for us to fill in.
    unsafe {
        (*v).get_handler = Some(get);
        (*v).data = 0;
    }
    Ok(())
}

unsafe extern "C" fn get_user(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    // SAFETY: nginx passes the live request.
    let Some(req) = (unsafe { Req::from_raw(r) }) else { return NGX_ERROR as ngx_int_t };
    guard::catch(req.log(), "variable", NGX_ERROR as ngx_int_t, || {
        let user = find(req).map(|i| i.user.as_bytes());
        crate::variables::set_value(req, v, user)
    })
}

/// `data` is the variable's full name (an `ngx_str_t *`), as nginx passes to prefix variables.
unsafe extern "C" fn get_claim(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    data: usize,
) -> ngx_int_t {
    // SAFETY: nginx passes the live request.
    let Some(req) = (unsafe { Req::from_raw(r) }) else { return NGX_ERROR as ngx_int_t };
    guard::catch(req.log(), "variable", NGX_ERROR as ngx_int_t, || {
        let name = data as *const ngx_str_t;
        if name.is_null() {
            return crate::variables::set_value(req, v, None);
        }
        // SAFETY: for prefix variables nginx passes the name it looked up, alive for the call.
        let full = unsafe { (*name).as_bytes() };
        let claim = full
            .get(CLAIM_PREFIX.len()..)
            .filter(|_| full.len() > CLAIM_PREFIX.len())
            .and_then(|c| std::str::from_utf8(c).ok());
        let value = match (claim, find(req)) {
            (Some(c), Some(info)) => claim_text(&info.claims, c).map(|t| t.into_owned()),
            _ => None,
        };
        crate::variables::set_value(req, v, value.as_deref().map(str::as_bytes))
    })
}
