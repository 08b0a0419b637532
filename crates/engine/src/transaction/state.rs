//! Request data as variables see it: the per-transaction [`State`] and the resolution
//! of a variable (with its selector, exclusions and counting) to values.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::body;
use crate::collections::{TxTable, Vars, VarsMut};
use crate::macros::MacroResolver;
use crate::rule::Rule;
use crate::variables::{KeyRegex, Selector, Target, Var};

use super::setup::TxSelections;

/// Entries of a collection that a selector picked.
type Selected<'a> = smallvec::SmallVec<[(&'a Vec<u8>, &'a Vec<u8>); 8]>;

/// Keyed values of one collection, in arrival order.
pub(super) type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Names and values read by [`State::repeated_contents`]: enough to tell, not a cost that
/// grows with a large body.
pub(super) const REPEATS_SAMPLE: usize = 512;

/// Which stored list a slot refers to (for the transformation cache).
#[derive(Clone, Copy)]
pub(super) enum Slot {
    None,
    Stable(u64),
}

/// Values of a target (most give a few: kept on the stack).
pub(super) type Values<'a> = smallvec::SmallVec<[Value<'a>; 8]>;

/// Decimal text of `n`, borrowed for the small numbers that most counts (`&TX:x`,
/// `&REQUEST_HEADERS`) give: each was a `malloc` and a `free` per evaluation.
fn number_text(n: usize) -> Cow<'static, [u8]> {
    static SMALL: once_cell::sync::Lazy<Vec<Box<[u8]>>> =
        once_cell::sync::Lazy::new(|| (0..256usize).map(|n| n.to_string().into_bytes().into_boxed_slice()).collect());
    match SMALL.get(n) {
        Some(t) => Cow::Borrowed(t),
        None => Cow::Owned(n.to_string().into_bytes()),
    }
}

/// One value produced for a target.
pub(super) struct Value<'a> {
    pub(super) var: Var,
    pub(super) key: Cow<'a, [u8]>,
    pub(super) value: Cow<'a, [u8]>,
    pub(super) slot: Slot,
}

impl Value<'_> {
    /// Writes the name a match reports (`VAR` or `VAR:key`) into `out`, replacing its text.
    pub(super) fn write_name(&self, out: &mut String) {
        out.clear();
        out.push_str(self.var.name());
        if !self.key.is_empty() && self.var.is_collection() {
            out.push(':');
            // Keys are nearly always UTF-8: checked in one pass, no lossy decoding.
            match std::str::from_utf8(&self.key) {
                Ok(k) => out.push_str(k),
                Err(_) => out.push_str(&String::from_utf8_lossy(&self.key)),
            }
        }
    }
}

/// Match buffers kept from one transaction to the next (names and values of matches).
pub(super) const SPARE_MATCHES: usize = 64;
/// The largest such buffer kept.
pub(super) const SPARE_MATCH_BYTES: usize = 1024;

/// MATCHED_VARS of the current rule: (name, value) pairs. Entries past `len` are spare
/// buffers from earlier rules, so a match costs no allocation once a transaction warmed up.
#[derive(Debug, Default)]
pub(super) struct MatchedVars {
    items: Vec<(String, Vec<u8>)>,
    len: usize,
}

impl MatchedVars {
    pub(super) fn clear(&mut self) {
        self.len = 0;
    }

    /// Replays what rules decided at load did to it.
    pub(super) fn apply(&mut self, e: &super::setup::MatchedEffect) {
        if e.clear {
            self.clear();
        }
        for (n, v) in &e.push {
            self.push_copy(n, v);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn as_slice(&self) -> &[(String, Vec<u8>)] {
        &self.items[..self.len]
    }

    pub(super) fn last(&self) -> Option<&(String, Vec<u8>)> {
        self.as_slice().last()
    }

    /// Appends a copy of a match, into a spare pair's buffers when there is one.
    pub(super) fn push_copy(&mut self, name: &str, value: &[u8]) {
        if self.len == self.items.len() {
            self.items.push((name.to_string(), value.to_vec()));
        } else {
            let slot = &mut self.items[self.len];
            slot.0.clear();
            slot.0.push_str(name);
            slot.1.clear();
            slot.1.extend_from_slice(value);
        }
        self.len += 1;
    }

    /// Empties it for a later transaction, keeping a few small buffers.
    pub(super) fn recycle(&mut self) {
        self.len = 0;
        self.items.truncate(SPARE_MATCHES);
        for (n, v) in &mut self.items {
            if n.capacity() > SPARE_MATCH_BYTES {
                *n = String::new();
            }
            if v.capacity() > SPARE_MATCH_BYTES {
                *v = Vec::new();
            }
        }
    }

    /// Appends a match by swapping buffers with `name` and `value` (which get a spare pair).
    pub(super) fn push_swap(&mut self, name: &mut String, value: &mut Vec<u8>) {
        if self.len == self.items.len() {
            self.items.push((std::mem::take(name), std::mem::take(value)));
        } else {
            let slot = &mut self.items[self.len];
            std::mem::swap(&mut slot.0, name);
            std::mem::swap(&mut slot.1, value);
        }
        self.len += 1;
    }
}

/// Request and response data plus collections: everything variables read.
#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) unique_id: String,
    pub(super) client_ip: Vec<u8>,
    pub(super) client_port: u16,
    pub(super) server_ip: Vec<u8>,
    pub(super) server_port: u16,
    pub(super) server_name: Vec<u8>,
    pub(super) method: Vec<u8>,
    pub(super) protocol: Vec<u8>,
    pub(super) request_line: Vec<u8>,
    pub(super) uri_raw: Vec<u8>,
    pub(super) uri: Vec<u8>,
    pub(super) filename: Vec<u8>,
    pub(super) basename: Vec<u8>,
    pub(super) query: Vec<u8>,
    pub(super) args_get: Pairs,
    pub(super) args_post: Pairs,
    /// Arguments from JSON bodies: in ARGS, not ARGS_POST (as ModSecurity v3).
    pub(super) args_json: Pairs,
    pub(super) headers: Pairs,
    pub(super) cookies: Pairs,
    pub(super) body: Vec<u8>,
    /// REQUEST_BODY reads as empty (ModSecurity v2 when no processor filled it).
    pub(super) body_hidden: bool,
    pub(super) body_len: usize,
    /// REQBODY_PROCESSOR: from Content-Type as headers arrive, then `ctl`, as in v3.
    pub(super) reqbody_processor: Vec<u8>,
    pub(super) files: Pairs,
    pub(super) files_sizes: Pairs,
    pub(super) files_combined: usize,
    pub(super) multipart_names: Pairs,
    pub(super) multipart_filenames: Pairs,
    pub(super) multipart_part_headers: Pairs,
    pub(super) flags: Vec<(Var, Vec<u8>)>,
    pub(super) xml: Option<body::xml::XmlDoc>,
    pub(super) resp_status: u16,
    pub(super) resp_protocol: Vec<u8>,
    pub(super) resp_headers: Pairs,
    pub(super) resp_body: Vec<u8>,
    pub(super) collections: Collections,
    pub(super) env: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The current rule's matches so far (MATCHED_VARS); the last is MATCHED_VAR.
    pub(super) matched_vars: MatchedVars,
    pub(super) highest_severity: Option<u8>,
    pub(super) start: Option<Instant>,
    /// The rule set's `TX:/regex/` selections of its setup TX, once TX started from it.
    pub(super) tx_selections: Option<Arc<TxSelections>>,
}

/// TX and the collections `initcol` loaded, by upper-case name. TX is a field of its own:
/// every setvar and `%{tx.…}` reaches it, and a map lookup by name compared strings each
/// time. TX's table goes back to a per-thread spare list when the transaction ends (see
/// collections::spare_tx).
#[derive(Debug, Default)]
pub(super) struct Collections {
    tx: TxTable,
    others: BTreeMap<String, Vars>,
}

impl Collections {
    pub(super) fn get(&self, name: &str) -> Option<&Vars> {
        if name == "TX" {
            Some(&*self.tx)
        } else {
            self.others.get(name)
        }
    }

    /// A collection to change, created empty when missing.
    pub(super) fn get_mut(&mut self, name: &str) -> VarsMut<'_> {
        if name == "TX" {
            return VarsMut::Tx(&mut self.tx);
        }
        // IP, GLOBAL…: rare enough that the name's copy does not matter.
        VarsMut::Other(self.others.entry(name.to_string()).or_default())
    }

    /// TX, which always exists.
    pub(super) fn tx_mut(&mut self) -> &mut TxTable {
        &mut self.tx
    }

    /// Sets a collection's table (`initcol`).
    pub(super) fn insert(&mut self, name: String, vars: Vars) {
        if name == "TX" {
            self.tx = TxTable::from_vars(vars);
        } else {
            self.others.insert(name, vars);
        }
    }
}

impl Drop for Collections {
    fn drop(&mut self) {
        crate::collections::recycle_tx(std::mem::take(&mut self.tx));
    }
}

/// The variables [`State::known_empty`] can say are empty, as one bit each of a mask
/// ([`State::empty_mask`]); None for the others.
pub(crate) fn empty_bit(var: Var) -> Option<u16> {
    let bit = match var {
        Var::Args | Var::ArgsNames => 0,
        Var::ArgsGet | Var::ArgsGetNames => 1,
        Var::ArgsPost | Var::ArgsPostNames => 2,
        Var::RequestCookies | Var::RequestCookiesNames => 3,
        Var::Files | Var::FilesNames => 4,
        Var::FilesSizes => 5,
        Var::MultipartFilename => 6,
        Var::MultipartName => 7,
        Var::MultipartPartHeaders => 8,
        Var::Xml => 9,
        _ => return None,
    };
    Some(1 << bit)
}

/// Whether [`State::lacks`] knows if one key of `var` is absent: the header collections,
/// whose keyed targets (`REQUEST_HEADERS:Content-Length`) many ungated rules read, and TX.
pub(crate) fn absence_known(var: Var) -> bool {
    matches!(var, Var::RequestHeaders | Var::ResponseHeaders | Var::Tx)
}

/// Whether a gated link's target reads its values through a per-phase union of gate bits:
/// a variable (not a count) whose values all have stable slots; over one key's values for
/// a keyed target (`REQUEST_HEADERS:User-Agent`), else over all of them.
pub(crate) fn has_union(t: &Target) -> bool {
    !t.count && State::stable_var(t.var)
}

/// The rule currently evaluating, for `%{RULE.*}` macros.
pub(super) struct RuleCtx<'a> {
    pub(super) state: &'a State,
    pub(super) rule: Option<&'a Rule>,
}

/// Request-data slots: the collection in the high bits, the index below.
fn slot(coll: u64, idx: usize, name: bool) -> Slot {
    Slot::Stable(stable_slot(coll, idx, name))
}

pub(super) const fn stable_slot(coll: u64, idx: usize, name: bool) -> u64 {
    (coll << 40) | ((idx as u64) << 1) | name as u64
}

/// The index within its collection of a [`stable_slot`].
const fn slot_index(slot: u64) -> usize {
    ((slot >> 1) & ((1 << 39) - 1)) as usize
}

/// The collections of slots (their high bits).
pub(super) mod coll {
    pub const ARGS_GET: u64 = 1;
    pub const ARGS_POST: u64 = 2;
    pub const HEADERS: u64 = 3;
    pub const COOKIES: u64 = 4;
    pub const FILES: u64 = 5;
    pub const FILES_SIZES: u64 = 6;
    pub const MULTIPART_FILENAMES: u64 = 7;
    pub const MULTIPART_NAMES: u64 = 8;
    pub const MULTIPART_PART_HEADERS: u64 = 9;
    pub const RESP_HEADERS: u64 = 10;
    pub const ARGS_JSON: u64 = 11;
    pub const URI: u64 = 20;
    pub const URI_RAW: u64 = 21;
    pub const REQUEST_LINE: u64 = 22;
    pub const METHOD: u64 = 23;
    pub const PROTOCOL: u64 = 24;
    pub const FILENAME: u64 = 25;
    pub const BASENAME: u64 = 26;
    pub const QUERY: u64 = 27;
    pub const BODY: u64 = 28;
    pub const RESP_BODY: u64 = 29;
}

/// Scan domains: a slot's collection, names apart from values. The prefilter's combined
/// scan of a raw value uses only the literals of rules that read its domain.
pub(crate) const DOMAINS: usize = 64;

const fn domain(coll: u64, name: bool) -> usize {
    coll as usize * 2 + name as usize
}

/// The scan domain of a stable slot (below [`DOMAINS`]).
pub(crate) fn slot_domain(slot: u64) -> usize {
    domain(slot >> 40, slot & 1 == 1)
}

/// Whether the results for the value in `slot` (content `raw`) may be kept across
/// transactions (cache.rs `Kept`): request header names and values, but not the values of
/// the headers in `private` (cookies, credentials, keys, tokens); the names of query and form arguments
/// and of cookies; the method, protocol and path; the URI and request line only without a
/// query string.
pub(super) fn slot_keepable(slot: u64, raw: &[u8], private: &[u32]) -> bool {
    match slot >> 40 {
        coll::HEADERS => slot & 1 == 1 || !private.contains(&(slot_index(slot) as u32)),
        // Names of query and form arguments and of cookies (chosen by the application, not
        // typed by the user; JSON keys can be data).
        coll::ARGS_GET | coll::ARGS_POST | coll::COOKIES => slot & 1 == 1,
        coll::METHOD | coll::PROTOCOL | coll::FILENAME | coll::BASENAME => true,
        coll::URI | coll::URI_RAW | coll::REQUEST_LINE => !raw.contains(&b'?'),
        _ => false,
    }
}

/// The scan domains whose slots `var` yields (none for variables without stable slots).
/// Read off [`State::values`] once, on a state with every collection filled, so that it
/// cannot disagree with where values actually come from.
pub(crate) fn var_domains(var: Var) -> &'static [usize] {
    static TABLE: once_cell::sync::Lazy<Vec<Vec<usize>>> = once_cell::sync::Lazy::new(|| {
        let s = State::filled(1);
        let mut table = vec![Vec::new(); crate::variables::NAMES.iter().map(|(_, v)| *v as usize + 1).max().unwrap_or(0)];
        for (_, var) in crate::variables::NAMES {
            let mut out = Values::new();
            s.values(*var, &Selector::All, None, &mut out);
            let d = &mut table[*var as usize];
            d.extend(out.iter().filter_map(|v| match v.slot {
                Slot::Stable(slot) => Some(slot_domain(slot)),
                Slot::None => None,
            }));
            d.sort_unstable();
            d.dedup();
        }
        table
    });
    TABLE.get(var as usize).map_or(&[], Vec::as_slice)
}

impl State {
    /// A state with `n` pairs in every keyed collection and a body: every variable with
    /// stable slots yields values from it.
    fn filled(n: usize) -> State {
        let pairs = || (0..n).map(|i| (format!("k{i}").into_bytes(), format!("v{i}").into_bytes())).collect::<Pairs>();
        State {
            args_get: pairs(),
            args_post: pairs(),
            args_json: pairs(),
            headers: pairs(),
            cookies: pairs(),
            files: pairs(),
            files_sizes: pairs(),
            multipart_filenames: pairs(),
            multipart_names: pairs(),
            multipart_part_headers: pairs(),
            resp_headers: pairs(),
            body: b"a=b".to_vec(),
            ..State::default()
        }
    }

    /// Appends the values of one target to `out`.
    pub(super) fn collect<'a>(&'a self, t: &'a Target, rule: Option<&'a Rule>, out: &mut Values<'a>) {
        let start = out.len();
        self.values(t.var, &t.selector, rule, out);
        if !t.exclusions.is_empty() {
            let mut i = start;
            while i < out.len() {
                if t.exclusions.iter().any(|e| e.matches(&out[i].key)) {
                    out.remove(i);
                } else {
                    i += 1;
                }
            }
        }
        if t.count {
            let n = out.len() - start;
            out.truncate(start);
            out.push(Value { var: t.var, key: Cow::Borrowed(&[]), value: number_text(n), slot: Slot::None });
        }
    }

    /// Whether `var:key` (`key` lower-cased) gives no value now, as [`State::values`]
    /// selects it; false for a variable not [`absence_known`].
    pub(super) fn lacks(&self, var: Var, key: &[u8]) -> bool {
        let pairs = match var {
            Var::RequestHeaders => &self.headers,
            Var::ResponseHeaders => &self.resp_headers,
            Var::Tx => return self.collections.get(var.name()).is_none_or(|c| c.get(key).is_none()),
            _ => return false,
        };
        !pairs.iter().any(|(k, _)| k.eq_ignore_ascii_case(key))
    }

    /// The TX entries `re` selects, from the keys it selects of the setup TX (found at
    /// load) and the keys this transaction changed; None unless TX is still the setup's
    /// but for those keys.
    fn tx_selected(&self, re: &Arc<KeyRegex>) -> Option<Selected<'_>> {
        let sel = self.tx_selections.as_ref()?;
        let changed = self.collections.tx.changed_since(sel.origin)?;
        let setup_keys = sel.by_regex.get(&(Arc::as_ptr(re) as usize))?;
        let tx = &*self.collections.tx;
        let mut found: Selected<'_> = setup_keys
            .iter()
            .chain(changed.iter().filter(|k| re.is_match(k)))
            .filter_map(|k| tx.get_key_value(k.as_slice()))
            .collect();
        // A key changed more than once, or a setup key changed, is named twice.
        found.sort_unstable_by(|a, b| a.0.cmp(b.0));
        found.dedup_by(|a, b| a.0 == b.0);
        Some(found)
    }

    /// How many of the first [`REPEATS_SAMPLE`] argument and cookie names and values have
    /// the content of an earlier one, told by a hash (of a long one's length and ends: a
    /// false repeat only turns the sharing of contents on), and how many were read.
    pub(super) fn repeated_contents(&self) -> (usize, usize) {
        use std::hash::Hasher;
        let mut hashes = [0u64; REPEATS_SAMPLE];
        let pairs = self.args_get.iter().chain(&self.args_post).chain(&self.args_json).chain(&self.cookies);
        let mut n = 0;
        for b in pairs.flat_map(|(k, v)| [k, v]).take(REPEATS_SAMPLE) {
            let mut h = rustc_hash::FxHasher::default();
            h.write_usize(b.len());
            if b.len() <= 64 {
                h.write(b);
            } else {
                h.write(&b[..32]);
                h.write(&b[b.len() - 32..]);
            }
            hashes[n] = h.finish();
            n += 1;
        }
        let hashes = &mut hashes[..n];
        hashes.sort_unstable();
        (hashes.windows(2).filter(|w| w[0] == w[1]).count(), n)
    }

    pub(super) fn tx_is_empty(&self) -> bool {
        self.collections.get("TX").is_none_or(|tx| tx.is_empty())
    }

    /// Variables whose values all live in stable slots, whatever the selector picks: the
    /// values for `Selector::All` are a superset of any selection.
    pub(super) fn stable_var(var: Var) -> bool {
        matches!(
            var,
            Var::Args
                | Var::ArgsGet
                | Var::ArgsPost
                | Var::ArgsNames
                | Var::ArgsGetNames
                | Var::ArgsPostNames
                | Var::RequestHeaders
                | Var::RequestHeadersNames
                | Var::RequestCookies
                | Var::RequestCookiesNames
                | Var::Files
                | Var::FilesNames
                | Var::FilesSizes
                | Var::MultipartFilename
                | Var::MultipartName
                | Var::MultipartPartHeaders
                | Var::ResponseHeaders
                | Var::ResponseHeadersNames
                | Var::RequestUri
                | Var::RequestUriRaw
                | Var::RequestLine
                | Var::RequestMethod
                | Var::RequestProtocol
                | Var::RequestFilename
                | Var::PathInfo
                | Var::RequestBasename
                | Var::QueryString
                | Var::RequestBody
                | Var::ResponseBody
        )
    }

    /// Whether `var` is a request collection with no value at all (so no rule can match on it).
    /// The bits ([`empty_bit`]) of the variables that are empty now.
    pub(super) fn empty_mask(&self) -> u16 {
        [
            Var::Args,
            Var::ArgsGet,
            Var::ArgsPost,
            Var::RequestCookies,
            Var::Files,
            Var::FilesSizes,
            Var::MultipartFilename,
            Var::MultipartName,
            Var::MultipartPartHeaders,
            Var::Xml,
        ]
        .into_iter()
        .filter(|&v| self.known_empty(v))
        .fold(0, |m, v| m | empty_bit(v).unwrap_or(0))
    }

    /// The value in stable `slot`, as [`State::values`] yields it (None for a slot that
    /// holds nothing now).
    pub(super) fn slot_value(&self, slot: u64) -> Option<&[u8]> {
        let (idx, name) = (slot_index(slot), slot & 1 == 1);
        let pairs = match slot >> 40 {
            coll::ARGS_GET => &self.args_get,
            coll::ARGS_POST => &self.args_post,
            coll::HEADERS => &self.headers,
            coll::COOKIES => &self.cookies,
            coll::FILES => &self.files,
            coll::FILES_SIZES => &self.files_sizes,
            coll::MULTIPART_FILENAMES => &self.multipart_filenames,
            coll::MULTIPART_NAMES => &self.multipart_names,
            coll::MULTIPART_PART_HEADERS => &self.multipart_part_headers,
            coll::RESP_HEADERS => &self.resp_headers,
            coll::ARGS_JSON => &self.args_json,
            scalar => {
                let v: &[u8] = match scalar {
                    coll::URI => &self.uri,
                    coll::URI_RAW => &self.uri_raw,
                    coll::REQUEST_LINE => &self.request_line,
                    coll::METHOD => &self.method,
                    coll::PROTOCOL => &self.protocol,
                    coll::FILENAME => &self.filename,
                    coll::BASENAME => &self.basename,
                    coll::QUERY => &self.query,
                    coll::BODY if self.body_hidden => b"",
                    coll::BODY => &self.body,
                    coll::RESP_BODY => &self.resp_body,
                    _ => return None,
                };
                return (idx == 0 && !name).then_some(v);
            }
        };
        pairs.get(idx).map(|(k, v)| if name { k.as_slice() } else { v.as_slice() })
    }

    pub(super) fn known_empty(&self, var: Var) -> bool {
        match var {
            Var::Args | Var::ArgsNames => {
                self.args_get.is_empty() && self.args_post.is_empty() && self.args_json.is_empty()
            }
            Var::ArgsGet | Var::ArgsGetNames => self.args_get.is_empty(),
            Var::ArgsPost | Var::ArgsPostNames => self.args_post.is_empty(),
            Var::RequestCookies | Var::RequestCookiesNames => self.cookies.is_empty(),
            Var::Files | Var::FilesNames => self.files.is_empty(),
            Var::FilesSizes => self.files_sizes.is_empty(),
            Var::MultipartFilename => self.multipart_filenames.is_empty(),
            Var::MultipartName => self.multipart_names.is_empty(),
            Var::MultipartPartHeaders => self.multipart_part_headers.is_empty(),
            Var::Xml => self.xml.is_none(),
            _ => false,
        }
    }

    pub(super) fn values<'a>(&'a self, var: Var, sel: &'a Selector, rule: Option<&'a Rule>, out: &mut Values<'a>) {
        let scalar = |out: &mut Values<'a>, v: Cow<'a, [u8]>, slot: Slot| {
            out.push(Value { var, key: Cow::Borrowed(&[]), value: v, slot });
        };
        let pairs = |out: &mut Values<'a>, list: &'a Pairs, coll: u64, names: bool| {
            // One allocation for a large collection rather than doubling up to it.
            if matches!(sel, Selector::All) {
                out.reserve(list.len());
            }
            for (i, (k, v)) in list.iter().enumerate() {
                if sel.matches(k) {
                    let value = if names { k } else { v };
                    out.push(Value {
                        var,
                        key: Cow::Borrowed(k),
                        value: Cow::Borrowed(value),
                        slot: slot(coll, i, names),
                    });
                }
            }
        };
        let b = |v: &'a [u8]| Cow::Borrowed(v);
        let num = number_text;
        match var {
            Var::Args => {
                pairs(out, &self.args_get, coll::ARGS_GET, false);
                pairs(out, &self.args_post, coll::ARGS_POST, false);
                pairs(out, &self.args_json, coll::ARGS_JSON, false);
            }
            Var::ArgsGet => pairs(out, &self.args_get, coll::ARGS_GET, false),
            Var::ArgsPost => pairs(out, &self.args_post, coll::ARGS_POST, false),
            Var::ArgsNames => {
                pairs(out, &self.args_get, coll::ARGS_GET, true);
                pairs(out, &self.args_post, coll::ARGS_POST, true);
                pairs(out, &self.args_json, coll::ARGS_JSON, true);
            }
            Var::ArgsGetNames => pairs(out, &self.args_get, coll::ARGS_GET, true),
            Var::ArgsPostNames => pairs(out, &self.args_post, coll::ARGS_POST, true),
            Var::ArgsCombinedSize => {
                let n: usize = self
                    .args_get
                    .iter()
                    .chain(&self.args_post)
                    .chain(&self.args_json)
                    .map(|(k, v)| k.len() + v.len())
                    .sum();
                scalar(out, num(n), Slot::None)
            }
            Var::RequestHeaders => pairs(out, &self.headers, coll::HEADERS, false),
            Var::RequestHeadersNames => pairs(out, &self.headers, coll::HEADERS, true),
            Var::RequestCookies => pairs(out, &self.cookies, coll::COOKIES, false),
            Var::RequestCookiesNames => pairs(out, &self.cookies, coll::COOKIES, true),
            Var::Files => pairs(out, &self.files, coll::FILES, false),
            Var::FilesNames => pairs(out, &self.files, coll::FILES, true),
            Var::FilesSizes => pairs(out, &self.files_sizes, coll::FILES_SIZES, false),
            Var::MultipartFilename => pairs(out, &self.multipart_filenames, coll::MULTIPART_FILENAMES, false),
            Var::MultipartName => pairs(out, &self.multipart_names, coll::MULTIPART_NAMES, false),
            Var::MultipartPartHeaders => pairs(out, &self.multipart_part_headers, coll::MULTIPART_PART_HEADERS, false),
            Var::ResponseHeaders => pairs(out, &self.resp_headers, coll::RESP_HEADERS, false),
            Var::ResponseHeadersNames => pairs(out, &self.resp_headers, coll::RESP_HEADERS, true),
            Var::FilesCombinedSize => scalar(out, num(self.files_combined), Slot::None),
            Var::RequestUri => scalar(out, b(&self.uri), slot(coll::URI, 0, false)),
            Var::RequestUriRaw => scalar(out, b(&self.uri_raw), slot(coll::URI_RAW, 0, false)),
            Var::RequestLine => scalar(out, b(&self.request_line), slot(coll::REQUEST_LINE, 0, false)),
            Var::RequestMethod => scalar(out, b(&self.method), slot(coll::METHOD, 0, false)),
            Var::RequestProtocol => scalar(out, b(&self.protocol), slot(coll::PROTOCOL, 0, false)),
            Var::RequestFilename | Var::PathInfo => scalar(out, b(&self.filename), slot(coll::FILENAME, 0, false)),
            Var::RequestBasename => scalar(out, b(&self.basename), slot(coll::BASENAME, 0, false)),
            Var::QueryString => scalar(out, b(&self.query), slot(coll::QUERY, 0, false)),
            Var::RequestBody => {
                let body: &[u8] = if self.body_hidden { b"" } else { &self.body };
                scalar(out, b(body), slot(coll::BODY, 0, false))
            }
            Var::ReqbodyProcessor => scalar(out, b(&self.reqbody_processor), Slot::None),
            Var::RequestBodyLength => scalar(out, num(self.body.len()), Slot::None),
            Var::FullRequest => {
                let mut f = self.request_line.clone();
                f.extend_from_slice(b"\n");
                for (k, v) in &self.headers {
                    f.extend_from_slice(k);
                    f.extend_from_slice(b": ");
                    f.extend_from_slice(v);
                    f.push(b'\n');
                }
                f.push(b'\n');
                f.extend_from_slice(&self.body);
                scalar(out, Cow::Owned(f), Slot::None)
            }
            Var::FullRequestLength => {
                let n = self.request_line.len()
                    + 1
                    + self.headers.iter().map(|(k, v)| k.len() + v.len() + 3).sum::<usize>()
                    + 1
                    + self.body.len();
                scalar(out, num(n), Slot::None)
            }
            Var::ResponseStatus => {
                if self.resp_status != 0 {
                    scalar(out, num(self.resp_status as usize), Slot::None)
                }
            }
            Var::ResponseProtocol => scalar(out, b(&self.resp_protocol), Slot::None),
            Var::StatusLine => {
                if self.resp_status != 0 {
                    let mut l = self.resp_protocol.clone();
                    l.extend_from_slice(format!(" {}", self.resp_status).as_bytes());
                    scalar(out, Cow::Owned(l), Slot::None)
                }
            }
            Var::ResponseBody => scalar(out, b(&self.resp_body), slot(coll::RESP_BODY, 0, false)),
            Var::ResponseContentType => {
                if let Some((_, v)) = self.resp_headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(b"content-type")) {
                    scalar(out, b(v), Slot::None)
                }
            }
            Var::ResponseContentLength => {
                if let Some((_, v)) = self.resp_headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(b"content-length"))
                {
                    scalar(out, b(v), Slot::None)
                }
            }
            Var::Tx | Var::Ip | Var::Global | Var::Session | Var::User | Var::Resource => {
                if let Some(c) = self.collections.get(var.name()) {
                    match sel {
                        Selector::Key(k) => {
                            if let Some(v) = c.get(k) {
                                out.push(Value {
                                    var,
                                    key: Cow::Borrowed(k.as_slice()),
                                    value: b(v),
                                    slot: Slot::None,
                                });
                            }
                        }
                        _ => {
                            let selected = match sel {
                                Selector::Regex(re) if var == Var::Tx => self.tx_selected(re),
                                _ => None,
                            };
                            // In name order (`tx_selected` sorts its own), as before the map was hashed.
                            let found = selected.unwrap_or_else(|| {
                                let mut all: Selected<'_> = c.iter().filter(|(k, _)| sel.matches(k)).collect();
                                all.sort_unstable_by(|a, b| a.0.cmp(b.0));
                                all
                            });
                            for (k, v) in found {
                                out.push(Value { var, key: b(k), value: b(v), slot: Slot::None });
                            }
                        }
                    }
                }
            }
            Var::Env => {
                for (k, v) in &self.env {
                    if sel.matches(k) {
                        out.push(Value { var, key: b(k), value: b(v), slot: Slot::None });
                    }
                }
            }
            Var::Rule => {
                if let Some(r) = rule {
                    let fields: [(&[u8], Cow<'a, [u8]>); 5] = [
                        (b"id", num(r.id as usize)),
                        (b"phase", num(r.phase as usize)),
                        (b"rev", b(r.actions.rev.as_deref().unwrap_or("").as_bytes())),
                        (b"ver", b(r.actions.ver.as_deref().unwrap_or("").as_bytes())),
                        (b"severity", r.actions.severity.map_or(Cow::Borrowed(&b""[..]), |s| num(s as usize))),
                    ];
                    for (k, v) in fields {
                        if sel.matches(k) {
                            out.push(Value { var, key: b(k), value: v, slot: Slot::None });
                        }
                    }
                    let ctx = RuleCtx { state: self, rule: Some(r) };
                    for (k, m) in [(&b"msg"[..], &r.actions.msg), (b"logdata", &r.actions.logdata)] {
                        if sel.matches(k) {
                            if let Some(m) = m {
                                out.push(Value {
                                    var,
                                    key: b(k),
                                    value: Cow::Owned(m.expand(&ctx).into_owned()),
                                    slot: Slot::None,
                                });
                            }
                        }
                    }
                }
            }
            Var::Xml => {
                if let (Some(doc), Selector::Key(path)) = (&self.xml, sel) {
                    if let Ok(xp) = body::xml::XPath::compile(path) {
                        for v in xp.eval(doc, &[]) {
                            out.push(Value {
                                var,
                                key: Cow::Borrowed(path.as_slice()),
                                value: Cow::Owned(v),
                                slot: Slot::None,
                            });
                        }
                    }
                }
            }
            Var::RemoteAddr | Var::UserAgentIp => scalar(out, b(&self.client_ip), Slot::None),
            Var::RemoteHost => scalar(out, b(&self.client_ip), Slot::None),
            Var::RemotePort => scalar(out, num(self.client_port as usize), Slot::None),
            Var::ServerAddr => scalar(out, b(&self.server_ip), Slot::None),
            Var::ServerName => scalar(out, b(&self.server_name), Slot::None),
            Var::ServerPort => scalar(out, num(self.server_port as usize), Slot::None),
            Var::UniqueId => scalar(out, b(self.unique_id.as_bytes()), Slot::None),
            Var::Duration => {
                let us = self.start.map(|s| s.elapsed().as_micros() as usize).unwrap_or(0);
                scalar(out, num(us), Slot::None)
            }
            Var::TimeEpoch
            | Var::Time
            | Var::TimeYear
            | Var::TimeMon
            | Var::TimeDay
            | Var::TimeHour
            | Var::TimeMin
            | Var::TimeSec
            | Var::TimeWday => {
                let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
                scalar(out, Cow::Owned(time_field(var, secs).into_bytes()), Slot::None)
            }
            Var::MatchedVar => {
                if let Some((_, v)) = self.matched_vars.last() {
                    scalar(out, b(v), Slot::None)
                }
            }
            Var::MatchedVarName => {
                if let Some((n, _)) = self.matched_vars.last() {
                    scalar(out, b(n.as_bytes()), Slot::None)
                }
            }
            Var::MatchedVars | Var::MatchedVarsNames => {
                for (n, v) in self.matched_vars.as_slice() {
                    if sel.matches(n.as_bytes()) {
                        let value = if var == Var::MatchedVars { b(v) } else { b(n.as_bytes()) };
                        out.push(Value { var, key: b(n.as_bytes()), value, slot: Slot::None });
                    }
                }
            }
            Var::HighestSeverity => scalar(out, num(self.highest_severity.map_or(255, usize::from)), Slot::None),
            Var::WebAppId => scalar(out, b(b"default"), Slot::None),
            Var::ModsecBuild => scalar(out, b(b"030009"), Slot::None),
            _ => {
                // Flags set by body processing (multipart, reqbody, urlencoded errors).
                let mut found = false;
                for (v, val) in self.flags.iter().rev() {
                    if *v == var {
                        scalar(out, b(val), Slot::None);
                        found = true;
                        break;
                    }
                }
                if !found && flag_defaults_to_zero(var) {
                    scalar(out, b(b"0"), Slot::None);
                }
            }
        }
    }
}

/// Flag variables that read as 0 until set (so `@eq 0` and `!@eq 0` behave as in ModSecurity).
fn flag_defaults_to_zero(v: Var) -> bool {
    matches!(
        v,
        Var::ReqbodyError
            | Var::ReqbodyProcessorError
            | Var::UrlencodedError
            | Var::InboundDataError
            | Var::OutboundDataError
            | Var::MscPcreLimitsExceeded
    )
}

fn time_field(var: Var, secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm), UTC.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    let wday = (days + 4) % 7;
    match var {
        Var::TimeEpoch => secs.to_string(),
        Var::TimeYear => y.to_string(),
        Var::TimeMon => format!("{:02}", mo),
        Var::TimeDay => format!("{:02}", d),
        Var::TimeHour => format!("{:02}", h),
        Var::TimeMin => format!("{:02}", m),
        Var::TimeSec => format!("{:02}", s),
        Var::TimeWday => wday.to_string(),
        _ => format!("{:02}:{:02}:{:02}", h, m, s),
    }
}

impl MacroResolver for RuleCtx<'_> {
    fn resolve(&self, name: &str, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        self.resolve_known(Var::from_name(name), name, key)
    }

    fn resolve_known(&self, var: Option<Var>, _: &str, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let var = var?;
        // Fast path for `%{tx.key}` and friends: keys are stored lower-cased, as macros parse them.
        if matches!(var, Var::Tx | Var::Ip | Var::Global | Var::Session | Var::User | Var::Resource)
            && !key.is_empty()
            && key[0] != b'/'
        {
            return self.state.collections.get(var.name())?.get(key).map(|v| Cow::Borrowed(v.as_slice()));
        }
        let sel = match key {
            [] => Selector::All,
            [b'/', .., b'/'] if key.len() >= 2 => Selector::parse(Some(&String::from_utf8_lossy(key))).ok()?,
            _ => Selector::Key(key.to_ascii_lowercase()),
        };
        let mut out = Values::new();
        self.state.values(var, &sel, self.rule, &mut out);
        let first = out.drain(..).next().map(|v| Cow::Owned(v.value.into_owned()));
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_fields() {
        assert_eq!(time_field(Var::TimeYear, 1_700_000_000), "2023");
        assert_eq!(time_field(Var::TimeMon, 1_700_000_000), "11");
        assert_eq!(time_field(Var::TimeEpoch, 1_700_000_000), "1700000000");
    }

    /// `slot_value` finds every stable slot's value where `values` put it.
    #[test]
    fn slot_value_reads_what_values_yields() {
        let mut s = State::filled(3);
        s.uri = b"/u".to_vec();
        s.body = b"b=1".to_vec();
        s.resp_body = b"ok".to_vec();
        let mut seen = 0;
        for (name, var) in crate::variables::NAMES {
            let mut out = Values::new();
            s.values(*var, &Selector::All, None, &mut out);
            for v in out.iter() {
                if let Slot::Stable(slot) = v.slot {
                    assert_eq!(s.slot_value(slot), Some(v.value.as_ref()), "{name}");
                    seen += 1;
                }
            }
        }
        assert!(seen > 40, "{seen}");
        s.body_hidden = true;
        assert_eq!(s.slot_value(stable_slot(coll::BODY, 0, false)), Some(&b""[..]));
        assert_eq!(s.slot_value(stable_slot(coll::ARGS_GET, 99, false)), None);
    }

    /// Rules skip a target that is known empty without collecting it: that must only ever
    /// be said of a variable that yields nothing, whichever collections are empty.
    #[test]
    fn the_empty_mask_says_what_known_empty_says() {
        let clear: [fn(&mut State); 4] = [|_| {}, |s| s.args_get.clear(), |s| s.cookies.clear(), |s| s.files.clear()];
        for f in clear {
            let mut s = State::filled(2);
            f(&mut s);
            for st in [&s, &State::default()] {
                let mask = st.empty_mask();
                for (name, var) in crate::variables::NAMES {
                    match empty_bit(*var) {
                        Some(bit) => assert_eq!(mask & bit != 0, st.known_empty(*var), "{name}"),
                        None => assert!(!st.known_empty(*var), "{name} has no bit"),
                    }
                }
            }
        }
    }

    #[test]
    fn known_empty_variables_yield_nothing() {
        let clear: [fn(&mut State); 10] = [
            |_| {},
            |s| s.args_get.clear(),
            |s| s.args_post.clear(),
            |s| s.args_json.clear(),
            |s| s.cookies.clear(),
            |s| s.files.clear(),
            |s| s.files_sizes.clear(),
            |s| s.multipart_filenames.clear(),
            |s| s.multipart_names.clear(),
            |s| s.multipart_part_headers.clear(),
        ];
        for (k, f) in clear.iter().enumerate() {
            let mut s = State::filled(2);
            f(&mut s);
            for st in [&s, &State::default()] {
                for (name, var) in crate::variables::NAMES {
                    let mut out = Values::new();
                    st.values(*var, &Selector::All, None, &mut out);
                    assert!(!st.known_empty(*var) || out.is_empty(), "{name} said empty, yields {} (case {k})", out.len());
                }
            }
        }
        // Said of the empty collections (all but XML are filled here).
        let s = State::filled(2);
        let said = crate::variables::NAMES.iter().filter(|(_, v)| s.known_empty(*v)).count();
        assert_eq!(said, 1);
        let said = crate::variables::NAMES.iter().filter(|(_, v)| State::default().known_empty(*v)).count();
        assert_eq!(said, 15);
    }

    #[test]
    fn stable_vars_yield_only_stable_slots() {
        let s = State::filled(2);
        let names = [
            "ARGS",
            "ARGS_GET",
            "ARGS_POST",
            "ARGS_NAMES",
            "ARGS_GET_NAMES",
            "ARGS_POST_NAMES",
            "REQUEST_HEADERS",
            "REQUEST_HEADERS_NAMES",
            "REQUEST_COOKIES",
            "REQUEST_COOKIES_NAMES",
            "FILES",
            "FILES_NAMES",
            "FILES_SIZES",
            "MULTIPART_FILENAME",
            "MULTIPART_NAME",
            "MULTIPART_PART_HEADERS",
            "RESPONSE_HEADERS",
            "RESPONSE_HEADERS_NAMES",
            "REQUEST_URI",
            "REQUEST_URI_RAW",
            "REQUEST_LINE",
            "REQUEST_METHOD",
            "REQUEST_PROTOCOL",
            "REQUEST_FILENAME",
            "PATH_INFO",
            "REQUEST_BASENAME",
            "QUERY_STRING",
            "REQUEST_BODY",
            "RESPONSE_BODY",
        ];
        for n in names {
            let var = Var::from_name(n).unwrap();
            assert!(State::stable_var(var), "{n}");
            let mut out = Values::new();
            s.values(var, &Selector::All, None, &mut out);
            assert!(!out.is_empty(), "{n}");
            assert!(out.iter().all(|v| matches!(v.slot, Slot::Stable(_))), "{n}");
        }
        for n in ["TX", "XML", "RULE", "MATCHED_VARS", "ENV", "REMOTE_ADDR", "REQBODY_PROCESSOR", "FULL_REQUEST"] {
            assert!(!State::stable_var(Var::from_name(n).unwrap()), "{n}");
        }
    }

    #[test]
    fn every_stable_slot_lies_in_a_scan_domain_of_its_variable() {
        // A slot outside its variable's domains would be scanned without that rule's
        // literals: the rule would be skipped where it could match.
        // Not the state the table was read from: more pairs, other keys.
        let s = State::filled(3);
        let mut stable = 0;
        for (name, var) in crate::variables::NAMES {
            let mut out = Values::new();
            s.values(*var, &Selector::All, None, &mut out);
            for v in &out {
                if let Slot::Stable(slot) = v.slot {
                    stable += 1;
                    assert!(slot_domain(slot) < DOMAINS, "{name}");
                    assert!(var_domains(*var).contains(&slot_domain(slot)), "{name}: slot {slot:#x}");
                }
            }
            if State::stable_var(*var) {
                assert!(!var_domains(*var).is_empty(), "{name}");
            }
        }
        assert!(stable > 50, "{stable}");
    }
}
