//! The login gate's directives: `ward_auth`, `ward_auth_key_file`, `ward_auth_users_file`,
//! `ward_auth_login`, `ward_auth_logout`, `ward_auth_verify`, `ward_auth_token_ttl`,
//! `ward_auth_issuer`, `ward_auth_audience`, `ward_auth_leeway`, `ward_auth_require_claim`,
//! `ward_auth_cookie`, `ward_auth_cookie_secure`.
//!
//! Values are parsed when nginx reads the directive (errors then carry `in nginx.conf:LINE`),
//! merged http → server → location, and every level that needs the gate gets an
//! `Arc<AuthConfig>` built at merge time in the master: the key and users files are read
//! there (they may be root-only) and identical settings are loaded once per configuration
//! cycle, so a reload re-reads them (key rotation). The login path browsers are sent to is
//! the name of the server's location holding `ward_auth_login` (default `/login`).

use std::collections::HashMap;
use std::ffi::{c_char, c_void, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ngx::ffi::{
    ngx_command_t, ngx_conf_t, ngx_http_conf_ctx_t, ngx_http_core_loc_conf_t, ngx_http_core_srv_conf_t,
    ngx_http_handler_pt, ngx_str_t,
};
use ward_auth::{parse_time, AuthConfig, AuthSettings, CookieSecure};

use crate::config::{args, flag_arg, loc, LocConf};
use crate::guard;

/// Which content handler a location runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    Login,
    Logout,
    Verify,
}

/// Loaded configurations by settings (one configuration cycle).
pub type AuthCache = HashMap<String, Arc<AuthConfig>>;

/// One level's gate settings; `None` = not set here (inherit).
#[derive(Default)]
pub struct AuthLoc {
    enabled: Option<bool>,
    key_file: Option<PathBuf>,
    users_file: Option<PathBuf>,
    token_ttl: Option<Duration>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: Option<Duration>,
    /// The whole list is inherited when this level declares none (as nginx arrays are).
    required_claims: Option<Vec<(String, String)>>,
    cookie_name: Option<String>,
    cookie_secure: Option<CookieSecure>,
    /// Set on the server level by the `ward_auth_login` location inside it.
    login_path: Option<String>,
    /// This location's content handler (not inherited, like nginx's own handlers).
    pub handler: Option<Handler>,
    merged: bool,
    /// The loaded gate, where this level needs one.
    pub config: Option<Arc<AuthConfig>>,
}

impl AuthLoc {
    /// The gate to enforce in the access phase here (`ward_auth on`). The login, logout and
    /// verify locations are never gated: an inherited `on` there would send browsers from the
    /// login page to itself.
    pub fn gate(&self) -> Option<&AuthConfig> {
        if self.enabled != Some(true) || self.handler.is_some() {
            return None;
        }
        self.config.as_deref()
    }

    fn settings(&self) -> AuthSettings {
        let d = AuthSettings::default();
        AuthSettings {
            key_file: self.key_file.clone(),
            users_file: self.users_file.clone(),
            token_ttl: self.token_ttl.unwrap_or(d.token_ttl),
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway: self.leeway.unwrap_or(d.leeway),
            required_claims: self.required_claims.clone().unwrap_or_default(),
            cookie_name: self.cookie_name.clone().unwrap_or(d.cookie_name),
            cookie_secure: self.cookie_secure.unwrap_or(d.cookie_secure),
            login_path: self.login_path.clone().unwrap_or(d.login_path),
            login: self.handler == Some(Handler::Login),
            max_token_len: d.max_token_len,
        }
    }
}

fn inherit<T: Clone>(own: &mut Option<T>, parent: &Option<T>) {
    if own.is_none() {
        own.clone_from(parent);
    }
}

/// Merges one level into its parent's values and loads the gate when this level uses it.
/// `place` names the level for messages (`location "/x"`).
pub fn merge(conf: &mut AuthLoc, prev: &AuthLoc, cache: &mut AuthCache, place: &str) -> Result<(), String> {
    if conf.merged {
        return Ok(());
    }
    conf.merged = true;
    inherit(&mut conf.enabled, &prev.enabled);
    inherit(&mut conf.key_file, &prev.key_file);
    inherit(&mut conf.users_file, &prev.users_file);
    inherit(&mut conf.token_ttl, &prev.token_ttl);
    inherit(&mut conf.issuer, &prev.issuer);
    inherit(&mut conf.audience, &prev.audience);
    inherit(&mut conf.leeway, &prev.leeway);
    inherit(&mut conf.required_claims, &prev.required_claims);
    inherit(&mut conf.cookie_name, &prev.cookie_name);
    inherit(&mut conf.cookie_secure, &prev.cookie_secure);
    inherit(&mut conf.login_path, &prev.login_path);
    if conf.enabled != Some(true) && conf.handler.is_none() {
        return Ok(());
    }
    let settings = conf.settings();
    // AuthSettings has no Hash; its Debug text names every field and value.
    let key = format!("{settings:?}");
    if let Some(c) = cache.get(&key) {
        conf.config = Some(c.clone());
        return Ok(());
    }
    let loaded = AuthConfig::load(&settings)
        .map_err(|e| format!("ward_auth: {} ({place})", without_os_error(&e.to_string())))?;
    let loaded = Arc::new(loaded);
    cache.insert(key, loaded.clone());
    conf.config = Some(loaded);
    Ok(())
}

/// An I/O error as nginx words it: `No such file or directory`, without Rust's
/// ` (os error 2)` tail.
fn without_os_error(msg: &str) -> String {
    match msg.find(" (os error ") {
        Some(i) => {
            let tail = msg.get(i + 1..).and_then(|t| t.find(')')).map_or(msg.len(), |j| i + 1 + j + 1);
            format!("{}{}", msg.get(..i).unwrap_or(msg), msg.get(tail..).unwrap_or(""))
        }
        None => msg.to_string(),
    }
}

/// # Safety
/// `cf` is a live conf inside the http block (`cf->ctx` is an `ngx_http_conf_ctx_t`).
unsafe fn core_loc_conf<'a>(cf: *mut ngx_conf_t) -> Option<&'a mut ngx_http_core_loc_conf_t> {
    // SAFETY: per the contract; loc_conf has a slot per HTTP module, the core one included.
    unsafe {
        let ctx = (*cf).ctx.cast::<ngx_http_conf_ctx_t>();
        if ctx.is_null() || (*ctx).loc_conf.is_null() {
            return None;
        }
        (*(*ctx).loc_conf.add(ngx::ffi::ngx_http_core_module.ctx_index)).cast::<ngx_http_core_loc_conf_t>().as_mut()
    }
}

/// Where a merge happens, for messages: `location "/app"` or `server level`.
///
/// # Safety
/// As [`core_loc_conf`]; during merge `cf->ctx->loc_conf` is the level being merged.
pub unsafe fn place(cf: *mut ngx_conf_t) -> String {
    // SAFETY: forwarded.
    match unsafe { core_loc_conf(cf) } {
        Some(clcf) if clcf.name.len > 0 => {
            format!("location \"{}\"", String::from_utf8_lossy(clcf.name.as_bytes()))
        }
        _ => "server level".to_string(),
    }
}

fn setter(
    cf: *mut ngx_conf_t,
    conf: *mut c_void,
    directive: &str,
    f: impl FnOnce(&[ngx_str_t], &mut AuthLoc) -> Result<(), String>,
) -> *mut c_char {
    guard::catch_conf(cf, directive, || {
        // SAFETY: setter contract: `cf` is live, `conf` is our LocConf.
        let (args, conf): (&[ngx_str_t], &mut LocConf) = unsafe { (args(cf), loc(conf)) };
        f(args, &mut conf.auth)
    })
}

fn arg(args: &[ngx_str_t], i: usize) -> &[u8] {
    args.get(i).map(|a| a.as_bytes()).unwrap_or_default()
}

fn text(args: &[ngx_str_t], i: usize, directive: &str) -> Result<String, String> {
    std::str::from_utf8(arg(args, i))
        .map(str::to_owned)
        .map_err(|_| format!("\"{directive}\": the value is not valid UTF-8"))
}

fn once<T>(slot: &mut Option<T>, value: T, directive: &str) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("\"{directive}\" directive is duplicate"));
    }
    *slot = Some(value);
    Ok(())
}

fn time_arg(args: &[ngx_str_t], directive: &str) -> Result<Duration, String> {
    let v = text(args, 1, directive)?;
    parse_time(&v).map_err(|e| format!("\"{directive}\": {e}"))
}

/// `ward_auth on | off;`
pub unsafe extern "C" fn set_auth(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    setter(cf, conf, "ward_auth", |args, a| {
        let on = flag_arg(arg(args, 1), "ward_auth")?;
        once(&mut a.enabled, on, "ward_auth")
    })
}

/// A path argument, relative to the nginx prefix (as `ward_rules_file`).
fn path_arg(cf: *mut ngx_conf_t, args: &[ngx_str_t], directive: &str) -> Result<PathBuf, String> {
    let mut name = *args.get(1).ok_or_else(|| format!("\"{directive}\": missing path"))?;
    if name.len == 0 {
        return Err(format!("\"{directive}\": empty path"));
    }
    // SAFETY: `cf->cycle` is live; ngx_conf_full_name replaces `name` with a copy in the
    // cycle pool, prefixed by the nginx prefix when relative.
    let rc = unsafe { ngx::ffi::ngx_conf_full_name((*cf).cycle, &mut name, 0) };
    if rc != ngx::ffi::NGX_OK as ngx::ffi::ngx_int_t {
        return Err(format!("\"{directive}\": cannot resolve the path"));
    }
    Ok(PathBuf::from(OsStr::from_bytes(name.as_bytes())))
}

/// `ward_auth_key_file PATH;` (read at load, by the master).
pub unsafe extern "C" fn set_key_file(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    setter(cf, conf, "ward_auth_key_file", |args, a| {
        let p = path_arg(cf, args, "ward_auth_key_file")?;
        once(&mut a.key_file, p, "ward_auth_key_file")
    })
}

/// `ward_auth_users_file PATH;`
pub unsafe extern "C" fn set_users_file(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    setter(cf, conf, "ward_auth_users_file", |args, a| {
        let p = path_arg(cf, args, "ward_auth_users_file")?;
        once(&mut a.users_file, p, "ward_auth_users_file")
    })
}

/// `ward_auth_token_ttl TIME;`
pub unsafe extern "C" fn set_token_ttl(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    setter(cf, conf, "ward_auth_token_ttl", |args, a| {
        let t = time_arg(args, "ward_auth_token_ttl")?;
        if t.as_secs() == 0 {
            return Err("\"ward_auth_token_ttl\" must be at least 1s".into());
        }
        once(&mut a.token_ttl, t, "ward_auth_token_ttl")
    })
}

/// `ward_auth_leeway TIME;`
pub unsafe extern "C" fn set_leeway(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    setter(cf, conf, "ward_auth_leeway", |args, a| {
        let t = time_arg(args, "ward_auth_leeway")?;
        if t > Duration::from_secs(86_400) {
            return Err("\"ward_auth_leeway\" must be at most 1d".into());
        }
        once(&mut a.leeway, t, "ward_auth_leeway")
    })
}

fn printable_arg(args: &[ngx_str_t], directive: &str) -> Result<String, String> {
    let v = text(args, 1, directive)?;
    if v.is_empty() || !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(format!("\"{directive}\": \"{}\" must be non-empty printable text", v.escape_debug()));
    }
    Ok(v)
}

/// `ward_auth_issuer TEXT;`
pub unsafe extern "C" fn set_issuer(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    setter(cf, conf, "ward_auth_issuer", |args, a| {
        let v = printable_arg(args, "ward_auth_issuer")?;
        once(&mut a.issuer, v, "ward_auth_issuer")
    })
}

/// `ward_auth_audience TEXT;`
pub unsafe extern "C" fn set_audience(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    setter(cf, conf, "ward_auth_audience", |args, a| {
        let v = printable_arg(args, "ward_auth_audience")?;
        once(&mut a.audience, v, "ward_auth_audience")
    })
}

/// `ward_auth_require_claim NAME VALUE;` (repeatable)
pub unsafe extern "C" fn set_require_claim(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    setter(cf, conf, "ward_auth_require_claim", |args, a| {
        let name = text(args, 1, "ward_auth_require_claim")?;
        let value = text(args, 2, "ward_auth_require_claim")?;
        if name.is_empty() {
            return Err("\"ward_auth_require_claim\": the claim name is empty".into());
        }
        a.required_claims.get_or_insert_with(Vec::new).push((name, value));
        Ok(())
    })
}

/// `ward_auth_cookie NAME;`
pub unsafe extern "C" fn set_cookie(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    setter(cf, conf, "ward_auth_cookie", |args, a| {
        let v = text(args, 1, "ward_auth_cookie")?;
        let token = !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return Err(format!("\"ward_auth_cookie\": \"{}\" is not a valid cookie name", v.escape_debug()));
        }
        if v == ward_auth::CSRF_COOKIE {
            return Err(format!("\"ward_auth_cookie\": \"{v}\" is reserved for the login form"));
        }
        once(&mut a.cookie_name, v, "ward_auth_cookie")
    })
}

/// `ward_auth_cookie_secure on | off | auto;`
pub unsafe extern "C" fn set_cookie_secure(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    setter(cf, conf, "ward_auth_cookie_secure", |args, a| {
        let v = text(args, 1, "ward_auth_cookie_secure")?;
        let mode = CookieSecure::parse(&v).map_err(|e| e.to_string())?;
        once(&mut a.cookie_secure, mode, "ward_auth_cookie_secure")
    })
}

/// Installs `h` as the location's content handler (as `proxy_pass` does).
fn set_content_handler(
    cf: *mut ngx_conf_t,
    a: &mut AuthLoc,
    which: Handler,
    directive: &str,
    h: unsafe extern "C" fn(*mut ngx::ffi::ngx_http_request_t) -> ngx::ffi::ngx_int_t,
) -> Result<(), String> {
    if a.handler.is_some() {
        return Err(format!("\"{directive}\": this location already has a ward_auth content handler"));
    }
    // SAFETY: location-level directive: `cf->ctx` is the location's conf ctx.
    let clcf = unsafe { core_loc_conf(cf) }.ok_or_else(|| format!("\"{directive}\": no location"))?;
    clcf.handler = Some(h) as ngx_http_handler_pt;
    a.handler = Some(which);
    Ok(())
}

/// `ward_auth_login;` — the login page; its location's name becomes the server's login path.
pub unsafe extern "C" fn set_login(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    setter(cf, conf, "ward_auth_login", |_, a| {
        set_content_handler(cf, a, Handler::Login, "ward_auth_login", crate::auth_handlers::login_handler)?;
        // SAFETY: location-level directive (see set_content_handler).
        let clcf = unsafe { core_loc_conf(cf) }.ok_or("\"ward_auth_login\": no location")?;
        let name = clcf.name.as_bytes();
        let plain = clcf.regex.is_null() && clcf.named() == 0 && name.first() == Some(&b'/');
        if !plain {
            return Err("\"ward_auth_login\" must be in a prefix or exact location such as \
                        \"location = /login\""
                .into());
        }
        let name = std::str::from_utf8(name).map_err(|_| "\"ward_auth_login\": location name is not UTF-8")?;
        // SAFETY: inside a location `cf->ctx` is its conf ctx, whose srv_conf is the
        // enclosing server's; that server's own conf ctx holds the server-level LocConf.
        let server = unsafe { server_loc_conf(cf) }.ok_or("\"ward_auth_login\": no server")?;
        match &server.auth.login_path {
            Some(existing) if existing != name => {
                Err(format!("\"ward_auth_login\": this server already has its login page at \"{existing}\""))
            }
            _ => {
                server.auth.login_path = Some(name.to_string());
                Ok(())
            }
        }
    })
}

/// The server-level LocConf of the server enclosing the current location.
///
/// # Safety
/// `cf->ctx` is a location's (or server's) `ngx_http_conf_ctx_t`.
unsafe fn server_loc_conf<'a>(cf: *mut ngx_conf_t) -> Option<&'a mut LocConf> {
    // SAFETY: per the contract; the core srv conf's `ctx` is the server block's conf ctx.
    unsafe {
        let ctx = (*cf).ctx.cast::<ngx_http_conf_ctx_t>();
        if ctx.is_null() || (*ctx).srv_conf.is_null() {
            return None;
        }
        let cscf = (*(*ctx).srv_conf.add(ngx::ffi::ngx_http_core_module.ctx_index)).cast::<ngx_http_core_srv_conf_t>();
        if cscf.is_null() || (*cscf).ctx.is_null() {
            return None;
        }
        (*(*(*cscf).ctx).loc_conf.add(crate::module().ctx_index)).cast::<LocConf>().as_mut()
    }
}

/// `ward_auth_logout;`
pub unsafe extern "C" fn set_logout(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    setter(cf, conf, "ward_auth_logout", |_, a| {
        set_content_handler(cf, a, Handler::Logout, "ward_auth_logout", crate::auth_handlers::logout_handler)
    })
}

/// `ward_auth_verify;`
pub unsafe extern "C" fn set_verify(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    setter(cf, conf, "ward_auth_verify", |_, a| {
        set_content_handler(cf, a, Handler::Verify, "ward_auth_verify", crate::auth_handlers::verify_handler)
    })
}
