//! The Kibana reference deployment through real nginx: nginx-conf/kibana.conf (with
//! its SecLang files, CRS v4 from ../shared/crs/v4 and the Kibana plugin) passes
//! `nginx -t` with a throwaway self-signed certificate in a private prefix; then, live,
//! port 80 redirects, TLS answers with HSTS, a recorded Kibana search passes while the
//! same request with SQLi is refused, websocket upgrades reach the upstream, and the
//! JSON access log parses into every ECS field of elk/ecs-fields.tsv (the table the
//! Logstash pipeline elk/logstash/ward.conf is checked against here too).
//! The full site includes the login gate (kibana-auth.conf); the live part runs without
//! it so that requests need no token.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{crs_v4, free_port, have_nginx, request, Nginx, Upstream};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `nginx -t` on a one-off config whose http block holds `http_body`.
/// (log key, ECS field, conversion) rows of a mapping table.
fn table(rel: &str) -> Vec<(String, String, String)> {
    read(rel)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            assert_eq!(c.len(), 3, "{rel}: bad row {l:?}");
            (c[0].to_string(), c[1].to_string(), c[2].to_string())
        })
        .collect()
}

/// Applies elk/ecs-fields.tsv to one access-log record, as the Logstash pipeline does.
fn to_ecs(rows: &[(String, String, String)], rec: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (key, field, conv) in rows {
        let Some(v) = rec.get(key).and_then(Value::as_str) else { continue };
        let mapped = match conv.as_str() {
            "keyword" | "date" => Value::from(v),
            "long" => Value::from(v.parse::<i64>().unwrap_or_else(|_| panic!("{key}={v:?} is not a number"))),
            "float" => Value::from(v.parse::<f64>().unwrap()),
            "seconds_ns" => Value::from((v.parse::<f64>().unwrap() * 1e9).round() as i64),
            "csv" => Value::from(v.split(',').filter(|s| !s.is_empty()).map(Value::from).collect::<Vec<_>>()),
            other => panic!("unknown conversion {other}"),
        };
        out.insert(field.clone(), mapped);
    }
    out
}

/// A Logstash field reference: `url.original` -> `[url][original]`.
fn ls_ref(field: &str) -> String {
    if field == "@timestamp" {
        return "@timestamp".into();
    }
    field.split('.').map(|p| format!("[{p}]")).collect()
}

fn self_signed(dir: &Path) {
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=kibana.example.com"])
        .arg("-keyout")
        .arg(dir.join("privkey.pem"))
        .arg("-out")
        .arg(dir.join("fullchain.pem"))
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
}

struct Site {
    nginx: Nginx,
    http: u16,
    https: u16,
}

/// Lays out the site in a private prefix: /etc/nginx/ward -> <prefix>/ward,
/// /etc/ssl/kibana -> <prefix>/ssl, /var/log/nginx -> <prefix>/logs, ports moved to
/// free loopback ports, upstream to `kibana_port`.
fn site(crs: &Path, kibana_port: u16, with_auth: bool) -> Site {
    let nginx = Nginx::prepare();
    let p = nginx.prefix().to_path_buf();
    let ward = p.join("ward");
    for d in ["ward/crs/plugins", "ssl"] {
        std::fs::create_dir_all(p.join(d)).unwrap();
    }
    self_signed(&p.join("ssl"));
    let fix = |s: &str| {
        s.replace("/etc/nginx/ward/", &format!("{}/", ward.display()))
            .replace("/etc/ssl/kibana/", &format!("{}/ssl/", p.display()))
            .replace("/var/log/nginx/", &format!("{}/logs/", p.display()))
    };
    for f in ["kibana-waf.conf", "ward-base.conf", "kibana-auth.conf"] {
        std::fs::write(ward.join(f), fix(&read(&format!("nginx-conf/{f}")))).unwrap();
    }
    std::fs::copy(crs.join("crs-setup.conf.example"), ward.join("crs/crs-setup.conf")).unwrap();
    std::os::unix::fs::symlink(crs.join("rules"), ward.join("crs/rules")).unwrap();
    for f in std::fs::read_dir(repo().join("rules/kibana/plugins")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, ward.join("crs/plugins").join(f.file_name().unwrap())).unwrap();
    }
    if with_auth {
        std::fs::write(ward.join("auth.key"), ward_auth::generate_hmac_secret().unwrap()).unwrap();
        let hash = ward_auth::hash_password("correct horse battery staple").unwrap();
        ward_auth::update_users_file(&ward.join("users"), "alice", &hash).unwrap();
    }
    let (http, https) = (free_port(), free_port());
    let mut conf = fix(&read("nginx-conf/kibana.conf"))
        .replace("listen 80;", &format!("listen 127.0.0.1:{http};"))
        .replace("listen [::]:80;", "")
        .replace("listen 443 ssl http2;", &format!("listen 127.0.0.1:{https} ssl http2;"))
        .replace("listen [::]:443 ssl http2;", "")
        .replace("server 127.0.0.1:5601;", &format!("server 127.0.0.1:{kibana_port};"));
    if !with_auth {
        let line = format!("include {}/kibana-auth.conf;", ward.display());
        assert!(conf.contains(&line), "kibana.conf must include kibana-auth.conf");
        conf = conf.replace(&line, "# (login gate left out by the test)");
    }
    std::fs::write(p.join("kibana.conf"), conf).unwrap();
    let _ = Command::new("chmod").args(["-R", "a+rX"]).arg(&p).status();
    if with_auth {
        // Ward refuses a world-readable secret, as an operator would be told to `chmod 600`.
        std::fs::set_permissions(ward.join("auth.key"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    nginx.write_conf(&format!("include {}/kibana.conf;", p.display()));
    Site { nginx, http, https }
}

/// curl over TLS (self-signed, so -k): status, headers (lower-cased names), body.
fn curl(port: u16, method: &str, target: &str, headers: &[(&str, &str)], body: Option<&str>) -> (u16, String, String) {
    let mut c = Command::new("curl");
    c.args(["-sk", "-o", "-", "-D", "/dev/stderr", "-X", method, "--max-time", "20"]);
    c.args(["--resolve", &format!("kibana.example.com:{port}:127.0.0.1")]);
    if headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("upgrade")) {
        // Websockets are HTTP/1.1 (curl and nginx 1.22 have no RFC 8441 over h2).
        c.arg("--http1.1");
    }
    for (k, v) in headers {
        c.arg("-H").arg(format!("{k}: {v}"));
    }
    if let Some(b) = body {
        c.arg("--data-binary").arg(b);
    }
    c.arg(format!("https://kibana.example.com:{port}{target}"));
    let out = c.output().expect("curl");
    let head = String::from_utf8_lossy(&out.stderr).to_lowercase();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Headers and body of a recorded request (rules/kibana/tests/requests/NAME.http).
fn recorded(name: &str) -> (String, String, Vec<(String, String)>, String) {
    let raw = read(&format!("rules/kibana/tests/requests/{name}.http"));
    let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let mut rl = lines.next().unwrap().split(' ');
    let (method, target) = (rl.next().unwrap().to_string(), rl.next().unwrap().to_string());
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| !k.eq_ignore_ascii_case("host") && !k.eq_ignore_ascii_case("accept-encoding"))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    (method, target, headers, body.trim_end().to_string())
}

#[test]
fn kibana_site_config_tests_ok_and_serves() {
    if !have_nginx() {
        return;
    }
    let Some(crs) = crs_v4() else { return };

    // 1. The full configuration passes nginx -t.
    let kibana = Upstream::start();
    let full = site(&crs, kibana.port, true);
    let t = full.nginx.test_config();
    assert!(t.status.success(), "nginx -t on kibana.conf:\n{}", String::from_utf8_lossy(&t.stderr));
    drop(full);

    // 2. Live, without the gate (it would ask every request for a token).
    let mut s = site(&crs, kibana.port, false);
    s.nginx.start(s.https);

    let r = request(s.http, "GET", "/app/home?x=1", &[], b"").unwrap();
    assert_eq!(r.status, 301);
    assert_eq!(r.header("Location"), Some("https://localhost/app/home?x=1"));

    let (status, head, body) = curl(s.https, "GET", "/api/status", &[], None);
    assert_eq!(status, 200, "{head}{body}");
    assert!(body.starts_with("upstream-ok"), "{body}");
    assert!(head.contains("strict-transport-security: max-age=63072000"), "{head}");
    let seen = kibana.requests_to("/api/status");
    let hdr = |name: &str| seen[0].headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(hdr("connection"), None, "keepalive: no Connection header upstream");
    assert_eq!(hdr("x-forwarded-proto").as_deref(), Some("https"));
    assert!(hdr("x-ward-unique-id").is_some_and(|v| !v.is_empty()));

    // Websocket upgrade headers reach Kibana.
    curl(s.https, "GET", "/ws-probe", &[("Upgrade", "websocket"), ("Connection", "Upgrade")], None);
    let seen = kibana.requests_to("/ws-probe");
    assert!(seen[0].headers.iter().any(|(k, v)| k == "connection" && v == "upgrade"), "{:?}", seen[0].headers);
    assert!(seen[0].headers.iter().any(|(k, v)| k == "upgrade" && v == "websocket"));

    // The plugin at PL2 in nginx: Discover's search passes, with SQLi in the index it is refused.
    let (method, target, headers, body) = recorded("search-es-kql");
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, head, _) = curl(s.https, &method, &target, &h, Some(&body));
    assert_eq!(
        status,
        200,
        "recorded Kibana search refused:\n{head}\n{:?}",
        std::fs::read_to_string(s.nginx.path("logs/kibana_error.log"))
    );
    let attack = body.replacen("\"index\":\"logs-*\"", "\"index\":\"logs-*' UNION SELECT 1,2,3 --\"", 1);
    let mut h2 = h.clone();
    h2.push(("X-Forwarded-For", "203.0.113.7"));
    let (status, _, _) = curl(s.https, &method, &format!("{target}?probe=sqli"), &h2, Some(&attack));
    assert_eq!(status, 403);
    let errors = std::fs::read_to_string(s.nginx.path("logs/kibana_error.log")).unwrap_or_default();
    assert!(
        errors.contains("ModSecurity: Access denied with code 403") && errors.contains("[id \"942100\"]"),
        "{errors}"
    );

    // 3. The JSON access log, mapped to ECS with elk/ecs-fields.tsv.
    let rows = table("elk/ecs-fields.tsv");
    // nginx logs a request when it is finalized, which can be just after the client has
    // its answer (a refused body is still being discarded).
    let log_path = s.nginx.path("logs/kibana_access.json");
    common::wait_until("5 access-log records", std::time::Duration::from_secs(10), || {
        std::fs::read_to_string(&log_path).unwrap_or_default().lines().count() >= 5
    });
    let log = std::fs::read_to_string(&log_path).unwrap();
    let records: Vec<Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    assert!(records.len() >= 5, "{log}");
    for rec in &records {
        let ecs = to_ecs(&rows, rec);
        for (key, field, _) in &rows {
            assert!(ecs.contains_key(field), "{field} (from {key}) missing for {rec}");
        }
    }
    let blocked = records.iter().find(|r| r["request_uri"].as_str().is_some_and(|u| u.contains("probe=sqli"))).unwrap();
    let ecs = to_ecs(&rows, blocked);
    assert_eq!(ecs["source.ip"], "127.0.0.1");
    assert_eq!(ecs["http.request.method"], "POST");
    assert_eq!(ecs["url.original"], "/internal/search/es?probe=sqli");
    assert_eq!(ecs["url.path"], "/internal/search/es");
    assert_eq!(ecs["http.response.status_code"], 403);
    assert_eq!(ecs["event.action"], "block");
    assert_eq!(ecs["ward.x_forwarded_for"], "203.0.113.7");
    assert!(ecs["rule.id"].as_array().unwrap().contains(&Value::from("942100")), "{:?}", ecs["rule.id"]);
    assert!(!ecs["event.id"].as_str().unwrap().is_empty());
    assert!(ecs["@timestamp"].as_str().unwrap().starts_with("20"));
    let passed = records.iter().find(|r| r["request_uri"] == "/api/status").unwrap();
    assert_eq!(to_ecs(&rows, passed)["event.action"], "pass");

    // 4. Audit records (ModSecurity v3 JSON), mapped to ECS like the access log. nginx
    // runs its access log's handler before Ward's, so the record can trail the access line.
    let audit_path = s.nginx.path("logs/ward_audit.json");
    common::wait_until("the SQLi request's audit record", std::time::Duration::from_secs(10), || {
        std::fs::read_to_string(&audit_path).unwrap_or_default().contains("probe=sqli")
    });
    let audit = std::fs::read_to_string(&audit_path).unwrap_or_default();
    assert!(!audit.trim().is_empty(), "the SQLi request left no audit record");
    {
        let arows = table("elk/audit-ecs-fields.tsv");
        let mut found = false;
        for l in audit.lines().filter(|l| !l.trim().is_empty()) {
            let rec: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("audit record not JSON ({e}): {l}"));
            for (path, field, _) in &arows {
                let ptr = format!("/{}", path.replace('.', "/"));
                assert!(rec.pointer(&ptr).is_some(), "audit record lacks {path} (for {field}): {l}");
            }
            let ids: Vec<&str> = rec["transaction"]["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|m| m["details"]["ruleId"].as_str())
                .collect();
            found |= ids.contains(&"942100");
        }
        assert!(found, "no audit record names rule 942100:\n{audit}");
    }
}

/// elk/logstash/ward.conf maps exactly the fields of the tables.
#[test]
fn logstash_pipeline_follows_the_tables() {
    let ls = read("elk/logstash/ward.conf");
    for (key, field, conv) in table("elk/ecs-fields.tsv") {
        let src = format!("[ward_raw][{key}]");
        match conv.as_str() {
            "date" => assert!(
                ls.contains(&format!("match => [\"{src}\", \"ISO8601\"]")) && ls.contains("target => \"@timestamp\"")
            ),
            "seconds_ns" => {
                assert!(ls.contains(&format!("event.get('{src}')")) && ls.contains(&format!("'{}'", ls_ref(&field))))
            }
            _ => {
                assert!(ls.contains(&format!("\"{src}\" => \"{}\"", ls_ref(&field))), "pipeline lacks {src} => {field}")
            }
        }
        if conv == "long" {
            assert!(
                ls.contains(&format!("\"{}\" => \"integer\"", ls_ref(&field))),
                "pipeline does not convert {field}"
            );
        }
        if conv == "csv" {
            assert!(ls.contains(&format!("split => {{ \"{}\" => \",\" }}", ls_ref(&field))));
        }
    }
    for (path, field, _) in table("elk/audit-ecs-fields.tsv") {
        let src: String = path.split('.').map(|p| format!("[{p}]")).collect();
        assert!(
            ls.contains(&format!("\"[ward_raw]{src}\" => \"{}\"", ls_ref(&field))),
            "pipeline lacks audit {path} => {field}"
        );
    }
    assert!(ls.contains("index => \"ward-%{+YYYY.MM.dd}\""));
    assert!(ls.contains("source => \"[source][ip]\""), "GeoIP on the client address");
    // Every log key of kibana.conf's log_format is in the table, and vice versa.
    let conf = read("nginx-conf/kibana.conf");
    let fmt = &conf[conf.find("log_format ward_json").unwrap()..];
    let fmt = &fmt[..fmt.find("}';").unwrap()];
    let keys: Vec<String> = table("elk/ecs-fields.tsv").into_iter().map(|r| r.0).collect();
    let mut in_fmt = 0;
    for part in fmt.split("\"").collect::<Vec<_>>().windows(2) {
        if part[1] == ":" && !part[0].contains('$') && !part[0].contains('\'') {
            in_fmt += 1;
            assert!(keys.contains(&part[0].to_string()), "log_format key {} not in elk/ecs-fields.tsv", part[0]);
        }
    }
    assert_eq!(in_fmt, keys.len(), "elk/ecs-fields.tsv has keys the log_format does not write");
    let fb = read("elk/filebeat/ward.yml");
    assert!(fb.contains("/var/log/nginx/kibana_access.json") && fb.contains("/var/log/nginx/ward_audit.json"));
}
