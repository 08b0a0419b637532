//! Phase-1 setup rules evaluated at load (transaction/setup.rs), and the walk plans made
//! from them (transaction/plan.rs), change nothing a request can see: the CRS v4, at
//! paranoia levels 1 and 4, gives the same TX, matched rules, log lines and verdicts with
//! and without them, for benign and attack requests, through all five phases.

use std::sync::Arc;

use ward_engine::transaction::Transaction;
use ward_engine::RuleSet;

#[path = "../benches/shapes/mod.rs"]
#[allow(dead_code)]
mod shapes;

type Outcome = (Vec<(Vec<u8>, Vec<u8>)>, String, Vec<String>, Option<u16>);

fn run(rs: &Arc<RuleSet>, s: &shapes::Shape) -> Outcome {
    let (mut tx, blocked) = shapes::request(rs, s);
    if !blocked {
        shapes::response(&mut tx);
    }
    tx.process_logging();
    outcome(tx)
}

fn outcome(mut tx: Transaction) -> Outcome {
    let vars = tx.tx_vars().into_iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
    let status = tx.intervention().map(|i| i.status);
    (vars, tx.matched_ids(), tx.take_messages(), status)
}

#[test]
fn crs_setup_folding_changes_nothing() {
    let Some(crs) = shapes::crs_dir() else {
        eprintln!("SKIPPED: ../shared/crs/v4 not found");
        return;
    };
    let mut requests = shapes::shapes();
    requests.retain(|s| s.name != "post_form_1m");
    let attack = |name, uri: &str, body: &str| shapes::Shape {
        name,
        method: if body.is_empty() { "GET" } else { "POST" },
        uri: uri.into(),
        content_type: (!body.is_empty()).then_some("application/x-www-form-urlencoded"),
        body: body.as_bytes().to_vec(),
    };
    requests.push(attack("sqli", "/?user=admin%27%20UNION%20SELECT%201%2C%20sqlite_version%28%29%2C%201%20--", ""));
    requests.push(attack("xss", "/login", "user=%3Cscript%3Ealert(1)%3C%2Fscript%3E"));
    requests.push(attack("lfi", "/?file=../../../../etc/passwd", ""));
    for pl in [1, 4] {
        let folded = Arc::new(RuleSet::compile(&shapes::sources(&crs, pl)).expect("CRS v4 compiles"));
        let plain = Arc::new(RuleSet::compile(&shapes::sources(&crs, pl)).unwrap().without_setup_folding());
        let walked = Arc::new(RuleSet::compile(&shapes::sources(&crs, pl)).unwrap().without_plans());
        // The CRS's 901 defaults, its sampling and paranoia checks: about thirty rules.
        assert!(folded.stats().folded_setup_rules >= 25, "PL{pl}: {}", folded.stats().folded_setup_rules);
        for s in &requests {
            let (a, b) = (run(&folded, s), run(&plain, s));
            assert_eq!(a, b, "PL{pl} {}", s.name);
            assert_eq!(a, run(&walked, s), "PL{pl} {}: with and without plans", s.name);
            let attack = matches!(s.name, "sqli" | "xss" | "lfi");
            // PL4's byte-range rules (920273…) also block the benign shapes.
            assert!(a.3.is_some() == attack || (pl == 4 && !attack), "PL{pl} {}: {:?} {}", s.name, a.3, a.1);
        }
    }
}
