//! Access phase (phases 1 and 2) and log phase (phase 5).
//!
//! The access handler runs phase 1 on the request line and headers, then, when the rules
//! want the body, has nginx read all of it (`ngx_http_read_client_request_body`: kept in
//! `r->request_body`, so `proxy_pass` still sends it unchanged), returns NGX_DONE, and
//! resumes the phase engine from the body callback. On re-entry the context says the
//! decision is made and the handler answers it.

use std::sync::Arc;

use ngx::ffi::{
    ngx_conf_t, ngx_http_conf_ctx_t, ngx_http_core_main_conf_t, ngx_http_handler_pt,
    ngx_http_phases_NGX_HTTP_ACCESS_PHASE, ngx_http_phases_NGX_HTTP_LOG_PHASE, ngx_http_request_t, ngx_int_t,
    NGX_DECLINED, NGX_DONE, NGX_HTTP_CLOSE, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_OK,
};
use ward_engine::{Disruptive, Intervention, RuleSet};

use crate::body::{self, BodyRead};
use crate::config::LocConf;
use crate::ctx::{self, RequestCtx, Stage};
use crate::guard;
use crate::request::{self, Req};

const DECLINED: ngx_int_t = NGX_DECLINED as ngx_int_t;
const DONE: ngx_int_t = NGX_DONE as ngx_int_t;
const SERVER_ERROR: ngx_int_t = NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;

/// Adds the access and log phase handlers (called from postconfiguration).
pub fn register(cf: *mut ngx_conf_t) -> Result<(), String> {
    push_phase_handler(cf, ngx_http_phases_NGX_HTTP_ACCESS_PHASE as usize, access_handler)?;
    push_phase_handler(cf, ngx_http_phases_NGX_HTTP_LOG_PHASE as usize, log_handler)
}

pub(crate) fn push_phase_handler(
    cf: *mut ngx_conf_t,
    phase: usize,
    h: unsafe extern "C" fn(*mut ngx_http_request_t) -> ngx_int_t,
) -> Result<(), String> {
    // SAFETY: postconfiguration runs with `cf->ctx` = the http block's conf ctx; the core
    // module's main conf holds the per-phase handler arrays of ngx_http_handler_pt.
    unsafe {
        let ctx = (*cf).ctx.cast::<ngx_http_conf_ctx_t>();
        let cmcf =
            (*(*ctx).main_conf.add(ngx::ffi::ngx_http_core_module.ctx_index)).cast::<ngx_http_core_main_conf_t>();
        let slot = ngx::ffi::ngx_array_push(&mut (*cmcf).phases[phase].handlers).cast::<ngx_http_handler_pt>();
        if slot.is_null() {
            return Err("ward: cannot register phase handler".into());
        }
        *slot = Some(h);
    }
    Ok(())
}

unsafe extern "C" fn access_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes the live request being processed.
    let Some(req) = (unsafe { Req::from_raw(r) }) else { return DECLINED };
    match guard::catch_request(|| access(req)) {
        Ok(rc) => rc,
        Err(detail) => fail(req, "access handler", &detail),
    }
}

/// A failure while inspecting the request (panic or internal error): logged with the
/// unique id, then answered per `ward_failure_mode` — 500 (closed) or NGX_DECLINED
/// (open: the request goes on uninspected).
fn fail(req: Req<'_>, what: &str, detail: &str) -> ngx_int_t {
    if retire(req, what, detail) {
        DECLINED
    } else {
        SERVER_ERROR
    }
}

/// Logs a request-time failure and retires the transaction so no later phase or filter
/// runs the engine on it again. Returns whether `ward_failure_mode` is open.
pub fn retire(req: Req<'_>, what: &str, detail: &str) -> bool {
    let open = req.loc_conf::<LocConf>(crate::module()).is_some_and(LocConf::failure_open);
    let mut unique_id = None;
    if let Some(ctx) = ctx::get(req) {
        ctx.stage = Stage::Decided;
        ctx.decision = DECLINED;
        // Closed: the answer is Ward's error page, which the filters must leave alone.
        ctx.intervened = !open;
        ctx.response_headers_done = true;
        ctx.inspect_response_body = false;
        unique_id = Some(ctx.unique_id.clone());
    }
    let answer = if open { "passing the request uninspected" } else { "answering 500" };
    guard::report_failure(req.log(), what, detail, unique_id.as_deref(), open, answer);
    open
}

fn access(req: Req<'_>) -> ngx_int_t {
    if !req.is_main() {
        return DECLINED;
    }
    if let Some(ctx) = ctx::get(req) {
        // Re-entry: after the body was read, or after an internal redirect.
        return match ctx.stage {
            Stage::ReadingBody => DONE,
            Stage::Decided => {
                let decision = take_decision(ctx);
                respond(req, decision)
            }
        };
    }
    let Some(rules) = req.loc_conf::<LocConf>(crate::module()).and_then(LocConf::active_rules) else {
        return DECLINED;
    };
    start(req, rules.clone())
}

/// Phase 1, then the body (phase 2) or the decision.
fn start(req: Req<'_>, rules: Arc<RuleSet>) -> ngx_int_t {
    let Some(ctx) = ctx::create(req, RequestCtx::new(rules, unique_id(req))) else {
        return fail(req, "access handler", "cannot attach the request context (out of memory)");
    };
    let tx = &mut ctx.tx;
    let (client_ip, client_port) = req.client_addr();
    let (server_ip, server_port) = req.server_addr();
    tx.process_connection(&client_ip, client_port, server_ip.as_str(), server_port);
    tx.process_uri(req.unparsed_uri(), req.method_name(), req.protocol());
    tx.set_server_name(req.host());
    for (name, value) in req.headers_in() {
        tx.add_request_header(name, value);
    }
    let iv = tx.process_request_headers();
    // After the engine saw the client's headers: the id header is Ward's, not the client's.
    if let Some(conf) = req.loc_conf::<LocConf>(crate::module()) {
        ctx.audit = conf.audit.clone();
        if let Some(name) = &conf.unique_id_header {
            if !crate::audit_log::set_unique_id_header(req, name, &ctx.unique_id) {
                return fail(req, "access handler", "cannot set the unique id header (out of memory)");
            }
        }
    }
    flush(req, ctx);
    if guard::fault_requested(req.headers_in(), "error") {
        return fail(req, "access handler", "injected internal error (WARD_FAULT_INJECTION)");
    }
    guard::inject_panic(req.headers_in(), "access");
    if let Some(iv) = iv {
        ctx.stage = Stage::Decided;
        ctx.decision = intervene(req, ctx, &iv);
        let decision = take_decision(ctx);
        return respond(req, decision);
    }
    if !ctx.tx.wants_request_body() {
        decide_after_body(req, ctx);
        let decision = take_decision(ctx);
        return respond(req, decision);
    }
    ctx.stage = Stage::ReadingBody;
    // `ctx` is not used past this point: the body callback may run (and re-enter the
    // phase engine) before read_request_body returns.
    match body::read_request_body(req, body_ready) {
        BodyRead::Failed(rc) => rc,
        BodyRead::Started => {
            // Balances the reference read_client_request_body took on the request.
            // SAFETY: live request; the standard pattern after starting a body read.
            unsafe { ngx::ffi::ngx_http_finalize_request(req.raw(), DONE) };
            DONE
        }
    }
}

/// Body callback: feed the body, run phase 2, resume the phases at the access handler.
unsafe extern "C" fn body_ready(r: *mut ngx_http_request_t) {
    // SAFETY: nginx passes the live request whose body it just read.
    let Some(req) = (unsafe { Req::from_raw(r) }) else { return };
    let res = guard::catch_request(|| {
        if let Some(ctx) = ctx::get(req) {
            guard::inject_panic(req.headers_in(), "body");
            feed_request_body(req, ctx);
            decide_after_body(req, ctx);
        }
    });
    // Open mode: the retired context answers NGX_DECLINED when the phases resume.
    let failed_closed = match res {
        Ok(()) => false,
        Err(detail) => fail(req, "request body handler", &detail) == SERVER_ERROR,
    };
    // SAFETY: live request; keep the body for error_page redirects and proxying, then
    // let the phase engine continue where the access handler paused.
    unsafe {
        (*r).set_preserve_body(1);
        if failed_closed {
            ngx::ffi::ngx_http_finalize_request(r, SERVER_ERROR);
            return;
        }
        (*r).write_event_handler = Some(ngx::ffi::ngx_http_core_run_phases);
        ngx::ffi::ngx_http_core_run_phases(r);
    }
}

fn feed_request_body(req: Req<'_>, ctx: &mut RequestCtx) {
    let mut iv: Option<Intervention> = None;
    let res = body::for_each_chunk(body::request_body_chain(req), |chunk| {
        iv = ctx.tx.append_request_body(chunk);
        iv.is_none()
    });
    if let Err(e) = res {
        let msg = format!("ward: cannot read the request body: {e}");
        guard::log_bytes(req.log(), ngx::ffi::NGX_LOG_ERR as usize, msg.as_bytes());
    }
    if let Some(iv) = iv {
        flush(req, ctx);
        ctx.stage = Stage::Decided;
        ctx.decision = intervene(req, ctx, &iv);
    }
}

/// Phase 2 (unless the body already decided) and the access-phase answer.
fn decide_after_body(req: Req<'_>, ctx: &mut RequestCtx) {
    if ctx.stage == Stage::Decided && ctx.intervened {
        return;
    }
    let iv = ctx.tx.process_request_body();
    flush(req, ctx);
    ctx.stage = Stage::Decided;
    ctx.decision = match iv {
        Some(iv) => intervene(req, ctx, &iv),
        None => DECLINED,
    };
}

/// The pending answer; later entries (error_page and other internal redirects of the
/// same request) decline, so Ward's own error page is served normally.
fn take_decision(ctx: &mut RequestCtx) -> ngx_int_t {
    std::mem::replace(&mut ctx.decision, DECLINED)
}

/// Turns the decision into the access handler's return value. Interventions finalize
/// the request here (so `satisfy any` cannot turn Ward's 403 into an allow).
fn respond(req: Req<'_>, decision: ngx_int_t) -> ngx_int_t {
    if decision == DECLINED {
        return DECLINED;
    }
    // SAFETY: live request; finalizing with a status sends the (error_page-aware) error
    // response or closes the connection for 444.
    unsafe { ngx::ffi::ngx_http_finalize_request(req.raw(), decision) };
    DONE
}

/// Applies an intervention's side effects and returns the status to answer with.
pub fn intervene(req: Req<'_>, ctx: &mut RequestCtx, iv: &Intervention) -> ngx_int_t {
    ctx.intervened = true;
    match &iv.action {
        Disruptive::Deny => deny_status(iv.status),
        Disruptive::Drop => NGX_HTTP_CLOSE as ngx_int_t,
        Disruptive::Redirect(url) => {
            if !request::set_location(req, url.as_bytes()) {
                return SERVER_ERROR;
            }
            match iv.status {
                s @ (301 | 302 | 303 | 307 | 308) => s as ngx_int_t,
                _ => 302,
            }
        }
    }
}

/// Statuses nginx can answer as an error page (403 otherwise, as ModSecurity).
pub fn deny_status(status: u16) -> ngx_int_t {
    match status {
        400..=599 => status as ngx_int_t,
        _ => 403,
    }
}

/// Writes the engine's pending log lines to the request's error log.
pub fn flush(req: Req<'_>, ctx: &mut RequestCtx) {
    let lines = ctx.tx.take_messages();
    if !lines.is_empty() {
        guard::log_engine_messages(req.log(), lines);
    }
}

unsafe extern "C" fn log_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx passes the live request being logged.
    let Some(req) = (unsafe { Req::from_raw(r) }) else { return NGX_OK as ngx_int_t };
    guard::catch(req.log(), "log handler", NGX_OK as ngx_int_t, || {
        if req.is_main() {
            if let Some(ctx) = ctx::get(req) {
                ctx.tx.process_logging();
                flush(req, ctx);
                crate::audit_log::log_phase(req, ctx);
            }
        }
        NGX_OK as ngx_int_t
    })
}

/// A per-request id: time in ms, the connection serial, the request count on the
/// connection (all unique across workers together) and a random tail.
fn unique_id(req: Req<'_>) -> String {
    let tp = ngx::ffi::ngx_timeofday();
    let (conn, reqs) = req.connection_serial();
    let rand = ngx::ffi::ngx_random() as u32;
    use std::fmt::Write;
    // Sized once: `format!` grew its string three times.
    let mut id = String::with_capacity(48);
    let _ = write!(id, "{}{:03}-{conn:x}-{reqs:x}-{rand:08x}", tp.sec, tp.msec);
    id
}
