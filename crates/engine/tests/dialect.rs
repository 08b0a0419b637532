//! `WardCompatibility ModSecurity2|ModSecurity3`: where ModSecurity v2 and v3 differ
//! (the CRS 3.3 tests follow v2, the CRS v4 nginx overrides follow v3).

use std::path::PathBuf;
use std::sync::Arc;

use ward_engine::{RuleSet, RuleSource, Transaction};

fn rules(text: &str) -> Arc<RuleSet> {
    Arc::new(
        RuleSet::compile(&[RuleSource::Inline { text: text.into(), origin: PathBuf::from("/t/inline.conf"), line: 1 }])
            .unwrap(),
    )
}

/// POSTs `body` with `content_type` (none when empty) and returns the ids that matched.
fn matched(rs: &Arc<RuleSet>, uri: &str, content_type: &str, body: &str) -> String {
    let mut tx = Transaction::new(rs.clone(), "uid-1");
    tx.process_connection("10.0.0.1", 5555, "127.0.0.1", 80);
    tx.process_uri(uri.as_bytes(), b"POST", b"HTTP/1.1");
    tx.add_request_header(b"Host", b"example.com");
    if !content_type.is_empty() {
        tx.add_request_header(b"Content-Type", content_type.as_bytes());
    }
    assert!(tx.process_request_headers().is_none());
    tx.append_request_body(body.as_bytes());
    assert!(tx.process_request_body().is_none());
    tx.process_logging();
    tx.matched_ids()
}

const BASE: &str = r#"SecRuleEngine DetectionOnly
SecRequestBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "^(?:application(?:/soap\+|/)|text/)xml" "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "^application/json" "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
"#;
/// CRS 901340: force the body variable when no processor claims the body.
const FORCE: &str = r#"SecRule REQBODY_PROCESSOR "!@rx (?:URLENCODED|MULTIPART|XML|JSON)" "id:901340,phase:1,pass,nolog,ctl:forceRequestBodyVariable=On"
"#;
const BODY_RULE: &str = r#"SecRule REQUEST_BODY "@rx java\." "id:10,phase:2,pass,log"
"#;

#[test]
fn request_body_variable_per_dialect_and_processor() {
    let xml = r#"<?xml version="1.0"?><a><java.lang.Runtime/></a>"#;
    let json = r#"{"a":"java.lang"}"#;
    // (dialect directive, 901340 present, content type, body, REQUEST_BODY matched)
    let cases: &[(&str, bool, &str, &str, bool)] = &[
        // ModSecurity v3: REQUEST_BODY always holds the body.
        ("", true, "application/xml", xml, true),
        ("WardCompatibility ModSecurity3", true, "application/json", json, true),
        ("", false, "text/plain", "java.x", true),
        // ModSecurity v2: only URLENCODED, or no processor with the variable forced.
        ("WardCompatibility ModSecurity2", true, "application/xml", xml, false),
        ("WardCompatibility ModSecurity2", true, "application/json", json, false),
        (
            "WardCompatibility ModSecurity2",
            true,
            "multipart/form-data; boundary=b",
            "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\njava.x\r\n--b--\r\n",
            false,
        ),
        ("WardCompatibility ModSecurity2", true, "application/x-www-form-urlencoded", "a=java.x", true),
        ("WardCompatibility ModSecurity2", true, "text/plain", "java.x", true),
        ("WardCompatibility ModSecurity2", true, "", "java.x", true),
        ("WardCompatibility ModSecurity2", false, "text/plain", "java.x", false),
        // A processor that fails falls back to the forced raw buffer.
        ("WardCompatibility ModSecurity2", false, "application/xml", "<a>java.x", false),
    ];
    for (dialect, force, ct, body, want) in cases {
        let text = format!("{dialect}\n{BASE}{}{BODY_RULE}", if *force { FORCE } else { "" });
        let got = matched(&rules(&text), "/", ct, body).split(',').any(|id| id == "10");
        assert_eq!(got, *want, "{dialect:?} force={force} {ct:?}");
    }
}

#[test]
fn forced_body_variable_survives_a_processor_error_in_v2() {
    let text = format!(
        "WardCompatibility ModSecurity2\n{BASE}SecAction \"id:5,phase:1,pass,nolog,ctl:forceRequestBodyVariable=On\"\n{BODY_RULE}"
    );
    assert!(matched(&rules(&text), "/", "application/xml", "<a>java.x").split(',').any(|id| id == "10"));
}

#[test]
fn reqbody_processor_is_visible_in_phase_1() {
    let rs = rules(
        r#"SecRuleEngine DetectionOnly
SecRule REQBODY_PROCESSOR "@streq URLENCODED" "id:1,phase:1,pass,log"
SecRule REQBODY_PROCESSOR "@streq MULTIPART" "id:2,phase:1,pass,log"
SecRule REQBODY_PROCESSOR "^$" "id:3,phase:1,pass,log"
SecRule REQUEST_HEADERS:Content-Type "xml" "id:4,phase:1,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQBODY_PROCESSOR "@streq XML" "id:5,phase:1,pass,log"
"#,
    );
    let cases: &[(&str, &str)] = &[
        ("application/x-www-form-urlencoded; charset=utf-8", "1"),
        ("multipart/form-data; boundary=x", "2"),
        ("text/plain", "3"),
        ("", "3"),
        ("text/xml", "3,5"),
    ];
    for (ct, want) in cases {
        assert_eq!(matched(&rs, "/", ct, ""), *want, "{ct:?}");
    }
}

#[test]
fn backslash_pairs_per_dialect() {
    // CRS 3.3's 920460 writes `\\\\` for one backslash in the regex, for Apache.
    let rule = r#"SecRule ARGS "@rx (?:^|[^\\\\])\\\\[cdeghijklmpqwxyz123456789]" "id:920460,phase:2,pass,log,t:none,t:urlDecodeUni""#;
    // (dialect, query, matched)
    let cases: &[(&str, &str, bool)] = &[
        ("WardCompatibility ModSecurity2", "/?file=\\c", true),
        ("WardCompatibility ModSecurity2", "/?file=\\\\c", false),
        ("WardCompatibility ModSecurity3", "/?file=\\c", false),
        ("WardCompatibility ModSecurity3", "/?file=x\\\\c", true),
    ];
    for (dialect, uri, want) in cases {
        let rs = rules(&format!("{dialect}\nSecRuleEngine DetectionOnly\n{rule}\n"));
        let got = matched(&rs, uri, "", "") == "920460";
        assert_eq!(got, *want, "{dialect} {uri}");
    }
}

#[test]
fn unknown_dialect_is_a_load_error() {
    let e = RuleSet::compile(&[RuleSource::Inline {
        text: "WardCompatibility v9".into(),
        origin: PathBuf::from("/t/x.conf"),
        line: 1,
    }])
    .unwrap_err()
    .to_string();
    assert!(e.contains("WardCompatibility") && e.contains("x.conf"), "{e}");
}

#[test]
fn noauditlog_silences_the_error_log_in_v3_only() {
    // CRS v4 980170: `pass,noauditlog,msg:…` after SecDefaultAction's `log,auditlog`.
    let rule = "SecDefaultAction \"phase:5,log,auditlog,pass\"\nSecAction \"id:980170,phase:5,pass,t:none,noauditlog,msg:'scores'\"\n";
    for (dialect, want) in [("", ""), ("WardCompatibility ModSecurity2", "980170")] {
        let rs = rules(&format!("{dialect}\nSecRuleEngine DetectionOnly\n{rule}"));
        assert_eq!(matched(&rs, "/", "", ""), want, "{dialect:?}");
    }
}
