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

/// Per (variable, gate): the union of the gate bits of all the variable's values (see
/// `Transaction::unions`), one after the other in one vector rather than one each.
#[derive(Debug, Default)]
pub(super) struct Unions {
    /// By `Target::union`: where its union starts in `bits`, [`NOT_YET`] until computed,
    /// [`NO_UNION_BITS`] when the variable has none (a value without a stable slot).
    pub(super) at: Vec<u32>,
    pub(super) bits: Vec<u64>,
}

pub(super) const NOT_YET: u32 = u32::MAX;
pub(super) const NO_UNION_BITS: u32 = u32::MAX - 1;

impl Unions {
    /// Forgets every union; `slots` is the rule set's number of them.
    pub(super) fn reset(&mut self, slots: usize) {
        self.at.clear();
        self.at.resize(slots, NOT_YET);
        self.bits.clear();
    }

    fn clear(&mut self) {
        self.at.clear();
        self.bits.clear();
    }

    fn capacity(&self) -> usize {
        self.at.capacity()
    }
}

thread_local! {
    /// One emptied cache of a finished transaction's request phases (see `spare`).
    static SPARE: crate::spare::Pool<TransformCache> = const { std::cell::RefCell::new(Vec::new()) };
    /// One emptied unions table of a finished transaction.
    static SPARE_UNIONS: crate::spare::Pool<Unions> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An empty unions table, with an earlier transaction's room when one is spare (a fresh
/// one rehashes several times in every transaction).
pub(super) fn spare_unions() -> Unions {
    crate::spare::take(&SPARE_UNIONS).unwrap_or_default()
}

/// Keeps `u` (emptied) for a later transaction.
pub(super) fn recycle_unions(mut u: Unions) {
    if u.capacity() == 0 || u.capacity() > SPARE_MAX_ROWS {
        return;
    }
    u.clear();
    crate::spare::keep(&SPARE_UNIONS, u, 1);
}

/// Largest tables kept spare: a small request's, not a large body's.
const SPARE_MAX_CELLS: usize = 1 << 14;
const SPARE_MAX_ROWS: usize = 1024;

/// From this many arguments and cookies on, identical contents share an entry.
pub(super) const SHARE_FROM_VALUES: usize = 64;

/// A request value after one transformation list: one cell of the cache's table. 8 bytes,
/// since a JSON body or a long form has ~40 of them per value (a list that leaves the
/// value unchanged is a cell too, to remember that), and a transaction keeps them until
/// its request phases end.
#[derive(Debug, Clone, Copy)]
struct Cell {
    /// [`UNSET`], [`RAW`] (the list left the raw value unchanged), or the index of the
    /// bytes in `owned` (shared with the parent list's cell when the last steps changed nothing).
    value: u32,
    /// [`UNSET`] until scanned, then where this list's gate bits start in `bits`.
    bits: u32,
}

const UNSET: u32 = u32::MAX;
const RAW: u32 = u32::MAX - 1;

impl Cell {
    const EMPTY: Cell = Cell { value: UNSET, bits: UNSET };
}

/// Transformation results, one row of cells (one per node of the rule set's transformation
/// tree) per value, or per distinct content when contents are shared.
#[derive(Debug, Default)]
pub(super) struct TransformCache {
    /// slot → row.
    slot_row: FxHashMap<u64, u32>,
    /// Interned contents → row.
    contents: FxHashMap<Vec<u8>, u32>,
    /// Cells per row: the number of transformation lists (nodes of the tree).
    width: usize,
    /// Row-major table: cell `row * width + list`.
    cells: Vec<Cell>,
    /// Transformed values that differ from their input.
    owned: Vec<Vec<u8>>,
    /// Scan results, one after the other (cells and `raw_scans` say where each starts):
    /// one vector rather than an allocation per scan.
    bits: Vec<u64>,
    /// (cell, memo index) of rule links whose (pure) operator did not match the cell's value.
    no_match: FxHashSet<u64>,
    /// slot → where the combined prefilter scan of its raw value starts in `bits` (see
    /// [`TransformCache::gate_pass`]).
    raw_scans: FxHashMap<u64, u32>,
    /// Whether identical contents share a row (and misses are remembered); off, every slot
    /// has its own row and nothing is interned.
    sharing: bool,
}

impl TransformCache {
    /// The cell of the value in `slot` (whose content is `raw`) after the transformation
    /// list `key` of `tree`, computing it (from its parent list's cell) on first use.
    pub(super) fn entry(&mut self, slot: u64, raw: &[u8], key: u32, tree: &TransformTree) -> usize {
        let row = self.row(slot, raw, tree.len());
        self.cell(row, raw, key, tree)
    }

    fn row(&mut self, slot: u64, raw: &[u8], width: usize) -> u32 {
        if let Some(&r) = self.slot_row.get(&slot) {
            return r;
        }
        let intern = self.sharing && raw.len() <= MAX_INTERNED;
        let r = match intern.then(|| self.contents.get(raw).copied()).flatten() {
            Some(r) => r,
            None => {
                // The tree is the rule set's: every row of a transaction has its width.
                self.width = width;
                let r = (self.cells.len() / width.max(1)) as u32;
                self.cells.resize(self.cells.len() + width, Cell::EMPTY);
                if intern {
                    self.contents.insert(raw.to_vec(), r);
                }
                r
            }
        };
        self.slot_row.insert(slot, r);
        r
    }

    /// Cell `key` of `row`: the last step of `key` applied to its parent's value.
    fn cell(&mut self, row: u32, raw: &[u8], key: u32, tree: &TransformTree) -> usize {
        let i = row as usize * self.width + key as usize;
        if self.cells[i].value != UNSET {
            return i;
        }
        let node = tree.node(key);
        let value = match (node.parent, &node.step) {
            (Some(parent), Some(step)) => {
                let input = if parent == ROOT {
                    RAW
                } else {
                    let p = self.cell(row, raw, parent, tree);
                    self.cells[p].value
                };
                match (step.func)(self.bytes(input, raw)) {
                    Some(v) => {
                        self.owned.push(v);
                        (self.owned.len() - 1) as u32
                    }
                    None => input,
                }
            }
            _ => RAW,
        };
        self.cells[i].value = value;
        i
    }

    fn bytes<'a>(&'a self, value: u32, raw: &'a [u8]) -> &'a [u8] {
        self.owned.get(value as usize).map_or(raw, Vec::as_slice)
    }

    /// Cell `i`'s value (`raw` is the value it was computed from).
    pub(super) fn value<'a>(&'a self, i: usize, raw: &'a [u8]) -> &'a [u8] {
        self.bytes(self.cells[i].value, raw)
    }

    /// Frees everything (keeping the sharing setting): the results are recomputed if a
    /// later phase asks again. A transaction lives on after its request phases (while
    /// the upstream answers), and a JSON body's cache is ~1 MB.
    pub(super) fn release(&mut self) {
        let old = std::mem::replace(self, TransformCache { sharing: self.sharing, ..TransformCache::default() });
        old.recycle();
    }

    /// An empty cache, with the tables of an earlier transaction's when one is spare: a
    /// fresh one grows its maps by rehashing in every transaction.
    pub(super) fn spare() -> TransformCache {
        crate::spare::take(&SPARE).unwrap_or_default()
    }

    /// Keeps this cache's tables (emptied) for a later transaction, unless they are large.
    fn recycle(mut self) {
        if self.cells.capacity() > SPARE_MAX_CELLS || self.slot_row.capacity() > SPARE_MAX_ROWS {
            return;
        }
        self.slot_row.clear();
        self.contents.clear();
        self.cells.clear();
        self.owned.clear();
        self.bits.clear();
        self.no_match.clear();
        self.raw_scans.clear();
        self.width = 0;
        self.sharing = false;
        crate::spare::keep(&SPARE, self, 1);
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

    /// ORs gate `g`'s bits for that value (as [`TransformCache::gate_pass`] reads them)
    /// into `out`.
    pub(super) fn or_gate_bits(&mut self, slot: u64, raw: &[u8], key: u32, rules: &RuleSet, g: u32, out: &mut [u64]) {
        match self.scan(slot, raw, key, rules, g) {
            Scan::Raw(all, bits) => all.or_gate_bits(bits, g, out),
            Scan::Gate(bits) => out.iter_mut().zip(bits).for_each(|(o, b)| *o |= b),
        }
    }

    fn scan<'a>(&'a mut self, slot: u64, raw: &[u8], key: u32, rules: &'a RuleSet, g: u32) -> Scan<'a> {
        let tree = &rules.transforms;
        let i = (!tree.node(key).case_only).then(|| self.entry(slot, raw, key, tree));
        if let Some(all) = rules.combined.as_ref().map(|c| c.get(super::state::slot_domain(slot))) {
            if i.is_none_or(|i| self.cells[i].value == RAW) {
                let at = match self.raw_scans.get(&slot) {
                    Some(&at) => at as usize,
                    None => {
                        let at = self.bits.len();
                        all.scan_into(raw, &mut self.bits);
                        self.raw_scans.insert(slot, at as u32);
                        at
                    }
                };
                return Scan::Raw(all, &self.bits[at..at + all.words()]);
            }
        }
        let i = i.unwrap_or_else(|| self.entry(slot, raw, key, tree));
        let gate = &rules.gates[g as usize];
        if self.cells[i].bits == UNSET {
            let at = self.bits.len() as u32;
            // Fields apart: the value is read from `owned` while `bits` grows.
            let value = self.owned.get(self.cells[i].value as usize).map_or(raw, Vec::as_slice);
            gate.scan_into(value, &mut self.bits);
            self.cells[i].bits = at;
        }
        let at = self.cells[i].bits as usize;
        Scan::Gate(&self.bits[at..at + gate.words()])
    }

    /// Turns content sharing on or off for values not seen yet; `values` request values
    /// (names and values each) are coming: their rows' index gets room at once.
    pub(super) fn set_sharing(&mut self, on: bool, values: usize) {
        self.sharing = on;
        // Capped: a huge body grows the index as it goes rather than reserving up front.
        let values = values.min(1024);
        self.slot_row.reserve(values * 2);
        if on {
            self.contents.reserve(values * 2);
        }
    }

    /// Whether misses are worth remembering (only shared cells are looked at twice).
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
    use crate::transformations::tree::steps;

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
            let n = c.owned.len();
            let (lt, l) = (c.entry(7, raw, lower_trim, &tree), c.entry(7, raw, lower, &tree));
            assert_eq!(c.value(lt, raw), b"abc");
            assert_eq!(c.value(l, raw), b" abc ");
            assert_eq!(c.owned.len(), n, "nothing computed twice");
            // removeNulls changed nothing: the same bytes as its parent, not a copy.
            assert_eq!(c.cells[e].value, c.cells[lt].value);
            // Unchanged all the way: the raw value.
            let t = c.entry(8, b"x", trim, &tree);
            assert_eq!(c.cells[t].value, RAW);
            assert_eq!(c.value(t, b"x"), b"x");
        }
    }

    #[test]
    fn released_results_are_computed_again() {
        let mut tree = TransformTree::default();
        let upper = tree.key(&steps(&["uppercase"]));
        let mut c = TransformCache::default();
        c.set_sharing(true, 0);
        let a = c.entry(1, b"abc", upper, &tree);
        c.set_no_match(a, 3);
        c.release();
        assert!(c.memo_on(), "sharing is kept");
        assert!(!c.known_no_match(a, 3));
        let a = c.entry(1, b"abc", upper, &tree);
        assert_eq!(c.value(a, b"abc"), b"ABC");
        assert_eq!(c.entry(2, b"abc", upper, &tree), a);
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
