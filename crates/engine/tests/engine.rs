//! End-to-end engine behaviour: rules in, request through phases, verdicts and log lines out.

use std::path::PathBuf;
use std::sync::Arc;

use ward_engine::{EngineMode, RuleSet, RuleSource, Transaction};

fn rules(text: &str) -> Arc<RuleSet> {
    Arc::new(
        RuleSet::compile(&[RuleSource::Inline { text: text.into(), origin: PathBuf::from("/t/inline.conf"), line: 1 }])
            .unwrap(),
    )
}

fn compile_err(text: &str) -> String {
    RuleSet::compile(&[RuleSource::Inline { text: text.into(), origin: PathBuf::from("/t/inline.conf"), line: 1 }])
        .unwrap_err()
        .to_string()
}

/// Runs a GET (and optional urlencoded POST body) through phases 1, 2 and 5.
fn run(rs: &Arc<RuleSet>, uri: &str, body: Option<&str>) -> (Option<u16>, Vec<String>, Transaction) {
    let mut tx = Transaction::new(rs.clone(), "uid-1");
    tx.process_connection("10.0.0.1", 5555, "127.0.0.1", 80);
    let method: &[u8] = if body.is_some() { b"POST" } else { b"GET" };
    tx.process_uri(uri.as_bytes(), method, b"HTTP/1.1");
    tx.add_request_header(b"Host", b"example.com");
    tx.add_request_header(b"User-Agent", b"test");
    if body.is_some() {
        tx.add_request_header(b"Content-Type", b"application/x-www-form-urlencoded");
    }
    let mut status = tx.process_request_headers().map(|i| i.status);
    if status.is_none() {
        if let Some(b) = body {
            tx.append_request_body(b.as_bytes());
        }
        status = tx.process_request_body().map(|i| i.status);
    }
    tx.process_logging();
    let msgs = tx.take_messages();
    (status, msgs, tx)
}

const SQLI: &str = "/login?user=admin%27%20UNION%20SELECT%201%2C%20sqlite_version%28%29%2C%201%20--";
const RULE: &str =
    r#"SecRule ARGS "@rx (?i)union\s+select" "id:1001,phase:2,deny,status:403,log,msg:'SQLi',t:none,t:urlDecodeUni""#;

#[test]
fn engine_on_blocks_and_logs() {
    let rs = rules(&format!("SecRuleEngine On\nSecRequestBodyAccess On\n{RULE}"));
    let (status, msgs, tx) = run(&rs, SQLI, None);
    assert_eq!(status, Some(403));
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(
        msgs[0].starts_with("ModSecurity: Access denied with code 403 (phase 2). Matched \"Operator `Rx'"),
        "{}",
        msgs[0]
    );
    assert!(
        msgs[0].contains("[id \"1001\"]")
            && msgs[0].contains("[msg \"SQLi\"]")
            && msgs[0].contains("[file \"/t/inline.conf\"] [line \"3\"]")
    );
    assert!(msgs[0].contains("against variable `ARGS:user'"), "{}", msgs[0]);
    assert_eq!(tx.outcome(), "block");
    assert_eq!(tx.matched_ids(), "1001");
}

#[test]
fn engine_on_inspects_urlencoded_body() {
    let rs = rules(&format!("SecRuleEngine On\nSecRequestBodyAccess On\n{RULE}"));
    let body = "user=admin%27+UNION+SELECT+1%2C+sqlite_version%28%29%2C+1+--&pass=x";
    let (status, msgs, _) = run(&rs, "/login", Some(body));
    assert_eq!(status, Some(403));
    assert!(msgs[0].contains("ARGS:user"));
}

#[test]
fn detection_only_logs_but_never_blocks() {
    let rs = rules(&format!("SecRuleEngine DetectionOnly\nSecRequestBodyAccess On\n{RULE}"));
    let (status, msgs, tx) = run(&rs, SQLI, None);
    assert_eq!(status, None);
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].starts_with("ModSecurity: Warning. "), "{}", msgs[0]);
    assert_eq!(tx.outcome(), "detect");
}

#[test]
fn engine_off_evaluates_nothing() {
    let rs = rules(&format!("SecRuleEngine Off\n{RULE}"));
    let (status, msgs, tx) = run(&rs, SQLI, None);
    assert_eq!(status, None);
    assert!(msgs.is_empty());
    assert_eq!(tx.outcome(), "pass");
    assert_eq!(rs.engine_mode(), EngineMode::Off);
}

#[test]
fn benign_request_passes() {
    let rs = rules(&format!("SecRuleEngine On\n{RULE}"));
    let (status, msgs, _) = run(&rs, "/login?user=admin&q=select+a+union", None);
    assert_eq!(status, None);
    assert!(msgs.is_empty());
}

#[test]
fn chain_scores_only_on_full_match_and_capture_feeds_later_links() {
    let rs = rules(
        r#"SecRuleEngine On
SecRule ARGS:a "@rx ^(\w+)-(\d+)$" "id:1,phase:1,pass,capture,log,msg:'chain',chain"
    SecRule TX:2 "@streq 42" "setvar:tx.score=+5"
SecRule ARGS:b "@rx x" "id:2,phase:1,pass,nolog,chain"
    SecRule ARGS:c "@rx never" "setvar:tx.score=+100"
SecRule TX:score "@eq 5" "id:3,phase:1,deny,status:418,log,msg:'score %{tx.score} from %{tx.1}'"
"#,
    );
    let (status, msgs, tx) = run(&rs, "/?a=abc-42&b=x&c=y", None);
    assert_eq!(status, Some(418), "{msgs:?}");
    assert_eq!(tx.tx("score"), Some(&b"5"[..]));
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(msgs[1].contains("[msg \"score 5 from abc\"]"), "{}", msgs[1]);
}

#[test]
fn nolog_rules_never_reach_the_log() {
    let rs = rules("SecRuleEngine On\nSecRule ARGS \"@contains x\" \"id:5,phase:1,pass,nolog\"");
    let (_, msgs, tx) = run(&rs, "/?q=x", None);
    assert!(msgs.is_empty());
    assert_eq!(tx.matched_ids(), "");
}

#[test]
fn block_uses_secdefaultaction() {
    let rs = rules(
        "SecRuleEngine On\nSecDefaultAction \"phase:1,log,auditlog,deny,status:406\"\nSecRule ARGS \"@contains bad\" \"id:6,phase:1,block\"",
    );
    assert_eq!(run(&rs, "/?q=bad", None).0, Some(406));
    let rs = rules("SecRuleEngine On\nSecRule ARGS \"@contains bad\" \"id:6,phase:1,block\"");
    assert_eq!(run(&rs, "/?q=bad", None).0, None, "default phase action is pass");
}

#[test]
fn skip_after_and_markers() {
    let rs = rules(
        r#"SecRuleEngine On
SecAction "id:10,phase:1,pass,nolog,skipAfter:END"
SecRule ARGS "@contains bad" "id:11,phase:1,deny"
SecMarker END
SecRule ARGS "@contains worse" "id:12,phase:1,deny,status:409"
"#,
    );
    assert_eq!(run(&rs, "/?q=bad", None).0, None);
    assert_eq!(run(&rs, "/?q=worse", None).0, Some(409));
}

#[test]
fn ctl_rule_remove_and_engine() {
    let rs = rules(
        r#"SecRuleEngine On
SecRule REQUEST_URI "@beginsWith /public" "id:20,phase:1,pass,nolog,ctl:ruleRemoveById=21"
SecRule REQUEST_URI "@beginsWith /detect" "id:22,phase:1,pass,nolog,ctl:ruleEngine=DetectionOnly"
SecRule ARGS:z "@contains bad" "id:21,phase:1,deny"
SecRule REQUEST_URI "@beginsWith /t" "id:23,phase:1,pass,nolog,ctl:ruleRemoveTargetById=24;ARGS:q"
SecRule ARGS:q|ARGS:r "@contains bad" "id:24,phase:1,deny"
"#,
    );
    assert_eq!(run(&rs, "/public?z=bad", None).0, None);
    assert_eq!(run(&rs, "/detect?z=bad", None).0, None);
    assert_eq!(run(&rs, "/other?z=bad", None).0, Some(403));
    assert_eq!(run(&rs, "/t?q=bad", None).0, None);
    assert_eq!(run(&rs, "/t?r=bad", None).0, Some(403));
}

#[test]
fn exclusions_counting_and_macros_in_operator() {
    let rs = rules(
        r#"SecRuleEngine On
SecRule ARGS|!ARGS:safe "@contains bad" "id:30,phase:1,deny,status:401"
SecRule &ARGS:x "@eq 2" "id:31,phase:1,deny,status:402"
SecRule ARGS:host "@streq %{request_headers.host}" "id:32,phase:1,deny,status:405"
"#,
    );
    assert_eq!(run(&rs, "/?safe=bad", None).0, None);
    assert_eq!(run(&rs, "/?other=bad", None).0, Some(401));
    assert_eq!(run(&rs, "/?x=1&x=2", None).0, Some(402));
    assert_eq!(run(&rs, "/?host=example.com", None).0, Some(405));
}

#[test]
fn config_errors_name_file_and_line() {
    let e = compile_err("SecRuleEngine On\n\nSecRule ARGS \"@rx a\" \"id:1,bogus\"");
    assert!(e.starts_with("/t/inline.conf:3: "), "{e}");
    assert!(e.contains("unknown action 'bogus'"), "{e}");
    assert!(compile_err("SecNope x").contains("unknown directive 'SecNope'"));
    assert!(compile_err("SecRule ARGS \"@rx (\" \"id:1\"").starts_with("/t/inline.conf:1: "));
    assert!(compile_err("SecRule ARGS \"@rx a\" \"phase:1\"").contains("no id"));
    assert!(compile_err("SecRule ARGS \"@rx a\" \"id:1\"\nSecRule ARGS \"@rx a\" \"id:1\"").contains("duplicated"));
    assert!(compile_err("SecRule NOPE \"@rx a\" \"id:1\"").contains("unknown variable"));
    assert!(compile_err("SecRule ARGS \"@nope a\" \"id:1\"").contains("unknown operator"));
    assert!(compile_err("SecRuleEngine Maybe").contains("invalid rule engine mode"));
    assert!(compile_err("Include /nonexistent/ward.conf").contains("cannot read"));
}

#[test]
fn the_first_error_in_the_files_order_is_reported() {
    // Patterns are checked once the files are read: a bad one still comes before any
    // error that follows it, in a later rule or in its own rule, and after one before it.
    let bad = "SecRule ARGS \"@rx (\" \"id:1\"";
    for (text, line, what) in [
        (format!("{bad}\nSecNope x"), 1, "invalid regular expression"),
        (format!("{bad}\nSecRule ARGS \"@rx a\" \"id:2,bogus\""), 1, "invalid regular expression"),
        (format!("SecRule ARGS \"@rx a\" \"id:1\"\n{bad}"), 2, "invalid regular expression"),
        ("SecRule ARGS \"@rx (\" \"phase:1\"".to_string(), 1, "invalid regular expression"),
        ("SecNope x\nSecRule ARGS \"@rx (\" \"id:1\"".to_string(), 1, "unknown directive"),
        (format!("SecRule ARGS \"@rx a\" \"id:3\"\n{bad}\nSecRule ARGS \"@rx [\" \"id:4\""), 2, "\"(\""),
    ] {
        let e = compile_err(&text);
        assert!(e.starts_with(&format!("/t/inline.conf:{line}: ")), "{text}: {e}");
        assert!(e.contains(what), "{text}: {e}");
    }
}

#[test]
fn remove_and_update_directives_apply_regardless_of_order() {
    let rs = rules(
        r#"SecRuleEngine On
SecRuleRemoveById 41
SecRule ARGS "@contains bad" "id:41,phase:1,deny"
SecRule ARGS "@contains bad" "id:42,phase:1,deny,status:410,tag:'t42'"
SecRuleUpdateTargetById 42 "!ARGS:ok"
"#,
    );
    assert_eq!(run(&rs, "/?ok=bad", None).0, None);
    assert_eq!(run(&rs, "/?q=bad", None).0, Some(410));
}

#[test]
fn a_chain_left_open_never_matches() {
    // ModSecurity accepts a trailing `chain` and the rule then never fires.
    let rs = rules("SecRuleEngine On\nSecRule ARGS \"@contains x\" \"id:1,phase:1,deny,chain\"");
    assert_eq!(run(&rs, "/?q=x", None).0, None);
}

#[test]
fn multimatch_chain_starter_logs_each_match_even_when_the_chain_fails() {
    // ModSecurity v3 behaviour that the CRS v4 nginx overrides encode (942131).
    let rs = rules(
        "SecRuleEngine On\nSecRule ARGS \"@contains x\" \"id:7,phase:1,pass,log,multiMatch,msg:'m',chain\"\n    SecRule ARGS \"@contains never\" \"t:none\"",
    );
    let (_, msgs, tx) = run(&rs, "/?a=x&b=xx", None);
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert_eq!(tx.matched_ids(), "7");
    // Without multiMatch, a failed chain logs nothing.
    let rs = rules("SecRuleEngine On\nSecRule ARGS \"@contains x\" \"id:8,phase:1,pass,log,chain\"\n    SecRule ARGS \"@contains never\" \"t:none\"");
    assert!(run(&rs, "/?a=x", None).1.is_empty());
}

#[test]
fn gated_multimatch_runs_on_every_stage_that_changed_the_value() {
    // Each stage (raw, then each step that changed the value) has its own prefilter gate.
    let rs = rules(
        "SecRuleEngine On\nSecRule ARGS \"@rx evil\\(\" \"id:9,phase:2,pass,log,multiMatch,msg:'m',t:none,t:urlDecodeUni,t:base64Decode,t:lowercase,setvar:tx.n=+1\"\nSecRule TX:n \"@eq 3\" \"id:10,phase:2,deny,status:403\"",
    );
    assert_eq!(rs.stats().gated_links, 1);
    // a: the raw value; b: only after lower-casing the decoded value; c: after decoding
    // (lower-casing changes nothing then); d: never.
    let (status, msgs, _) = run(&rs, "/?a=evil(&b=RVZJTCg%3D&c=ZXZpbCg=&d=x", None);
    assert_eq!(status, Some(403), "{msgs:?}");
    let stages: Vec<&String> = msgs.iter().filter(|m| m.contains("[id \"9\"]")).collect();
    assert_eq!(stages.len(), 3, "{msgs:?}");
    for (var, value) in [("ARGS:a", "evil("), ("ARGS:b", "evil("), ("ARGS:c", "evil(")] {
        assert!(stages.iter().any(|m| m.contains(&format!("`{var}' (Value: `{value}'"))), "{var}: {stages:?}");
    }
    // Upper case survives decoding: only the lower-cased stage matches b.
    let (status, msgs, _) = run(&rs, "/?b=RVZJTCg%3D", None);
    assert_eq!((status, msgs.iter().filter(|m| m.contains("[id \"9\"]")).count()), (None, 1), "{msgs:?}");
}

#[test]
fn unavailable_operators_load_and_are_explained() {
    let rs = rules("SecRule REMOTE_ADDR \"@rbl sbl-xbl.spamhaus.org\" \"id:50,phase:1,deny\"\nSecRule REMOTE_ADDR \"@geoLookup\" \"id:51,phase:1,pass,nolog\"");
    let note = rs.unavailable_summary().unwrap();
    assert!(note.contains("@rbl") && note.contains("@geoLookup") && note.contains("50, 51"), "{note}");
    assert_eq!(run(&rs, "/", None).0, None);
    assert!(rules("SecRule ARGS \"@rx a\" \"id:1\"").unavailable_summary().is_none());
}

/// A urlencoded body that decodes to its own bytes has its prefilter scan made of its
/// arguments' (transaction/cache.rs); with escapes, or when a rule's literal could span
/// two arguments, the body is scanned whole. Either way a rule on `REQUEST_BODY` matches
/// exactly when its pattern occurs: every body of up to four pieces, on rule sets that
/// take each path (literals that are a cut byte alone, and links gated on two sets whose
/// literals lie in different arguments, included).
#[test]
fn request_body_rules_match_whatever_its_scan_is_made_of() {
    use ward_engine::body::urlencoded;
    const PIECES: &[&str] = &["java", "ja", "va", "=", "&", ";", "x", "%6a", "+", "A=J", "("];
    let sets: &[(&str, u8, &str, bool)] = &[
        // (rules, separator, pattern rule 1 denies on, rule 1 reads ARGS_POST too)
        (r#"SecRule REQUEST_BODY|ARGS_POST "@rx (?i)java" "id:1,phase:2,deny,status:403""#, b'&', "java", true),
        (
            "SecArgumentSeparator ;\nSecRule REQUEST_BODY|ARGS_POST \"@rx (?i)java\" \"id:1,phase:2,deny,status:403\"",
            b';',
            "java",
            true,
        ),
        // A literal with `=`: the body is scanned whole.
        (r#"SecRule REQUEST_BODY|ARGS_POST "@rx (?i)java|a=j" "id:1,phase:2,deny,status:403""#, b'&', "java|a=j", true),
        // `=` alone: the pieces' scans and the cut bytes the body holds.
        (r#"SecRule REQUEST_BODY|ARGS_POST "@rx (?i)java|=" "id:1,phase:2,deny,status:403""#, b'&', "java|=", true),
        (
            "SecArgumentSeparator ;\nSecRule REQUEST_BODY|ARGS_POST \"@rx (?i)java|;\" \"id:1,phase:2,deny,status:403\"",
            b';',
            "java|;",
            true,
        ),
        // Two literal sets (`java`, then `(`), one of each needed: they may be found in
        // different arguments.
        (r#"SecRule REQUEST_BODY|ARGS_POST "@rx (?i)java.*\(" "id:1,phase:2,deny,status:403""#, b'&', r"java.*\(", true),
        // The arguments' automaton has other literals only: the body is scanned whole.
        (
            "SecRule REQUEST_BODY \"@rx (?i)java\" \"id:1,phase:2,deny,status:403\"\n\
             SecRule ARGS_POST \"@rx (?i)evilx\" \"id:2,phase:2,pass,nolog\"",
            b'&',
            "java",
            false,
        ),
        // The arguments' automaton has the body's literals and more.
        (
            "SecRule REQUEST_BODY|ARGS_POST \"@rx (?i)java\" \"id:1,phase:2,deny,status:403\"\n\
             SecRule ARGS_POST \"@rx (?i)evilx\" \"id:2,phase:2,pass,nolog\"",
            b'&',
            "java",
            true,
        ),
    ];
    for (text, sep, pattern, reads_args) in sets {
        let rs = rules(&format!("SecRuleEngine On\nSecRequestBodyAccess On\n{text}"));
        let re = regex::bytes::Regex::new(&format!("(?is){pattern}")).unwrap();
        let found = |v: &[u8]| re.is_match(v);
        let mut bodies = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> =
                bodies.iter().flat_map(|b| PIECES.iter().map(move |p| format!("{b}{p}"))).collect();
            bodies.extend(longer);
        }
        bodies.sort();
        bodies.dedup();
        for body in &bodies {
            let mut args = Vec::new();
            urlencoded::parse_with_separator(body.as_bytes(), *sep, &mut args);
            let want = found(body.as_bytes()) || (*reads_args && args.iter().any(|(_, v)| found(v)));
            let (status, _, _) = run(&rs, "/", Some(body));
            assert_eq!(status, want.then_some(403), "rules {text:?}, body {body:?}");
        }
    }
}

/// Match buffers are reused from one transaction to the next on a thread: a transaction
/// never sees another's matches (MATCHED_VAR before its own first match is empty).
#[test]
fn matches_do_not_carry_over_between_transactions() {
    let rs = rules(
        r#"SecRuleEngine On
SecRule MATCHED_VAR "@rx secret" "id:1,phase:1,deny,status:403"
SecRule ARGS:a "@rx secret" "id:2,phase:1,pass,log,msg:'seen'""#,
    );
    for _ in 0..3 {
        let (status, msgs, _) = run(&rs, "/?a=secret", None);
        assert_eq!(status, None, "{msgs:?}");
        assert_eq!(msgs.len(), 1, "{msgs:?}");
    }
}

/// A rule no request reaches while the setup's TX holds (a paranoia `skipAfter` decided
/// at load jumps over it) keeps its pattern unbuilt and ungated, yet still matches when a
/// request makes the jump fail; a bad pattern there still fails the load.
#[test]
fn patterns_of_rules_jumped_over_are_built_on_first_use() {
    let text = r#"
SecRuleEngine On
SecAction "id:1,phase:1,pass,nolog,setvar:tx.pl=1"
SecRule ARGS:raise "@streq 1" "id:2,phase:1,pass,nolog,ctl:ruleRemoveTargetById=10;TX:pl"
SecRule TX:pl "@lt 2" "id:10,phase:2,pass,nolog,skipAfter:END-PL2"
SecRule ARGS "@rx evil\d{2}" "id:11,phase:2,deny,status:403,log,msg:'PL2'"
SecMarker END-PL2
SecRule ARGS "@rx (?i)union\s+select" "id:20,phase:2,deny,status:403,log,msg:'PL1'"
"#;
    let rs = rules(text);
    let backend = |rs: &RuleSet, id: u64| {
        let rule = rs.rules().find(|r| r.id == id).unwrap();
        match &rule.operator.as_ref().unwrap().imp {
            ward_engine::rule::OperatorImpl::Static(o) => o.backend().unwrap(),
            _ => unreachable!(),
        }
    };
    assert_eq!(rs.stats().regex_deferred, 1);
    assert_eq!((backend(&rs, 11), backend(&rs, 20)), ("deferred", "regex"));
    assert!(rs.rules().find(|r| r.id == 11).unwrap().gate.is_none(), "a rule jumped over is not gated");
    assert!(rs.rules().find(|r| r.id == 20).unwrap().gate.is_some());
    // Jumped over: nothing built by a request either.
    assert_eq!(run(&rs, "/?q=evil12", None).0, None);
    assert_eq!(run(&rs, "/?q=union%20select", None).0, Some(403));
    assert_eq!(backend(&rs, 11), "deferred");
    // The jump no longer matches (its TX target removed): built now, and it matches.
    let (status, msgs, _) = run(&rs, "/?raise=1&q=evil12", None);
    assert_eq!(status, Some(403));
    assert!(msgs.iter().any(|m| m.contains("id \"11\"")), "{msgs:?}");
    assert_eq!(backend(&rs, 11), "regex");
    assert_eq!(run(&rs, "/?raise=1&q=evil1", None).0, None);
    // Unreached or not, a pattern that is not valid fails the load where it stands.
    let bad = text.replace("evil\\d{2}", "evil(");
    assert!(bad.contains("evil("), "the test edits the PL2 rule");
    let err = compile_err(&bad);
    assert!(err.contains("/t/inline.conf:6") && err.contains("evil("), "{err}");
}
