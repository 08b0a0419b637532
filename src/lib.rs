//! Ward's nginx adapter: the module table, directives and phase/filter registration.
//!
//! This crate is the only place with `unsafe`: it turns nginx's C callbacks into calls
//! on the pure-Rust engine (`ward-engine`). Every `extern "C"` entry point runs its body
//! through [`guard::catch`], so a panic is logged and answered (500 / NGX_CONF_ERROR)
//! instead of unwinding into nginx.
//!
//! Layout: [`config`] (conf structs, merge, directives), [`handler`] (access and log
//! phases, request body), [`filter`] (response header/body filters), [`variables`],
//! [`ctx`] (per-request state), and the small FFI wrappers [`request`], [`body`],
//! [`pool`], [`guard`].
//!
//! The code only links inside nginx, so a test build of this library (cargo builds one,
//! despite `test = false`, when `cargo test` gets a name filter) compiles to nothing;
//! the module is tested through real nginx in `tests/`.
#![cfg(not(test))]

use std::ffi::{c_char, c_void};
use std::ptr::{addr_of, addr_of_mut};

use ngx::ffi::{
    ngx_command_t, ngx_conf_t, ngx_http_module_t, ngx_int_t, ngx_module_t, ngx_uint_t, NGX_CONF_FLAG, NGX_CONF_NOARGS,
    NGX_CONF_TAKE1, NGX_CONF_TAKE2, NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MAIN_CONF, NGX_HTTP_MODULE,
    NGX_HTTP_SRV_CONF,
};
use ngx::ngx_string;

mod addr;
mod audit_log;
mod auth;
mod auth_gate;
mod auth_handlers;
mod body;
mod config;
mod ctx;
mod filter;
mod guard;
mod handler;
mod huge_pages;
mod pool;
mod request;
mod variables;

/// Levels of the directives valid at http, server and location level.
const LEVELS: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;

static mut WARD_COMMANDS: [ngx_command_t; 20] = [
    ngx_command_t {
        name: ngx_string!("ward"),
        type_: (LEVELS | NGX_CONF_FLAG) as ngx_uint_t,
        set: Some(config::set_ward),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: std::ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ward_rules_file"),
        type_: (LEVELS | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(config::set_rules_file),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: std::ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ward_rules"),
        type_: (LEVELS | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(config::set_rules),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: std::ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("ward_unique_id_header"),
        type_: (LEVELS | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(config::set_unique_id_header),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: std::ptr::null_mut(),
    },
    command(c"ward_failure_mode", LEVELS | NGX_CONF_TAKE1, config::set_failure_mode),
    command(c"ward_huge_pages", NGX_HTTP_MAIN_CONF | NGX_CONF_FLAG, config::set_huge_pages),
    command(c"ward_auth", LEVELS | NGX_CONF_FLAG, auth::set_auth),
    command(c"ward_auth_key_file", LEVELS | NGX_CONF_TAKE1, auth::set_key_file),
    command(c"ward_auth_users_file", LEVELS | NGX_CONF_TAKE1, auth::set_users_file),
    command(c"ward_auth_login", NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS, auth::set_login),
    command(c"ward_auth_logout", NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS, auth::set_logout),
    command(c"ward_auth_verify", NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS, auth::set_verify),
    command(c"ward_auth_token_ttl", LEVELS | NGX_CONF_TAKE1, auth::set_token_ttl),
    command(c"ward_auth_issuer", LEVELS | NGX_CONF_TAKE1, auth::set_issuer),
    command(c"ward_auth_audience", LEVELS | NGX_CONF_TAKE1, auth::set_audience),
    command(c"ward_auth_leeway", LEVELS | NGX_CONF_TAKE1, auth::set_leeway),
    command(c"ward_auth_require_claim", LEVELS | NGX_CONF_TAKE2, auth::set_require_claim),
    command(c"ward_auth_cookie", LEVELS | NGX_CONF_TAKE1, auth::set_cookie),
    command(c"ward_auth_cookie_secure", LEVELS | NGX_CONF_TAKE1, auth::set_cookie_secure),
    ngx_command_t::empty(),
];

type Setter = unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char;

/// A location-conf directive of this module. The name must be NUL-terminated: nginx
/// compares directive names with `ngx_strcmp`.
const fn command(name: &'static std::ffi::CStr, type_: u32, set: Setter) -> ngx_command_t {
    ngx_command_t {
        name: ngx::ffi::ngx_str_t { len: name.count_bytes(), data: name.as_ptr() as *mut u8 },
        type_: type_ as ngx_uint_t,
        set: Some(set),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: std::ptr::null_mut(),
    }
}

static WARD_MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(preconfiguration),
    postconfiguration: Some(postconfiguration),
    create_main_conf: Some(config::create_main_conf),
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(config::create_loc_conf),
    merge_loc_conf: Some(config::merge_loc_conf),
};

/// The tables `load_module` reads. `ngx_module_order` places Ward just before nginx's
/// postpone filter in the module list (as ModSecurity-nginx does): its filters then run
/// after `add_header`/`expires` and before gzip, so phase 3 sees the final headers and
/// phase 4 the uncompressed body. Its access handler still runs before nginx's own
/// access modules (allow/deny, auth_basic, auth_request).
#[cfg(feature = "export-modules")]
mod exports {
    use std::ffi::c_char;
    use std::ptr::{addr_of, null};

    use ngx::ffi::ngx_module_t;

    #[no_mangle]
    #[allow(non_upper_case_globals)]
    pub static mut ngx_modules: [*const ngx_module_t; 2] = [addr_of!(super::ngx_http_ward_module), null()];

    #[no_mangle]
    #[allow(non_upper_case_globals)]
    pub static mut ngx_module_names: [*const c_char; 2] = [c"ngx_http_ward_module".as_ptr(), null()];

    #[no_mangle]
    #[allow(non_upper_case_globals)]
    pub static mut ngx_module_order: [*const c_char; 3] =
        [c"ngx_http_ward_module".as_ptr(), c"ngx_http_postpone_filter_module".as_ptr(), null()];
}

#[used]
#[allow(non_upper_case_globals)]
#[cfg_attr(not(feature = "export-modules"), no_mangle)]
pub static mut ngx_http_ward_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(WARD_MODULE_CTX) as *mut c_void,
    // Only the address is taken; nginx reads the table during configuration.
    commands: addr_of_mut!(WARD_COMMANDS) as *mut ngx_command_t,
    type_: NGX_HTTP_MODULE as ngx_uint_t,
    init_process: Some(init_process),
    ..ngx_module_t::default()
};

/// A worker starts: its heap thresholds (see `config::worker_heap_thresholds`) and,
/// unless `ward_huge_pages off`, huge pages under its heap (`huge_pages`).
unsafe extern "C" fn init_process(cycle: *mut ngx::ffi::ngx_cycle_t) -> ngx_int_t {
    // SAFETY: nginx passes its live cycle.
    let log = unsafe { (*cycle).log };
    guard::catch(log, "init_process", ngx::ffi::NGX_OK as ngx_int_t, || {
        config::worker_heap_thresholds();
        // Not in the cache manager and loader (helpers), which never run a rule.
        // SAFETY: nginx sets `ngx_process` before init_process; the live cycle is
        // configured: its http main conf slot (if any) is our MainConf.
        let serves = unsafe {
            matches!(ngx::ffi::ngx_process as u32, ngx::ffi::NGX_PROCESS_WORKER | ngx::ffi::NGX_PROCESS_SINGLE)
        };
        if serves && unsafe { config::huge_pages_wanted(cycle) } {
            config::back_heap_with_huge_pages(log);
        }
        ngx::ffi::NGX_OK as ngx_int_t
    })
}

/// The module descriptor, for ctx/conf indexing.
pub(crate) fn module() -> &'static ngx_module_t {
    // SAFETY: nginx writes ctx_index/index while loading the module (before any request
    // or merge callback runs) and never afterwards; we only read it.
    unsafe { &*addr_of!(ngx_http_ward_module) }
}

/// Registers the `$ward_*` variables (they must exist before the config refers to them).
unsafe extern "C" fn preconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
    guard::catch_conf_status(cf, "preconfiguration", || variables::register(cf))
}

/// Installs the access and log phase handlers and the response filters.
unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
    guard::catch_conf_status(cf, "postconfiguration", || {
        handler::register(cf)?;
        // After the WAF's: nginx runs a phase's handlers last-registered first.
        auth_gate::register(cf)?;
        filter::register();
        Ok(())
    })
}
