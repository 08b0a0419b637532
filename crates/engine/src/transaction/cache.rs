//! Per-transaction cache of transformed request values, shared by values with identical
//! content: a JSON body or a long form repeats the same values many times, and each
//! distinct content is transformed, prefilter-scanned and (for pure operators) found not
//! to match a rule once.

use rustc_hash::{FxHashMap, FxHashSet};

use crate::prefilter::Combined;
use crate::ruleset::RuleSet;
use crate::transformations::tree::{TransformTree, ROOT};

/// A scan result: of the raw value for all gates, or of a transformed one for its gate.
enum Scan<'a> {
    Raw(&'a Combined, &'a [u64]),
    Gate(&'a [u64]),
}

/// Contents longer than this are not interned (copying them would cost more than a rare
/// repeat could save).
const MAX_INTERNED: usize = 4096;

/// From this many arguments and cookies on, identical contents share an entry.
pub(super) const SHARE_FROM_VALUES: usize = 64;

/// A request value after one transformation list.
#[derive(Debug)]
pub(super) struct Cached {
    value: Stored,
    /// Bits of the gate of this transformation list, once scanned.
    pub(super) bits: Option<Vec<u64>>,
}

/// Where an entry's bytes are.
#[derive(Debug)]
enum Stored {
    /// The transformations left the raw value unchanged.
    Raw,
    Own(Vec<u8>),
    /// The same bytes as this (`Own`) entry: a shorter list of the prefix tree already
    /// gave them and the last steps changed nothing.
    Same(u32),
}

#[derive(Debug, Default)]
pub(super) struct TransformCache {
    /// (slot, transformation list) → entry.
    by_slot: FxHashMap<(u64, u32), u32>,
    /// slot → content id.
    slot_content: FxHashMap<u64, u32>,
    /// Interned contents → content id.
    contents: FxHashMap<Vec<u8>, u32>,
    next_content: u32,
    /// (content id, transformation list) → entry.
    by_content: FxHashMap<(u32, u32), u32>,
    entries: Vec<Cached>,
    /// (entry, memo index) of rule links whose (pure) operator did not match the entry's value.
    no_match: FxHashSet<u64>,
    /// slot → combined prefilter scan of its raw value (see [`TransformCache::gate_pass`]).
    raw_scans: FxHashMap<u64, Vec<u64>>,
    /// Whether identical contents share entries (and misses are remembered); off, every slot
    /// has its own entry and nothing is interned.
    sharing: bool,
}

impl TransformCache {
    /// The entry of the value in `slot` (whose content is `raw`) after the transformation
    /// list `key` of `tree`, computing it (from its parent list's entry) on first use.
    pub(super) fn entry(&mut self, slot: u64, raw: &[u8], key: u32, tree: &TransformTree) -> usize {
        if let Some(&i) = self.by_slot.get(&(slot, key)) {
            return i as usize;
        }
        let i = if self.sharing {
            let cid = self.content_id(slot, raw);
            match self.by_content.get(&(cid, key)) {
                Some(&i) => i,
                None => {
                    let i = self.push(slot, raw, key, tree);
                    self.by_content.insert((cid, key), i);
                    i
                }
            }
        } else {
            self.push(slot, raw, key, tree)
        };
        self.by_slot.insert((slot, key), i);
        i as usize
    }

    fn content_id(&mut self, slot: u64, raw: &[u8]) -> u32 {
        if let Some(&c) = self.slot_content.get(&slot) {
            return c;
        }
        let intern = raw.len() <= MAX_INTERNED;
        let c = match intern.then(|| self.contents.get(raw).copied()).flatten() {
            Some(c) => c,
            None => {
                let c = self.next_content;
                self.next_content += 1;
                if intern {
                    self.contents.insert(raw.to_vec(), c);
                }
                c
            }
        };
        self.slot_content.insert(slot, c);
        c
    }

    /// Computes a new entry: the last step of `key` applied to its parent's entry.
    fn push(&mut self, slot: u64, raw: &[u8], key: u32, tree: &TransformTree) -> u32 {
        let node = tree.node(key);
        let value = match (node.parent, &node.step) {
            (Some(parent), Some(step)) => {
                let (input, owner) = if parent == ROOT {
                    (raw, None)
                } else {
                    let p = self.entry(slot, raw, parent, tree);
                    match self.entries[p].value {
                        Stored::Raw => (raw, None),
                        Stored::Own(ref v) => (v.as_slice(), Some(p as u32)),
                        Stored::Same(o) => (self.bytes(o), Some(o)),
                    }
                };
                match ((step.func)(input), owner) {
                    (Some(v), _) => Stored::Own(v),
                    (None, Some(o)) => Stored::Same(o),
                    (None, None) => Stored::Raw,
                }
            }
            _ => Stored::Raw,
        };
        self.entries.push(Cached { value, bits: None });
        (self.entries.len() - 1) as u32
    }

    /// The bytes of an `Own` entry.
    fn bytes(&self, owner: u32) -> &[u8] {
        match &self.entries[owner as usize].value {
            Stored::Own(v) => v,
            _ => &[],
        }
    }

    /// Entry `i`'s value (`raw` is the value it was computed from).
    pub(super) fn value<'a>(&'a self, i: usize, raw: &'a [u8]) -> &'a [u8] {
        match self.entries[i].value {
            Stored::Raw => raw,
            Stored::Own(ref v) => v,
            Stored::Same(o) => self.bytes(o),
        }
    }

    /// Whether gate `g`'s `bit` is set for the value in `slot` (raw content `raw`) after
    /// the transformation list `key`. A value the list leaves unchanged (up to ASCII case,
    /// which the prefilter ignores) is scanned once for all gates, without transforming
    /// it; a transformed one once per gate.
    pub(super) fn gate_pass(&mut self, slot: u64, raw: &[u8], key: u32, rules: &RuleSet, g: u32, bit: u32) -> bool {
        match self.scan(slot, raw, key, rules, g) {
            Scan::Raw(all, bits) => all.has(bits, g, bit),
            Scan::Gate(bits) => crate::prefilter::has(bits, bit),
        }
    }

    /// Gate `g`'s bits for that value (as [`TransformCache::gate_pass`] reads them).
    pub(super) fn gate_bits(&mut self, slot: u64, raw: &[u8], key: u32, rules: &RuleSet, g: u32) -> Vec<u64> {
        match self.scan(slot, raw, key, rules, g) {
            Scan::Raw(all, bits) => all.gate_bits(bits, g),
            Scan::Gate(bits) => bits.to_vec(),
        }
    }

    fn scan<'a>(&'a mut self, slot: u64, raw: &[u8], key: u32, rules: &'a RuleSet, g: u32) -> Scan<'a> {
        let tree = &rules.transforms;
        let i = (!tree.node(key).case_only).then(|| self.entry(slot, raw, key, tree));
        if let Some(all) = &rules.combined {
            if i.is_none_or(|i| matches!(self.entries[i].value, Stored::Raw)) {
                return Scan::Raw(all, self.raw_scans.entry(slot).or_insert_with(|| all.scan(raw)));
            }
        }
        let i = i.unwrap_or_else(|| self.entry(slot, raw, key, tree));
        if self.entries[i].bits.is_none() {
            let bits = rules.gates[g as usize].scan(self.value(i, raw));
            self.entries[i].bits = Some(bits);
        }
        Scan::Gate(self.entries[i].bits.as_deref().unwrap_or(&[]))
    }

    /// Turns content sharing on or off for values not seen yet; `values` request values
    /// are coming (room is made for their entries at once, not by growing step by step).
    pub(super) fn set_sharing(&mut self, on: bool, values: usize) {
        self.sharing = on;
        // Names and values, a dozen transformation lists and prefixes each; capped (a huge
        // body grows the maps as it goes rather than reserving megabytes up front).
        let values = values.min(1024);
        let lists = values * 24;
        self.by_slot.reserve(lists);
        if on {
            self.slot_content.reserve(values * 2);
            self.contents.reserve(values);
            self.by_content.reserve(lists / 2);
        }
    }

    /// Whether misses are worth remembering (only shared entries are looked at twice).
    pub(super) fn memo_on(&self) -> bool {
        self.sharing
    }

    pub(super) fn known_no_match(&self, i: usize, memo: u32) -> bool {
        !self.no_match.is_empty() && self.no_match.contains(&((i as u64) << 32 | u64::from(memo)))
    }

    /// Remembers a miss; without sharing no entry is looked at twice, so nothing is kept.
    pub(super) fn set_no_match(&mut self, i: usize, memo: u32) {
        if self.sharing {
            self.no_match.insert((i as u64) << 32 | u64::from(memo));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::TransformStep;

    fn steps(names: &[&str]) -> Vec<TransformStep> {
        names
            .iter()
            .map(|n| TransformStep { name: n.to_string(), func: crate::transformations::lookup(n).unwrap() })
            .collect()
    }

    #[test]
    fn identical_contents_share_an_entry() {
        let mut tree = TransformTree::default();
        let upper = tree.key(&steps(&["uppercase"]));
        let mut c = TransformCache::default();
        c.set_sharing(true, 0);
        let a = c.entry(1, b"abc", upper, &tree);
        let b = c.entry(2, b"abc", upper, &tree);
        let other = c.entry(3, b"abd", upper, &tree);
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(c.value(a, b"abc"), b"ABC");
        // Another transformation list is another entry.
        let plain = c.entry(1, b"abc", ROOT, &tree);
        assert_ne!(plain, a);
        assert_eq!(c.value(plain, b"abc"), b"abc");
        // Memo bits belong to the entry.
        c.set_no_match(a, 70);
        assert!(c.known_no_match(b, 70));
        assert!(!c.known_no_match(b, 69) && !c.known_no_match(other, 70));
    }

    #[test]
    fn a_list_is_computed_from_its_prefix() {
        let mut tree = TransformTree::default();
        let lower = tree.key(&steps(&["lowercase"]));
        let lower_trim = tree.key(&steps(&["lowercase", "trim"]));
        let lower_trim_nulls = tree.key(&steps(&["lowercase", "trim", "removeNulls"]));
        let trim = tree.key(&steps(&["trim"]));
        for sharing in [false, true] {
            let mut c = TransformCache::default();
            c.set_sharing(sharing, 0);
            let raw = b" AbC ";
            let e = c.entry(7, raw, lower_trim_nulls, &tree);
            assert_eq!(c.value(e, raw), b"abc");
            // The prefixes were computed on the way and are found again.
            let n = c.entries.len();
            let (lt, l) = (c.entry(7, raw, lower_trim, &tree), c.entry(7, raw, lower, &tree));
            assert_eq!(c.value(lt, raw), b"abc");
            assert_eq!(c.value(l, raw), b" abc ");
            assert_eq!(c.entries.len(), n, "nothing computed twice");
            // removeNulls changed nothing: the same bytes as its parent, not a copy.
            assert!(matches!(c.entries[e].value, Stored::Same(_)));
            // Unchanged all the way: the raw value.
            let t = c.entry(8, b"x", trim, &tree);
            assert!(matches!(c.entries[t].value, Stored::Raw));
            assert_eq!(c.value(t, b"x"), b"x");
        }
    }

    #[test]
    fn without_sharing_every_slot_has_its_entry() {
        let tree = TransformTree::default();
        let mut c = TransformCache::default();
        assert_ne!(c.entry(1, b"abc", ROOT, &tree), c.entry(2, b"abc", ROOT, &tree));
        c.set_sharing(true, 0);
        assert_eq!(c.entry(3, b"abc", ROOT, &tree), c.entry(4, b"abc", ROOT, &tree));
    }

    #[test]
    fn long_contents_are_not_shared() {
        let tree = TransformTree::default();
        let mut c = TransformCache::default();
        c.set_sharing(true, 0);
        let big = vec![b'a'; MAX_INTERNED + 1];
        assert_ne!(c.entry(1, &big, ROOT, &tree), c.entry(2, &big, ROOT, &tree));
        assert_eq!(c.entry(1, &big, ROOT, &tree), c.entry(1, &big, ROOT, &tree));
    }
}
