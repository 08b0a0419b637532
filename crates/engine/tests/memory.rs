//! Memory a CRS v4 transaction keeps (issue #5, worker RSS). nginx keeps a transaction from
//! its request headers to the end of its response, so what one holds after its request
//! phases is held once per open connection, and glibc keeps the heap that reached.
//! The heap is counted by this test binary's global allocator (`cap`), not read from RSS:
//! the same numbers on any machine, however busy. One test in this binary, so that nothing
//! else allocates while it counts.

use std::alloc::System;
use std::sync::Arc;

use cap::Cap;
use ward_engine::RuleSet;

#[path = "../benches/shapes/mod.rs"]
#[allow(dead_code)]
mod shapes;

#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, usize::MAX);

/// Connections of scripts/bench.sh (wrk -c 16).
const CONNECTIONS: usize = 16;

#[test]
fn transactions_keep_little_and_the_heap_stays_flat() {
    let Some(crs) = shapes::crs_dir() else {
        eprintln!("SKIPPED: ../shared/crs/v4 not found");
        return;
    };
    let sources = shapes::sources(&crs, 1);
    let before = HEAP.allocated();
    let rs = Arc::new(RuleSet::compile(&sources).expect("CRS v4 compiles"));
    // Every worker keeps the compiled rule set for its life: ~18.5 MB of heap at PL1. The
    // `@pmFromFile` phrase automata took ~13 MB more as boxed child lists (~3 MB flat),
    // and the patterns of the PL2-4 rules ~6 MB when they were built at load.
    let compiled = HEAP.allocated().saturating_sub(before);
    eprintln!("heap: the compiled CRS v4 holds {compiled} bytes");
    assert!(compiled < 22 << 20, "the compiled CRS v4 holds {compiled} bytes");
    let shapes = shapes::shapes();
    let kibana = shapes.iter().find(|s| s.name == "post_kibana_json").expect("shape");
    let form = shapes.iter().find(|s| s.name == "post_form_2k").expect("shape");
    // The regexes' lazy DFA caches grow on first use, then stay.
    for s in [kibana, form] {
        for _ in 0..3 {
            shapes::run(&rs, s);
        }
    }

    // Repeated requests: nothing accumulates.
    let before = HEAP.allocated();
    for _ in 0..20 {
        shapes::run(&rs, kibana);
        shapes::run(&rs, form);
    }
    let grown = HEAP.allocated().saturating_sub(before);
    assert!(grown < 64 << 10, "40 requests left {grown} bytes behind");

    // Transactions waiting for the upstream after their request phases. The 16 KB JSON
    // body's transformation cache (~6 MB when it was kept) is freed by then: ~130 KB
    // remain (the body, its parsed arguments, the transaction's variables).
    let before = HEAP.allocated();
    let waiting: Vec<_> = (0..CONNECTIONS).map(|_| shapes::request(&rs, kibana)).collect();
    let per_tx = (HEAP.allocated() - before) / CONNECTIONS;
    eprintln!("heap: {grown} bytes left by 40 requests, {per_tx} kept per waiting transaction");
    assert!(waiting.iter().all(|(_, blocked)| !blocked));
    assert!(per_tx < 512 << 10, "a waiting transaction keeps {per_tx} bytes");
    drop(waiting);

    // The peak of one transaction, which glibc keeps as free heap afterwards: under 1 MB for this
    // body (it was ~6 MB). Above the limit the allocator fails and the test binary aborts
    // ("memory allocation of N bytes failed").
    let limit = HEAP.allocated() + (2 << 20);
    HEAP.set_limit(limit).expect("limit above the heap in use");
    shapes::run(&rs, kibana);
    HEAP.set_limit(usize::MAX).expect("no limit");
}
