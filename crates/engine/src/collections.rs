//! Persistent collections (IP, GLOBAL, SESSION, USER, RESOURCE) for `initcol`.
//!
//! ModSecurity keeps them in a store shared across requests; Ward keeps them in
//! memory per worker process, bounded in size, with `expirevar` deadlines honoured
//! on load. A transaction loads a collection once (`initcol`) and writes it back when
//! it ends.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;
use rustc_hash::FxHashMap;

/// A collection's variables (TX, or a loaded IP/GLOBAL/… record) by lower-cased name.
/// Looked up many times per request (every `%{tx.x}` and setvar); iteration sorts.
pub type Vars = FxHashMap<Vec<u8>, Vec<u8>>;

thread_local! {
    /// TX tables of finished transactions, with their small entries. TX grows from empty
    /// to dozens of entries in every transaction (the CRS sets ~50 on a plain GET); reusing a table
    /// saves its rehashes and their allocations, the larger of which make glibc
    /// consolidate its free lists.
    static SPARE_TX: crate::spare::Pool<TxTable> = const { RefCell::new(Vec::new()) };
}

/// Spare tables kept per thread, and the largest kept (in entries).
const SPARE_TABLES: usize = 16;
const SPARE_TABLE_MAX: usize = 1024;

/// Changes a table notes before it gives up and is reset whole (see [`TxTable`]).
const NOTED_MAX: usize = 256;

/// A transaction's TX. Only its own methods change it, and each change notes the key: a
/// table that started as a rule set's setup TX is, when a later transaction of the same
/// rule set takes it back, reset by those keys alone instead of by all of the setup's.
/// Reading goes through `Deref` to the map.
#[derive(Debug, Default)]
pub(crate) struct TxTable {
    vars: Vars,
    /// `RuleSet::id` of the setup TX that `vars` equals but for the `noted` keys; 0 when
    /// none (the table is then reset whole).
    origin: u64,
    /// Keys changed since the last reset, in `noted[..noted_len]`; the buffers after them
    /// are kept for the next notes.
    noted: Vec<Vec<u8>>,
    noted_len: usize,
    /// A key or value longer than [`SPARE_VALUE_MAX`] was written since the last reset.
    big: bool,
    /// Buffers of removed entries, for new keys: the CRS makes the same new keys in every
    /// request (`tx.header_name_920450_host`…), which the next reset removes again.
    loose: Vec<(Vec<u8>, Vec<u8>)>,
}

impl std::ops::Deref for TxTable {
    type Target = Vars;
    fn deref(&self) -> &Vars {
        &self.vars
    }
}

/// Sets `key` to `value`, overwriting an existing value in its buffer; false when it
/// already had that value. A new entry takes its buffers from `loose` when it has some.
fn set_in(vars: &mut Vars, key: &[u8], value: &[u8], loose: &mut Vec<(Vec<u8>, Vec<u8>)>) -> bool {
    match vars.get_mut(key) {
        Some(v) if v.as_slice() == value => false,
        Some(v) => {
            v.clear();
            v.extend_from_slice(value);
            true
        }
        None => {
            let (mut k, mut v) = loose.pop().unwrap_or_default();
            k.clear();
            k.extend_from_slice(key);
            v.clear();
            v.extend_from_slice(value);
            vars.insert(k, v);
            true
        }
    }
}

/// Most entries' buffers a table keeps for new keys (see `TxTable::loose`).
const LOOSE_MAX: usize = 32;

/// Keeps a removed entry's buffers for a later new key, when small.
fn loosen(loose: &mut Vec<(Vec<u8>, Vec<u8>)>, entry: Option<(Vec<u8>, Vec<u8>)>) {
    if let Some((k, v)) = entry {
        if loose.len() < LOOSE_MAX && k.capacity() <= SPARE_VALUE_MAX && v.capacity() <= SPARE_VALUE_MAX {
            loose.push((k, v));
        }
    }
}

/// Notes that `key` changed (fields apart, so that `vars` may be borrowed meanwhile).
fn note(origin: &mut u64, noted: &mut Vec<Vec<u8>>, noted_len: &mut usize, key: &[u8]) {
    if *origin == 0 || (*noted_len > 0 && noted[*noted_len - 1] == key) {
        return;
    }
    if *noted_len == NOTED_MAX {
        *origin = 0;
        return;
    }
    match noted.get_mut(*noted_len) {
        Some(b) => {
            b.clear();
            b.extend_from_slice(key);
        }
        None => noted.push(key.to_vec()),
    }
    *noted_len += 1;
}

impl TxTable {
    /// A table with these entries and no setup it derives from.
    pub(crate) fn from_vars(vars: Vars) -> TxTable {
        TxTable { vars, ..TxTable::default() }
    }

    /// Sets `key` to `value` (an existing value is overwritten in its buffer; an equal one
    /// is left alone, unnoted).
    pub(crate) fn set(&mut self, key: &[u8], value: &[u8]) {
        if self.vars.capacity() == 0 {
            // The room of an earlier transaction's table.
            *self = spare_tx();
        }
        self.big |= key.len() > SPARE_VALUE_MAX || value.len() > SPARE_VALUE_MAX;
        if set_in(&mut self.vars, key, value, &mut self.loose) {
            note(&mut self.origin, &mut self.noted, &mut self.noted_len, key);
        }
    }

    /// When the table is setup TX `origin` (`RuleSet::id`) but for some keys: those keys
    /// (one may be named more than once).
    pub(crate) fn changed_since(&self, origin: u64) -> Option<&[Vec<u8>]> {
        (origin != 0 && self.origin == origin).then(|| &self.noted[..self.noted_len])
    }

    pub(crate) fn remove(&mut self, key: &[u8]) {
        if let Some(entry) = self.vars.remove_entry(key) {
            loosen(&mut self.loose, Some(entry));
            note(&mut self.origin, &mut self.noted, &mut self.noted_len, key);
        }
    }

    /// Makes the table equal to `like`: through the noted keys when it already was, apart
    /// from them, `like` itself (`origin`), else entry by entry.
    fn reset_to(&mut self, like: &Vars, origin: u64) {
        if origin != 0 && self.origin == origin {
            for k in &self.noted[..self.noted_len] {
                match (like.get(k), self.vars.get_mut(k)) {
                    (Some(want), Some(v)) => {
                        v.clear();
                        v.extend_from_slice(want);
                    }
                    (Some(want), None) => {
                        self.vars.insert(k.clone(), want.clone());
                    }
                    (None, _) => loosen(&mut self.loose, self.vars.remove_entry(k)),
                }
            }
        } else {
            // Names and values of an earlier transaction's table are overwritten in place.
            self.vars.retain(|k, v| match like.get(k) {
                Some(want) => {
                    v.clear();
                    v.extend_from_slice(want);
                    true
                }
                None => false,
            });
            if self.vars.len() < like.len() {
                for (k, v) in like {
                    if !self.vars.contains_key(k) {
                        self.vars.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        self.origin = origin;
        self.noted_len = 0;
        self.big = false;
    }
}

/// A collection a setvar changes: TX (which notes each change) or a loaded one.
pub(crate) enum VarsMut<'a> {
    Tx(&'a mut TxTable),
    Other(&'a mut Vars),
}

impl VarsMut<'_> {
    pub(crate) fn set(&mut self, key: &[u8], value: &[u8]) {
        match self {
            VarsMut::Tx(t) => t.set(key, value),
            VarsMut::Other(v) => {
                set_in(v, key, value, &mut Vec::new());
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &[u8]) {
        match self {
            VarsMut::Tx(t) => t.remove(key),
            VarsMut::Other(v) => {
                v.remove(key);
            }
        }
    }
}

/// An empty TX table, with the room of an earlier transaction's when one is spare.
fn spare_tx() -> TxTable {
    let mut tx = crate::spare::take(&SPARE_TX).unwrap_or_default();
    tx.vars.clear();
    tx.origin = 0;
    tx.noted_len = 0;
    tx.big = false;
    tx
}

/// A TX table equal to `like`, the setup TX of rule set `origin` (`RuleSet::id`) that every
/// transaction starts from. A spare table of an earlier transaction holds nearly the same
/// entries and is reset in place (see [`TxTable`]) instead of being allocated again.
pub(crate) fn spare_tx_as(like: &Vars, origin: u64) -> TxTable {
    let Some(mut tx) = crate::spare::take(&SPARE_TX) else {
        return TxTable { vars: like.clone(), origin, ..TxTable::default() };
    };
    tx.reset_to(like, origin);
    tx
}

/// Values longer than this are not kept in a spare table (one large value per table would
/// otherwise stay allocated per thread); the setup's own values are, whatever their size.
const SPARE_VALUE_MAX: usize = 256;

/// Keeps `tx` for a later transaction, with its small entries (see [`spare_tx_as`]).
pub(crate) fn recycle_tx(mut tx: TxTable) {
    if tx.vars.capacity() == 0 || tx.vars.capacity() > SPARE_TABLE_MAX {
        return;
    }
    // A table that holds its setup's entries plus small changes is kept as it is (its
    // next reset goes by the noted keys); one with a long value written is trimmed and
    // reset whole next time.
    if tx.origin == 0 || tx.big {
        tx.vars.retain(|k, v| k.capacity() <= SPARE_VALUE_MAX && v.capacity() <= SPARE_VALUE_MAX);
        tx.origin = 0;
        tx.noted_len = 0;
        tx.noted.retain(|k| k.capacity() <= SPARE_VALUE_MAX);
    }
    crate::spare::keep(&SPARE_TX, tx, SPARE_TABLES);
}

/// Most records kept before the least recently used are dropped.
const MAX_RECORDS: usize = 100_000;

#[derive(Default)]
struct Record {
    vars: Vars,
    expires: HashMap<Vec<u8>, Instant>,
    touched: Option<Instant>,
}

static STORE: Lazy<Mutex<HashMap<(String, Vec<u8>), Record>>> = Lazy::new(|| Mutex::new(HashMap::new()));

/// Variables of a stored collection record, without expired ones.
pub fn load(collection: &str, key: &[u8]) -> Vars {
    let Ok(mut store) = STORE.lock() else { return Vars::default() };
    let Some(rec) = store.get_mut(&(collection.to_string(), key.to_vec())) else { return Vars::default() };
    let now = Instant::now();
    let expired: Vec<Vec<u8>> = rec.expires.iter().filter(|(_, t)| **t <= now).map(|(k, _)| k.clone()).collect();
    for k in expired {
        rec.vars.remove(&k);
        rec.expires.remove(&k);
    }
    rec.touched = Some(now);
    rec.vars.clone()
}

/// Writes a record back, with deadlines set by `expirevar` (seconds from now).
pub fn store(collection: &str, key: &[u8], vars: &Vars, expiries: &[(Vec<u8>, u64)]) {
    let Ok(mut store) = STORE.lock() else { return };
    if store.len() >= MAX_RECORDS {
        if let Some(oldest) = store.iter().min_by_key(|(_, r)| r.touched).map(|(k, _)| k.clone()) {
            store.remove(&oldest);
        }
    }
    let now = Instant::now();
    let rec = store.entry((collection.to_string(), key.to_vec())).or_default();
    rec.vars = vars.clone();
    rec.touched = Some(now);
    rec.expires.retain(|k, _| vars.contains_key(k));
    for (k, secs) in expiries {
        rec.expires.insert(k.clone(), now + Duration::from_secs(*secs));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
    }

    /// A table's entries, sorted.
    fn entries(t: &Vars) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut v: Vec<_> = t.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort();
        v
    }

    #[test]
    fn spare_tables_come_back_equal_to_the_setup() {
        let setup = vars(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let other = vars(&[("a", "5"), ("d", "4")]);
        // No spare yet: a copy.
        let mut t = spare_tx_as(&setup, 7);
        assert_eq!(*t, setup);
        // Changed, deleted, added and rewritten-to-equal entries; reset by the noted keys.
        t.set(b"a", b"10");
        t.remove(b"c");
        t.set(b"extra", b"x");
        t.set(b"b", b"2");
        recycle_tx(t);
        let mut t = spare_tx_as(&setup, 7);
        assert_eq!(*t, setup);
        // Another rule set's setup: reset entry by entry.
        t.set(b"b", b"9");
        recycle_tx(t);
        let t = spare_tx_as(&other, 8);
        assert_eq!(*t, other);
        recycle_tx(t);
        assert_eq!(*spare_tx_as(&setup, 7), setup);
    }

    #[test]
    fn long_keys_and_values_are_not_kept_in_spare_tables() {
        let setup = vars(&[("a", "1")]);
        let mut t = spare_tx_as(&setup, 9);
        t.set(b"big", &vec![b'x'; SPARE_VALUE_MAX + 1]);
        t.set(b"a", &vec![b'y'; 4 * SPARE_VALUE_MAX]);
        recycle_tx(t);
        let t = spare_tx_as(&setup, 9);
        assert_eq!(*t, setup);
        assert!(t.values().all(|v| v.capacity() <= SPARE_VALUE_MAX));
        recycle_tx(t);
        // A long key: neither it nor its note outlives the transaction.
        let mut t = spare_tx_as(&setup, 9);
        t.set(&vec![b'k'; 4 * SPARE_VALUE_MAX], b"v");
        recycle_tx(t);
        let t = crate::spare::take(&SPARE_TX).expect("kept");
        assert!(t.keys().all(|k| k.capacity() <= SPARE_VALUE_MAX));
        assert!(t.noted.iter().all(|k| k.capacity() <= SPARE_VALUE_MAX));
        recycle_tx(t);
        assert_eq!(*spare_tx_as(&setup, 9), setup);
    }

    #[test]
    fn a_new_key_reuses_the_buffers_of_a_removed_one() {
        let setup = vars(&[("a", "1")]);
        let mut t = spare_tx_as(&setup, 13);
        t.set(b"header_name_host", b"/host/");
        let (k, v) = t.get_key_value(&b"header_name_host"[..]).map(|(k, v)| (k.as_ptr(), v.as_ptr())).unwrap();
        recycle_tx(t);
        // The reset removed the key; the next transaction's new key takes its buffers.
        let mut t = spare_tx_as(&setup, 13);
        assert_eq!(*t, setup);
        t.set(b"header_name_date", b"/date/");
        let (k2, v2) = t.get_key_value(&b"header_name_date"[..]).map(|(k, v)| (k.as_ptr(), v.as_ptr())).unwrap();
        assert_eq!((k2, v2), (k, v));
        // So does one after a setvar deleted a key; a long entry's buffers are not kept.
        t.remove(b"header_name_date");
        t.set(b"x", b"y");
        assert_eq!(t.get_key_value(&b"x"[..]).map(|(k, _)| k.as_ptr()), Some(k));
        t.set(b"long", &vec![b'v'; 2 * SPARE_VALUE_MAX]);
        t.remove(b"long");
        assert!(t.loose.iter().all(|(k, v)| k.capacity() <= SPARE_VALUE_MAX && v.capacity() <= SPARE_VALUE_MAX));
        recycle_tx(t);
        assert_eq!(*spare_tx_as(&setup, 13), setup);
    }

    #[test]
    fn many_changes_reset_the_table_whole() {
        let setup = vars(&[("a", "1")]);
        let mut t = spare_tx_as(&setup, 11);
        for i in 0..NOTED_MAX + 10 {
            t.set(format!("k{i}").as_bytes(), b"v");
        }
        t.remove(b"a");
        recycle_tx(t);
        assert_eq!(*spare_tx_as(&setup, 11), setup);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 500, failure_persistence: None, ..Default::default() })]
        /// Whatever a transaction does to its TX, the next one of the same rule set (or of
        /// another) starts from exactly its setup.
        #[test]
        fn every_reset_gives_the_setup(
            rounds in proptest::collection::vec(
                (0u8..3, proptest::collection::vec((0u8..6, 0u8..4, proptest::bool::ANY), 0..12)),
                1..8,
            ),
        ) {
            let setups = [
                vars(&[("k0", "a"), ("k1", "b"), ("k2", "c")]),
                vars(&[("k1", "x"), ("k3", "y")]),
                vars(&[]),
            ];
            for (which, ops) in rounds {
                let setup = &setups[which as usize];
                let mut t = spare_tx_as(setup, u64::from(which) + 100);
                proptest::prop_assert_eq!(entries(&t), entries(setup));
                for (k, v, del) in ops {
                    let key = format!("k{k}");
                    if del {
                        t.remove(key.as_bytes());
                    } else {
                        t.set(key.as_bytes(), ["a", "b", "x", ""][v as usize].as_bytes());
                    }
                }
                recycle_tx(t);
            }
        }
    }

    #[test]
    fn round_trip_and_expiry() {
        let mut v = Vars::default();
        v.insert(b"a".to_vec(), b"1".to_vec());
        v.insert(b"gone".to_vec(), b"x".to_vec());
        store("IP", b"test-key", &v, &[(b"gone".to_vec(), 0)]);
        let got = load("IP", b"test-key");
        assert_eq!(got.get(&b"a"[..]).map(Vec::as_slice), Some(&b"1"[..]));
        assert!(!got.contains_key(&b"gone"[..]));
        assert!(load("IP", b"other").is_empty());
    }

    #[test]
    fn spare_tx_tables_come_back_empty_with_their_room() {
        let mut tx = TxTable::default();
        for i in 0..40u8 {
            tx.set(&[i], &[i]);
        }
        let room = tx.capacity();
        recycle_tx(tx);
        let again = spare_tx();
        assert!(again.is_empty());
        assert!(again.capacity() >= room);
        // Oversized tables are not kept.
        let mut big = Vars::default();
        big.reserve(SPARE_TABLE_MAX + 1);
        recycle_tx(TxTable::from_vars(big));
        assert!(spare_tx().capacity() <= SPARE_TABLE_MAX);
    }
}
