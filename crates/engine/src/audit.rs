//! Audit log: the `SecAudit*` settings, each transaction's audit state
//! (`ctl:auditEngine`, `ctl:auditLogParts`, the rule messages), the relevance decision and
//! ModSecurity v3's two record formats: JSON (one object per line, the shape of
//! `Transaction::toJSON`, so Filebeat/Logstash ModSecurity pipelines read it unchanged)
//! and Native (`---boundary---A--` sections, `toOldAuditLogFormat`).
//!
//! Records carry no secrets: `Authorization` and `Proxy-Authorization` values, the
//! server's auth cookies (in `Cookie` and `Set-Cookie`) and named arguments such as
//! `password` are masked wherever their values appear in the record (headers, URI,
//! bodies, messages). The engine builds the record; the server writes it.
//!
//! Example (`SecAuditLogFormat JSON`, parts ABFHZ):
//! `{"transaction":{"client_ip":"127.0.0.1","time_stamp":"Tue Nov 14 22:13:20 2023",
//! "server_id":"…","client_port":41234,"host_ip":"127.0.0.1","host_port":80,
//! "unique_id":"…","request":{"method":"GET","http_version":1.1,"uri":"/?id=1'",
//! "headers":{"Host":"x"}},"response":{"http_code":403,"headers":{}},"producer":{…},
//! "messages":[{"message":"…","details":{"match":"…","reference":"","ruleId":"942100",…}}]}}`

use std::borrow::Cow;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::actions::Ctl;
use crate::log::MatchInfo;
use crate::operators::pattern::Pattern;
use crate::rule::Rule;
use crate::ruleset::{EngineMode, RuleSet};
use crate::transaction::{Intervention, Transaction};

/// What a masked secret is replaced with.
pub const MASK: &str = "********";

/// Secrets shorter than this are masked where they are known to sit (header, cookie,
/// form field), not searched for everywhere (a one-letter password would blank the record).
const MIN_SCRUB_LEN: usize = 4;

/// `SecAuditEngine` (and `ctl:auditEngine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditEngine {
    #[default]
    Off,
    On,
    RelevantOnly,
}

impl AuditEngine {
    pub fn parse(v: &str) -> Result<AuditEngine, String> {
        match v.to_ascii_lowercase().as_str() {
            "on" => Ok(AuditEngine::On),
            "off" => Ok(AuditEngine::Off),
            "relevantonly" => Ok(AuditEngine::RelevantOnly),
            _ => Err(format!("invalid audit engine '{v}' (On, Off or RelevantOnly)")),
        }
    }
}

/// `SecAuditLogParts`: a set of the letters A-K and Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts(u16);

const PART_LETTERS: &[u8; 12] = b"ABCDEFGHIJKZ";

impl Parts {
    /// ModSecurity v3's default, `ABCFHZ`.
    pub const DEFAULT: Parts = Parts(0b1000_1010_0111);

    pub fn parse(s: &str) -> Result<Parts, String> {
        let mut bits = 0;
        for c in s.bytes() {
            let b = Parts::bit(c).ok_or_else(|| format!("invalid audit log part '{}' in '{s}' (A-K, Z)", c as char))?;
            bits |= b;
        }
        Ok(Parts(bits))
    }

    fn bit(c: u8) -> Option<u16> {
        PART_LETTERS.iter().position(|&l| l == c.to_ascii_uppercase()).map(|i| 1 << i)
    }

    pub fn has(self, letter: u8) -> bool {
        Parts::bit(letter).is_some_and(|b| self.0 & b != 0)
    }

    fn apply(self, m: &PartsChange) -> Parts {
        match m {
            PartsChange::Add(p) => Parts(self.0 | p.0),
            PartsChange::Remove(p) => Parts(self.0 & !p.0),
            PartsChange::Set(p) => *p,
        }
    }

    /// The letters, in order (`ABCFHZ`).
    pub fn letters(self) -> String {
        PART_LETTERS.iter().enumerate().filter(|(i, _)| self.0 & (1 << i) != 0).map(|(_, &l)| l as char).collect()
    }
}

impl Default for Parts {
    fn default() -> Self {
        Parts::DEFAULT
    }
}

/// `ctl:auditLogParts=+E`, `=-C` or (as ModSecurity v2) `=ABZ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartsChange {
    Add(Parts),
    Remove(Parts),
    Set(Parts),
}

impl PartsChange {
    fn parse(v: &str) -> Option<PartsChange> {
        let v = v.trim();
        Some(match v.as_bytes().first()? {
            b'+' => PartsChange::Add(Parts::parse(&v[1..]).ok()?),
            b'-' => PartsChange::Remove(Parts::parse(&v[1..]).ok()?),
            _ => PartsChange::Set(Parts::parse(v).ok()?),
        })
    }
}

/// `SecAuditLogFormat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditFormat {
    #[default]
    Native,
    Json,
}

impl AuditFormat {
    pub fn parse(v: &str) -> Result<AuditFormat, String> {
        match v.to_ascii_lowercase().as_str() {
            "json" => Ok(AuditFormat::Json),
            "native" => Ok(AuditFormat::Native),
            _ => Err(format!("invalid audit log format '{v}' (JSON or Native)")),
        }
    }
}

/// `SecAuditLogType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditLogType {
    /// Every record appended to `SecAuditLog`.
    #[default]
    Serial,
    /// One file per record below `SecAuditLogStorageDir`, an index line in `SecAuditLog`.
    Concurrent,
}

impl AuditLogType {
    pub fn parse(v: &str) -> Result<AuditLogType, String> {
        match v.to_ascii_lowercase().as_str() {
            "serial" => Ok(AuditLogType::Serial),
            "concurrent" | "parallel" => Ok(AuditLogType::Concurrent),
            "https" => Err("SecAuditLogType HTTPS is not supported by Ward (use Serial or Concurrent)".into()),
            _ => Err(format!("invalid audit log type '{v}' (Serial or Concurrent)")),
        }
    }
}

/// `SecAuditLogRelevantStatus`: a PCRE pattern searched in the status code's digits.
#[derive(Debug, Clone)]
pub struct RelevantStatus {
    pub text: String,
    pattern: Arc<Pattern>,
}

impl RelevantStatus {
    pub fn new(text: &str) -> Result<RelevantStatus, String> {
        let pattern = Pattern::new(text).map_err(|e| format!("SecAuditLogRelevantStatus '{text}': {e}"))?;
        Ok(RelevantStatus { text: text.to_string(), pattern: Arc::new(pattern) })
    }

    pub fn matches(&self, status: u16) -> bool {
        // Written on the stack: this runs for every transaction that logs.
        self.pattern.is_match(itoa::Buffer::new().format(status).as_bytes())
    }
}

/// Audit-log settings of a rule set (the `SecAudit*` directives).
#[derive(Debug, Clone)]
pub struct AuditConfig {
    pub engine: AuditEngine,
    pub log: Option<PathBuf>,
    pub parts: Parts,
    pub format: AuditFormat,
    pub log_type: AuditLogType,
    pub relevant_status: Option<RelevantStatus>,
    pub storage_dir: Option<PathBuf>,
    /// `SecAuditLogFileMode` / `SecAuditLogDirMode` (ModSecurity's defaults 0640 / 0750).
    pub file_mode: u32,
    pub dir_mode: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            engine: AuditEngine::Off,
            log: None,
            parts: Parts::DEFAULT,
            format: AuditFormat::Native,
            log_type: AuditLogType::Serial,
            relevant_status: None,
            storage_dir: None,
            file_mode: 0o640,
            dir_mode: 0o750,
        }
    }
}

/// Octal permission bits (`0640`).
pub fn parse_mode(v: &str) -> Result<u32, String> {
    u32::from_str_radix(v.trim(), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("invalid file mode '{v}' (octal, e.g. 0640)"))
}

impl RuleSet {
    pub fn audit(&self) -> &AuditConfig {
        &self.config().audit
    }

    /// The audit settings when this rule set may write records (the audit engine is on,
    /// or a rule can turn it on with `ctl:auditEngine`); an error when they cannot work.
    pub fn audit_destination(&self) -> Result<Option<&AuditConfig>, String> {
        let a = self.audit();
        let ctl_on = || {
            self.rules().flat_map(Rule::links).any(|r| r.actions.ctls.iter().any(|c| matches!(c, Ctl::AuditEngine(_))))
        };
        if a.engine == AuditEngine::Off && (!ctl_on() || (a.log.is_none() && a.storage_dir.is_none())) {
            // Off, and either no rule can turn it on or there is nowhere to write
            // (CRS rules carry ctl:auditEngine; they must load without audit settings).
            return Ok(None);
        }
        match a.log_type {
            AuditLogType::Serial if a.log.is_none() => {
                Err("SecAuditEngine is enabled but SecAuditLog is not set".into())
            }
            AuditLogType::Concurrent if a.storage_dir.is_none() => {
                Err("SecAuditLogType Concurrent needs SecAuditLogStorageDir".into())
            }
            _ => Ok(Some(a)),
        }
    }
}

/// One rule message as the audit record reports it (ModSecurity's `RuleMessage`).
#[derive(Debug, Clone)]
pub struct AuditMessage {
    pub rule_id: u64,
    pub file: Arc<Path>,
    pub line: usize,
    pub phase: u8,
    /// Some(status) when this rule denied the request.
    pub denied_with: Option<u16>,
    pub message: Vec<u8>,
    pub data: Vec<u8>,
    pub matched: MatchInfo,
    /// The matching operator (ModSecurity's spelling) and its parameter.
    pub op: Arc<str>,
    pub param: Arc<str>,
    pub severity: u8,
    pub ver: String,
    pub rev: String,
    pub tags: Vec<String>,
    pub maturity: u8,
    pub accuracy: u8,
    /// `noauditlog`: reported, but does not make the transaction relevant.
    pub no_audit_log: bool,
}

impl AuditMessage {
    pub(crate) fn new(
        rule: &Rule,
        phase: u8,
        denied_with: Option<u16>,
        matched: &MatchInfo,
        msg: &[u8],
        data: &[u8],
    ) -> Self {
        let a = &rule.actions;
        let (op, param) = matched.operator(rule);
        AuditMessage {
            rule_id: rule.id,
            file: rule.file.clone(),
            line: rule.line,
            phase,
            denied_with,
            message: msg.to_vec(),
            data: data.to_vec(),
            matched: matched.clone(),
            op,
            param,
            severity: a.severity.unwrap_or(0),
            ver: a.ver.clone().unwrap_or_default(),
            rev: a.rev.clone().unwrap_or_default(),
            tags: a.tags.clone(),
            maturity: a.maturity.unwrap_or(0),
            accuracy: a.accuracy.unwrap_or(0),
            no_audit_log: a.auditlog == Some(false),
        }
    }

    /// ModSecurity's `m_match` text (value limited to 100 bytes, hex-escaped).
    fn match_text(&self) -> Vec<u8> {
        let m = &self.matched;
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(b"Matched \"Operator `");
        out.extend_from_slice(self.op.as_bytes());
        out.extend_from_slice(b"' with parameter `");
        out.extend_from_slice(&limit_to(200, self.param.as_bytes()));
        out.extend_from_slice(b"' against variable `");
        out.extend_from_slice(m.var.as_bytes());
        out.extend_from_slice(b"' (Value: `");
        out.extend_from_slice(&limit_to(100, &to_hex_if_needed(&m.value, false)));
        out.extend_from_slice(b"' )");
        out
    }
}

/// A transaction's audit state: when it started, `ctl:audit*` changes and rule messages.
#[derive(Debug)]
pub struct TxAudit {
    started: SystemTime,
    engine: Option<AuditEngine>,
    parts: Vec<PartsChange>,
    pub(crate) messages: Vec<AuditMessage>,
}

impl Default for TxAudit {
    fn default() -> Self {
        TxAudit { started: SystemTime::now(), engine: None, parts: Vec::new(), messages: Vec::new() }
    }
}

impl TxAudit {
    /// Applies `ctl:auditEngine` / `ctl:auditLogParts` (other ctls are not ours).
    pub(crate) fn ctl(&mut self, c: &Ctl) {
        match c {
            Ctl::AuditEngine(v) => {
                if let Ok(e) = AuditEngine::parse(v) {
                    self.engine = Some(e);
                }
            }
            Ctl::AuditLogParts(v) => self.parts.extend(PartsChange::parse(v)),
            _ => {}
        }
    }
}

/// Read-only view of the transaction data a record reports (built by `Transaction`).
pub(crate) struct TxView<'a> {
    pub rules: &'a RuleSet,
    pub audit: &'a TxAudit,
    pub engine: EngineMode,
    pub intervention: Option<&'a Intervention>,
    pub unique_id: &'a str,
    pub client_ip: &'a [u8],
    pub client_port: u16,
    pub server_ip: &'a [u8],
    pub server_port: u16,
    pub host: &'a [u8],
    pub method: &'a [u8],
    pub protocol: &'a [u8],
    pub uri: &'a [u8],
    pub headers: &'a [(Vec<u8>, Vec<u8>)],
    pub args: [&'a [(Vec<u8>, Vec<u8>)]; 3],
    pub body: &'a [u8],
    pub resp_status: u16,
    pub resp_headers: &'a [(Vec<u8>, Vec<u8>)],
    pub resp_body: &'a [u8],
}

/// What the server knows and the engine does not.
#[derive(Debug, Clone)]
pub struct AuditEnv<'a> {
    /// The status sent to the client; 0 = the intervention's or the one phase 3 saw.
    pub status: u16,
    /// Cookies whose values never appear in a record (the login gate's cookie).
    pub masked_cookies: &'a [&'a str],
    /// Arguments (query, form, JSON) whose values never appear in a record.
    pub masked_args: &'a [&'a str],
    /// Local time zone offset for `time_stamp` (ModSecurity writes local time).
    pub utc_offset_secs: i32,
    /// `server_id`: ModSecurity writes a SHA-1 of the host; see [`server_id`].
    pub server_id: &'a str,
    /// `producer.connector`.
    pub connector: &'a str,
}

impl Default for AuditEnv<'_> {
    fn default() -> Self {
        AuditEnv {
            status: 0,
            masked_cookies: &["ward_token"],
            masked_args: &["password"],
            utc_offset_secs: 0,
            server_id: "",
            connector: "",
        }
    }
}

/// `server_id` for a machine: the SHA-1 hex of its name (ModSecurity hashes MAC + name).
pub fn server_id(hostname: &[u8]) -> String {
    use sha1::Digest;
    sha1::Sha1::digest(hostname).iter().map(|b| format!("{b:02x}")).collect()
}

/// A finished record, ready to be written in one piece.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// The record, ending in a newline (JSON: exactly one line).
    pub text: Vec<u8>,
    pub log_type: AuditLogType,
    /// Concurrent: the record's file below `SecAuditLogStorageDir`
    /// (`20231114/20231114-2213/20231114-221320-<unique_id>`).
    pub concurrent_file: Option<PathBuf>,
    /// Concurrent: the index line before the file name and after it.
    index: Option<(String, String)>,
}

impl AuditRecord {
    /// Concurrent: the line `SecAuditLog` gets for the record stored at `path`.
    pub fn index_line(&self, path: &Path) -> Option<Vec<u8>> {
        use md5::Digest;
        let (head, tail) = self.index.as_ref()?;
        let md5: String = md5::Md5::digest(&self.text).iter().map(|b| format!("{b:02x}")).collect();
        Some(format!("{head}{} 0 {}.000000 md5:{md5}{tail}\n", path.display(), self.text.len()).into_bytes())
    }
}

impl Transaction {
    /// The audit record for this transaction, or None when the audit engine (with
    /// `ctl:auditEngine`) says not to write one: Off, or RelevantOnly with no message
    /// that audit-logs and a status that `SecAuditLogRelevantStatus` does not match.
    /// Call after phase 5.
    pub fn audit_record(&self, env: &AuditEnv) -> Option<AuditRecord> {
        let v = self.audit_view();
        let cfg = v.rules.audit();
        if v.engine == EngineMode::Off {
            return None;
        }
        let status = match (env.status, v.intervention) {
            (0, Some(iv)) => iv.status,
            (0, None) => v.resp_status,
            (s, _) => s,
        };
        match v.audit.engine.unwrap_or(cfg.engine) {
            AuditEngine::Off => return None,
            AuditEngine::On => {}
            AuditEngine::RelevantOnly => {
                let by_message = v.audit.messages.iter().any(|m| !m.no_audit_log);
                let by_status = cfg.relevant_status.as_ref().is_some_and(|r| r.matches(status));
                if !by_message && !by_status {
                    return None;
                }
            }
        }
        let parts = v.audit.parts.iter().fold(cfg.parts, |p, m| p.apply(m));
        let secrets = Secrets::collect(&v, env);
        let time = local_time(v.audit.started, env.utc_offset_secs);
        let r = Render { v: &v, env, secrets, status, parts, time };
        let text = match cfg.format {
            AuditFormat::Json => r.json(),
            AuditFormat::Native => r.native(),
        };
        let (concurrent_file, index) = match cfg.log_type {
            AuditLogType::Serial => (None, None),
            AuditLogType::Concurrent => (Some(r.concurrent_file()), Some(r.index_parts())),
        };
        Some(AuditRecord { text, log_type: cfg.log_type, concurrent_file, index })
    }

    /// `inbound=5 outbound=0` from the CRS scores (v4 `blocking_*_anomaly_score`, falling
    /// back to 3.3's `anomaly_score` / `outbound_anomaly_score`): for `$ward_anomaly_score`.
    pub fn anomaly_scores(&self) -> String {
        let score = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| self.tx(k))
                .map(|v| String::from_utf8_lossy(v).trim().to_string())
                .unwrap_or_else(|| "0".into())
        };
        format!(
            "inbound={} outbound={}",
            score(&["blocking_inbound_anomaly_score", "anomaly_score"]),
            score(&["blocking_outbound_anomaly_score", "outbound_anomaly_score"])
        )
    }
}

// ---- masking ----

/// Secret values of one transaction, longest first.
struct Secrets<'e> {
    values: Vec<Vec<u8>>,
    cookies: &'e [&'e str],
    args: &'e [&'e str],
}

impl<'e> Secrets<'e> {
    fn collect(v: &TxView, env: &AuditEnv<'e>) -> Secrets<'e> {
        let mut values: Vec<Vec<u8>> = Vec::new();
        for (k, val) in v.headers {
            if is_auth_header(k) {
                values.push(val.clone());
                if let Some(p) = memchr::memchr(b' ', val) {
                    values.push(trim(&val[p + 1..]).to_vec());
                }
            } else if k.eq_ignore_ascii_case(b"cookie") {
                for (name, value) in cookie_pairs(val) {
                    if names_contain(env.masked_cookies, name) {
                        values.push(value.to_vec());
                    }
                }
            }
        }
        for (k, val) in v.resp_headers {
            if k.eq_ignore_ascii_case(b"set-cookie") {
                if let Some((name, value)) = cookie_pairs(val).next() {
                    if names_contain(env.masked_cookies, name) {
                        values.push(value.to_vec());
                    }
                }
            }
        }
        for list in v.args {
            for (k, val) in list {
                // JSON arguments are named `json.a.b`: the last segment counts.
                let last = k.rsplit(|&c| c == b'.').next().unwrap_or(k);
                if names_contain(env.masked_args, k) || names_contain(env.masked_args, last) {
                    values.push(val.clone());
                }
            }
        }
        values.retain(|s| s.len() >= MIN_SCRUB_LEN);
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Secrets { values, cookies: env.masked_cookies, args: env.masked_args }
    }

    /// `b` with every secret replaced by the mask.
    fn scrub<'a>(&self, b: &'a [u8]) -> Cow<'a, [u8]> {
        let mut cur = Cow::Borrowed(b);
        for s in &self.values {
            if memchr::memmem::find(&cur, s).is_some() {
                let mut out = Vec::with_capacity(cur.len());
                let mut rest: &[u8] = &cur;
                while let Some(p) = memchr::memmem::find(rest, s) {
                    out.extend_from_slice(&rest[..p]);
                    out.extend_from_slice(MASK.as_bytes());
                    rest = &rest[p + s.len()..];
                }
                out.extend_from_slice(rest);
                cur = Cow::Owned(out);
            }
        }
        cur
    }

    /// A request header's value as the record shows it.
    fn request_header<'a>(&self, name: &[u8], value: &'a [u8]) -> Cow<'a, [u8]> {
        if is_auth_header(name) {
            // Keep the scheme (`Bearer`, `Basic`): useful, and not secret.
            return Cow::Owned(match memchr::memchr(b' ', value) {
                Some(p) => [&value[..p + 1], MASK.as_bytes()].concat(),
                None => MASK.as_bytes().to_vec(),
            });
        }
        if name.eq_ignore_ascii_case(b"cookie") {
            return Cow::Owned(mask_pairs(value, b';', self.cookies));
        }
        self.scrub(value)
    }

    fn response_header<'a>(&self, name: &[u8], value: &'a [u8]) -> Cow<'a, [u8]> {
        if name.eq_ignore_ascii_case(b"set-cookie") {
            if let Some((cname, _)) = cookie_pairs(value).next() {
                if names_contain(self.cookies, cname) {
                    let end = memchr::memchr(b';', value).unwrap_or(value.len());
                    let eq = memchr::memchr(b'=', value).unwrap_or(end);
                    return Cow::Owned([&value[..eq.min(end)], b"=", MASK.as_bytes(), &value[end..]].concat());
                }
            }
        }
        self.scrub(value)
    }

    /// The request target with masked query arguments.
    fn uri<'a>(&self, uri: &'a [u8]) -> Cow<'a, [u8]> {
        match memchr::memchr(b'?', uri) {
            Some(q) if !self.args.is_empty() => {
                let mut out = uri[..=q].to_vec();
                out.extend_from_slice(&mask_pairs(&uri[q + 1..], b'&', self.args));
                Cow::Owned(self.scrub(&out).into_owned())
            }
            _ => self.scrub(uri),
        }
    }

    fn request_body<'a>(&self, v: &TxView, body: &'a [u8]) -> Cow<'a, [u8]> {
        let form = v.headers.iter().any(|(k, val)| {
            k.eq_ignore_ascii_case(b"content-type")
                && val.to_ascii_lowercase().starts_with(b"application/x-www-form-urlencoded")
        });
        if form && !self.args.is_empty() {
            return Cow::Owned(self.scrub(&mask_pairs(body, b'&', self.args)).into_owned());
        }
        self.scrub(body)
    }
}

fn is_auth_header(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"authorization") || name.eq_ignore_ascii_case(b"proxy-authorization")
}

fn names_contain(names: &[&str], name: &[u8]) -> bool {
    names.iter().any(|n| n.as_bytes() == name)
}

/// `name=value` pairs of a `Cookie` (or the first of a `Set-Cookie`) header.
fn cookie_pairs(v: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    v.split(|&c| c == b';').filter_map(|p| {
        let eq = memchr::memchr(b'=', p)?;
        Some((trim(&p[..eq]), trim(&p[eq + 1..])))
    })
}

/// `a=1<sep>b=2` with the values of `names` masked; everything else byte for byte.
fn mask_pairs(v: &[u8], sep: u8, names: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    for (i, p) in v.split(|&c| c == sep).enumerate() {
        if i > 0 {
            out.push(sep);
        }
        match memchr::memchr(b'=', p) {
            Some(eq) if names_contain(names, trim(&p[..eq])) => {
                out.extend_from_slice(&p[..=eq]);
                out.extend_from_slice(MASK.as_bytes());
            }
            _ => out.extend_from_slice(p),
        }
    }
    out
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |e| e + 1);
    b.get(start..end).unwrap_or_default()
}

// ---- text helpers ----

/// ModSecurity's `toHexIfNeeded`: bytes outside printable ASCII become `\xHH`.
fn to_hex_if_needed(b: &[u8], escape_spec: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    for &c in b {
        if !(32..=126).contains(&c) || (escape_spec && (c == b'"' || c == b'\\')) {
            out.extend_from_slice(format!("\\x{c:02x}").as_bytes());
        } else {
            out.push(c);
        }
    }
    out
}

/// ModSecurity's `limitTo`: the first `n` bytes and a note of how many were left out.
fn limit_to(n: usize, b: &[u8]) -> Cow<'_, [u8]> {
    match b.get(..n) {
        Some(head) if b.len() > n => {
            Cow::Owned([head, format!(" ({} characters omitted)", b.len() - n).as_bytes()].concat())
        }
        _ => Cow::Borrowed(b),
    }
}

/// JSON strings must be UTF-8: valid sequences pass, other bytes become `\xHH` text.
fn utf8(b: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(b) {
        return Cow::Borrowed(s);
    }
    let mut s = String::with_capacity(b.len() + 8);
    for chunk in b.utf8_chunks() {
        s.push_str(chunk.valid());
        for c in chunk.invalid() {
            s.push_str(&format!("\\x{c:02x}"));
        }
    }
    Cow::Owned(s)
}

/// Time of the transaction in the server's zone.
fn local_time(t: SystemTime, offset_secs: i32) -> time::OffsetDateTime {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let utc = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    match time::UtcOffset::from_whole_seconds(offset_secs) {
        Ok(off) => utc.to_offset(off),
        Err(_) => utc,
    }
}

fn short(name: impl std::fmt::Display) -> String {
    name.to_string().chars().take(3).collect()
}

/// `%c` in the C locale: `Tue Nov 14 22:13:20 2023`.
fn asc_time(t: &time::OffsetDateTime) -> String {
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        short(t.weekday()),
        short(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.year()
    )
}

/// `[14/Nov/2023:22:13:20 +0000]`.
fn clf_time(t: &time::OffsetDateTime) -> String {
    let off = t.offset().whole_minutes();
    let sign = if off < 0 { '-' } else { '+' };
    let off = off.unsigned_abs();
    format!(
        "[{:02}/{}/{}:{:02}:{:02}:{:02} {sign}{:02}{:02}]",
        t.day(),
        short(t.month()),
        t.year(),
        t.hour(),
        t.minute(),
        t.second(),
        off / 60,
        off % 60
    )
}

/// Eight random alphanumerics (Native section boundary).
fn boundary() -> String {
    const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0));
    let mut x = h.finish();
    (0..8)
        .map(|_| {
            let c = ALNUM[(x % ALNUM.len() as u64) as usize] as char;
            x /= ALNUM.len() as u64;
            c
        })
        .collect()
}

/// `1.1` from `HTTP/1.1`.
fn http_version(protocol: &[u8]) -> &[u8] {
    protocol.strip_prefix(b"HTTP/").unwrap_or(protocol)
}

// ---- rendering ----

struct Render<'a> {
    v: &'a TxView<'a>,
    env: &'a AuditEnv<'a>,
    secrets: Secrets<'a>,
    status: u16,
    parts: Parts,
    time: time::OffsetDateTime,
}

/// Header pairs as the record shows them (masked).
type HeaderList<'a> = Vec<(Cow<'a, [u8]>, Cow<'a, [u8]>)>;

/// Header pairs as a JSON object, in order (repeated names repeat, as ModSecurity's).
struct Headers<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[derive(Serialize)]
struct JRoot<'a> {
    transaction: JTransaction<'a>,
}

#[derive(Serialize)]
struct JTransaction<'a> {
    client_ip: Cow<'a, str>,
    time_stamp: String,
    server_id: &'a str,
    client_port: u16,
    host_ip: Cow<'a, str>,
    host_port: u16,
    unique_id: &'a str,
    request: JRequest<'a>,
    response: JResponse<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    producer: Option<JProducer<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<Vec<JMessage<'a>>>,
}

#[derive(Serialize)]
struct JRequest<'a> {
    method: Cow<'a, str>,
    http_version: serde_json::Value,
    uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<Headers<'a>>,
}

#[derive(Serialize)]
struct JResponse<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    http_code: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<Headers<'a>>,
}

#[derive(Serialize)]
struct JProducer<'a> {
    modsecurity: String,
    connector: &'a str,
    secrules_engine: &'static str,
    components: &'a [String],
}

#[derive(Serialize)]
struct JMessage<'a> {
    message: String,
    details: JDetails<'a>,
}

#[derive(Serialize)]
#[allow(non_snake_case)]
struct JDetails<'a> {
    #[serde(rename = "match")]
    match_: String,
    reference: &'static str,
    ruleId: String,
    file: Cow<'a, str>,
    lineNumber: String,
    data: String,
    severity: String,
    ver: &'a str,
    rev: &'a str,
    tags: &'a [String],
    maturity: String,
    accuracy: String,
}

/// `producer.modsecurity`: ModSecurity's spelling (parsers read the version), Ward appended.
fn producer_name() -> String {
    format!("ModSecurity v3.0.9 (Linux) Ward v{}", env!("CARGO_PKG_VERSION"))
}

fn engine_state(m: EngineMode) -> &'static str {
    match m {
        EngineMode::On => "Enabled",
        EngineMode::Off => "Disabled",
        EngineMode::DetectionOnly => "DetectionOnly",
    }
}

impl Render<'_> {
    fn clean(&self, b: &[u8]) -> String {
        utf8(&self.secrets.scrub(b)).into_owned()
    }

    fn request_headers(&self) -> HeaderList<'_> {
        self.v
            .headers
            .iter()
            .map(|(k, val)| (Cow::Borrowed(k.as_slice()), self.secrets.request_header(k, val)))
            .collect()
    }

    fn response_headers(&self) -> HeaderList<'_> {
        self.v
            .resp_headers
            .iter()
            .map(|(k, val)| (Cow::Borrowed(k.as_slice()), self.secrets.response_header(k, val)))
            .collect()
    }

    fn json(&self) -> Vec<u8> {
        let v = self.v;
        let p = self.parts;
        let to_json_headers = |h: HeaderList| {
            Headers(
                h.into_iter()
                    .map(|(k, val)| (Cow::Owned(utf8(&k).into_owned()), Cow::Owned(utf8(&val).into_owned())))
                    .collect(),
            )
        };
        let version = std::str::from_utf8(http_version(v.protocol))
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .and_then(serde_json::Number::from_f64)
            .map_or(serde_json::Value::from(0), serde_json::Value::Number);
        let messages = p.has(b'H').then(|| {
            v.audit
                .messages
                .iter()
                .map(|m| JMessage {
                    message: self.clean(&m.message),
                    details: JDetails {
                        match_: self.clean(&m.match_text()),
                        reference: "",
                        ruleId: m.rule_id.to_string(),
                        file: m.file.to_string_lossy(),
                        lineNumber: m.line.to_string(),
                        data: self.clean(&m.data),
                        severity: m.severity.to_string(),
                        ver: &m.ver,
                        rev: &m.rev,
                        tags: &m.tags,
                        maturity: m.maturity.to_string(),
                        accuracy: m.accuracy.to_string(),
                    },
                })
                .collect()
        });
        let root = JRoot {
            transaction: JTransaction {
                client_ip: utf8(v.client_ip),
                time_stamp: asc_time(&self.time),
                server_id: self.env.server_id,
                client_port: v.client_port,
                host_ip: utf8(v.server_ip),
                host_port: v.server_port,
                unique_id: v.unique_id,
                request: JRequest {
                    method: if v.method.is_empty() { Cow::Borrowed("-") } else { utf8(v.method) },
                    http_version: version,
                    uri: utf8(&self.secrets.uri(v.uri)).into_owned(),
                    body: p.has(b'C').then(|| utf8(&self.secrets.request_body(v, v.body)).into_owned()),
                    headers: p.has(b'B').then(|| to_json_headers(self.request_headers())),
                },
                response: JResponse {
                    body: p.has(b'E').then(|| self.clean(v.resp_body)),
                    http_code: self.status,
                    headers: p.has(b'F').then(|| to_json_headers(self.response_headers())),
                },
                producer: p.has(b'H').then(|| JProducer {
                    modsecurity: producer_name(),
                    connector: self.env.connector,
                    secrules_engine: engine_state(v.engine),
                    components: &v.rules.config().component_signatures,
                }),
                messages,
            },
        };
        // Serializing plain structs of strings and numbers cannot fail.
        let mut out = serde_json::to_vec(&root).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// ModSecurity's `RuleMessage::log(0, code)` for the H section.
    fn message_line(&self, m: &AuditMessage) -> Vec<u8> {
        let v = self.v;
        let mut s = Vec::with_capacity(512);
        match m.denied_with {
            Some(_) => s.extend_from_slice(
                format!("ModSecurity: Access denied with code {} (phase {}). ", self.status, m.phase).as_bytes(),
            ),
            None => s.extend_from_slice(b"ModSecurity: Warning. "),
        }
        s.extend_from_slice(&m.match_text());
        let hex = |b: &[u8]| to_hex_if_needed(b, true);
        let mut field = |name: &str, value: &[u8]| {
            s.extend_from_slice(format!(" [{name} \"").as_bytes());
            s.extend_from_slice(value);
            s.extend_from_slice(b"\"]");
        };
        field("file", m.file.to_string_lossy().as_bytes());
        field("line", m.line.to_string().as_bytes());
        field("id", m.rule_id.to_string().as_bytes());
        field("rev", &hex(m.rev.as_bytes()));
        field("msg", &m.message);
        field("data", &hex(&limit_to(200, &m.data)));
        field("severity", m.severity.to_string().as_bytes());
        field("ver", &hex(m.ver.as_bytes()));
        field("maturity", m.maturity.to_string().as_bytes());
        field("accuracy", m.accuracy.to_string().as_bytes());
        for t in &m.tags {
            field("tag", &hex(t.as_bytes()));
        }
        field("hostname", v.host);
        let path = &v.uri[..memchr::memchr(b'?', v.uri).unwrap_or(v.uri.len())];
        field("uri", &limit_to(200, path));
        field("unique_id", v.unique_id.as_bytes());
        field("ref", b"");
        to_hex_if_needed(&self.secrets.scrub(&s), false)
    }

    fn native(&self) -> Vec<u8> {
        let v = self.v;
        let p = self.parts;
        let b = boundary();
        let sec = |out: &mut Vec<u8>, letter: char| out.extend_from_slice(format!("---{b}---{letter}--\n").as_bytes());
        let ver = http_version(v.protocol);
        let mut o = Vec::with_capacity(2048);
        sec(&mut o, 'A');
        o.extend_from_slice(format!("{} {} ", clf_time(&self.time), v.unique_id).as_bytes());
        o.extend_from_slice(v.client_ip);
        o.extend_from_slice(format!(" {} ", v.client_port).as_bytes());
        o.extend_from_slice(v.server_ip);
        o.extend_from_slice(format!(" {}\n", v.server_port).as_bytes());
        if p.has(b'B') {
            sec(&mut o, 'B');
            o.extend_from_slice(if v.method.is_empty() { b"-" } else { v.method });
            o.push(b' ');
            o.extend_from_slice(&self.secrets.uri(v.uri));
            o.extend_from_slice(b" HTTP/");
            o.extend_from_slice(ver);
            o.push(b'\n');
            for (k, val) in self.request_headers() {
                o.extend_from_slice(&k);
                o.extend_from_slice(b": ");
                o.extend_from_slice(&val);
                o.push(b'\n');
            }
            o.push(b'\n');
        }
        if p.has(b'C') && !v.body.is_empty() {
            sec(&mut o, 'C');
            o.extend_from_slice(&self.secrets.request_body(v, v.body));
            o.extend_from_slice(b"\n\n");
        }
        if p.has(b'D') {
            sec(&mut o, 'D');
            o.push(b'\n');
        }
        if p.has(b'E') && !v.resp_body.is_empty() {
            sec(&mut o, 'E');
            o.extend_from_slice(&to_hex_if_needed(&self.secrets.scrub(v.resp_body), false));
            o.extend_from_slice(b"\n\n");
        }
        if p.has(b'F') {
            sec(&mut o, 'F');
            o.extend_from_slice(b"HTTP/");
            o.extend_from_slice(ver);
            o.extend_from_slice(format!(" {}\n", self.status).as_bytes());
            for (k, val) in self.response_headers() {
                o.extend_from_slice(&k);
                o.extend_from_slice(b": ");
                o.extend_from_slice(&val);
                o.push(b'\n');
            }
        }
        o.push(b'\n');
        if p.has(b'G') {
            sec(&mut o, 'G');
            o.push(b'\n');
        }
        if p.has(b'H') {
            sec(&mut o, 'H');
            for m in &v.audit.messages {
                o.extend_from_slice(&self.message_line(m));
                o.push(b'\n');
            }
            o.push(b'\n');
        }
        for letter in ['I', 'J', 'K'] {
            if p.has(letter as u8) {
                sec(&mut o, letter);
                o.push(b'\n');
            }
        }
        sec(&mut o, 'Z');
        o.push(b'\n');
        o
    }

    /// `20231114/20231114-2213/20231114-221320-<unique_id>` (ModSecurity's layout).
    fn concurrent_file(&self) -> PathBuf {
        let t = &self.time;
        let day = format!("{:04}{:02}{:02}", t.year(), u8::from(t.month()), t.day());
        let minute = format!("{day}-{:02}{:02}", t.hour(), t.minute());
        // The id comes from the server; keep it a single safe file-name component.
        let id: String = self
            .v
            .unique_id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' })
            .collect();
        PathBuf::from(format!("{day}/{minute}/{minute}{:02}-{id}", t.second()))
    }

    /// ModSecurity's `toOldAuditLogFormatIndex` around the file name and size.
    fn index_parts(&self) -> (String, String) {
        let v = self.v;
        let header = |name: &[u8]| {
            v.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, val)| self.clean(val))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "-".into())
        };
        let dash = |b: &[u8]| if b.is_empty() { "-".to_string() } else { self.clean(b) };
        let head = format!(
            "{} {} - {} \"{} {} HTTP/{}\" {} {} {} \"{}\" {} {} ",
            header(b"host"),
            dash(v.client_ip),
            clf_time(&self.time),
            dash(v.method),
            utf8(&self.secrets.uri(v.uri)),
            utf8(http_version(v.protocol)),
            self.status,
            v.resp_body.len(),
            header(b"referer"),
            header(b"user-agent"),
            v.unique_id,
            header(b"referer"),
        );
        (head, String::new())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::Value;

    use super::*;
    use crate::ruleset::RuleSource;

    fn rules(text: &str) -> Arc<RuleSet> {
        let src = RuleSource::Inline { text: text.into(), origin: PathBuf::from("/t/audit.conf"), line: 1 };
        Arc::new(RuleSet::compile(&[src]).unwrap())
    }

    fn compile_err(text: &str) -> String {
        let src = RuleSource::Inline { text: text.into(), origin: PathBuf::from("/t/audit.conf"), line: 1 };
        RuleSet::compile(&[src]).unwrap_err().to_string()
    }

    const SQLI_RULE: &str = r#"SecRule ARGS "@rx (?i)union\s+select" "id:1001,phase:2,deny,status:403,log,msg:'SQLi',logdata:'Matched Data: %{MATCHED_VAR}',severity:CRITICAL,tag:'attack-sqli',tag:'paranoia-level/1',ver:'X/1',rev:'2',t:none,t:urlDecodeUni""#;

    /// One request through all phases: extra headers, an optional form body, a response.
    fn run(
        rs: &Arc<RuleSet>,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
        resp: (u16, &[(&str, &str)], &str),
    ) -> Transaction {
        let mut tx = Transaction::new(rs.clone(), "uid-1");
        tx.process_connection("10.0.0.1", 5555, "127.0.0.1", 8080);
        let method: &[u8] = if body.is_some() { b"POST" } else { b"GET" };
        tx.process_uri(uri.as_bytes(), method, b"HTTP/1.1");
        tx.set_server_name(b"example.com");
        tx.add_request_header(b"Host", b"example.com");
        for (k, v) in headers {
            tx.add_request_header(k.as_bytes(), v.as_bytes());
        }
        if body.is_some() {
            tx.add_request_header(b"Content-Type", b"application/x-www-form-urlencoded");
        }
        if tx.process_request_headers().is_none() {
            if let Some(b) = body {
                tx.append_request_body(b.as_bytes());
            }
            if tx.process_request_body().is_none() {
                for (k, v) in resp.1 {
                    tx.add_response_header(k.as_bytes(), v.as_bytes());
                }
                tx.process_response_headers(resp.0, b"HTTP/1.1");
                tx.append_response_body(resp.2.as_bytes());
                tx.process_response_body();
            }
        }
        tx.process_logging();
        tx
    }

    fn ok() -> (u16, &'static [(&'static str, &'static str)], &'static str) {
        (200, &[("Content-Type", "text/html")], "<p>hello</p>")
    }

    fn json(rec: &AuditRecord) -> Value {
        let text = std::str::from_utf8(&rec.text).unwrap();
        assert!(text.ends_with('\n') && text.matches('\n').count() == 1, "one line: {text}");
        serde_json::from_str(text).unwrap()
    }

    const SQLI: &str = "/login?user=admin%27%20UNION%20SELECT%201--&x=1";

    #[test]
    fn json_shape_follows_modsecurity() {
        let rs = rules(&format!(
            "SecRuleEngine On\nSecRequestBodyAccess On\nSecResponseBodyAccess On\nSecComponentSignature \"OWASP_CRS/4.0.0\"\nSecAuditEngine RelevantOnly\nSecAuditLog /tmp/a.log\nSecAuditLogFormat JSON\nSecAuditLogParts ABCEFHZ\n{SQLI_RULE}"
        ));
        let tx = run(&rs, SQLI, &[("User-Agent", "t")], None, ok());
        let env = AuditEnv { status: 403, server_id: "abc", connector: "ward-nginx v0.1.0", ..AuditEnv::default() };
        let rec = tx.audit_record(&env).expect("relevant");
        assert_eq!(rec.log_type, AuditLogType::Serial);
        let j = json(&rec);
        let t = &j["transaction"];
        assert_eq!(t["client_ip"], "10.0.0.1");
        assert_eq!(t["client_port"], 5555);
        assert_eq!(t["host_ip"], "127.0.0.1");
        assert_eq!(t["host_port"], 8080);
        assert_eq!(t["unique_id"], "uid-1");
        assert_eq!(t["server_id"], "abc");
        let ts = t["time_stamp"].as_str().unwrap();
        assert_eq!(ts.len(), "Tue Nov 14 22:13:20 2023".len(), "{ts}");
        let r = &t["request"];
        assert_eq!(r["method"], "GET");
        assert_eq!(r["http_version"].as_f64(), Some(1.1));
        assert_eq!(r["uri"], SQLI);
        assert_eq!(r["headers"]["Host"], "example.com");
        assert_eq!(r["headers"]["User-Agent"], "t");
        assert_eq!(r["body"], "");
        assert_eq!(t["response"]["http_code"], 403);
        assert!(t["response"]["headers"].is_object());
        let p = &t["producer"];
        assert!(p["modsecurity"].as_str().unwrap().starts_with("ModSecurity v3"));
        assert_eq!(p["connector"], "ward-nginx v0.1.0");
        assert_eq!(p["secrules_engine"], "Enabled");
        assert_eq!(p["components"], serde_json::json!(["OWASP_CRS/4.0.0"]));
        let m = &t["messages"][0];
        assert_eq!(m["message"], "SQLi");
        let d = &m["details"];
        assert_eq!(d["ruleId"], "1001");
        assert_eq!(d["file"], "/t/audit.conf");
        assert_eq!(d["lineNumber"], "9");
        assert_eq!(d["severity"], "2");
        assert_eq!(d["ver"], "X/1");
        assert_eq!(d["rev"], "2");
        assert_eq!(d["maturity"], "0");
        assert_eq!(d["accuracy"], "0");
        assert_eq!(d["reference"], "");
        assert_eq!(d["tags"], serde_json::json!(["attack-sqli", "paranoia-level/1"]));
        assert!(d["data"].as_str().unwrap().starts_with("Matched Data: admin' UNION SELECT"), "{}", d["data"]);
        assert!(
            d["match"].as_str().unwrap().starts_with(
                "Matched \"Operator `Rx' with parameter `(?i)union\\s+select' against variable `ARGS:user'"
            ),
            "{}",
            d["match"]
        );
        // Key order is ModSecurity's (yajl writes in insertion order).
        let text = String::from_utf8(rec.text.clone()).unwrap();
        let order = [
            "\"client_ip\"",
            "\"time_stamp\"",
            "\"server_id\"",
            "\"client_port\"",
            "\"host_ip\"",
            "\"host_port\"",
            "\"unique_id\"",
            "\"request\"",
            "\"response\"",
            "\"producer\"",
            "\"messages\"",
        ];
        let pos: Vec<usize> = order.iter().map(|k| text.find(k).unwrap()).collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn secrets_are_masked_everywhere() {
        let rule = r#"SecRule REQUEST_COOKIES|REQUEST_HEADERS:Authorization|ARGS "@rx secret" "id:7,phase:2,pass,log,msg:'seen',logdata:'%{MATCHED_VAR}'""#;
        let rs = rules(&format!("SecRuleEngine On\nSecRequestBodyAccess On\nSecAuditEngine On\nSecAuditLog /tmp/a.log\nSecAuditLogFormat JSON\nSecAuditLogParts ABCEFHZ\n{rule}"));
        let headers =
            [("Authorization", "Bearer secret.jwt.value"), ("Cookie", "theme=dark; ward_token=secrettoken123; b=2")];
        let resp: (u16, &[(&str, &str)], &str) =
            (200, &[("Set-Cookie", "ward_token=secretnew456; HttpOnly; Path=/"), ("Set-Cookie", "theme=dark")], "");
        let tx = run(&rs, "/p?q=1&password=secretpw1", &headers, Some("user=a&password=secretpw2%21"), resp);
        let rec = tx.audit_record(&AuditEnv::default()).unwrap();
        let text = String::from_utf8(rec.text.clone()).unwrap();
        for s in ["secret.jwt.value", "secrettoken123", "secretnew456", "secretpw1", "secretpw2"] {
            assert!(!text.contains(s), "{s} leaked: {text}");
        }
        let j = json(&rec);
        let r = &j["transaction"]["request"];
        assert_eq!(r["headers"]["Authorization"], "Bearer ********");
        assert_eq!(r["headers"]["Cookie"], "theme=dark; ward_token=********; b=2");
        assert_eq!(r["uri"], "/p?q=1&password=********");
        assert_eq!(r["body"], "user=a&password=********");
        let h = text.find("ward_token=********; HttpOnly; Path=/").is_some();
        assert!(h, "{text}");
        assert!(text.contains("theme=dark"));
        // The rule saw the secrets; its messages do not show them.
        assert!(!j["transaction"]["messages"].as_array().unwrap().is_empty());
    }

    #[test]
    fn parts_select_sections() {
        let base = "SecRuleEngine On\nSecRequestBodyAccess On\nSecResponseBodyAccess On\nSecAuditEngine On\nSecAuditLog /tmp/a.log\nSecAuditLogFormat JSON\n";
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("AZ", &[], &["headers", "body", "producer", "messages"]),
            ("ABZ", &["request.headers"], &["request.body", "response.headers", "producer"]),
            ("ACZ", &["request.body"], &["request.headers"]),
            ("AEZ", &["response.body"], &["response.headers"]),
            (
                "AFHZ",
                &["response.headers", "producer", "messages"],
                &["request.headers", "request.body", "response.body"],
            ),
        ];
        for (parts, present, absent) in cases {
            let rs = rules(&format!("{base}SecAuditLogParts {parts}"));
            let tx = run(&rs, "/x", &[], Some("a=1"), ok());
            let j = json(&tx.audit_record(&AuditEnv::default()).unwrap());
            let t = &j["transaction"];
            let get = |path: &str| path.split('.').fold(t, |v, k| &v[k]).clone();
            for p in *present {
                assert!(!get(p).is_null(), "{parts}: {p} missing in {j}");
            }
            for p in *absent {
                let gone = if p.contains('.') {
                    get(p).is_null()
                } else {
                    t[p].is_null() && t["request"][p].is_null() && t["response"][p].is_null()
                };
                assert!(gone, "{parts}: {p} present in {j}");
            }
        }
        let rs = rules(&format!("{base}SecAuditLogParts ACEZ"));
        let j = json(&rs_record(&rs));
        assert_eq!(j["transaction"]["request"]["body"], "a=1");
        assert_eq!(j["transaction"]["response"]["body"], "<p>hello</p>");
    }

    fn rs_record(rs: &Arc<RuleSet>) -> AuditRecord {
        run(rs, "/x", &[], Some("a=1"), ok()).audit_record(&AuditEnv::default()).unwrap()
    }

    #[test]
    fn relevant_only() {
        let base = "SecRuleEngine On\nSecAuditEngine RelevantOnly\nSecAuditLog /tmp/a.log\nSecAuditLogFormat JSON\nSecAuditLogRelevantStatus \"^(?:5|4(?!04))\"\n";
        let rs = rules(&format!("{base}{SQLI_RULE}\nSecRule ARGS:quiet \"@streq 1\" \"id:2,phase:1,pass,log,noauditlog\"\nSecRule ARGS:silent \"@streq 1\" \"id:3,phase:1,pass,nolog\""));
        let status = |uri: &str, s: u16| {
            run(&rs, uri, &[], None, ok()).audit_record(&AuditEnv { status: s, ..AuditEnv::default() }).is_some()
        };
        assert!(!status("/", 200));
        assert!(status("/", 500));
        assert!(status("/", 403));
        assert!(!status("/", 404), "lookahead excludes 404");
        assert!(status(SQLI, 403), "a logged message");
        assert!(!status("/?quiet=1", 200), "noauditlog does not make it relevant");
        assert!(!status("/?silent=1", 200));
        // On writes everything, Off nothing.
        let on = rules("SecRuleEngine On\nSecAuditEngine On\nSecAuditLog /tmp/a.log");
        assert!(run(&on, "/", &[], None, ok()).audit_record(&AuditEnv::default()).is_some());
        let off = rules("SecRuleEngine On\nSecAuditEngine Off\nSecAuditLog /tmp/a.log");
        assert!(run(&off, "/", &[], None, ok()).audit_record(&AuditEnv::default()).is_none());
        // Status falls back to phase 3's when the server gives none.
        assert!(run(&rs, "/", &[], None, (502, &[], "")).audit_record(&AuditEnv::default()).is_some());
    }

    #[test]
    fn relevant_status_reads_the_codes_digits() {
        let cases =
            [("^0$", 0, true), ("^7$", 7, true), ("^404$", 404, true), ("^40$", 404, false), ("^65535$", 65535, true)];
        for (pattern, status, want) in cases.into_iter().chain([("^5", 503, true), ("^5", 403, false)]) {
            assert_eq!(RelevantStatus::new(pattern).unwrap().matches(status), want, "{pattern} on {status}");
        }
    }

    #[test]
    fn ctl_changes_engine_and_parts() {
        let rs = rules(concat!(
            "SecRuleEngine On\nSecAuditEngine Off\nSecAuditLog /tmp/a.log\nSecAuditLogFormat JSON\nSecAuditLogParts ABZ\n",
            "SecRule ARGS:a \"@streq 1\" \"id:1,phase:1,pass,nolog,ctl:auditEngine=On,ctl:auditLogParts=+E,ctl:auditLogParts=-B\"\n",
            "SecRule ARGS:b \"@streq 1\" \"id:2,phase:1,pass,nolog,ctl:auditEngine=On\""
        ));
        assert!(rs.audit_destination().unwrap().is_some(), "ctl:auditEngine needs the writer");
        assert!(run(&rs, "/", &[], None, ok()).audit_record(&AuditEnv::default()).is_none());
        let j = json(&run(&rs, "/?a=1", &[], None, ok()).audit_record(&AuditEnv::default()).unwrap());
        assert!(j["transaction"]["request"]["headers"].is_null());
        assert!(j["transaction"]["response"]["body"].is_string());
        let j = json(&run(&rs, "/?b=1", &[], None, ok()).audit_record(&AuditEnv::default()).unwrap());
        assert!(j["transaction"]["request"]["headers"].is_object());
        // ctl:ruleEngine=Off: no phase 5, no record (as ModSecurity's processLogging).
        let rs = rules("SecRuleEngine On\nSecAuditEngine On\nSecAuditLog /tmp/a.log\nSecRule ARGS:a \"@streq 1\" \"id:1,phase:1,pass,nolog,ctl:ruleEngine=Off\"");
        assert!(run(&rs, "/?a=1", &[], None, ok()).audit_record(&AuditEnv::default()).is_none());
    }

    #[test]
    fn native_format_sections() {
        let rs = rules(&format!(
            "SecRuleEngine On\nSecAuditEngine On\nSecAuditLog /tmp/a.log\nSecAuditLogParts ABCFHZ\n{SQLI_RULE}"
        ));
        let tx = run(&rs, SQLI, &[("Authorization", "Basic c2VjcmV0")], None, ok());
        let rec = tx.audit_record(&AuditEnv { status: 403, ..AuditEnv::default() }).unwrap();
        let text = String::from_utf8(rec.text).unwrap();
        let first = text.lines().next().unwrap();
        assert!(first.starts_with("---") && first.ends_with("---A--") && first.len() == 17, "{first}");
        let b = &first[3..11];
        for s in ['B', 'F', 'H', 'Z'] {
            assert!(text.contains(&format!("---{b}---{s}--\n")), "{s}: {text}");
        }
        assert!(!text.contains(&format!("---{b}---C--")), "no body, no C section");
        assert!(
            text.contains(&format!("GET {SQLI} HTTP/1.1\nHost: example.com\nAuthorization: Basic ********\n")),
            "{text}"
        );
        assert!(text.contains("\nHTTP/1.1 403\n"), "{text}");
        assert!(text.contains("ModSecurity: Access denied with code 403 (phase 2). Matched \"Operator `Rx'"), "{text}");
        assert!(
            text.contains("[id \"1001\"]") && text.contains("[tag \"attack-sqli\"]") && text.contains("[ref \"\"]"),
            "{text}"
        );
        assert!(text.ends_with(&format!("---{b}---Z--\n\n")), "{text}");
        let line2 = text.lines().nth(1).unwrap();
        assert!(line2.starts_with('[') && line2.ends_with(" uid-1 10.0.0.1 5555 127.0.0.1 8080"), "{line2}");
    }

    #[test]
    fn directives_and_destination() {
        assert!(compile_err("SecAuditLogType HTTPS").contains("not supported"));
        assert!(compile_err("SecAuditLogParts ABX").contains("invalid audit log part"));
        assert!(compile_err("SecAuditEngine Maybe").contains("RelevantOnly"));
        assert!(compile_err("SecAuditLogFormat XML").contains("JSON or Native"));
        assert!(compile_err("SecAuditLogRelevantStatus \"(\"").contains("SecAuditLogRelevantStatus"));
        assert!(compile_err("SecAuditLogFileMode 999").contains("octal"));
        let rs = rules("SecAuditEngine On\nSecAuditLogType Concurrent");
        assert!(rs.audit_destination().unwrap_err().contains("SecAuditLogStorageDir"));
        let rs = rules("SecAuditEngine On");
        assert!(rs.audit_destination().unwrap_err().contains("SecAuditLog"));
        assert!(rules("SecAuditLog /x").audit_destination().unwrap().is_none());
        let rs = rules("SecAuditEngine RelevantOnly\nSecAuditLog x.log\nSecAuditLogParts ABZ\nSecAuditLogFileMode 0600\nSecAuditLogDirMode 0700");
        let a = rs.audit_destination().unwrap().unwrap();
        assert_eq!(
            (a.engine, a.parts.letters(), a.file_mode, a.dir_mode),
            (AuditEngine::RelevantOnly, "ABZ".to_string(), 0o600, 0o700)
        );
        assert_eq!(Parts::DEFAULT.letters(), "ABCFHZ");
    }

    #[test]
    fn concurrent_file_and_index() {
        let rs = rules("SecRuleEngine On\nSecAuditEngine On\nSecAuditLogType Concurrent\nSecAuditLogStorageDir /tmp/audit\nSecAuditLog /tmp/index");
        let rec = run(&rs, "/a?b", &[("User-Agent", "ua")], None, ok())
            .audit_record(&AuditEnv { status: 200, ..AuditEnv::default() })
            .unwrap();
        let f = rec.concurrent_file.clone().unwrap();
        let parts: Vec<String> = f.iter().map(|c| c.to_string_lossy().into_owned()).collect();
        assert_eq!(parts.len(), 3, "{f:?}");
        assert!(
            parts[2].starts_with(&parts[1]) && parts[1].starts_with(&parts[0]) && parts[2].ends_with("-uid-1"),
            "{f:?}"
        );
        let line = String::from_utf8(rec.index_line(Path::new("/tmp/audit/x")).unwrap()).unwrap();
        assert!(line.starts_with("example.com 10.0.0.1 - ["), "{line}");
        assert!(line.contains("\"GET /a?b HTTP/1.1\" 200 12 - \"ua\" uid-1 - /tmp/audit/x 0 "), "{line}");
        assert!(line.ends_with('\n') && line.contains(" md5:"), "{line}");
    }

    #[test]
    fn anomaly_scores_and_helpers() {
        let rs =
            rules("SecRuleEngine On\nSecAction \"id:1,phase:1,pass,nolog,setvar:tx.blocking_inbound_anomaly_score=5\"");
        assert_eq!(run(&rs, "/", &[], None, ok()).anomaly_scores(), "inbound=5 outbound=0");
        let rs = rules("SecRuleEngine On\nSecAction \"id:1,phase:1,pass,nolog,setvar:tx.anomaly_score=8,setvar:tx.outbound_anomaly_score=4\"");
        assert_eq!(run(&rs, "/", &[], None, ok()).anomaly_scores(), "inbound=8 outbound=4");
        assert_eq!(utf8(b"a\xffb\xc3\xa9"), "a\\xffbé");
        assert_eq!(to_hex_if_needed(b"a\"\n", true), b"a\\x22\\x0a");
        assert_eq!(limit_to(2, b"abcd").as_ref(), b"ab (2 characters omitted)");
        assert_eq!(mask_pairs(b"a=1; ward_token=x;c", b';', &["ward_token"]), b"a=1; ward_token=********;c");
        let t = local_time(UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000), 3600);
        assert_eq!(asc_time(&t), "Tue Nov 14 23:13:20 2023");
        assert_eq!(clf_time(&t), "[14/Nov/2023:23:13:20 +0100]");
        assert_eq!(server_id(b"h").len(), 40);
    }
}
