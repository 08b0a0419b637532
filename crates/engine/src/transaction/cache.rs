//! Per-transaction cache of transformed request values, shared by values with identical
//! content: a JSON body or a long form repeats the same values many times, and each
//! distinct content is transformed, prefilter-scanned and (for pure operators) found not
//! to match a rule once.

use rustc_hash::{FxHashMap, FxHashSet};

use crate::actions::TransformStep;
use crate::ruleset::RuleSet;

/// Contents longer than this are not interned (copying them would cost more than a rare
/// repeat could save).
const MAX_INTERNED: usize = 4096;

/// From this many arguments and cookies on, identical contents share an entry.
pub(super) const SHARE_FROM_VALUES: usize = 64;

/// A request value after one transformation list.
#[derive(Debug)]
pub(super) struct Cached {
    /// None when the transformations left the value unchanged.
    pub(super) value: Option<Vec<u8>>,
    /// Bits of the gate of this transformation list, once scanned.
    pub(super) bits: Option<Vec<u64>>,
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
    /// The entry of the value in `slot` (whose content is `raw`) after `steps`, computing it
    /// on first use.
    pub(super) fn entry(&mut self, slot: u64, raw: &[u8], key: u32, steps: &[TransformStep]) -> usize {
        if let Some(&i) = self.by_slot.get(&(slot, key)) {
            return i as usize;
        }
        if !self.sharing {
            self.entries.push(Cached { value: super::apply_transforms(steps, raw), bits: None });
            let i = self.entries.len() - 1;
            self.by_slot.insert((slot, key), i as u32);
            return i;
        }
        let cid = match self.slot_content.get(&slot) {
            Some(&c) => c,
            None => {
                let intern = raw.len() <= MAX_INTERNED;
                let interned = if intern { self.contents.get(raw).copied() } else { None };
                let c = interned.unwrap_or_else(|| {
                    let c = self.next_content;
                    self.next_content += 1;
                    if intern {
                        self.contents.insert(raw.to_vec(), c);
                    }
                    c
                });
                self.slot_content.insert(slot, c);
                c
            }
        };
        let entries = &mut self.entries;
        let i = *self.by_content.entry((cid, key)).or_insert_with(|| {
            entries.push(Cached { value: super::apply_transforms(steps, raw), bits: None });
            (entries.len() - 1) as u32
        });
        self.by_slot.insert((slot, key), i);
        i as usize
    }

    pub(super) fn get_mut(&mut self, i: usize) -> &mut Cached {
        &mut self.entries[i]
    }

    /// Whether gate `g`'s `bit` is set for entry `i` (the value in `slot`, raw content
    /// `raw`). An unchanged value is scanned once for all gates; a transformed one once per gate.
    pub(super) fn gate_pass(&mut self, i: usize, slot: u64, raw: &[u8], rules: &RuleSet, g: u32, bit: u32) -> bool {
        let e = &mut self.entries[i];
        match (&e.value, &rules.combined) {
            (None, Some(all)) => {
                let bits = self.raw_scans.entry(slot).or_insert_with(|| all.scan(raw));
                all.has(bits, g, bit)
            }
            (value, _) => {
                let tv = value.as_deref().unwrap_or(raw);
                let bits = e.bits.get_or_insert_with(|| rules.gates[g as usize].scan(tv));
                crate::prefilter::has(bits, bit)
            }
        }
    }

    /// Gate `g`'s bits for entry `i` (as [`TransformCache::gate_pass`] reads them).
    pub(super) fn gate_bits(&mut self, i: usize, slot: u64, raw: &[u8], rules: &RuleSet, g: u32) -> Vec<u64> {
        let e = &mut self.entries[i];
        match (&e.value, &rules.combined) {
            (None, Some(all)) => {
                let bits = self.raw_scans.entry(slot).or_insert_with(|| all.scan(raw));
                all.gate_bits(bits, g)
            }
            (value, _) => {
                let tv = value.as_deref().unwrap_or(raw);
                e.bits.get_or_insert_with(|| rules.gates[g as usize].scan(tv)).clone()
            }
        }
    }

    /// Turns content sharing on or off for values not seen yet.
    pub(super) fn set_sharing(&mut self, on: bool) {
        self.sharing = on;
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

    fn upper() -> Vec<TransformStep> {
        vec![TransformStep { name: "uppercase".into(), func: crate::transformations::lookup("uppercase").unwrap() }]
    }

    #[test]
    fn identical_contents_share_an_entry() {
        let mut c = TransformCache::default();
        c.set_sharing(true);
        let t = upper();
        let a = c.entry(1, b"abc", 0, &t);
        let b = c.entry(2, b"abc", 0, &t);
        let other = c.entry(3, b"abd", 0, &t);
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(c.get_mut(a).value.as_deref(), Some(&b"ABC"[..]));
        // Another transformation list is another entry.
        let plain = c.entry(1, b"abc", 1, &[]);
        assert_ne!(plain, a);
        assert_eq!(c.get_mut(plain).value, None);
        // Memo bits belong to the entry.
        c.set_no_match(a, 70);
        assert!(c.known_no_match(b, 70));
        assert!(!c.known_no_match(b, 69) && !c.known_no_match(other, 70));
    }

    #[test]
    fn without_sharing_every_slot_has_its_entry() {
        let mut c = TransformCache::default();
        assert_ne!(c.entry(1, b"abc", 0, &[]), c.entry(2, b"abc", 0, &[]));
        c.set_sharing(true);
        assert_eq!(c.entry(3, b"abc", 0, &[]), c.entry(4, b"abc", 0, &[]));
    }

    #[test]
    fn long_contents_are_not_shared() {
        let mut c = TransformCache::default();
        c.set_sharing(true);
        let big = vec![b'a'; MAX_INTERNED + 1];
        assert_ne!(c.entry(1, &big, 0, &[]), c.entry(2, &big, 0, &[]));
        assert_eq!(c.entry(1, &big, 0, &[]), c.entry(1, &big, 0, &[]));
    }
}
