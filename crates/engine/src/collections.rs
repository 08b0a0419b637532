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
    static SPARE_TX: crate::spare::Pool<Vars> = const { RefCell::new(Vec::new()) };
}

/// Spare tables kept per thread, and the largest kept (in entries).
const SPARE_TABLES: usize = 16;
const SPARE_TABLE_MAX: usize = 1024;

/// An empty TX table, with the room of an earlier transaction's when one is spare.
pub(crate) fn spare_tx() -> Vars {
    let mut tx = crate::spare::take(&SPARE_TX).unwrap_or_default();
    tx.clear();
    tx
}

/// A TX table equal to `like` (the setup TX every transaction starts from). A spare table
/// of an earlier transaction holds nearly the same names: their names and values are
/// overwritten in place instead of being allocated again (~100 of each per request).
pub(crate) fn spare_tx_as(like: &Vars) -> Vars {
    let Some(mut tx) = crate::spare::take(&SPARE_TX) else { return like.clone() };
    tx.retain(|k, v| match like.get(k) {
        Some(want) => {
            v.clear();
            v.extend_from_slice(want);
            true
        }
        None => false,
    });
    if tx.len() < like.len() {
        for (k, v) in like {
            if !tx.contains_key(k) {
                tx.insert(k.clone(), v.clone());
            }
        }
    }
    tx
}

/// Values longer than this are not kept in a spare table (one large value per table would
/// otherwise stay allocated per thread).
const SPARE_VALUE_MAX: usize = 256;

/// Keeps `tx` for a later transaction, with its small entries (see [`spare_tx_as`]).
pub(crate) fn recycle_tx(mut tx: Vars) {
    if tx.capacity() == 0 || tx.capacity() > SPARE_TABLE_MAX {
        return;
    }
    tx.retain(|k, v| k.capacity() <= SPARE_VALUE_MAX && v.capacity() <= SPARE_VALUE_MAX);
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

    #[test]
    fn spare_tables_come_back_empty_or_equal_to_the_setup() {
        let setup = vars(&[("a", "1"), ("b", "2"), ("c", "3")]);
        // No spare yet: a copy.
        assert_eq!(spare_tx_as(&setup), setup);
        // A finished transaction's table: changed, deleted, added and oversized entries.
        let mut used = vars(&[("a", "10"), ("c", "3"), ("extra", "x")]);
        used.insert(b"big".to_vec(), vec![b'x'; SPARE_VALUE_MAX + 1]);
        recycle_tx(used);
        assert_eq!(spare_tx_as(&setup), setup);
        recycle_tx(vars(&[("z", "9")]));
        let empty = spare_tx();
        assert!(empty.is_empty() && empty.capacity() > 0);
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
        let mut tx = spare_tx();
        for i in 0..40u8 {
            tx.insert(vec![i], vec![i]);
        }
        let room = tx.capacity();
        recycle_tx(tx);
        let again = spare_tx();
        assert!(again.is_empty());
        assert!(again.capacity() >= room);
        // Oversized tables are not kept.
        let mut big = Vars::default();
        big.reserve(SPARE_TABLE_MAX + 1);
        recycle_tx(big);
        assert!(spare_tx().capacity() <= SPARE_TABLE_MAX);
    }
}
