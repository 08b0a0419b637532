//! Per-thread pools of emptied tables that the next transaction starts from: a fresh hash
//! map or vector grows by rehashing and reallocating in every transaction. The callers
//! decide what is small enough to keep and empty it first.
//!
//! Access is fallible on purpose: during thread teardown, or if a pool is already
//! borrowed, the table is simply dropped (or a fresh one made), never a panic.

use std::cell::RefCell;
use std::thread::LocalKey;

/// How many emptied parts of finished transactions (buffers, match lists, unions) a
/// thread keeps: about as many as an nginx worker has in flight (one per connection
/// waiting for its upstream). With one kept, transactions that end in a burst freed
/// what the next burst then allocated again: through nginx, ~45 of the ~75 `malloc`s
/// of a `GET /`.
pub(crate) const IN_FLIGHT: usize = 16;

/// A pool: `thread_local! { static P: Pool<T> = const { RefCell::new(Vec::new()) }; }`.
pub(crate) type Pool<T> = RefCell<Vec<T>>;

/// A kept table, if the pool has one.
pub(crate) fn take<T>(pool: &'static LocalKey<Pool<T>>) -> Option<T> {
    pool.try_with(|p| p.try_borrow_mut().ok()?.pop()).ok().flatten()
}

/// Keeps `item` unless the pool already holds `max`.
pub(crate) fn keep<T>(pool: &'static LocalKey<Pool<T>>, item: T, max: usize) {
    let _ = pool.try_with(|p| {
        if let Ok(mut p) = p.try_borrow_mut() {
            if p.len() < max {
                p.push(item);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static P: Pool<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }

    #[test]
    fn keeps_up_to_max_and_gives_back() {
        assert_eq!(take(&P), None);
        for i in 0..3u8 {
            keep(&P, vec![i], 2);
        }
        assert_eq!(take(&P), Some(vec![1]));
        assert_eq!(take(&P), Some(vec![0]));
        assert_eq!(take(&P), None);
        // A pool in use: the item is dropped, nothing panics.
        P.with(|p| {
            let _held = p.borrow_mut();
            keep(&P, vec![9], 2);
            assert_eq!(take(&P), None);
        });
        assert_eq!(take(&P), None);
    }
}
