//! Response header filter (phase 3) and body filter (phase 4).
//!
//! Ward's filters sit below nginx's `headers` filter and above gzip (see the module order
//! in lib.rs): phase 3 sees `add_header` results, phase 4 the uncompressed body.
//!
//! Simplification: the response is not held back. A phase 3 intervention replaces the
//! response with the error status (headers are not sent yet); a phase 4 intervention
//! comes after the headers went out, so Ward logs it and aborts the connection instead.
//! A redirect decided in phase 3 answers 403 (nginx clears `Location` when it replaces
//! the response).

use std::ptr::addr_of_mut;

use ngx::ffi::{
    ngx_chain_t, ngx_http_output_body_filter_pt, ngx_http_output_header_filter_pt, ngx_http_request_t, ngx_int_t,
    NGX_ERROR,
};
use ward_engine::Disruptive;

use crate::body;
use crate::ctx;
use crate::guard;
use crate::handler;
use crate::request::Req;

const ERROR: ngx_int_t = NGX_ERROR as ngx_int_t;

// The next filters in nginx's chains. Written in postconfiguration (master, single
// thread, before any request), read-only while serving.
static mut NEXT_HEADER: ngx_http_output_header_filter_pt = None;
static mut NEXT_BODY: ngx_http_output_body_filter_pt = None;

/// Puts Ward's filters on top of the chains (called from postconfiguration, once per
/// configuration cycle, as every nginx filter does).
pub fn register() {
    // SAFETY: configuration time in the master: no request runs concurrently; the top
    // pointers are nginx's filter chain heads.
    unsafe {
        *addr_of_mut!(NEXT_HEADER) = ngx::ffi::ngx_http_top_header_filter;
        ngx::ffi::ngx_http_top_header_filter = Some(header_filter);
        *addr_of_mut!(NEXT_BODY) = ngx::ffi::ngx_http_top_body_filter;
        ngx::ffi::ngx_http_top_body_filter = Some(body_filter);
    }
}

fn next_header(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: set once at configuration; nginx's chain always ends in its own filter.
    match unsafe { *addr_of_mut!(NEXT_HEADER) } {
        // SAFETY: the next filter expects the same live request.
        Some(f) => unsafe { f(r) },
        None => ERROR,
    }
}

fn next_body(r: *mut ngx_http_request_t, chain: *mut ngx_chain_t) -> ngx_int_t {
    // SAFETY: as in next_header.
    match unsafe { *addr_of_mut!(NEXT_BODY) } {
        // SAFETY: the next filter expects the same live request and chain.
        Some(f) => unsafe { f(r, chain) },
        None => ERROR,
    }
}

/// Replaces the response with an error page (only valid before headers are sent).
fn replace_response(req: Req<'_>, status: ngx_int_t) -> ngx_int_t {
    // SAFETY: live request; nginx resets the output headers, keeps only our ctx, and
    // sends the error page through the filters again (our ctx marks it as intervened).
    unsafe { ngx::ffi::ngx_http_filter_finalize_request(req.raw(), addr_of_mut!(crate::ngx_http_ward_module), status) }
}

unsafe extern "C" fn header_filter(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes the live request whose headers are being sent.
    let Some(req) = (unsafe { Req::from_raw(r) }) else { return ERROR };
    let verdict = guard::catch_request(|| response_headers(req))
        .unwrap_or_else(|detail| failure_verdict(req, "header filter", &detail));
    match verdict {
        None => next_header(r),
        Some(status) if status == ERROR => ERROR,
        Some(status) => replace_response(req, status),
    }
}

/// `ward_failure_mode` in a filter: open passes the response on (the transaction is
/// retired), closed replaces it with a 500 (or closes the connection once headers went out).
fn failure_verdict(req: Req<'_>, what: &str, detail: &str) -> Option<ngx_int_t> {
    if handler::retire(req, what, detail) {
        None
    } else {
        Some(ngx::ffi::NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t)
    }
}

/// Phase 3. Some(status) asks to replace the response.
fn response_headers(req: Req<'_>) -> Option<ngx_int_t> {
    if !req.is_main() {
        return None;
    }
    let ctx = ctx::get(req)?;
    if ctx.intervened || ctx.response_headers_done {
        return None;
    }
    ctx.response_headers_done = true;
    guard::inject_panic(req.headers_in(), "header-filter");
    let tx = &mut ctx.tx;
    for (name, value) in req.headers_out() {
        tx.add_response_header(name, value);
    }
    let ct = req.content_type();
    if !ct.is_empty() {
        tx.add_response_header(b"Content-Type", ct);
    }
    if let Some(len) = req.content_length() {
        tx.add_response_header(b"Content-Length", len.to_string().as_bytes());
    }
    let status = u16::try_from(req.status()).unwrap_or(0);
    let protocol: &[u8] = if req.protocol().is_empty() { b"HTTP/1.1" } else { req.protocol() };
    let iv = tx.process_response_headers(status, protocol);
    handler::flush(req, ctx);
    match iv {
        Some(iv) => {
            ctx.intervened = true;
            Some(match iv.action {
                Disruptive::Drop => ngx::ffi::NGX_HTTP_CLOSE as ngx_int_t,
                _ => handler::deny_status(iv.status),
            })
        }
        None => {
            ctx.inspect_response_body = ctx.tx.wants_response_body();
            None
        }
    }
}

unsafe extern "C" fn body_filter(r: *mut ngx_http_request_t, chain: *mut ngx_chain_t) -> ngx_int_t {
    // SAFETY: nginx passes the live request and the chain being sent.
    let Some(req) = (unsafe { Req::from_raw(r) }) else { return ERROR };
    let verdict = guard::catch_request(|| response_body(req, chain))
        .unwrap_or_else(|detail| failure_verdict(req, "body filter", &detail));
    match verdict {
        None => next_body(r, chain),
        Some(status) if status == ERROR || req.header_sent() => ERROR,
        Some(status) => replace_response(req, status),
    }
}

/// Phase 4 feeding. Some(status) asks to stop the response.
fn response_body(req: Req<'_>, chain: *mut ngx_chain_t) -> Option<ngx_int_t> {
    if chain.is_null() || !req.is_main() {
        return None;
    }
    let ctx = ctx::get(req)?;
    if !ctx.inspect_response_body || ctx.intervened {
        return None;
    }
    let mut iv = None;
    let info = body::for_each_chunk(chain, |chunk| {
        iv = ctx.tx.append_response_body(chunk);
        iv.is_none()
    });
    let last = match info {
        Ok(info) => info.last,
        Err(e) => {
            let msg = format!("ward: cannot read the response body: {e}");
            guard::log_bytes(req.log(), ngx::ffi::NGX_LOG_ERR as usize, msg.as_bytes());
            false
        }
    };
    if iv.is_none() && last {
        ctx.inspect_response_body = false;
        iv = ctx.tx.process_response_body();
    }
    handler::flush(req, ctx);
    let iv = iv?;
    ctx.intervened = true;
    ctx.inspect_response_body = false;
    if req.header_sent() {
        guard::log_bytes(
            req.log(),
            ngx::ffi::NGX_LOG_ERR as usize,
            b"ward: response body intervention after headers were sent; closing the connection",
        );
    }
    Some(match iv.action {
        Disruptive::Drop => ngx::ffi::NGX_HTTP_CLOSE as ngx_int_t,
        _ => handler::deny_status(iv.status),
    })
}
