//! PCRE-compatible regular expressions for `@rx`, `@rxGlobal` and the `@verify*` operators.
//!
//! ModSecurity v3 compiles every pattern with PCRE2, no UTF, `DOTALL | MULTILINE`
//! (src/utils/regex.cc). Ward compiles the same text with the `regex` crate in byte mode
//! (Unicode off, `(?s)`, `(?m)`), after rewriting the PCRE spellings that `regex` reads
//! differently or rejects but whose meaning is the same (a literal `{`, `\<`, `\h`, `\v`,
//! octal and control escapes, class members that `regex` would take as set operators,
//! non-ASCII literals as the bytes PCRE sees). Constructs `regex` cannot express
//! (lookaround, backreferences, atomic groups, possessive quantifiers, `\Z`, ...) make
//! the pattern fall back to PCRE2 itself (JIT, with a match limit).
//!
//! Limits: `SecPcreMatchLimit` and `SecPcreMatchLimitRecursion` bound the PCRE2 runs of
//! `@rx`/`@rxGlobal` ([`PcreLimits`], applied by [`Pattern::set_limits`]); a run that hits
//! one is no match and is reported to the caller, which sets MSC_PCRE_LIMITS_EXCEEDED
//! (ModSecurity v3, src/operators/rx.cc). Patterns on the `regex` crate have no such
//! limit and need none: it runs in time linear in the input, without backtracking.
//!
//! With MULTILINE, PCRE's `^` does not match after a newline that ends the subject,
//! `regex`'s does (`^0?$` matches "5\n" on `regex` only). `regex` has no way to say
//! "not at the end", so a pattern with a `^` anchor also keeps a PCRE2 copy that runs
//! the values ending in a newline.

use std::fmt::Write as _;

use regex_automata::{meta, Input};

use super::Captures;

/// Match limit of the PCRE2 fallback (`(*LIMIT_MATCH=...)`) when the rules set no
/// `SecPcreMatchLimit`: a failing match counts as "no match" like ModSecurity's
/// MATCH_LIMIT error, and bounds the time spent on one value. (ModSecurity v3 leaves
/// PCRE2's own default, 10,000,000, in place; Ward is stricter by default.)
pub const PCRE2_MATCH_LIMIT: u32 = 1_000_000;

/// PCRE2's error codes for a run stopped by the match or the depth limit.
const PCRE2_ERROR_MATCHLIMIT: i32 = -47;
const PCRE2_ERROR_DEPTHLIMIT: i32 = -53;

/// `SecPcreMatchLimit` / `SecPcreMatchLimitRecursion` (None, or 0 as in ModSecurity:
/// not set; the match limit is then [`PCRE2_MATCH_LIMIT`]). PCRE2 reads them as start-of-pattern settings, which can lower its built-in
/// limits (10,000,000 each in the usual builds) but never raise them. The depth limit
/// binds only PCRE2's interpreter: the JIT (used whenever the platform has it) ignores
/// depth and honours the match limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PcreLimits {
    pub match_limit: Option<u32>,
    pub depth_limit: Option<u32>,
}

impl PcreLimits {
    /// The start-of-pattern settings for these limits.
    fn prefix(self) -> String {
        let match_limit = self.match_limit.filter(|&n| n > 0).unwrap_or(PCRE2_MATCH_LIMIT);
        let mut p = format!("(*LIMIT_MATCH={match_limit})");
        if let Some(n) = self.depth_limit.filter(|&n| n > 0) {
            p.push_str(&format!("(*LIMIT_DEPTH={n})"));
        }
        p
    }
}

/// Generous compile budgets: CRS patterns are large alternations.
const REGEX_SIZE_LIMIT: usize = 256 << 20;
const REGEX_DFA_SIZE_LIMIT: usize = 64 << 20;

/// A compiled pattern on whichever engine can run it with PCRE's meaning.
#[derive(Debug)]
pub struct Pattern {
    engine: Engine,
    /// Prefilter literal sets of the translated pattern: every match holds a literal of
    /// each (none for PCRE2-only patterns).
    literals: Vec<Vec<Vec<u8>>>,
    /// PCRE2 copy of a `regex`-run pattern with a `^` anchor, for values ending in "\n".
    caret_twin: Option<pcre2::bytes::Regex>,
    /// The limits the PCRE2 parts were compiled with.
    limits: PcreLimits,
    /// For patterns that match every input whole (`^.*$`): how many captures a match gives.
    whole: Option<usize>,
    /// The shortest input the `regex` engine can match (from the HIR it is built from): a
    /// shorter one is refused without a search (selector regexes such as the CRS's
    /// `TX:/MULTIPART_HEADERS_CONTENT_TYPES_*/` are tried on every TX key).
    min_len: usize,
}

#[derive(Clone, Copy)]
enum EngineRef<'a> {
    Regex(&'a meta::Regex),
    Pcre2(&'a pcre2::bytes::Regex),
}

#[derive(Debug)]
enum Engine {
    Regex(meta::Regex),
    Pcre2(pcre2::bytes::Regex),
}

impl Pattern {
    /// Compiles a PCRE pattern (ModSecurity's flags); `Err` carries PCRE2's message when
    /// the pattern is not valid PCRE either.
    pub fn new(pcre: &str) -> Result<Pattern, String> {
        if let Ok((translated, caret)) = translate_with_caret(pcre) {
            // Parsed once: the regex and the prefilter's literal analysis share the HIR.
            // The settings are those of `regex::bytes::RegexBuilder` with Unicode off,
            // `(?s)`, `(?m)` and the limits below.
            let hir = super::literals::parse(&translated);
            let config = meta::Config::new()
                .utf8_empty(false)
                .nfa_size_limit(Some(REGEX_SIZE_LIMIT))
                .hybrid_cache_capacity(REGEX_DFA_SIZE_LIMIT)
                .auto_prefilter(translated.len() < OWN_PREFILTER_MAX_LEN);
            let build = |hir: &regex_syntax::hir::Hir| meta::Builder::new().configure(config).build_from_hir(hir);
            let min_len = hir.as_ref().and_then(|h| h.properties().minimum_len()).unwrap_or(0);
            if let Some((Ok(re), literals)) = hir.as_ref().map(|hir| with_literals(hir, translated.len(), build)) {
                let limits = PcreLimits::default();
                let caret_twin = if caret { Some(pcre2_compile(pcre, limits)?) } else { None };
                return Ok(Pattern {
                    engine: Engine::Regex(re),
                    literals,
                    caret_twin,
                    limits,
                    whole: whole_match_groups(pcre),
                    min_len,
                });
            }
        }
        let limits = PcreLimits::default();
        Ok(Pattern {
            engine: Engine::Pcre2(pcre2_compile(pcre, limits)?),
            literals: Vec::new(),
            caret_twin: None,
            limits,
            whole: None,
            min_len: 0,
        })
    }

    /// Recompiles the PCRE2 parts (if any) with `limits`; the `regex` crate part has none.
    pub fn set_limits(&mut self, limits: PcreLimits) -> Result<(), String> {
        if limits == self.limits {
            return Ok(());
        }
        let old = self.limits.prefix();
        let recompile = |re: &pcre2::bytes::Regex| {
            let pcre = re.as_str().strip_prefix(old.as_str()).unwrap_or(re.as_str());
            pcre2_compile(pcre, limits)
        };
        if let Engine::Pcre2(re) = &self.engine {
            self.engine = Engine::Pcre2(recompile(re)?);
        }
        if let Some(twin) = &self.caret_twin {
            self.caret_twin = Some(recompile(twin)?);
        }
        self.limits = limits;
        Ok(())
    }

    /// The engine for this value: the PCRE2 copy where `regex`'s `^` would differ.
    fn engine_for(&self, input: &[u8]) -> EngineRef<'_> {
        match (&self.engine, &self.caret_twin) {
            (_, Some(twin)) if input.last() == Some(&b'\n') => EngineRef::Pcre2(twin),
            (Engine::Regex(re), _) => EngineRef::Regex(re),
            (Engine::Pcre2(re), _) => EngineRef::Pcre2(re),
        }
    }

    /// See [`super::Operator::required_literals`].
    pub fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        self.literals.first().cloned()
    }

    /// See [`super::Operator::also_required_literals`].
    pub fn also_required_literals(&self) -> Option<Vec<Vec<u8>>> {
        self.literals.get(1).cloned()
    }

    /// No shorter input matches (0 when unknown).
    pub fn min_len(&self) -> usize {
        self.min_len
    }

    /// `"regex"` or `"pcre2"`: which engine runs this pattern.
    pub fn backend(&self) -> &'static str {
        match self.engine {
            Engine::Regex(_) => "regex",
            Engine::Pcre2(_) => "pcre2",
        }
    }

    pub fn is_match(&self, input: &[u8]) -> bool {
        self.is_match_limited(input, &mut false)
    }

    /// [`Self::is_match`]; sets `limit_hit` when PCRE2 stopped at a limit (no match).
    pub fn is_match_limited(&self, input: &[u8], limit_hit: &mut bool) -> bool {
        if self.whole.is_some() {
            return true;
        }
        match self.engine_for(input) {
            EngineRef::Regex(re) => input.len() >= self.min_len && re.is_match(input),
            EngineRef::Pcre2(re) => pcre2_ok(re.is_match(input), limit_hit).unwrap_or(false),
        }
    }

    /// Span of the leftmost match starting the search at `start` (context before
    /// `start` still counts for `\b`, `^` and lookbehind, as PCRE's start offset).
    pub fn find_at(&self, input: &[u8], start: usize) -> Option<(usize, usize)> {
        match self.engine_for(input) {
            EngineRef::Regex(re) => re.find(Input::new(input).span(start..input.len())).map(|m| (m.start(), m.end())),
            EngineRef::Pcre2(re) => match re.find_at(input, start) {
                Ok(Some(m)) => Some((m.start(), m.end())),
                _ => None,
            },
        }
    }

    /// First match from `start` with its groups, as PCRE reports them: group spans up to
    /// the highest group that took part (`None` for groups that did not).
    pub fn groups_at(&self, input: &[u8], start: usize) -> Option<Vec<Option<(usize, usize)>>> {
        self.groups_at_limited(input, start, &mut false)
    }

    /// [`Self::groups_at`]; sets `limit_hit` when PCRE2 stopped at a limit (no match).
    fn groups_at_limited(
        &self,
        input: &[u8],
        start: usize,
        limit_hit: &mut bool,
    ) -> Option<Vec<Option<(usize, usize)>>> {
        let mut spans: Vec<Option<(usize, usize)>> = match self.engine_for(input) {
            EngineRef::Regex(re) => {
                let mut caps = re.create_captures();
                re.search_captures(&Input::new(input).span(start..input.len()), &mut caps);
                if !caps.is_match() {
                    return None;
                }
                (0..caps.group_len()).map(|i| caps.get_group(i).map(|m| (m.start, m.end))).collect()
            }
            EngineRef::Pcre2(re) => {
                let mut locs = re.capture_locations();
                pcre2_ok(re.captures_read_at(&mut locs, input, start), limit_hit)??;
                (0..locs.len()).map(|i| locs.get(i)).collect()
            }
        };
        // PCRE's return code counts groups up to the last one that matched.
        while spans.len() > 1 && spans.last() == Some(&None) {
            spans.pop();
        }
        Some(spans)
    }

    /// ModSecurity's `searchOneMatch` for `@rx`: on a match fills `caps` with the whole
    /// match and every group up to the highest that took part (a group that did not take
    /// part is left empty; ModSecurity leaves that TX slot untouched). Sets `limit_hit`
    /// when PCRE2 stopped at a limit (then no match).
    pub fn captures(&self, input: &[u8], caps: &mut Captures, limit_hit: &mut bool) -> bool {
        caps.clear();
        if let Some(n) = self.whole {
            caps.extend(std::iter::repeat_n(input, n).map(<[u8]>::to_vec));
            return true;
        }
        // Most values do not match: the plain search is much cheaper than capture slots.
        if !self.is_match_limited(input, limit_hit) {
            return false;
        }
        let Some(spans) = self.groups_at_limited(input, 0, limit_hit) else {
            return false;
        };
        caps.extend(spans.into_iter().map(|span| match span {
            Some((s, e)) => input.get(s..e).map(<[u8]>::to_vec).unwrap_or_default(),
            None => Vec::new(),
        }));
        true
    }
}

impl Pattern {
    /// ModSecurity's `searchGlobal` for `@rxGlobal`: every match, its groups numbered on
    /// from the previous match's (match 2's whole match follows match 1's last group).
    /// After an empty match the search moves on one byte (PCRE first retries for a
    /// non-empty match at the same place; `regex` cannot, a rare difference).
    /// A run stopped at a PCRE2 limit ends the search like a failed one, keeping the
    /// matches found before it and reporting nothing: ModSecurity v3's PCRE2 build of
    /// `searchGlobal` does exactly that (only its old PCRE build returned the error).
    pub fn captures_global(&self, input: &[u8], caps: &mut Captures) -> bool {
        caps.clear();
        let mut start = 0;
        let mut any = false;
        while start <= input.len() {
            let Some(spans) = self.groups_at(input, start) else {
                break;
            };
            any = true;
            let whole = spans.first().copied().flatten().unwrap_or((start, start));
            caps.extend(
                spans
                    .into_iter()
                    .map(|span| span.and_then(|(s, e)| input.get(s..e)).map(<[u8]>::to_vec).unwrap_or_default()),
            );
            start = if whole.1 > whole.0 { whole.1 } else { whole.1 + 1 };
        }
        any
    }

    /// ModSecurity's `searchAll` (used by `@verifyCPF/SSN/SVNR`): repeated matches, each
    /// adding its whole match and groups; the next search starts at the end of the last
    /// group taken, an empty or unset group stops it. Returned newest first, as there.
    pub fn search_all<'s>(&self, input: &'s [u8]) -> Vec<&'s [u8]> {
        let mut found = Vec::new();
        let mut offset = 0;
        'search: while let Some(spans) = self.groups_at(input, offset) {
            for span in spans {
                let Some((s, e)) = span else { break 'search };
                found.push(input.get(s..e).unwrap_or_default());
                offset = e;
                if e == s {
                    break 'search;
                }
            }
        }
        found.reverse();
        found
    }
}

impl Pattern {
    /// The scan of ModSecurity's `@verifyCPF/SSN/SVNR`: for each start `i` below
    /// `len - 1`, `search_all` on the suffix `input[i..]` (a fresh subject, so `^` and
    /// `\b` see its start), returning the first candidate `check` accepts. Quadratic in
    /// the value's length, like the original.
    pub fn first_verified<'s>(&self, input: &'s [u8], check: impl Fn(&[u8]) -> bool) -> Option<&'s [u8]> {
        (0..input.len().saturating_sub(1)).find_map(|i| self.search_all(input.get(i..)?).into_iter().find(|c| check(c)))
    }
}

/// Patterns whose leftmost match is always the whole subject, and the number of captures
/// (whole match and groups) it gives. With DOTALL, `.*` takes every byte, newlines too, and
/// `^` always holds at the subject's start, `$` at its end: no regex needs to run.
fn whole_match_groups(pcre: &str) -> Option<usize> {
    match pcre {
        "^.*$" | ".*" | "^.*" | ".*$" => Some(1),
        "^(.*)$" | "(.*)" | "^(.*)" | "(.*)$" => Some(2),
        _ => None,
    }
}

/// Patterns from this long up (the CRS's large word lists) get no literal prefilter of
/// their own in `regex`: building theirs was most of a load's regex builds, and they run
/// only on values where Ward's gate found one of their literals, where it did not make
/// them faster (measured in docs/bench.md, session 18).
const OWN_PREFILTER_MAX_LEN: usize = 1000;

/// Patterns from this long up (the CRS's large word lists) have their literal analysis
/// run on a second thread while the regex is built: the two take about as long.
const PARALLEL_MIN_LEN: usize = 1000;

/// `build(hir)` and the prefilter literal sets of `hir`, side by side for a long pattern (on
/// one thread when no thread can be started).
fn with_literals<R>(
    hir: &regex_syntax::hir::Hir,
    len: usize,
    build: impl FnOnce(&regex_syntax::hir::Hir) -> R,
) -> (R, Vec<Vec<Vec<u8>>>) {
    if len < PARALLEL_MIN_LEN {
        return (build(hir), super::literals::required_sets(hir));
    }
    std::thread::scope(|s| {
        let side = std::thread::Builder::new().spawn_scoped(s, || super::literals::required_sets(hir));
        let built = build(hir);
        let literals = match side {
            // A failed analysis only means no gate.
            Ok(handle) => handle.join().unwrap_or_default(),
            Err(_) => super::literals::required_sets(hir),
        };
        (built, literals)
    })
}

/// Why a pattern cannot be run by `regex` with PCRE's meaning.
#[derive(Debug, PartialEq, Eq)]
pub struct NeedsPcre(pub &'static str);

/// Rewrites PCRE syntax into `regex` syntax with the same meaning (byte mode, ModSecurity's
/// flags set by the builder), or says which construct needs PCRE2.
pub fn translate(pcre: &str) -> Result<String, NeedsPcre> {
    translate_with_caret(pcre).map(|(regex, _)| regex)
}

/// [`translate`], also saying whether the pattern has a `^` anchor.
fn translate_with_caret(pcre: &str) -> Result<(String, bool), NeedsPcre> {
    let mut t = Translator { src: pcre.as_bytes(), pos: 0, out: String::with_capacity(pcre.len() + 16), caret: false };
    t.run()?;
    Ok((t.out, t.caret))
}

/// A PCRE2 result as an option: an error is no match (as in ModSecurity), and one that
/// is a match or depth limit sets `limit_hit`.
fn pcre2_ok<T>(r: Result<T, pcre2::Error>, limit_hit: &mut bool) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            if matches!(e.code(), PCRE2_ERROR_MATCHLIMIT | PCRE2_ERROR_DEPTHLIMIT) {
                *limit_hit = true;
            }
            None
        }
    }
}

/// PCRE2 compiles `pcre` with ModSecurity's flags (no JIT: a check only). When it does,
/// [`Pattern::new`] succeeds, since that falls back to the same compile.
pub(crate) fn pcre2_accepts(pcre: &str) -> bool {
    pcre2_build(pcre, PcreLimits::default(), false).is_ok()
}

/// PCRE2 with ModSecurity's flags and the given limits.
fn pcre2_compile(pcre: &str, limits: PcreLimits) -> Result<pcre2::bytes::Regex, String> {
    pcre2_build(pcre, limits, true).map_err(|e| format!("invalid regular expression {pcre:?}: {e}"))
}

fn pcre2_build(pcre: &str, limits: PcreLimits, jit: bool) -> Result<pcre2::bytes::Regex, pcre2::Error> {
    let limited = format!("{}{pcre}", limits.prefix());
    pcre2::bytes::RegexBuilder::new().dotall(true).multi_line(true).jit_if_available(jit).build(&limited)
}

struct Translator<'a> {
    src: &'a [u8],
    pos: usize,
    out: String,
    /// A `^` anchor was written.
    caret: bool,
}

/// A class member: one byte, or a set written as a `regex` class item.
enum ClassAtom {
    Byte(u8),
    Set(String),
}

impl Translator<'_> {
    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn peek_at(&self, off: usize) -> Option<u8> {
        self.src.get(self.pos + off).copied()
    }

    fn rest(&self) -> &[u8] {
        self.src.get(self.pos..).unwrap_or_default()
    }

    fn run(&mut self) -> Result<(), NeedsPcre> {
        // True right after a quantifier: a following `+` makes it possessive.
        let mut after_quantifier = false;
        while let Some(c) = self.peek() {
            let was_quantifier = after_quantifier;
            after_quantifier = false;
            match c {
                b'\\' => self.escape_outside()?,
                b'[' => self.class()?,
                b'(' => self.group_open()?,
                b'*' | b'+' | b'?' => {
                    if was_quantifier {
                        if c == b'?' {
                            // Lazy marker; a quantifier after it is possessive/invalid.
                            self.out.push('?');
                            self.pos += 1;
                            if matches!(self.peek(), Some(b'+' | b'*' | b'?')) {
                                return Err(NeedsPcre("possessive or stacked quantifier"));
                            }
                            continue;
                        }
                        return Err(NeedsPcre("possessive quantifier"));
                    }
                    self.out.push(c as char);
                    self.pos += 1;
                    after_quantifier = true;
                }
                b'{' => {
                    if let Some(len) = quantifier_len(self.rest()) {
                        if was_quantifier {
                            return Err(NeedsPcre("stacked quantifier"));
                        }
                        let q = self.src.get(self.pos..self.pos + len).unwrap_or_default();
                        self.out.push_str(std::str::from_utf8(q).unwrap_or_default());
                        self.pos += len;
                        after_quantifier = true;
                    } else {
                        // PCRE reads a `{` that starts no quantifier as a literal.
                        self.out.push_str("\\{");
                        self.pos += 1;
                    }
                }
                b'}' => {
                    self.out.push_str("\\}");
                    self.pos += 1;
                }
                b'^' => {
                    self.caret = true;
                    self.out.push('^');
                    self.pos += 1;
                }
                _ if c >= 0x80 => {
                    // No UTF: each byte of a multi-byte character is its own literal.
                    push_byte(&mut self.out, c);
                    self.pos += 1;
                }
                _ => {
                    self.out.push(c as char);
                    self.pos += 1;
                }
            }
        }
        Ok(())
    }

    fn group_open(&mut self) -> Result<(), NeedsPcre> {
        self.pos += 1;
        if self.peek() == Some(b'*') {
            return Err(NeedsPcre("backtracking verb or start option"));
        }
        if self.peek() != Some(b'?') {
            self.out.push('(');
            return Ok(());
        }
        match self.peek_at(1) {
            Some(b':') => {
                self.out.push_str("(?:");
                self.pos += 2;
            }
            Some(b'#') => {
                // Comment group: dropped (PCRE ends it at the first `)`).
                let Some(end) = self.rest().iter().position(|&b| b == b')') else {
                    return Err(NeedsPcre("unterminated comment"));
                };
                self.pos += end + 1;
            }
            Some(b'<') if matches!(self.peek_at(2), Some(b'=' | b'!')) => {
                return Err(NeedsPcre("lookbehind"));
            }
            Some(b'<') => {
                self.out.push_str("(?P<");
                self.pos += 2;
            }
            Some(b'P') if self.peek_at(2) == Some(b'<') => {
                self.out.push_str("(?P<");
                self.pos += 3;
            }
            Some(b'=' | b'!') => return Err(NeedsPcre("lookahead")),
            Some(b'>') => return Err(NeedsPcre("atomic group")),
            Some(_) => {
                // Inline flags `(?i)`, `(?i-s:...)`: only the ones `regex` means the same by.
                let mut i = 1;
                loop {
                    match self.peek_at(i) {
                        Some(b'i' | b'm' | b's' | b'U' | b'-') => i += 1,
                        Some(b')' | b':') if i > 1 => break,
                        _ => return Err(NeedsPcre("group syntax or inline option")),
                    }
                }
                let text = &self.src[self.pos - 1..=self.pos + i];
                self.out.push_str(std::str::from_utf8(text).unwrap_or_default());
                self.pos += i + 1;
            }
            None => return Err(NeedsPcre("unterminated group")),
        }
        Ok(())
    }

    fn escape_outside(&mut self) -> Result<(), NeedsPcre> {
        let Some(e) = self.peek_at(1) else {
            return Err(NeedsPcre("trailing backslash"));
        };
        match e {
            b'd' | b'D' | b'w' | b'W' | b's' | b'S' | b'b' | b'B' | b'A' | b'z' => {
                self.out.push('\\');
                self.out.push(e as char);
                self.pos += 2;
            }
            b'h' => {
                self.out.push_str("[\\t\\x20\\xA0]");
                self.pos += 2;
            }
            b'H' => {
                self.out.push_str("[^\\t\\x20\\xA0]");
                self.pos += 2;
            }
            b'v' => {
                self.out.push_str("[\\n\\x0B\\x0C\\r\\x85]");
                self.pos += 2;
            }
            b'V' => {
                self.out.push_str("[^\\n\\x0B\\x0C\\r\\x85]");
                self.pos += 2;
            }
            b'1'..=b'9' => return Err(NeedsPcre("backreference")),
            _ => {
                let b = self.literal_escape()?;
                push_byte(&mut self.out, b);
            }
        }
        Ok(())
    }

    /// Reads an escape that stands for one byte (at `\`), PCRE2 rules without UTF.
    fn literal_escape(&mut self) -> Result<u8, NeedsPcre> {
        let e = self.peek_at(1).ok_or(NeedsPcre("trailing backslash"))?;
        self.pos += 2;
        let byte = match e {
            b'a' => 0x07,
            b'e' => 0x1B,
            b'f' => 0x0C,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'0' => {
                // \0 plus up to two more octal digits.
                let mut v: u32 = 0;
                for _ in 0..2 {
                    match self.peek() {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            self.pos += 1;
                        }
                        _ => break,
                    }
                }
                v as u8
            }
            b'o' if self.peek() == Some(b'{') => {
                let end = self.rest().iter().position(|&b| b == b'}').ok_or(NeedsPcre("\\o{"))?;
                let digits = std::str::from_utf8(&self.rest()[1..end]).map_err(|_| NeedsPcre("\\o{"))?;
                let v = u32::from_str_radix(digits, 8).map_err(|_| NeedsPcre("\\o{"))?;
                self.pos += end + 1;
                u8::try_from(v).map_err(|_| NeedsPcre("code point above 0xff"))?
            }
            b'x' if self.peek() == Some(b'{') => {
                let end = self.rest().iter().position(|&b| b == b'}').ok_or(NeedsPcre("\\x{"))?;
                let digits = std::str::from_utf8(&self.rest()[1..end]).map_err(|_| NeedsPcre("\\x{"))?;
                let v = u32::from_str_radix(digits, 16).map_err(|_| NeedsPcre("\\x{"))?;
                self.pos += end + 1;
                u8::try_from(v).map_err(|_| NeedsPcre("code point above 0xff"))?
            }
            b'x' => {
                // Up to two hex digits; none means NUL.
                let mut v: u8 = 0;
                for _ in 0..2 {
                    match self.peek().and_then(|d| (d as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d as u8;
                            self.pos += 1;
                        }
                        None => break,
                    }
                }
                v
            }
            b'c' => {
                let x = self.peek().filter(|x| x.is_ascii_graphic() || *x == b' ').ok_or(NeedsPcre("\\c"))?;
                self.pos += 1;
                x.to_ascii_uppercase() ^ 0x40
            }
            // Any other letter or digit is a PCRE-only escape (or an error there).
            _ if e.is_ascii_alphanumeric() => return Err(NeedsPcre("PCRE-only escape")),
            // An escaped non-alphanumeric byte is itself.
            _ => e,
        };
        Ok(byte)
    }

    /// Translates `[...]`, writing every member so that `regex` cannot read it as a
    /// nested class or a set operator (`&&`, `--`, `~~`).
    fn class(&mut self) -> Result<(), NeedsPcre> {
        self.pos += 1;
        self.out.push('[');
        if self.peek() == Some(b'^') {
            self.out.push('^');
            self.pos += 1;
        }
        let mut first = true;
        loop {
            let c = self.peek().ok_or(NeedsPcre("unterminated class"))?;
            if c == b']' && !first {
                self.pos += 1;
                self.out.push(']');
                return Ok(());
            }
            first = false;
            let atom = self.class_atom()?;
            // A range needs a byte on both sides; `-` before `]` is literal.
            if let ClassAtom::Byte(lo) = atom {
                if self.peek() == Some(b'-') && !matches!(self.peek_at(1), Some(b']') | None) {
                    let save = self.pos;
                    self.pos += 1;
                    match self.class_atom()? {
                        ClassAtom::Byte(hi) => {
                            if hi < lo {
                                return Err(NeedsPcre("range out of order"));
                            }
                            push_byte(&mut self.out, lo);
                            self.out.push('-');
                            push_byte(&mut self.out, hi);
                            continue;
                        }
                        ClassAtom::Set(_) => {
                            // `[a-\d]`: PCRE2 rejects or reads `-` literally; leave it to PCRE2.
                            self.pos = save;
                            return Err(NeedsPcre("range ending in a class escape"));
                        }
                    }
                }
                push_byte(&mut self.out, lo);
            } else if let ClassAtom::Set(s) = atom {
                self.out.push_str(&s);
            }
        }
    }

    fn class_atom(&mut self) -> Result<ClassAtom, NeedsPcre> {
        let c = self.peek().ok_or(NeedsPcre("unterminated class"))?;
        if c == b'[' && looks_like_posix(self.rest()) {
            let Some(len) = posix_class_len(self.rest()) else {
                // `[.x.]`, `[=x=]` or an unknown `[:name:]`: a PCRE2 compile error.
                return Err(NeedsPcre("POSIX collating element or unknown class"));
            };
            let s = std::str::from_utf8(self.rest().get(..len).unwrap_or_default()).unwrap_or_default().to_string();
            self.pos += len;
            return Ok(ClassAtom::Set(s));
        }
        if c == b'[' {
            self.pos += 1;
            return Ok(ClassAtom::Byte(b'['));
        }
        if c != b'\\' {
            self.pos += 1;
            return Ok(ClassAtom::Byte(c));
        }
        let e = self.peek_at(1).ok_or(NeedsPcre("trailing backslash"))?;
        let set = match e {
            b'd' | b'D' | b'w' | b'W' | b's' | b'S' => format!("\\{}", e as char),
            b'h' => "\\t\\x20\\xA0".to_string(),
            b'v' => "\\n\\x0B\\x0C\\r\\x85".to_string(),
            b'H' => "[^\\t\\x20\\xA0]".to_string(),
            b'V' => "[^\\n\\x0B\\x0C\\r\\x85]".to_string(),
            b'b' => {
                // Backspace inside a class.
                self.pos += 2;
                return Ok(ClassAtom::Byte(0x08));
            }
            b'1'..=b'7' => {
                // Octal inside a class (no backreferences here).
                self.pos += 1;
                let mut v: u32 = 0;
                for _ in 0..3 {
                    match self.peek() {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            self.pos += 1;
                        }
                        _ => break,
                    }
                }
                return u8::try_from(v).map(ClassAtom::Byte).map_err(|_| NeedsPcre("octal above 0xff"));
            }
            _ => return self.literal_escape().map(ClassAtom::Byte),
        };
        self.pos += 2;
        Ok(ClassAtom::Set(set))
    }
}

/// Length of a PCRE2 (10.42) quantifier `{n}`, `{n,}` or `{n,m}` at the start of `s`.
fn quantifier_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    let digits = |s: &[u8], mut i: usize| {
        let start = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i, i > start)
    };
    let (j, any) = digits(s, i);
    if !any {
        return None;
    }
    i = j;
    if s.get(i) == Some(&b',') {
        i = digits(s, i + 1).0;
    }
    (s.get(i) == Some(&b'}')).then_some(i + 1)
}

/// PCRE2's `check_posix_syntax`: does the `[` at the start of `s` (inside a class) open
/// `[:...:]`, `[.....]` or `[=...=]`? If not, it is a literal `[`.
fn looks_like_posix(s: &[u8]) -> bool {
    let Some(&term @ (b':' | b'.' | b'=')) = s.get(1) else {
        return false;
    };
    let mut i = 2;
    while let Some(&c) = s.get(i) {
        let next = s.get(i + 1).copied();
        if c == b'\\' && matches!(next, Some(b']' | b'\\')) {
            i += 1;
        } else if (c == b'[' && next == Some(term)) || c == b']' {
            return false;
        } else if c == term && next == Some(b']') {
            return true;
        }
        i += 1;
    }
    false
}

/// Length of a POSIX class `[:name:]` / `[:^name:]` at the start of `s`, for the names
/// PCRE2 knows.
fn posix_class_len(s: &[u8]) -> Option<usize> {
    if s.get(1) != Some(&b':') {
        return None;
    }
    let mut i = 2;
    if s.get(i) == Some(&b'^') {
        i += 1;
    }
    let start = i;
    while s.get(i).is_some_and(u8::is_ascii_lowercase) {
        i += 1;
    }
    const NAMES: [&[u8]; 14] = [
        b"alpha", b"lower", b"upper", b"alnum", b"ascii", b"blank", b"cntrl", b"digit", b"graph", b"print", b"punct",
        b"space", b"word", b"xdigit",
    ];
    let known = s.get(start..i).is_some_and(|name| NAMES.contains(&name));
    (known && s.get(i) == Some(&b':') && s.get(i + 1) == Some(&b']')).then_some(i + 2)
}

/// Writes one literal byte in a form `regex` reads as exactly that byte, in or out of a class.
fn push_byte(out: &mut String, b: u8) {
    if b.is_ascii_alphanumeric() || b == b'_' {
        out.push(b as char);
    } else if b.is_ascii_graphic() {
        // All ASCII punctuation may be escaped in `regex`; escaping keeps `&&`, `--`,
        // `~~` and `[` from meaning set operations or nested classes.
        if b"\\.+*?()|[]{}^$#&-~".contains(&b) {
            out.push('\\');
        }
        out.push(b as char);
    } else {
        let _ = write!(out, "\\x{b:02X}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_match_patterns_agree_with_pcre2() {
        let inputs: &[&[u8]] = &[b"", b"host", b"a\nb", b"a\n", b"\n", b"\r\n\r", b"\n\nx", b"\xff\x00z"];
        for pat in ["^.*$", ".*", "^.*", ".*$", "^(.*)$", "(.*)", "^(.*)", "(.*)$"] {
            let fast = Pattern::new(pat).unwrap();
            assert!(fast.whole.is_some(), "{pat}");
            let pcre = pcre2_compile(pat, PcreLimits::default()).unwrap();
            for input in inputs {
                let mut locs = pcre.capture_locations();
                assert!(pcre.captures_read(&mut locs, input).unwrap().is_some(), "{pat} {input:?}");
                let want: Vec<Vec<u8>> =
                    (0..locs.len()).map(|i| locs.get(i).map(|(s, e)| input[s..e].to_vec()).unwrap()).collect();
                let mut caps = Captures::new();
                assert!(fast.captures(input, &mut caps, &mut false), "{pat} {input:?}");
                assert_eq!(caps, want, "{pat} {input:?}");
                assert!(fast.is_match(input));
            }
        }
    }

    /// The length bound refuses only inputs no search would match: `is_match` agrees with
    /// a search (which does not take the bound) around each pattern's shortest match.
    #[test]
    fn shortest_match_bound() {
        for (pat, want) in [
            ("(?i)MULTIPART_HEADERS_CONTENT_TYPES_*", 31),
            ("(?i)paramcounter_.*", 13),
            ("^a|bc", 1),
            ("x?", 0),
            ("(?i)é", 2),
        ] {
            let p = Pattern::new(pat).unwrap();
            assert_eq!(p.min_len, want, "{pat}");
        }
        let keys: &[&[u8]] = &[
            b"",
            b"a",
            b"bc",
            b"xbc",
            b"paramcounter_",
            b"paramcounter",
            b"a_PARAMCOUNTER_1",
            b"multipart_headers_content_types",
            b"multipart_headers_content_type",
            b"x_MULTIPART_HEADERS_CONTENT_TYPES_",
            "\u{e9}".as_bytes(),
            "\u{c9}t".as_bytes(),
        ];
        for pat in ["(?i)MULTIPART_HEADERS_CONTENT_TYPES_*", "(?i)paramcounter_.*", "^a|bc", "x?", "(?i)é"] {
            let p = Pattern::new(pat).unwrap();
            for key in keys {
                assert_eq!(p.is_match(key), p.find_at(key, 0).is_some(), "/{pat}/ on {:?}", String::from_utf8_lossy(key));
            }
        }
    }

    #[test]
    fn translations() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("abc", Ok("abc")),
            ("a{2,3}b{,4}c{x}", Ok("a{2,3}b\\{,4\\}c\\{x\\}")),
            (r"\<script\>", Ok("<script>")),
            (r"[a&&b]", Ok(r"[a\&\&b]")),
            (r"[\[\]-]", Ok(r"[\[\]\-]")),
            (r"[^]a]", Ok(r"[^\]a]")),
            (r"[[:alpha:]_-]", Ok(r"[[:alpha:]_\-]")),
            (r"[ ?[=<>]", Ok(r"[\x20\?\[=<>]")),
            (r"[[.a.]]", Err("POSIX collating element or unknown class")),
            (r"\h\v", Ok(r"[\t\x20\xA0][\n\x0B\x0C\r\x85]")),
            (r"\x5c\x{41}\0\012\cA", Ok(r"\\A\x00\x0A\x01")),
            ("é", Ok(r"\xC3\xA9")),
            (r"(?i:a)(?<n>b)(?#c)", Ok("(?i:a)(?P<n>b)")),
            ("a*?b+?", Ok("a*?b+?")),
            (r"\?+$", Ok(r"\?+$")),
            ("(?=a)", Err("lookahead")),
            ("(?<!a)", Err("lookbehind")),
            ("(?>a)", Err("atomic group")),
            (r"(a)\1", Err("backreference")),
            ("a++", Err("possessive quantifier")),
            ("a{2}+", Err("possessive quantifier")),
            (r"a\Z", Err("PCRE-only escape")),
        ];
        for (pcre, want) in cases {
            let got = translate(pcre).map_err(|e| e.0);
            assert_eq!(got.as_deref().map_err(|e| *e), *want, "{pcre}");
        }
    }

    #[test]
    fn engines_and_captures() {
        let p = Pattern::new("(a|b|1|2)(a|b|1|2)").unwrap();
        assert_eq!(p.backend(), "regex");
        let mut caps = Captures::new();
        assert!(p.captures(b"a2b1", &mut caps, &mut false));
        assert_eq!(caps, vec![b"a2".to_vec(), b"a".to_vec(), b"2".to_vec()]);
        let p = Pattern::new(r"(a)(x)?").unwrap();
        assert!(p.captures(b"a", &mut caps, &mut false));
        assert_eq!(caps, vec![b"a".to_vec(), b"a".to_vec()]);
        let p = Pattern::new(r"<\?(?!xml)").unwrap();
        assert_eq!(p.backend(), "pcre2");
        assert!(p.is_match(b"<?php") && !p.is_match(b"<?xml"));
        assert!(Pattern::new("(").is_err());
        // Bytes, not UTF-8: `.` matches any byte, classes are byte sets.
        assert!(Pattern::new("^.$").unwrap().is_match(b"\xff"));
        assert!(Pattern::new("[é]").unwrap().is_match(b"\xa9"));
        // PCRE's multiline `^` does not match after a final newline.
        let p = Pattern::new("^0?$").unwrap();
        assert!(p.is_match(b"") && p.is_match(b"0\n") && p.is_match(b"5\n\n") && !p.is_match(b"5\n"));
    }

    #[test]
    fn pcre_limits() {
        let limit = |m: u32| PcreLimits { match_limit: Some(m), depth_limit: None };
        let catastrophic = format!("{}o", "w".repeat(30));
        // (pattern, input, limits, matches, limit hit)
        let cases: &[(&str, &str, PcreLimits, bool, bool)] = &[
            // A backreference: PCRE2 only. Matches after some backtracking...
            (r"(w+)+\1$", "wwwwwwww", PcreLimits::default(), true, false),
            (r"(w+)+\1$", "wwwwwwww", limit(1_000), true, false),
            // ...that a low SecPcreMatchLimit cuts short: no match, limit reported.
            (r"(w+)+\1$", "wwwwwwww", limit(2), false, true),
            // Exponential backtracking stops at Ward's default limit, or a set one.
            (r"^(w+)+\1$", &catastrophic, PcreLimits::default(), false, true),
            (r"^(w+)+\1$", &catastrophic, limit(10_000), false, true),
            // 0 means not set (ModSecurity): Ward's default limit, reported when hit.
            (r"(w+)+\1$", "wwwwwwww", limit(0), true, false),
            (r"^(w+)+\1$", &catastrophic, limit(0), false, true),
            // A depth limit is accepted (binding only without the JIT).
            (r"(w+)+\1$", "wwwwwwww", PcreLimits { match_limit: None, depth_limit: Some(1_000) }, true, false),
            // The same shape without a backreference runs on `regex`: linear, no limit.
            (r"(w+)+$", "wwwwwwww", limit(2), true, false),
            (r"^(w+)+$", &catastrophic, limit(2), false, false),
            // The PCRE2 twin of a `^` pattern (values ending in a newline) has the limits too.
            (r"^(w+)+\1$", "wwwwwwww\n", limit(2), false, true),
            (r"^(w+)+$", "wwwwwwww\n", limit(2), true, false),
        ];
        for (pattern, input, limits, matches, hit) in cases {
            let mut p = Pattern::new(pattern).unwrap();
            p.set_limits(*limits).unwrap();
            let mut limit_hit = false;
            assert_eq!(p.is_match_limited(input.as_bytes(), &mut limit_hit), *matches, "{pattern} {limits:?}");
            assert_eq!(limit_hit, *hit, "is_match {pattern} {limits:?}");
            let (mut caps, mut limit_hit) = (Captures::new(), false);
            assert_eq!(p.captures(input.as_bytes(), &mut caps, &mut limit_hit), *matches, "{pattern} {limits:?}");
            assert_eq!(limit_hit, *hit, "captures {pattern} {limits:?}");
            assert_eq!(caps.is_empty(), !*matches);
        }
        // Limits can change again (the previous ones are replaced, not stacked).
        let mut p = Pattern::new(r"(w+)+\1$").unwrap();
        p.set_limits(limit(2)).unwrap();
        p.set_limits(limit(1_000)).unwrap();
        assert!(p.is_match(b"wwwwwwww"));
        p.set_limits(PcreLimits::default()).unwrap();
        assert!(p.is_match(b"wwwwwwww"));
        // @rxGlobal (ModSecurity's PCRE2 searchGlobal): a limit ends the search quietly,
        // keeping the matches before it.
        let mut p = Pattern::new(r"x|^(w+)+\1$").unwrap();
        p.set_limits(limit(1_000)).unwrap();
        let mut caps = Captures::new();
        assert!(p.captures_global(format!("x\n{catastrophic}").as_bytes(), &mut caps));
        assert_eq!(caps, vec![b"x".to_vec()]);
    }
}
