//! Per-transaction cache of transformed request values, shared by values with identical
//! content: a JSON body or a long form repeats the same values many times, and each
//! distinct content is transformed, prefilter-scanned and (for pure operators) found not
//! to match a rule once. The results for header values, the method, the path and the
//! names of form fields are kept on the thread for the next transactions of the same rule
//! set (see [`Kept`]): a client sends the same `User-Agent`, `Accept`… with every request.

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
    /// The values the unions read, per value group (`RuleSet::union_group`).
    pub(super) groups: ValueGroups,
}

/// Per value group (a variable and key), its values' slots and cache rows, listed on first
/// use in a phase (values do not change during one): each union over them (one per gate)
/// then reads the list instead of collecting the variable and finding each row again.
#[derive(Debug, Default)]
pub(super) struct ValueGroups {
    /// (start, length) in `members`; start [`NOT_YET`] or [`NO_UNION_BITS`].
    at: Vec<(u32, u32)>,
    members: Vec<(u64, u32)>,
    /// Per group listed in `members`, its values' masks (`Rows::mask`) in the same order,
    /// where they start in `masks`: made on first use by [`Self::masks`].
    masks_at: FxHashMap<u32, u32>,
    masks: Vec<u64>,
    /// Per (group, scan domain): the OR of its values' combined raw scans (see
    /// [`ValueGroups::raw_or`]), where it starts in `raw_bits`.
    raw_at: FxHashMap<(u32, u32), u32>,
    raw_bits: Vec<u64>,
    /// Per group, the scan domains of its values (where they start in `domains`, how
    /// many): found once, not per gate (a JSON body's group has hundreds of values).
    domains_at: FxHashMap<u32, (u32, u32)>,
    domains: Vec<u32>,
}

impl ValueGroups {
    /// Group `g`'s (slot, row) list, listed by `list` on first use (None: the group has a
    /// value without a stable slot, so no union).
    pub(super) fn get(&mut self, g: usize, list: impl FnOnce(&mut Vec<(u64, u32)>) -> bool) -> Option<&[(u64, u32)]> {
        let (start, len) = *self.at.get(g)?;
        let (start, len) = match start {
            NOT_YET => {
                let start = self.members.len();
                if !list(&mut self.members) {
                    self.members.truncate(start);
                    self.at[g] = (NO_UNION_BITS, 0);
                    return None;
                }
                let len = (self.members.len() - start) as u32;
                self.at[g] = (start as u32, len);
                (start as u32, len)
            }
            NO_UNION_BITS => return None,
            _ => (start, len),
        };
        Some(&self.members[start as usize..][..len as usize])
    }

    /// Forgets every group's list, masks and raw ORs (capacity kept).
    fn clear(&mut self) {
        self.at.clear();
        self.members.clear();
        self.masks_at.clear();
        self.masks.clear();
        self.raw_at.clear();
        self.raw_bits.clear();
        self.domains_at.clear();
        self.domains.clear();
    }

    /// The distinct `domain`s of group `g`'s members (listed by [`Self::get`]), in order
    /// of first appearance, found on first use.
    pub(super) fn domains(&mut self, g: usize, domain: impl Fn(u64) -> u32) -> Option<&[u32]> {
        let (start, len) = *self.at.get(g)?;
        if start == NOT_YET || start == NO_UNION_BITS {
            return None;
        }
        let (at, n) = *self.domains_at.entry(g as u32).or_insert_with(|| {
            let at = self.domains.len();
            for &(s, _) in &self.members[start as usize..][..len as usize] {
                let d = domain(s);
                if !self.domains[at..].contains(&d) {
                    self.domains.push(d);
                }
            }
            (at as u32, (self.domains.len() - at) as u32)
        });
        Some(&self.domains[at as usize..][..n as usize])
    }

    /// The masks of group `g`'s members (listed by [`Self::get`]), in their order, made by
    /// `mask` on first use: a union over a group of many values skips, per gate, the values
    /// that the gate's list cannot change by one load each instead of a lookup of the row.
    pub(super) fn masks(&mut self, g: usize, mut mask: impl FnMut(u64, u32) -> u64) -> Option<(&[(u64, u32)], &[u64])> {
        let (start, len) = *self.at.get(g)?;
        if start == NOT_YET || start == NO_UNION_BITS {
            return None;
        }
        let members = &self.members[start as usize..][..len as usize];
        let at = *self.masks_at.entry(g as u32).or_insert_with(|| {
            let at = self.masks.len() as u32;
            self.masks.extend(members.iter().map(|&(s, row)| mask(s, row)));
            at
        });
        Some((members, &self.masks[at as usize..][..len as usize]))
    }

    /// Group `g`'s members (as listed by [`Self::get`]) and the OR of the combined raw
    /// scans of those in domain `d`, made by `or` on first use: every gate's union over the
    /// group reads the raw literals of all its values from it, one OR per value instead of
    /// one per value and gate.
    pub(super) fn raw_or(
        &mut self,
        g: usize,
        d: u32,
        or: impl FnOnce(&[(u64, u32)], &mut Vec<u64>) -> bool,
    ) -> Option<&[u64]> {
        let (start, len) = *self.at.get(g)?;
        if start == NOT_YET || start == NO_UNION_BITS {
            return None;
        }
        let at = match self.raw_at.get(&(g as u32, d)) {
            Some(&at) => at,
            None => {
                let at = self.raw_bits.len();
                if !or(&self.members[start as usize..][..len as usize], &mut self.raw_bits) {
                    self.raw_bits.truncate(at);
                    return None;
                }
                self.raw_at.insert((g as u32, d), at as u32);
                at as u32
            }
        };
        self.raw_bits.get(at as usize..)
    }
}

const NOT_YET: u32 = u32::MAX;
const NO_UNION_BITS: u32 = u32::MAX - 1;

impl Unions {
    /// Forgets every union and value list; `slots` and `groups` are the rule set's numbers
    /// of them.
    pub(super) fn reset(&mut self, slots: usize, groups: usize) {
        self.at.clear();
        self.at.resize(slots, NOT_YET);
        self.bits.clear();
        self.groups.clear();
        self.groups.at.resize(groups, (NOT_YET, 0));
    }

    /// Whether union `slot` has gate bit `bit`; None when there is no union to read (a
    /// target without one, a value without a stable slot). `compute` appends the union to
    /// `bits` on first use and says where it starts (None: there is none).
    pub(super) fn has(
        &mut self,
        slot: u32,
        bit: u32,
        compute: impl FnOnce(&mut Vec<u64>, &mut ValueGroups) -> Option<u32>,
    ) -> Option<bool> {
        let at = self.at.get_mut(slot as usize)?;
        if *at == NOT_YET {
            *at = compute(&mut self.bits, &mut self.groups).unwrap_or(NO_UNION_BITS);
        }
        (*at != NO_UNION_BITS).then(|| crate::prefilter::has(&self.bits[*at as usize..], bit))
    }

    fn clear(&mut self) {
        self.at.clear();
        self.bits.clear();
        self.groups.clear();
    }

    fn capacity(&self) -> usize {
        self.at.capacity()
    }
}

/// A request value after one transformation list: one cell of the cache's table. 8 bytes,
/// since a JSON body or a long form has ~40 of them per value (a list that leaves the
/// value unchanged is a cell too, to remember that), and a transaction keeps them until
/// its request phases end.
#[derive(Debug, Clone, Copy)]
struct Cell {
    /// [`UNSET`], [`RAW`] (the list left the raw value unchanged), or the index of the
    /// bytes in `owned` (shared with the parent list's cell when the last steps changed nothing).
    value: u32,
    /// [`UNSET`] until scanned, then [`AS_RAW`] or where this list's gate bits start in `bits`.
    bits: u32,
}

const UNSET: u32 = u32::MAX;
/// Values up to this long get a mask (`Rows::mask`).
const MASKED_LEN: usize = 4096;
const RAW: u32 = u32::MAX - 1;
/// A cell's `bits` when its value differs from the raw one only in ASCII case: it is
/// scanned as the raw value is. (`bits`'s counterpart of [`RAW`] in `value`.)
const AS_RAW: u32 = RAW;

impl Cell {
    const EMPTY: Cell = Cell { value: UNSET, bits: UNSET };
}

/// Rows of cells (one per node of the rule set's transformation tree) and what the cells
/// point to: a transaction's own, or the kept ones that outlive it (see [`Kept`]).
#[derive(Debug, Default)]
struct Rows {
    /// Interned contents → row.
    contents: Interned,
    /// The cells ([`Rows::index`]): row by row, then (from row `blocked_from` on) in
    /// slabs of one list's cells of [`BLOCK_ROWS`] rows, made when first used.
    cells: Vec<Cell>,
    blocked_from: Option<usize>,
    /// Per block of rows and list: where its slab starts in `cells`, or [`NO_SLAB`].
    slabs: Vec<u32>,
    /// Per slab, in `cells`' order: the first row of its block.
    slab_rows: Vec<u32>,
    /// Per row (one entry per row made): its raw value's mask (`transformations::triggers`),
    /// 0 until needed.
    masks: Vec<u64>,
    /// Transformed values that differ from their input.
    owned: Vec<Vec<u8>>,
    /// Scan results, one after the other (cells and `raw_scans` say where each starts):
    /// one vector rather than an allocation per scan.
    bits: Vec<u64>,
    /// (cell, memo index) of rule links whose (pure) operator did not match the cell's value.
    no_match: FxHashSet<u64>,
    /// Rows (bit per row) that a second slot's identical content was found in: only their
    /// misses are remembered in a transaction's own rows (no other row is asked twice).
    shared: Vec<u64>,
    /// Where the combined prefilter scan of a raw value starts in `bits` (see
    /// [`TransformCache::gate_pass`]): by slot for a transaction's rows, by (row, domain)
    /// for kept ones, which many slots share.
    raw_scans: FxHashMap<u64, u32>,
    /// Kept rows only: the unions of a gate over a value group whose values all have kept
    /// rows, by (group, gate, rows) (see [`TransformCache::kept_union`]); where each starts
    /// in `bits`.
    unions: FxHashMap<(u64, u128), u32>,
}

#[cfg(test)]
thread_local! {
    /// The lists whose cells were computed on this thread, in order (for tests of what a
    /// walk computes).
    pub(super) static FILLED: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The lengths of the transformed values a gate scanned on this thread, in order.
    pub(super) static GATE_SCANNED: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Contents → their row, the contents' bytes in one buffer (a key allocated per content
/// was a third of a 2 KB form's allocations), found by a hash and compared.
#[derive(Debug, Default)]
struct Interned {
    /// Hash of a content → (where its bytes start in `bytes`, their length, the row).
    index: FxHashMap<u64, (u32, u32, u32)>,
    bytes: Vec<u8>,
}

/// Interned bytes kept, with their room, for the next transaction.
const SPARE_MAX_INTERNED: usize = 64 << 10;

impl Interned {
    fn hash(raw: &[u8]) -> u64 {
        use std::hash::Hasher;
        let mut h = rustc_hash::FxHasher::default();
        h.write(raw);
        h.finish()
    }

    fn get(&self, raw: &[u8]) -> Option<u32> {
        let &(at, len, row) = self.index.get(&Self::hash(raw))?;
        (self.bytes.get(at as usize..at as usize + len as usize) == Some(raw)).then_some(row)
    }

    /// Interns `raw` as `row`'s content; not when another content has its hash (`raw`'s
    /// row then stays its own).
    fn insert(&mut self, raw: &[u8], row: u32) {
        let Ok(at) = u32::try_from(self.bytes.len()) else { return };
        if let std::collections::hash_map::Entry::Vacant(e) = self.index.entry(Self::hash(raw)) {
            self.bytes.extend_from_slice(raw);
            e.insert((at, raw.len() as u32, row));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.index.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn reserve(&mut self, n: usize) {
        self.index.reserve(n);
    }

    fn clear(&mut self) {
        self.index.clear();
        self.bytes.clear();
        if self.bytes.capacity() > SPARE_MAX_INTERNED {
            self.bytes = Vec::new();
        }
    }
}

/// Rows per block of the cells table. A rule reads one list's cell of every value in
/// turn: stored row by row, a JSON body's table (~770 rows of 57 lists, 350 KB) gave each
/// of those reads its own cache line; by blocks, eight rows' cells of a list share one
/// (a slab). A slab is made when one of its cells is first used: made whole with their
/// blocks, the Kibana body's slabs were 466 KB of writes a request, 37% of them ever used.
const BLOCK_ROWS: usize = 8;

/// A block's list without a slab yet.
const NO_SLAB: u32 = u32::MAX;

impl Rows {
    /// Cell `key` of `row` in a table `width` lists wide (its slab made if need be).
    fn index(&mut self, width: usize, row: usize, key: u32) -> usize {
        match self.blocked_from {
            Some(from) if row >= from => {
                let r = row - from;
                let s = (r / BLOCK_ROWS) * width + key as usize;
                if self.slabs[s] == NO_SLAB {
                    self.slabs[s] = self.cells.len() as u32;
                    self.cells.resize(self.cells.len() + BLOCK_ROWS, Cell::EMPTY);
                    self.slab_rows.push((row - r % BLOCK_ROWS) as u32);
                }
                self.slabs[s] as usize + r % BLOCK_ROWS
            }
            _ => row * width + key as usize,
        }
    }

    /// The row of cell `i` ([`Rows::index`]).
    fn row_of(&self, width: usize, i: usize) -> usize {
        match self.blocked_from {
            Some(from) if i >= from * width => {
                let j = i - from * width;
                self.slab_rows[j / BLOCK_ROWS] as usize + j % BLOCK_ROWS
            }
            _ => i / width.max(1),
        }
    }

    /// Rows made from now on are stored by blocks.
    fn block_new_rows(&mut self) {
        self.blocked_from.get_or_insert(self.masks.len());
    }

    /// A new row's number; a block's slab table is made with its first row.
    fn add_row(&mut self, width: usize) -> u32 {
        let r = self.masks.len();
        match self.blocked_from {
            Some(from) if r >= from => {
                if (r - from) % BLOCK_ROWS == 0 {
                    self.slabs.resize(self.slabs.len() + width, NO_SLAB);
                }
            }
            _ => self.cells.resize(self.cells.len() + width, Cell::EMPTY),
        }
        self.masks.push(0);
        r as u32
    }

    fn clear(&mut self) {
        self.contents.clear();
        self.cells.clear();
        self.blocked_from = None;
        self.slabs.clear();
        self.slab_rows.clear();
        self.masks.clear();
        self.owned.clear();
        self.bits.clear();
        self.no_match.clear();
        self.shared.clear();
        self.raw_scans.clear();
        self.unions.clear();
    }

    fn share(&mut self, row: u32) {
        let w = row as usize / 64;
        if self.shared.len() <= w {
            self.shared.resize(w + 1, 0);
        }
        self.shared[w] |= 1 << (row % 64);
    }

    fn is_shared(&self, row: usize) -> bool {
        self.shared.get(row / 64).is_some_and(|w| w & (1 << (row % 64)) != 0)
    }

    /// The mask of `row`'s raw value, computed on first use. A long value (a body) gets
    /// every bit: the transformations' own vectorised checks read it faster.
    fn mask(&mut self, row: usize, raw: &[u8]) -> u64 {
        let m = &mut self.masks[row];
        if *m == 0 {
            *m = if raw.len() <= MASKED_LEN { crate::transformations::triggers::value_mask(raw) } else { u64::MAX };
        }
        *m
    }

    fn bytes<'a>(&'a self, value: u32, raw: &'a [u8]) -> &'a [u8] {
        self.owned.get(value as usize).map_or(raw, Vec::as_slice)
    }

    /// Cell `key` of `row`: the last step of `key` applied to its parent's value.
    fn cell(&mut self, width: usize, row: usize, raw: &[u8], key: u32, tree: &TransformTree) -> usize {
        let i = self.index(width, row, key);
        if self.cells[i].value != UNSET {
            return i;
        }
        let node = tree.node(key);
        let mask = self.mask(row, raw);
        let value = match (node.parent, &node.step) {
            // No step can change the raw value.
            _ if node.changes_on & mask == 0 => RAW,
            (Some(parent), Some(step)) => {
                let input = if parent == ROOT {
                    RAW
                } else {
                    let p = self.cell(width, row, raw, parent, tree);
                    self.cells[p].value
                };
                if input == RAW && node.step_changes_on & mask == 0 {
                    // The raw value holds no byte this step acts on.
                    RAW
                } else if let (RAW, Some(twin)) = (input, node.raw_twin) {
                    // The step on the raw value: made once per row, whichever list asks.
                    let t = self.cell(width, row, raw, twin, tree);
                    self.cells[t].value
                } else if node.keeps_empty && self.bytes(input, raw).is_empty() {
                    input
                } else {
                    match (step.func)(self.bytes(input, raw)) {
                        Some(v) => {
                            self.owned.push(v);
                            (self.owned.len() - 1) as u32
                        }
                        None => input,
                    }
                }
            }
            _ => RAW,
        };
        self.cells[i].value = value;
        #[cfg(test)]
        FILLED.with(|f| f.borrow_mut().push(key));
        i
    }
}

/// Rows kept from one transaction to the next on a thread, for one rule set: the results
/// for request data that repeats across requests (a client's `User-Agent`, `Accept`…, the
/// method, a path without a query, the names of form fields and cookies). Only such
/// values are kept, never cookie values, credentials (nor any header whose name says it
/// carries a key, token, session or secret), query strings, argument values, JSON keys or
/// bodies, so that how fast a request is answered tells nothing about another client's
/// secrets.
#[derive(Debug, Default)]
struct Kept {
    /// `RuleSet::id`: rows are only valid for the rule set that made them.
    rules: u64,
    rows: Rows,
}

thread_local! {
    /// One emptied cache of a finished transaction's request phases (see `spare`).
    static SPARE: crate::spare::Pool<TransformCache> = const { std::cell::RefCell::new(Vec::new()) };
    /// One emptied unions table of a finished transaction.
    static SPARE_UNIONS: crate::spare::Pool<Unions> = const { std::cell::RefCell::new(Vec::new()) };
    /// Kept rows, per rule set (a worker may serve a few).
    static KEPT: crate::spare::Pool<Kept> = const { std::cell::RefCell::new(Vec::new()) };
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
    crate::spare::keep(&SPARE_UNIONS, u, crate::spare::IN_FLIGHT);
}

/// Largest tables kept spare: a small request's, not a large body's.
const SPARE_MAX_CELLS: usize = 1 << 14;
const SPARE_MAX_ROWS: usize = 1024;

/// Rows a request with many values makes besides its values' names and values.
const EXTRA_ROWS: usize = 16;

/// From this many arguments and cookies on, their rows are stored by blocks.
const BLOCK_FROM_VALUES: usize = 16;

/// From this many arguments and cookies on, identical contents share an entry, when at
/// least one in [`SHARE_REPEATS_ONE_IN`] of their names and values (of those read, see
/// `State::repeated_contents`) repeats an earlier one:
/// interning every content costs ~4% of a 2 KB form of distinct values, and repeats save
/// their transformations, scans and operators (a checkout form's 14 `standard packaging`).
pub(super) const SHARE_FROM_VALUES: usize = 16;
const SHARE_REPEATS_ONE_IN: usize = 8;

/// From this long on, a transformed value is not scanned by a gate that only a few links
/// read its domain with (`RuleSet::gate_thin`).
const THIN_SCAN_FROM: usize = 1024;

/// The longest value whose results are kept across transactions.
const MAX_KEPT_LEN: usize = 1024;
/// Bounds of the kept rows per rule set and thread; past any of them they start afresh.
const KEPT_MAX_ROWS: usize = 256;
const KEPT_MAX_BYTES: usize = 256 << 10;
const KEPT_MAX_BITS: usize = 1 << 14;
const KEPT_MAX_MISSES: usize = 1 << 14;
const KEPT_MAX_UNIONS: usize = 1 << 12;
/// Value groups of this many values have their unions kept (from 2: a single value's
/// union is its own scan, found as fast), while their kept rows' numbers fit the key.
const KEPT_UNION_VALUES: std::ops::RangeInclusive<usize> = 2..=12;
const KEPT_UNION_ROW_BITS: u32 = 10;
/// Rule sets whose kept rows a thread holds at once.
const KEPT_RULE_SETS: usize = 4;

/// The tag of a kept row (in `slot_row` and in cell handles).
const KEPT_ROW: u32 = 1 << 31;
const KEPT_CELL: usize = 1 << (usize::BITS - 1);

/// Transformation results, one row of cells (one per node of the rule set's transformation
/// tree) per value, or per distinct content when contents are shared.
#[derive(Debug, Default)]
pub(super) struct TransformCache {
    /// slot → row (tagged [`KEPT_ROW`] for a kept one).
    slot_row: FxHashMap<u64, u32>,
    /// Cells per row: the number of transformation lists (nodes of the tree).
    width: usize,
    /// This transaction's rows.
    tx: Rows,
    /// Rows kept across transactions, while the request phases run (None after).
    kept: Option<Kept>,
    /// Indexes of request headers whose values are never kept (cookies, credentials), once
    /// `private_set`.
    private: Vec<u32>,
    private_set: bool,
    /// Whether identical contents share a row (and misses are remembered); off, every slot
    /// has its own row and nothing is interned.
    sharing: bool,
    /// The last JSON argument name scanned raw (see `Literals::scan_after_into`).
    prev_scan: crate::prefilter::PrevScan,
    /// Set while `REQUEST_BODY` is a urlencoded body whose arguments are its own bytes
    /// (nothing decoded): its combined scan is then made of its arguments' (see
    /// [`TransformCache::scan_body_from_args`]).
    body_args: Option<BodyArgs>,
}

/// A urlencoded body's arguments in `ARGS_POST`, from index `first`, cut on `separator`.
#[derive(Debug, Clone, Copy)]
pub(super) struct BodyArgs {
    pub(super) first: usize,
    pub(super) separator: u8,
}

/// The key of a kept union: (group, gate) and the values' rows, each + 1 in its own
/// [`KEPT_UNION_ROW_BITS`] bits. None unless every value of the group has a kept row.
fn kept_union_key(group: u32, g: u32, members: &[(u64, u32)]) -> Option<(u64, u128)> {
    if !KEPT_UNION_VALUES.contains(&members.len()) {
        return None;
    }
    let mut rows = 0u128;
    for &(_, row) in members {
        let r = row & !KEPT_ROW;
        if row & KEPT_ROW == 0 || r + 1 >= 1 << KEPT_UNION_ROW_BITS {
            return None;
        }
        rows = rows << KEPT_UNION_ROW_BITS | u128::from(r + 1);
    }
    Some((u64::from(group) << 32 | u64::from(g), rows))
}

/// The slot of `REQUEST_BODY`.
const BODY_SLOT: u64 = super::state::stable_slot(super::state::coll::BODY, 0, false);
/// The slot of the first JSON argument's name (its scan domain is every JSON name's).
const JSON_NAME_SLOT: u64 = super::state::stable_slot(super::state::coll::ARGS_JSON, 0, true);

impl TransformCache {
    /// The cell of the value in `slot` (whose content is `raw`) after the transformation
    /// list `key` of `tree`, computing it (from its parent list's cell) on first use.
    pub(super) fn entry(&mut self, slot: u64, raw: &[u8], key: u32, tree: &TransformTree) -> usize {
        let row = self.row(slot, raw, tree.len());
        self.cell(row, raw, key, tree)
    }

    /// Whether the value in `slot` may be kept across transactions.
    fn keepable(&self, slot: u64, raw: &[u8]) -> bool {
        // Nothing is kept before the private headers are known.
        self.kept.is_some()
            && self.private_set
            && raw.len() <= MAX_KEPT_LEN
            && super::state::slot_keepable(slot, raw, &self.private)
    }

    fn row(&mut self, slot: u64, raw: &[u8], width: usize) -> u32 {
        if let Some(&r) = self.slot_row.get(&slot) {
            return r;
        }
        // The tree is the rule set's: every row has its width.
        self.width = width;
        let r = match (self.keepable(slot, raw), &mut self.kept) {
            (true, Some(k)) => {
                let rows = &mut k.rows;
                match rows.contents.get(raw) {
                    Some(r) => r | KEPT_ROW,
                    None => {
                        let r = rows.add_row(width);
                        rows.contents.insert(raw, r);
                        r | KEPT_ROW
                    }
                }
            }
            _ => {
                let intern = self.sharing && raw.len() <= MAX_INTERNED;
                let rows = &mut self.tx;
                match intern.then(|| rows.contents.get(raw)).flatten() {
                    Some(r) => {
                        rows.share(r);
                        r
                    }
                    None => {
                        let r = rows.add_row(width);
                        if intern {
                            rows.contents.insert(raw, r);
                        }
                        r
                    }
                }
            }
        };
        self.slot_row.insert(slot, r);
        r
    }

    fn rows(&self, kept: bool) -> &Rows {
        match (kept, &self.kept) {
            (true, Some(k)) => &k.rows,
            _ => &self.tx,
        }
    }

    fn rows_mut(&mut self, kept: bool) -> &mut Rows {
        match (kept, &mut self.kept) {
            (true, Some(k)) => &mut k.rows,
            _ => &mut self.tx,
        }
    }

    /// Cell `key` of `row` (tagged [`KEPT_ROW`] or not), as a handle tagged [`KEPT_CELL`]
    /// for a kept row: [`Self::entry`] for a known row ([`Self::value_row`]).
    pub(super) fn cell(&mut self, row: u32, raw: &[u8], key: u32, tree: &TransformTree) -> usize {
        let kept = row & KEPT_ROW != 0;
        let width = self.width;
        let i = self.rows_mut(kept).cell(width, (row & !KEPT_ROW) as usize, raw, key, tree);
        if kept {
            i | KEPT_CELL
        } else {
            i
        }
    }

    /// Cell `i`'s rows and its index in them.
    fn at(&self, i: usize) -> (&Rows, usize) {
        (self.rows(i & KEPT_CELL != 0), i & !KEPT_CELL)
    }

    /// Whether entries `i` and `j` (of one row) hold the same result: no step between
    /// their lists changed the value.
    pub(super) fn same_value(&self, i: usize, j: usize) -> bool {
        let ((a, i), (b, j)) = (self.at(i), self.at(j));
        std::ptr::eq(a, b) && a.cells[i].value == b.cells[j].value
    }

    /// Cell `i`'s value (`raw` is the value it was computed from).
    pub(super) fn value<'a>(&'a self, i: usize, raw: &'a [u8]) -> &'a [u8] {
        let (rows, i) = self.at(i);
        rows.bytes(rows.cells[i].value, raw)
    }

    /// Frees everything (keeping the sharing setting): the results are recomputed if a
    /// later phase asks again. A transaction lives on after its request phases (while
    /// the upstream answers), and a JSON body's cache is ~1 MB. The kept rows go back to
    /// the thread for the next transaction.
    pub(super) fn release(&mut self) {
        self.put_back_kept();
        let old = std::mem::replace(self, TransformCache { sharing: self.sharing, ..TransformCache::default() });
        old.recycle();
    }

    /// An empty cache, with the tables of an earlier transaction's when one is spare: a
    /// fresh one grows its maps by rehashing in every transaction. It starts from the rows
    /// kept for rule set `rules` (`RuleSet::id`) on this thread, if any.
    pub(super) fn spare(rules: u64) -> TransformCache {
        let mut c = crate::spare::take(&SPARE).unwrap_or_default();
        let kept = KEPT
            .try_with(|k| {
                let mut k = k.try_borrow_mut().ok()?;
                let i = k.iter().position(|k| k.rules == rules)?;
                Some(k.swap_remove(i))
            })
            .ok()
            .flatten();
        c.kept = Some(kept.unwrap_or(Kept { rules, rows: Rows::default() }));
        c
    }

    /// Gives the kept rows back to the thread, unless they outgrew their bounds (then the
    /// next transaction starts them afresh).
    pub(super) fn put_back_kept(&mut self) {
        let Some(mut kept) = self.kept.take() else { return };
        let r = &kept.rows;
        let rows = r.masks.len();
        let bytes: usize = r.owned.iter().map(Vec::len).sum::<usize>() + r.contents.bytes.len();
        if rows > KEPT_MAX_ROWS
            || bytes > KEPT_MAX_BYTES
            || r.bits.len() > KEPT_MAX_BITS
            || r.no_match.len() > KEPT_MAX_MISSES
            || r.unions.len() > KEPT_MAX_UNIONS
        {
            // Dropped, not emptied: a request with many values must not leave its room behind.
            kept.rows = Rows::default();
        }
        let _ = KEPT.try_with(|k| {
            if let Ok(mut k) = k.try_borrow_mut() {
                // Another transaction of this rule set may have put its rows back meanwhile.
                k.retain(|o| o.rules != kept.rules);
                if k.len() >= KEPT_RULE_SETS {
                    k.remove(0);
                }
                k.push(kept);
            }
        });
    }

    /// The union of gate `g`'s bits over the values of value group `group` (`members`: their
    /// slots and rows), as a previous transaction computed it: a union is a function of
    /// the group, the gate and the values' contents, which kept rows identify. None when
    /// not kept, or when a value has no kept row (a transaction's own values are not kept).
    pub(super) fn kept_union(&self, group: u32, g: u32, members: &[(u64, u32)]) -> Option<&[u64]> {
        let key = kept_union_key(group, g, members)?;
        let rows = &self.kept.as_ref()?.rows;
        let at = *rows.unions.get(&key)? as usize;
        rows.bits.get(at..)
    }

    /// How many unions the kept rows hold.
    #[cfg(test)]
    pub(super) fn kept_unions(&self) -> usize {
        self.kept.as_ref().map_or(0, |k| k.rows.unions.len())
    }

    /// Keeps `bits`, the union [`Self::kept_union`] did not find, when its values all have
    /// kept rows.
    pub(super) fn keep_union(&mut self, group: u32, g: u32, members: &[(u64, u32)], bits: &[u64]) {
        let (Some(key), Some(kept)) = (kept_union_key(group, g, members), self.kept.as_mut()) else { return };
        let rows = &mut kept.rows;
        rows.unions.insert(key, rows.bits.len() as u32);
        rows.bits.extend_from_slice(bits);
    }

    /// Request headers (by index) whose values are never kept (headers do not change once
    /// the request phases start: set once).
    pub(super) fn set_private(&mut self, headers: impl Iterator<Item = u32>) {
        self.private.clear();
        self.private.extend(headers);
        self.private_set = true;
    }

    pub(super) fn private_set(&self) -> bool {
        self.private_set
    }

    /// Keeps this cache's tables (emptied) for a later transaction, unless they are large.
    fn recycle(mut self) {
        if self.tx.cells.capacity() > SPARE_MAX_CELLS || self.slot_row.capacity() > SPARE_MAX_ROWS {
            return;
        }
        self.slot_row.clear();
        self.tx.clear();
        self.kept = None;
        self.private.clear();
        self.private_set = false;
        self.width = 0;
        self.sharing = false;
        self.body_args = None;
        self.prev_scan.clear();
        crate::spare::keep(&SPARE, self, 1);
    }

    /// Whether gate `g`'s `bit` is set for the value in `slot` (raw content `raw`) after
    /// the transformation list `key`. A value the list leaves unchanged (up to ASCII case,
    /// which the prefilter ignores) is scanned once for all gates, without transforming
    /// it; a transformed one once per gate.
    pub(super) fn gate_pass(&mut self, slot: u64, raw: &[u8], key: u32, rules: &RuleSet, g: u32, bit: u32) -> bool {
        self.gate_pass_in(None, slot, raw, key, rules, g, bit)
    }

    /// [`Self::gate_pass`], for the value of `row` ([`Self::value_row`]) when known.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn gate_pass_in(
        &mut self,
        row: Option<u32>,
        slot: u64,
        raw: &[u8],
        key: u32,
        rules: &RuleSet,
        g: u32,
        bit: u32,
    ) -> bool {
        match self.scan(row, slot, raw, key, rules, g) {
            Scan::Raw(all, bits) => all.has(bits, g, bit),
            Scan::Gate(bits) => crate::prefilter::has(bits, bit),
        }
    }

    /// The row of the value in `slot` (content `raw`), made on first use.
    pub(super) fn value_row(&mut self, slot: u64, raw: &[u8], rules: &RuleSet) -> u32 {
        self.row(slot, raw, rules.transforms.len())
    }

    /// ORs gate `g`'s bits for that value (as [`TransformCache::gate_pass`] reads them)
    /// into `out`; `row` is its row ([`Self::value_row`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn or_gate_bits(
        &mut self,
        row: u32,
        slot: u64,
        raw: &[u8],
        key: u32,
        rules: &RuleSet,
        g: u32,
        out: &mut [u64],
    ) {
        match self.scan(Some(row), slot, raw, key, rules, g) {
            Scan::Raw(all, bits) => all.or_gate_bits(bits, g, out),
            Scan::Gate(bits) => crate::prefilter::or_into(out, bits),
        }
    }

    /// ORs the combined raw scan of the value in `slot` (its row `row`, content `raw`) into
    /// `acc` (sized to its automaton's words on first use).
    pub(super) fn or_raw_scan(
        &mut self,
        row: u32,
        slot: u64,
        raw: &[u8],
        rules: &RuleSet,
        acc: &mut Vec<u64>,
        at: usize,
    ) {
        let Some(all) = rules.combined.as_ref().map(|c| c.get(super::state::slot_domain(slot))) else { return };
        if acc.len() < at + all.words() {
            acc.resize(at + all.words(), 0);
        }
        if let Scan::Raw(_, bits) = self.raw_scan(Some(row), slot, raw, all, rules) {
            crate::prefilter::or_into(&mut acc[at..], bits);
        }
    }

    /// The mask of `row`'s raw value `raw` (`Rows::mask`).
    pub(super) fn row_mask(&mut self, row: u32, raw: &[u8]) -> u64 {
        let kept = row & KEPT_ROW != 0;
        self.rows_mut(kept).mask((row & !KEPT_ROW) as usize, raw)
    }

    /// For a value whose raw literals are already in a union: the gate scan of its value
    /// after the list `key`, or None when the list leaves it as it is (up to ASCII case).
    pub(super) fn changed_scan<'a>(
        &'a mut self,
        row: u32,
        slot: u64,
        raw: &[u8],
        key: u32,
        rules: &'a RuleSet,
        g: u32,
    ) -> Option<&'a [u64]> {
        let node = rules.transforms.node(key);
        if node.case_only || node.changes_on & self.row_mask(row, raw) == 0 {
            return None;
        }
        match self.scan(Some(row), slot, raw, key, rules, g) {
            Scan::Raw(..) => None,
            Scan::Gate(bits) => Some(bits),
        }
    }

    fn scan<'a>(
        &'a mut self,
        row: Option<u32>,
        slot: u64,
        raw: &[u8],
        key: u32,
        rules: &'a RuleSet,
        g: u32,
    ) -> Scan<'a> {
        let tree = &rules.transforms;
        let combined = rules.combined.as_ref().map(|c| c.get(super::state::slot_domain(slot)));
        // A list that changes nothing but case: the raw value's scan, without transforming
        // (and without a row, unless the value is kept: its scan is found by row; a
        // transaction's own row finds it by slot, as no row does).
        if let (Some(all), true) = (combined, tree.node(key).case_only) {
            let row = row.or_else(|| self.keepable(slot, raw).then(|| self.row(slot, raw, tree.len())));
            return self.raw_scan(row, slot, raw, all, rules);
        }
        let row = match row {
            Some(r) => r,
            None => self.row(slot, raw, tree.len()),
        };
        let kept = row & KEPT_ROW != 0;
        let width = self.width;
        let i = self.rows_mut(kept).cell(width, (row & !KEPT_ROW) as usize, raw, key, tree);
        if let Some(all) = combined.filter(|_| self.rows(kept).cells[i].value == RAW) {
            return self.raw_scan(Some(row), slot, raw, all, rules);
        }
        let gate = &rules.gates[g as usize];
        let rows = self.rows_mut(kept);
        if rows.cells[i].bits == UNSET {
            // Fields apart: the value is read from `owned` while `bits` grows.
            let value = rows.owned.get(rows.cells[i].value as usize).map_or(raw, Vec::as_slice);
            // Changed only in case (`t:htmlEntityDecode,t:lowercase` on a value without
            // `&`): the prefilter compares ASCII case-insensitively, so the raw scan holds.
            rows.cells[i].bits = if combined.is_some() && value.eq_ignore_ascii_case(raw) {
                AS_RAW
            } else if value.len() >= THIN_SCAN_FROM
                && rules.gate_thin.get(g as usize).is_some_and(|d| d >> super::state::slot_domain(slot) & 1 != 0)
            {
                // A long value that only a link or two of the gate read: every bit, and
                // they run (the bench form's decoded body: 1.7 KB walked for one regex).
                let at = rows.bits.len();
                rows.bits.resize(at + gate.words(), u64::MAX);
                at as u32
            } else {
                let at = rows.bits.len() as u32;
                gate.scan_into(value, &mut rows.bits);
                #[cfg(test)]
                GATE_SCANNED.with(|f| f.borrow_mut().push(value.len()));
                at
            };
        }
        match (rows.cells[i].bits, combined) {
            (AS_RAW, Some(all)) => self.raw_scan(Some(row), slot, raw, all, rules),
            (at, _) => Scan::Gate(&self.rows(kept).bits[at as usize..at as usize + gate.words()]),
        }
    }

    /// The combined scan of the raw value in `slot` (its row, if it has one), scanned on
    /// first use: found by slot for a transaction's own value, by (row, domain) for a kept
    /// one, which other slots share.
    // Inlined: called twice on every prefilter check (+2% instructions as a call).
    #[inline(always)]
    fn raw_scan<'a>(
        &'a mut self,
        row: Option<u32>,
        slot: u64,
        raw: &[u8],
        all: &'a Combined,
        rules: &RuleSet,
    ) -> Scan<'a> {
        if slot == BODY_SLOT && self.body_args.is_some() {
            self.scan_body_from_args(raw, all, rules);
        }
        let at = self.raw_scan_at(row, slot, raw, all);
        Scan::Raw(all, &self.rows(row.is_some_and(|r| r & KEPT_ROW != 0)).bits[at..at + all.words()])
    }

    /// Where [`Self::raw_scan`]'s result starts in its rows' `bits`.
    #[inline(always)]
    fn raw_scan_at(&mut self, row: Option<u32>, slot: u64, raw: &[u8], all: &Combined) -> usize {
        let (kept, id) = match row {
            Some(r) if r & KEPT_ROW != 0 => {
                (true, (u64::from(r & !KEPT_ROW) << 8) | super::state::slot_domain(slot) as u64)
            }
            _ => (false, slot),
        };
        match self.rows(kept).raw_scans.get(&id) {
            Some(&at) => at as usize,
            None => self.first_raw_scan(kept, id, slot, raw, all),
        }
    }

    /// [`Self::raw_scan_at`] of a value not scanned yet (apart: inlined, it made every
    /// lookup's code longer).
    #[inline(never)]
    fn first_raw_scan(&mut self, kept: bool, id: u64, slot: u64, raw: &[u8], all: &Combined) -> usize {
        let json_name = !kept && super::state::slot_domain(slot) == super::state::slot_domain(JSON_NAME_SLOT);
        // `rows_mut` by hand: `prev_scan` is borrowed beside the rows.
        let prev = &mut self.prev_scan;
        let rows = match (kept, &mut self.kept) {
            (true, Some(k)) => &mut k.rows,
            _ => &mut self.tx,
        };
        let at = rows.bits.len();
        if json_name {
            // Names in document order share their parents' paths.
            all.scan_after_into(raw, &mut rows.bits, prev);
        } else {
            all.scan_into(raw, &mut rows.bits);
        }
        rows.raw_scans.insert(id, at as u32);
        at
    }

    /// `REQUEST_BODY`'s combined scan (`all`: its domain's automaton) when it is a
    /// urlencoded body that decoded to its own bytes: every literal occurrence in it lies
    /// within one argument's name or value (no literal of the body's rules contains `=`
    /// or the separator, but those bytes alone; see `DomainScans::union_of_pieces`), so
    /// the union of the values' scans (which the rules on `ARGS` need anyway), of the
    /// names' scans and of the cut bytes the body holds gives every bit that walking the
    /// whole body would. A 1 MB form is then walked once, not twice.
    #[cold]
    fn scan_body_from_args(&mut self, body: &[u8], all: &Combined, rules: &RuleSet) {
        let Some(b) = self.body_args.take() else { return };
        let Some(domains) = &rules.combined else { return };
        let first_value = super::state::stable_slot(super::state::coll::ARGS_POST, b.first, false);
        let values = domains.get(super::state::slot_domain(first_value));
        let spans = crate::body::urlencoded::spans(body, b.separator);
        let mut starts = Vec::with_capacity(spans.len());
        for (i, (_, value)) in spans.iter().enumerate() {
            let slot = super::state::stable_slot(super::state::coll::ARGS_POST, b.first + i, false);
            // As `scan` finds a value's raw scan: argument values are never kept rows.
            starts.push(self.raw_scan_at(None, slot, &body[value.clone()], values));
        }
        let rows = &mut self.tx;
        let at = rows.bits.len();
        // The empty scan: the bits of rules whose literal is empty, and room.
        all.scan_into(b"", &mut rows.bits);
        let words = all.words();
        // Same lengths (`union_of_pieces`); the values' scans lie before the body's.
        let (scans, union) = rows.bits.split_at_mut(at);
        for s in starts {
            crate::prefilter::or_into(union, &scans[s..s + words]);
        }
        let mut name_bits = Vec::with_capacity(words);
        for (name, _) in &spans {
            name_bits.clear();
            all.scan_into(&body[name.clone()], &mut name_bits);
            crate::prefilter::or_into(union, &name_bits);
        }
        // A literal that is a cut byte alone (`=` after a shell command) is in no piece.
        for cut in [b'=', b.separator] {
            if memchr::memchr(cut, body).is_some() {
                name_bits.clear();
                all.scan_into(&[cut], &mut name_bits);
                crate::prefilter::or_into(union, &name_bits);
            }
        }
        // A link needing two literals may find them in different arguments.
        all.conjoin(union);
        rows.raw_scans.insert(BODY_SLOT, at as u32);
    }

    /// `values` request values (arguments and cookies; names and values each) are coming;
    /// of `repeats.1` of their names and values read, `repeats.0` repeat an earlier one's
    /// content: how their rows are kept (identical contents shared, rows by blocks)
    /// follows, and they get room at once (`width`: the rule set's transformation lists, a
    /// row's cells).
    pub(super) fn expect_values(&mut self, values: usize, repeats: (usize, usize), width: usize) {
        let (repeated, read) = repeats;
        self.sharing = values >= SHARE_FROM_VALUES && read > 0 && repeated * SHARE_REPEATS_ONE_IN >= read;
        // Capped: a huge body grows the index as it goes rather than reserving up front.
        // Each value's name and value, and a few rows besides (`REQUEST_BODY`…): a JSON
        // body of 388 values made 778 rows, and the table's growth past 776 copied it.
        let rows_wanted = values.min(1024) * 2 + EXTRA_ROWS;
        self.slot_row.reserve(rows_wanted);
        let rows = &mut self.tx;
        if values >= BLOCK_FROM_VALUES {
            rows.block_new_rows();
            // Grown by doubling, a JSON body's table (~350 KB) was copied as it grew: a
            // third of the request's writes that missed the cache. Room for every slab
            // (most are never made: room not written costs nothing).
            let blocks = rows_wanted.div_ceil(BLOCK_ROWS);
            rows.slabs.reserve(blocks * width);
            rows.cells.reserve(blocks * BLOCK_ROWS * width);
        }
        rows.masks.reserve(rows_wanted);
        if self.sharing {
            rows.contents.reserve(rows_wanted);
        }
    }

    #[cfg(test)]
    pub(super) fn sharing(&self) -> bool {
        self.sharing
    }

    /// `REQUEST_BODY` is a urlencoded body whose arguments are its own bytes (see
    /// [`Self::scan_body_from_args`]).
    pub(super) fn set_body_args(&mut self, args: BodyArgs) {
        self.body_args = Some(args);
    }

    /// Whether a miss on the value in `slot` is worth remembering: its row is shared by
    /// identical contents, or kept for later transactions.
    pub(super) fn memo_on(&self, slot: u64, raw: &[u8]) -> bool {
        self.sharing || self.keepable(slot, raw)
    }

    pub(super) fn known_no_match(&self, i: usize, memo: u32) -> bool {
        let (rows, i) = self.at(i);
        !rows.no_match.is_empty() && rows.no_match.contains(&((i as u64) << 32 | u64::from(memo)))
    }

    /// Remembers a miss on a kept row, or on a transaction's row that identical contents
    /// share: another row is never asked twice (a JSON body's ~10,000 misses per request
    /// went into the set for ~10 shared rows).
    pub(super) fn set_no_match(&mut self, i: usize, memo: u32) {
        let kept = i & KEPT_CELL != 0;
        if kept || (self.sharing && self.tx.is_shared(self.tx.row_of(self.width, i))) {
            self.rows_mut(kept).no_match.insert(((i & !KEPT_CELL) as u64) << 32 | u64::from(memo));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transformations::tree::steps;

    #[test]
    fn a_groups_domains_are_found_once_each() {
        let mut groups = ValueGroups::default();
        groups.at.resize(2, (NOT_YET, 0));
        // Slots 1..=6 alternate between domains 7 and 9, slot 5 is in domain 8.
        let listed = groups.get(0, |out| {
            out.extend((1..=6).map(|s| (s, 0)));
            true
        });
        assert_eq!(listed.map(<[_]>::len), Some(6));
        let asked = std::cell::Cell::new(0);
        let domain = |s: u64| {
            asked.set(asked.get() + 1);
            if s == 5 {
                8
            } else {
                7 + 2 * (s as u32 % 2)
            }
        };
        assert_eq!(groups.domains(0, domain), Some(&[9, 7, 8][..]));
        assert_eq!(asked.get(), 6);
        // Read again (by every other gate of the group): not looked for again.
        assert_eq!(groups.domains(0, domain), Some(&[9, 7, 8][..]));
        assert_eq!(asked.get(), 6);
        // A group not listed yet has none; a new phase finds them again.
        assert_eq!(groups.domains(1, domain), None);
        groups.clear();
        groups.at.resize(2, (NOT_YET, 0));
        groups.get(0, |out| {
            out.push((2, 0));
            true
        });
        assert_eq!(groups.domains(0, domain), Some(&[7][..]));
    }

    #[test]
    fn contents_are_shared_when_enough_of_many_values_repeat() {
        let mut c = TransformCache::default();
        // (values, repeats among those read, read, shared)
        for (values, repeats, read, want) in [
            (SHARE_FROM_VALUES - 1, 30, 30, false),
            (SHARE_FROM_VALUES, 3, 32, false),
            (SHARE_FROM_VALUES, 4, 32, true),
            (64, 15, 128, false),
            (64, 16, 128, true),
            (1000, 63, 512, false),
            (1000, 64, 512, true),
            (1000, 0, 0, false),
        ] {
            c.expect_values(values, (repeats, read), 0);
            assert_eq!(c.sharing, want, "{values} values, {repeats} repeats of {read}");
        }
    }

    #[test]
    fn a_bodys_rows_fit_the_room_made_for_them() {
        let mut tree = TransformTree::default();
        let upper = tree.key(&steps(&["uppercase"]));
        let width = tree.len();
        let mut c = TransformCache::default();
        // The Kibana search body: 388 values, their names, and two rows more.
        c.expect_values(388, (0, 512), width);
        let (cells, masks) = (c.tx.cells.capacity(), c.tx.masks.capacity());
        for slot in 0..388 * 2 + 2 {
            c.entry(slot, format!("v{slot}").as_bytes(), upper, &tree);
        }
        assert_eq!((c.tx.cells.capacity(), c.tx.masks.capacity()), (cells, masks));
    }

    #[test]
    fn interned_contents_are_found_by_their_bytes() {
        let mut i = Interned::default();
        i.insert(b"standard packaging", 3);
        i.insert(b"", 4);
        i.insert(b"standard packaging", 9);
        assert_eq!((i.get(b"standard packaging"), i.get(b""), i.get(b"standard packagin")), (Some(3), Some(4), None));
        assert_eq!((i.len(), i.bytes.len()), (2, 18), "a content's bytes are held once");
        // A content under another's hash is not taken for it.
        let other = b"other content";
        i.index.insert(Interned::hash(other), (0, other.len() as u32, 5));
        assert_eq!(i.get(other), None);
        i.bytes.reserve(SPARE_MAX_INTERNED + 1);
        i.clear();
        assert!(i.is_empty() && i.bytes.capacity() == 0, "a large buffer is not kept");
    }

    #[test]
    fn identical_contents_share_an_entry() {
        let mut tree = TransformTree::default();
        let upper = tree.key(&steps(&["uppercase"]));
        let mut c = TransformCache::default();
        c.expect_values(SHARE_FROM_VALUES, (1, 1), 0);
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
        // A row no other slot shares is never asked twice: its misses are not kept.
        c.set_no_match(other, 70);
        assert!(!c.known_no_match(other, 70));
        assert_eq!(c.tx.no_match.len(), 1);
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
            c.expect_values(if sharing { SHARE_FROM_VALUES } else { 0 }, (1, 1), 0);
            let raw = b" AbC ";
            let e = c.entry(7, raw, lower_trim_nulls, &tree);
            assert_eq!(c.value(e, raw), b"abc");
            // The prefixes were computed on the way and are found again.
            let n = c.tx.owned.len();
            let (lt, l) = (c.entry(7, raw, lower_trim, &tree), c.entry(7, raw, lower, &tree));
            assert_eq!(c.value(lt, raw), b"abc");
            assert_eq!(c.value(l, raw), b" abc ");
            assert_eq!(c.tx.owned.len(), n, "nothing computed twice");
            // removeNulls changed nothing: the same bytes as its parent, not a copy.
            assert_eq!(c.tx.cells[e].value, c.tx.cells[lt].value);
            // Unchanged all the way: the raw value.
            let t = c.entry(8, b"x", trim, &tree);
            assert_eq!(c.tx.cells[t].value, RAW);
            assert_eq!(c.value(t, b"x"), b"x");
        }
    }

    #[test]
    fn lists_that_cannot_change_a_value_are_not_run() {
        // Run once on an empty value when its list is made (`Node::keeps_empty`).
        fn must_not_run(v: &[u8]) -> Option<Vec<u8>> {
            assert!(v.is_empty(), "run on a value without its trigger bytes");
            None
        }
        let mut tree = TransformTree::default();
        // Its mask is urlDecodeUni's (`%`, `+`); its function must never be reached here.
        let guarded = |name: &str| crate::actions::TransformStep { name: name.into(), func: must_not_run };
        let decode_lower = tree.key(&[guarded("urlDecodeUni"), steps(&["lowercase"]).remove(0)]);
        let b64_decode = tree.key(&steps(&["base64Decode", "urlDecodeUni"]));
        let mut c = TransformCache::default();
        // Neither step can change it: the raw value, nothing run.
        let e = c.entry(1, b"web-01", decode_lower, &tree);
        assert_eq!((c.tx.cells[e].value, c.value(e, b"web-01")), (RAW, &b"web-01"[..]));
        // The first step cannot, the second can: only the second runs.
        let e = c.entry(2, b"Web-01", decode_lower, &tree);
        assert_eq!(c.value(e, b"Web-01"), b"web-01");
        // A step after one that changed the value reads the new value's bytes: `JTQx` has no
        // `%`, its base64 decoding `%41` has.
        let e = c.entry(3, b"JTQx", b64_decode, &tree);
        assert_eq!(c.value(e, b"JTQx"), b"A");
        // A long value has no mask: its lists run (here the guarded step, which panics).
        let long = vec![b'a'; MASKED_LEN + 1];
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.entry(4, &long, decode_lower, &tree)));
        assert!(ran.is_err(), "a value past MASKED_LEN is transformed");
    }

    #[test]
    fn a_step_on_an_unchanged_value_runs_once_whichever_list_asks() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        fn counted(v: &[u8]) -> Option<Vec<u8>> {
            RUNS.fetch_add(1, SeqCst);
            (!v.is_empty()).then(|| v.iter().rev().copied().collect())
        }
        let step = crate::actions::TransformStep { name: "base64Decode".into(), func: counted };
        let mut tree = TransformTree::default();
        // Two prefixes that leave `abc` as it is, then the counted step; and a step after it.
        let a = tree.key(&[steps(&["urlDecodeUni"]).remove(0), step.clone()]);
        let b = tree.key(&[steps(&["lowercase"]).remove(0), step.clone()]);
        let b_trim = tree.key(&[steps(&["lowercase"]).remove(0), step.clone(), steps(&["trim"]).remove(0)]);
        let mut c = TransformCache::default();
        let before = RUNS.load(SeqCst);
        let (ea, eb) = (c.entry(1, b"abc", a, &tree), c.entry(1, b"abc", b, &tree));
        assert_eq!((c.value(ea, b"abc"), c.value(eb, b"abc")), (&b"cba"[..], &b"cba"[..]));
        assert_eq!(RUNS.load(SeqCst) - before, 1, "one run for both lists");
        let parent = c.entry(1, b"abc", tree.node(a).parent.unwrap(), &tree);
        assert!(!c.same_value(parent, ea), "the step changed the value");
        // A changed prefix: the step runs on its result, not the raw value.
        let e = c.entry(2, b"ABC", b, &tree);
        assert_eq!(c.value(e, b"ABC"), b"cba");
        assert_eq!(RUNS.load(SeqCst) - before, 2);
        // The step's result is the next step's input.
        let e = c.entry(3, b" xy", b_trim, &tree);
        assert_eq!(c.value(e, b" xy"), b"yx");
    }

    #[test]
    fn an_emptied_value_skips_the_steps_that_keep_it_empty() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        static SEEN: AtomicUsize = AtomicUsize::new(0);
        fn counted_lower(v: &[u8]) -> Option<Vec<u8>> {
            SEEN.fetch_add(1, SeqCst);
            crate::transformations::lookup("lowercase").unwrap()(v)
        }
        let lower = crate::actions::TransformStep { name: "lowercase".into(), func: counted_lower };
        let mut tree = TransformTree::default();
        let empty_lower = tree.key(&[steps(&["base64Decode"]).remove(0), lower.clone()]);
        let empty_len = tree.key(&steps(&["base64Decode", "length"]));
        let mut c = TransformCache::default();
        let before = SEEN.load(SeqCst);
        // `a-b` is no base64: decoded to nothing, which lowercase leaves as it is.
        let e = c.entry(1, b"a-b", empty_lower, &tree);
        assert_eq!(c.value(e, b"a-b"), b"");
        assert_eq!(SEEN.load(SeqCst), before, "lowercase not run on an empty value");
        // `length` makes "0" of it: run.
        let e = c.entry(1, b"a-b", empty_len, &tree);
        assert_eq!(c.value(e, b"a-b"), b"0");
        // A value left non-empty goes on through the list.
        let e = c.entry(2, b"QUJD", empty_lower, &tree);
        assert_eq!(c.value(e, b"QUJD"), b"abc");
        assert_eq!(SEEN.load(SeqCst), before + 1);
    }

    #[test]
    fn many_values_have_their_rows_stored_by_blocks() {
        let mut tree = TransformTree::default();
        let upper = tree.key(&steps(&["uppercase"]));
        let upper_lower = tree.key(&steps(&["uppercase", "lowercase"]));
        let trim = tree.key(&steps(&["trim"]));
        let width = tree.len();
        let mut c = TransformCache::default();
        let raw = |i: u64| format!(" v{i} ").into_bytes();
        // A few rows before the body's values (headers, the path…), row by row.
        c.expect_values(3, (0, 0), width);
        for slot in 0..3 {
            c.entry(slot, &raw(slot), upper, &tree);
        }
        assert_eq!(c.tx.blocked_from, None);
        c.expect_values(SHARE_FROM_VALUES, (1, 1), width);
        assert_eq!(c.tx.blocked_from, Some(3));
        let mut seen = std::collections::HashSet::new();
        for slot in 0..60 {
            let v = raw(slot);
            let (u, ul, t) = (
                c.entry(slot, &v, upper, &tree),
                c.entry(slot, &v, upper_lower, &tree),
                c.entry(slot, &v, trim, &tree),
            );
            assert_eq!(c.value(u, &v), v.to_ascii_uppercase());
            assert_eq!(c.value(ul, &v), v.to_ascii_lowercase());
            assert_eq!(c.value(t, &v), v.trim_ascii());
            for (key, i) in [(upper, u), (upper_lower, ul), (trim, t)] {
                assert!(i < c.tx.cells.len() && seen.insert(i), "each cell has its own place");
                let row = c.tx.row_of(width, i);
                assert_eq!((row, c.tx.index(width, row, key)), (slot as usize, i));
            }
        }
        // The 60 values' eight blocks have slabs for the three lists used, and no other.
        assert!(width > 3 && c.tx.cells.len() == 3 * width + 8 * 3 * BLOCK_ROWS);
        // A list's cells of the rows of one block are side by side.
        let mut at = |slot: u64| c.entry(slot, &raw(slot), upper, &tree);
        assert_eq!((at(3) + 1, at(3) + 7, at(3) + 3 * BLOCK_ROWS), (at(4), at(10), at(11)));
        // Before them, row by row.
        assert_eq!(at(1) + width, at(2));
        // Identical contents in blocked rows share their entry and its misses.
        let (a, b) = (c.entry(100, b" v50 ", upper, &tree), c.entry(50, &raw(50), upper, &tree));
        assert_eq!(a, b);
        c.set_no_match(a, 9);
        assert!(c.known_no_match(b, 9));
    }

    #[test]
    fn released_results_are_computed_again() {
        let mut tree = TransformTree::default();
        let upper = tree.key(&steps(&["uppercase"]));
        let mut c = TransformCache::default();
        c.expect_values(SHARE_FROM_VALUES, (1, 1), 0);
        let a = c.entry(1, b"abc", upper, &tree);
        c.set_no_match(a, 3);
        c.release();
        assert!(c.memo_on(1, b"abc"), "sharing is kept");
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
        c.expect_values(SHARE_FROM_VALUES, (1, 1), 0);
        assert_eq!(c.entry(3, b"abc", ROOT, &tree), c.entry(4, b"abc", ROOT, &tree));
    }

    #[test]
    fn long_contents_are_not_shared() {
        let tree = TransformTree::default();
        let mut c = TransformCache::default();
        c.expect_values(SHARE_FROM_VALUES, (1, 1), 0);
        let big = vec![b'a'; MAX_INTERNED + 1];
        assert_ne!(c.entry(1, &big, ROOT, &tree), c.entry(2, &big, ROOT, &tree));
        assert_eq!(c.entry(1, &big, ROOT, &tree), c.entry(1, &big, ROOT, &tree));
    }

    #[test]
    fn a_value_changed_only_in_case_is_scanned_as_its_raw_value() {
        use super::super::state::{coll, stable_slot};
        let text = "SecRule ARGS \"@rx java\" \"id:1,phase:2,deny,t:none,t:htmlEntityDecode,t:lowercase\"";
        let src = crate::RuleSource::Inline { text: text.into(), origin: "/t/case.conf".into(), line: 1 };
        let rs = crate::RuleSet::compile(&[src]).unwrap();
        let rule = rs.phases[1]
            .iter()
            .find_map(|e| match e {
                crate::ruleset::Entry::Rule { rule, .. } => Some(rule),
                _ => None,
            })
            .unwrap();
        let ((g, bit), key) = (rule.gate.expect("gated on `java`"), rule.transform_key);
        let mut c = TransformCache::default();
        let slot = |i: usize| stable_slot(coll::ARGS_GET, i, false);
        // (value, scanned as raw, the gate passes it)
        let cases: [(&[u8], bool, bool); 4] = [
            (b"JaVa", true, true),
            // The entity makes the difference: the transformed value is scanned.
            (b"J&#97;VA", false, true),
            (b"J&#97;ZA", false, false),
            (b"COFFEE", true, false),
        ];
        for (i, (raw, as_raw, passes)) in cases.into_iter().enumerate() {
            let got = match c.scan(None, slot(i), raw, key, &rs, g) {
                Scan::Raw(all, bits) => (true, all.has(bits, g, bit)),
                Scan::Gate(bits) => (false, crate::prefilter::has(bits, bit)),
            };
            assert_eq!(got, (as_raw, passes), "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn kept_rows_outlive_the_transaction_for_their_rule_set_only() {
        use super::super::state::{coll, stable_slot};
        let mut tree = TransformTree::default();
        let upper = tree.key(&steps(&["uppercase"]));
        let header = |i: usize| stable_slot(coll::HEADERS, i, false);
        let (arg, uri) = (stable_slot(coll::ARGS_GET, 0, false), stable_slot(coll::URI, 0, false));
        // Ids no rule set of this test thread has.
        let (rules, other) = (u64::MAX - 1, u64::MAX - 2);
        let mut c = TransformCache::spare(rules);
        c.set_private([2].into_iter());
        let a = c.entry(header(1), b"abc", upper, &tree);
        assert_eq!(c.value(a, b"abc"), b"ABC");
        c.set_no_match(a, 5);
        let path = c.entry(uri, b"/p", upper, &tree);
        c.set_no_match(path, 5);
        let name = c.entry(arg | 1, b"field", upper, &tree);
        c.set_no_match(name, 5);
        // Not kept: a cookie (private header), an argument's value, a JSON key, a URI with
        // a query string.
        let json_key = stable_slot(coll::ARGS_JSON, 0, true);
        for (slot, raw) in [(header(2), &b"abc"[..]), (arg, b"abc"), (json_key, b"k"), (uri + 2, b"/p?q")] {
            let i = c.entry(slot, raw, upper, &tree);
            c.set_no_match(i, 6);
        }
        let kept = c.kept.as_ref().unwrap();
        assert_eq!(kept.rows.contents.len(), 3, "the header value, the path, the argument's name");
        c.release();

        // The next transaction of the rule set finds them, computes nothing again.
        let mut c = TransformCache::spare(rules);
        c.set_private([2].into_iter());
        let owned = c.kept.as_ref().unwrap().rows.owned.len();
        let b = c.entry(header(0), b"abc", upper, &tree);
        assert!(c.known_no_match(b, 5) && !c.known_no_match(b, 6));
        assert_eq!(c.value(b, b"abc"), b"ABC");
        let path = c.entry(uri, b"/p", upper, &tree);
        assert!(c.known_no_match(path, 5));
        assert_eq!(c.kept.as_ref().unwrap().rows.owned.len(), owned);
        let name = c.entry(arg | 1, b"field", upper, &tree);
        assert!(c.known_no_match(name, 5));
        for (slot, raw) in [(header(2), &b"abc"[..]), (arg, b"abc"), (json_key, b"k"), (uri + 2, b"/p?q")] {
            let i = c.entry(slot, raw, upper, &tree);
            assert!(!c.known_no_match(i, 6), "{raw:?}");
        }
        c.release();

        // Another rule set starts with none of them.
        let mut c = TransformCache::spare(other);
        c.set_private(std::iter::empty());
        let d = c.entry(header(1), b"abc", upper, &tree);
        assert!(!c.known_no_match(d, 5));
        // Past its bounds, the kept rows start afresh.
        for n in 0..=KEPT_MAX_ROWS {
            c.entry(header(n + 10), format!("v{n}").as_bytes(), upper, &tree);
        }
        assert_eq!(c.kept.as_ref().unwrap().rows.contents.len(), KEPT_MAX_ROWS + 2);
        c.release();
        let c = TransformCache::spare(other);
        let rows = &c.kept.as_ref().unwrap().rows;
        assert!(rows.contents.is_empty() && rows.cells.capacity() == 0, "dropped, room and all");
        // Rule set `rules` is still kept (a thread holds a few).
        let mut c = TransformCache::spare(rules);
        c.set_private(std::iter::empty());
        let e = c.entry(header(0), b"abc", upper, &tree);
        assert!(c.known_no_match(e, 5));
        // Nothing is kept before the private headers are known.
        let mut c = TransformCache::spare(u64::MAX - 3);
        let f = c.entry(header(0), b"abc", upper, &tree);
        assert!(f & KEPT_CELL == 0 && c.kept.as_ref().unwrap().rows.contents.is_empty());
    }
}
