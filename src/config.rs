//! Configuration: `ward`, `ward_rules_file`, `ward_rules`, `ward_unique_id_header`, `ward_failure_mode`, merged http → server → location.
//!
//! Each level keeps its rule sources (the parent's followed by its own, as in
//! ModSecurity-nginx) and compiles them into one shared `Arc<RuleSet>` at merge time, in
//! the master, so workers only share the result. A level that adds nothing shares its
//! parent's set; identical source lists are compiled once per configuration cycle, and a
//! reload reuses the previous cycle's set when none of its files changed.
//! Confs live in the cycle pool with a cleanup, so a reload drops the old rule sets.

use std::collections::HashMap;
use std::ffi::{c_char, c_void, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

use ngx::ffi::{ngx_command_t, ngx_conf_t, ngx_http_conf_ctx_t, ngx_str_t};
use ward_engine::{EngineMode, RuleSet, RuleSource};

use crate::guard;

/// Per-cycle state shared by all levels while merging.
#[derive(Default)]
pub struct MainConf {
    /// Compiled sets by source list (only consulted during configuration).
    cache: HashMap<Vec<RuleSource>, Arc<RuleSet>>,
    /// Audit-log files opened this cycle, by path.
    audit_sinks: crate::audit_log::SinkCache,
    /// Loaded login gates by settings.
    auth_cache: crate::auth::AuthCache,
    /// `ward_huge_pages on|off`; None = not set (on).
    huge_pages: Option<bool>,
}

/// One level's (http, server or location) settings.
#[derive(Default)]
pub struct LocConf {
    /// `ward on|off`; None = not set here (inherit).
    enabled: Option<bool>,
    /// Inherited sources followed by this level's own (after merge).
    sources: Vec<RuleSource>,
    /// How many of `sources` were declared at this level.
    own: usize,
    merged: bool,
    rules: Option<Arc<RuleSet>>,
    /// Audit destination of `rules` (None when they never write records).
    pub audit: Option<crate::audit_log::AuditTarget>,
    /// Cookies masked in audit records; the login gate adds its cookie name here when
    /// it is configured (inherited, then this level's own; `ward_token` always).
    pub audit_mask_cookies: Vec<String>,
    /// `ward_unique_id_header NAME`: send the unique id upstream in this header.
    pub unique_id_header: Option<Vec<u8>>,
    /// `ward_failure_mode open|closed` (None = inherit; closed when never set): what a
    /// request gets when Ward itself fails on it (see guard.rs).
    failure_open: Option<bool>,
    /// The login gate (`ward_auth*` directives, see auth.rs).
    pub auth: crate::auth::AuthLoc,
}

impl LocConf {
    /// The rule set to run for requests here, or None when Ward is off, has no rules or
    /// the rules say `SecRuleEngine Off`.
    pub fn active_rules(&self) -> Option<&Arc<RuleSet>> {
        if self.enabled != Some(true) {
            return None;
        }
        self.rules.as_ref().filter(|r| r.engine_mode() != EngineMode::Off)
    }

    /// `ward_failure_mode open`: a request Ward fails on passes uninspected (logged);
    /// otherwise (closed, the default) it is answered 500.
    pub fn failure_open(&self) -> bool {
        self.failure_open == Some(true)
    }
}

pub unsafe extern "C" fn create_main_conf(cf: *mut ngx_conf_t) -> *mut c_void {
    fix_heap_thresholds();
    // Registered before this cycle's MainConf and LocConfs, so it runs after their
    // cleanups (nginx runs a pool's cleanups newest first).
    // SAFETY: `cf->pool` is the live cycle pool being configured.
    if !unsafe { trim_heap_on_destroy((*cf).pool) } {
        return std::ptr::null_mut();
    }
    create::<MainConf>(cf)
}

/// Registers [`trim_heap`] on the cycle pool. False when nginx cannot allocate it.
///
/// # Safety
/// `pool` must be a live nginx pool.
unsafe fn trim_heap_on_destroy(pool: *mut ngx::ffi::ngx_pool_t) -> bool {
    // SAFETY: per the contract; size 0 asks for no extra data.
    let cln = unsafe { ngx::ffi::ngx_pool_cleanup_add(pool, 0) };
    if cln.is_null() {
        return false;
    }
    // SAFETY: `cln` was just returned non-null by nginx and is ours to fill in.
    unsafe {
        (*cln).handler = Some(trim_heap);
        (*cln).data = std::ptr::null_mut();
    }
    true
}

/// Gives the heap pages freed with a cycle's rule sets back to the kernel.
///
/// A reload compiles the new rule sets while the old ones are still alive (nginx keeps
/// the old cycle until the new one is configured), then frees the old ones. glibc keeps
/// that memory in the main arena: its dynamic mmap threshold rises after the first large
/// free, so later compilations allocate from the arena, and the arena can only shrink
/// from its top, which the new rule sets occupy. Without this the master's RSS climbed
/// from 43 MB to over 100 MB within 30 reloads of the CRS v4 while the live heap stayed
/// at 41 MB (docs/hardening.md §5); every forked worker inherits that RSS.
/// `malloc_trim(0)` releases every whole free page in all arenas (MADV_DONTNEED).
unsafe extern "C" fn trim_heap(_data: *mut c_void) {
    release_free_heap();
}

/// Fixes glibc's mmap and trim thresholds (before the first rule set is compiled), unless
/// the environment sets them.
///
/// By default glibc raises both after each large free, up to 32 and 64 MB. A rule-set
/// load frees many large temporaries, and its helper threads' arenas then kept their
/// freed tops resident: `malloc_trim` gives back whole free pages inside an arena, never
/// the top of a thread's one. Every worker inherited ~11 MB of it (CRS v4: 49 MB of
/// RSS, 37 MB with fixed thresholds; load time unchanged). Fixed, an allocation over
/// 128 KB is its own mapping and an arena's top above 1 MB is trimmed on free.
///
/// Set again at each reload's configuration: the same values, and the master never takes
/// the workers' ones (`worker_heap_thresholds`).
fn fix_heap_thresholds() {
    set_heap_thresholds(128 << 10, 1 << 20);
}

/// A worker's thresholds (nginx's init_process): request-sized blocks (a 1 MB body, its
/// 2 MB buffer) come from the heap and stay there between requests, as with glibc's
/// raised dynamic thresholds; what a burst leaves is given back by the trims of
/// `ctx::Live`. With the load's 128 KB, each such block was a new mapping, faulted in
/// page by page: the 1 MB form cost 15-20% more worker CPU.
pub(crate) fn worker_heap_thresholds() {
    set_heap_thresholds(4 << 20, 8 << 20);
}

fn set_heap_thresholds(mmap: i32, trim: i32) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // Read once, in the master: nginx gives its workers a new environment without
        // these, while glibc applied them at the master's start and the workers inherit that.
        static SET_BY_ENV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let set_by_env = *SET_BY_ENV.get_or_init(|| {
            let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
            ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"].iter().any(|v| std::env::var_os(v).is_some())
                || tunables.contains("malloc.mmap_threshold")
                || tunables.contains("malloc.trim_threshold")
        });
        if set_by_env {
            return;
        }
        // SAFETY: mallopt takes no pointer and only sets glibc's malloc parameters; the
        // master reading its configuration and a starting worker are single-threaded.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, mmap);
            libc::mallopt(libc::M_TRIM_THRESHOLD, trim);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = (mmap, trim);
}

/// Free heap below which [`release_free_heap`] gives nothing back: what a small request
/// leaves free is reused by the next one, and every page given back inside a huge page
/// splits it (`ward_huge_pages`).
const TRIM_FROM_FREE: usize = 8 << 20;

/// `malloc_trim(0)`: every whole free page of glibc's arenas goes back to the kernel
/// (10-20 µs when there is little to give back, ~2 ms for 20 MB), once at least
/// [`TRIM_FROM_FREE`] of the heap is free.
pub(crate) fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallinfo2 and malloc_trim take no pointer and only walk glibc's own arenas;
    // nginx's master and workers are single-threaded and call this outside any allocation.
    unsafe {
        if libc::mallinfo2().fordblks < TRIM_FROM_FREE {
            return;
        }
        libc::malloc_trim(0);
    }
}

/// `ward_huge_pages` of `cycle`'s http block: on unless set off.
///
/// # Safety
/// `cycle` is a live, configured cycle.
pub(crate) unsafe fn huge_pages_wanted(cycle: *mut ngx::ffi::ngx_cycle_t) -> bool {
    use ngx::http::HttpModuleConfExt;
    // SAFETY: per the contract; this module's http main conf slot holds a MainConf.
    let main = unsafe { (*cycle).http_main_conf_unchecked::<MainConf>(crate::module()) };
    // SAFETY: a MainConf lives in the cycle pool as long as the cycle.
    main.is_none_or(|m| unsafe { m.as_ref() }.huge_pages != Some(false))
}

/// Backs the worker's heap with huge pages (`huge_pages`); says what it did at `info`.
pub(crate) fn back_heap_with_huge_pages(log: *mut ngx::ffi::ngx_log_t) {
    let msg = match crate::huge_pages::back_with_huge_pages() {
        Ok(o) => format!(
            "ward: huge pages: {} of {} MB of the worker's heap collapsed{}",
            o.collapsed >> 20,
            o.marked >> 20,
            o.error.map(|e| format!(" ({e})")).unwrap_or_default()
        ),
        Err(e) => format!("ward: huge pages: /proc/self/maps: {e}"),
    };
    guard::log_bytes(log, ngx::ffi::NGX_LOG_INFO as usize, msg.as_bytes());
}

/// `ward_huge_pages on|off` (http level).
pub unsafe extern "C" fn set_huge_pages(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    guard::catch_conf(cf, "ward_huge_pages directive", || {
        // SAFETY: setter contract: `cf->args` are the directive's words; at http level
        // `cf->ctx` is the http block's ngx_http_conf_ctx_t.
        let (args, main) = unsafe { (args(cf), main_conf(cf)) };
        let main = main.ok_or("ward: no main configuration")?;
        if main.huge_pages.is_some() {
            return Err("\"ward_huge_pages\" directive is duplicate".into());
        }
        main.huge_pages = Some(flag_arg(args.get(1).map(|a| a.as_bytes()).unwrap_or_default(), "ward_huge_pages")?);
        Ok(())
    })
}

pub unsafe extern "C" fn create_loc_conf(cf: *mut ngx_conf_t) -> *mut c_void {
    create::<LocConf>(cf)
}

fn create<T: Default>(cf: *mut ngx_conf_t) -> *mut c_void {
    let r = std::panic::catch_unwind(|| {
        // SAFETY: `cf->pool` is the cycle pool, alive as long as the configuration; the
        // cleanup drops the conf when nginx destroys it (reload, `nginx -t`, exit).
        unsafe { crate::pool::attach((*cf).pool, T::default()) }
    });
    match r {
        Ok(Some(p)) => p.cast(),
        _ => std::ptr::null_mut(), // nginx reports the allocation failure
    }
}

pub unsafe extern "C" fn merge_loc_conf(cf: *mut ngx_conf_t, prev: *mut c_void, conf: *mut c_void) -> *mut c_char {
    guard::catch_conf(cf, "merge", || {
        // SAFETY: nginx passes the parent's and this level's confs, both created by
        // create_loc_conf, distinct, and alive for the cycle.
        let (prev, conf) = unsafe { (&*prev.cast::<LocConf>(), &mut *conf.cast::<LocConf>()) };
        // SAFETY: during merge `cf->ctx` is the http block's ngx_http_conf_ctx_t.
        let main = unsafe { main_conf(cf) }.ok_or("ward: no main configuration")?;
        // SAFETY: during merge `cf->ctx->loc_conf` is the level being merged.
        let place = unsafe { crate::auth::place(cf) };
        let merged = crate::auth::merge(&mut conf.auth, &prev.auth, &mut main.auth_cache, &place)
            .and_then(|()| merge(conf, prev, main));
        match merged {
            Ok(Some(summary)) => {
                // SAFETY: during merge `cf->log` is the cycle's live log.
                guard::log_bytes(
                    unsafe { (*cf).log },
                    ngx::ffi::NGX_LOG_INFO as ngx::ffi::ngx_uint_t,
                    summary.as_bytes(),
                );
            }
            Ok(None) => {}
            Err(e) => {
                // The engine's message already names file:line; nginx's position would not.
                guard::conf_error_bare(cf, &e);
                return Err(String::new());
            }
        }
        // The gate's cookie never reaches an audit record.
        if let Some(gate) = conf.auth.gate() {
            let name = gate.cookie_name().to_string();
            if !conf.audit_mask_cookies.contains(&name) {
                conf.audit_mask_cookies.push(name);
            }
        }
        // SAFETY: during merge `cf->cycle` is the cycle being configured.
        let prefix = unsafe { PathBuf::from(OsStr::from_bytes((*(*cf).cycle).prefix.as_bytes())) };
        merge_audit(conf, prev, main, &prefix)
    })
}

/// Merging proper, free of FFI. Returns a load summary when it compiled or reused a rule set.
fn merge(conf: &mut LocConf, prev: &LocConf, main: &mut MainConf) -> Result<Option<String>, String> {
    if conf.merged {
        return Ok(None);
    }
    conf.merged = true;
    if conf.enabled.is_none() {
        conf.enabled = prev.enabled;
    }
    if conf.failure_open.is_none() {
        conf.failure_open = prev.failure_open;
    }
    let own = std::mem::take(&mut conf.sources);
    conf.own = own.len();
    conf.sources = prev.sources.iter().cloned().chain(own).collect();
    if conf.sources.is_empty() {
        return Ok(None);
    }
    if conf.own == 0 && prev.rules.is_some() {
        conf.rules = prev.rules.clone();
        return Ok(None);
    }
    if let Some(rules) = main.cache.get(&conf.sources) {
        conf.rules = Some(rules.clone());
        return Ok(None);
    }
    let started = std::time::Instant::now();
    if let Some(rules) = loaded(&conf.sources) {
        main.cache.insert(conf.sources.clone(), rules.clone());
        let summary = format!(
            "ward: reusing {} rules from {} source(s): their {} files are unchanged since the last load (checked in {} ms)",
            rules.stats().rules,
            conf.sources.len(),
            rules.inputs().files(),
            started.elapsed().as_millis()
        );
        conf.rules = Some(rules);
        return Ok(Some(summary));
    }
    let rules = Arc::new(RuleSet::compile(&conf.sources).map_err(|e| e.to_string())?);
    remember_loaded(&conf.sources, &rules);
    let s = rules.stats();
    let mut summary = format!(
        "ward: compiled {} rules from {} source(s) in {} ms (engine {}; @rx on the regex crate: {}, on PCRE2: {}, built on first use: {}; operators with macros: {}; setup rules evaluated at load: {}, decided at load: {})",
        s.rules,
        conf.sources.len(),
        started.elapsed().as_millis(),
        rules.engine_mode().name(),
        s.regex_on_regex_crate,
        s.regex_on_pcre2,
        s.regex_deferred,
        s.dynamic_operators,
        s.folded_setup_rules,
        s.decided_at_load
    );
    if let Some(note) = rules.unavailable_summary() {
        summary.push_str("; ");
        summary.push_str(&note);
    }
    main.cache.insert(conf.sources.clone(), rules.clone());
    conf.rules = Some(rules);
    Ok(Some(summary))
}

/// Rule sets compiled by earlier configuration cycles of this process, by source list. Weak:
/// a set lives only as long as a cycle uses it; a reload runs while the old cycle is still
/// alive, so its sets can be taken over.
static LOADED: Mutex<Vec<(Vec<RuleSource>, Weak<RuleSet>)>> = Mutex::new(Vec::new());

/// The set an earlier cycle compiled from `sources`, if it is still alive and every file it
/// was loaded from reads the same today (a reload that changes no rule compiles nothing,
/// and the master never holds two copies of the same rules).
fn loaded(sources: &[RuleSource]) -> Option<Arc<RuleSet>> {
    let list = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    let rules = list.iter().find(|(s, _)| s.as_slice() == sources)?.1.upgrade()?;
    drop(list);
    rules.inputs().unchanged().then_some(rules)
}

fn remember_loaded(sources: &[RuleSource], rules: &Arc<RuleSet>) {
    let mut list = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    list.retain(|(s, w)| w.strong_count() > 0 && s.as_slice() != sources);
    list.push((sources.to_vec(), Arc::downgrade(rules)));
}

/// Audit settings: inherited ones, and the files of this level's rule set (opened here,
/// in the master, once per path and cycle).
fn merge_audit(
    conf: &mut LocConf,
    prev: &LocConf,
    main: &mut MainConf,
    prefix: &std::path::Path,
) -> Result<(), String> {
    if conf.unique_id_header.is_none() {
        conf.unique_id_header = prev.unique_id_header.clone();
    }
    let mut names: Vec<String> = crate::audit_log::DEFAULT_MASKED_COOKIES.iter().map(|s| s.to_string()).collect();
    for n in prev.audit_mask_cookies.iter().chain(&conf.audit_mask_cookies) {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    conf.audit_mask_cookies = names;
    conf.audit = match &conf.rules {
        Some(rules) => crate::audit_log::sink_for(rules, prefix, &mut main.audit_sinks)?
            .map(|sink| crate::audit_log::AuditTarget { sink, masked_cookies: conf.audit_mask_cookies.clone().into() }),
        None => None,
    };
    Ok(())
}

/// `ward_unique_id_header NAME;`
pub unsafe extern "C" fn set_unique_id_header(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    guard::catch_conf(cf, "ward_unique_id_header directive", || {
        // SAFETY: setter contract (see `args` and `loc`).
        let (args, conf) = unsafe { (args(cf), loc(conf)) };
        if conf.unique_id_header.is_some() {
            return Err("\"ward_unique_id_header\" directive is duplicate".into());
        }
        let name = args.get(1).map(|a| a.as_bytes()).unwrap_or_default();
        // An HTTP token: nginx would send anything else as a broken header.
        let token = |c: &u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || !name.iter().all(token) {
            return Err(format!("ward_unique_id_header: invalid header name \"{}\"", String::from_utf8_lossy(name)));
        }
        conf.unique_id_header = Some(name.to_vec());
        Ok(())
    })
}

/// `ward_failure_mode closed|open;`
pub unsafe extern "C" fn set_failure_mode(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    guard::catch_conf(cf, "ward_failure_mode directive", || {
        // SAFETY: setter contract (see `args` and `loc`).
        let (args, conf) = unsafe { (args(cf), loc(conf)) };
        if conf.failure_open.is_some() {
            return Err("\"ward_failure_mode\" directive is duplicate".into());
        }
        let value = args.get(1).map(|a| a.as_bytes()).unwrap_or_default();
        conf.failure_open = Some(match value {
            b"open" => true,
            b"closed" => false,
            _ => {
                return Err(format!(
                    "invalid value \"{}\" in \"ward_failure_mode\" directive, it must be \"closed\" or \"open\"",
                    String::from_utf8_lossy(value)
                ))
            }
        });
        Ok(())
    })
}

/// # Safety
/// `cf->ctx` must be an `ngx_http_conf_ctx_t` (true inside the http block and its merge).
unsafe fn main_conf<'a>(cf: *mut ngx_conf_t) -> Option<&'a mut MainConf> {
    // SAFETY: per the contract; main_conf has a slot per HTTP module holding our MainConf.
    unsafe {
        let ctx = (*cf).ctx.cast::<ngx_http_conf_ctx_t>();
        if ctx.is_null() {
            return None;
        }
        (*(*ctx).main_conf.add(crate::module().ctx_index)).cast::<MainConf>().as_mut()
    }
}

/// The directive's arguments (index 0 is the directive name).
///
/// # Safety
/// `cf` is the live conf passed to a directive setter.
pub(crate) unsafe fn args<'a>(cf: *mut ngx_conf_t) -> &'a [ngx_str_t] {
    // SAFETY: during a setter call `cf->args` is an array of ngx_str_t.
    unsafe { (*(*cf).args).as_slice() }
}

/// # Safety
/// `conf` is the LocConf nginx passes to a setter of this module.
pub(crate) unsafe fn loc<'a>(conf: *mut c_void) -> &'a mut LocConf {
    // SAFETY: per the contract.
    unsafe { &mut *conf.cast::<LocConf>() }
}

/// `ward on|off;`
pub unsafe extern "C" fn set_ward(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    guard::catch_conf(cf, "ward directive", || {
        // SAFETY: setter contract (see `args` and `loc`).
        let (args, conf) = unsafe { (args(cf), loc(conf)) };
        if conf.enabled.is_some() {
            return Err("\"ward\" directive is duplicate".into());
        }
        let value = args.get(1).map(|a| a.as_bytes()).unwrap_or_default();
        conf.enabled = Some(flag_arg(value, "ward")?);
        Ok(())
    })
}

/// An I/O error as nginx words it (`No such file or directory`, without Rust's
/// `(os error 2)` tail).
fn io_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// An `on | off` argument of `directive` (either case, as nginx's own flags), or nginx's
/// error for anything else.
pub(crate) fn flag_arg(v: &[u8], directive: &str) -> Result<bool, String> {
    if v.eq_ignore_ascii_case(b"on") {
        Ok(true)
    } else if v.eq_ignore_ascii_case(b"off") {
        Ok(false)
    } else {
        Err(format!(
            "invalid value \"{}\" in \"{directive}\" directive, it must be \"on\" or \"off\"",
            String::from_utf8_lossy(v)
        ))
    }
}

/// `ward_rules_file PATH;` — relative paths start at the nginx prefix (`-p`).
pub unsafe extern "C" fn set_rules_file(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    guard::catch_conf(cf, "ward_rules_file directive", || {
        // SAFETY: setter contract (see `args` and `loc`).
        let (args, conf) = unsafe { (args(cf), loc(conf)) };
        let mut name = *args.get(1).ok_or("ward_rules_file: missing path")?;
        // SAFETY: `cf->cycle` is live; ngx_conf_full_name replaces `name` with a copy in
        // the cycle pool prefixed by the nginx prefix when relative.
        let rc = unsafe { ngx::ffi::ngx_conf_full_name((*cf).cycle, &mut name, 0) };
        if rc != ngx::ffi::NGX_OK as ngx::ffi::ngx_int_t {
            return Err("ward_rules_file: cannot resolve path".into());
        }
        let path = PathBuf::from(OsStr::from_bytes(name.as_bytes()));
        if let Err(e) = std::fs::File::open(&path) {
            return Err(format!("ward_rules_file \"{}\": {}", path.display(), io_text(&e)));
        }
        if path.is_dir() {
            return Err(format!("ward_rules_file \"{}\": is a directory", path.display()));
        }
        conf.sources.push(RuleSource::File(path));
        Ok(())
    })
}

/// `ward_rules '…';` — reported as the nginx file and the line the text starts on.
pub unsafe extern "C" fn set_rules(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    guard::catch_conf(cf, "ward_rules directive", || {
        // SAFETY: setter contract (see `args` and `loc`).
        let (args, conf) = unsafe { (args(cf), loc(conf)) };
        let text = args.get(1).map(|a| a.as_bytes()).unwrap_or_default();
        let text =
            std::str::from_utf8(text).map_err(|_| "ward_rules: the rules are not valid UTF-8".to_string())?.to_owned();
        // SAFETY: while parsing, `cf->conf_file` is the file being read, `line` the
        // current (last) line of this directive.
        let (origin, end_line) = unsafe {
            let f = (*cf).conf_file;
            if f.is_null() {
                (PathBuf::new(), 1)
            } else {
                (PathBuf::from(OsStr::from_bytes((*f).file.name.as_bytes())), (*f).line)
            }
        };
        // nginx is at the directive's end; the text starts that many newlines earlier.
        let newlines = text.bytes().filter(|&b| b == b'\n').count();
        let line = end_line.saturating_sub(newlines).max(1);
        conf.sources.push(RuleSource::Inline { text, origin, line });
        Ok(())
    })
}
