//! A small safe view of `ngx_http_request_t` for the handlers and filters.
//!
//! `Req` is created from the raw pointer at the start of a callback and never stored:
//! nginx guarantees the request (and everything it points to) stays alive for the whole
//! callback, which is the lifetime `'r` of every borrow handed out here.

use std::ffi::c_void;

use crate::addr::AddrText;
use std::marker::PhantomData;
use std::ptr::NonNull;

use ngx::ffi::{
    ngx_connection_local_sockaddr, ngx_http_request_t, ngx_int_t, ngx_list_t, ngx_log_t, ngx_module_t, ngx_pool_t,
    ngx_str_t, ngx_table_elt_t, NGX_OK,
};

#[derive(Clone, Copy)]
pub struct Req<'r> {
    raw: NonNull<ngx_http_request_t>,
    _life: PhantomData<&'r mut ngx_http_request_t>,
}

impl<'r> Req<'r> {
    /// # Safety
    /// `r` must be the live request nginx passed to the current callback.
    pub unsafe fn from_raw(r: *mut ngx_http_request_t) -> Option<Req<'r>> {
        NonNull::new(r).map(|raw| Req { raw, _life: PhantomData })
    }

    pub fn raw(self) -> *mut ngx_http_request_t {
        self.raw.as_ptr()
    }

    fn get(&self) -> &'r ngx_http_request_t {
        // SAFETY: see the module doc: the request outlives the callback ('r).
        unsafe { &*self.raw.as_ptr() }
    }

    /// The connection's log (error-log lines then carry client, server and request).
    pub fn log(self) -> *mut ngx_log_t {
        let c = self.get().connection;
        if c.is_null() {
            return std::ptr::null_mut();
        }
        // SAFETY: a live request has a live connection.
        unsafe { (*c).log }
    }

    pub fn pool(self) -> *mut ngx_pool_t {
        self.get().pool
    }

    /// Main request (not a subrequest).
    pub fn is_main(self) -> bool {
        std::ptr::eq(self.get().main, self.raw.as_ptr())
    }

    pub fn header_sent(self) -> bool {
        self.get().header_sent() != 0
    }

    /// This module's location configuration for the request's current location.
    pub fn loc_conf<T>(self, module: &ngx_module_t) -> Option<&'r T> {
        // SAFETY: loc_conf has one slot per HTTP module, `ctx_index` is ours, and the slot
        // holds the `T` our create_loc_conf made (or NULL).
        unsafe { (*self.get().loc_conf.add(module.ctx_index)).cast::<T>().as_ref() }
    }

    /// Raw slot of this module's request context.
    pub fn ctx_ptr(self, module: &ngx_module_t) -> *mut c_void {
        // SAFETY: `ctx` has one slot per HTTP module.
        unsafe { *self.get().ctx.add(module.ctx_index) }
    }

    pub fn set_ctx_ptr(self, module: &ngx_module_t, value: *mut c_void) {
        // SAFETY: `ctx` has one slot per HTTP module; nginx owns no data behind our slot.
        unsafe { *(*self.raw.as_ptr()).ctx.add(module.ctx_index) = value };
    }

    /// The request target exactly as sent (path and query).
    pub fn unparsed_uri(self) -> &'r [u8] {
        self.get().unparsed_uri.as_bytes()
    }

    pub fn method_name(self) -> &'r [u8] {
        self.get().method_name.as_bytes()
    }

    /// `HTTP/1.1`, `HTTP/2.0`, … (empty for HTTP/0.9).
    pub fn protocol(self) -> &'r [u8] {
        let p = self.get().http_protocol.as_bytes();
        if p.is_empty() && self.get().http_version == 2000 {
            return b"HTTP/2.0";
        }
        p
    }

    /// The host the request is for (request line or Host header, validated by nginx).
    pub fn host(self) -> &'r [u8] {
        self.get().headers_in.server.as_bytes()
    }

    pub fn headers_in(self) -> HeaderIter<'r> {
        HeaderIter::new(&self.get().headers_in.headers, false)
    }

    pub fn headers_out(self) -> HeaderIter<'r> {
        HeaderIter::new(&self.get().headers_out.headers, true)
    }

    pub fn status(self) -> usize {
        self.get().headers_out.status
    }

    /// `Content-Type` and `Content-Length` live outside the header list until nginx's
    /// own header filter writes them.
    pub fn content_type(self) -> &'r [u8] {
        self.get().headers_out.content_type.as_bytes()
    }

    pub fn content_length(self) -> Option<u64> {
        u64::try_from(self.get().headers_out.content_length_n).ok()
    }

    /// Client address as text (after realip) and port.
    pub fn client_addr(self) -> (std::borrow::Cow<'r, str>, u16) {
        let c = self.get().connection;
        // SAFETY: a live request has a live connection with addr_text/sockaddr set; the
        // text lives in the connection's pool, as long as the request.
        let (text, sa): (&'r [u8], _) = unsafe { ((*c).addr_text.as_bytes(), (*c).sockaddr) };
        let text = String::from_utf8_lossy(text);
        // SAFETY: sockaddr comes from accept()/realip and is valid for its family (nginx's
        // `sockaddr` is libc's).
        let port = unsafe { crate::addr::port(sa.cast()) };
        (text, port)
    }

    /// Local (server) address and port; resolves wildcard listens with getsockname.
    pub fn server_addr(self) -> (AddrText, u16) {
        let c = self.get().connection;
        // SAFETY: live connection; with a NULL string ngx_connection_local_sockaddr only
        // fills in c->local_sockaddr.
        let sa = unsafe {
            if ngx_connection_local_sockaddr(c, std::ptr::null_mut(), 0) != NGX_OK as ngx_int_t {
                return (AddrText::of(""), 0);
            }
            (*c).local_sockaddr
        };
        // SAFETY: local_sockaddr is valid for its family after the call above.
        unsafe { crate::addr::text(sa.cast()) }
    }

    /// Inputs for a per-request unique id: connection serial and requests on it.
    pub fn connection_serial(self) -> (u64, u64) {
        let c = self.get().connection;
        // SAFETY: live connection.
        unsafe { ((*c).number as u64, (*c).requests as u64) }
    }
}

/// Iterates an nginx header list (`ngx_list_t` of `ngx_table_elt_t`) as byte pairs.
pub struct HeaderIter<'r> {
    part: *const ngx::ffi::ngx_list_part_t,
    idx: usize,
    skip_deleted: bool,
    _life: PhantomData<&'r ngx_list_t>,
}

impl<'r> HeaderIter<'r> {
    fn new(list: &'r ngx_list_t, skip_deleted: bool) -> Self {
        HeaderIter { part: &list.part, idx: 0, skip_deleted, _life: PhantomData }
    }
}

impl<'r> Iterator for HeaderIter<'r> {
    type Item = (&'r [u8], &'r [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.part.is_null() {
                return None;
            }
            // SAFETY: list parts form a NULL-terminated chain; `elts` holds `nelts`
            // initialised ngx_table_elt_t, all alive for 'r.
            unsafe {
                let part = &*self.part;
                if self.idx >= part.nelts {
                    self.part = part.next;
                    self.idx = 0;
                    continue;
                }
                let elt: &'r ngx_table_elt_t = &*part.elts.cast::<ngx_table_elt_t>().add(self.idx);
                self.idx += 1;
                // Output headers with hash 0 were removed by a module.
                if self.skip_deleted && elt.hash == 0 {
                    continue;
                }
                return Some((elt.key.as_bytes(), elt.value.as_bytes()));
            }
        }
    }
}

/// Sets `Location` for a redirect (value copied into the request pool).
pub fn set_location(req: Req<'_>, url: &[u8]) -> bool {
    let r = req.raw();
    // SAFETY: live request; the header element and its strings are allocated from the
    // request pool, as nginx's own `return 302` does.
    unsafe {
        let h = ngx::ffi::ngx_list_push(&mut (*r).headers_out.headers).cast::<ngx_table_elt_t>();
        if h.is_null() {
            return false;
        }
        let Some(value) = ngx_str_t::from_bytes((*r).pool, url) else {
            return false;
        };
        (*h).hash = 1;
        (*h).key = ngx::ngx_string!("Location");
        (*h).value = value;
        (*r).headers_out.location = h;
    }
    true
}
