//! Runs one request shape of the CRS v4 benchmark N times, for instruction counts that a
//! noisy machine cannot blur: `valgrind --tool=callgrind --toggle-collect=icount::measured
//! target/release/examples/icount get_root 20` (see docs/bench.md); `get_root+response` also
//! runs the response phases; `WARD_ICOUNT_INFLIGHT=16` keeps 16 transactions alive at once,
//! `WARD_ICOUNT_BURST=16` starts 16 and then ends them together.

use std::sync::Arc;

use ward_engine::RuleSet;

#[path = "../benches/shapes/mod.rs"]
mod shapes;

#[inline(never)]
fn measured(rs: &Arc<RuleSet>, s: &shapes::Shape, n: usize, response: bool) -> usize {
    let burst = env_number("WARD_ICOUNT_BURST");
    if burst > 1 {
        return measured_bursts(rs, s, n, response, burst);
    }
    let inflight = env_number("WARD_ICOUNT_INFLIGHT");
    if inflight > 1 {
        return measured_inflight(rs, s, n, response, inflight);
    }
    let run = if response { shapes::run_with_response } else { shapes::run };
    (0..n).filter(|_| run(rs, s)).count()
}

/// WARD_ICOUNT_INFLIGHT=K: K transactions alive at once (each ends K-1 requests after it
/// began), as in an nginx worker serving K connections (bench.sh's wrk keeps 16 open):
/// what a transaction takes from the per-thread spare pools at its start comes back later.
/// Not with WARD_ICOUNT_EVICT_KB, which measures one request at a time.
fn measured_inflight(rs: &Arc<RuleSet>, s: &shapes::Shape, n: usize, response: bool, k: usize) -> usize {
    let mut live = std::collections::VecDeque::with_capacity(k);
    let mut blocked = 0;
    for _ in 0..n {
        let (tx, b) = shapes::served(rs, s, response);
        blocked += usize::from(b);
        live.push_back(tx);
        if live.len() >= k {
            live.pop_front();
        }
    }
    blocked
}

/// WARD_ICOUNT_BURST=K: K transactions start, then all K end, and again: as an nginx
/// worker's epoll hands it a batch of requests, then a batch of upstream answers.
/// Transactions that end together give back their buffers together (see `spare.rs`).
fn measured_bursts(rs: &Arc<RuleSet>, s: &shapes::Shape, n: usize, response: bool, k: usize) -> usize {
    let (mut live, mut blocked) = (Vec::with_capacity(k), 0);
    for _ in 0..n {
        let (tx, b) = shapes::served(rs, s, response);
        blocked += usize::from(b);
        live.push(tx);
        if live.len() == k {
            live.clear();
        }
    }
    blocked
}

#[inline(never)]
fn warm_up(rs: &Arc<RuleSet>, s: &shapes::Shape, response: bool) {
    let run = if response { shapes::run_with_response } else { shapes::run };
    for _ in 0..2 {
        run(rs, s);
    }
}

/// A number from the environment (0 when unset or not a number).
fn env_number(name: &str) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "get_root".into());
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10);
    let Some(crs) = shapes::crs_dir() else {
        eprintln!("SKIPPED: ../shared/crs/v4 not found");
        return;
    };
    let mut rs = RuleSet::compile(&shapes::sources(&crs, 1)).expect("CRS v4 compiles");
    // For measuring what folding the setup rules at load buys.
    if std::env::var_os("WARD_NO_SETUP_FOLDING").is_some() {
        rs = rs.without_setup_folding();
    }
    let rs = Arc::new(rs);
    // `<shape>+response` runs the response phases too (scripts/bench.sh's upstream answer).
    let (base, response) = match name.strip_suffix("+response") {
        Some(b) => (b.to_string(), true),
        None => (name.clone(), false),
    };
    let Some(shape) = shapes::shapes().into_iter().find(|s| s.name == base) else {
        eprintln!("unknown shape {name}");
        std::process::exit(2);
    };
    // WARD_ICOUNT_EVICT_KB=N: between runs (outside `measured`), write N KB, as the
    // kernel and nginx do between a worker's requests: with callgrind's cache simulation
    // (`--cache-sim=yes --LL=524288,8,64`), what a request costs in cache misses when its
    // rules and state are no longer in the core's cache.
    let evict = env_number("WARD_ICOUNT_EVICT_KB");
    let mut junk = vec![0u8; evict * 1024];
    // Outside `measured`: the regexes built on first use and their lazy DFAs' states,
    // which a worker has long made, are made here (two requests), not counted.
    warm_up(&rs, &shape, response);
    let t = std::time::Instant::now();
    let blocked = if evict == 0 {
        measured(&rs, &shape, n, response)
    } else {
        (0..n)
            .map(|i| {
                junk.iter_mut().step_by(64).for_each(|b| *b = b.wrapping_add(i as u8));
                std::hint::black_box(&junk);
                measured(&rs, &shape, 1, response)
            })
            .sum()
    };
    let per = t.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64;
    println!("{name}: {n} runs, {blocked} blocked, {per:.1} µs/run");
}
