//! Builds the `@rx` patterns a load's rules can reach, on two cores.
//!
//! Building the patterns (`regex` automata and the prefilter's literal analysis) is most
//! of a load. The compiler only checks them (see `operators::deferred`); once the walk
//! plans say which rules a request can reach, their patterns are built here, longest
//! first, by the loading thread and a helper taking turns from one list, so both end
//! together. A helper that cannot start or that panics leaves its patterns to be built
//! by the first request that needs them; nothing else depends on it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::operators::deferred::Deferred;

/// Builds every pattern in `todo` not built yet (the same pattern may be listed twice).
pub(crate) fn build(mut todo: Vec<&Deferred>) {
    todo.retain(|d| d.built().is_none());
    todo.sort_by_key(|d| std::cmp::Reverse(d.cost()));
    let next = AtomicUsize::new(0);
    let work = || {
        while let Some(d) = todo.get(next.fetch_add(1, Ordering::Relaxed)) {
            d.get();
        }
    };
    if todo.len() < 2 || std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return work();
    }
    std::thread::scope(|s| {
        // A pattern the helper was building when it panicked is left unbuilt (a OnceLock
        // whose initialiser panicked stays empty).
        let _helper = std::thread::Builder::new().spawn_scoped(s, || catch_unwind(AssertUnwindSafe(work)));
        work();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_every_listed_pattern_once() {
        let ds: Vec<Deferred> = (0..40).map(|i| Deferred::new(&format!("a{{{i}}}b|c{i}")).unwrap()).collect();
        let mut todo: Vec<&Deferred> = ds.iter().collect();
        todo.push(&ds[3]); // listed twice
        build(todo);
        for (i, d) in ds.iter().enumerate() {
            let p = d.built().unwrap_or_else(|| panic!("pattern {i} not built"));
            assert!(p.is_match(format!("c{i}").as_bytes()));
        }
        let unlisted = Deferred::new("z+").unwrap();
        build(Vec::new());
        assert!(unlisted.built().is_none());
    }
}
