//! One request's state and its evaluation through phases 1-5.
//!
//! Request data is stored once, as bytes, when the server hands it over; rules only
//! read it. Transformation results of that data are cached per transaction, keyed by
//! the value's slot and the rule's transformation list.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use crate::actions::ctl::{BodyProcessor, IdRange, TargetRef};
use crate::actions::setvar::to_int;
use crate::actions::{AllowScope, Ctl, DisruptiveAction, SetVarOp, TransformStep};
use crate::body;
use crate::log::{self, MatchInfo};
use crate::operators::Captures;
use crate::parser::Dialect;
use crate::rule::{OperatorImpl, Rule, RuleOperator};
use crate::ruleset::{EngineMode, Entry, LimitAction, Quick, RuleSet};
use crate::transformations::tree::ROOT;
use crate::variables::Var;
use cache::Unions;
use plan::Plan;
use setup::{Outcome, Setup};

mod bufs;
mod cache;
mod plan;
pub(crate) mod setup;
pub(crate) use plan::reached;
pub(crate) use setup::{pure_operator, with_setup};
pub(crate) use state::{absence_known, empty_bit, has_union, var_domains, DOMAINS};
mod state;
use cache::TransformCache;
use state::{RuleCtx, Slot, State, Value, Values};

/// What a disruptive rule asks the server to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disruptive {
    Deny,
    Drop,
    Redirect(String),
}

/// A decision to interrupt the request (never produced in DetectionOnly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intervention {
    pub status: u16,
    pub action: Disruptive,
    /// The rule that decided it (0 for limits and engine errors).
    pub rule_id: u64,
}

/// What a `setvar` writes.
enum NewValue<'a> {
    Delete,
    Bytes(&'a [u8]),
    Int(i64),
}

/// A match recorded while a rule's values are evaluated.
#[derive(Debug, Default)]
struct Hit {
    name: String,
    value: Vec<u8>,
    caps: Option<Captures>,
}

/// The matches of the link being evaluated. Entries past `len` are spare buffers that the
/// next links reuse: recording a match copies its name and value but does not allocate.
#[derive(Debug, Default)]
struct Hits {
    items: Vec<Hit>,
    len: usize,
}

impl Hits {
    fn clear(&mut self) {
        self.len = 0;
    }

    /// Empties it for a later transaction, keeping a few small buffers.
    fn recycle(&mut self) {
        self.len = 0;
        self.items.truncate(state::SPARE_MATCHES);
        for h in &mut self.items {
            if h.name.capacity() > state::SPARE_MATCH_BYTES {
                h.name = String::new();
            }
            if h.value.capacity() > state::SPARE_MATCH_BYTES {
                h.value = Vec::new();
            }
            h.caps = None;
        }
    }

    /// A new entry, its buffers emptied.
    fn next(&mut self) -> &mut Hit {
        if self.len == self.items.len() {
            self.items.push(Hit::default());
        }
        let h = &mut self.items[self.len];
        self.len += 1;
        h.name.clear();
        h.value.clear();
        h.caps = None;
        h
    }
}

/// Where walking a phase's plan ended.
enum PlanEnd {
    /// The phase's answer.
    Return(Option<Intervention>),
    /// The general loop goes on from this entry, with this many rules still to skip.
    Resume { at: usize, skip: u32 },
}

/// One request passing through the engine.
#[derive(Debug)]
pub struct Transaction {
    rules: Arc<RuleSet>,
    s: State,
    engine: EngineMode,
    body_access: Option<bool>,
    response_body_access: bool,
    body_processor: Option<BodyProcessor>,
    /// `ctl:forceRequestBodyVariable` (only has an effect in the ModSecurity2 dialect).
    force_body_variable: bool,
    body_truncated: bool,
    resp_truncated: bool,
    removed_ids: Vec<IdRange>,
    removed_tags: Vec<String>,
    removed_msgs: Vec<String>,
    removed_targets_by_id: Vec<(Vec<IdRange>, TargetRef)>,
    removed_targets_by_tag: Vec<(String, TargetRef)>,
    allow: Option<AllowScope>,
    intervention: Option<Intervention>,
    detected: bool,
    matched_ids: Vec<u64>,
    messages: Vec<String>,
    /// Transformation results of request data (see cache.rs).
    cache: TransformCache,
    /// Per (variable, gate): the union of the gate bits of all the variable's values, or None
    /// when some value is not cacheable. Lets a gated rule skip a target without visiting its
    /// values. Rebuilt each phase, since phases add values (body, response).
    unions: Unions,
    phases_done: u8,
    /// Phase 1 started from the rule set's folded setup (setup.rs).
    from_setup: bool,
    last_match: MatchInfo,
    /// A setvar's expanded key and value: buffers kept for the transaction's setvars
    /// instead of a new vector per expansion.
    setvar_buf: (Vec<u8>, Vec<u8>),
    /// Emptied byte buffers of earlier transactions on this thread (bufs.rs).
    bufs: bufs::Bufs,
    /// The empty variables of the phase running (`State::empty_mask`, set as each phase
    /// starts; 0 before the first: none known empty, so everything is collected).
    empty: u16,
    /// The current link's matches (buffers reused from link to link).
    hits: Hits,
    /// Collections loaded by `initcol`, written back at the end.
    persisted: Vec<(String, Vec<u8>)>,
    expiries: Vec<(String, Vec<u8>, u64)>,
    /// Audit-log state: ctl:audit* changes and the rule messages (see audit.rs).
    audit: crate::audit::TxAudit,
}

thread_local! {
    /// The match buffers of a finished transaction (its links' matches and MATCHED_VARS):
    /// every transaction makes its first dozen matches, and would allocate their names
    /// and values again.
    static SPARE_MATCHES: crate::spare::Pool<(Hits, state::MatchedVars)> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Drop for Transaction {
    fn drop(&mut self) {
        // Before phase 2 ended (an intervention, a dropped connection): kept rows go back.
        self.cache.put_back_kept();
        cache::recycle_unions(std::mem::take(&mut self.unions));
        let (mut hits, mut matched) = (std::mem::take(&mut self.hits), std::mem::take(&mut self.s.matched_vars));
        hits.recycle();
        matched.recycle();
        crate::spare::keep(&SPARE_MATCHES, (hits, matched), crate::spare::IN_FLIGHT);
        let (b, s) = (&mut self.bufs, &mut self.s);
        for list in
            [&mut s.headers, &mut s.cookies, &mut s.args_get, &mut s.args_post, &mut s.args_json, &mut s.resp_headers]
        {
            b.give_pairs(std::mem::take(list));
        }
        for v in [
            &mut s.client_ip,
            &mut s.server_ip,
            &mut s.server_name,
            &mut s.method,
            &mut s.protocol,
            &mut s.request_line,
            &mut s.uri_raw,
            &mut s.uri,
            &mut s.filename,
            &mut s.basename,
            &mut s.query,
            &mut s.body,
            &mut s.resp_protocol,
            &mut s.resp_body,
            &mut self.setvar_buf.0,
            &mut self.setvar_buf.1,
            &mut self.last_match.value,
        ] {
            b.give(std::mem::take(v));
        }
        std::mem::take(b).recycle();
    }
}

impl Transaction {
    /// Starts a transaction; `unique_id` appears in logs as `[unique_id "…"]`.
    pub fn new(rules: Arc<RuleSet>, unique_id: &str) -> Self {
        let cfg = rules.config();
        let (engine, body_access, response_body_access) =
            (cfg.engine, cfg.request_body_access, cfg.response_body_access);
        let cache = TransformCache::spare(rules.id);
        let (hits, matched_vars) = crate::spare::take(&SPARE_MATCHES).unwrap_or_default();
        let mut bufs = bufs::Bufs::spare();
        let (headers, resp_headers) = (bufs.list(), bufs.list());
        let s = State {
            unique_id: unique_id.to_string(),
            start: Some(Instant::now()),
            matched_vars,
            headers,
            resp_headers,
            ..State::default()
        };
        // Room for a setvar's expanded key and value, and for the last match's value.
        let setvar_buf = (bufs.with_room(64), bufs.with_room(64));
        let last_match = MatchInfo { value: bufs.with_room(64), ..MatchInfo::default() };
        Transaction {
            rules,
            s,
            engine,
            body_access,
            response_body_access,
            body_processor: None,
            force_body_variable: false,
            body_truncated: false,
            resp_truncated: false,
            removed_ids: Vec::new(),
            removed_tags: Vec::new(),
            removed_msgs: Vec::new(),
            removed_targets_by_id: Vec::new(),
            removed_targets_by_tag: Vec::new(),
            allow: None,
            intervention: None,
            detected: false,
            matched_ids: Vec::new(),
            messages: Vec::new(),
            cache,
            unions: cache::spare_unions(),
            phases_done: 0,
            from_setup: false,
            last_match,
            setvar_buf,
            bufs,
            empty: 0,
            hits,
            persisted: Vec::new(),
            expiries: Vec::new(),
            audit: crate::audit::TxAudit::default(),
        }
    }

    /// The rule engine mode now in force (`ctl:ruleEngine` may change it).
    pub fn engine_mode(&self) -> EngineMode {
        self.engine
    }

    pub fn process_connection(&mut self, client_ip: &str, client_port: u16, server_ip: &str, server_port: u16) {
        self.s.client_ip = self.bufs.copy(client_ip.as_bytes());
        self.s.client_port = client_port;
        self.s.server_ip = self.bufs.copy(server_ip.as_bytes());
        self.s.server_port = server_port;
    }

    /// `uri` is the raw request target (path and query), as sent.
    pub fn process_uri(&mut self, uri: &[u8], method: &[u8], protocol: &[u8]) {
        let (s, b) = (&mut self.s, &mut self.bufs);
        s.method = b.copy(method);
        s.protocol = b.copy(protocol);
        s.uri_raw = b.copy(uri);
        s.request_line = b.empty();
        for part in [method, b" ", uri, b" ", protocol] {
            s.request_line.extend_from_slice(part);
        }
        let no_frag = &uri[..memchr::memchr(b'#', uri).unwrap_or(uri.len())];
        let (path, query) = match memchr::memchr(b'?', no_frag) {
            Some(q) => (&no_frag[..q], Some(&no_frag[q + 1..])),
            None => (no_frag, None),
        };
        s.filename = b.empty();
        percent_decode_into(path, &mut s.filename);
        s.basename = match s.filename.iter().rposition(|&c| c == b'/' || c == b'\\') {
            Some(p) if p + 1 < s.filename.len() => b.copy(&s.filename[p + 1..]),
            Some(_) => Vec::new(),
            None => b.copy(&s.filename),
        };
        let mut decoded = b.empty();
        percent_decode_into(no_frag, &mut decoded);
        s.uri = b.copy(strip_scheme_host(&decoded));
        b.give(decoded);
        if let Some(q) = query {
            s.query = b.copy(q);
            let cfg = self.rules.config();
            let before = s.args_get.len();
            let o = body::urlencoded::parse_into(q, cfg.argument_separator, &mut s.args_get, |n| b.with_room(n));
            s.args_get.truncate(before + cfg.arguments_limit.saturating_sub(before));
            if o.urlencoded_error() {
                s.flags.push((Var::UrlencodedError, b"1".to_vec()));
            }
        }
    }

    pub fn set_server_name(&mut self, name: &[u8]) {
        self.s.server_name = self.bufs.copy(name);
    }

    pub fn add_request_header(&mut self, name: &[u8], value: &[u8]) {
        if name.eq_ignore_ascii_case(b"cookie") {
            for c in value.split(|&b| b == b';') {
                if c.is_empty() {
                    continue;
                }
                let (k, v) = match memchr::memchr(b'=', c) {
                    Some(p) => (&c[..p], &c[p + 1..]),
                    None => (c, &b""[..]),
                };
                let k = trim_start(k);
                if !k.is_empty() {
                    let pair = (self.bufs.copy(k), self.bufs.copy(v));
                    self.s.cookies.push(pair);
                }
            }
        }
        if name.eq_ignore_ascii_case(b"content-type") {
            let v = value.to_ascii_lowercase();
            if v.starts_with(b"multipart/form-data") {
                self.s.reqbody_processor = b"MULTIPART".to_vec();
            } else if v.starts_with(b"application/x-www-form-urlencoded") {
                self.s.reqbody_processor = b"URLENCODED".to_vec();
            }
        }
        let pair = (self.bufs.copy(name), self.bufs.copy(value));
        self.s.headers.push(pair);
    }

    /// Phase 1.
    pub fn process_request_headers(&mut self) -> Option<Intervention> {
        self.run_phase(1)
    }

    /// Whether phase 2 needs the body (SecRequestBodyAccess On and the engine not Off).
    pub fn wants_request_body(&self) -> bool {
        self.engine != EngineMode::Off && self.body_access != Some(false) && self.intervention.is_none()
    }

    /// Buffers a piece of the request body; may intervene when SecRequestBodyLimit
    /// is exceeded with Reject.
    pub fn append_request_body(&mut self, chunk: &[u8]) -> Option<Intervention> {
        let cfg = self.rules.config();
        self.s.body_len += chunk.len();
        if self.body_truncated {
            return None;
        }
        let room = cfg.request_body_limit.saturating_sub(self.s.body.len());
        if chunk.len() <= room {
            self.s.body.extend_from_slice(chunk);
            return None;
        }
        self.s.body.extend_from_slice(&chunk[..room]);
        self.body_truncated = true;
        self.s.flags.push((Var::InboundDataError, b"1".to_vec()));
        if cfg.request_body_limit_action == LimitAction::Reject {
            self.messages.push(format!(
                "ModSecurity: Request body limit exceeded ({} bytes, SecRequestBodyLimit {}) [hostname \"{}\"] [uri \"{}\"] [unique_id \"{}\"]",
                self.s.body_len,
                cfg.request_body_limit,
                String::from_utf8_lossy(&self.s.server_ip),
                String::from_utf8_lossy(&self.s.filename),
                self.s.unique_id
            ));
            if self.engine == EngineMode::On {
                let i = Intervention { status: 403, action: Disruptive::Deny, rule_id: 0 };
                self.intervention = Some(i.clone());
                return Some(i);
            }
        }
        None
    }

    /// Phase 2 (runs the body processor first).
    pub fn process_request_body(&mut self) -> Option<Intervention> {
        if self.intervention.is_some() {
            return self.intervention.clone();
        }
        if self.engine == EngineMode::Off {
            return None;
        }
        if self.body_access == Some(false) {
            // ModSecurity v3 skips phase 2 altogether when body access is Off.
            return None;
        }
        self.parse_body();
        let n = self.s.args_get.len() + self.s.args_post.len() + self.s.args_json.len() + self.s.cookies.len();
        let repeats = if n >= cache::SHARE_FROM_VALUES { self.s.repeated_contents() } else { (0, 0) };
        self.cache.expect_values(n, repeats, self.rules.transforms.len());
        let verdict = self.run_phase(2);
        // The request phases are over, the transaction is not: it waits for the upstream
        // with its connection. Later phases transform little request data, so the cache
        // (~1 MB for a 16 KB JSON body) is freed now rather than kept per connection.
        self.cache.release();
        verdict
    }

    fn parse_body(&mut self) {
        let ct = self.header(b"content-type").map(|v| v.to_ascii_lowercase()).unwrap_or_default();
        let proc_ = self.body_processor.or_else(|| {
            if ct.starts_with(b"application/x-www-form-urlencoded") {
                Some(BodyProcessor::Urlencoded)
            } else if ct.starts_with(b"multipart/form-data") {
                Some(BodyProcessor::Multipart)
            } else {
                None
            }
        });
        let v2 = self.rules.config().dialect == Dialect::ModSecurity2;
        if v2 {
            // ModSecurity v2 keeps the raw body for REQUEST_BODY only when URLENCODED
            // parses it, or when there is no processor and ctl:forceRequestBodyVariable is on.
            self.s.body_hidden = match proc_ {
                Some(BodyProcessor::Urlencoded) => false,
                Some(_) => true,
                None => !self.force_body_variable,
            };
        }
        let Some(p) = proc_ else { return };
        self.s.reqbody_processor = p.name().as_bytes().to_vec();
        if self.s.body.is_empty() && p != BodyProcessor::Multipart {
            return;
        }
        let cfg = self.rules.config();
        if p != BodyProcessor::Multipart {
            if let Some(limit) = cfg.request_body_no_files_limit {
                if self.s.body.len() > limit {
                    self.no_files_limit_exceeded();
                    return;
                }
            }
        }
        let (s, b) = (&mut self.s, &mut self.bufs);
        let room = cfg.arguments_limit.saturating_sub(s.args_get.len() + s.args_post.len() + s.args_json.len());
        let error: Option<String> = match p {
            BodyProcessor::Urlencoded => {
                let before = s.args_post.len();
                let o =
                    body::urlencoded::parse_into(&s.body, cfg.argument_separator, &mut s.args_post, |n| b.with_room(n));
                s.args_post.truncate(before + room);
                // The body's own prefilter scan can be made of its arguments' (cache.rs).
                let dom = |coll| state::slot_domain(state::stable_slot(coll, 0, false));
                let (body_dom, value_dom) = (dom(state::coll::BODY), dom(state::coll::ARGS_POST));
                if o.verbatim
                    && o.count <= room
                    && !s.body_hidden
                    && self
                        .rules
                        .combined
                        .as_ref()
                        .is_some_and(|c| c.union_of_pieces(body_dom, value_dom, &[b'=', cfg.argument_separator]))
                {
                    self.cache.set_body_args(cache::BodyArgs { first: before, separator: cfg.argument_separator });
                }
                if o.urlencoded_error() {
                    s.flags.push((Var::UrlencodedError, b"1".to_vec()));
                }
                None
            }
            BodyProcessor::Json => {
                let limits = body::json::JsonLimits {
                    max_depth: cfg.json_depth_limit as u64,
                    max_args: Some(room),
                    ..Default::default()
                };
                body::json::parse_into(&s.body, &limits, &mut s.args_json, |n| b.with_room(n))
                    .error
                    .map(|e| format!("JSON parsing error: {e}"))
            }
            BodyProcessor::Xml => {
                let o = body::xml::parse(&s.body);
                s.xml = Some(o.doc);
                o.error.map(|e| format!("XML parsing error: {e}"))
            }
            BodyProcessor::Multipart => {
                let ct_raw = self.header(b"content-type").map(<[u8]>::to_vec).unwrap_or_default();
                let limits = body::multipart::MultipartLimits { file_limit: cfg.upload_file_limit, store_files: false };
                let m = body::multipart::parse(&ct_raw, &self.s.body, &limits);
                let over = m.error.is_none() && cfg.request_body_no_files_limit.is_some_and(|l| m.no_files_length > l);
                let e = self.apply_multipart(m);
                if over {
                    self.no_files_limit_exceeded();
                }
                e
            }
        };
        if v2 && error.is_some() && self.force_body_variable {
            // A processor that failed leaves v2 with the forced raw buffer.
            self.s.body_hidden = false;
        }
        if let Some(msg) = error {
            for (v, val) in [
                (Var::ReqbodyError, b"1".to_vec()),
                (Var::ReqbodyErrorMsg, msg.clone().into_bytes()),
                (Var::ReqbodyProcessorError, b"1".to_vec()),
                (Var::ReqbodyProcessorErrorMsg, msg.into_bytes()),
            ] {
                self.s.flags.push((v, val));
            }
        }
    }

    fn no_files_limit_exceeded(&mut self) {
        self.s.flags.push((Var::ReqbodyError, b"1".to_vec()));
        self.s.flags.push((
            Var::ReqbodyErrorMsg,
            b"Request body excluding files is bigger than the maximum expected.".to_vec(),
        ));
        self.s.flags.push((Var::InboundDataError, b"1".to_vec()));
    }

    fn apply_multipart(&mut self, m: body::multipart::Multipart) -> Option<String> {
        let s = &mut self.s;
        s.args_post.extend(m.fields);
        s.files_combined += m.files_combined_size;
        for f in m.files {
            s.files.push((f.name.clone(), f.filename.clone()));
            s.files_sizes.push((f.name, f.size.to_string().into_bytes()));
        }
        s.multipart_names.extend(m.names.into_iter().map(|n| (n.clone(), n)));
        s.multipart_filenames.extend(m.filenames.into_iter().map(|n| (n.clone(), n)));
        s.multipart_part_headers.extend(m.part_headers);
        let f = &m.flags;
        let strict = f.strict_error || f.error;
        let bits = [
            (Var::MultipartStrictError, strict),
            (Var::MultipartBoundaryQuoted, f.boundary_quoted),
            (Var::MultipartBoundaryWhitespace, f.boundary_whitespace),
            (Var::MultipartDataBefore, f.data_before),
            (Var::MultipartDataAfter, f.data_after),
            (Var::MultipartHeaderFolding, f.header_folding),
            (Var::MultipartLfLine, f.lf_line),
            (Var::MultipartCrlfLfLines, f.crlf_lf_lines),
            (Var::MultipartMissingSemicolon, f.missing_semicolon),
            (Var::MultipartInvalidQuoting, f.invalid_quoting),
            (Var::MultipartInvalidPart, f.invalid_part),
            (Var::MultipartInvalidHeaderFolding, f.invalid_header_folding),
            (Var::MultipartFileLimitExceeded, f.file_limit_exceeded),
        ];
        for (var, on) in bits {
            s.flags.push((var, if on { b"1".to_vec() } else { b"0".to_vec() }));
        }
        s.flags.push((Var::MultipartUnmatchedBoundary, f.unmatched_boundary.to_string().into_bytes()));
        m.error.map(|e| format!("Multipart parsing error: {}", String::from_utf8_lossy(&e)))
    }

    pub fn add_response_header(&mut self, name: &[u8], value: &[u8]) {
        let pair = (self.bufs.copy(name), self.bufs.copy(value));
        self.s.resp_headers.push(pair);
    }

    /// Phase 3.
    pub fn process_response_headers(&mut self, status: u16, protocol: &[u8]) -> Option<Intervention> {
        self.s.resp_status = status;
        self.s.resp_protocol = self.bufs.copy(protocol);
        self.run_phase(3)
    }

    /// Whether phase 4 needs the response body (SecResponseBodyAccess and MIME type).
    pub fn wants_response_body(&self) -> bool {
        if self.engine == EngineMode::Off || !self.response_body_access || self.intervention.is_some() {
            return false;
        }
        let ct = self.response_header(b"content-type").unwrap_or(b"");
        let mime = ct.split(|&b| b == b';').next().unwrap_or(b"");
        let mime = trim(mime);
        // The configured types are lower-cased at load.
        self.rules.config().response_body_mime_types.iter().any(|m| m.as_bytes().eq_ignore_ascii_case(mime))
    }

    pub fn append_response_body(&mut self, chunk: &[u8]) -> Option<Intervention> {
        let limit = self.rules.config().response_body_limit;
        let room = limit.saturating_sub(self.s.resp_body.len());
        let take = &chunk[..chunk.len().min(room)];
        if self.s.resp_body.capacity() == 0 {
            self.s.resp_body = self.bufs.with_room(take.len());
        }
        self.s.resp_body.extend_from_slice(take);
        if chunk.len() > room && !self.resp_truncated {
            self.resp_truncated = true;
            self.s.flags.push((Var::OutboundDataError, b"1".to_vec()));
            if self.rules.config().response_body_limit_action == LimitAction::Reject && self.engine == EngineMode::On {
                self.messages.push(format!(
                    "ModSecurity: Response body limit exceeded (SecResponseBodyLimit {limit}, marked to reject) [unique_id \"{}\"]",
                    self.s.unique_id
                ));
                let i = Intervention { status: 403, action: Disruptive::Deny, rule_id: 0 };
                self.intervention = Some(i.clone());
                return Some(i);
            }
        }
        None
    }

    /// Phase 4.
    pub fn process_response_body(&mut self) -> Option<Intervention> {
        self.run_phase(4)
    }

    /// Phase 5.
    pub fn process_logging(&mut self) {
        // Logging-phase rules run even after an intervention; they cannot disrupt.
        let saved = self.intervention.take();
        let _ = self.run_phase(5);
        self.intervention = saved;
        for (coll, key) in std::mem::take(&mut self.persisted) {
            let exp: Vec<(Vec<u8>, u64)> =
                self.expiries.iter().filter(|(c, _, _)| *c == coll).map(|(_, k, s)| (k.clone(), *s)).collect();
            if let Some(vars) = self.s.collections.get(&coll) {
                crate::collections::store(&coll, &key, vars, &exp);
            }
        }
    }

    /// Error-log lines (ModSecurity format, starting `ModSecurity: `) produced since the
    /// last call; the server writes them to its error log.
    pub fn take_messages(&mut self) -> Vec<String> {
        std::mem::take(&mut self.messages)
    }

    /// `block` when an intervention happened, `detect` when a rule would have
    /// disrupted but the engine is DetectionOnly, otherwise `pass`.
    pub fn outcome(&self) -> &'static str {
        if self.intervention.is_some() {
            "block"
        } else if self.detected {
            "detect"
        } else {
            "pass"
        }
    }

    /// Comma-separated ids of rules that matched and logged: for `$ward_matched_ids`.
    pub fn matched_ids(&self) -> String {
        let mut out = String::new();
        for (i, id) in self.matched_ids.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&id.to_string());
        }
        out
    }

    /// A TX variable's value (e.g. `blocking_inbound_anomaly_score`).
    pub fn tx(&self, key: &str) -> Option<&[u8]> {
        self.s.collections.get("TX")?.get(key.to_ascii_lowercase().as_bytes()).map(Vec::as_slice)
    }

    /// Every TX variable, sorted by name.
    pub fn tx_vars(&self) -> Vec<(&[u8], &[u8])> {
        let mut v: Vec<(&[u8], &[u8])> = self
            .s
            .collections
            .get("TX")
            .map(|tx| tx.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect())
            .unwrap_or_default();
        v.sort_unstable();
        v
    }

    /// The intervention decided so far, if any.
    pub fn intervention(&self) -> Option<&Intervention> {
        self.intervention.as_ref()
    }

    fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.s.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    fn response_header(&self, name: &[u8]) -> Option<&[u8]> {
        self.s.resp_headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    // ---- phase evaluation ----

    fn run_phase(&mut self, phase: u8) -> Option<Intervention> {
        self.phases_done = self.phases_done.max(phase);
        if self.engine == EngineMode::Off {
            return None;
        }
        if self.intervention.is_some() {
            return self.intervention.clone();
        }
        match self.allow {
            Some(AllowScope::All) if phase < 5 => return None,
            Some(AllowScope::Request) if phase <= 2 => return None,
            Some(AllowScope::Phase) => self.allow = None,
            _ => {}
        }
        let rules = Arc::clone(&self.rules);
        self.unions.reset(rules.unions.len(), rules.union_groups);
        if phase <= 2 && !self.cache.private_set() {
            let private = self.s.headers.iter().enumerate().filter(|(_, (n, _))| private_header(n));
            self.cache.set_private(private.map(|(i, _)| i as u32));
        }
        let entries = &rules.phases[usize::from(phase - 1)];
        // Phase 1 starts where the setup rules folded at load left off (setup.rs).
        let setup = rules.setup.as_ref().filter(|_| phase == 1 && self.s.tx_is_empty());
        if let Some(setup) = setup {
            // TX is empty here: start from a spare table reset to the setup's.
            let old =
                std::mem::replace(self.s.collections.tx_mut(), crate::collections::spare_tx_as(&setup.tx, rules.id));
            crate::collections::recycle_tx(old);
            self.from_setup = true;
            self.s.tx_selections = Some(Arc::clone(&setup.selections));
        }
        // Results decided at load hold for a transaction that started from the setup's TX.
        let outcomes = rules.setup.as_ref().filter(|_| self.from_setup).map(|s| &s.outcomes[usize::from(phase - 1)]);
        let quick = &rules.quick[usize::from(phase - 1)];
        // Which variables are empty does not change during a phase (bodies are parsed first).
        self.empty = self.s.empty_mask();
        let (mut i, mut skip) = (0, 0u32);
        // Phase 1's plan starts where this transaction's setup left off.
        let plan = rules
            .setup
            .as_ref()
            .filter(|_| self.from_setup && (phase > 1 || setup.is_some()) && self.plan_holds())
            .and_then(|s| Some((s, &s.plans.as_ref()?[usize::from(phase - 1)])));
        if let Some((s, plan)) = plan {
            match self.run_plan(&rules, s, plan, phase) {
                PlanEnd::Return(iv) => return iv,
                PlanEnd::Resume { at, skip: n } => (i, skip) = (at, n),
            }
        }
        let start = i;
        let mut effects = setup.map_or(&[][..], |s| &s.matched[..]).iter().skip_while(|(at, _)| *at < start).peekable();
        while i < entries.len() {
            if let Some(setup) = setup {
                if let Some((_, e)) = effects.next_if(|(at, _)| *at == i) {
                    self.s.matched_vars.apply(e);
                }
                if setup.done[i] {
                    i += 1;
                    continue;
                }
            }
            let at = i;
            // A ctl that removes a TX target may take away the very variable it was decided
            // on (the CRS's own 941010 removes REQUEST_FILENAME: that changes nothing here).
            let outcome = outcomes.filter(|_| !self.tx_target_removed()).map_or(&Outcome::Evaluate, |o| &o[at]);
            // Most rules are passed over on their quick record alone, without reading their
            // entry: through nginx that is a cache miss per rule. (A marker's record never
            // passes over; a skipped or removed rule goes the long way.)
            let quick_checked = skip == 0 && self.nothing_removed() && matches!(outcome, Outcome::Evaluate);
            if quick_checked && self.passes_over(&quick[at], &rules) {
                // As a rule that did not match.
                self.s.matched_vars.clear();
                i += 1;
                continue;
            }
            let Entry::Rule { rule, skip_after_to } = &entries[i] else {
                i += 1;
                continue;
            };
            i += 1;
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if self.is_removed(rule) {
                continue;
            }
            let matched = match outcome {
                Outcome::Never => {
                    self.s.matched_vars.clear();
                    false
                }
                Outcome::Always(hits) => self.run_always(rule, hits),
                Outcome::Evaluate if !quick_checked && self.passes_over(&quick[at], &rules) => {
                    self.s.matched_vars.clear();
                    false
                }
                Outcome::Evaluate => self.eval_link(rule, rule),
            };
            if !matched {
                continue;
            }
            if rule.actions.skip > 0 {
                skip = rule.actions.skip;
            }
            if let Some(to) = skip_after_to {
                i = *to;
            }
            if let Some(ret) = self.settle_match(&rules, rule, phase) {
                return ret;
            }
        }
        None
    }

    /// Walks `plan` (plan.rs): the phase's answer, or where the general loop takes over.
    fn run_plan(&mut self, rules: &RuleSet, setup: &Setup, plan: &Plan, phase: u8) -> PlanEnd {
        let p = usize::from(phase - 1);
        let (entries, outcomes) = (&rules.phases[p], &setup.outcomes[p]);
        for step in &plan.steps {
            if let Some(e) = plan.edit(step.edit) {
                self.s.matched_vars.apply(e);
            }
            let at = step.entry as usize;
            // Decided on the step's own record, without reading the entry (see `run_phase`).
            if !step.always && self.passes_over(&step.quick, rules) {
                self.s.matched_vars.clear();
                continue;
            }
            let Entry::Rule { rule, skip_after_to } = &entries[at] else { unreachable!("plans step on rules") };
            let matched = if step.always {
                let Outcome::Always(hits) = &outcomes[at] else { unreachable!("an always step is Always") };
                self.run_always(rule, hits)
            } else {
                self.eval_link(rule, rule)
            };
            if !matched {
                continue;
            }
            if let Some(ret) = self.settle_match(rules, rule, phase) {
                return PlanEnd::Return(ret);
            }
            // An always step's jump is in the plan; a match's own is not.
            let jumps = !step.always && skip_after_to.is_some();
            if jumps || rule.actions.skip > 0 || !self.plan_holds() {
                return PlanEnd::Resume { at: skip_after_to.unwrap_or(at + 1), skip: rule.actions.skip };
            }
        }
        if let Some(e) = plan.edit(plan.tail) {
            self.s.matched_vars.apply(e);
        }
        PlanEnd::Resume { at: entries.len(), skip: 0 }
    }

    /// Whether the plans' assumptions hold: no rule removed, no TX target removed.
    fn plan_holds(&self) -> bool {
        self.nothing_removed() && !self.tx_target_removed()
    }

    /// No `ctl:ruleRemoveBy*` took a rule away yet.
    fn nothing_removed(&self) -> bool {
        self.removed_ids.is_empty() && self.removed_tags.is_empty() && self.removed_msgs.is_empty()
    }

    fn tx_target_removed(&self) -> bool {
        self.removed_targets_by_id.iter().any(|(_, t)| t.var == Var::Tx)
            || self.removed_targets_by_tag.iter().any(|(_, t)| t.var == Var::Tx)
    }

    /// A rule decided at load to match with `hits`: its actions, as `eval_link` would run
    /// them (setvars see each hit as MATCHED_VAR).
    fn run_always(&mut self, rule: &Rule, hits: &[(String, Vec<u8>)]) -> bool {
        for (n, v) in hits {
            self.s.matched_vars.push_copy(n, v);
            self.run_setvars(rule);
        }
        self.after_full_match(rule);
        true
    }

    /// Whether a rule can be passed over unread: every target is empty or absent, or no
    /// value of any target carries a literal it needs.
    fn passes_over(&mut self, q: &Quick, rules: &RuleSet) -> bool {
        (q.emptiable && q.empty_bits & !self.empty == 0 && self.keys_absent(q, rules))
            || self.quick_miss(q, &rules.quick_targets)
    }

    /// Whether every keyed target of `q` is absent now. Its keys are read only when it
    /// has some: most records have none, and the table is one more cold line per rule.
    fn keys_absent(&self, q: &Quick, rules: &RuleSet) -> bool {
        q.keys_len == 0
            || rules.quick_keys[q.keys as usize..][..usize::from(q.keys_len)]
                .iter()
                .all(|(var, key)| self.s.lacks(*var, key))
    }

    /// A matched rule's disruptive action and log line; Some(answer) ends the phase.
    fn settle_match(&mut self, rules: &RuleSet, rule: &Rule, phase: u8) -> Option<Option<Intervention>> {
        let a = &rule.actions;
        let disruptive = match &a.disruptive {
            Some(DisruptiveAction::Block) => rules.block_action(phase).0,
            d => d.as_ref(),
        };
        // `status` of any link, else SecDefaultAction's (ModSecurity runs both before the disruptive action).
        let status = rule.links().find_map(|l| l.actions.status).or(rules.block_action(phase).1);
        match disruptive {
            Some(DisruptiveAction::Allow(scope)) => {
                if self.engine == EngineMode::On {
                    self.allow = Some(*scope);
                    return Some(None);
                }
            }
            Some(d @ (DisruptiveAction::Deny | DisruptiveAction::Drop | DisruptiveAction::Redirect(_))) => {
                if phase == 5 {
                    return None;
                }
                if self.engine == EngineMode::On {
                    let action = match d {
                        DisruptiveAction::Drop => Disruptive::Drop,
                        DisruptiveAction::Redirect(m) => {
                            let url = m.expand(&RuleCtx { state: &self.s, rule: Some(rule) });
                            Disruptive::Redirect(String::from_utf8_lossy(&url).into_owned())
                        }
                        _ => Disruptive::Deny,
                    };
                    let status = match (&action, status) {
                        (Disruptive::Redirect(_), Some(s)) if (301..=307).contains(&s) => s,
                        (Disruptive::Redirect(_), _) => 302,
                        (_, Some(s)) => s,
                        (_, None) => 403,
                    };
                    let iv = Intervention { status, action, rule_id: rule.id };
                    self.intervention = Some(iv.clone());
                    self.log_match(rule, phase, Some(status));
                    return Some(Some(iv));
                }
                self.detected = true;
            }
            _ => {}
        }
        if !rule.actions.multi_match {
            self.log_match(rule, phase, None);
        }
        None
    }

    fn is_removed(&self, rule: &Rule) -> bool {
        self.removed_ids.iter().any(|r| r.contains(rule.id))
            || (!self.removed_tags.is_empty() && rule.actions.tags.iter().any(|t| self.removed_tags.contains(t)))
            || (!self.removed_msgs.is_empty()
                && rule.actions.msg.as_ref().is_some_and(|m| {
                    let msg = m.expand(&RuleCtx { state: &self.s, rule: Some(rule) });
                    self.removed_msgs.iter().any(|x| x.as_bytes() == msg.as_ref())
                }))
    }

    /// Whether a rule's [`Quick`] record shows it cannot match: no value of its targets
    /// carries its literals. The unions it reads are computed here when not yet, as
    /// `collect_hits` would; the rule itself is not read.
    fn quick_miss(&mut self, q: &Quick, targets: &[(u32, u16)]) -> bool {
        if q.len == 0 {
            return false;
        }
        let Transaction { s, cache, unions, rules, empty, .. } = self;
        for &(slot, empty_bit) in &targets[q.start as usize..][..q.len as usize] {
            if *empty & empty_bit != 0 {
                continue;
            }
            let union = |bits: &mut Vec<u64>, groups: &mut cache::ValueGroups| {
                union_bits(s, cache, rules, groups, slot, q.transform_key, q.gate, bits)
            };
            if unions.has(slot, q.bit, union) != Some(false) {
                return false;
            }
        }
        true
    }

    /// Evaluates one chain link (and the rest of the chain); runs its actions on a full match.
    fn eval_link(&mut self, starter: &Rule, link: &Rule) -> bool {
        if link.dangling_chain {
            return false;
        }
        // The operator's shared name and parameter are not cloned here: an Arc clone and
        // drop are atomic writes into the rule set, which cost cache misses on every rule
        // evaluation through nginx. A logged match looks them up (`log_match`).
        let expanded = match &link.operator {
            None => {
                // One unconditional match, with no name or value.
                self.hits.clear();
                self.hits.next();
                None
            }
            Some(o) => self.collect_hits(starter, link, o),
        };
        let n = self.hits.len;
        if n == 0 {
            self.s.matched_vars.clear();
            return false;
        }
        let first = self.s.matched_vars.len();
        for i in 0..n {
            let h = &mut self.hits.items[i];
            if let Some(caps) = &h.caps {
                set_captures(self.s.collections.tx_mut(), caps);
            }
            // Each match is MATCHED_VAR while the link's setvars run.
            if link.operator.is_some() {
                self.s.matched_vars.push_swap(&mut h.name, &mut h.value);
            }
            self.run_setvars(link);
        }
        // A multiMatch chain starter logs each match as it happens, whether or not the
        // rest of the chain matches (ModSecurity v3; the CRS nginx overrides rely on it).
        let log_each = std::ptr::eq(starter, link) && link.actions.multi_match && link.operator.is_some();
        let depth = starter.links().position(|l| std::ptr::eq(l, link)).unwrap_or(0);
        for i in 0..n {
            // The logged match is the deepest link's last one, as in ModSecurity.
            if log_each || i + 1 == n {
                // Written into the previous match's buffers.
                let m = &mut self.last_match;
                m.var.clear();
                m.value.clear();
                if link.operator.is_some() {
                    let (var, value) = &self.s.matched_vars.as_slice()[first + i];
                    m.var.push_str(var);
                    m.value.extend_from_slice(value);
                }
                m.link = depth;
                m.expanded = expanded.clone();
                if log_each {
                    self.log_match(starter, starter.phase, None);
                }
            }
        }
        if let Some(next) = &link.chain {
            if !self.eval_link(starter, next) {
                return false;
            }
        }
        self.after_full_match(link);
        true
    }
}

impl Transaction {
    /// Runs `op`, the operator of `link`, over its targets' (transformed) values; the matches
    /// are in `self.hits`. Returns the parameter as evaluated when it has macros (expanded).
    fn collect_hits(&mut self, starter: &Rule, link: &Rule, op: &RuleOperator) -> Option<Arc<str>> {
        let capture = link.actions.capture;
        let Transaction {
            s, cache, unions, rules, removed_targets_by_id, removed_targets_by_tag, messages, hits, ..
        } = self;
        hits.clear();
        // A PCRE2 run stopped at SecPcreMatchLimit* (that value then did not match).
        let mut limit_hit = false;
        let state: &State = s;
        // Dynamic parameters are expanded once per rule evaluation.
        let dynamic: (Arc<str>, Arc<dyn crate::operators::Operator>);
        let (param, op_impl): (&Arc<str>, &dyn crate::operators::Operator) = match &op.imp {
            OperatorImpl::Static(o) => (&op.param, o.as_ref()),
            OperatorImpl::Dynamic(d) => {
                // Borrowed, not copied, when the parameter is one macro (`%{tx.allowed_methods}`).
                let ctx = RuleCtx { state, rule: Some(starter) };
                match d.template.with_expanded(&ctx, |p| d.get(&op.name, p, rules.config().pcre_limits())) {
                    Ok(o) => {
                        dynamic = o;
                        (&dynamic.0, dynamic.1.as_ref())
                    }
                    Err(_) => return None,
                }
            }
        };
        // In a block, dropped where it lies: `drop(values)` moved its ~0.5 KB (a copy per rule).
        {
            // Most targets give a few values: no allocation per link for them.
            let mut values = Values::new();
            let stages = link.stage_gates.len();
            for (ti, t) in link.targets.iter().enumerate() {
                // Nothing to collect (no ARGS, cookies, files…): as collecting found nothing.
                if !t.count && empty_bit(t.var).is_some_and(|b| self.empty & b != 0) {
                    continue;
                }
                // A union per (variable or key, gate): read by the many links that share the
                // gate without collecting the values again; a scalar's is its own scan.
                // A target without a union (`NO_UNION`) indexes past the table.
                if let Some((g, bit)) = link.gate {
                    let union = |bits: &mut Vec<u64>, groups: &mut cache::ValueGroups| {
                        union_bits(state, cache, rules, groups, t.union, link.transform_key, g, bits)
                    };
                    if unions.has(t.union, bit, union) == Some(false) {
                        continue;
                    }
                }
                // A gated multiMatch link: passed over when no stage's union has its bit.
                if let Some(us) = link.stage_unions.get(ti * stages..(ti + 1) * stages).filter(|u| !u.is_empty()) {
                    let none = us.iter().zip(&link.stage_gates).all(|(&u, &(key, g, bit))| {
                        let union = |bits: &mut Vec<u64>, groups: &mut cache::ValueGroups| {
                            union_bits(state, cache, rules, groups, u, key, g, bits)
                        };
                        unions.has(u, bit, union) == Some(false)
                    });
                    if none {
                        continue;
                    }
                }
                values.clear();
                state.collect(t, Some(starter), &mut values);
                for v in values.iter() {
                    if !t.count && target_removed(removed_targets_by_id, removed_targets_by_tag, starter, &v) {
                        continue;
                    }
                    let mut caps = if capture { Some(Captures::new()) } else { None };
                    if link.actions.multi_match {
                        // A stable value remembers, per content, that no stage matched: by
                        // its row's root cell (the last stage's would make every stage).
                        let memo = match (v.slot, link.memo) {
                            (Slot::Stable(slot), Some(m)) if cache.memo_on(slot, &v.value) => {
                                let i = cache.entry(slot, &v.value, ROOT, &rules.transforms);
                                if cache.known_no_match(i, m) {
                                    continue;
                                }
                                Some((i, m))
                            }
                            _ => None,
                        };
                        let before = hits.len;
                        // A run stopped at the match limit is not a miss to remember.
                        let mut limited = false;
                        if let (Slot::Stable(slot), false) = (v.slot, link.stage_gates.is_empty()) {
                            // The stages from the cache, each behind its gate.
                            let mut prev = None;
                            let row = cache.value_row(slot, &v.value, rules);
                            let mask = cache.row_mask(row, &v.value);
                            for (k, &(key, g, bit)) in link.stage_gates.iter().enumerate() {
                                // A list that cannot change the value leaves it raw, as every
                                // shorter one did: the stage before's value, not asked again
                                // (nor its cell made).
                                if k > 0 && rules.transforms.node(key).changes_on & mask == 0 {
                                    continue;
                                }
                                let i = cache.cell(row, &v.value, key, &rules.transforms);
                                if prev.is_some_and(|p| cache.same_value(p, i)) {
                                    continue;
                                }
                                prev = Some(i);
                                // Most values are empty after `base64Decode` (strict: one
                                // byte outside its alphabet empties them): no later stage
                                // differs, none is asked.
                                if k < 64 && link.stage_empty_ends >> k & 1 != 0 && cache.value(i, &v.value).is_empty()
                                {
                                    break;
                                }
                                if !cache.gate_pass_in(Some(row), slot, &v.value, key, rules, g, bit) {
                                    continue;
                                }
                                let cur = cache.value(i, &v.value);
                                if op_impl.evaluate_limited(cur, caps.as_mut(), &mut limited) != op.negated {
                                    let h = hits.next();
                                    v.write_name(&mut h.name);
                                    h.value.extend_from_slice(cur);
                                    h.caps = caps.take();
                                }
                            }
                        } else {
                            // The raw value, then each transformation's result that changed
                            // it; a stage is copied only when it matches.
                            let mut cur: Cow<[u8]> = Cow::Borrowed(v.value.as_ref());
                            let mut steps = link.transforms.iter();
                            loop {
                                if op_impl.evaluate_limited(&cur, caps.as_mut(), &mut limited) != op.negated {
                                    let h = hits.next();
                                    v.write_name(&mut h.name);
                                    h.value.extend_from_slice(&cur);
                                    h.caps = caps.take();
                                }
                                match steps.find_map(|step| (step.func)(&cur)) {
                                    Some(n) => cur = Cow::Owned(n),
                                    None => break,
                                }
                            }
                        }
                        limit_hit |= limited;
                        if let (Some((i, m)), true) = (memo, hits.len == before && !limited) {
                            cache.set_no_match(i, m);
                        }
                        continue;
                    }
                    let (transformed, entry): (&[u8], Option<usize>) = match v.slot {
                        Slot::Stable(slot) => {
                            let memo = link.memo.filter(|_| cache.memo_on(slot, &v.value));
                            if link.transforms.is_empty() && link.gate.is_none() && memo.is_none() {
                                (v.value.as_ref(), None)
                            } else {
                                // The gate first: it may not need the transformed value.
                                if let Some((g, bit)) = link.gate {
                                    if !cache.gate_pass(slot, &v.value, link.transform_key, rules, g, bit) {
                                        continue;
                                    }
                                }
                                let i = cache.entry(slot, &v.value, link.transform_key, &rules.transforms);
                                if memo.is_some_and(|m| cache.known_no_match(i, m)) {
                                    continue;
                                }
                                (cache.value(i, &v.value), Some(i))
                            }
                        }
                        _ => {
                            let owned = apply_transforms(&link.transforms, &v.value);
                            let r = match &owned {
                                Some(n) => op_impl.evaluate_limited(n, caps.as_mut(), &mut limit_hit),
                                None => op_impl.evaluate_limited(&v.value, caps.as_mut(), &mut limit_hit),
                            };
                            if r != op.negated {
                                let h = hits.next();
                                v.write_name(&mut h.name);
                                h.value.extend_from_slice(owned.as_deref().unwrap_or(&v.value));
                                h.caps = caps;
                            }
                            continue;
                        }
                    };
                    let mut limited = false;
                    if op_impl.evaluate_limited(transformed, caps.as_mut(), &mut limited) != op.negated {
                        let h = hits.next();
                        v.write_name(&mut h.name);
                        h.value.extend_from_slice(transformed);
                        h.caps = caps;
                    } else if let (Some(i), Some(m), false) = (entry, link.memo, limited) {
                        // Memo links are pure, static and not negated: no match here is no match
                        // for every value with this content (unless the match limit stopped it).
                        cache.set_no_match(i, m);
                    }
                    limit_hit |= limited;
                }
            }
        }
        if limit_hit {
            pcre_limits_exceeded(s, messages, link, param);
        }
        matches!(op.imp, OperatorImpl::Dynamic(_)).then(|| param.clone())
    }

    fn run_setvars(&mut self, link: &Rule) {
        if link.actions.setvars.is_empty() {
            return;
        }
        let (mut key_buf, mut value_buf) = std::mem::take(&mut self.setvar_buf);
        for sv in &link.actions.setvars {
            let ctx = RuleCtx { state: &self.s, rule: Some(link) };
            // Literal keys were lower-cased at load; expanded ones may carry upper case.
            let key: &[u8] = match sv.key.literal() {
                Some(k) if !k.iter().any(u8::is_ascii_uppercase) => k,
                _ => {
                    key_buf.clear();
                    sv.key.expand_into(&ctx, &mut key_buf);
                    key_buf.make_ascii_lowercase();
                    &key_buf
                }
            };
            let new = match &sv.op {
                SetVarOp::Delete => NewValue::Delete,
                SetVarOp::Set(m) => NewValue::Bytes(match m.literal() {
                    Some(v) => v,
                    None => {
                        value_buf.clear();
                        m.expand_into(&ctx, &mut value_buf);
                        &value_buf
                    }
                }),
                SetVarOp::Add(m) | SetVarOp::Sub(m) => {
                    let old = self.s.collections.get(&sv.collection).and_then(|c| c.get(key));
                    let cur = old.map(|v| to_int(v)).unwrap_or(0);
                    let n = m.with_expanded(&ctx, to_int);
                    let r =
                        if matches!(sv.op, SetVarOp::Add(_)) { cur.saturating_add(n) } else { cur.saturating_sub(n) };
                    // Most scores add 0 to a number: nothing to write.
                    if r == cur && old.is_some_and(|v| v.as_slice() == itoa::Buffer::new().format(r).as_bytes()) {
                        continue;
                    }
                    NewValue::Int(r)
                }
            };
            let mut coll = self.s.collections.get_mut(&sv.collection);
            match new {
                NewValue::Delete => coll.remove(key),
                NewValue::Bytes(v) => coll.set(key, v),
                NewValue::Int(r) => coll.set(key, itoa::Buffer::new().format(r).as_bytes()),
            }
        }
        self.setvar_buf = (key_buf, value_buf);
    }

    /// Actions that run once the whole chain below this link matched.
    fn after_full_match(&mut self, link: &Rule) {
        let a = &link.actions;
        if let Some(sev) = a.severity {
            self.s.highest_severity = Some(self.s.highest_severity.map_or(sev, |h| h.min(sev)));
        }
        for c in &a.ctls {
            match c {
                Ctl::RuleEngine(m) => self.engine = *m,
                Ctl::RuleRemoveById(r) => self.removed_ids.extend(r.iter().copied()),
                Ctl::RuleRemoveByTag(t) => self.removed_tags.push(t.clone()),
                Ctl::RuleRemoveByMsg(m) => self.removed_msgs.push(m.clone()),
                Ctl::RuleRemoveTargetById(ids, t) => self.removed_targets_by_id.push((ids.clone(), t.clone())),
                Ctl::RuleRemoveTargetByTag(tag, t) => self.removed_targets_by_tag.push((tag.clone(), t.clone())),
                Ctl::RequestBodyProcessor(p) => {
                    self.body_processor = Some(*p);
                    self.s.reqbody_processor = p.name().as_bytes().to_vec();
                }
                Ctl::ForceRequestBodyVariable(on) => self.force_body_variable = *on,
                Ctl::RequestBodyAccess(on) => self.body_access = Some(*on),
                Ctl::ResponseBodyAccess(on) => self.response_body_access = *on,
                Ctl::AuditEngine(_) | Ctl::AuditLogParts(_) => self.audit.ctl(c),
                Ctl::Ignored => {}
            }
        }
        for (k, v) in &a.setenvs {
            let ctx = RuleCtx { state: &self.s, rule: Some(link) };
            let (k, v) = (k.expand(&ctx).into_owned(), v.expand(&ctx).into_owned());
            self.s.env.insert(k, v);
        }
        for (coll, key) in &a.initcols {
            let key = key.expand(&RuleCtx { state: &self.s, rule: Some(link) }).into_owned();
            let vars = crate::collections::load(coll, &key);
            self.s.collections.insert(coll.clone(), vars);
            self.persisted.retain(|(c, _)| c != coll);
            self.persisted.push((coll.clone(), key));
        }
        for (name, secs) in &a.expirevars {
            let secs = to_int(&secs.expand(&RuleCtx { state: &self.s, rule: Some(link) })).max(0) as u64;
            if let Some((coll, var)) = name.split_once('.') {
                self.expiries.push((coll.to_ascii_uppercase(), var.to_ascii_lowercase().into_bytes(), secs));
            }
        }
    }

    /// Writes the rule's message (when it logs) and records its id.
    fn log_match(&mut self, rule: &Rule, phase: u8, denied_with: Option<u16>) {
        if !rule.actions.logs_in(self.rules.config().dialect) {
            return;
        }
        if self.matched_ids.last() != Some(&rule.id) {
            self.matched_ids.push(rule.id);
        }
        let ctx = RuleCtx { state: &self.s, rule: Some(rule) };
        let msg = rule.actions.msg.as_ref().map(|m| m.expand(&ctx).into_owned()).unwrap_or_default();
        let data = rule.actions.logdata.as_ref().map(|m| m.expand(&ctx).into_owned()).unwrap_or_default();
        let line = log::error_line(&log::Message {
            rule,
            phase,
            denied_with,
            matched: &self.last_match,
            msg: &msg,
            data: &data,
            hostname: &self.s.server_ip,
            uri: &self.s.filename,
            unique_id: &self.s.unique_id,
        });
        self.messages.push(line);
        let m = crate::audit::AuditMessage::new(rule, phase, denied_with, &self.last_match, &msg, &data);
        self.audit.messages.push(m);
    }

    /// What an audit record reports (see audit.rs).
    pub(crate) fn audit_view(&self) -> crate::audit::TxView<'_> {
        let s = &self.s;
        crate::audit::TxView {
            rules: &self.rules,
            audit: &self.audit,
            engine: self.engine,
            intervention: self.intervention.as_ref(),
            unique_id: &s.unique_id,
            client_ip: &s.client_ip,
            client_port: s.client_port,
            server_ip: &s.server_ip,
            server_port: s.server_port,
            host: &s.server_name,
            method: &s.method,
            protocol: &s.protocol,
            uri: &s.uri_raw,
            headers: &s.headers,
            args: [&s.args_get, &s.args_post, &s.args_json],
            body: &s.body,
            resp_status: s.resp_status,
            resp_headers: &s.resp_headers,
            resp_body: &s.resp_body,
        }
    }
}

/// Value groups from this many values on take their raw literals from one OR per domain
/// ([`union_of_many`]): shared by the ~90 gates a request's arguments meet, it costs less
/// than a scan lookup per value and gate from four values on (6 query arguments: -7%
/// instructions with 4 instead of 8; 2 or 3 cost `GET /`'s header pairs more).
const RAW_OR_FROM: usize = 4;

/// The union of gate `g`'s bits over every value that union `slot` covers (its variable's,
/// or one key's), transformed by list `transform_key` and cached as rule evaluation would,
/// appended to `bits`: where it starts, or None (and nothing appended) when a value has
/// no stable slot.
#[allow(clippy::too_many_arguments)]
fn union_bits(
    state: &State,
    cache: &mut TransformCache,
    rules: &RuleSet,
    groups: &mut cache::ValueGroups,
    slot: u32,
    transform_key: u32,
    g: u32,
    bits: &mut Vec<u64>,
) -> Option<u32> {
    let group = *rules.union_group.get(slot as usize)? as usize;
    let members = groups.get(group, |out| {
        let (var, sel) = &rules.unions[slot as usize];
        let mut values = Values::new();
        state.values(*var, sel, None, &mut values);
        values.iter().all(|v| match v.slot {
            Slot::Stable(s) => {
                out.push((s, cache.value_row(s, &v.value, rules)));
                true
            }
            Slot::None => false,
        })
    })?;
    let start = bits.len();
    let words = rules.gates[g as usize].empty_scan().len();
    if let Some(kept) = cache.kept_union(group as u32, g, members) {
        bits.extend_from_slice(&kept[..words]);
        return Some(start as u32);
    }
    bits.extend_from_slice(rules.gates[g as usize].empty_scan());
    if members.len() >= RAW_OR_FROM && rules.combined.is_some() {
        return union_of_many(state, cache, rules, groups, group, transform_key, g, bits, start);
    }
    for &(s, row) in members {
        // A value that is not where it was listed: no union (the rule then collects).
        let Some(raw) = state.slot_value(s) else {
            bits.truncate(start);
            return None;
        };
        cache.or_gate_bits(row, s, raw, transform_key, rules, g, &mut bits[start..]);
    }
    cache.keep_union(group as u32, g, members, &bits[start..]);
    Some(start as u32)
}

/// [`union_bits`] for a group of many values (listed in `groups`; its union starts at
/// `start` in `bits`, empty): every value's raw literals come from one OR of the group's
/// raw scans per domain, read by every gate, and only the values that the gate's list
/// changes are looked at one by one. The raw literals of a changed value stay in: a
/// superset, so the gate stays sound.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn union_of_many(
    state: &State,
    cache: &mut TransformCache,
    rules: &RuleSet,
    groups: &mut cache::ValueGroups,
    group: usize,
    transform_key: u32,
    g: u32,
    bits: &mut Vec<u64>,
    start: usize,
) -> Option<u32> {
    let domains = rules.combined.as_ref()?;
    let seen: smallvec::SmallVec<[u32; 4]> =
        groups.domains(group, |s| state::slot_domain(s) as u32)?.iter().copied().collect();
    for d in seen {
        let or = |members: &[(u64, u32)], acc: &mut Vec<u64>| {
            let at = acc.len();
            for &(s, row) in members.iter().filter(|(s, _)| state::slot_domain(*s) as u32 == d) {
                let Some(raw) = state.slot_value(s) else { return false };
                cache.or_raw_scan(row, s, raw, rules, acc, at);
            }
            acc.resize(at + domains.get(d as usize).words(), 0);
            true
        };
        // A value that is not where it was listed: no union (the rule then collects).
        let Some(all) = groups.raw_or(group, d, or) else {
            bits.truncate(start);
            return None;
        };
        domains.get(d as usize).or_gate_bits(all, g, &mut bits[start..]);
    }
    let node = rules.transforms.node(transform_key);
    // A list that changes only case adds nothing to the raw ORs; the values a list leaves
    // as they are are told by their masks, read side by side (a missing value has every bit).
    if !node.case_only {
        let mask = |s: u64, row: u32| state.slot_value(s).map_or(u64::MAX, |raw| cache.row_mask(row, raw));
        let (members, masks) = groups.masks(group, mask)?;
        for (&(s, row), &m) in members.iter().zip(masks) {
            if node.changes_on & m == 0 {
                continue;
            }
            let Some(raw) = state.slot_value(s) else {
                bits.truncate(start);
                return None;
            };
            if let Some(b) = cache.changed_scan(row, s, raw, transform_key, rules, g) {
                crate::prefilter::or_into(&mut bits[start..], b);
            }
        }
    }
    let members = groups.get(group, |_| false)?;
    cache.keep_union(group as u32, g, members, &bits[start..]);
    Some(start as u32)
}

/// Whether a request header may carry a secret: its value's results are never kept across
/// transactions (cache.rs `Kept`). Cookies, credentials, and any name that says so
/// (`X-Api-Key`, `X-Auth-Token`, `X-Session-Id`…).
fn private_header(name: &[u8]) -> bool {
    const WORDS: [&[u8]; 7] = [b"cookie", b"auth", b"token", b"key", b"secret", b"session", b"pass"];
    // Bytes that start a word, either case: most bytes of a name are passed over with one
    // table lookup (every request runs this for every header).
    const STARTS: [bool; 256] = {
        let mut t = [false; 256];
        let mut w = 0;
        while w < WORDS.len() {
            t[WORDS[w][0] as usize] = true;
            t[WORDS[w][0].to_ascii_uppercase() as usize] = true;
            w += 1;
        }
        t
    };
    (0..name.len()).filter(|&i| STARTS[name[i] as usize]).any(|i| {
        let first = name[i].to_ascii_lowercase();
        WORDS.iter().any(|w| w[0] == first && name[i..].get(..w.len()).is_some_and(|n| n.eq_ignore_ascii_case(w)))
    })
}

/// TX:0..TX:9 from a capturing match (the buffers of earlier captures are reused).
fn set_captures(tx: &mut crate::collections::TxTable, caps: &[Vec<u8>]) {
    const KEYS: [&[u8]; 10] = [b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8", b"9"];
    for (key, c) in KEYS.iter().zip(caps) {
        tx.set(key, c);
    }
}

/// ModSecurity v3 (src/operators/rx.cc) when a regex stops at its PCRE match limit: the
/// value did not match (the operator said so already), MSC_PCRE_LIMITS_EXCEEDED and
/// TX:MSC_PCRE_LIMITS_EXCEEDED become 1, and its debug log (level 1) says
/// `rx: regex error 'MATCH_LIMIT' for pattern '…'`. Ward has no debug log: that line goes
/// to the error log, once per transaction, naming the rule.
fn pcre_limits_exceeded(s: &mut State, messages: &mut Vec<String>, rule: &Rule, pattern: &str) {
    s.collections.tx_mut().set(b"msc_pcre_limits_exceeded", b"1");
    if s.flags.iter().any(|(v, _)| *v == Var::MscPcreLimitsExceeded) {
        return;
    }
    s.flags.push((Var::MscPcreLimitsExceeded, b"1".to_vec()));
    let mut end = pattern.len().min(200);
    while !pattern.is_char_boundary(end) {
        end -= 1;
    }
    let clipped = if end < pattern.len() { "..." } else { "" };
    messages.push(format!(
        "ModSecurity: rx: regex error 'MATCH_LIMIT' for pattern '{}{clipped}' [file \"{}\"] [line \"{}\"] [id \"{}\"] [uri \"{}\"] [unique_id \"{}\"]",
        &pattern[..end],
        rule.file.display(),
        rule.line,
        rule.id,
        String::from_utf8_lossy(&s.filename),
        s.unique_id
    ));
}

fn apply_transforms(steps: &[TransformStep], v: &[u8]) -> Option<Vec<u8>> {
    let mut cur: Option<Vec<u8>> = None;
    for s in steps {
        let input = cur.as_deref().unwrap_or(v);
        if let Some(n) = (s.func)(input) {
            cur = Some(n);
        }
    }
    cur
}

fn target_removed(by_id: &[(Vec<IdRange>, TargetRef)], by_tag: &[(String, TargetRef)], rule: &Rule, v: &Value) -> bool {
    let hit = |t: &TargetRef| t.var == v.var && t.selector.matches(&v.key);
    by_id.iter().any(|(ids, t)| ids.iter().any(|r| r.contains(rule.id)) && hit(t))
        || by_tag.iter().any(|(tag, t)| hit(t) && rule.actions.tags.iter().any(|x| x == tag))
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

fn trim(b: &[u8]) -> &[u8] {
    let b = trim_start(b);
    let n = b.iter().rev().take_while(|c| c.is_ascii_whitespace()).count();
    &b[..b.len() - n]
}

/// Appends `s` to `out` with ModSecurity's `uri_decode`: `%XX` only (no `+`), invalid
/// escapes kept.
fn percent_decode_into(s: &[u8], out: &mut Vec<u8>) {
    out.reserve(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// `http://host/path` → `/path` (REQUEST_URI never carries scheme and host).
fn strip_scheme_host(u: &[u8]) -> &[u8] {
    if u.first() == Some(&b'/') || u.is_empty() {
        return u;
    }
    if let Some(p) = memchr::memmem::find(u, b"://") {
        if let Some(q) = memchr::memchr(b'/', &u[p + 3..]) {
            return &u[p + 3 + q..];
        }
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules of `text`, compiled.
    fn rule_set(text: &str) -> Arc<RuleSet> {
        let src = crate::RuleSource::Inline { text: text.into(), origin: "/t/rules.conf".into(), line: 1 };
        Arc::new(RuleSet::compile(&[src]).unwrap())
    }

    /// The transaction of a `GET /?{query}` through phase 2, and the transformation lists
    /// whose cells phase 2 made, in order (`cache::FILLED`).
    fn phase_2_cells(rs: &Arc<RuleSet>, query: &str) -> (Transaction, Vec<u32>) {
        let mut tx = Transaction::new(rs.clone(), "t");
        tx.process_uri(format!("/?{query}").as_bytes(), b"GET", b"HTTP/1.1");
        tx.process_request_headers();
        cache::FILLED.with(|f| f.borrow_mut().clear());
        tx.process_request_body();
        (tx, cache::FILLED.with(|f| f.take()))
    }

    #[test]
    fn targets_share_a_union_per_variable_and_gate() {
        let text = "SecRuleEngine On\n\
            SecRule ARGS|REQUEST_HEADERS:Host|&ARGS \"@rx foo\" \"id:1,phase:2,pass,log,t:lowercase\"\n\
            SecRule ARGS|REQUEST_FILENAME \"@rx bar\" \"id:2,phase:2,pass,log,t:lowercase\"\n\
            SecRule ARGS \"@rx baz\" \"id:3,phase:2,pass,log,t:none\"\n";
        let src = crate::RuleSource::Inline { text: text.into(), origin: "/t/u.conf".into(), line: 1 };
        let rs = Arc::new(RuleSet::compile(&[src]).unwrap());
        let unions = |id: u64| -> Vec<u32> {
            rs.phases[1]
                .iter()
                .find_map(|e| match e {
                    Entry::Rule { rule, .. } if rule.id == id => Some(rule.targets.iter().map(|t| t.union).collect()),
                    _ => None,
                })
                .unwrap()
        };
        let (a, b, c) = (unions(1), unions(2), unions(3));
        use crate::variables::NO_UNION;
        // A count reads no union, one key its own; the same variable under the same gate
        // shares one.
        assert_eq!(a[2], NO_UNION);
        assert!(a[1] != NO_UNION && a[1] != a[0]);
        assert!(matches!(&rs.unions[a[1] as usize].1, crate::variables::Selector::Key(k) if k == b"host"));
        assert_eq!(a[0], b[0]);
        assert!(b[1] != NO_UNION && b[1] != b[0] && b[1] != a[1]);
        // Another transformation list is another gate, so another union.
        assert!(c[0] != NO_UNION && c[0] != a[0] && c[0] != b[1]);
        assert_eq!(rs.unions.len(), 4);
        // The shared union still lets each rule match its own values only.
        for (query, want) in
            [("a=xFOO", "1"), ("a=bar&b=z", "2"), ("a=baz", "3"), ("a=BAZ&b=foo", "1"), ("a=nothing", "")]
        {
            let mut tx = Transaction::new(rs.clone(), "t");
            tx.process_uri(format!("/p?{query}").as_bytes(), b"GET", b"HTTP/1.1");
            tx.add_request_header(b"Host", b"bar.example");
            tx.process_request_headers();
            tx.process_request_body();
            assert_eq!(tx.matched_ids(), want, "{query}");
        }
    }

    #[test]
    fn long_values_a_gate_has_few_links_for_are_not_scanned_and_still_matched() {
        // One link of the `t:urlDecodeUni` gate reads REQUEST_BODY, three read ARGS_POST.
        let text = "SecRuleEngine On\n\
            SecRule REQUEST_BODY \"@rx evil\" \"id:1,phase:2,pass,log,t:urlDecodeUni\"\n\
            SecRule ARGS_POST \"@rx foo\" \"id:2,phase:2,pass,log,t:urlDecodeUni\"\n\
            SecRule ARGS_POST \"@rx bar\" \"id:3,phase:2,pass,log,t:urlDecodeUni\"\n\
            SecRule ARGS_POST \"@rx baz\" \"id:4,phase:2,pass,log,t:urlDecodeUni\"\n";
        let rs = rule_set(text);
        let Some(Entry::Rule { rule, .. }) = rs.phases[1].first() else { panic!("rule 1") };
        let (g, _) = rule.gate.expect("rule 1 is gated");
        let domain = |c| 1u64 << state::slot_domain(state::stable_slot(c, 0, false));
        assert_eq!(
            rs.gate_thin[g as usize] & (domain(state::coll::BODY) | domain(state::coll::ARGS_POST)),
            domain(state::coll::BODY)
        );
        // Decoded once by the body parser, again by the list: the argument's value (1.2 KB
        // then) is transformed, and so is the body (2.4 KB).
        let filler = "x%2520".repeat(600);
        for (body, want) in [
            (format!("a={filler}&b=%65vil"), "1"),
            (format!("a={filler}&b=ev+il"), ""),
            (format!("a={filler}%2566oo"), "2"),
        ] {
            cache::GATE_SCANNED.with(|f| f.borrow_mut().clear());
            let mut tx = Transaction::new(rs.clone(), "t");
            tx.process_uri(b"/p", b"POST", b"HTTP/1.1");
            tx.add_request_header(b"Content-Type", b"application/x-www-form-urlencoded");
            tx.process_request_headers();
            tx.append_request_body(body.as_bytes());
            tx.process_request_body();
            assert_eq!(tx.matched_ids(), want, "{body}");
            // The long argument is walked by the gate, the decoded body is not.
            let scanned = cache::GATE_SCANNED.with(|f| f.borrow().clone());
            assert!(scanned.iter().any(|&n| (1024..2000).contains(&n)), "{scanned:?}");
            assert!(scanned.iter().all(|&n| n < 2000), "{scanned:?}");
        }
    }

    #[test]
    fn a_gated_rule_is_passed_over_only_when_no_value_of_its_targets_has_its_literals() {
        let text = "SecRuleEngine On\n\
            SecRule ARGS|XML:/* \"@rx foo\" \"id:1,phase:2,pass,log,t:lowercase\"\n\
            SecRule ARGS|&ARGS \"@rx foo\" \"id:2,phase:2,pass,log,t:lowercase\"\n\
            SecRule ARGS_NAMES|REQUEST_HEADERS:Host \"@rx bar\" \"id:3,phase:2,pass,log,t:lowercase\"\n\
            SecRule ARGS \"!@rx foo\" \"id:4,phase:2,pass,log,t:none\"\n\
            SecRule ARGS \"@rx foo\" \"id:5,phase:2,pass,log,t:none,chain\"\n\
              SecRule REQUEST_FILENAME \"@rx zzz\" \"t:none\"\n";
        let src = crate::RuleSource::Inline { text: text.into(), origin: "/t/q.conf".into(), line: 1 };
        let rs = Arc::new(RuleSet::compile(&[src]).unwrap());
        // A count (2) or a negated operator (4) gets no record; the chain starter's (5) is its own.
        let lens: Vec<u32> = rs.quick[1].iter().map(|q| q.len).collect();
        assert_eq!(lens, [2, 0, 2, 0, 1]);
        for (query, host, want) in [
            ("a=xFOO", "h", "1,2,4"),
            ("a=nothing", "h", "4"),
            ("bar=1", "h", "3,4"),
            ("a=1", "bar.example", "3,4"),
            ("a=foo", "h", "1,2,5"),
        ] {
            let mut tx = Transaction::new(rs.clone(), "t");
            tx.process_uri(format!("/zzz?{query}").as_bytes(), b"GET", b"HTTP/1.1");
            tx.add_request_header(b"Host", host.as_bytes());
            tx.process_request_headers();
            tx.process_request_body();
            assert_eq!(tx.matched_ids(), want, "{query} {host}");
        }
        // Without the request data the rules read, every record decides a miss.
        let mut tx = Transaction::new(rs.clone(), "t");
        tx.process_uri(b"/", b"GET", b"HTTP/1.1");
        tx.add_request_header(b"Host", b"h");
        tx.process_request_headers();
        tx.process_request_body();
        assert_eq!(tx.matched_ids(), "");
    }

    #[test]
    fn a_rule_whose_keyed_targets_are_all_absent_is_passed_over() {
        let text = "SecRuleEngine On\n\
            SecRule REQUEST_HEADERS:X-A \"!@rx ^\\d+$\" \"id:1,phase:1,pass,log\"\n\
            SecRule ARGS|REQUEST_HEADERS:X-A|REQUEST_HEADERS:X-B \"!@eq 7\" \"id:2,phase:1,pass,log\"\n\
            SecRule &REQUEST_HEADERS:X-A \"@eq 0\" \"id:3,phase:1,pass,log\"\n\
            SecRule REQUEST_HEADERS:X-A|REQUEST_LINE \"!@eq 7\" \"id:4,phase:1,pass,log\"\n\
            SecRule REQUEST_HEADERS:X-C \"@eq 1\" \"id:5,phase:1,pass,nolog,setvar:tx.late=1\"\n\
            SecRule TX:LATE \"!@eq 0\" \"id:6,phase:1,pass,log\"\n\
            SecRule RESPONSE_HEADERS:Content-Encoding \"!@eq 7\" \"id:7,phase:3,pass,log\"\n\
            SecRule &REQUEST_HEADERS:X-A \"!@eq 0\" \"id:8,phase:1,pass,log\"\n\
            SecRule &REQUEST_HEADERS:X-A \"@eq 1\" \"id:9,phase:1,pass,log,t:length\"\n";
        let src = crate::RuleSource::Inline { text: text.into(), origin: "/t/k.conf".into(), line: 1 };
        let rs = Arc::new(RuleSet::compile(&[src]).unwrap());
        // A variable that is never absent (4) leaves a rule unread only by its gate; so does
        // a count whose `0` could match (3; 9, where `t:length` makes it `1`).
        let keyed: Vec<(bool, u16)> =
            [&rs.quick[0][..], &rs.quick[2][..]].concat().iter().map(|q| (q.emptiable, q.keys_len)).collect();
        let want = [(true, 1), (true, 2), (false, 0), (false, 0), (true, 1), (true, 1), (true, 1), (false, 0)];
        assert_eq!(keyed, [&want[..], &[(true, 1)]].concat());
        for (query, headers, want) in [
            ("", &[][..], "3,4,9"),
            ("", &[("x-a", "12")][..], "2,4,8,9"),
            ("", &[("X-A", "x")][..], "1,2,4,8,9"),
            ("a=1", &[][..], "2,3,4,9"),
            ("", &[("X-B", "1")][..], "2,3,4,9"),
            // TX:LATE is set by the rule before: absent when the phase starts, not when read.
            ("", &[("X-C", "1")][..], "3,4,6,9"),
        ] {
            let mut tx = Transaction::new(rs.clone(), "t");
            tx.process_uri(format!("/p?{query}").as_bytes(), b"GET", b"HTTP/1.1");
            for (n, v) in headers {
                tx.add_request_header(n.as_bytes(), v.as_bytes());
            }
            tx.process_request_headers();
            tx.add_response_header(b"Content-Type", b"text/plain");
            tx.process_response_headers(200, b"HTTP/1.1");
            assert_eq!(tx.matched_ids(), want, "{query} {headers:?}");
        }
        let mut tx = Transaction::new(rs.clone(), "t");
        tx.process_uri(b"/", b"GET", b"HTTP/1.1");
        tx.process_request_headers();
        tx.add_response_header(b"content-encoding", b"gzip");
        tx.process_response_headers(200, b"HTTP/1.1");
        assert_eq!(tx.matched_ids(), "3,4,9,7");
    }

    #[test]
    fn the_response_body_is_read_for_the_listed_types_in_any_case() {
        let text = "SecRuleEngine On\nSecResponseBodyAccess On\nSecResponseBodyMimeTypesClear\n\
            SecResponseBodyMimeType Text/HTML application/JSON\n\
            SecRule RESPONSE_BODY \"@streq ok\" \"id:1,phase:4,pass,log\"\n";
        let src = crate::RuleSource::Inline { text: text.into(), origin: "/t/r.conf".into(), line: 1 };
        let rs = Arc::new(RuleSet::compile(&[src]).unwrap());
        let cases = [
            (Some("text/html"), true),
            (Some("TEXT/Html; charset=UTF-8"), true),
            (Some(" application/json ;x"), true),
            (Some("text/plain"), false),
            (Some("text/htm"), false),
            (Some("text/html2"), false),
            (None, false),
        ];
        for (ct, want) in cases {
            let mut tx = Transaction::new(rs.clone(), "t");
            tx.process_uri(b"/", b"GET", b"HTTP/1.1");
            tx.process_request_headers();
            tx.process_request_body();
            if let Some(ct) = ct {
                tx.add_response_header(b"Content-Type", ct.as_bytes());
            }
            tx.process_response_headers(200, b"HTTP/1.1");
            assert_eq!(tx.wants_response_body(), want, "{ct:?}");
        }
        // The body's buffer comes from an earlier transaction's, emptied first.
        for (body, want) in [("a longer body than the next", ""), ("ok", "1"), ("o", ""), ("ok", "1")] {
            let mut tx = Transaction::new(rs.clone(), "t");
            tx.process_uri(b"/", b"GET", b"HTTP/1.1");
            tx.process_request_headers();
            tx.process_request_body();
            tx.add_response_header(b"Content-Type", b"text/html");
            tx.process_response_headers(200, b"HTTP/1.1");
            assert!(tx.append_response_body(body.as_bytes()).is_none());
            tx.process_response_body();
            assert_eq!(tx.matched_ids(), want, "{body}");
        }
    }

    #[test]
    fn results_kept_from_request_to_request_give_each_request_its_own_verdict() {
        let text = "SecRuleEngine On\n\
            SecRule REQUEST_HEADERS \"@rx attack\" \"id:1,phase:1,pass,log,t:lowercase\"\n\
            SecRule REQUEST_HEADERS:User-Agent \"@detectSQLi\" \"id:2,phase:1,pass,log\"\n\
            SecRule REQUEST_FILENAME \"@rx ^/admin\" \"id:3,phase:1,pass,log,t:none\"\n\
            SecRule REQUEST_COOKIES|REQUEST_HEADERS:Cookie \"@contains secret\" \"id:4,phase:1,pass,log\"\n\
            SecRule ARGS_NAMES|ARGS \"@rx evil\" \"id:5,phase:1,pass,log,t:none\"\n";
        let src = crate::RuleSource::Inline { text: text.into(), origin: "/t/k.conf".into(), line: 1 };
        let rs = Arc::new(RuleSet::compile(&[src]).unwrap());
        let benign = "Mozilla/5.0";
        let sqli = "1' or '1'='1";
        // (User-Agent, path, cookie, expected): the same values come back in other orders.
        let requests = [
            (benign, "/", "a=b", ""),
            (benign, "/", "a=b", ""),
            (sqli, "/", "a=b", "2"),
            (benign, "/admin", "a=b", "3"),
            ("ATTACK", "/", "a=secret", "1,4"),
            (benign, "/?evil=1", "a=b", "5"),
            (benign, "/?good=1", "a=b", ""),
            (sqli, "/admin", "a=secret", "2,3,4"),
            (benign, "/?good=evil", "a=b", "5"),
            ("ATTACK", "/", "a=b", "1"),
            (benign, "/admin?evil=1", "a=b", "3,5"),
        ];
        for round in 0..2 {
            for (ua, path, cookie, want) in requests {
                let mut tx = Transaction::new(rs.clone(), "t");
                tx.process_uri(path.as_bytes(), b"GET", b"HTTP/1.1");
                tx.add_request_header(b"User-Agent", ua.as_bytes());
                tx.add_request_header(b"Cookie", cookie.as_bytes());
                tx.process_request_headers();
                assert_eq!(tx.matched_ids(), want, "round {round}: {ua} {path} {cookie}");
            }
        }
    }

    #[test]
    fn kept_unions_follow_each_requests_own_values() {
        // Only headers and argument names that are kept: their unions are kept too.
        let text = "SecRuleEngine On\n\
            SecRule REQUEST_HEADERS \"@rx attack\" \"id:1,phase:1,pass,log,t:lowercase\"\n\
            SecRule ARGS_NAMES \"@rx evil\" \"id:2,phase:1,pass,log,t:none\"\n";
        let src = crate::RuleSource::Inline { text: text.into(), origin: "/t/u.conf".into(), line: 1 };
        let rs = Arc::new(RuleSet::compile(&[src]).unwrap());
        // (header values, path, expected): the same values come back in other sets and orders.
        let requests: [(&[&str], &str, &str); 8] = [
            (&["x", "y"], "/?a=1&b=2", ""),
            (&["x", "ATTACK"], "/?a=1&b=2", "1"),
            (&["x", "y"], "/?a=1&evil=2", "2"),
            (&["attack", "y"], "/?a=1&b=2", "1"),
            (&["y", "x"], "/?b=1&a=2", ""),
            (&["x", "y"], "/?a=1&b=2", ""),
            (&["x", "y", "attack"], "/?a=1&b=2&evil=3", "1,2"),
            (&["y", "attack"], "/?evil=1&b=2", "1,2"),
        ];
        let mut kept = 0;
        for round in 0..2 {
            for (values, path, want) in requests {
                let mut tx = Transaction::new(rs.clone(), "t");
                tx.process_uri(path.as_bytes(), b"GET", b"HTTP/1.1");
                for (i, v) in values.iter().enumerate() {
                    tx.add_request_header(format!("X-{i}").as_bytes(), v.as_bytes());
                }
                tx.process_request_headers();
                assert_eq!(tx.matched_ids(), want, "round {round}: {values:?} {path}");
                kept = kept.max(tx.cache.kept_unions());
            }
        }
        assert!(kept > 0, "the unions were kept");
    }

    #[test]
    fn unions_of_many_values_see_what_each_list_makes_of_them() {
        // Gated rules on ARGS (many values: `union_of_many`), whose literal some values only
        // hold once transformed; query and body arguments are two scan domains.
        let text = "SecRuleEngine On\nSecRequestBodyAccess On\n\
            SecRule ARGS \"@rx attack\" \"id:1,phase:2,pass,log,t:none,t:removeWhitespace\"\n\
            SecRule ARGS \"@rx select\" \"id:2,phase:2,pass,log,t:none,t:urlDecodeUni,t:lowercase\"\n\
            SecRule ARGS \"@rx plain\" \"id:3,phase:2,pass,log,t:none\"\n";
        let src = crate::RuleSource::Inline { text: text.into(), origin: "/t/m.conf".into(), line: 1 };
        let rs = Arc::new(RuleSet::compile(&[src]).unwrap());
        // (query, body, expected)
        let cases = [
            ("a=1", "x=at%20tack", "1"),
            ("a=at tack", "x=1", "1"),
            ("a=SEL%2545CT", "x=1", "2"),
            ("a=1", "x=%53elect", "2"),
            ("a=plain", "x=1", "3"),
            ("a=1", "x=plain", "3"),
            ("a=pl ain", "x=1", ""),
            ("a=1", "x=attack+select+plain", "1,2,3"),
            ("a=1", "x=2", ""),
        ];
        // 1, RAW_OR_FROM - 1, RAW_OR_FROM and 11 arguments per domain (ARGS holds twice as
        // many): groups on either side of the threshold.
        for fill in [0, RAW_OR_FROM - 2, RAW_OR_FROM - 1, 10] {
            let filler: String = (0..fill).map(|i| format!("f{i}=value{i}&")).collect();
            for (query, body, want) in cases {
                let mut tx = Transaction::new(rs.clone(), "t");
                tx.process_uri(format!("/?{filler}{query}").as_bytes(), b"POST", b"HTTP/1.1");
                tx.add_request_header(b"Content-Type", b"application/x-www-form-urlencoded");
                tx.process_request_headers();
                tx.append_request_body(format!("{filler}{body}").as_bytes());
                tx.process_request_body();
                assert_eq!(tx.matched_ids(), want, "{fill} filler values: {query} {body}");
            }
        }
    }

    #[test]
    fn multi_match_targets_are_passed_over_only_when_no_stage_can_match() {
        // Stages none, urlDecodeUni, removeWhitespace: each a union per target (1); with
        // base64Decode, a stage that changes nearly every value, none (2).
        let text = "SecRuleEngine On\nSecRequestBodyAccess On\n\
            SecRule ARGS|REQUEST_HEADERS \"@rx attack\" \"id:1,phase:2,pass,log,multiMatch,t:none,t:urlDecodeUni,t:removeWhitespace,setvar:tx.n=+1\"\n\
            SecRule ARGS \"@rx select\" \"id:2,phase:2,pass,log,multiMatch,t:none,t:base64Decode,setvar:tx.m=+1\"\n";
        let src = crate::RuleSource::Inline { text: text.into(), origin: "/t/mm.conf".into(), line: 1 };
        let rs = Arc::new(RuleSet::compile(&[src]).unwrap());
        let rule = |i: usize| match &rs.phases[1][i] {
            Entry::Rule { rule, .. } => rule,
            _ => unreachable!(),
        };
        assert_eq!(rule(0).stage_unions.len(), 2 * 3);
        assert!(rule(0).stage_unions.iter().all(|&u| u != crate::variables::NO_UNION));
        assert!(rule(1).stage_unions.is_empty());
        let filler: String = (0..10).map(|i| format!("f{i}=value{i}&")).collect();
        // (filler or not, query, header, matched, stage matches of 1, of 2)
        for many in [false, true] {
            for (query, header, want, n, m) in [
                ("a=1", "h", "", "", ""),
                ("a=attack", "h", "1", "1", ""),
                // (Query arguments are decoded once when parsed.)
                ("a=att%2561ck", "h", "1", "1", ""),
                ("a=at%2520tack", "h", "1", "1", ""),
                // Every stage changes the value and matches: a match each.
                ("a=attack%2520", "h", "1", "3", ""),
                ("a=1", "at tack", "1", "1", ""),
                ("a=c2VsZWN0", "h", "2", "", "1"),
            ] {
                let fill = if many { filler.as_str() } else { "" };
                let mut tx = Transaction::new(rs.clone(), "t");
                tx.process_uri(format!("/?{fill}{query}").as_bytes(), b"GET", b"HTTP/1.1");
                tx.add_request_header(b"X-Test", header.as_bytes());
                tx.process_request_headers();
                tx.process_request_body();
                let got = |k: &str| tx.tx(k).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
                assert_eq!(
                    (tx.matched_ids(), got("n"), got("m")),
                    (want.into(), n.into(), m.into()),
                    "{many} {query} {header}"
                );
            }
        }
    }

    #[test]
    fn an_empty_stage_ends_the_walk_only_when_no_later_step_fills_it() {
        // base64Decode empties a value with a byte outside its alphabet; urlDecodeUni keeps
        // it empty, `length` makes it "0".
        let text = "SecRuleEngine On\n\
            SecRule ARGS \"@rx select\" \"id:1,phase:2,pass,log,multiMatch,t:none,t:base64Decode,t:urlDecodeUni,setvar:tx.n=+1\"\n\
            SecRule ARGS \"@rx ^0$\" \"id:2,phase:2,pass,log,multiMatch,t:none,t:base64Decode,t:length,setvar:tx.m=+1\"\n";
        let src = crate::RuleSource::Inline { text: text.into(), origin: "/t/mm.conf".into(), line: 1 };
        let rs = Arc::new(RuleSet::compile(&[src]).unwrap());
        let rule = |i: usize| match &rs.phases[1][i] {
            Entry::Rule { rule, .. } => rule,
            _ => unreachable!(),
        };
        assert_eq!(rule(0).stage_empty_ends, 0b111);
        assert_eq!(rule(1).stage_empty_ends, 0b100);
        // Base64 that decodes to bytes of length 3: no match.
        // Values that repeat, so that contents are shared and misses remembered.
        let filler: String = (0..70).map(|i| format!("f{i}=value{}&", i % 7)).collect();
        for many in [false, true] {
            // (query, matched, stage matches of 1, of 2)
            for (query, want, n, m) in
                [("a=c2VsZWN0", "1", "1", ""), ("a=a-b", "2", "", "1"), ("a=c2VsZWN0&b=a-b", "1,2", "1", "1")]
            {
                let fill = if many { filler.as_str() } else { "" };
                let mut tx = Transaction::new(rs.clone(), "t");
                tx.process_uri(format!("/?{fill}{query}").as_bytes(), b"GET", b"HTTP/1.1");
                tx.process_request_headers();
                tx.process_request_body();
                assert_eq!(tx.cache.sharing(), many);
                let got = |k: &str| tx.tx(k).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
                assert_eq!((tx.matched_ids(), got("n"), got("m")), (want.into(), n.into(), m.into()), "{many} {query}");
            }
        }
    }

    #[test]
    fn arguments_are_held_in_the_transactions_kept_buffers() {
        let mut tx = Transaction::new(Arc::new(RuleSet::compile(&[]).unwrap()), "t");
        tx.process_uri(b"/?q=one", b"POST", b"HTTP/1.1");
        tx.add_request_header(b"Content-Type", b"application/x-www-form-urlencoded");
        tx.process_request_headers();
        tx.append_request_body(b"name=Maria+Schneider&city=Berlin");
        tx.parse_body();
        assert_eq!(tx.s.args_post[0].1, b"Maria Schneider");
        // Buffers of `Bufs` (bufs.rs) have their size class's room; allocated for the
        // argument alone, they would have its length.
        for (k, v) in tx.s.args_get.iter().chain(&tx.s.args_post) {
            assert_eq!((k.capacity(), v.capacity()), (31, 31), "{k:?} {v:?}");
        }
        let mut tx = Transaction::new(Arc::new(RuleSet::compile(&[]).unwrap()), "t");
        tx.process_uri(b"/", b"POST", b"HTTP/1.1");
        tx.add_request_header(b"Content-Type", b"application/json");
        tx.process_request_headers();
        tx.append_request_body(br#"{"name":"Maria Schneider","tags":["a",2]}"#);
        tx.body_processor = Some(BodyProcessor::Json);
        tx.parse_body();
        assert_eq!(tx.s.args_json.len(), 3);
        for (k, v) in &tx.s.args_json {
            assert_eq!((k.capacity(), v.capacity()), (31, 31), "{k:?} {v:?}");
        }
    }

    #[test]
    fn repeated_contents_are_counted_over_names_and_values() {
        let repeats = |query: &str, body: &str| {
            let mut tx = Transaction::new(Arc::new(RuleSet::compile(&[]).unwrap()), "t");
            tx.process_uri(format!("/?{query}").as_bytes(), b"POST", b"HTTP/1.1");
            tx.add_request_header(b"Content-Type", b"application/x-www-form-urlencoded");
            tx.add_request_header(b"Cookie", b"s=x; t=q");
            tx.process_request_headers();
            tx.append_request_body(body.as_bytes());
            tx.parse_body();
            tx.s.repeated_contents()
        };
        assert_eq!(repeats("a=b", "c=d"), (0, 8));
        // `x` three times (a value of the query, of the body and of a cookie), `a` twice: 2 + 1.
        assert_eq!(repeats("a=x&b=y", "c=x&a=z"), (3, 12));
        // Long contents that differ at either end are told apart.
        let long = "v".repeat(100);
        assert_eq!(repeats(&format!("a=1{long}&b=2{long}"), &format!("c={long}1&d={long}2")), (0, 12));
        assert_eq!(repeats(&format!("a={long}&b={long}"), "").0, 1);
        // Only the first names and values are read.
        let distinct: String = (0..state::REPEATS_SAMPLE / 2).map(|i| format!("n{i}=v{i}&")).collect();
        assert_eq!(repeats(&distinct, "n0=v0"), (0, state::REPEATS_SAMPLE));
        assert_eq!(repeats("n0=v0", &distinct), (2, state::REPEATS_SAMPLE));
    }

    #[test]
    fn a_remembered_miss_does_not_make_the_stages_after_an_empty_one() {
        let rs = rule_set(
            "SecRuleEngine On\n\
            SecRule ARGS \"@rx select\" \"id:1,phase:2,pass,log,multiMatch,t:none,t:base64Decode,t:urlDecodeUni,t:lowercase\"\n",
        );
        let Entry::Rule { rule, .. } = &rs.phases[1][0] else { unreachable!() };
        let (full, stages) = (rule.transform_key, rule.stage_gates.iter().map(|s| s.0).collect::<Vec<_>>());
        assert_eq!(stages.last(), Some(&full));
        // 40 arguments holding `a-b` (base64Decode empties it): shared, misses remembered.
        let query: String = (0..40).map(|i| format!("f{i}=a-b&")).collect();
        let (tx, filled) = phase_2_cells(&rs, &query);
        assert!(tx.cache.sharing());
        assert_eq!(tx.matched_ids(), "");
        // The walk stopped at the empty stage: the later lists were never made.
        assert!(filled.contains(&stages[1]), "{filled:?}");
        assert!(!filled.contains(&full), "{filled:?}");
    }

    #[test]
    fn stages_whose_lists_cannot_change_a_value_are_not_made() {
        let rs = rule_set(
            "SecRuleEngine On\n\
            SecRule ARGS \"@rx (?:sel|ect)\" \"id:1,phase:2,pass,log,multiMatch,t:none,t:urlDecodeUni,t:jsDecode,t:lowercase\"\n",
        );
        let Entry::Rule { rule, .. } = &rs.phases[1][0] else { unreachable!() };
        let stages: Vec<u32> = rule.stage_gates.iter().map(|s| s.0).collect();
        assert_eq!(stages.len(), 4);
        // `a`: no stage changes it; `b`: lower-casing does (and matches; its list's parent
        // is made on the way, raw); `c`: decoding does.
        for (query, filled_stages, want) in [
            ("a=select", &[][..], "1"),
            ("b=SeLect", &[2, 3][..], "1"),
            ("c=%2573el", &[1, 2, 3][..], "1"),
            ("a=nothing", &[][..], ""),
        ] {
            let (tx, filled) = phase_2_cells(&rs, query);
            assert_eq!(tx.matched_ids(), want, "{query}");
            for (k, key) in stages.iter().enumerate().skip(1) {
                assert_eq!(filled.contains(key), filled_stages.contains(&k), "{query}: stage {k}, {filled:?}");
            }
        }
    }

    #[test]
    fn adding_zero_writes_a_number_only_when_the_text_is_not_one_already() {
        let text = "SecRuleEngine On\n\
            SecAction \"id:1,phase:1,pass,nolog,setvar:tx.zero=0,setvar:tx.padded=007,setvar:tx.plain=5,\
              setvar:tx.word=abc,setvar:tx.padded=+%{tx.zero},setvar:tx.plain=+%{tx.zero},setvar:tx.word=-0,\
              setvar:tx.new=+%{tx.zero}\"\n";
        let src = crate::RuleSource::Inline { text: text.into(), origin: "/t/z.conf".into(), line: 1 };
        let rs = Arc::new(RuleSet::compile(&[src]).unwrap().without_setup_folding());
        let mut tx = Transaction::new(rs, "t");
        tx.process_uri(b"/", b"GET", b"HTTP/1.1");
        tx.process_request_headers();
        let got = |k: &str| tx.tx(k).map(|v| String::from_utf8_lossy(v).into_owned());
        // ModSecurity writes the sum as a number, even when it adds nothing.
        assert_eq!(got("padded").as_deref(), Some("7"));
        assert_eq!(got("word").as_deref(), Some("0"));
        assert_eq!(got("plain").as_deref(), Some("5"));
        assert_eq!(got("new").as_deref(), Some("0"));
    }

    #[test]
    fn a_transaction_sees_only_its_own_request_in_reused_buffers() {
        let text = "SecRuleEngine On\n\
            SecRule REQUEST_LINE|REQUEST_URI|REQUEST_FILENAME|REQUEST_BASENAME|QUERY_STRING|REQUEST_METHOD|REQUEST_PROTOCOL \
              \"@contains secret\" \"id:1,phase:1,pass,log\"\n\
            SecRule REQUEST_HEADERS|REQUEST_HEADERS_NAMES|REQUEST_COOKIES|REQUEST_COOKIES_NAMES|REMOTE_ADDR|SERVER_NAME \
              \"@contains secret\" \"id:2,phase:1,pass,log\"\n\
            SecRule RESPONSE_HEADERS|RESPONSE_HEADERS_NAMES|RESPONSE_PROTOCOL \"@contains secret\" \"id:3,phase:3,pass,log\"\n";
        let src = crate::RuleSource::Inline { text: text.into(), origin: "/t/b.conf".into(), line: 1 };
        let rs = Arc::new(RuleSet::compile(&[src]).unwrap());
        let run = |word: &str| {
            let mut tx = Transaction::new(rs.clone(), "t");
            tx.process_connection(&format!("10.0.0.1{word}"), 1, "127.0.0.1", 80);
            tx.set_server_name(format!("host{word}").as_bytes());
            let uri = format!("/dir{word}/file{word}?q={word}");
            tx.process_uri(uri.as_bytes(), format!("GET{word}").as_bytes(), format!("HTTP/1.1{word}").as_bytes());
            tx.add_request_header(format!("X-A{word}").as_bytes(), format!("v{word}").as_bytes());
            tx.add_request_header(b"Cookie", format!("c{word}=d{word}").as_bytes());
            tx.process_request_headers();
            tx.add_response_header(format!("X-R{word}").as_bytes(), format!("r{word}").as_bytes());
            tx.process_response_headers(200, format!("HTTP/1.1{word}").as_bytes());
            tx.matched_ids()
        };
        // The first request's buffers come back to the second, which must not see their bytes.
        for _ in 0..3 {
            assert_eq!(run("secret"), "1,2,3");
            assert_eq!(run(""), "");
        }
    }

    #[test]
    fn setvar_expands_keys_and_values_in_reused_buffers() {
        let text = "SecRuleEngine On\n\
            SecRule REQUEST_METHOD \"@streq GET\" \"id:1,phase:1,pass,nolog,setvar:tx.name=HeLLo,\
              setvar:'tx.k_%{tx.name}=v_%{tx.name}',setvar:'tx.K_%{tx.name}=w_%{tx.name}_2',setvar:tx.n=5,\
              setvar:tx.n=+%{tx.n},setvar:'tx.copy=%{tx.n}',setvar:'tx.%{tx.name}%{tx.n}=x'\"\n\
            SecRule REQUEST_METHOD \"@streq GET\" \"id:2,phase:1,pass,nolog,setvar:'tx.j_%{tx.name}=%{tx.copy}',\
              setvar:!tx.name,setvar:'tx.after=[%{tx.name}]'\"\n";
        let src = crate::RuleSource::Inline { text: text.into(), origin: "/t/s.conf".into(), line: 1 };
        let rs = Arc::new(RuleSet::compile(&[src]).unwrap());
        let mut tx = Transaction::new(rs, "t");
        tx.process_uri(b"/", b"GET", b"HTTP/1.1");
        tx.process_request_headers();
        let got = |k: &str| {
            tx.s.collections
                .get("TX")
                .and_then(|c| c.get(k.as_bytes()))
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        // Expanded keys are lower-cased, values keep their case; an existing value is overwritten.
        assert_eq!(got("k_hello").as_deref(), Some("w_HeLLo_2"));
        assert_eq!(got("j_hello").as_deref(), Some("10"));
        assert_eq!(got("n").as_deref(), Some("10"));
        assert_eq!(got("copy").as_deref(), Some("10"));
        assert_eq!(got("hello10").as_deref(), Some("x"));
        assert_eq!(got("name"), None);
        assert_eq!(got("after").as_deref(), Some("[]"));
    }

    #[test]
    fn a_log_line_names_the_operator_of_the_deepest_matching_link() {
        let text = "SecRuleEngine DetectionOnly\n\
            SecRule REQUEST_METHOD \"@streq GET\" \"id:9,phase:1,pass,nolog,setvar:tx.allowed=/a/ /b/\"\n\
            SecRule ARGS:x \"@rx ^(.*)$\" \"id:1,phase:2,pass,log,capture,chain\"\n\
              SecRule TX:1 \"@within %{tx.allowed}\" \"t:none\"\n\
            SecRule ARGS:y \"@rx b+\" \"id:2,phase:2,pass,log\"\n\
            SecAction \"id:3,phase:2,pass,log,msg:'always'\"\n";
        let src = crate::RuleSource::Inline { text: text.into(), origin: "/t/l.conf".into(), line: 1 };
        let rs = Arc::new(RuleSet::compile(&[src]).unwrap());
        let mut tx = Transaction::new(rs, "t");
        tx.process_uri(b"/?x=/a/&y=abbc", b"GET", b"HTTP/1.1");
        tx.process_request_headers();
        tx.process_request_body();
        let lines = tx.take_messages();
        let line = |id: &str| lines.iter().find(|l| l.contains(&format!("[id \"{id}\"]"))).cloned().unwrap_or_default();
        // The chain's second link, with its parameter as expanded.
        assert!(
            line("1").contains("Operator `Within' with parameter `/a/ /b/' against variable `TX:1' (Value: `/a/' )"),
            "{}",
            line("1")
        );
        assert!(
            line("2").contains("Operator `Rx' with parameter `b+' against variable `ARGS:y' (Value: `abbc' )"),
            "{}",
            line("2")
        );
        assert!(
            line("3").contains("Operator `Unconditional' with parameter `' against variable `' (Value: `' )"),
            "{}",
            line("3")
        );
    }

    #[test]
    fn headers_that_may_carry_secrets_are_private() {
        let private = ["Cookie", "Authorization", "Proxy-Authorization", "X-Api-Key", "X-Auth-Token", "X-Session-Id"];
        for name in private {
            assert!(private_header(name.as_bytes()), "{name}");
        }
        for name in ["Host", "User-Agent", "Accept", "Accept-Language", "Referer", "Content-Type", "kbn-xsrf"] {
            assert!(!private_header(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn uri_helpers() {
        let mut out = b"kept ".to_vec();
        percent_decode_into(b"/a%20b%zz%4", &mut out);
        assert_eq!(out, b"kept /a b%zz%4");
        assert_eq!(strip_scheme_host(b"http://h:80/p?q"), b"/p?q");
        assert_eq!(strip_scheme_host(b"/p"), b"/p");
    }
}
