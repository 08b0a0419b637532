//! Request body reading and buffer-chain access.
//!
//! `read_request_body` wraps `ngx_http_read_client_request_body` (ngx 0.5 has no safe
//! wrapper); `for_each_chunk` walks an `ngx_chain_t` and hands out the bytes of every
//! buffer, whether it lives in memory or was spilled to a temporary file (read with
//! `pread`, so the file offset nginx uses later is untouched).

use std::fs::File;
use std::io;
use std::mem::ManuallyDrop;
use std::os::unix::fs::FileExt;
use std::os::unix::io::FromRawFd;

use ngx::ffi::{ngx_buf_t, ngx_chain_t, ngx_http_client_body_handler_pt, ngx_int_t};

use crate::request::Req;

/// Outcome of starting to read the request body.
pub enum BodyRead {
    /// nginx is reading (or has read) the body and will call the handler; the caller must
    /// finalize with NGX_DONE and return NGX_DONE from its phase handler.
    Started,
    /// nginx could not read the body: finalize/return this status.
    Failed(ngx_int_t),
}

/// Starts reading the whole body; `on_done` runs (possibly before this returns) once it
/// is complete and `r->request_body->bufs` holds it.
pub fn read_request_body(req: Req<'_>, on_done: unsafe extern "C" fn(*mut ngx::ffi::ngx_http_request_t)) -> BodyRead {
    // SAFETY: live main request; nginx keeps the body in r->request_body for later use
    // (proxy_pass re-sends it), so reading here does not consume it.
    let rc = unsafe {
        ngx::ffi::ngx_http_read_client_request_body(req.raw(), Some(on_done) as ngx_http_client_body_handler_pt)
    };
    // Only statuses come back with the request reference already dropped (as in nginx's
    // mirror module); anything else is balanced by the caller's NGX_DONE finalization.
    if rc >= ngx::ffi::NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t {
        return BodyRead::Failed(rc);
    }
    BodyRead::Started
}

/// The request body chain after reading completed (None for no body).
pub fn request_body_chain(req: Req<'_>) -> *mut ngx_chain_t {
    // SAFETY: live request; request_body is NULL or a valid ngx_http_request_body_t.
    unsafe {
        let rb = (*req.raw()).request_body;
        if rb.is_null() {
            std::ptr::null_mut()
        } else {
            (*rb).bufs
        }
    }
}

/// What one chain walk saw.
pub struct ChainInfo {
    /// A buffer with `last_buf` (end of the whole response/body) was seen.
    pub last: bool,
}

/// Calls `f` with the bytes of each buffer of `chain`, in order; stops early when `f`
/// returns false. File-backed buffers are read in 64 KiB pieces.
pub fn for_each_chunk(chain: *mut ngx_chain_t, mut f: impl FnMut(&[u8]) -> bool) -> io::Result<ChainInfo> {
    let mut info = ChainInfo { last: false };
    let mut cl = chain;
    let mut scratch = Vec::new();
    while !cl.is_null() {
        // SAFETY: a chain is a NULL-terminated list of live links with live buffers.
        let (buf, next) = unsafe { ((*cl).buf, (*cl).next) };
        cl = next;
        if buf.is_null() {
            continue;
        }
        // SAFETY: live buffer (see above).
        let b: &ngx_buf_t = unsafe { &*buf };
        if b.last_buf() != 0 {
            info.last = true;
        }
        let in_memory = b.temporary() != 0 || b.memory() != 0 || b.mmap() != 0;
        if in_memory {
            if b.pos.is_null() || b.last < b.pos {
                continue;
            }
            // SAFETY: for in-memory buffers, pos..last is initialised data.
            let bytes = unsafe { std::slice::from_raw_parts(b.pos, b.last.offset_from(b.pos) as usize) };
            if !bytes.is_empty() && !f(bytes) {
                return Ok(info);
            }
        } else if b.in_file() != 0 && !b.file.is_null() {
            // SAFETY: file buffers carry a live ngx_file_t whose fd stays open while the
            // request (temp file) or response (static file) is being processed.
            let fd = unsafe { (*b.file).fd };
            // Borrow the descriptor without taking ownership (nginx closes it).
            // SAFETY: fd is open (see above); ManuallyDrop prevents closing it.
            let file = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
            let (mut pos, end) = (b.file_pos, b.file_last);
            while pos < end {
                let want = usize::try_from(end - pos).unwrap_or(usize::MAX).min(64 * 1024);
                scratch.resize(want, 0);
                let n = file.read_at(&mut scratch, pos as u64)?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "body file shorter than expected"));
                }
                pos += n as i64;
                if !f(&scratch[..n]) {
                    return Ok(info);
                }
            }
        }
    }
    Ok(info)
}
