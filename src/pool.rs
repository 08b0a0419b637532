//! Tying Rust values to nginx pool lifetimes: the value is boxed and a pool cleanup drops
//! it when nginx destroys the pool (cycle pool for configuration, request pool for
//! per-request state), so reloads and requests never leak.

use std::ffi::c_void;

use ngx::ffi::{ngx_pool_cleanup_add, ngx_pool_cleanup_pt, ngx_pool_t};

/// Boxes `value` and registers `cleanup` (which must drop a `Box<T>`) on `pool`.
/// Returns the stable pointer, or None when nginx cannot allocate the cleanup.
///
/// # Safety
/// `pool` must be a live nginx pool and `cleanup` must be `drop_box::<T>` or a function
/// that reconstructs and drops the `Box<T>` exactly once.
pub unsafe fn attach_with<T>(
    pool: *mut ngx_pool_t,
    value: T,
    cleanup: unsafe extern "C" fn(*mut c_void),
) -> Option<*mut T> {
    // SAFETY: caller guarantees `pool` is live; size 0 asks for no extra data.
    let cln = unsafe { ngx_pool_cleanup_add(pool, 0) };
    if cln.is_null() {
        return None;
    }
    let ptr = Box::into_raw(Box::new(value));
    // SAFETY: `cln` was just returned non-null by nginx and is ours to fill in.
    unsafe {
        (*cln).handler = Some(cleanup) as ngx_pool_cleanup_pt;
        (*cln).data = ptr.cast();
    }
    Some(ptr)
}

/// Boxes `value` on `pool` with the generic dropping cleanup.
///
/// # Safety
/// `pool` must be a live nginx pool.
pub unsafe fn attach<T>(pool: *mut ngx_pool_t, value: T) -> Option<*mut T> {
    // SAFETY: forwarded; `drop_box::<T>` matches `T`.
    unsafe { attach_with(pool, value, drop_box::<T>) }
}

/// Pool cleanup that drops a `Box<T>` created by [`attach`]. A panicking `Drop` is
/// contained here (nginx cannot handle unwinding).
pub unsafe extern "C" fn drop_box<T>(data: *mut c_void) {
    if data.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: `data` came from Box::into_raw in `attach` and nginx runs each cleanup once.
        drop(unsafe { Box::from_raw(data.cast::<T>()) });
    });
}
