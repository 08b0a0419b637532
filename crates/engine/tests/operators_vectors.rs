//! Operators against shared test data:
//! - every vector of ModSecurity's "SecRules Test Set"
//!   (`../shared/modsec-tests/secrules-language-tests/operators/*.json`), per operator;
//! - every `@rx` pattern of the CRS v4 (`../shared/crs/v4/rules`) and of the installed
//!   Debian CRS 3.3 (`/usr/share/modsecurity-crs/rules`) must compile; the split between
//!   the `regex` crate and PCRE2 is printed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ward_engine::operators::{create, Captures, OperatorContext};

mod common;
use common::{json_bytes, shared};

/// An input as ModSecurity's unit-test harness (test/unit/unit_test.cc) hands it to the
/// operator: the JSON string as a C string (cut at the first NUL), then every literal
/// `\xHH` and `\uHHHH` text replaced by that byte (`json2bin`).
fn harness_input(s: &str) -> Vec<u8> {
    let mut v = json_bytes(s);
    if let Some(nul) = v.iter().position(|&b| b == 0) {
        v.truncate(nul);
    }
    for (marker, digits) in [(b'x', 2), (b'u', 4)] {
        // Like json2bin: take the first escape, replace all its occurrences, repeat.
        while let Some(at) = v
            .windows(2 + digits)
            .position(|w| w[0] == b'\\' && w[1] == marker && w[2..].iter().all(u8::is_ascii_alphanumeric))
        {
            let text = v[at..at + 2 + digits].to_vec();
            let hex: String = text[2..].iter().map(|&b| b as char).take_while(char::is_ascii_hexdigit).collect();
            let byte = u32::from_str_radix(&hex, 16).unwrap_or(0) as u8;
            let mut out = Vec::with_capacity(v.len());
            let mut i = 0;
            while i < v.len() {
                if v[i..].starts_with(&text) {
                    out.push(byte);
                    i += text.len();
                } else {
                    out.push(v[i]);
                    i += 1;
                }
            }
            v = out;
        }
    }
    v
}

fn return_none() -> Option<String> {
    None
}

#[test]
fn secrules_language_test_vectors() {
    let dir = shared().join("modsec-tests/secrules-language-tests/operators");
    if !dir.is_dir() {
        println!("SKIPPED: ../shared/modsec-tests/secrules-language-tests/operators not found");
        return;
    }
    let data_dir = dir.join("op");
    let ctx = OperatorContext::new(&data_dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut tally: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut notes = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let cases: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        for (n, case) in cases.iter().enumerate() {
            let name = case["name"].as_str().unwrap();
            let mut param = case.get("param").and_then(|p| p.as_str()).unwrap_or("").to_string();
            if name.eq_ignore_ascii_case("pmFromFile") {
                // Paths are written relative to ModSecurity's source tree; the files are in op/.
                param = Path::new(&param).file_name().unwrap().to_string_lossy().into_owned();
            }
            let input = harness_input(case["input"].as_str().unwrap());
            let want = case["ret"].as_i64().unwrap() == 1;
            let entry = tally.entry(name.to_string()).or_default();
            entry.1 += 1;
            let outcome = create(name, &param, &ctx).map(|op| {
                let mut caps = Captures::new();
                (op.evaluate(&input, Some(&mut caps)), op.evaluate(&input, None), caps)
            });
            let problem = match &outcome {
                // ModSecurity's harness ignores init errors and evaluates the half-built
                // operator; here a bad parameter is a load error, which matches nothing.
                Err(e) if !want => {
                    notes.push(format!(
                        "{}#{n} @{name} {param:?}: load error ({e}), counted as no match",
                        file.file_name().unwrap().to_string_lossy()
                    ));
                    None
                }
                Err(e) => Some(format!("create failed: {e}")),
                Ok((with, without, _)) if with != without => Some("result differs with and without captures".into()),
                Ok((got, _, _)) if *got != want => Some(format!("got {got}, want {want}")),
                Ok((_, _, caps)) => case.get("re_groups").and_then(|g| g.as_array()).and_then(|groups| {
                    let want: Vec<Vec<u8>> = groups.iter().map(|g| json_bytes(g.as_str().unwrap())).collect();
                    let differs = *caps != want;
                    if differs && name == "rxGlobal" {
                        // ModSecurity's harness checks `ret` only, and these lists do not
                        // follow its searchGlobal (some stop after the first match).
                        notes.push(format!("rxGlobal {param:?}: captures {caps:?}, set lists {want:?} (not checked)"));
                        return_none()
                    } else {
                        differs.then(|| format!("captures {caps:?}, want {want:?}"))
                    }
                }),
            };
            match problem {
                None => entry.0 += 1,
                Some(p) => failures.push(format!(
                    "{}#{n} @{name} {param:?} input {:?}: {p}",
                    file.file_name().unwrap().to_string_lossy(),
                    String::from_utf8_lossy(&input)
                )),
            }
        }
    }
    let (mut pass, mut total) = (0, 0);
    for (name, (p, t)) in &tally {
        println!("{name:24} {p:5}/{t}");
        pass += p;
        total += t;
    }
    println!("{:24} {pass:5}/{total}", "ALL");
    for note in &notes {
        println!("note: {note}");
    }
    assert!(failures.is_empty(), "{} failing vectors:\n{}", failures.len(), failures.join("\n"));
}

/// The operator string of a `SecRule VARIABLES "OPERATOR" ...` line (continuations joined),
/// with SecLang's `\"` read as `"`.
fn operator_of(rule: &str) -> Option<String> {
    let rest = rule.trim_start().strip_prefix("SecRule")?.trim_start();
    // Skip the variables (possibly quoted).
    let rest = if let Some(quoted) = rest.strip_prefix('"') {
        let end = quoted.find('"')?;
        &quoted[end + 1..]
    } else {
        &rest[rest.find(char::is_whitespace)?..]
    };
    let quoted = rest.trim_start().strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = quoted.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'"') => {
                out.push('"');
                chars.next();
            }
            '"' => return Some(out),
            _ => out.push(c),
        }
    }
    None
}

/// Every `@rx` pattern (explicit or implicit) in the `.conf` files of `dir`, with file:line.
fn rx_patterns(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    let mut patterns = Vec::new();
    for file in files {
        let text = String::from_utf8(std::fs::read(&file).unwrap()).unwrap();
        let mut logical = String::new();
        let mut first_line = 0;
        for (n, line) in text.lines().enumerate() {
            if logical.is_empty() {
                first_line = n + 1;
            }
            if let Some(cont) = line.strip_suffix('\\') {
                logical.push_str(cont);
                continue;
            }
            logical.push_str(line);
            if let Some(op) = operator_of(&logical) {
                let op = op.strip_prefix('!').unwrap_or(&op);
                let pattern = match op.strip_prefix("@rx") {
                    Some(p) if p.starts_with([' ', '\t']) => Some(p.trim_start_matches([' ', '\t'])),
                    Some(_) => None,
                    None if !op.starts_with('@') => Some(op),
                    None => None,
                };
                if let Some(p) = pattern {
                    patterns.push((format!("{}:{first_line}", file.display()), p.to_string()));
                }
            }
            logical.clear();
        }
    }
    patterns
}

#[test]
fn crs_rx_patterns_compile() {
    let sets = [
        ("CRS v4", shared().join("crs/v4/rules")),
        ("CRS 3.3 (Debian)", PathBuf::from("/usr/share/modsecurity-crs/rules")),
    ];
    let ctx = OperatorContext::new(Path::new("."));
    let mut failures = Vec::new();
    for (label, dir) in sets {
        if !dir.is_dir() {
            println!("SKIPPED: {} not found", dir.display());
            continue;
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        let mut on_pcre2 = Vec::new();
        let mut with_macros = 0;
        let patterns = rx_patterns(&dir);
        for (at, pattern) in &patterns {
            // Macros are expanded per transaction; compile with a placeholder value.
            let pattern = if pattern.contains("%{") {
                with_macros += 1;
                expand_placeholder(pattern)
            } else {
                pattern.clone()
            };
            match create("rx", &pattern, &ctx) {
                Ok(op) => {
                    let backend = op.backend().unwrap_or("?");
                    *counts.entry(backend).or_default() += 1;
                    if backend == "pcre2" {
                        let why = ward_engine::operators::pattern::translate(&pattern)
                            .err()
                            .map_or("regex build failed".into(), |e| e.0.to_string());
                        on_pcre2.push(format!("  {at}: {why}"));
                    }
                }
                Err(e) => failures.push(format!("{at}: {e}")),
            }
        }
        println!("{label}: {} @rx patterns ({with_macros} with macros): {counts:?}", patterns.len());
        for line in on_pcre2 {
            println!("{line}");
        }
    }
    assert!(failures.is_empty(), "patterns that do not compile:\n{}", failures.join("\n"));
}

/// Replaces each `%{...}` with `x`.
fn expand_placeholder(pattern: &str) -> String {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(start) = rest.find("%{") {
        out.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => {
                out.push('x');
                rest = &rest[start + end + 1..];
            }
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Inputs for the differential check: every `data:`/`uri:`/header value line of the CRS
/// regression tests, as written and percent-decoded.
fn crs_test_inputs() -> Vec<Vec<u8>> {
    let mut inputs = std::collections::BTreeSet::new();
    let mut stack = vec![shared().join("crs/v4/tests"), shared().join("crs/v3.3/tests")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            for line in text.lines() {
                let Some((_, value)) = line.split_once(": ") else {
                    continue;
                };
                let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
                if value.is_empty() || value.len() > 4000 {
                    continue;
                }
                inputs.insert(value.as_bytes().to_vec());
                inputs.insert(percent_decode(value.as_bytes()));
            }
        }
    }
    inputs.into_iter().collect()
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (s[i], s.get(i + 1).copied().and_then(hex), s.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Every CRS pattern that runs on `regex` gives the same match and groups as PCRE2 with
/// ModSecurity's flags, on every CRS test payload. Runs in release builds (the test
/// command's; ~2 s); a debug build takes minutes and skips it unless `--ignored` is given.
#[test]
#[cfg_attr(debug_assertions, ignore)]
fn translated_patterns_agree_with_pcre2() {
    let dir = shared().join("crs/v4/rules");
    if !dir.is_dir() {
        println!("SKIPPED: ../shared/crs not found");
        return;
    }
    let mut patterns = rx_patterns(&dir);
    if Path::new("/usr/share/modsecurity-crs/rules").is_dir() {
        patterns.extend(rx_patterns(Path::new("/usr/share/modsecurity-crs/rules")));
    }
    let inputs = crs_test_inputs();
    let mut compared = 0usize;
    let mut differences = Vec::new();
    for (at, pattern) in &patterns {
        let pattern = expand_placeholder(pattern);
        let ours = ward_engine::operators::pattern::Pattern::new(&pattern).unwrap();
        if ours.backend() != "regex" {
            continue;
        }
        let pcre = pcre2::bytes::RegexBuilder::new()
            .dotall(true)
            .multi_line(true)
            .jit_if_available(true)
            .build(&pattern)
            .unwrap();
        let mut pcre_locs = pcre.capture_locations();
        for input in &inputs {
            compared += 1;
            let a = ours.groups_at(input, 0);
            let b = match pcre.captures_read(&mut pcre_locs, input) {
                Ok(m) => m.map(|_| {
                    let mut spans: Vec<_> = (0..pcre_locs.len()).map(|i| pcre_locs.get(i)).collect();
                    while spans.len() > 1 && spans.last() == Some(&None) {
                        spans.pop();
                    }
                    spans
                }),
                Err(_) => continue, // PCRE2 limit: not a semantic comparison
            };
            if a != b {
                differences.push(format!("{at}: input {:?}: ours {a:?} pcre2 {b:?}", String::from_utf8_lossy(input)));
            }
        }
    }
    println!(
        "{} patterns x {} inputs: {compared} comparisons, {} differences",
        patterns.len(),
        inputs.len(),
        differences.len()
    );
    let mut per_rule: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &differences {
        *per_rule.entry(d.split(": input").next().unwrap_or_default()).or_default() += 1;
    }
    for (at, n) in &per_rule {
        println!("{n:6} {at}");
    }
    for d in differences.iter().take(20) {
        println!("{d}");
    }
    assert!(differences.is_empty());
}
