use ward_engine::operators::pattern::Pattern;
fn main() {
    let v: std::collections::HashMap<String, Vec<String>> =
        serde_json::from_str(&std::fs::read_to_string("/tmp/exp/pats.json").unwrap()).unwrap();
    for k in ["hot", "cold"] {
        let mut best = [f64::MAX; 3];
        for _ in 0..3 {
            let t = std::time::Instant::now();
            for p in &v[k] { let _ = Pattern::new(p); }
            best[0] = best[0].min(t.elapsed().as_secs_f64());
            let t = std::time::Instant::now();
            for p in &v[k] {
                let _ = pcre2::bytes::RegexBuilder::new().dotall(true).multi_line(true).jit_if_available(false).build(&format!("(*LIMIT_MATCH=1000000){p}")).is_ok();
            }
            best[1] = best[1].min(t.elapsed().as_secs_f64());
            let t = std::time::Instant::now();
            for p in &v[k] { let _ = ward_engine::operators::pattern::translate(p).ok().and_then(|t| ward_engine::operators::literals::parse(&t)); }
            best[2] = best[2].min(t.elapsed().as_secs_f64());
        }
        eprintln!("{k}: {} patterns, new {:.1} ms, pcre2 nojit {:.2} ms, translate+parse {:.2} ms", v[k].len(), best[0]*1e3, best[1]*1e3, best[2]*1e3);
    }
}
