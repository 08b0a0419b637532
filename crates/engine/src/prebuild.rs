//! A load's heavy builds, on two cores.
//!
//! Building the `@rx` patterns (`regex` automata and the prefilter's literal analysis)
//! and then the prefilter's automata is most of a load. The compiler only checks the
//! patterns (see `operators::deferred`); once the walk plans say which rules a request
//! can reach, their patterns are built here, then the automata of their gates. Each
//! list is built costliest first by the loading thread and a helper taking turns, so both
//! end together. A helper that cannot start, or that panics, leaves its jobs to the
//! loading thread.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::operators::deferred::Deferred;

/// Runs `job(i)` for every `i < costs.len()`, costliest first, on this thread and a
/// helper when the machine has two cores. Result `i` is `(job(i), built by the helper)`.
pub(crate) fn on_two_cores<T: Send>(costs: &[usize], job: impl Fn(usize) -> T + Sync) -> Vec<(T, bool)> {
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(costs[i]));
    let slots: Mutex<Vec<Option<(T, bool)>>> = Mutex::new((0..costs.len()).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let work = |helper: bool| {
        while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
            let r = job(i);
            // A panic while holding the lock leaves the slots consistent (stores only).
            slots.lock().unwrap_or_else(|e| e.into_inner())[i] = Some((r, helper));
        }
    };
    if costs.len() > 1 && std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
        std::thread::scope(|s| {
            let _helper = std::thread::Builder::new().spawn_scoped(s, || catch_unwind(AssertUnwindSafe(|| work(true))));
            work(false);
        });
    } else {
        work(false);
    }
    let slots = slots.into_inner().unwrap_or_else(|e| e.into_inner());
    // What a panicked helper had taken, done here.
    slots.into_iter().enumerate().map(|(i, r)| r.unwrap_or_else(|| (job(i), false))).collect()
}

/// Builds every pattern in `todo` not built yet (the same pattern may be listed twice).
pub(crate) fn build(mut todo: Vec<&Deferred>) {
    todo.retain(|d| d.built().is_none());
    let costs: Vec<usize> = todo.iter().map(|d| d.cost()).collect();
    on_two_cores(&costs, |i| {
        todo[i].get();
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

    #[test]
    fn every_job_runs_and_results_keep_their_order() {
        let costs: Vec<usize> = (0..100).map(|i| (i * 37) % 11).collect();
        let out = on_two_cores(&costs, |i| i * 2);
        assert_eq!(out.iter().map(|r| r.0).collect::<Vec<_>>(), (0..100).map(|i| i * 2).collect::<Vec<_>>());
        assert!(on_two_cores(&[], |i| i).is_empty());
        assert_eq!(on_two_cores(&[5], |i| i + 1), [(1, false)]);
    }

    #[test]
    fn jobs_a_panicking_helper_took_are_done_here() {
        let main = std::thread::current().id();
        // The helper panics on every job it takes; the results are still all there.
        let out = on_two_cores(&[1; 20], |i| {
            if std::thread::current().id() != main {
                panic!("helper fails");
            }
            i
        });
        assert_eq!(out.iter().map(|r| r.0).collect::<Vec<_>>(), (0..20).collect::<Vec<_>>());
        assert!(out.iter().all(|r| !r.1));
    }
}
