//! Audit log writing (log phase) and the unique-id request header.
//!
//! Files are opened at configuration time, in the master (so a root master can create
//! them in root-owned log directories); workers inherit the descriptors. Each record is
//! written with one `write()` on an `O_APPEND` descriptor, so records from several
//! workers never interleave; records larger than `PIPE_BUF` are also written under a
//! POSIX `fcntl` write lock. (`flock` would not do: its locks belong to the open file
//! description, which every worker shares with the master, so it would not exclude
//! sibling workers; `fcntl` locks belong to the process.) A reload opens the files
//! again in the new cycle; a rotated file (moved away, its path now another file or
//! none) is reopened by the worker that notices, when it may.

use std::collections::HashMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use ngx::ffi::{ngx_http_request_t, ngx_str_t, ngx_table_elt_t};
use ward_engine::audit::{AuditConfig, AuditLogType};
use ward_engine::{AuditEnv, AuditRecord, RuleSet};

use crate::ctx::RequestCtx;
use crate::guard;
use crate::request::Req;

/// The login gate's cookie, masked in every record (more with `ward_audit_mask_cookie`).
pub const DEFAULT_MASKED_COOKIES: &[&str] = &["ward_token"];
/// Form fields masked in every record (the login form's password).
const MASKED_ARGS: &[&str] = &["password"];

/// `producer.connector` in JSON records.
const CONNECTOR: &str = concat!("ward-nginx v", env!("CARGO_PKG_VERSION"));

/// Where one rule set's records go.
pub struct AuditSink {
    /// `SecAuditLog` (Serial: the records; Concurrent: the index), resolved.
    log: Option<LogFile>,
    /// `SecAuditLogStorageDir` (Concurrent), resolved.
    storage_dir: Option<PathBuf>,
    file_mode: u32,
    dir_mode: u32,
}

/// An append-only file and the identity of what it was opened as.
struct LogFile {
    path: PathBuf,
    mode: u32,
    /// Per process after fork: a worker that reopens only changes its own copy.
    file: Mutex<(File, (u64, u64))>,
}

/// A location's audit destination and the cookies its records mask (kept by the
/// request context, so an internal redirect cannot change where a record goes).
#[derive(Clone)]
pub struct AuditTarget {
    pub sink: Arc<AuditSink>,
    pub masked_cookies: Arc<[String]>,
}

/// Sinks by (log path, storage dir), per configuration cycle.
pub type SinkCache = HashMap<(Option<PathBuf>, Option<PathBuf>), Arc<AuditSink>>;

/// `path` below the nginx prefix unless absolute.
fn resolve(prefix: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        prefix.join(path)
    }
}

fn open_append(path: &Path, mode: u32) -> std::io::Result<(File, (u64, u64))> {
    let f = OpenOptions::new().append(true).create(true).mode(mode).open(path)?;
    let m = f.metadata()?;
    Ok((f, (m.dev(), m.ino())))
}

/// Opens the audit destination of `rules` (configuration time). None when the rule set
/// never writes records; an error (nginx refuses the configuration) when it cannot.
pub fn sink_for(rules: &RuleSet, prefix: &Path, cache: &mut SinkCache) -> Result<Option<Arc<AuditSink>>, String> {
    let Some(cfg) = rules.audit_destination()? else { return Ok(None) };
    let log = cfg.log.as_deref().map(|p| resolve(prefix, p));
    let storage = match cfg.log_type {
        AuditLogType::Concurrent => cfg.storage_dir.as_deref().map(|p| resolve(prefix, p)),
        AuditLogType::Serial => None,
    };
    let key = (log.clone(), storage.clone());
    if let Some(s) = cache.get(&key) {
        return Ok(Some(s.clone()));
    }
    let sink = Arc::new(open_sink(cfg, log, storage)?);
    cache.insert(key, sink.clone());
    Ok(Some(sink))
}

fn open_sink(cfg: &AuditConfig, log: Option<PathBuf>, storage: Option<PathBuf>) -> Result<AuditSink, String> {
    let log = match log {
        Some(path) => {
            let file = open_append(&path, cfg.file_mode)
                .map_err(|e| format!("SecAuditLog \"{}\": {}", path.display(), io_text(&e)))?;
            Some(LogFile { path, mode: cfg.file_mode, file: Mutex::new(file) })
        }
        None => None,
    };
    if let Some(dir) = &storage {
        DirBuilder::new()
            .recursive(true)
            .mode(cfg.dir_mode)
            .create(dir)
            .map_err(|e| format!("SecAuditLogStorageDir \"{}\": {}", dir.display(), io_text(&e)))?;
    }
    Ok(AuditSink { log, storage_dir: storage, file_mode: cfg.file_mode, dir_mode: cfg.dir_mode })
}

fn io_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

impl LogFile {
    /// Appends `data` in one write (under a write lock when it exceeds PIPE_BUF).
    fn append(&self, data: &[u8]) -> std::io::Result<()> {
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        self.reopen_if_rotated(&mut guard);
        let file = &guard.0;
        let locked = data.len() > libc::PIPE_BUF && lock(file, libc::F_WRLCK);
        let r = write_once(file, data, locked);
        if locked {
            lock(file, libc::F_UNLCK);
        }
        r
    }

    /// After a rotation the path names another file (or none): reopen it. A worker
    /// that may not create or open it keeps writing to the old file.
    fn reopen_if_rotated(&self, cur: &mut (File, (u64, u64))) {
        let now = std::fs::metadata(&self.path).map(|m| (m.dev(), m.ino())).ok();
        if now != Some(cur.1) {
            if let Ok(f) = open_append(&self.path, self.mode) {
                *cur = f;
            }
        }
    }
}

/// One `write()`; a short write (disk full, signal) finishes under the lock.
fn write_once(mut file: &File, data: &[u8], locked: bool) -> std::io::Result<()> {
    let n = file.write(data)?;
    if n == data.len() {
        return Ok(());
    }
    let relock = !locked && lock(file, libc::F_WRLCK);
    let r = file.write_all(&data[n..]);
    if relock {
        lock(file, libc::F_UNLCK);
    }
    r
}

/// Whole-file POSIX record lock (blocking) or unlock; false when it failed.
fn lock(file: &File, kind: libc::c_int) -> bool {
    // SAFETY: an all-zero flock is valid (whole file from offset 0); fcntl only reads it.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    loop {
        // SAFETY: a live descriptor and a valid flock struct.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLKW, &fl) };
        if rc == 0 {
            return true;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return false;
        }
    }
}

impl AuditSink {
    fn write(&self, rec: &AuditRecord) -> Result<(), String> {
        match (&rec.concurrent_file, &self.storage_dir) {
            (Some(rel), Some(dir)) => {
                let path = dir.join(rel);
                if let Some(parent) = path.parent() {
                    DirBuilder::new()
                        .recursive(true)
                        .mode(self.dir_mode)
                        .create(parent)
                        .map_err(|e| format!("cannot create \"{}\": {}", parent.display(), io_text(&e)))?;
                }
                let mut f = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .mode(self.file_mode)
                    .open(&path)
                    .map_err(|e| format!("cannot open \"{}\": {}", path.display(), io_text(&e)))?;
                f.write_all(&rec.text).map_err(|e| format!("cannot write \"{}\": {}", path.display(), io_text(&e)))?;
                if let (Some(log), Some(line)) = (&self.log, rec.index_line(&path)) {
                    log.append(&line)
                        .map_err(|e| format!("cannot write \"{}\": {}", log.path.display(), io_text(&e)))?;
                }
                Ok(())
            }
            _ => match &self.log {
                Some(log) => log
                    .append(&rec.text)
                    .map_err(|e| format!("cannot write \"{}\": {}", log.path.display(), io_text(&e))),
                None => Ok(()),
            },
        }
    }
}

/// `server_id`: SHA-1 of this machine's name (computed once per process).
fn server_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        // SAFETY: ngx_cycle is set before any request runs; hostname lives in its pool.
        let host = unsafe {
            let c = ngx::ffi::ngx_cycle;
            if c.is_null() {
                Vec::new()
            } else {
                (*c).hostname.as_bytes().to_vec()
            }
        };
        ward_engine::audit::server_id(&host)
    })
}

/// Log phase: writes the transaction's record when the audit engine wants one.
pub fn log_phase(req: Req<'_>, ctx: &RequestCtx) {
    let Some(target) = &ctx.audit else { return };
    let masked_cookies: Vec<&str> = target.masked_cookies.iter().map(String::as_str).collect();
    let masked_cookies = masked_cookies.as_slice();
    let tp = ngx::ffi::ngx_timeofday();
    let env = AuditEnv {
        status: u16::try_from(req.status()).unwrap_or(0),
        masked_cookies,
        masked_args: MASKED_ARGS,
        utc_offset_secs: i32::try_from(tp.gmtoff * 60).unwrap_or(0),
        server_id: server_id(),
        connector: CONNECTOR,
    };
    let Some(rec) = ctx.tx.audit_record(&env) else { return };
    if let Err(e) = target.sink.write(&rec) {
        let msg = format!("ward: audit log: {e}");
        guard::log_bytes(req.log(), ngx::ffi::NGX_LOG_ERR as usize, msg.as_bytes());
    }
}

/// `ward_unique_id_header NAME`: the unique id goes upstream in `NAME` (a client's own
/// `NAME` header is overwritten, so it cannot forge the id). False when out of memory.
pub fn set_unique_id_header(req: Req<'_>, name: &[u8], id: &str) -> bool {
    let r: *mut ngx_http_request_t = req.raw();
    let pool = req.pool();
    // SAFETY: live request; the copies live in its pool as long as the headers; the
    // header list is nginx's ngx_list_t of ngx_table_elt_t.
    unsafe {
        let Some(value) = ngx_str_t::from_bytes(pool, id.as_bytes()) else { return false };
        let mut part: *mut ngx::ffi::ngx_list_part_t = &mut (*r).headers_in.headers.part;
        let mut found = false;
        while !part.is_null() {
            let elts = (*part).elts.cast::<ngx_table_elt_t>();
            for i in 0..(*part).nelts {
                let h = &mut *elts.add(i);
                if h.key.as_bytes().eq_ignore_ascii_case(name) {
                    h.value = value;
                    found = true;
                }
            }
            part = (*part).next;
        }
        if found {
            return true;
        }
        let Some(key) = ngx_str_t::from_bytes(pool, name) else { return false };
        let Some(low) = ngx_str_t::from_bytes(pool, &name.to_ascii_lowercase()) else { return false };
        let h = ngx::ffi::ngx_list_push(&mut (*r).headers_in.headers).cast::<ngx_table_elt_t>();
        if h.is_null() {
            return false;
        }
        // nginx's hash of the lowercase name, so `proxy_set_header NAME` still overrides it.
        (*h).hash = ngx::ffi::ngx_hash_key(low.data, low.len);
        (*h).key = key;
        (*h).value = value;
        (*h).lowcase_key = low.data;
    }
    true
}
