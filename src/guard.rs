//! The panic boundary and nginx logging helpers.
//!
//! Every `extern "C"` entry point wraps its body in one of the `catch*` functions: a panic
//! is caught, logged at `alert` and turned into the caller's fallback (500, NGX_ERROR,
//! NGX_CONF_ERROR), so it never unwinds into nginx.
//!
//! Request-time failures (a panic or an internal error while Ward inspects a request)
//! go through [`catch_request`] and [`report_failure`]: logged at `alert` with the
//! request's unique id, then answered by `ward_failure_mode` (closed: 500, the default;
//! open: the request passes uninspected). The worker lives on either way.

use std::any::Any;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use ngx::ffi::{
    ngx_conf_t, ngx_int_t, ngx_log_t, ngx_uint_t, NGX_ERROR, NGX_LOG_ALERT, NGX_LOG_EMERG, NGX_LOG_ERR, NGX_LOG_WARN,
    NGX_OK,
};

/// Runs `f`; on panic logs to `log` and returns `fallback`.
pub fn catch<R>(log: *mut ngx_log_t, what: &str, fallback: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => {
            let msg = format!("ward: panic in {what}: {}", panic_text(&payload));
            log_bytes(log, NGX_LOG_ALERT as ngx_uint_t, msg.as_bytes());
            fallback
        }
    }
}

/// For configuration callbacks returning `ngx_int_t`: an `Err(message)` or a panic is
/// reported at `emerg` and becomes NGX_ERROR.
pub fn catch_conf_status(cf: *mut ngx_conf_t, what: &str, f: impl FnOnce() -> Result<(), String>) -> ngx_int_t {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => NGX_OK as ngx_int_t,
        Ok(Err(msg)) => {
            conf_error(cf, &msg);
            NGX_ERROR as ngx_int_t
        }
        Err(payload) => {
            conf_error(cf, &format!("ward: panic in {what}: {}", panic_text(&payload)));
            NGX_ERROR as ngx_int_t
        }
    }
}

/// For directive setters and merge callbacks (which return a `char *`): `Err(message)` or
/// a panic is reported at `emerg` and becomes NGX_CONF_ERROR.
pub fn catch_conf(cf: *mut ngx_conf_t, what: &str, f: impl FnOnce() -> Result<(), String>) -> *mut c_char {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => std::ptr::null_mut(), // NGX_CONF_OK
        Ok(Err(msg)) => {
            // An empty message means the callee already logged (see conf_error_bare).
            if !msg.is_empty() {
                conf_error(cf, &msg);
            }
            ngx::core::NGX_CONF_ERROR
        }
        Err(payload) => {
            conf_error(cf, &format!("ward: panic in {what}: {}", panic_text(&payload)));
            ngx::core::NGX_CONF_ERROR
        }
    }
}

/// Like [`catch`] for request handlers that apply `ward_failure_mode` themselves: the
/// panic's text comes back as `Err` (nothing is logged here; see [`report_failure`]).
pub fn catch_request<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| format!("panic: {}", panic_text(&p)))
}

/// Logs a request-time failure at `alert`, naming the unique id and what the failure mode
/// does with the request (`answer` is e.g. "answering 500" or "passing the request").
pub fn report_failure(
    log: *mut ngx_log_t,
    what: &str,
    detail: &str,
    unique_id: Option<&str>,
    open: bool,
    answer: &str,
) {
    let mode = if open { "open" } else { "closed" };
    let msg = format!(
        "ward: internal failure in {what} [unique_id \"{}\"]: {detail}; ward_failure_mode {mode}: {answer}",
        unique_id.unwrap_or("-")
    );
    log_bytes(log, NGX_LOG_ALERT as ngx_uint_t, msg.as_bytes());
}

/// Test-only fault injection (issue #7). When the worker's environment holds
/// `WARD_FAULT_INJECTION=1` (nginx keeps it only with `env WARD_FAULT_INJECTION;` in the
/// main context), a request header `X-Ward-Fault: <point>` makes Ward fail at `point`:
/// `access`, `body` and `header-filter` panic there, `error` is an internal error in the
/// access phase. Read once per process; without the variable this is one cached load.
/// Never set it in production.
pub fn fault_requested<'a>(mut headers: impl Iterator<Item = (&'a [u8], &'a [u8])>, point: &str) -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if !*ENABLED.get_or_init(|| std::env::var_os("WARD_FAULT_INJECTION").is_some_and(|v| v == "1")) {
        return false;
    }
    headers.any(|(n, v)| n.eq_ignore_ascii_case(b"x-ward-fault") && v == point.as_bytes())
}

/// Panics when [`fault_requested`] says so (the injected panic of the tests).
pub fn inject_panic<'a>(headers: impl Iterator<Item = (&'a [u8], &'a [u8])>, point: &str) {
    if fault_requested(headers, point) {
        panic!("ward: injected fault at {point} (WARD_FAULT_INJECTION)");
    }
}

fn panic_text(payload: &Box<dyn Any + Send>) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(non-string payload)"
    }
}

/// `ngx_conf_log_error(NGX_LOG_EMERG, …)`: nginx appends ` in FILE:LINE` of the directive
/// being parsed. Messages that already carry their own `file:line` use [`conf_error_bare`].
pub fn conf_error(cf: *mut ngx_conf_t, msg: &str) {
    // SAFETY: nginx hands every configuration callback a valid `cf`; the format string is
    // NUL-terminated and `%*s` reads exactly `msg.len()` bytes of `msg`.
    unsafe {
        ngx::ffi::ngx_conf_log_error(NGX_LOG_EMERG as ngx_uint_t, cf, 0, c"%*s".as_ptr(), msg.len(), msg.as_ptr());
    }
}

/// Like [`conf_error`] without nginx's ` in FILE:LINE` suffix: used at merge time, where
/// nginx's current position is the end of the `http` block, not the culprit.
pub fn conf_error_bare(cf: *mut ngx_conf_t, msg: &str) {
    // SAFETY: `cf` is valid during the merge callback; `conf_file` is restored before
    // returning, and ngx_conf_log_error treats NULL as "no position".
    unsafe {
        let saved = (*cf).conf_file;
        (*cf).conf_file = std::ptr::null_mut();
        conf_error(cf, msg);
        (*cf).conf_file = saved;
    }
}

/// Writes `msg` to `log` at `level` (if the log's level admits it).
pub fn log_bytes(log: *mut ngx_log_t, level: ngx_uint_t, msg: &[u8]) {
    if log.is_null() {
        return;
    }
    // SAFETY: `log` is a live nginx log (the request's connection log or the cycle log)
    // for the duration of the callback; log_error formats with `%*s` over `msg`.
    unsafe {
        if level <= (*log).log_level {
            ngx::log::log_error(level, log, 0, msg);
        }
    }
}

/// Writes the engine's ModSecurity-format lines: `error` for denials, `warn` otherwise.
pub fn log_engine_messages(log: *mut ngx_log_t, messages: Vec<String>) {
    for line in messages {
        let level = if line.contains("Access denied") { NGX_LOG_ERR } else { NGX_LOG_WARN };
        log_bytes(log, level as ngx_uint_t, line.as_bytes());
    }
}
