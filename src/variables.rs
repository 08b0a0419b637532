//! `$ward_action`, `$ward_matched_ids`, `$ward_unique_id`, `$ward_anomaly_score`
//! (`inbound=5 outbound=0`), for access logs and headers.
//!
//! One safe registration helper and one getter: the variable's index selects the value.
//! Requests Ward did not inspect have the variables "not found" (logged as `-`).

use ngx::ffi::{
    ngx_conf_t, ngx_http_request_t, ngx_http_variable_value_t, ngx_int_t, ngx_str_t, NGX_ERROR,
    NGX_HTTP_VAR_NOCACHEABLE, NGX_OK,
};

use crate::ctx::{self, RequestCtx};
use crate::guard;
use crate::request::Req;

type Getter = fn(&RequestCtx) -> Vec<u8>;

/// Name and value of each variable; the getter's `data` is the index here.
const VARIABLES: [(&str, Getter); 4] = [
    ("ward_action", |c| c.tx.outcome().as_bytes().to_vec()),
    ("ward_matched_ids", |c| c.tx.matched_ids().into_bytes()),
    ("ward_unique_id", |c| c.unique_id.as_bytes().to_vec()),
    ("ward_anomaly_score", |c| c.tx.anomaly_scores().into_bytes()),
];

/// Registers all variables (preconfiguration).
pub fn register(cf: *mut ngx_conf_t) -> Result<(), String> {
    for (i, (name, _)) in VARIABLES.iter().enumerate() {
        add_variable(cf, name, i)?;
    }
    crate::auth_gate::register_variables(cf)
}

/// Declares `$name` with Ward's getter; values change across phases, so not cached.
fn add_variable(cf: *mut ngx_conf_t, name: &str, data: usize) -> Result<(), String> {
    let mut ngx_name = ngx_str_t { len: name.len(), data: name.as_ptr() as *mut u8 };
    // SAFETY: preconfiguration `cf` is live; nginx copies the name into its own pool and
    // only reads it here.
    let v = unsafe { ngx::ffi::ngx_http_add_variable(cf, &mut ngx_name, NGX_HTTP_VAR_NOCACHEABLE as usize) };
    if v.is_null() {
        return Err(format!("ward: cannot add variable ${name}"));
    }
    // SAFETY: nginx returned a live variable descriptor for us to fill in.
    unsafe {
        (*v).get_handler = Some(get_variable);
        (*v).data = data;
    }
    Ok(())
}

unsafe extern "C" fn get_variable(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    data: usize,
) -> ngx_int_t {
    // SAFETY: nginx passes the live request.
    let Some(req) = (unsafe { Req::from_raw(r) }) else { return NGX_ERROR as ngx_int_t };
    guard::catch(req.log(), "variable", NGX_ERROR as ngx_int_t, || {
        let value = ctx::get(req).and_then(|c| VARIABLES.get(data).map(|(_, get)| get(c)));
        set_value(req, v, value.as_deref())
    })
}

/// Stores `value` (copied into the request pool) or "not found".
pub(crate) fn set_value(req: Req<'_>, v: *mut ngx_http_variable_value_t, value: Option<&[u8]>) -> ngx_int_t {
    // SAFETY: `v` is the live value slot nginx passed to the getter; the copy lives in
    // the request pool as long as nginx may read it.
    unsafe {
        let v = &mut *v;
        let Some(bytes) = value else {
            v.set_not_found(1);
            return NGX_OK as ngx_int_t;
        };
        let Some(s) = ngx_str_t::from_bytes(req.pool(), bytes) else {
            return NGX_ERROR as ngx_int_t;
        };
        v.data = s.data;
        v.set_len(s.len as u32);
        v.set_valid(1);
        v.set_no_cacheable(1);
        v.set_not_found(0);
    }
    NGX_OK as ngx_int_t
}
