//! The rule-set prefilter must never skip a rule that would match: a wrong gate is a WAF
//! bypass. Checked on real attack data:
//! - every gated rule link of the CRS v4 (`../shared/crs/v4`), over the request values of
//!   the CRS v4 regression tests (URI, query and body parameters raw, split and
//!   URL-decoded, header names and values, cookies) plus every input of ModSecurity's
//!   operator test set, each transformed as the link does: whenever the operator
//!   matches, the gate must pass the value;
//! - every vector of ModSecurity's operator test set whose operator has required
//!   literals: whenever the operator matches, one of them occurs.
//!
//! Skipped (with a message) when ../shared is absent.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ward_engine::operators::{create, OperatorContext};
use ward_engine::rule::OperatorImpl;
use ward_engine::{RuleSet, RuleSource};

mod common;
use common::{json_bytes, shared};

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, ext, out);
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
}

/// `%XX` and (for `plus`) `+` decoded; invalid escapes kept.
fn url_decode(s: &[u8], plus: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' if i + 2 < s.len() => {
                match std::str::from_utf8(&s[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// A request string and the pieces the engine may see of it.
fn add_with_parts(s: &[u8], out: &mut BTreeSet<Vec<u8>>) {
    out.insert(s.to_vec());
    out.insert(url_decode(s, true));
    out.insert(url_decode(s, false));
    let query = s.iter().position(|&b| b == b'?').map_or(s, |q| &s[q + 1..]);
    for part in query.split(|&b| b == b'&' || b == b';') {
        out.insert(part.to_vec());
        let mut kv = part.splitn(2, |&b| b == b'=');
        for piece in [kv.next(), kv.next()].into_iter().flatten() {
            out.insert(piece.to_vec());
            out.insert(url_decode(piece, true));
            let trimmed: Vec<u8> = piece.iter().copied().skip_while(|&b| b == b' ').collect();
            out.insert(url_decode(&trimmed, true));
        }
    }
}

fn yaml_strings(v: &serde_yaml::Value, out: &mut Vec<String>) {
    match v {
        serde_yaml::Value::String(s) => out.push(s.clone()),
        serde_yaml::Value::Number(n) => out.push(n.to_string()),
        serde_yaml::Value::Sequence(s) => s.iter().for_each(|x| yaml_strings(x, out)),
        serde_yaml::Value::Mapping(m) => {
            for (k, x) in m {
                yaml_strings(k, out);
                yaml_strings(x, out);
            }
        }
        _ => {}
    }
}

fn json_strings(v: &serde_json::Value, out: &mut BTreeSet<Vec<u8>>) {
    match v {
        serde_json::Value::String(s) => {
            out.insert(s.as_bytes().to_vec());
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| json_strings(x, out)),
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                out.insert(k.as_bytes().to_vec());
                json_strings(x, out);
            }
        }
        other => {
            out.insert(other.to_string().into_bytes());
        }
    }
}

/// Every request value of the CRS v4 regression tests.
fn crs_payloads(root: &Path) -> BTreeSet<Vec<u8>> {
    let mut yamls = Vec::new();
    files(&root.join("crs/v4/tests"), "yaml", &mut yamls);
    let mut out = BTreeSet::new();
    for y in yamls {
        let Ok(text) = std::fs::read_to_string(&y) else { continue };
        let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(&text) else { continue };
        let Some(tests) = doc.get("tests").and_then(|t| t.as_sequence()) else { continue };
        for t in tests {
            for stage in t.get("stages").and_then(|s| s.as_sequence()).into_iter().flatten() {
                let Some(input) = stage.get("input") else { continue };
                let mut strings = Vec::new();
                for key in ["uri", "data", "encoded_request"] {
                    if let Some(v) = input.get(key) {
                        yaml_strings(v, &mut strings);
                    }
                }
                if let Some(h) = input.get("headers") {
                    yaml_strings(h, &mut strings);
                }
                for s in strings {
                    add_with_parts(s.as_bytes(), &mut out);
                    // JSON bodies: every key and string leaf.
                    if let Ok(j) = serde_json::from_str::<serde_json::Value>(&s) {
                        json_strings(&j, &mut out);
                    }
                    // Multipart bodies and header lists: each line too.
                    for line in s.split(['\n', '\r', ',']) {
                        add_with_parts(line.as_bytes(), &mut out);
                    }
                }
            }
        }
    }
    out
}

/// (operator, param, input) of every vector of ModSecurity's operator test set.
fn modsec_vectors(root: &Path) -> Vec<(String, String, Vec<u8>)> {
    let mut jsons = Vec::new();
    files(&root.join("modsec-tests/secrules-language-tests/operators"), "json", &mut jsons);
    let mut out = Vec::new();
    for j in jsons {
        let Ok(text) = std::fs::read_to_string(&j) else { continue };
        let Ok(serde_json::Value::Array(cases)) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        for c in cases {
            let s = |k: &str| c.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
            out.push((s("name"), s("param"), json_bytes(&s("input"))));
        }
    }
    out
}

fn occurs(set: &[Vec<u8>], value: &[u8]) -> bool {
    set.iter().any(|l| value.windows(l.len().max(1)).any(|w| w.eq_ignore_ascii_case(l)) || l.is_empty())
}

#[test]
fn crs_v4_gates_pass_every_matching_value() {
    let root = shared();
    let crs = root.join("crs/v4");
    if !crs.is_dir() {
        eprintln!("SKIPPED: {} not found", crs.display());
        return;
    }
    // At paranoia level 4 every rule can run, so every rule's gate is built and checked
    // (at lower levels the rules jumped over are never gated).
    let mut src = vec![
        RuleSource::File(crs.join("crs-setup.conf.example")),
        RuleSource::Inline {
            text: "SecAction \"id:900000,phase:1,pass,nolog,setvar:tx.blocking_paranoia_level=4\"".into(),
            origin: PathBuf::from("pl4.conf"),
            line: 1,
        },
    ];
    let mut rules = Vec::new();
    files(&crs.join("rules"), "conf", &mut rules);
    rules.sort();
    src.extend(rules.into_iter().map(RuleSource::File));
    let rs = RuleSet::compile(&src).unwrap();
    // Only rules decided at load wait: 901350's chain, 901410 (sampling off).
    assert!(rs.stats().regex_deferred <= 2, "{} patterns not built at PL4", rs.stats().regex_deferred);

    let mut values = crs_payloads(&root);
    values.extend(modsec_vectors(&root).into_iter().map(|(_, _, i)| i));
    assert!(values.len() > 5000, "too few payloads: {}", values.len());

    let (mut links, mut matched, mut skipped) = (0, 0, 0);
    let mut failures = Vec::new();
    for rule in rs.rules() {
        for link in rule.links() {
            let Some(op) = &link.operator else { continue };
            // A multiMatch link has a gate per stage (the raw value, then after each step).
            let multi = !link.stage_gates.is_empty();
            let (OperatorImpl::Static(o), true) = (&op.imp, multi || link.gate.is_some()) else { continue };
            if multi {
                assert!(!op.negated && link.actions.multi_match && link.gate.is_none(), "rule {}", rule.id);
                assert_eq!(link.stage_gates.len(), link.transforms.len() + 1, "rule {}", rule.id);
            } else {
                assert!(!op.negated && !link.actions.multi_match, "rule {} must not be gated", rule.id);
            }
            links += 1;
            let last = link.transforms.len();
            for v in &values {
                let mut cur = v.clone();
                for stage in 0..=last {
                    if let Some(n) = stage.checked_sub(1).and_then(|k| (link.transforms[k].func)(&cur)) {
                        cur = n;
                    }
                    let passes = match (multi, stage == last) {
                        (true, _) => rs.stage_gate_passes(link, stage, &cur),
                        (false, true) => rs.gate_passes(link, &cur),
                        (false, false) => continue,
                    };
                    if o.evaluate(&cur, None) {
                        matched += 1;
                        if !passes {
                            let cur = String::from_utf8_lossy(&cur);
                            failures.push(format!("rule {} {:?} stage {stage} on {cur:?}", rule.id, op.display));
                        }
                    } else if !passes {
                        skipped += 1;
                    }
                }
            }
        }
    }
    eprintln!(
        "{links} gated links x {} values: {matched} matches, all passed the gate; {skipped} non-matching values skipped",
        values.len()
    );
    assert!(links > 200 && matched > 10_000, "the check covered too little: {links} links, {matched} matches");
    assert!(
        failures.is_empty(),
        "{} gate misses:\n{}",
        failures.len(),
        failures.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn modsec_operator_vectors_contain_a_required_literal() {
    let root = shared();
    if !root.join("modsec-tests").is_dir() {
        eprintln!("SKIPPED: ../shared/modsec-tests not found");
        return;
    }
    let data_dir = root.join("modsec-tests/secrules-language-tests/operators");
    let ctx = OperatorContext::new(&data_dir);
    let mut checked = 0;
    for (name, param, input) in modsec_vectors(&root) {
        let Ok(op) = create(&name, &param, &ctx) else { continue };
        let Some(set) = op.required_literals() else { continue };
        if op.evaluate(&input, None) {
            checked += 1;
            assert!(
                occurs(&set, &input),
                "@{name} {param:?} matches {:?} but none of {set:?} occurs",
                String::from_utf8_lossy(&input)
            );
        }
    }
    eprintln!("{checked} matching vectors with required literals checked");
}
