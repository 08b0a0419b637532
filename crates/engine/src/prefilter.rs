//! The rule-set prefilter: one Aho-Corasick scan per (value, transformation list)
//! decides which rules can still match it.
//!
//! At load, every rule link whose operator has required literals (see
//! [`crate::operators::Operator::required_literals`]) gets a bit in the gate of its
//! transformation list. Per transaction, a transformed value is scanned once by that
//! gate; a rule whose bit is not set cannot match the value and its operator is not run.
//! Negated operators and `multiMatch` rules are never gated.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// One gate: the literals of every gated rule sharing a transformation list.
#[derive(Debug)]
pub struct Gate {
    ac: AhoCorasick,
    /// Rule bit of each pattern.
    bit_of: Vec<u32>,
    words: usize,
    /// The scan of an empty value (where unions of a collection's values start).
    empty: Vec<u64>,
}

impl Gate {
    /// [`Gate::scan`] of an empty value, computed once.
    pub fn empty_scan(&self) -> &[u64] {
        &self.empty
    }

    /// The bits of the rules that may match `value`.
    pub fn scan(&self, value: &[u8]) -> Vec<u64> {
        let mut bits = Vec::new();
        self.scan_into(value, &mut bits);
        bits
    }

    /// [`Gate::scan`], appended to `out` (a cache keeps many results in one vector).
    pub fn scan_into(&self, value: &[u8], out: &mut Vec<u64>) {
        scan_bits(&self.ac, value, self.words, |p| std::slice::from_ref(&self.bit_of[p]), out)
    }

    /// The length of a scan result.
    pub fn words(&self) -> usize {
        self.words
    }
}

/// Every gate's literals in one automaton: a value that a transformation list leaves
/// unchanged is scanned once for all those gates instead of once per gate.
#[derive(Debug)]
pub struct Combined {
    ac: AhoCorasick,
    /// Global bits (gate offset + rule bit) of each distinct literal.
    bits_of: Vec<Vec<u32>>,
    /// First global bit of each gate, then the total.
    offsets: Vec<u32>,
    words: usize,
}

impl Combined {
    /// The global bits of every gate's rules that may match `value`.
    pub fn scan(&self, value: &[u8]) -> Vec<u64> {
        let mut bits = Vec::new();
        self.scan_into(value, &mut bits);
        bits
    }

    /// [`Combined::scan`], appended to `out`.
    pub fn scan_into(&self, value: &[u8], out: &mut Vec<u64>) {
        scan_bits(&self.ac, value, self.words, |p| &self.bits_of[p], out)
    }

    /// The length of a scan result.
    pub fn words(&self) -> usize {
        self.words
    }

    /// Whether gate `g`'s `bit` is set in a [`Combined::scan`] result.
    pub fn has(&self, bits: &[u64], g: u32, bit: u32) -> bool {
        self.offsets.get(g as usize).is_some_and(|o| has(bits, o + bit))
    }

    /// Gate `g`'s own bits out of a combined scan, as [`Gate::scan`] gives them.
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

/// Every literal occurrence (overlapping ones too) sets the bits of its pattern, in
/// `words` words appended to `out`.
fn scan_bits<'a>(
    ac: &AhoCorasick,
    value: &[u8],
    words: usize,
    bits_of: impl Fn(usize) -> &'a [u32],
    out: &mut Vec<u64>,
) {
    let start = out.len();
    out.resize(start + words, 0);
    let bits = &mut out[start..];
    for m in ac.find_overlapping_iter(value) {
        for &b in bits_of(m.pattern().as_usize()) {
            bits[b as usize / 64] |= 1 << (b % 64);
        }
    }
}

/// Literals compare ASCII case-insensitively; overlapping search needs Standard semantics.
fn automaton(patterns: &[Vec<u8>]) -> Result<AhoCorasick, String> {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::Standard)
        .build(patterns)
        .map_err(|e| format!("cannot build the rule prefilter: {e}"))
}

/// Whether `bit` is set in a scan result.
pub fn has(bits: &[u64], bit: u32) -> bool {
    bits.get(bit as usize / 64).is_some_and(|w| w & (1 << (bit % 64)) != 0)
}

/// Collects literals per transformation list while the rule set is compiled.
#[derive(Default)]
pub struct GateBuilder {
    /// (transformation key, patterns, bit of each pattern, bits used)
    groups: Vec<(u32, Vec<Vec<u8>>, Vec<u32>, u32)>,
}

impl GateBuilder {
    /// Registers a rule link; returns its (gate, bit).
    pub fn add(&mut self, transform_key: u32, literals: Vec<Vec<u8>>) -> (u32, u32) {
        let g = match self.groups.iter().position(|g| g.0 == transform_key) {
            Some(g) => g,
            None => {
                self.groups.push((transform_key, Vec::new(), Vec::new(), 0));
                self.groups.len() - 1
            }
        };
        let group = &mut self.groups[g];
        let bit = group.3;
        group.3 += 1;
        for l in literals {
            group.1.push(l);
            group.2.push(bit);
        }
        (g as u32, bit)
    }

    /// The automaton of every gate's literals at once (build before [`GateBuilder::build`]).
    pub fn combined(&self) -> Result<Combined, String> {
        let mut offsets = Vec::new();
        let mut next = 0u32;
        let mut index: std::collections::HashMap<Vec<u8>, usize> = Default::default();
        let (mut pats, mut bits_of): (Vec<Vec<u8>>, Vec<Vec<u32>>) = (Vec::new(), Vec::new());
        for (_, group_pats, bit_of, n) in &self.groups {
            offsets.push(next);
            for (p, &b) in group_pats.iter().zip(bit_of) {
                // Literals compare ASCII case-insensitively: one pattern per folded spelling.
                let key = p.to_ascii_lowercase();
                let i = *index.entry(key).or_insert_with(|| {
                    pats.push(p.clone());
                    bits_of.push(Vec::new());
                    pats.len() - 1
                });
                bits_of[i].push(next + b);
            }
            next += n;
        }
        offsets.push(next);
        let ac = automaton(&pats)?;
        Ok(Combined { ac, bits_of, offsets, words: (next as usize).div_ceil(64) })
    }

    pub fn build(self) -> Result<Vec<Gate>, String> {
        self.groups
            .into_iter()
            .map(|(_, pats, bit_of, n)| {
                let ac = automaton(&pats)?;
                let mut gate = Gate { ac, bit_of, words: (n as usize).div_ceil(64), empty: Vec::new() };
                gate.empty = gate.scan(b"");
                Ok(gate)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_sets_bits_of_rules_whose_literals_occur() {
        let mut b = GateBuilder::default();
        let (g0, r0) = b.add(7, vec![b"select".to_vec(), b"union".to_vec()]);
        let (g1, r1) = b.add(7, vec![b"<script".to_vec()]);
        let (g2, _) = b.add(9, vec![b"passwd".to_vec()]);
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
    fn combined_scan_splits_into_multi_word_gates() {
        let mut b = GateBuilder::default();
        for g in 0..3u32 {
            for i in 0..(50 + 20 * g) {
                b.add(g, vec![format!("w{g}x{i}y").into_bytes()]);
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
