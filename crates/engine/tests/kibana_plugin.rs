//! The Kibana rule-exclusion plugin (rules/kibana/) against CRS v4 (../shared/crs/v4).
//!
//! Recorded-shape Kibana requests (rules/kibana/tests/requests/*.http) run through
//! Ward's engine with Ward's base config, crs-setup, a paranoia level (SecAction
//! 900000) and the CRS rules, SecRuleEngine On:
//! - without the plugin they are blocked at the paranoia level and by the rules listed
//!   in `FALSE_POSITIVES` (two control requests pass everywhere);
//! - with the plugin every one passes with no CRS detection at all, at PL1 and PL2,
//!   and so does a corpus of realistic KQL / Lucene / ES|QL / SQL queries;
//! - the same requests carrying `' UNION SELECT 1,2,3 --` or `<script>alert(1)</script>`
//!   in a place the plugin does not exclude are still blocked (`ATTACKS`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ward_engine::{RuleSet, RuleSource, Transaction};

const SQLI: &str = "' UNION SELECT 1,2,3 --";
const XSS: &str = "<script>alert(1)</script>";

/// Fixture, the lowest paranoia level at which CRS blocks it without the plugin
/// (None: never, up to PL2), and rule ids that fire at that level.
const FALSE_POSITIVES: &[(&str, Option<u8>, &[u32])] = &[
    ("search-es-kql", Some(1), &[942220]),
    ("search-es-lucene", Some(1), &[942190, 942220]),
    ("bsearch", Some(1), &[942220]),
    ("esql-async", Some(1), &[932235]),
    ("console-proxy-sql", Some(1), &[942100]),
    ("console-proxy-search", Some(2), &[932200]),
    ("saved-objects-update-visualization", Some(1), &[911100]),
    ("saved-objects-create-dashboard", Some(2), &[932240, 942200, 942300, 942330, 942340, 942370, 942430]),
    ("reporting-generate", Some(2), &[932200, 932240, 942200, 942370, 942430]),
    ("security-login", Some(2), &[920230, 942390]),
    ("saved-objects-bulk-get", None, &[]),
    ("saved-objects-find", None, &[]),
];

/// Fixture, text to replace, replacement: an attack in an argument the plugin leaves
/// alone (or, for XSS inside query text, a rule family it leaves alone).
const ATTACKS: &[(&str, &str, &str)] = &[
    ("search-es-kql", "\"index\":\"logs-*\"", "\"index\":\"logs-*' UNION SELECT 1,2,3 --\""),
    ("search-es-kql", "\"url.extension\":\"php\"", "\"url.extension\":\"<script>alert(1)</script>\""),
    ("search-es-lucene", "AND NOT url.original", "AND <script>alert(1)</script> AND NOT url.original"),
    (
        "bsearch",
        "\"sessionId\":\"2f4c8a3e-5d7b-4e1f-9a0c-6b8d2e4f1a3c\"",
        "\"sessionId\":\"2f4c8a3e' UNION SELECT 1,2,3 --\"",
    ),
    ("esql-async", "\"locale\":\"en\"", "\"locale\":\"<script>alert(1)</script>\""),
    ("console-proxy-sql", "LIMIT 10", "LIMIT 10 <script>alert(1)</script>"),
    ("console-proxy-search", "method=GET", "method=GET&x=%27%20UNION%20SELECT%201%2C2%2C3%20--"),
    ("saved-objects-create-dashboard", "\"title\":\"[Logs] Web Traffic\"", "\"title\":\"<script>alert(1)</script>\""),
    ("saved-objects-update-visualization", "\"description\":\"\"", "\"description\":\"' UNION SELECT 1,2,3 --\""),
    ("reporting-generate", "printablePdfV2?", "printablePdfV2?title=%27%20UNION%20SELECT%201%2C2%2C3%20--&"),
    ("security-login", "\"username\":\"elastic\"", "\"username\":\"elastic' UNION SELECT 1,2,3 --\""),
    ("saved-objects-bulk-get", "\"id\":\"logs-*\"", "\"id\":\"logs-*' UNION SELECT 1,2,3 --\""),
    ("saved-objects-find", "search=web%20traffic*", "search=%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
];

/// What analysts type into the query bar (KQL, Lucene) and ES|QL / SQL editors.
const QUERIES: &[&str] = &[
    "http.response.status_code:[500 TO 599] AND NOT url.original:\"/health\"",
    "user.name:admin* OR user.name:root",
    "message:\"select * from users where\"",
    "process.command_line:*powershell* and not user.name:SYSTEM",
    "event.action:\"user-login\" and source.ip:10.0.0.0/8",
    "tags:\"error\" AND bytes>10000",
    "FROM logs-* | WHERE host.name == \"web-01\" | KEEP @timestamp, message | LIMIT 100",
    "FROM logs-* | EVAL kb = bytes / 1024 | STATS avg_kb = AVG(kb) BY machine.os | SORT avg_kb DESC",
    "SELECT COUNT(*) FROM \"logs-*\" WHERE message LIKE '%timeout%'",
    "error.message:\"ORA-00942: table or view does not exist\"",
    "NOT _exists_:user.id AND http.request.method:(POST OR PUT OR DELETE)",
    "destination.port:(22 or 3389) and not source.ip:\"192.168.0.0/16\"",
    "@timestamp >= \"2024-06-01\" and response < 400 and bytes > 0",
    "message : *timeout* and log.level : (error or critical)",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn crs_v4() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/crs/v4");
    if p.join("rules").is_dir() {
        Some(p)
    } else {
        eprintln!("SKIPPED: ../shared/crs/v4 not found");
        None
    }
}

/// Base config, crs-setup, paranoia, [plugin config + before], CRS rules, [plugin after].
fn ruleset(crs: &Path, pl: u8, plugin: bool, extra: &str) -> Arc<RuleSet> {
    let setup = crs.join("crs-setup.conf.example");
    let pl = format!("setvar:tx.blocking_paranoia_level={pl}");
    ruleset_with(&setup, &crs.join("rules"), &pl, plugin, extra)
}

/// Debian's CRS 3.3 package (modsecurity-crs), when installed.
fn crs_33() -> Option<(PathBuf, PathBuf)> {
    let setup = PathBuf::from("/etc/modsecurity/crs/crs-setup.conf");
    let rules = PathBuf::from("/usr/share/modsecurity-crs/rules");
    if setup.exists() && rules.is_dir() {
        Some((setup, rules))
    } else {
        eprintln!("SKIPPED: Debian's modsecurity-crs (CRS 3.3) not installed");
        None
    }
}

fn ruleset_with(setup: &Path, rules_dir: &Path, pl_setvar: &str, plugin: bool, extra: &str) -> Arc<RuleSet> {
    let plugins = repo().join("rules/kibana/plugins");
    let inline =
        |text: String| RuleSource::Inline { text, origin: PathBuf::from("/test/kibana-settings.conf"), line: 1 };
    let mut src = vec![
        RuleSource::File(repo().join("nginx-conf/ward-base.conf")),
        RuleSource::File(setup.to_path_buf()),
        inline(format!("SecAction \"id:900000,phase:1,pass,nolog,{pl_setvar}\"\n{extra}")),
    ];
    if plugin {
        src.push(RuleSource::File(plugins.join("kibana-rule-exclusions-config.conf")));
        src.push(RuleSource::File(plugins.join("kibana-rule-exclusions-before.conf")));
    }
    let mut rules: Vec<PathBuf> = std::fs::read_dir(rules_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    rules.sort();
    src.extend(rules.into_iter().map(RuleSource::File));
    if plugin {
        src.push(RuleSource::File(plugins.join("kibana-rule-exclusions-after.conf")));
    }
    Arc::new(RuleSet::compile(&src).unwrap_or_else(|e| panic!("compile: {e}")))
}

fn fixture(name: &str) -> String {
    let p = repo().join(format!("rules/kibana/tests/requests/{name}.http"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

struct Verdict {
    status: Option<u16>,
    ids: Vec<u32>,
    log: Vec<String>,
}

/// Runs a raw request (request line, headers, blank line, body; Content-Length is
/// added here) through phases 1, 2 and 5.
fn eval(rs: &Arc<RuleSet>, raw: &str) -> Verdict {
    let (head, body) = raw.split_once("\n\n").unwrap_or((raw, ""));
    let mut lines = head.lines();
    let mut rl = lines.next().unwrap().split(' ');
    let (method, uri, proto) = (rl.next().unwrap(), rl.next().unwrap(), rl.next().unwrap());
    let mut tx = Transaction::new(rs.clone(), "kibana-test");
    tx.process_connection("192.0.2.10", 51234, "127.0.0.1", 443);
    tx.process_uri(uri.as_bytes(), method.as_bytes(), proto.as_bytes());
    for l in lines {
        let (k, v) = l.split_once(':').unwrap();
        tx.add_request_header(k.as_bytes(), v.trim_start().as_bytes());
        if k.eq_ignore_ascii_case("host") {
            tx.set_server_name(v.trim().as_bytes());
        }
    }
    if !body.is_empty() || method != "GET" {
        tx.add_request_header(b"Content-Length", body.len().to_string().as_bytes());
    }
    let mut verdict = tx.process_request_headers();
    if verdict.is_none() {
        if tx.wants_request_body() {
            verdict = tx.append_request_body(body.as_bytes());
        }
        if verdict.is_none() {
            verdict = tx.process_request_body();
        }
    }
    tx.process_logging();
    let log = tx.take_messages();
    let ids = tx.matched_ids().split(',').filter_map(|s| s.parse().ok()).collect();
    Verdict { status: verdict.map(|i| i.status), ids, log }
}

fn detections(v: &Verdict) -> Vec<u32> {
    // 949110/980170 are CRS's scoring and correlation rules, not detections.
    v.ids.iter().copied().filter(|id| *id != 949110 && *id != 980170).collect()
}

#[test]
fn kibana_traffic_trips_crs_without_the_plugin_and_passes_with_it() {
    let Some(crs) = crs_v4() else { return };
    for pl in [1u8, 2] {
        let bare = ruleset(&crs, pl, false, "");
        let with = ruleset(&crs, pl, true, "");
        for (name, first_pl, ids) in FALSE_POSITIVES {
            let raw = fixture(name);
            let v = eval(&bare, &raw);
            let should_block = first_pl.is_some_and(|p| p <= pl);
            assert_eq!(
                v.status == Some(403),
                should_block,
                "PL{pl} {name} without plugin: {:?}\n{:#?}",
                v.status,
                v.log
            );
            if *first_pl == Some(pl) {
                for id in *ids {
                    assert!(v.ids.contains(id), "PL{pl} {name}: expected CRS {id} among {:?}", v.ids);
                }
            }
            let v = eval(&with, &raw);
            assert_eq!(v.status, None, "PL{pl} {name} with plugin is blocked:\n{:#?}", v.log);
            assert!(detections(&v).is_empty(), "PL{pl} {name} with plugin still matches {:?}:\n{:#?}", v.ids, v.log);
        }
    }
}

#[test]
fn query_corpus_passes_with_the_plugin() {
    let Some(crs) = crs_v4() else { return };
    let bare = ruleset(&crs, 2, false, "");
    let with = ruleset(&crs, 2, true, "");
    let lucene = fixture("search-es-lucene");
    let esql = fixture("esql-async");
    let console = fixture("console-proxy-sql");
    let mut blocked_without = 0;
    for q in QUERIES {
        let j = serde_json_escape(q);
        let reqs = [
            lucene.replacen(
                "http.response.status_code:[500 TO 599] AND NOT url.original:\\\"/health\\\" OR (user.name:admin* AND message:\\\"select * from users where\\\")",
                &j,
                1,
            ),
            esql.replacen(
                "FROM logs-* | WHERE http.response.status_code >= 500 | STATS errors = COUNT(*) BY host.name | SORT errors DESC | LIMIT 10",
                &j,
                1,
            ),
            console.replacen(
                "SELECT clientip, COUNT(*) AS hits FROM \\\"kibana_sample_data_logs\\\" WHERE response >= 400 GROUP BY clientip ORDER BY hits DESC LIMIT 10",
                &j,
                1,
            ),
        ];
        for r in &reqs {
            assert!(r.contains(&j), "template text not found for {q}");
            if eval(&bare, r).status.is_some() {
                blocked_without += 1;
            }
            let v = eval(&with, r);
            assert!(
                v.status.is_none() && detections(&v).is_empty(),
                "query {q:?} with plugin: {:?}\n{:#?}",
                v.ids,
                v.log
            );
        }
    }
    assert!(
        blocked_without >= QUERIES.len(),
        "the corpus should exercise the exclusions ({blocked_without} blocked without)"
    );
}

#[test]
fn attacks_in_kibana_requests_are_still_blocked() {
    let Some(crs) = crs_v4() else { return };
    for pl in [1u8, 2] {
        let with = ruleset(&crs, pl, true, "");
        for (name, needle, attack) in ATTACKS {
            assert!(
                attack.contains(SQLI)
                    || attack.contains(XSS)
                    || attack.contains("%27%20UNION")
                    || attack.contains("%3Cscript")
            );
            let raw = fixture(name);
            assert!(raw.contains(needle), "{name}: {needle:?} not in the fixture");
            let v = eval(&with, &raw.replacen(needle, attack, 1));
            assert_eq!(v.status, Some(403), "PL{pl} {name} with {attack:?} passed: {:?}\n{:#?}", v.ids, v.log);
        }
    }
}

/// The same plugin with Debian's CRS 3.3 (no plugin mechanism there: the files are
/// included by hand, as nginx-conf/kibana-waf-crs3.conf does).
#[test]
fn crs_33_with_the_plugin() {
    let Some((setup, rules)) = crs_33() else { return };
    for pl in [1u8, 2] {
        let pl_var = format!("setvar:tx.paranoia_level={pl}");
        let bare = ruleset_with(&setup, &rules, &pl_var, false, "");
        let with = ruleset_with(&setup, &rules, &pl_var, true, "");
        let mut blocked_without = 0;
        for (name, _, _) in FALSE_POSITIVES {
            let raw = fixture(name);
            if eval(&bare, &raw).status.is_some() {
                blocked_without += 1;
            }
            let v = eval(&with, &raw);
            assert!(
                v.status.is_none() && detections(&v).is_empty(),
                "3.3 PL{pl} {name} with plugin: {:?}\n{:#?}",
                v.ids,
                v.log
            );
        }
        assert!(blocked_without >= 5, "3.3 PL{pl}: only {blocked_without} fixtures blocked without the plugin");
        for (name, needle, attack) in ATTACKS {
            let v = eval(&with, &fixture(name).replacen(needle, attack, 1));
            assert_eq!(v.status, Some(403), "3.3 PL{pl} {name} with {attack:?} passed");
        }
    }
}

#[test]
fn plugin_can_be_switched_off() {
    let Some(crs) = crs_v4() else { return };
    let off = ruleset(
        &crs,
        1,
        true,
        "SecAction \"id:900999,phase:1,pass,nolog,setvar:tx.kibana-rule-exclusions-plugin_enabled=0\"",
    );
    let v = eval(&off, &fixture("search-es-kql"));
    assert_eq!(v.status, Some(403), "{:?}", v.ids);
}

/// The body of a JSON string literal for `s` (quotes and backslashes escaped).
fn serde_json_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
