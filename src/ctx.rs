//! Per-request state: the engine transaction and where the request is in Ward's phases.
//!
//! The context lives in the request pool (dropped by a pool cleanup). nginx wipes
//! `r->ctx` on internal redirects (error_page, index, try_files); the pool survives, so
//! [`get`] finds the context again through its cleanup handler and re-attaches it.
//! That is what keeps one request = one transaction.

use std::cell::Cell;
use std::ffi::c_void;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ngx::ffi::{ngx_event_t, ngx_msec_t};
use ward_engine::{RuleSet, Transaction};

use crate::request::Req;

/// Where the access-phase work stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Phase 1 done, body being read by nginx.
    ReadingBody,
    /// Phases 1-2 done; `decision` is what the access phase answers.
    Decided,
}

pub struct RequestCtx {
    pub tx: Transaction,
    pub unique_id: String,
    pub stage: Stage,
    /// Access-phase answer once decided: NGX_DECLINED (go on) or an HTTP status.
    pub decision: isize,
    /// An intervention was applied (the response is Ward's own error page).
    pub intervened: bool,
    pub response_headers_done: bool,
    /// Phase 4 wants the response body and has not run yet.
    pub inspect_response_body: bool,
    /// Where the log phase writes this transaction's audit record.
    pub audit: Option<crate::audit_log::AuditTarget>,
    /// Last field: dropped after the transaction, whose memory it may give back.
    _live: Live,
}

impl RequestCtx {
    pub fn new(rules: Arc<RuleSet>, unique_id: String) -> Self {
        let tx = Transaction::new(rules, &unique_id);
        RequestCtx {
            tx,
            unique_id,
            stage: Stage::ReadingBody,
            decision: ngx::ffi::NGX_DECLINED as isize,
            intervened: false,
            response_headers_done: false,
            inspect_response_body: false,
            audit: None,
            _live: Live::new(),
        }
    }
}

thread_local! {
    /// Transactions alive in this (single-threaded) worker.
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static LAST_TRIM: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// At most one heap trim per this interval (a worker whose requests never overlap would
/// otherwise trim after each one).
const TRIM_INTERVAL: Duration = Duration::from_secs(1);

/// Counts the worker's live transactions; the last one of a burst gives the heap back.
///
/// Concurrent transactions with large bodies (16 connections posting 1 MB forms: ~2 MB
/// each, the body and its parsed arguments) spread small allocations over the heap, and
/// glibc can only shrink it from its top: after the load the worker kept ~35 MB more
/// than before (docs/bench.md, "Worker memory"), though Ward's live heap was back where
/// it started. When no transaction is left, `malloc_trim` releases the free pages.
struct Live;

impl Live {
    fn new() -> Live {
        LIVE.set(LIVE.get() + 1);
        Live
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let live = LIVE.get().saturating_sub(1);
        LIVE.set(live);
        if live > 0 {
            return;
        }
        match LAST_TRIM.get().map(|t| t.elapsed()) {
            Some(since) if since < TRIM_INTERVAL => defer_trim(TRIM_INTERVAL - since),
            _ => trim_now(),
        }
    }
}

fn trim_now() {
    LAST_TRIM.set(Some(Instant::now()));
    crate::config::release_free_heap();
}

thread_local! {
    /// The worker's deferred-trim timer event (leaked: it lives as long as the worker).
    static TRIM_EVENT: std::cell::OnceCell<*mut ngx_event_t> = const { std::cell::OnceCell::new() };
}

/// A burst that ends within [`TRIM_INTERVAL`] of the last trim is trimmed when the
/// interval is up (if no transaction is alive then). Skipping it left the burst's free
/// heap resident until some later request ended (a worker at 85 MB instead of 40 after
/// 16 connections posting 1 MB forms).
fn defer_trim(after: Duration) {
    TRIM_EVENT.with(|cell| {
        let ev = *cell.get_or_init(|| {
            // SAFETY: nginx allocates its events zeroed (ngx_pcalloc): all-zero is a valid
            // idle event. `ngx_cycle` is the worker's live cycle (set before any request).
            unsafe {
                let ev: *mut ngx_event_t = Box::into_raw(Box::new(std::mem::zeroed()));
                (*ev).handler = Some(trim_timer);
                (*ev).log = (*ngx::ffi::ngx_cycle).log;
                // A graceful shutdown does not wait for it.
                (*ev).set_cancelable(1);
                ev
            }
        });
        // SAFETY: `ev` lives for the worker's life; this runs in the worker's event loop
        // (a request pool's cleanup), where nginx's timer tree may be changed.
        unsafe {
            if (*ev).timer_set() == 0 {
                ngx::ffi::ngx_add_timer(ev, after.as_millis() as ngx_msec_t + 1);
            }
        }
    });
}

unsafe extern "C" fn trim_timer(ev: *mut ngx_event_t) {
    // SAFETY: `ev` is the event registered in `defer_trim`, with its log set.
    let log = unsafe { (*ev).log };
    crate::guard::catch(log, "the heap trim timer", (), || {
        if LIVE.get() == 0 {
            trim_now();
        }
    });
}

/// Pool cleanup for the context (also its identity when searching the cleanup list).
unsafe extern "C" fn ctx_cleanup(data: *mut c_void) {
    // SAFETY: `data` is the Box<RequestCtx> registered in `create`.
    unsafe { crate::pool::drop_box::<RequestCtx>(data) }
}

/// Attaches a new context to the request. None when nginx is out of memory.
pub fn create<'r>(req: Req<'r>, ctx: RequestCtx) -> Option<&'r mut RequestCtx> {
    // SAFETY: the request pool is live and outlives every callback that sees the ctx.
    let p = unsafe { crate::pool::attach_with(req.pool(), ctx, ctx_cleanup)? };
    req.set_ctx_ptr(crate::module(), p.cast());
    // SAFETY: freshly boxed, only reachable through the request (single-threaded).
    Some(unsafe { &mut *p })
}

/// The request's context, re-attached after an internal redirect if needed.
pub fn get<'r>(req: Req<'r>) -> Option<&'r mut RequestCtx> {
    let module = crate::module();
    let mut p = req.ctx_ptr(module).cast::<RequestCtx>();
    if p.is_null() {
        p = find_in_pool(req);
        if p.is_null() {
            return None;
        }
        req.set_ctx_ptr(module, p.cast());
    }
    // SAFETY: the pointer is our live Box<RequestCtx> (freed only with the pool); nginx
    // workers are single-threaded and callbacks do not nest on one ctx borrow.
    Some(unsafe { &mut *p })
}

fn find_in_pool(req: Req<'_>) -> *mut RequestCtx {
    let pool = req.pool();
    if pool.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: the pool's cleanup list is a NULL-terminated chain of live entries.
    unsafe {
        let mut c = (*pool).cleanup;
        while !c.is_null() {
            if (*c).handler.map(|h| h as usize) == Some(ctx_cleanup as unsafe extern "C" fn(*mut c_void) as usize) {
                return (*c).data.cast();
            }
            c = (*c).next;
        }
    }
    std::ptr::null_mut()
}
