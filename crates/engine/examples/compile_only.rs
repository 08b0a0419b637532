//! Compiles CRS v4 at PL1 N times (default 1), for profiling rule-set load:
//! `valgrind --tool=callgrind target/release/examples/compile_only` (see docs/bench.md).

#[path = "../benches/shapes/mod.rs"]
#[allow(dead_code)]
mod shapes;

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(1);
    let Some(crs) = shapes::crs_dir() else {
        eprintln!("SKIPPED: ../shared/crs/v4 not found");
        return;
    };
    let src = shapes::sources(&crs, 1);
    for _ in 0..n {
        let t = std::time::Instant::now();
        let rs = ward_engine::RuleSet::compile(&src).expect("CRS v4 compiles");
        eprintln!("compiled in {:?}", t.elapsed());
        drop(rs);
    }
}
