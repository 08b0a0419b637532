//! The rule-set prefilter: one Aho-Corasick scan per (value, transformation list)
//! decides which rules can still match it.
//!
//! The automata are `daachorse`'s double-array Aho-Corasick over the lower-cased
//! literals, fed the value lower-cased on the fly: on the CRS's ~7,800 literals it scans
//! about twice as fast as the `aho-corasick` crate's NFA with ASCII case folding (its DFA
//! is barely faster and takes 84 MB), in half the memory.
//!
//! At load, every rule link whose operator has required literals (see
//! [`crate::operators::Operator::required_literals`]) gets a bit in the gate of its
//! transformation list. Per transaction, a transformed value is scanned once by that
//! gate; a rule whose bit is not set cannot match the value and its operator is not run.
//! Negated operators are never gated. A `multiMatch` link runs on each stage of its
//! transformations: it has a bit in the gate of each stage's prefix of the list. A link
//! with two required sets has a bit per set besides its own, which a scan sets when both
//! are (see [`Literals::conjoin`]).

use daachorse::DoubleArrayAhoCorasick;
use rustc_hash::FxHashMap;

/// One gate: the literals of every gated rule sharing a transformation list (scanned
/// through [`Literals`]), and the scan of an empty value.
#[derive(Debug)]
pub struct Gate {
    lits: Literals,
    /// The scan of an empty value (where unions of a collection's values start).
    empty: Vec<u64>,
}

impl Gate {
    /// The scan of an empty value, computed once.
    pub fn empty_scan(&self) -> &[u64] {
        &self.empty
    }
}

/// A gate scans as its literals do.
impl std::ops::Deref for Gate {
    type Target = Literals;
    fn deref(&self) -> &Literals {
        &self.lits
    }
}

/// Every gate's literals in one automaton: a value that a transformation list leaves
/// unchanged is scanned once for all those gates instead of once per gate. Each literal
/// sets global bits (gate offset + rule bit).
#[derive(Clone, Debug)]
pub struct Combined {
    lits: Literals,
    /// First global bit of each gate, then the total.
    offsets: Vec<u32>,
}

/// The combined automaton scans as its literals do.
impl std::ops::Deref for Combined {
    type Target = Literals;
    fn deref(&self) -> &Literals {
        &self.lits
    }
}

impl Combined {
    /// Whether gate `g`'s `bit` is set in a combined scan result.
    pub fn has(&self, bits: &[u64], g: u32, bit: u32) -> bool {
        self.offsets.get(g as usize).is_some_and(|o| has(bits, o + bit))
    }

    /// Gate `g`'s own bits out of a combined scan, as the gate's own scan gives them.
    pub fn gate_bits(&self, bits: &[u64], g: u32) -> Vec<u64> {
        let mut out = vec![0u64; self.gate_len(g).div_ceil(64)];
        self.or_gate_bits(bits, g, &mut out);
        out
    }

    fn gate_len(&self, g: u32) -> usize {
        let g = g as usize;
        match (self.offsets.get(g), self.offsets.get(g + 1)) {
            (Some(a), Some(b)) => (b - a) as usize,
            _ => 0,
        }
    }

    /// ORs gate `g`'s own bits out of a combined scan into `out` (a union over values,
    /// without a vector per value).
    pub fn or_gate_bits(&self, bits: &[u64], g: u32, out: &mut [u64]) {
        let (o, n) = (self.offsets.get(g as usize).copied().unwrap_or(0) as usize, self.gate_len(g));
        // Word-wise shifted copy of bits o..o+n.
        let (w0, sh) = (o / 64, o % 64);
        let words = n.div_ceil(64);
        for (k, word) in out.iter_mut().take(words).enumerate() {
            let lo = bits.get(w0 + k).copied().unwrap_or(0) >> sh;
            let hi = if sh == 0 { 0 } else { bits.get(w0 + k + 1).copied().unwrap_or(0) << (64 - sh) };
            let mut w = lo | hi;
            if k + 1 == words && n % 64 != 0 {
                w &= (1u64 << (n % 64)) - 1;
            }
            *word |= w;
        }
    }
}

/// The combined automaton per scan domain (the request data a raw value comes from, see
/// `transaction::state::slot_domain`): a domain whose rules need at most a third of all
/// the literals gets its own automaton with only those. A 1 MB body is then scanned for the
/// few rules that read `REQUEST_BODY`, not for all 7,800 CRS literals. (A domain needing
/// half is scanned no faster by its own automaton, which costs memory: CRS v4 at PL4 had
/// three such, +2-3 MB of worker RSS.)
#[derive(Clone, Debug)]
pub struct DomainScans {
    all: Combined,
    own: Vec<Combined>,
    /// Per domain: 0 for `all`, k for `own[k - 1]`.
    of: Vec<u16>,
}

impl DomainScans {
    /// The automaton for raw values of domain `d` (the full one for a domain not known).
    pub fn get(&self, d: usize) -> &Combined {
        match self.of.get(d) {
            Some(&k) if k > 0 => &self.own[k as usize - 1],
            _ => &self.all,
        }
    }

    /// The automaton of every gate's literals.
    pub fn all(&self) -> &Combined {
        &self.all
    }

    /// Whether the scan of a text in domain `whole` may be taken as the union of domain
    /// `part`'s scans of its pieces between `cuts` bytes, with the scan of each cut byte
    /// the text holds: no literal of `whole` but a cut alone contains a cut, so none
    /// spans two pieces, and `part` looks for all of `whole`'s literals, setting the same
    /// bits (and maybe more, which only lets more rules run) in scan results of the same
    /// length.
    pub fn union_of_pieces(&self, whole: usize, part: usize, cuts: &[u8]) -> bool {
        let of = |d: usize| self.of.get(d).copied().unwrap_or(0);
        (of(part) == 0 || of(part) == of(whole))
            && self.get(part).words() == self.get(whole).words()
            && !cuts.iter().any(|&b| self.get(whole).in_longer_literal(b))
    }
}

/// Literals found ASCII case-insensitively, overlapping occurrences too, each setting
/// the bits of the rules that require it: what a [`Gate`] and the [`Combined`]
/// automaton scan with.
#[derive(Clone)]
pub struct Literals {
    /// Over the distinct lower-cased non-empty literals (None when there are none); a
    /// literal's value is its index in `bits_of`.
    pma: Option<DoubleArrayAhoCorasick<u32>>,
    bits_of: Vec<Vec<u32>>,
    /// Bits of rules with an empty literal: it occurs in every value.
    always: Vec<u32>,
    /// Length of a scan result, in words.
    words: usize,
    /// The bytes that occur in the literals longer than one byte (lower-cased), as a
    /// 256-bit set.
    longer_bytes: [u64; 4],
    /// (link bit, first set's bit, second set's bit) of links gated on two sets.
    both: Vec<(u32, u32, u32)>,
    /// The longest literal's length.
    max_len: usize,
}

/// The last value [`Literals::scan_after_into`] scanned, and where its literals end: the
/// next value's scan starts near the end of the prefix they share.
#[derive(Debug, Default)]
pub struct PrevScan {
    /// The automaton that scanned it (its address).
    by: usize,
    bytes: Vec<u8>,
    /// (end, literal) of every occurrence, in order of their ends.
    found: Vec<(u32, u32)>,
}

impl PrevScan {
    /// Forgets the value (its room kept).
    pub fn clear(&mut self) {
        self.by = 0;
        self.bytes.clear();
        self.found.clear();
    }
}

impl std::fmt::Debug for Literals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Literals").field("literals", &self.bits_of.len()).field("always", &self.always).finish()
    }
}

impl Literals {
    /// (literal, bit) pairs, with bits below `bits`, and the links gated on two sets.
    fn new<'a>(
        literals: impl IntoIterator<Item = (&'a [u8], u32)>,
        bits: u32,
        both: Vec<(u32, u32, u32)>,
    ) -> Result<Literals, String> {
        let mut index: FxHashMap<Vec<u8>, usize> = FxHashMap::default();
        let (mut pats, mut bits_of, mut always) = (Vec::new(), Vec::<Vec<u32>>::new(), Vec::new());
        for (lit, bit) in literals {
            if lit.is_empty() {
                always.push(bit);
                continue;
            }
            let i = *index.entry(lit.to_ascii_lowercase()).or_insert_with_key(|k| {
                pats.push(k.clone());
                bits_of.push(Vec::new());
                pats.len() - 1
            });
            bits_of[i].push(bit);
        }
        let mut longer_bytes = [0u64; 4];
        pats.iter().filter(|p| p.len() > 1).flatten().for_each(|&b| longer_bytes[b as usize / 64] |= 1 << (b % 64));
        let pma = if pats.is_empty() {
            None
        } else {
            Some(DoubleArrayAhoCorasick::new(&pats).map_err(|e| format!("cannot build the rule prefilter: {e}"))?)
        };
        let max_len = pats.iter().map(Vec::len).max().unwrap_or(0);
        Ok(Literals { pma, bits_of, always, words: (bits as usize).div_ceil(64), longer_bytes, both, max_len })
    }

    /// The bits of the rules that may match `value`.
    pub fn scan(&self, value: &[u8]) -> Vec<u64> {
        let mut bits = Vec::new();
        self.scan_into(value, &mut bits);
        bits
    }

    /// [`Literals::scan`], appended to `out` (a cache keeps many results in one vector).
    pub fn scan_into(&self, value: &[u8], out: &mut Vec<u64>) {
        let start = out.len();
        out.resize(start + self.words, 0);
        let bits = &mut out[start..];
        self.find(value, bits);
        self.conjoin(bits);
    }

    /// [`Literals::scan_into`] for a value that may share a long prefix with the one
    /// before (JSON argument names: `json.query.bool.filter.0.range…`): an occurrence that
    /// ends within the shared prefix is one of the previous value's, and the automaton's
    /// state at the prefix's end is the one it reaches from its start over the prefix's
    /// last `max_len` bytes (no literal is longer), so only those and the rest are walked.
    pub fn scan_after_into(&self, value: &[u8], out: &mut Vec<u64>, prev: &mut PrevScan) {
        let start = out.len();
        out.resize(start + self.words, 0);
        let bits = &mut out[start..];
        self.always.iter().for_each(|&b| set_bit(bits, b));
        let by = self as *const Literals as usize;
        let shared = if prev.by == by { value.iter().zip(&prev.bytes).take_while(|(a, b)| a == b).count() } else { 0 };
        // Occurrences within the shared prefix: the previous value's (in order of their ends).
        let kept = prev.found.partition_point(|&(end, _)| end as usize <= shared);
        prev.found.truncate(kept);
        prev.found.iter().for_each(|&(_, lit)| self.set_literal(lit, bits));
        let from = shared.saturating_sub(self.max_len);
        self.walk(&value[from..], |m| {
            let end = from + m.end();
            if end > shared {
                self.set_literal(m.value(), bits);
                prev.found.push((end as u32, m.value()));
            }
        });
        prev.by = by;
        prev.bytes.clear();
        prev.bytes.extend_from_slice(value);
        self.conjoin(&mut out[start..]);
    }

    /// Sets the bit of each link gated on two sets whose both bits are set: after a scan,
    /// or after a union of the scans of a text's pieces (a literal of each may lie in a
    /// different piece).
    pub fn conjoin(&self, bits: &mut [u64]) {
        for &(link, a, b) in &self.both {
            if has(bits, a) && has(bits, b) {
                set_bit(bits, link);
            }
        }
    }

    /// Sets the bits of the literals found in `value`.
    fn find(&self, value: &[u8], bits: &mut [u64]) {
        self.always.iter().for_each(|&b| set_bit(bits, b));
        self.walk(value, |m| self.set_literal(m.value(), bits));
    }

    /// Sets the bits of the rules that require literal `lit`.
    fn set_literal(&self, lit: u32, bits: &mut [u64]) {
        self.bits_of[lit as usize].iter().for_each(|&b| set_bit(bits, b));
    }

    /// Every occurrence of a literal in `value`, ASCII case folded, in order of their ends.
    fn walk(&self, value: &[u8], mut found: impl FnMut(daachorse::Match<u32>)) {
        let Some(pma) = &self.pma else { return };
        // The automaton walks a slice faster than a lower-casing iterator (1 MB: 2.5 ms
        // against 2.2 ms on the CRS's literals, 1.6 against 0.9 ms on a few hundred);
        // most values have no upper case and are walked as they are.
        if !crate::transformations::case::has_uppercase(value) {
            return pma.find_overlapping_iter(value).for_each(found);
        }
        LOWERED.with(|buf| match buf.try_borrow_mut() {
            Ok(mut buf) => {
                buf.clear();
                buf.extend(value.iter().map(u8::to_ascii_lowercase));
                pma.find_overlapping_iter(&*buf).for_each(&mut found);
                // A large body's copy is not kept for the thread's life.
                if buf.capacity() > LOWERED_KEPT {
                    *buf = Vec::new();
                }
            }
            Err(_) => pma.find_overlapping_iter_from_iter(value.iter().map(u8::to_ascii_lowercase)).for_each(found),
        });
    }

    /// How many distinct literals it looks for.
    #[cfg(test)]
    fn count(&self) -> usize {
        self.bits_of.len()
    }

    /// The length of a scan result.
    pub fn words(&self) -> usize {
        self.words
    }

    /// Whether some literal longer than one byte contains `b` (or its upper case).
    fn in_longer_literal(&self, b: u8) -> bool {
        let b = b.to_ascii_lowercase();
        self.longer_bytes[b as usize / 64] & (1 << (b % 64)) != 0
    }
}

thread_local! {
    /// A value lower-cased for scanning.
    static LOWERED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The largest lower-casing buffer a thread keeps between scans.
const LOWERED_KEPT: usize = 64 << 10;

fn set_bit(bits: &mut [u64], bit: u32) {
    bits[bit as usize / 64] |= 1 << (bit % 64);
}

/// Whether `bit` is set in a scan result.
pub fn has(bits: &[u64], bit: u32) -> bool {
    bits.get(bit as usize / 64).is_some_and(|w| w & (1 << (bit % 64)) != 0)
}

/// ORs a scan result into `out` (a union of scans).
pub fn or_into(out: &mut [u64], bits: &[u64]) {
    out.iter_mut().zip(bits).for_each(|(o, b)| *o |= b);
}

/// One gate's literals while the rule set is compiled.
#[derive(Default)]
struct Group {
    transform_key: u32,
    pats: Vec<Vec<u8>>,
    /// The bit each pattern sets.
    bit_of: Vec<u32>,
    /// The link (its bit) each pattern is there for: what a scan domain keeps it for.
    owner: Vec<u32>,
    /// (link bit, first set's bit, second set's bit) of links gated on two sets.
    both: Vec<(u32, u32, u32)>,
    bits: u32,
}

/// Longest literal a gate looks for: a required literal's start is required too, and
/// long ones (php-errors.data's phrases run to 355 bytes) would make the automata several
/// times larger. The `@rx` analysis keeps no longer ones either.
pub const GATE_LEN: usize = crate::operators::literals::LIT_CAP;

impl Group {
    fn push(&mut self, literals: Vec<Vec<u8>>, bit: u32, owner: u32) {
        for mut l in literals {
            l.truncate(GATE_LEN);
            self.pats.push(l);
            self.bit_of.push(bit);
            self.owner.push(owner);
        }
    }
}

/// Collects literals per transformation list while the rule set is compiled.
#[derive(Default)]
pub struct GateBuilder {
    groups: Vec<Group>,
}

impl GateBuilder {
    /// Registers a rule link that needs a literal of `literals` and, when given, one of
    /// `also`; returns its (gate, bit).
    pub fn add(&mut self, transform_key: u32, literals: Vec<Vec<u8>>, also: Option<Vec<Vec<u8>>>) -> (u32, u32) {
        let g = match self.groups.iter().position(|g| g.transform_key == transform_key) {
            Some(g) => g,
            None => {
                self.groups.push(Group { transform_key, ..Group::default() });
                self.groups.len() - 1
            }
        };
        let group = &mut self.groups[g];
        let bit = group.bits;
        match also {
            None => {
                group.bits += 1;
                group.push(literals, bit, bit);
            }
            Some(also) => {
                group.bits += 3;
                group.push(literals, bit + 1, bit);
                group.push(also, bit + 2, bit);
                group.both.push((bit, bit + 1, bit + 2));
            }
        }
        (g as u32, bit)
    }

    /// The automaton of every gate's literals at once (tests: the load builds it with the
    /// rest in [`GateBuilder::build_all`]).
    #[cfg(test)]
    fn combined(&self) -> Result<Combined, String> {
        let (all, bits, offsets, both) = self.combined_input(|_, _| true);
        Ok(Combined { lits: Literals::new(all, bits, both)?, offsets })
    }

    /// What a combined automaton of the (gate, bit) rule links `keep` picks is built from:
    /// (literal, global bit) pairs, the number of bits, each gate's first bit, the links
    /// gated on two sets (global bits). Its scans have the layout of the one over every
    /// link, the other links' bits never set.
    fn combined_input(&self, keep: impl Fn(u32, u32) -> bool) -> CombinedInput<'_> {
        let mut offsets = Vec::new();
        let mut next = 0u32;
        let (mut all, mut both) = (Vec::new(), Vec::new());
        for (g, group) in self.groups.iter().enumerate() {
            offsets.push(next);
            all.extend(
                (group.pats.iter().zip(&group.bit_of).zip(&group.owner))
                    .filter(|(_, &owner)| keep(g as u32, owner))
                    .map(|((p, &b), _)| (p.as_slice(), next + b)),
            );
            both.extend(
                group.both.iter().filter(|x| keep(g as u32, x.0)).map(|&(l, a, b)| (next + l, next + a, next + b)),
            );
            next += group.bits;
        }
        offsets.push(next);
        (all, next, offsets, both)
    }

    /// Per domain: 0 when it scans with the combined automaton, k for the k-th of the
    /// returned inputs, its own automaton's.
    fn domain_inputs(&self, links: &[Vec<(u32, u32)>]) -> Result<(Vec<u16>, Vec<CombinedInput<'_>>), String> {
        let (mut own, mut of) = (Vec::new(), Vec::with_capacity(links.len()));
        let mut seen: FxHashMap<Vec<(u32, u32)>, u16> = FxHashMap::default();
        for set in links {
            let mut set = set.clone();
            set.sort_unstable();
            set.dedup();
            if let Some(&k) = seen.get(&set) {
                of.push(k);
                continue;
            }
            let keep: rustc_hash::FxHashSet<(u32, u32)> = set.iter().copied().collect();
            let keep = |g: u32, b: u32| keep.contains(&(g, b));
            // Counted before building: most domains read nearly every rule's literals.
            let (kept, total) = self.groups.iter().enumerate().fold((0, 0), |(k, t), (g, group)| {
                (k + group.owner.iter().filter(|&&b| keep(g as u32, b)).count(), t + group.owner.len())
            });
            let k = if kept * 3 <= total {
                own.push(self.combined_input(keep));
                u16::try_from(own.len()).map_err(|_| "too many prefilter domains".to_string())?
            } else {
                0
            };
            seen.insert(set, k);
            of.push(k);
        }
        Ok((of, own))
    }

    /// The gates, and the automata per scan domain from the (gate, bit) rule links that
    /// read each domain, built on two cores when the machine has them (a third of a CRS
    /// load).
    pub fn build_all(&self, links: &[Vec<(u32, u32)>]) -> Result<(Vec<Gate>, DomainScans), String> {
        let (of, own) = self.domain_inputs(links)?;
        let all = self.combined_input(|_, _| true);
        // One job per automaton: the gates', the combined one, the domains' own.
        let gates = self.groups.len();
        let combined = |k: usize| if k == 0 { &all } else { &own[k - 1] };
        let costs: Vec<usize> = (0..gates + 1 + own.len())
            .map(|i| match self.groups.get(i) {
                Some(g) => g.pats.len(),
                None => combined(i - gates).0.len(),
            })
            .collect();
        let built = crate::prebuild::on_two_cores(&costs, |i| match self.groups.get(i) {
            Some(g) => {
                Literals::new(g.pats.iter().map(Vec::as_slice).zip(g.bit_of.iter().copied()), g.bits, g.both.clone())
            }
            None => {
                let (lits, bits, _, both) = combined(i - gates);
                Literals::new(lits.iter().copied(), *bits, both.clone())
            }
        });
        let mut lits = Vec::with_capacity(built.len());
        for (r, helper) in built {
            let l = r?;
            // Copied here: what lives as long as the rule set is allocated by this thread,
            // not left in the helper's arena, where a reload's free and the next build
            // fragment the master's heap (seen: +2.7 MB RSS per reload).
            lits.push(if helper { l.clone() } else { l });
        }
        let mut lits = lits.into_iter();
        let gates: Vec<Gate> = lits
            .by_ref()
            .take(gates)
            .map(|lits| {
                let empty = lits.scan(b"");
                Gate { lits, empty }
            })
            .collect();
        let missing = || "the prefilter build lost an automaton".to_string();
        let all = Combined { lits: lits.next().ok_or_else(missing)?, offsets: all.2 };
        let own = lits.zip(own).map(|(lits, (_, _, offsets, _))| Combined { lits, offsets }).collect();
        Ok((gates, DomainScans { all, own, of }))
    }

    /// The gates alone (tests).
    #[cfg(test)]
    fn build(&self) -> Result<Vec<Gate>, String> {
        Ok(self.build_all(&[])?.0)
    }
}

/// (literal, global bit) pairs, the number of bits, each gate's first bit, the links
/// gated on two sets.
type CombinedInput<'a> = (Vec<(&'a [u8], u32)>, u32, Vec<u32>, Vec<(u32, u32, u32)>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_fold_ascii_case_overlap_and_handle_empty_sets() {
        let bits = |l: &Literals, v: &[u8]| {
            let mut out = Vec::new();
            l.scan_into(v, &mut out);
            (0..8).filter(|&b| has(&out, b)).collect::<Vec<u32>>()
        };
        // Mixed-case duplicates share one literal; overlapping occurrences all count.
        let l = Literals::new([(&b"abc"[..], 0), (b"ABC", 1), (b"bcd", 2), (b"\xc9t\xc9", 3), (b"zz", 4)], 8, vec![])
            .unwrap();
        assert_eq!(bits(&l, b"xAbCd"), [0, 1, 2]);
        // Only ASCII folds: 0xC9 and 0xE9 stay different bytes.
        assert_eq!(bits(&l, b"\xc9T\xc9"), [3]);
        assert_eq!(bits(&l, b"\xe9t\xe9"), Vec::<u32>::new());
        // An empty literal occurs in every value, the empty one included.
        let l = Literals::new([(&b""[..], 5), (b"q", 6)], 8, vec![]).unwrap();
        assert_eq!(bits(&l, b""), [5]);
        assert_eq!(bits(&l, b"Q"), [5, 6]);
        // No literals at all.
        let l = Literals::new(std::iter::empty(), 8, vec![]).unwrap();
        assert_eq!(bits(&l, b"anything"), Vec::<u32>::new());
    }

    #[test]
    fn a_scan_after_a_value_with_a_shared_prefix_finds_what_a_whole_scan_does() {
        // Literals up to 6 bytes, on both sides of where prefixes part, a pair gated on two
        // sets (bit 9: "json" and "gte").
        let lits: &[(&[u8], u32)] = &[
            (b"json.q", 0),
            (b"query", 1),
            (b"y.b", 2),
            (b"bool", 3),
            (b"filter", 4),
            (b".", 5),
            (b"gte", 6),
            (b"a", 7),
            (b"json", 8),
            (b"gte", 10),
        ];
        let l = Literals::new(lits.iter().copied(), 12, vec![(9, 8, 10)]).unwrap();
        let other = Literals::new([(&b"bool"[..], 0)], 12, vec![]).unwrap();
        let mut prev = PrevScan::default();
        let mut values: Vec<Vec<u8>> = [
            "json.query.bool.filter.0.range.@timestamp.gte",
            "json.query.bool.filter.0.range.@timestamp.lte",
            "json.query.bool.filter.0.range.@timestamp.format",
            "json.query.bool.filter.1.match_phrase.host.name",
            "json.query.bool.Filter.1",
            "json.query.bool",
            "json.query.bool.filter.2.ra",
            "json.query",
            "JSON.QUERY.BOOL.GTE",
            "",
            "json.aggs.a",
        ]
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .collect();
        // And pseudo-random ones over a small alphabet, so that prefixes are shared at
        // every length and literals straddle where they part.
        let mut x = 0x2545f491u32;
        for _ in 0..400 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let base = values[x as usize % values.len()].clone();
            let keep = (x >> 8) as usize % (base.len() + 1);
            let tail: Vec<u8> =
                (0..(x >> 16) % 12).map(|i| b"jsonqueryb.olftgeaJS"[((x >> i) % 20) as usize]).collect();
            values.push([&base[..keep], &tail[..]].concat());
        }
        for (i, v) in values.iter().enumerate() {
            // Now and then another automaton scans in between.
            if i % 7 == 3 {
                other.scan_after_into(v, &mut Vec::new(), &mut prev);
            }
            let (mut whole, mut after) = (Vec::new(), Vec::new());
            l.scan_into(v, &mut whole);
            l.scan_after_into(v, &mut after, &mut prev);
            assert_eq!(whole, after, "{:?}", String::from_utf8_lossy(v));
        }
    }

    #[test]
    fn gate_sets_bits_of_rules_whose_literals_occur() {
        let mut b = GateBuilder::default();
        let (g0, r0) = b.add(7, vec![b"select".to_vec(), b"union".to_vec()], None);
        let (g1, r1) = b.add(7, vec![b"<script".to_vec()], None);
        let (g2, _) = b.add(9, vec![b"passwd".to_vec()], None);
        assert_eq!((g0, g1), (0, 0));
        assert_eq!(g2, 1);
        let all = b.combined().unwrap();
        let gates = b.build().unwrap();
        let bits = gates[0].scan(b"1 UNION SELECT 2");
        // The combined automaton says the same for every gate.
        for v in [&b"1 UNION SELECT 2"[..], b"benign text", b"/etc/PASSWD <script", b""] {
            let c = all.scan(v);
            for g in 0..2u32 {
                assert_eq!(all.gate_bits(&c, g), gates[g as usize].scan(v), "{v:?} gate {g}");
                for bit in 0..2 {
                    assert_eq!(all.has(&c, g, bit), has(&gates[g as usize].scan(v), bit), "{v:?} {g} {bit}");
                }
            }
        }
        assert!(has(&bits, r0) && !has(&bits, r1));
        let bits = gates[0].scan(b"benign text");
        assert!(!has(&bits, r0) && !has(&bits, r1));
    }

    #[test]
    fn a_gate_looks_for_a_long_literals_start() {
        // A phrase of `@pmFromFile` (31 bytes): its gate and the combined automaton fire on
        // its first 15 bytes; the operator still wants the whole phrase.
        let mut b = GateBuilder::default();
        let (_, bit) = b.add(3, vec![b"Fatal error: Uncaught exception".to_vec()], None);
        let all = b.combined().unwrap();
        let gates = b.build().unwrap();
        for (v, want) in [(&b"PHP Fatal error: Unknown"[..], true), (b"Fatal error: U", false)] {
            assert_eq!(has(&gates[0].scan(v), bit), want, "{v:?}");
            assert_eq!(all.has(&all.scan(v), 0, bit), want, "{v:?}");
        }
    }

    #[test]
    fn domain_automata_hold_only_their_rules_literals() {
        let mut b = GateBuilder::default();
        let body = b.add(1, vec![b"%uff".to_vec()], None);
        let args: Vec<(u32, u32)> = (0..6).map(|i| b.add(2, vec![format!("word{i}").into_bytes()], None)).collect();
        let mut everything = args.clone();
        everything.push(body);
        // Domain 0 reads one rule of seven, 1 and 3 read the same six, 2 reads all, 4 none.
        let d = b.build_all(&[vec![body], args.clone(), everything, args.clone(), vec![]]).unwrap().1;
        let value = b"word1 %UFF word5";
        let full = d.all().scan(value);
        let on = |c: &Combined, (g, bit): (u32, u32)| c.has(&c.scan(value), g, bit);
        // The body domain finds its literal and, in its own small automaton, nothing else.
        assert!(on(d.get(0), body));
        assert!(!on(d.get(0), args[1]));
        assert_eq!(d.get(0).count(), 1);
        // Identical sets share one automaton; over a third of the literals: the full one.
        assert!(std::ptr::eq(d.get(1), d.get(3)));
        assert!(std::ptr::eq(d.get(2), d.all()));
        assert!(std::ptr::eq(d.get(1), d.all()));
        assert!(on(d.get(1), args[1]) && on(d.get(1), args[5]) && !on(d.get(1), args[2]));
        // No rules: no literals; an unknown domain gets the full automaton.
        assert_eq!(d.get(4).count(), 0);
        assert!(std::ptr::eq(d.get(99), d.all()));
        // Kept links read the same bits as in the full scan.
        assert_eq!(d.get(0).scan(value)[0] & 1 << body.1, full[0] & 1 << body.1);
    }

    #[test]
    fn links_on_two_sets_need_a_literal_of_each() {
        let mut b = GateBuilder::default();
        let filler: Vec<(u32, u32)> = (0..6).map(|i| b.add(2, vec![format!("word{i}").into_bytes()], None)).collect();
        let two = b.add(2, vec![b"zend".to_vec(), b"allow".to_vec()], Some(vec![b"=".to_vec()]));
        let one = b.add(2, vec![b"zend".to_vec()], None);
        // Domain 0 reads the two-set link alone (its own automaton), domain 1 everything.
        let mut everything = filler.clone();
        everything.extend([two, one]);
        let (gates, d) = b.build_all(&[vec![two], everything]).unwrap();
        for (value, both) in
            [(&b"zend"[..], false), (b"x=1", false), (b"ZEND=1", true), (b"allow =", true), (b"", false)]
        {
            let g = two.0;
            let scans = [
                gates[g as usize].scan(value),
                d.all().gate_bits(&d.all().scan(value), g),
                d.get(0).gate_bits(&d.get(0).scan(value), g),
            ];
            for (i, bits) in scans.iter().enumerate() {
                assert_eq!(has(bits, two.1), both, "{value:?}");
                // `one` needs `zend` alone, and only where its literal is looked for (not
                // in domain 0).
                let zend = value.to_ascii_lowercase().starts_with(b"zend");
                assert_eq!(has(bits, one.1), zend && i < 2, "{value:?}");
            }
        }
        // The domain's own automaton holds the link's two sets and nothing else.
        assert!(!std::ptr::eq(d.get(0), d.all()));
        assert_eq!(d.get(0).count(), 3);
        // A union of pieces' scans, then conjoined: the literals lie in different pieces.
        let gate = &gates[two.0 as usize];
        let mut union = gate.scan(b"zend");
        or_into(&mut union, &gate.scan(b"="));
        assert!(!has(&union, two.1));
        gate.conjoin(&mut union);
        assert!(has(&union, two.1));
    }

    #[test]
    fn combined_scan_splits_into_multi_word_gates() {
        let mut b = GateBuilder::default();
        for g in 0..3u32 {
            for i in 0..(50 + 20 * g) {
                b.add(g, vec![format!("w{g}x{i}y").into_bytes()], None);
            }
        }
        let all = b.combined().unwrap();
        let gates = b.build().unwrap();
        let value = b"w0x3y w0x49y w1x0y w1x65y w2x64y w2x99y w2x109y W1X69Y";
        let c = all.scan(value);
        for g in 0..3u32 {
            let own = gates[g as usize].scan(value);
            assert_eq!(all.gate_bits(&c, g), own, "gate {g}");
            assert!(own.iter().any(|w| *w != 0), "gate {g}");
        }
    }
}
