//! Engine-only benchmarks on the request shapes of scripts/bench.sh, against the real
//! CRS v4 (../shared/crs/v4) at paranoia level 1, plus rule-set compilation.
//! Run: `cargo bench -p ward-engine --bench crs`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ward_engine::RuleSet;

mod shapes;
use shapes::{crs_dir, run, run_with_response, shapes, sources};

fn bench(c: &mut Criterion) {
    let Some(crs) = crs_dir() else {
        eprintln!("SKIPPED: ../shared/crs/v4 not found");
        return;
    };
    let src = sources(&crs, 1);
    c.bench_function("compile_crs_v4", |b| b.iter(|| RuleSet::compile(&src).unwrap()));
    let rs = Arc::new(RuleSet::compile(&src).unwrap());
    let mut g = c.benchmark_group("crs_v4_pl1");
    for s in shapes() {
        assert!(!run(&rs, &s), "benign shape {} was blocked", s.name);
        g.throughput(Throughput::Bytes(s.body.len().max(1) as u64));
        if s.body.len() > 100_000 {
            g.sample_size(10);
        }
        g.bench_with_input(BenchmarkId::from_parameter(s.name), &s, |b, s| b.iter(|| run(&rs, s)));
        if s.name == "get_root" {
            // The whole transaction as nginx runs it, response phases included.
            let id = BenchmarkId::from_parameter("get_root+response");
            g.bench_with_input(id, &s, |b, s| b.iter(|| run_with_response(&rs, s)));
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
