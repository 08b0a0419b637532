//! ModSecurity v3's own end-to-end regression cases (../shared/modsec-tests/regression),
//! run through the engine: rules + request + response in, HTTP code and error-log lines
//! checked. Expectations on ModSecurity's debug-log wording are not Ward's contract and
//! are not checked; a case whose only expectation is the debug log does not apply.
//! Every applicable case must pass, except those listed with a reason in
//! `modsec_regression_exceptions.txt`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use ward_engine::{RuleSet, RuleSource, Transaction};

fn shared() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/modsec-tests/regression");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("SKIPPED: ../shared/modsec-tests/regression not found (ModSecurity regression cases)");
        None
    }
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn lines(v: Option<&Value>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(Value::Array(a)) = v {
        for l in a {
            // JSON strings carry bytes as \u00XX.
            out.extend(l.as_str().unwrap_or("").chars().map(|c| c as u32 as u8));
            out.push(b'\n');
        }
    }
    out
}

fn headers(v: Option<&Value>) -> Vec<(String, String)> {
    match v {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect(),
        _ => Vec::new(),
    }
}

fn log_matches(log: &str, pattern: &str) -> bool {
    match regex::Regex::new(pattern) {
        Ok(r) => r.is_match(log),
        Err(_) => log.contains(pattern),
    }
}

enum Outcome {
    NotApplicable(&'static str),
    Pass,
    Fail(String),
}

fn run_case(case: &Value, data_dir: &Path) -> Outcome {
    if case.get("enabled").and_then(Value::as_i64) == Some(0) {
        return Outcome::NotApplicable("disabled in ModSecurity");
    }
    if case.get("version_max").and_then(Value::as_i64).is_some_and(|v| v != 0 && v < 300009) {
        return Outcome::NotApplicable("for older ModSecurity versions");
    }
    let exp = &case["expected"];
    let code = exp.get("http_code").and_then(Value::as_u64);
    let err_log = exp.get("error_log").and_then(Value::as_str).filter(|s| !s.is_empty());
    let parser_error = exp.get("parser_error").and_then(Value::as_str);
    // `[ref "o0,3v23,6t:trim"]` offsets are ModSecurity-internal annotations Ward does not emit.
    if err_log.is_some_and(|p| regex::Regex::new(r"^o?\d+,\d+|v\d+,\d+").unwrap().is_match(p)) {
        return Outcome::NotApplicable("expects ModSecurity's [ref] offset annotations");
    }
    if code.is_none() && err_log.is_none() && parser_error.is_none() {
        return Outcome::NotApplicable("expects only ModSecurity debug-log wording");
    }
    let rules_text: String = case["rules"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default();
    for unsupported in [
        "SecRuleScript",
        "@inspectFile",
        "@fuzzyHash",
        "@validateDTD",
        "@validateSchema",
        "@geoLookup",
        "@rbl",
        "SecRemoteRules",
        "exec:",
        "GEO",
    ] {
        if rules_text.contains(unsupported) {
            return Outcome::NotApplicable(
                "feature outside Ward (Lua, exec, GeoIP, remote rules, DTD/schema, fuzzy hash)",
            );
        }
    }
    // Rules name data files as test-cases/data/...; resolve them from the shared data dir.
    let rules_text = rules_text.replace("test-cases/data/", &format!("{}/", data_dir.display()));
    let origin = PathBuf::from(format!("{}/rules.conf", data_dir.display()));
    let compiled = RuleSet::compile(&[RuleSource::Inline { text: rules_text, origin, line: 1 }]);
    let rs = match (compiled, parser_error) {
        (Err(_), Some(_)) => return Outcome::Pass,
        (Ok(_), Some(p)) => return Outcome::Fail(format!("expected a load error like {p:?}")),
        (Err(e), None) => return Outcome::Fail(format!("load error: {e}")),
        (Ok(rs), None) => Arc::new(rs),
    };
    let mut tx = Transaction::new(rs, "regression-uid");
    let client = &case["client"];
    let server = &case["server"];
    tx.process_connection(
        s(client, "ip"),
        client["port"].as_u64().unwrap_or(0) as u16,
        s(server, "ip"),
        server["port"].as_u64().unwrap_or(0) as u16,
    );
    let req = &case["request"];
    let ver = match s(req, "http_version") {
        "" => "1.1".to_string(),
        v => v.to_string(),
    };
    let method = match s(req, "method") {
        "" => "GET",
        m => m,
    };
    let mut status: u16 = 200;
    let note = |iv: Option<ward_engine::Intervention>, status: &mut u16| {
        if let Some(i) = iv {
            *status = i.status;
        }
    };
    tx.process_uri(s(req, "uri").as_bytes(), method.as_bytes(), format!("HTTP/{ver}").as_bytes());
    for (k, v) in headers(req.get("headers")) {
        tx.add_request_header(k.as_bytes(), v.as_bytes());
    }
    let iv = tx.process_request_headers();
    note(iv, &mut status);
    let body = lines(req.get("body"));
    if tx.wants_request_body() {
        let iv = tx.append_request_body(&body);
        note(iv, &mut status);
    }
    let iv = tx.process_request_body();
    note(iv, &mut status);
    let resp = &case["response"];
    for (k, v) in headers(resp.get("headers")) {
        tx.add_response_header(k.as_bytes(), v.as_bytes());
    }
    let proto = match s(resp, "protocol") {
        "" => "HTTP/1.1",
        p => p,
    };
    let iv = tx.process_response_headers(status, proto.as_bytes());
    note(iv, &mut status);
    if tx.wants_response_body() {
        let iv = tx.append_response_body(&lines(resp.get("body")));
        note(iv, &mut status);
    }
    let iv = tx.process_response_body();
    note(iv, &mut status);
    tx.process_logging();
    let log = tx.take_messages().join("\n");
    if let Some(c) = code {
        if u64::from(status) != c {
            return Outcome::Fail(format!("http code {status}, expected {c}; log: {log}"));
        }
    }
    if let Some(p) = err_log {
        if !log_matches(&log, p) {
            return Outcome::Fail(format!("error log does not match {p:?}; log: {log}"));
        }
    }
    Outcome::Pass
}

#[test]
fn modsecurity_regression_cases() {
    let Some(dir) = shared() else { return };
    let data_dir = dir.parent().unwrap().join("data");
    let exceptions: BTreeMap<String, String> = include_str!("modsec_regression_exceptions.txt")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(" -- ").map(|(k, r)| (k.trim().to_string(), r.trim().to_string())))
        .collect();
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    let (mut applicable, mut passed, mut excused) = (0, 0, 0);
    let mut na = BTreeMap::<&str, usize>::new();
    let mut failures = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let Ok(Value::Array(cases)) = serde_json::from_str::<Value>(&text) else { continue };
        let fname = f.file_name().unwrap().to_string_lossy().to_string();
        for (i, case) in cases.iter().enumerate() {
            let key = format!("{fname}#{i}");
            let outcome = std::panic::catch_unwind(|| run_case(case, &data_dir))
                .unwrap_or_else(|_| Outcome::Fail("panicked".into()));
            match outcome {
                Outcome::NotApplicable(why) => *na.entry(why).or_default() += 1,
                Outcome::Pass => {
                    applicable += 1;
                    passed += 1;
                }
                Outcome::Fail(why) => {
                    applicable += 1;
                    if exceptions.contains_key(&key) {
                        excused += 1;
                    } else {
                        failures.push(format!("{key} ({}): {why}", s(case, "title")));
                    }
                }
            }
        }
    }
    eprintln!("ModSecurity regression cases: {passed}/{applicable} applicable pass, {excused} listed exceptions");
    for (why, n) in &na {
        eprintln!("  not applicable: {n} ({why})");
    }
    for f in &failures {
        eprintln!("FAIL {f}");
    }
    assert!(failures.is_empty(), "{} unexpected failures", failures.len());
}
