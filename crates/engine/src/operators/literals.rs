//! Required literals of a regular expression, for the rule-set prefilter.
//!
//! `required(pattern)` returns byte strings of which at least one occurs in every
//! value the pattern matches (compared ASCII case-insensitively), or `None` when no such
//! set is useful. The prefilter only ever skips a rule when none of its literals occur,
//! so the set must be a true necessary condition; it does not need to be minimal.
//!
//! Every node of the pattern gets three sound facts (literals case-folded to lower case):
//! - `prefix` / `suffix`: every match starts / ends with one of these literals; a literal
//!   marked complete may also be the whole match (so a literal, a small class, `x?` are
//!   fully known, and concatenation extends them);
//! - `inner`: every match contains one of these.
//!
//! Concatenation also joins the end of the left part to the start of the right part
//! (they meet inside the match), alternation unions, repetition unrolls up to two copies
//! and treats the rest as `x*`. Sets that grow too large are weakened soundly by cutting
//! literals short (a prefix of a required prefix is still required). Among the valid sets
//! of a node the most selective one by [`Stats::cost`] is kept.
//!
//! Selectivity rule: a literal is a useful gate when it is at least [`MIN_LEN`] bytes long,
//! or when it holds a byte that is rare in benign request values ([`is_rare`]). `on` or `-`
//! would let almost every value through; `<`, `${` or `/*` almost never appear in benign
//! parameters. A set with a literal that is not selective still gates when its literals
//! together are expected rarely enough per byte ([`WEAK_MAX`]): `/`, `%` or `0x` for an
//! encoded path, a space, `,` or `|` after a shell command. Most form text holds such a
//! byte and runs the rule; identifiers, dates and numbers (most JSON values) do not.
//!
//! [`required_sets`] may add a second set, chosen by a model in which the bytes of names
//! and identifiers are as common as can be: when the first set has a literal of such bytes
//! only (`st`, which `eu-west-1` holds), a second set without one (the `=` after a PHP
//! directive, the space or `|` after a shell command) skips those values; the prefilter
//! then needs a literal of each.

use regex_syntax::hir::{Class, Hir, HirKind};
use regex_syntax::ParserBuilder;
use rustc_hash::{FxHashMap, FxHasher};
use std::hash::{Hash, Hasher};

/// Literals without a rare byte shorter than this let too many values through.
pub const MIN_LEN: usize = 3;
/// Beyond this many alternatives the set is unlikely to be selective.
const MAX_SET: usize = 4096;
/// A set that is not selective still gates when its literals are expected this rarely
/// per byte of a benign value (see [`weakness`]).
const WEAK_MAX: f64 = 0.15;
/// Largest set built by a cross product (a concatenation of known parts).
const MAX_CROSS: usize = 128;
/// Largest set of literals spanning the joint of two concatenated parts.
const MAX_JOINT: usize = 512;
/// Largest prefix or suffix set kept (larger ones are cut shorter).
const MAX_SEQ: usize = 32;
/// Classes up to this many (case-folded) bytes are expanded into single-byte literals.
const MAX_CLASS: usize = 32;

/// Bytes that rarely occur in benign request values: a literal holding one is selective
/// even when short. Letters, digits, space and the punctuation of ordinary text, URLs,
/// dates and e-mail addresses (`- . _ , : / = % + ? @`) are not rare. Control bytes (tab
/// and newlines too), `&` (a parameter separator, so seldom inside a value) and non-ASCII
/// bytes are. This only decides what is worth gating on: a value holding the byte simply
/// runs the rule, as without a gate.
pub const fn is_rare(b: u8) -> bool {
    matches!(
        b,
        b'$' | b'<'
            | b'>'
            | b'('
            | b')'
            | b'{'
            | b'}'
            | b'['
            | b']'
            | b'\''
            | b'"'
            | b'`'
            | b'|'
            | b';'
            | b'\\'
            | b'!'
            | b'*'
            | b'^'
            | b'~'
            | b'#'
            | b'&'
            | 0..=0x1f
            | 0x7f..=0xff
    )
}

/// Whether `lit` is a useful gate literal (see the module documentation).
pub fn selective(lit: &[u8]) -> bool {
    lit.len() >= MIN_LEN || lit.iter().any(|&b| is_rare(b))
}

/// Parses a (translated) pattern with the flags of Ward's `regex` engine: byte mode,
/// Unicode off, `(?m)`, `(?s)`.
pub fn parse(pattern: &str) -> Option<Hir> {
    ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .multi_line(true)
        .dot_matches_new_line(true)
        .build()
        .parse(pattern)
        .ok()
}

/// Parses `pattern` as [`parse`] does and extracts its literals.
pub fn required(pattern: &str) -> Option<Vec<Vec<u8>>> {
    required_hir(&parse(pattern)?)
}

/// The literals of a parsed pattern.
pub fn required_hir(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    required_sets(hir).into_iter().next()
}

/// Up to two sets of literals, each holding one that occurs in every match: the most
/// selective by [`TEXT`], then, when that set has a literal of identifier bytes only
/// ([`is_ident`]), the best by [`PUNCT`] if it has none. A value needs one literal of
/// each: the second skips the names and host names that the first's letter pairs let
/// through.
///
/// The pattern is also read without its optional parts that can only start with a rare
/// byte (the CRS's evasion groups, `["'\)\[\x5c]*` between the letters of a command
/// name): a match either leaves every such part empty, and so is a match of the pattern
/// without them, whose literals are whole words, or holds one of their first bytes. Those
/// bytes join each set of that reading, which is kept when it lets fewer values through.
pub fn required_sets(hir: &Hir) -> Vec<Vec<Vec<u8>>> {
    let plain = sets_of(hir);
    let mut starts = Vec::new();
    let Some(bare) = without_rare_optionals(hir, &mut starts) else { return plain };
    starts.sort_unstable();
    starts.dedup();
    let mut bare_sets = sets_of(&bare);
    for set in &mut bare_sets {
        let with_starts =
            set.iter().map(|l| Lit::new(l, false).0).chain(starts.iter().map(|&b| Lit::new(&[b], false).0));
        *set = minimal(norm(with_starts.collect()));
    }
    // A value needs a literal of each set: the weakest set bounds them.
    let pass = |sets: &[Vec<Vec<u8>>]| {
        sets.iter().map(|s| weakness(s.iter().map(Vec::as_slice), &TEXT)).fold(f64::INFINITY, f64::min)
    };
    match (plain.is_empty(), bare_sets.is_empty()) {
        (_, true) => plain,
        (true, false) => bare_sets,
        (false, false) if pass(&bare_sets) < pass(&plain) => bare_sets,
        _ => plain,
    }
}

/// What [`without_rare_optionals`] knows of a node: whether it can match the empty
/// string, the bytes (case-folded) that can start a non-empty match (None: too many), and
/// the node rewritten (None: unchanged).
struct Bare {
    nullable: bool,
    first: Option<Vec<u8>>,
    rewritten: Option<Hir>,
}

/// `h` with each optional part (one that can match empty) of a concatenation replaced by
/// the empty string when every byte that can start it is rare ([`is_rare`]); those bytes
/// are added to `starts`. None when nothing was replaced. One pass, bottom up.
fn without_rare_optionals(h: &Hir, starts: &mut Vec<u8>) -> Option<Hir> {
    bare(h, starts).rewritten
}

fn bare(h: &Hir, starts: &mut Vec<u8>) -> Bare {
    let leaf = |nullable: bool, first: Option<Vec<u8>>| Bare { nullable, first, rewritten: None };
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => leaf(true, Some(Vec::new())),
        HirKind::Literal(l) => {
            leaf(l.0.is_empty(), Some(l.0.first().map(u8::to_ascii_lowercase).into_iter().collect()))
        }
        HirKind::Class(c) => leaf(false, class_bytes(c)),
        HirKind::Capture(c) => {
            let sub = bare(&c.sub, starts);
            let rewritten = sub.rewritten.map(|r| {
                Hir::capture(regex_syntax::hir::Capture { index: c.index, name: c.name.clone(), sub: Box::new(r) })
            });
            Bare { rewritten, ..sub }
        }
        HirKind::Repetition(r) if r.max == Some(0) => leaf(true, Some(Vec::new())),
        HirKind::Repetition(r) => {
            let sub = bare(&r.sub, starts);
            let rewritten =
                sub.rewritten.map(|s| Hir::repetition(regex_syntax::hir::Repetition { sub: Box::new(s), ..r.clone() }));
            Bare { nullable: r.min == 0 || sub.nullable, first: sub.first, rewritten }
        }
        HirKind::Concat(hs) | HirKind::Alternation(hs) => {
            let concat = matches!(h.kind(), HirKind::Concat(_));
            let (mut nullable, mut first, mut open) = (concat, Some(Vec::new()), true);
            let mut changed = false;
            let mut parts = Vec::with_capacity(hs.len());
            for c in hs.iter() {
                let b = bare(c, starts);
                // This node's facts, from the parts as they were: a concatenation starts
                // like its parts up to the first that cannot be empty.
                if open {
                    first = first.zip(b.first.clone()).map(|(mut f, g)| {
                        f.extend(g);
                        f
                    });
                }
                if concat {
                    open &= b.nullable;
                    nullable &= b.nullable;
                } else {
                    nullable |= b.nullable;
                }
                let drop = concat
                    && b.nullable
                    && b.first.as_ref().is_some_and(|f| !f.is_empty() && f.iter().all(|&x| is_rare(x)));
                let part = if drop {
                    starts.extend(b.first.into_iter().flatten());
                    Some(Hir::empty())
                } else {
                    b.rewritten
                };
                changed |= part.is_some();
                parts.push(part);
            }
            if let Some(f) = first.as_mut() {
                f.sort_unstable();
                f.dedup();
            }
            let rewritten = changed.then(|| {
                let parts = parts.into_iter().zip(hs.iter()).map(|(p, c)| p.unwrap_or_else(|| c.clone())).collect();
                if concat {
                    Hir::concat(parts)
                } else {
                    Hir::alternation(parts)
                }
            });
            Bare { nullable, first, rewritten }
        }
    }
}

/// [`required_sets`] of the pattern as it is.
fn sets_of(hir: &Hir) -> Vec<Vec<Vec<u8>>> {
    let mut shapes = Vec::new();
    shape_hashes(hir, &mut shapes);
    let mut count: FxHashMap<u64, u32> = FxHashMap::default();
    shapes.iter().for_each(|&(key, _)| *count.entry(key).or_default() += 1);
    let repeated = shapes.iter().map(|(key, _)| count[key] > 1).collect();
    let [text, punct] = Memo { shapes, repeated, next: 0, seen: FxHashMap::default() }.info(hir).inner;
    let useful = |set: &Vec<Vec<u8>>| {
        let weak = || weakness(set.iter().map(Vec::as_slice), &TEXT) <= WEAK_MAX;
        set.len() <= MAX_SET && (set.iter().all(|l| selective(l)) || weak())
    };
    let ident_only = |l: &Vec<u8>| l.iter().all(|&b| is_ident(b));
    let first = minimal(text.set);
    if !useful(&first) {
        return Vec::new();
    }
    if !first.iter().any(ident_only) {
        return vec![first];
    }
    let second = minimal(punct.set);
    if useful(&second) && !second.iter().any(ident_only) {
        return vec![first, second];
    }
    vec![first]
}

/// Drops literals that contain another literal of the set: they add nothing to the gate.
fn minimal(set: Set) -> Vec<Vec<u8>> {
    let mut by_len: Set = set;
    by_len.sort_by_key(Lit::len);
    // Kept literals, looked up by every substring of each longer one (at most 136).
    let mut kept: rustc_hash::FxHashSet<Lit> = Default::default();
    let mut out: Vec<Vec<u8>> = Vec::new();
    for l in by_len {
        let b = l.bytes();
        let inside = (0..=b.len()).any(|i| (i..=b.len()).any(|j| kept.contains(&Lit::new(&b[i..j], false).0)));
        if !inside {
            kept.insert(l);
            out.push(b.to_vec());
        }
    }
    out.sort_unstable();
    out
}

/// Longest literal tracked; longer ones are cut (soundly) to this length.
pub const LIT_CAP: usize = 15;

/// A short literal, stored inline: the analysis builds many of them. Its length, then
/// its bytes (zeros after them), so that literals order by length then bytes when read
/// as one big-endian integer (the analysis sorts many sets of them).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Lit {
    d: [u8; LIT_CAP + 1],
}

impl Ord for Lit {
    fn cmp(&self, other: &Lit) -> std::cmp::Ordering {
        u128::from_be_bytes(self.d).cmp(&u128::from_be_bytes(other.d))
    }
}

impl PartialOrd for Lit {
    fn partial_cmp(&self, other: &Lit) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Lit {
    const EMPTY: Lit = Lit { d: [0; LIT_CAP + 1] };

    /// `bytes` if it fits, else its first (`from_end`: last) bytes and `false`.
    fn new(bytes: &[u8], from_end: bool) -> (Lit, bool) {
        let fits = bytes.len() <= LIT_CAP;
        let part = match bytes.len().checked_sub(LIT_CAP) {
            Some(extra) if from_end => &bytes[extra..],
            Some(_) => &bytes[..LIT_CAP],
            None => bytes,
        };
        let mut l = Lit::EMPTY;
        l.d[1..=part.len()].copy_from_slice(part);
        l.d[0] = part.len() as u8;
        (l, fits)
    }

    fn bytes(&self) -> &[u8] {
        &self.d[1..=usize::from(self.d[0])]
    }

    fn len(&self) -> usize {
        usize::from(self.d[0])
    }

    /// `self` then `next`, cut to the cap from the start (`from_end`: from the end).
    fn then(&self, next: &Lit, from_end: bool) -> (Lit, bool) {
        let mut buf = [0u8; 2 * LIT_CAP];
        buf[..self.len()].copy_from_slice(self.bytes());
        buf[self.len()..self.len() + next.len()].copy_from_slice(next.bytes());
        Lit::new(&buf[..self.len() + next.len()], from_end)
    }

    /// The first (`from_end`: last) `n` bytes.
    fn cut(&self, n: usize, from_end: bool) -> Lit {
        self.shorten(n, from_end)
    }

    fn shorten(mut self, n: usize, from_end: bool) -> Lit {
        if self.len() > n {
            if from_end {
                let len = self.len();
                self.d.copy_within(1 + len - n..=len, 1);
            }
            self.d[1 + n..].fill(0);
            self.d[0] = n as u8;
        }
        self
    }
}

type Set = Vec<Lit>;

/// [`is_rare`] as a table.
static RARE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = is_rare(b as u8);
        b += 1;
    }
    t
};

/// How often each byte occurs at one position of a benign value, as a cost model sees it.
struct Model {
    freq: [f64; 256],
}

/// Rough frequency of a byte at one position of a benign value.
static TEXT: Model = Model { freq: freq_table(false) };

/// [`TEXT`] with the bytes of identifiers as common as can be: the best set by this
/// model has no literal made of them only, which names, dates and host names hold (`st`
/// in `eu-west-1`), and is a second condition beside [`TEXT`]'s best.
static PUNCT: Model = Model { freq: freq_table(true) };

/// Letters, digits and the punctuation of names, paths, dates, host and e-mail addresses.
const fn is_ident(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b':' | b'/' | b'@')
}

const fn freq_table(ident_always: bool) -> [f64; 256] {
    let mut t = [0.02; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = match b as u8 {
            b if ident_always && is_ident(b) => 1.0,
            b if is_rare(b) => 0.001,
            b'a'..=b'z' => 0.04,
            b'0'..=b'9' => 0.03,
            b' ' => 0.1,
            _ => 0.02,
        };
        b += 1;
    }
    t
}

/// What the cost of a literal depends on; a concatenation's follows from its parts'.
#[derive(Clone, Copy)]
struct Stats {
    len: usize,
    rare: bool,
    /// Product of the byte frequencies.
    freq: f64,
}

impl Stats {
    fn of(lit: &Lit, m: &Model) -> Stats {
        let mut freq = 1.0;
        let mut rare = false;
        for &b in lit.bytes() {
            freq *= m.freq[usize::from(b)];
            rare |= RARE[usize::from(b)];
        }
        Stats { len: lit.len(), rare, freq }
    }

    fn then(self, next: Stats) -> Stats {
        Stats { len: self.len + next.len, rare: self.rare || next.rare, freq: self.freq * next.freq }
    }

    /// Estimated share of benign values holding the literal (1 = useless).
    fn cost(self) -> f64 {
        if self.len < MIN_LEN && !self.rare {
            return 1.0;
        }
        // A value of a few dozen bytes holds a literal about (length x frequency) times;
        // the floor makes long literals equal, so the smaller set wins. Up to six letters
        // are told apart: at four (1e-4 before), the end of `master.` (`ter.`) scored as
        // well as the whole and was chosen, and dotted JSON names hold it.
        (self.freq * 40.0).clamp(1e-7, 1.0)
    }
}

/// Estimated share of values a set lets through (1 = useless); lower is better.
fn score<'a>(set: impl IntoIterator<Item = &'a Lit>, m: &Model) -> f64 {
    let mut sum = 0.0;
    for l in set {
        sum += Stats::of(l, m).cost();
        // Costs are positive: the sum only grows past the cap.
        if sum >= 1.0 {
            return 1.0;
        }
    }
    sum
}

/// Whether a set of these costs scores at most `bound` ([`score`] without adding more
/// than it takes to know).
fn within(costs: impl IntoIterator<Item = f64>, bound: f64) -> bool {
    if bound >= 1.0 {
        return true;
    }
    let mut sum = 0.0;
    for c in costs {
        // Costs are positive: the sum only grows.
        sum += c;
        if sum > bound {
            return false;
        }
    }
    true
}

/// Expected occurrences of a set's literals per byte of a benign value: what tells weak
/// sets apart (`/` or `, ` against the empty literal) when none is selective.
fn weakness<'a>(set: impl IntoIterator<Item = &'a [u8]>, m: &Model) -> f64 {
    set.into_iter().map(|l| l.iter().map(|&b| m.freq[usize::from(b)]).product::<f64>()).sum()
}

/// The trivial set: the empty string occurs in every value.
fn any() -> Set {
    vec![Lit::EMPTY]
}

fn norm<T: Ord>(mut s: Vec<T>) -> Vec<T> {
    s.sort();
    s.dedup();
    s
}

/// Cuts every literal to its first (`from_end`: last) `n` bytes: a prefix of a required
/// prefix is still required (likewise for suffixes and inner literals).
fn cut<'a>(set: impl IntoIterator<Item = &'a Lit>, n: usize, from_end: bool) -> Set {
    norm(set.into_iter().map(|l| l.cut(n, from_end)).collect())
}

/// Shrinks a set under `max` by cutting its literals shorter.
fn fit(set: Set, max: usize, from_end: bool) -> Set {
    if set.len() <= max {
        return set;
    }
    for n in [8, 6, 4, 3, 2, 1] {
        let c = cut(&set, n, from_end);
        if c.len() <= max {
            return c;
        }
    }
    any()
}

/// A valid inner set with its score, so that candidates compare cheaply.
#[derive(Debug, Clone)]
struct Scored {
    set: Set,
    /// The sum of the literals' lengths (ties go to the longer set).
    lens: usize,
    score: f64,
    /// [`weakness`] of a set the cost model calls useless (score 1), else 0.
    weak: f64,
}

impl Scored {
    fn new(set: Set, m: &Model) -> Scored {
        let score = score(&set, m);
        let weak = if score >= 1.0 { weakness(set.iter().map(Lit::bytes), m) } else { 0.0 };
        let lens = set.iter().map(Lit::len).sum();
        Scored { score, weak, lens, set }
    }

    /// Score, then weakness, then size.
    fn key(&self) -> (f64, f64, usize, usize) {
        (self.score, self.weak, self.set.len(), usize::MAX - self.lens)
    }

    /// Keeps the more selective of two valid sets (then the smaller, then the longer).
    fn keep_better(&mut self, other: Scored) {
        if other.key().partial_cmp(&self.key()) == Some(std::cmp::Ordering::Less) {
            *self = other;
        }
    }

    /// [`Self::keep_better`] with the literals of a prefix or suffix set, built only
    /// when they may win (the sum over the sequence bounds the set's score from above).
    fn keep_better_seq(&mut self, seq: &Seq, m: &Model) {
        if within(seq.iter().map(|(l, _)| Stats::of(l, m).cost()), self.score) {
            self.keep_better(Scored::new(lits(seq), m));
        }
    }
}

/// Possible starts (ends) of a node's matches: every match starts (ends) with one of the
/// literals; a literal marked complete may also be the whole match, an incomplete one is
/// only a part of it. Dropping a mark is always sound.
type Seq = Vec<(Lit, bool)>;

fn lits(seq: &Seq) -> Set {
    norm(seq.iter().map(|(l, _)| *l).collect())
}

fn incomplete(seq: &Seq) -> Seq {
    norm(seq.iter().map(|(l, _)| (*l, false)).collect())
}

/// Shrinks a sequence under `max`: literals that had to be cut are no longer complete.
fn fit_seq(seq: Seq, max: usize, from_end: bool) -> Seq {
    if seq.len() <= max {
        return seq;
    }
    // Each cut is taken from the previous one (already deduplicated): cutting to 8 then
    // to 6 gives what cutting to 6 gives.
    let mut c = seq;
    for n in [8, 6, 4, 3, 2, 1] {
        c = norm(c.into_iter().map(|(l, c)| if l.len() <= n { (l, c) } else { (l.cut(n, from_end), false) }).collect());
        if c.len() <= max {
            return c;
        }
    }
    vec![(Lit::EMPTY, false)]
}

/// Prefixes of `a` followed by `b`: complete literals of `a` continue with `b`'s.
/// With `suffix`, `a` and `b` are suffixes and `b`'s go in front.
fn join(a: Seq, b: &Seq, suffix: bool) -> Seq {
    let fan = a.iter().filter(|x| x.1).count();
    if fan == 0 {
        return a;
    }
    if fan.saturating_mul(b.len()) + a.len() > MAX_CROSS {
        return incomplete(&a);
    }
    let mut out = Vec::with_capacity(a.len() + fan * b.len());
    for (x, complete) in a {
        if complete {
            for (y, c2) in b {
                let (l, fits) = if suffix { y.then(&x, true) } else { x.then(y, false) };
                out.push((l, *c2 && fits));
            }
        } else {
            out.push((x, false));
        }
    }
    norm(out)
}

/// The cost models an analysis keeps a best inner set for, in one pass (prefixes and
/// suffixes do not depend on the model).
const MODELS: [&Model; 2] = [&TEXT, &PUNCT];

/// A set scored by each model.
fn scored(set: Set) -> [Scored; 2] {
    [Scored::new(set.clone(), MODELS[0]), Scored::new(set, MODELS[1])]
}

/// What is known about the strings one node matches.
#[derive(Debug, Clone)]
struct Info {
    prefix: Seq,
    suffix: Seq,
    /// Per model of [`MODELS`], the most selective known set of which one literal occurs
    /// in every match.
    inner: [Scored; 2],
}

impl Info {
    /// Completes the facts: a prefix or suffix set is also an inner set.
    fn new(prefix: Seq, suffix: Seq, mut inner: [Scored; 2]) -> Info {
        for (inner, m) in inner.iter_mut().zip(MODELS) {
            inner.keep_better_seq(&prefix, m);
            inner.keep_better_seq(&suffix, m);
        }
        Info { prefix, suffix, inner }
    }

    /// A node matching exactly one of `set`.
    fn exact(set: Set) -> Info {
        let seq: Seq = set.iter().map(|l| (*l, true)).collect();
        Info { prefix: seq.clone(), suffix: seq, inner: scored(set) }
    }

    /// A node matching a fixed string.
    fn literal(bytes: &[u8]) -> Info {
        let (start, fits) = Lit::new(bytes, false);
        if fits {
            return Info::exact(vec![start]);
        }
        let end = Lit::new(bytes, true).0;
        Info { prefix: vec![(start, false)], suffix: vec![(end, false)], inner: scored(vec![start]) }
    }

    /// A node matching strings of unknown content.
    fn unknown() -> Info {
        Info::exact(any()).star()
    }

    /// `x*` for this node `x`: empty, or starting (ending) like `x`.
    fn star(&self) -> Info {
        let mut prefix = incomplete(&self.prefix);
        prefix.push((Lit::EMPTY, true));
        let mut suffix = incomplete(&self.suffix);
        suffix.push((Lit::EMPTY, true));
        Info::new(norm(prefix), norm(suffix), scored(any()))
    }

    /// `x?` for this node `x`: empty, or exactly like `x`.
    fn optional(&self) -> Info {
        let (mut prefix, mut suffix) = (self.prefix.clone(), self.suffix.clone());
        prefix.push((Lit::EMPTY, true));
        suffix.push((Lit::EMPTY, true));
        Info::new(norm(prefix), norm(suffix), scored(any()))
    }

    /// `self` followed by `next`.
    fn concat(self, next: &Info) -> Info {
        let mut inner = self.inner;
        for (inner, next) in inner.iter_mut().zip(&next.inner) {
            if next.key().partial_cmp(&inner.key()) == Some(std::cmp::Ordering::Less) {
                *inner = next.clone();
            }
        }
        // The end of the left part and the start of the right part meet inside the match.
        // Both sides are cut short first (3+3 bytes down to 1+1) until the product is small.
        // The cut sets are built on first use: the first pair usually fits.
        let (mut ls, mut rs): ([Option<Set>; MIN_LEN], [Option<Set>; MIN_LEN]) = Default::default();
        for (nl, nr) in [(3, 3), (3, 2), (2, 3), (2, 2), (3, 1), (1, 3), (2, 1), (1, 2), (1, 1)] {
            ls[nl - 1].get_or_insert_with(|| cut(self.suffix.iter().map(|x| &x.0), nl, true));
            rs[nr - 1].get_or_insert_with(|| cut(next.prefix.iter().map(|x| &x.0), nr, false));
            let (Some(l), Some(r)) = (&ls[nl - 1], &rs[nr - 1]) else { continue };
            if l.len().saturating_mul(r.len()) > MAX_JOINT {
                continue;
            }
            // Scored from the parts; the set is built only when it may win.
            let mut set = None;
            for (inner, m) in inner.iter_mut().zip(MODELS) {
                let rstats: Vec<Stats> = r.iter().map(|l| Stats::of(l, m)).collect();
                let joint =
                    l.iter().map(|l| Stats::of(l, m)).flat_map(|x| rstats.iter().map(move |&y| x.then(y).cost()));
                if within(joint, inner.score) {
                    let set = set.get_or_insert_with(|| {
                        norm(l.iter().flat_map(|x| r.iter().map(move |y| x.then(y, false).0)).collect())
                    });
                    inner.keep_better(Scored::new(set.clone(), m));
                }
            }
            break;
        }
        let prefix = fit_seq(join(self.prefix, &next.prefix, false), MAX_SEQ, false);
        let suffix = fit_seq(join(next.suffix.clone(), &self.suffix, true), MAX_SEQ, true);
        Info::new(prefix, suffix, inner)
    }

    /// Any one of `alts`.
    fn alternation(alts: Vec<Info>) -> Info {
        let mut prefix = Vec::new();
        let mut suffix = Vec::new();
        let mut inner = [Vec::new(), Vec::new()];
        for a in alts {
            prefix.extend(a.prefix);
            suffix.extend(a.suffix);
            for (inner, a) in inner.iter_mut().zip(a.inner) {
                inner.extend(a.set);
            }
        }
        let [text, punct] = inner.map(|set| fit(norm(set), MAX_SET, false));
        Info::new(
            fit_seq(norm(prefix), MAX_SEQ, false),
            fit_seq(norm(suffix), MAX_SEQ, true),
            [Scored::new(text, MODELS[0]), Scored::new(punct, MODELS[1])],
        )
    }
}

/// `info` of every repeated subtree is computed once per pattern: the CRS's evasion
/// groups (`["'\)\[\\]*(?:...)?` between the letters of a word) recur hundreds of times.
struct Memo<'h> {
    /// (structural hash, node count) of every subtree, in the order `info` visits them.
    shapes: Vec<(u64, usize)>,
    /// Per entry of `shapes`: whether another subtree has its hash (only those are kept).
    repeated: Vec<bool>,
    /// Index in `shapes` of the next node `info` visits.
    next: usize,
    /// Structural hash of a subtree -> the subtrees seen with it and their facts.
    seen: FxHashMap<u64, Vec<(&'h Hir, Info)>>,
}

impl<'h> Memo<'h> {
    fn info(&mut self, h: &'h Hir) -> Info {
        let at = self.next;
        let (key, size) = self.shapes.get(at).copied().unwrap_or((0, 1));
        // Leaves and thin wrappers are cheaper to redo than to look up.
        let memo = self.repeated.get(at).copied().unwrap_or(false)
            && matches!(h.kind(), HirKind::Concat(_) | HirKind::Alternation(_) | HirKind::Repetition(_));
        if memo {
            if let Some(found) = self.seen.get(&key).and_then(|v| v.iter().find(|(k, _)| *k == h)) {
                self.next = at + size;
                return found.1.clone();
            }
        }
        self.next = at + 1;
        let out = self.compute(h);
        self.next = at + size;
        if memo {
            self.seen.entry(key).or_default().push((h, out.clone()));
        }
        out
    }

    fn compute(&mut self, h: &'h Hir) -> Info {
        match h.kind() {
            HirKind::Empty | HirKind::Look(_) => Info::exact(any()),
            HirKind::Literal(l) => Info::literal(&l.0.to_ascii_lowercase()),
            HirKind::Class(c) => match class_bytes(c) {
                Some(bytes) => Info::exact(bytes.into_iter().map(|b| Lit::new(&[b], false).0).collect()),
                None => Info::unknown(),
            },
            HirKind::Capture(c) => self.info(&c.sub),
            HirKind::Concat(hs) => hs.iter().fold(Info::exact(any()), |acc, h| acc.concat(&self.info(h))),
            HirKind::Alternation(hs) => Info::alternation(hs.iter().map(|h| self.info(h)).collect()),
            HirKind::Repetition(r) => {
                if r.max == Some(0) {
                    return Info::exact(any());
                }
                let sub = self.info(&r.sub);
                // Up to two copies unrolled (an exact count up to 16), the rest as `x?` or
                // `x*`: a superset of the repetition's matches.
                let fixed = if r.max == Some(r.min) { r.min.min(16) } else { r.min.min(2) };
                let mut out = Info::exact(any());
                for _ in 0..fixed {
                    out = out.concat(&sub);
                }
                match r.max {
                    Some(max) if max == fixed => out,
                    Some(max) if max == fixed + 1 => out.concat(&sub.optional()),
                    _ => out.concat(&sub.star()),
                }
            }
        }
    }
}

/// (structural hash, node count) of `h` and of every node below it, in pre-order (the
/// order `Memo::info` visits them); equal subtrees hash equal, `==` confirms a hit.
fn shape_hashes(h: &Hir, out: &mut Vec<(u64, usize)>) -> u64 {
    let at = out.len();
    out.push((0, 1));
    let mut s = FxHasher::default();
    match h.kind() {
        HirKind::Empty => 0u8.hash(&mut s),
        HirKind::Literal(l) => (1u8, &l.0).hash(&mut s),
        HirKind::Class(Class::Bytes(b)) => {
            2u8.hash(&mut s);
            b.ranges().iter().for_each(|r| (r.start(), r.end()).hash(&mut s));
        }
        HirKind::Class(Class::Unicode(u)) => {
            3u8.hash(&mut s);
            u.ranges().iter().for_each(|r| (r.start(), r.end()).hash(&mut s));
        }
        HirKind::Look(l) => (4u8, l.as_repr()).hash(&mut s),
        HirKind::Repetition(r) => (5u8, r.min, r.max, r.greedy, shape_hashes(&r.sub, out)).hash(&mut s),
        HirKind::Capture(c) => (6u8, c.index, shape_hashes(&c.sub, out)).hash(&mut s),
        HirKind::Concat(hs) | HirKind::Alternation(hs) => {
            (7u8 + u8::from(matches!(h.kind(), HirKind::Alternation(_))), hs.len()).hash(&mut s);
            hs.iter().for_each(|h| shape_hashes(h, out).hash(&mut s));
        }
    }
    let key = s.finish();
    out[at] = (key, out.len() - at);
    key
}

/// The bytes a class matches, case-folded, when there are few of them.
fn class_bytes(c: &Class) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut add = |s: u32, e: u32| -> Option<()> {
        if e > 0xff || (e - s) as usize + bytes.len() >= 4 * MAX_CLASS {
            return None;
        }
        bytes.extend((s..=e).map(|b| (b as u8).to_ascii_lowercase()));
        Some(())
    };
    match c {
        Class::Bytes(b) => {
            for r in b.ranges() {
                add(u32::from(r.start()), u32::from(r.end()))?;
            }
        }
        Class::Unicode(u) => {
            for r in u.ranges() {
                // Unicode is off: a class beyond ASCII is not one byte per char here.
                if r.end() as u32 > 0x7f {
                    return None;
                }
                add(r.start() as u32, r.end() as u32)?;
            }
        }
    }
    bytes.sort_unstable();
    bytes.dedup();
    (bytes.len() <= MAX_CLASS).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lits(p: &str) -> Option<Vec<String>> {
        required(p).map(|v| v.into_iter().map(|l| String::from_utf8_lossy(&l).into_owned()).collect())
    }

    #[test]
    fn table() {
        assert_eq!(lits("union select"), Some(vec!["union select".into()]));
        // `\s` in a literal: one per space byte.
        let spaced = |f: fn(&str) -> String| ["\t", "\n", "\x0b", "\x0c", "\r", " "].map(f).to_vec();
        assert_eq!(lits(r"(?i)union\s+select"), Some(spaced(|c| format!("union{c}"))));
        // A whole word scores better than its end: `master.`, not `ter.`, which dotted
        // names hold (`filter.array_1`).
        assert_eq!(lits(r"(?i)exec(?:ute)?[\s\x0b]+master\."), Some(spaced(|c| format!("{c}master."))));
        assert_eq!(lits("(?i:foo|barbaz)"), Some(vec!["barbaz".into(), "foo".into()]));
        // Short literals are not selective; a set of them still gates when its literals
        // are rare enough per byte (weak): letter pairs, `/`, `%`, not digits or a space
        // and a letter.
        assert_eq!(lits("a(bcd)?e"), Some(vec!["abcde".into(), "ae".into()]));
        assert_eq!(lits(r"[/\\]|%|0x"), Some(vec!["%".into(), "/".into(), "0x".into(), "\\".into()]));
        assert_eq!(lits(r"[\s,&<>|]").map(|s| s.len()), Some(11));
        assert_eq!(lits("[0-9]+"), None);
        assert_eq!(lits("x|[ ,]"), None);
        assert_eq!(lits(r"^.*$"), None);
        assert_eq!(lits("(?:abc)+xyz"), Some(vec!["abcxyz".into()]));
        assert_eq!(lits("(?:abc)*"), None);
        assert_eq!(lits("[("), None, "invalid patterns give no set");
        // Short literals with a rare byte are selective; `:` only gates weakly.
        assert_eq!(lits(r"a\$b|<"), Some(vec!["<".into(), "a$b".into()]));
        assert_eq!(lits(r"a-b|:"), Some(vec![":".into(), "a-b".into()]));
        // Small classes expand (case folded), neighbours join across optional parts.
        assert_eq!(lits(r"[oOcC]:\d+:\{"), Some((0..10).map(|d| format!("{d}:{{")).collect()));
        assert_eq!(lits(r"(?i)x[ ,]*<"), Some(vec![" <".into(), ",<".into(), "x<".into()]));
        assert_eq!(lits(r"[\n\r;`]|\|\|?"), Some(vec!["\n".into(), "\r".into(), ";".into(), "`".into(), "|".into()]));
        // A required literal inside a repeated group.
        assert_eq!(lits(r"(?:x<y)+"), Some(vec!["x<y".into()]));
        // Literals longer than the cap are cut, still required.
        assert_eq!(lits("abcdefghijklmnopqrstuvwxyz"), Some(vec!["abcdefghijklmno".into()]));
    }

    #[test]
    fn minimal_drops_literals_holding_another() {
        let set = |ls: &[&str]| ls.iter().map(|l| Lit::new(l.as_bytes(), false).0).collect::<Set>();
        let strs = |v: Vec<Vec<u8>>| v.into_iter().map(|l| String::from_utf8(l).unwrap()).collect::<Vec<_>>();
        // Held at the start, the end, the middle, whole; kept when only overlapping.
        let out = minimal(set(&["abx", "xab", "yaby", "ab", "cd", "dce", "c", "zzzzzzzzzzzzzzz"]));
        assert_eq!(strs(out), ["ab", "c", "zzzzzzzzzzzzzzz"]);
        assert_eq!(strs(minimal(set(&["ba", "ab", "aba"]))), ["ab", "ba"]);
        // The empty literal is held by every other.
        assert_eq!(strs(minimal(set(&["abc", "", "x"]))), [""]);
    }

    fn sets(p: &str) -> Vec<Vec<String>> {
        let sets = required_sets(&parse(p).unwrap());
        sets.into_iter().map(|s| s.into_iter().map(|l| String::from_utf8_lossy(&l).into_owned()).collect()).collect()
    }

    #[test]
    fn a_second_set_without_identifier_literals() {
        // Words, then what must follow them: `=`, a command's end, `(`.
        assert_eq!(
            sets(r"(?i)\b(?:allow_url_fopen|zend\.assertions)[\s\x0b]*=[^=]"),
            [vec!["allow_url_fopen", "zend.assertions"], vec!["="]]
        );
        assert_eq!(
            sets(r"(?i)\b(?:env|eval)\w*[\s\x0b,|&]"),
            [vec!["env", "eval"], vec!["\t", "\n", "\x0b", "\x0c", "\r", " ", "&", ",", "|"]]
        );
        // Joined across the two parts, the first set has no identifier-only literal.
        assert_eq!(sets(r"(?i)\b(?:env|eval)[,|&]").len(), 1);
        assert_eq!(sets(r"(?i)java.*\("), [vec!["java"], vec!["("]]);
        // The first set has no identifier-only literal: no second one.
        assert_eq!(sets(r"<script|javascript:"), [vec!["<script", "javascript:"]]);
        // The second best has one (`-`, `.`): none.
        assert_eq!(sets(r"(?i)eval(?:-|\.)"), [vec!["eval-", "eval."]]);
        // No second condition at all; no set at all.
        assert_eq!(sets(r"(?i)select\w+"), [vec!["select"]]);
        assert_eq!(sets("[0-9]+"), Vec::<Vec<String>>::new());
    }

    /// `words` as CRS rule 932340 spells command names: an evasion group between letters.
    fn evaded(words: &[&str]) -> String {
        let group = r#"["'\)\[\x5c]*(?:(?:(?:\|\||&&)[\s\x0b]*)?\$[!#\(\*\-0-9\?@_a-\{]*)?\x5c?"#;
        let spelled: Vec<String> =
            words.iter().map(|w| w.chars().map(String::from).collect::<Vec<_>>().join(group)).collect();
        format!("(?i)(?:{})", spelled.join("|"))
    }

    #[test]
    fn optional_parts_that_start_with_rare_bytes_can_be_read_as_absent() {
        let mut starts = Vec::new();
        let bare = without_rare_optionals(&parse(&evaded(&["strace"])).unwrap(), &mut starts).unwrap();
        assert_eq!(bare, parse("(?i)strace").unwrap());
        starts.sort_unstable();
        starts.dedup();
        assert_eq!(starts, b"\"$&')[\\|");
        // Not a part that can start with a common byte (`-`), nor one that cannot be empty.
        for p in [r"(?i)b(?:-x)?usy", r"(?i)b(?:\$x)usy"] {
            assert_eq!(without_rare_optionals(&parse(p).unwrap(), &mut starts), None, "{p}");
        }
        // One word: letters with a rare byte (`s$`) and the word's start (`str`) are the
        // better set; the pattern is read as it is.
        let h = parse(&evaded(&["strace"])).unwrap();
        assert_eq!(required_sets(&h), sets_of(&h));
    }

    #[test]
    fn crs_932340_is_gated_on_whole_command_names() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/crs/v4/rules/REQUEST-932-APPLICATION-ATTACK-RCE.conf");
        let Ok(text) = std::fs::read_to_string(&file) else {
            eprintln!("SKIPPED: {} not found (the shared CRS data)", file.display());
            return;
        };
        let lines: Vec<&str> = text.lines().collect();
        let at = lines.iter().position(|l| l.contains("id:932340,")).expect("932340 in its file");
        let rule = lines[..at].iter().rev().find(|l| l.starts_with("SecRule")).unwrap();
        let rx = rule.split("\"@rx ").nth(1).unwrap();
        let rx = rx[..rx.rfind('"').unwrap()].replace("\\\"", "\"");
        let translated = crate::operators::pattern::translate(&rx).expect("932340 runs on the regex crate");
        let got = sets(&translated);
        // Still a necessary condition, evasions included.
        let re = regex::bytes::RegexBuilder::new(&translated).unicode(false).build().unwrap();
        for input in ["b$IFSusybox ls", "n\\ohup ps", "s't'race env", "x;ls", "a=w"] {
            assert!(re.is_match(input.as_bytes()), "{input}");
            assert!(got[0].iter().any(|l| input.contains(l.as_str())), "{input}: {got:?}");
        }
        // Read as it is: `st`, `lt`, `nv`, which dotted JSON names (`host`) hold.
        for weak in ["st", "lt", "nv"] {
            assert!(!got[0].iter().any(|l| l == weak), "{weak} in {got:?}");
        }
        for l in ["busybox", "nohup", "strace", "\"", "$", "\\"] {
            assert!(got[0].iter().any(|x| x == l), "{l} not in {got:?}");
        }
    }

    /// The set is a necessary condition: whenever the regex matches, a literal occurs.
    #[test]
    fn necessary_condition_on_samples() {
        let pats = [
            r"(?i)union\s+(?:all\s+)?select",
            r"<script[^>]*>",
            r"(?:etc/passwd|boot\.ini)",
            r"\bjava\.lang\.(?:runtime|processbuilder)",
            r"(?i)(?:\$|&dollar;?)(?:\{|&l(?:brace|cub);?)(?:[^\}]{0,15}(?:\$|&dollar;?)(?:\{|&l(?:brace|cub);?)|jndi|ctx)",
            r"[oOcC]:\d+:\x22.+?\x22:\d+:\{.*}",
            r"(?i)[\t-\r \x22'\(,/-9;=`]on[a-z]{3,50}[\t-\r \(,;]*?=[^=]",
            r"(?i)(?:j|&#0*74;)(?:[\t\n\r]|&tab;)*(?:a|&#0*65;)(?:[\t\n\r]|&tab;)*v",
            r"(?:[/\x5c]|%2f|0x2f)(?:\.|%2e){2,3}(?:[/\x5c]|%2f)",
            &evaded(&["strace", "nohup", "busybox"]),
        ];
        let inputs: [&[u8]; 20] = [
            b"1 UNION ALL SELECT 2",
            b"<SCRIPT src=x>",
            b"../../etc/passwd",
            b"java.lang.Runtime",
            b"benign",
            b"BOOT.INI",
            b"${jndi:ldap://x}",
            b"&DOLLAR&lcub;ctx",
            b"O:8:\"stdClass\":1:{s:1:\"a\";}",
            b"x onload=alert(1)",
            b"'ONMOUSEOVER =x",
            b"j\t\ta&tab;v",
            b"&#074;&#65;V",
            b"jav",
            b"/../x",
            b"0x2f%2e.%2f",
            b"strace",
            b"N\\o'h\"UP",
            b"b$IFSusybox",
            b"s||$t)race",
        ];
        for p in pats {
            let p: &str = p;
            let set = required(p).unwrap_or_else(|| panic!("{p} has no set"));
            let re = regex::bytes::RegexBuilder::new(p).unicode(false).build().unwrap();
            for i in inputs {
                if re.is_match(i) {
                    assert!(
                        set.iter().any(|l| i.windows(l.len()).any(|w| w.eq_ignore_ascii_case(l))),
                        "{p} on {:?}: {set:?}",
                        String::from_utf8_lossy(i)
                    );
                }
            }
        }
    }
}
