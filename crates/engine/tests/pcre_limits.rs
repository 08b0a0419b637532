//! SecPcreMatchLimit / SecPcreMatchLimitRecursion through a transaction: a regex run by
//! PCRE2 that stops at the limit does not match, sets MSC_PCRE_LIMITS_EXCEEDED and
//! TX:MSC_PCRE_LIMITS_EXCEEDED, and logs ModSecurity's `rx: regex error 'MATCH_LIMIT'`
//! line once (ModSecurity v3, src/operators/rx.cc; regression operator-rx.json#4/#5 with
//! a pattern that needs PCRE2). Patterns on the `regex` crate have no limit.

use std::path::PathBuf;
use std::sync::Arc;

use ward_engine::{RuleSet, RuleSource, Transaction};

fn rules(text: &str) -> Arc<RuleSet> {
    let src = RuleSource::Inline { text: text.into(), origin: PathBuf::from("/t/limits.conf"), line: 1 };
    Arc::new(RuleSet::compile(&[src]).unwrap())
}

/// Phase 1 of a GET; the status of an intervention, the log lines and the transaction.
fn run(rs: &Arc<RuleSet>, uri: &str) -> (Option<u16>, Vec<String>, Transaction) {
    let mut tx = Transaction::new(rs.clone(), "uid-1");
    tx.process_connection("10.0.0.1", 5555, "127.0.0.1", 80);
    tx.process_uri(uri.as_bytes(), b"GET", b"HTTP/1.1");
    tx.add_request_header(b"Host", b"example.com");
    let status = tx.process_request_headers().map(|i| i.status);
    tx.process_logging();
    let msgs = tx.take_messages();
    (status, msgs, tx)
}

/// `(w+)+\1$` needs PCRE2 (a backreference) and backtracks before it matches "wwwwwwww".
const BACKREF_RULE: &str = r#"SecRule ARGS:rxtest "@rx (w+)+\1$" "id:1,phase:1,t:none,pass,log,setvar:tx.matched=1""#;
const FLAG_RULES: &str = r#"SecRule MSC_PCRE_LIMITS_EXCEEDED "@streq 1" "id:2,phase:1,t:none,pass,nolog,setvar:tx.flag=%{MSC_PCRE_LIMITS_EXCEEDED}"
SecRule TX:MSC_PCRE_LIMITS_EXCEEDED "@streq 1" "id:3,phase:1,t:none,pass,nolog,setvar:tx.txflag=1"
SecRule MSC_PCRE_LIMITS_EXCEEDED "@eq 0" "id:4,phase:1,t:none,pass,nolog,setvar:tx.zero=1""#;

#[test]
fn table() {
    let catastrophic = format!("/?rxtest={}o", "w".repeat(30));
    // (limit directives, uri, rule 1 matched, limits exceeded)
    let cases: &[(&str, &str, bool, bool)] = &[
        // Low limit, set after the rule (the directive is rule-set wide): no match, flag set.
        ("SecPcreMatchLimit 2", "/?rxtest=wwwwwwww", false, true),
        // High enough: the match goes through.
        ("SecPcreMatchLimit 100000", "/?rxtest=wwwwwwww", true, false),
        // Not set: Ward's default (1,000,000) lets it match too...
        ("", "/?rxtest=wwwwwwww", true, false),
        // ...and stops exponential backtracking, which is reported.
        ("", &catastrophic, false, true),
        ("SecPcreMatchLimit 5000", &catastrophic, false, true),
        // Depth limit wired (PCRE2's JIT ignores it; the match limit still binds).
        ("SecPcreMatchLimitRecursion 1000", "/?rxtest=wwwwwwww", true, false),
        ("SecPcreMatchLimit 2\nSecPcreMatchLimitRecursion 1000", "/?rxtest=wwwwwwww", false, true),
        // No value for the rule: nothing runs, nothing is reported.
        ("SecPcreMatchLimit 2", "/?other=1", false, false),
    ];
    for (limits, uri, matched, exceeded) in cases {
        let rs = rules(&format!("SecRuleEngine On\n{BACKREF_RULE}\n{FLAG_RULES}\n{limits}\n"));
        let (got, msgs, tx) = run(&rs, uri);
        assert_eq!(got, None, "{limits:?} {uri}: {msgs:?}");
        assert_eq!(tx.tx("matched").is_some(), *matched, "{limits:?} {uri}: {msgs:?}");
        let flag = if *exceeded { Some(&b"1"[..]) } else { None };
        assert_eq!(tx.tx("flag"), flag, "MSC_PCRE_LIMITS_EXCEEDED, {limits:?} {uri}");
        assert_eq!(tx.tx("txflag"), flag, "TX:MSC_PCRE_LIMITS_EXCEEDED, {limits:?} {uri}");
        assert_eq!(tx.tx("zero"), if *exceeded { None } else { Some(&b"1"[..]) }, "{limits:?} {uri}");
        let logged: Vec<&String> = msgs.iter().filter(|m| m.contains("MATCH_LIMIT")).collect();
        if *exceeded {
            assert_eq!(logged.len(), 1, "{msgs:?}");
            assert!(
                logged[0].starts_with(r"ModSecurity: rx: regex error 'MATCH_LIMIT' for pattern '(w+)+\1$'")
                    && logged[0].contains(r#"[id "1"]"#)
                    && logged[0].contains(r#"[unique_id "uid-1"]"#),
                "{}",
                logged[0]
            );
        } else {
            assert!(logged.is_empty(), "{msgs:?}");
        }
    }
}

/// Every value that hits the limit keeps the flag; the log line is written once.
#[test]
fn logged_once_per_transaction() {
    let rs = rules(&format!("SecRuleEngine On\nSecPcreMatchLimit 2\n{BACKREF_RULE}\n{FLAG_RULES}"));
    let (status, msgs, tx) = run(&rs, "/?rxtest=wwwwwwww&rxtest=wwwwww&rxtest=wwww");
    assert_eq!(status, None);
    assert_eq!(tx.tx("flag"), Some(&b"1"[..]));
    assert_eq!(msgs.iter().filter(|m| m.contains("MATCH_LIMIT")).count(), 1, "{msgs:?}");
}

/// A negated regex that stops at the limit "does not match", so the rule matches (as in
/// ModSecurity, where the negation applies to the operator's false).
#[test]
fn negated_rule_matches_on_limit() {
    let rs = rules(
        r#"SecRuleEngine On
SecPcreMatchLimit 2
SecRule ARGS:rxtest "!@rx (w+)+\1$" "id:1,phase:1,t:none,deny,status:403""#,
    );
    assert_eq!(run(&rs, "/?rxtest=wwwwwwww").0, Some(403));
}

/// ModSecurity's own regression cases (operator-rx.json#4/#5) use `(w+)+$`, which Ward
/// runs on the `regex` crate: linear time, no backtracking, so no limit to hit. With
/// `SecPcreMatchLimit 2` ModSecurity reports MATCH_LIMIT there; Ward evaluates the value.
#[test]
fn regex_crate_patterns_have_no_limit() {
    let rs = rules(&format!(
        "SecRuleEngine On\nSecPcreMatchLimit 2\n{}\n{FLAG_RULES}",
        r#"SecRule ARGS:rxtest "@rx (w+)+$" "id:1,phase:1,t:none,pass,setvar:tx.matched=1""#
    ));
    let (_, _, tx) = run(&rs, "/?rxtest=wwwwwwwwwwwwwwwwwwwwwowwwwwwwwwww");
    assert_eq!(tx.tx("matched"), Some(&b"1"[..]));
    assert_eq!(tx.tx("zero"), Some(&b"1"[..]));
}

/// A pattern with macros is built per evaluation; it gets the limits too.
#[test]
fn dynamic_pattern_gets_the_limits() {
    let rs = rules(
        r#"SecRuleEngine On
SecPcreMatchLimit 2
SecAction "id:10,phase:1,pass,nolog,setvar:tx.w=w"
SecRule ARGS:rxtest "@rx (%{tx.w}+)+\1$" "id:1,phase:1,t:none,deny,status:406"
SecRule MSC_PCRE_LIMITS_EXCEEDED "@streq 1" "id:2,phase:1,t:none,pass,nolog,setvar:tx.flag=1""#,
    );
    let (status, msgs, tx) = run(&rs, "/?rxtest=wwwwwwww");
    assert_eq!(status, None, "{msgs:?}");
    assert_eq!(tx.tx("flag"), Some(&b"1"[..]));
}

#[test]
fn directives_take_a_number() {
    for d in ["SecPcreMatchLimit x", "SecPcreMatchLimitRecursion -1", "SecPcreMatchLimit"] {
        let src = RuleSource::Inline { text: d.into(), origin: PathBuf::from("/t/limits.conf"), line: 1 };
        assert!(RuleSet::compile(&[src]).is_err(), "{d}");
    }
}

/// A header's results are kept from one transaction to the next (transaction/cache.rs),
/// misses included: a run stopped at the limit is not a miss, so each request reports it.
#[test]
fn a_run_stopped_at_the_limit_is_not_remembered_for_later_requests() {
    let rule = r#"SecRule REQUEST_HEADERS:X-Test "@rx (w+)+\1$" "id:1,phase:1,t:none,pass,log,setvar:tx.matched=1""#;
    let rs = rules(&format!("SecRuleEngine On\nSecPcreMatchLimit 2\n{rule}\n{FLAG_RULES}\n"));
    for round in 0..3 {
        let mut tx = Transaction::new(rs.clone(), "uid-1");
        tx.process_uri(b"/", b"GET", b"HTTP/1.1");
        tx.add_request_header(b"X-Test", b"wwwwwwww");
        tx.process_request_headers();
        assert_eq!(tx.tx("flag"), Some(&b"1"[..]), "round {round}");
        assert_eq!(tx.tx("matched"), None, "round {round}");
    }
}
