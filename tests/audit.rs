//! Audit log through real nginx: 4 workers under concurrent load write complete JSON
//! records (one per line, none lost, none interleaved) for exactly the relevant requests,
//! matching the access log; requests blocked in the access phase are recorded; secrets
//! are masked; the unique id goes upstream; Native and Concurrent layouts; load errors.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::*;
use serde_json::Value;

const SQLI: &str = "/login?user=admin%27%20UNION%20SELECT%201%2C%20sqlite_version%28%29%2C%201%20--";

const RULES: &str = r#"SecRuleEngine On
SecRequestBodyAccess On
SecAuditLogFormat JSON
SecAuditLogParts ABCFHZ
SecAuditLogRelevantStatus "^(?:5|4(?!04))"
SecComponentSignature "OWASP_CRS/4.0.0-test"
SecAction "id:900,phase:1,pass,nolog,setvar:tx.blocking_inbound_anomaly_score=0"
SecRule ARGS "@rx (?i)union\s+select" "id:1001,phase:2,deny,status:403,log,msg:'SQLi',tag:'attack-sqli',severity:CRITICAL,t:none,t:urlDecodeUni,setvar:tx.blocking_inbound_anomaly_score=+5"
"#;

/// nginx.conf with `workers` worker processes (common::write_conf has one).
fn write_conf(nginx: &Nginx, workers: usize, http_body: &str) {
    let prefix = nginx.prefix().display().to_string();
    let user = if unsafe { libc::geteuid() } == 0 { "user root;\n" } else { "" };
    let conf = format!(
        "load_module {module};\n{user}worker_processes {workers};\n\
         error_log {prefix}/logs/error.log info;\npid {prefix}/logs/nginx.pid;\n\
         events {{ worker_connections 512; }}\n\
         http {{\n\
         client_body_temp_path {prefix}/client_body_temp;\nproxy_temp_path {prefix}/proxy_temp;\n\
         fastcgi_temp_path {prefix}/fastcgi_temp;\nuwsgi_temp_path {prefix}/uwsgi_temp;\nscgi_temp_path {prefix}/scgi_temp;\n\
         log_format ward '$ward_unique_id $status $ward_action [$ward_matched_ids] [$ward_anomaly_score] $request_uri';\n\
         {http_body}\n}}\n",
        module = module_path().display(),
    );
    nginx.write("nginx.conf", &conf);
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

/// Waits until `path` has `n` lines (records are written after the response is sent).
fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    let mut last = Vec::new();
    let ok = (0..100).any(|_| {
        last = lines(path);
        if last.len() >= n {
            return true;
        }
        thread::sleep(Duration::from_millis(100));
        false
    });
    assert!(ok, "{}: {} lines, expected {n}", path.display(), last.len());
    thread::sleep(Duration::from_millis(200));
    lines(path)
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// Access-log lines by unique id: (status, action, ids, scores).
fn access_by_uid(path: &Path) -> HashMap<String, (u16, String, String, String)> {
    let mut m = HashMap::new();
    for l in lines(path) {
        let mut it = l.splitn(4, ' ');
        let (uid, status, action, rest) =
            (it.next().unwrap(), it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        let ids = rest[1..rest.find(']').unwrap()].to_string();
        let after = &rest[rest.find("] [").unwrap() + 3..];
        let score = after[..after.find(']').unwrap()].to_string();
        assert!(
            m.insert(uid.to_string(), (status.parse().unwrap(), action.to_string(), ids, score)).is_none(),
            "uid twice: {l}"
        );
    }
    m
}

#[test]
fn concurrent_load_records_every_relevant_request_once() {
    if !have_nginx() {
        return;
    }
    let upstream = Upstream::start();
    let mut nginx = Nginx::prepare();
    let (relevant, all) = (free_port(), free_port());
    let dead = free_port();
    nginx.write("rules/base.conf", RULES);
    nginx.write("html/index.html", "hi");
    let p = nginx.prefix().display().to_string();
    let up = upstream.port;
    write_conf(
        &nginx,
        4,
        &format!(
            r#"
ward on;
ward_rules_file rules/base.conf;
server {{
    listen 127.0.0.1:{relevant};
    ward_rules 'SecAuditEngine RelevantOnly
SecAuditLog logs/relevant.log';
    access_log {p}/logs/access-relevant.log ward;
    location / {{ proxy_pass http://127.0.0.1:{up}; }}
    location /down/ {{ proxy_pass http://127.0.0.1:{dead}; }}
    location /static/ {{ root {p}/html; }}
}}
server {{
    listen 127.0.0.1:{all};
    ward_rules 'SecAuditEngine On
SecAuditLog {p}/logs/all.log';
    access_log {p}/logs/access-all.log ward;
    location / {{ proxy_pass http://127.0.0.1:{up}; }}
    location /down/ {{ proxy_pass http://127.0.0.1:{dead}; }}
    location /static/ {{ root {p}/html; }}
}}
"#
        ),
    );
    nginx.start(relevant);
    wait_until("second listener", Duration::from_secs(5), || std::net::TcpStream::connect(("127.0.0.1", all)).is_ok());

    // 8 threads × 200 requests: SQLi (403), upstream down (502), missing file (404), benign (200);
    // every third one carries a 6 KB header, so its record exceeds PIPE_BUF.
    let expected_relevant = Arc::new(AtomicUsize::new(0));
    let (to_relevant, to_all) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let pad = "p".repeat(6000);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (er, tr, ta, pad) = (expected_relevant.clone(), to_relevant.clone(), to_all.clone(), pad.clone());
            thread::spawn(move || {
                for i in 0..200 {
                    let port = if (t + i) % 2 == 0 { relevant } else { all };
                    let (target, want) = match i % 5 {
                        0 => (SQLI.to_string(), 403),
                        1 => (format!("/down/{t}-{i}"), 502),
                        2 => (format!("/static/missing-{t}-{i}.html"), 404),
                        _ => (format!("/ok/{t}-{i}?q=hello"), 200),
                    };
                    let mut headers = vec![("User-Agent", "audit-test")];
                    if i % 3 == 0 {
                        headers.push(("X-Pad", pad.as_str()));
                    }
                    let r = request(port, "GET", &target, &headers, b"").unwrap_or_else(|e| panic!("{target}: {e}"));
                    assert_eq!(r.status, want, "{target}");
                    if port == relevant {
                        tr.fetch_add(1, Ordering::Relaxed);
                        if matches!(want, 403 | 502) {
                            er.fetch_add(1, Ordering::Relaxed);
                        }
                    } else {
                        ta.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let er = expected_relevant.load(Ordering::Relaxed);
    let (tr, ta) = (to_relevant.load(Ordering::Relaxed), to_all.load(Ordering::Relaxed));
    assert_eq!(tr + ta, 1600);
    assert_eq!(nginx.worker_pids().len(), 4, "4 workers");

    for (log, access, want) in
        [("logs/relevant.log", "logs/access-relevant.log", er), ("logs/all.log", "logs/access-all.log", ta)]
    {
        let records = wait_lines(&nginx.path(log), want);
        assert_eq!(records.len(), want, "{log}: records");
        let access = access_by_uid(&nginx.path(access));
        let mut seen = HashSet::new();
        let mut big = 0;
        for line in &records {
            let j = parse(line);
            let t = &j["transaction"];
            let uid = t["unique_id"].as_str().unwrap().to_string();
            assert!(seen.insert(uid.clone()), "{log}: unique_id {uid} twice");
            let (status, action, ids, score) =
                access.get(&uid).unwrap_or_else(|| panic!("{log}: {uid} not in the access log"));
            assert_eq!(t["response"]["http_code"].as_u64(), Some(u64::from(*status)), "{line}");
            assert_eq!(t["producer"]["secrules_engine"], "Enabled");
            let msgs = t["messages"].as_array().unwrap();
            if *status == 403 {
                assert_eq!(action, "block");
                assert_eq!(ids, "1001");
                assert_eq!(score, "inbound=5 outbound=0");
                assert_eq!(msgs.len(), 1, "{line}");
                assert_eq!(msgs[0]["details"]["ruleId"], "1001");
                assert_eq!(msgs[0]["details"]["tags"][0], "attack-sqli");
                assert_eq!(t["request"]["uri"], SQLI);
            } else {
                assert_eq!(action, "pass");
                assert!(msgs.is_empty(), "{line}");
                assert_eq!(score, "inbound=0 outbound=0");
            }
            if line.len() > 4096 {
                big += 1;
                assert_eq!(t["request"]["headers"]["X-Pad"].as_str().map(str::len), Some(6000));
            }
        }
        assert!(big > 0, "{log}: some records exceed PIPE_BUF");
        if log == "logs/all.log" {
            assert_eq!(seen.len(), access.len(), "On: every request has a record");
        } else {
            let relevant_in_access = access.values().filter(|(s, ..)| matches!(s, 403 | 502)).count();
            assert_eq!(relevant_in_access, want);
        }
    }
    assert!(!nginx.error_log().contains("ward: audit log"), "{}", nginx.error_log());
}

#[test]
fn records_mask_secrets_and_unique_id_goes_upstream() {
    if !have_nginx() {
        return;
    }
    let upstream = Upstream::start();
    let mut nginx = Nginx::prepare();
    let (on, det, native, conc) = (free_port(), free_port(), free_port(), free_port());
    nginx.write("rules/base.conf", RULES);
    let p = nginx.prefix().display().to_string();
    let up = upstream.port;
    write_conf(
        &nginx,
        2,
        &format!(
            r#"
ward on;
ward_rules_file rules/base.conf;
ward_unique_id_header X-Request-Id;
access_log {p}/logs/access.log ward;
server {{
    listen 127.0.0.1:{on};
    ward_rules 'SecAuditEngine On
SecAuditLog logs/on.log';
    location / {{ proxy_pass http://127.0.0.1:{up}; }}
}}
server {{
    listen 127.0.0.1:{det};
    ward_rules 'SecRuleEngine DetectionOnly
SecAuditEngine RelevantOnly
SecAuditLog logs/det.log';
    location / {{ proxy_pass http://127.0.0.1:{up}; }}
}}
server {{
    listen 127.0.0.1:{native};
    ward_rules 'SecAuditEngine RelevantOnly
SecAuditLogFormat Native
SecAuditLog logs/native.log';
    location / {{ proxy_pass http://127.0.0.1:{up}; }}
}}
server {{
    listen 127.0.0.1:{conc};
    ward_rules 'SecAuditEngine On
SecAuditLogType Concurrent
SecAuditLogStorageDir logs/audit
SecAuditLog logs/index.log';
    location / {{ proxy_pass http://127.0.0.1:{up}; }}
}}
"#
        ),
    );
    nginx.start(on);

    // Secrets in Authorization, the gate's cookie and a password field; a forged request id.
    let headers = [
        ("Authorization", "Bearer eyJhbGciOi.secretpayload.sig"),
        ("Cookie", "theme=dark; ward_token=tok-secret-123"),
        ("X-Request-Id", "forged"),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let r = request(on, "POST", "/form?password=hunter2222", &headers, b"user=bob&password=pw-secret-9").unwrap();
    assert_eq!(r.status, 200);
    let rec = wait_lines(&nginx.path("logs/on.log"), 1);
    let line = &rec[0];
    for secret in ["secretpayload", "tok-secret-123", "hunter2222", "pw-secret-9"] {
        assert!(!line.contains(secret), "{secret} leaked: {line}");
    }
    let j = parse(line);
    let t = &j["transaction"];
    assert_eq!(t["request"]["headers"]["Authorization"], "Bearer ********");
    assert_eq!(t["request"]["headers"]["Cookie"], "theme=dark; ward_token=********");
    assert_eq!(t["request"]["body"], "user=bob&password=********");
    assert_eq!(t["request"]["method"], "POST");
    assert_eq!(t["request"]["http_version"].as_f64(), Some(1.1));
    assert_eq!(t["client_ip"], "127.0.0.1");
    assert_eq!(t["host_port"].as_u64(), Some(u64::from(on)));
    assert_eq!(t["producer"]["components"][0], "OWASP_CRS/4.0.0-test");
    assert!(t["producer"]["connector"].as_str().unwrap().starts_with("ward-nginx"));
    assert_eq!(t["response"]["headers"]["Content-Type"], "text/plain");
    // The upstream got the unique id (the client's forged one replaced).
    let uid = t["unique_id"].as_str().unwrap();
    let seen = upstream.requests_to("/form");
    let ids: Vec<&str> = seen[0].headers.iter().filter(|(k, _)| k == "x-request-id").map(|(_, v)| v.as_str()).collect();
    assert_eq!(ids, [uid]);

    // Blocked in the access phase: recorded (log phase still runs).
    assert_eq!(get(on, SQLI).status, 403);
    let rec = wait_lines(&nginx.path("logs/on.log"), 2);
    let j = parse(&rec[1]);
    assert_eq!(j["transaction"]["response"]["http_code"], 403);
    assert_eq!(j["transaction"]["messages"][0]["details"]["ruleId"], "1001");
    assert!(upstream.requests_to("UNION").is_empty());

    // DetectionOnly: passes, `$ward_action` says detect, the record says DetectionOnly.
    assert_eq!(get(det, SQLI).status, 200);
    assert_eq!(get(det, "/benign").status, 200);
    let rec = wait_lines(&nginx.path("logs/det.log"), 1);
    assert_eq!(rec.len(), 1, "only the relevant request");
    let j = parse(&rec[0]);
    let t = &j["transaction"];
    assert_eq!(t["producer"]["secrules_engine"], "DetectionOnly");
    assert_eq!(t["response"]["http_code"], 200);
    let access = access_by_uid(&nginx.path("logs/access.log"));
    let uid = t["unique_id"].as_str().unwrap();
    let (status, action, ids, score) = access
        .get(uid)
        .unwrap_or_else(|| panic!("{uid} not in {access:?}\n{}", lines(&nginx.path("logs/access.log")).join("\n")));
    assert_eq!(
        (*status, action.as_str(), ids.as_str(), score.as_str()),
        (200, "detect", "1001", "inbound=5 outbound=0")
    );

    // Native: ModSecurity's sections.
    assert_eq!(get(native, SQLI).status, 403);
    wait_until("native record", Duration::from_secs(5), || {
        std::fs::read_to_string(nginx.path("logs/native.log")).unwrap_or_default().contains("---Z--")
    });
    let text = std::fs::read_to_string(nginx.path("logs/native.log")).unwrap();
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("---") && first.ends_with("---A--"), "{text}");
    let b = &first[3..11];
    for s in ["B", "F", "H", "Z"] {
        assert!(text.contains(&format!("---{b}---{s}--")), "{s}: {text}");
    }
    assert!(
        text.contains("ModSecurity: Access denied with code 403 (phase 2)") && text.contains("[id \"1001\"]"),
        "{text}"
    );

    // Concurrent: one file per record, an index line per record.
    assert_eq!(get(conc, "/c1").status, 200);
    let index = wait_lines(&nginx.path("logs/index.log"), 1);
    let file = index[0].split(' ').find(|w| w.contains("/logs/audit/")).unwrap_or_else(|| panic!("{}", index[0]));
    let rec = std::fs::read_to_string(file).unwrap();
    let j = parse(rec.trim_end());
    assert_eq!(j["transaction"]["request"]["uri"], "/c1");
    // The engine saw the client's headers only, not Ward's own id header.
    assert!(j["transaction"]["request"]["headers"]["X-Request-Id"].is_null(), "{rec}");
    assert!(index[0].contains("\"GET /c1 HTTP/1.1\" 200 "), "{}", index[0]);

    // Rotation: the file moved away is reopened by the workers; a reload opens it anew.
    std::fs::rename(nginx.path("logs/on.log"), nginx.path("logs/on.log.1")).unwrap();
    assert_eq!(get(on, "/after-rotate").status, 200);
    let rec = wait_lines(&nginx.path("logs/on.log"), 1);
    assert!(rec[0].contains("/after-rotate"), "{}", rec[0]);
    assert_eq!(lines(&nginx.path("logs/on.log.1")).len(), 2);
    let before = nginx.worker_pids();
    nginx.hup();
    wait_until("new workers", Duration::from_secs(10), || {
        let now = nginx.worker_pids();
        now.len() == 2 && now.iter().all(|p| !before.contains(p))
    });
    assert_eq!(get(on, "/after-reload").status, 200);
    let rec = wait_lines(&nginx.path("logs/on.log"), 2);
    assert!(rec[1].contains("/after-reload"), "{}", rec[1]);
}

#[test]
fn audit_load_errors() {
    if !have_nginx() {
        return;
    }
    let nginx = Nginx::prepare();
    let port = free_port();
    for (rules, want) in [
        ("SecAuditEngine On\nSecAuditLogType Concurrent\nSecAuditLog logs/i.log", "needs SecAuditLogStorageDir"),
        ("SecAuditEngine On\nSecAuditLogType HTTPS", "not supported"),
        ("SecAuditEngine On\nSecAuditLog /nonexistent-dir/a.log", "/nonexistent-dir/a.log"),
        ("SecAuditLogRelevantStatus \"(\"", "SecAuditLogRelevantStatus"),
    ] {
        nginx.write("rules/a.conf", &format!("SecRuleEngine On\n{rules}\n"));
        write_conf(&nginx, 1, &format!("ward on; ward_rules_file rules/a.conf; server {{ listen 127.0.0.1:{port}; }}"));
        let out = nginx.test_config();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{rules}: {err}");
    }
    write_conf(&nginx, 1, &format!("ward_unique_id_header 'bad name'; server {{ listen 127.0.0.1:{port}; }}"));
    let out = nginx.test_config();
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid header name"));
}
