//! Ward inside the real nginx (/usr/sbin/nginx): loading, configuration errors, reloads,
//! and issue #2's SecRuleEngine On / DetectionOnly / Off behaviour per server block.
//!
//! Each test starts its own nginx (private prefix, free loopback ports) in front of a
//! recording upstream. Needs `cargo build --release` first (scripts/test.sh does it).

mod common;

use std::time::Duration;

use common::*;

/// The classic login-form injection, URL-encoded for a query and for a form body.
const SQLI_QUERY: &str = "user=admin%27%20UNION%20SELECT%201%2C%20sqlite_version%28%29%2C%201%20--&pass=x";
const SQLI_FORM: &str = "user=admin%27+UNION+SELECT+1%2C+sqlite_version%28%29%2C+1+--&pass=x";

const RULES: &str = r#"SecRequestBodyAccess On
SecRequestBodyLimit 16777216
SecRule ARGS "@rx (?i)union\s+select" "id:1001,phase:2,deny,status:403,log,msg:'SQLi',t:none,t:urlDecodeUni"
"#;

const DENIED: &str = "ModSecurity: Access denied with code 403 (phase 2)";
const WARNING: &str = "ModSecurity: Warning.";
const RULE_ID: &str = "[id \"1001\"]";

/// nginx with three server blocks (On, DetectionOnly, Off) in front of one upstream.
struct Waf {
    nginx: Nginx,
    upstream: Upstream,
    on: u16,
    det: u16,
    off: u16,
}

fn waf(body_buffer: &str) -> Waf {
    let upstream = Upstream::start();
    let mut nginx = Nginx::prepare();
    let (on, det, off) = (free_port(), free_port(), free_port());
    nginx.write("rules/sqli.conf", RULES);
    let up = upstream.port;
    nginx.write_conf(&format!(
        r#"
log_format ward '$request_uri action=$ward_action ids=$ward_matched_ids uid=$ward_unique_id';
access_log {prefix}/logs/ward.log ward;
client_max_body_size 16m;
client_body_buffer_size {body_buffer};
ward on;
ward_rules_file rules/sqli.conf;
server {{
    listen 127.0.0.1:{on};
    ward_rules 'SecRuleEngine On';
    location / {{ proxy_pass http://127.0.0.1:{up}; }}
    location /open/ {{ ward off; proxy_pass http://127.0.0.1:{up}; }}
}}
server {{
    listen 127.0.0.1:{det};
    ward_rules 'SecRuleEngine DetectionOnly';
    location / {{ proxy_pass http://127.0.0.1:{up}; }}
}}
server {{
    listen 127.0.0.1:{off};
    ward_rules 'SecRuleEngine Off';
    location / {{ proxy_pass http://127.0.0.1:{up}; }}
}}
"#,
        prefix = nginx.prefix().display()
    ));
    nginx.start(on);
    Waf { nginx, upstream, on, det, off }
}

fn assert_upstream_ok(r: &Response, len: usize) {
    assert_eq!(r.status, 200, "body: {}", r.body_text());
    assert_eq!(r.body_text(), format!("upstream-ok len={len}"));
}

// ------------------------------------------------------------ works without rules

#[test]
fn module_loads_and_config_test_passes() {
    if !have_nginx() {
        return;
    }
    let nginx = Nginx::prepare();
    nginx.write("rules/sqli.conf", RULES);
    nginx.write_conf(&format!(
        "ward on;\nward_rules_file rules/sqli.conf;\nserver {{ listen 127.0.0.1:{}; ward_rules 'SecRuleEngine On'; \
         location / {{ ward off; root html; }} }}",
        free_port()
    ));
    let out = nginx.test_config();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "nginx -t failed:\n{err}");
    assert!(err.contains("test is successful"), "{err}");
}

/// `nginx -t` must fail with `message … in nginx.conf:LINE` for directive errors.
#[test]
fn config_errors_fail_nginx_t_with_position() {
    if !have_nginx() {
        return;
    }
    let cases: [(&str, &str); 4] = [
        ("ward maybe;", "invalid value \"maybe\" in \"ward\" directive"),
        ("ward_rules_file rules/nope.conf;", "rules/nope.conf\": No such file or directory"),
        ("ward on; ward off;", "\"ward\" directive is duplicate"),
        ("ward on off;", "invalid number of arguments in \"ward\" directive"),
    ];
    for (directive, expected) in cases {
        let nginx = Nginx::prepare();
        // The directive sits on line 16 of the generated file (line 7 of the http body).
        nginx.write_conf(&format!("\n\n\n\n\n\n{directive}\n"));
        let line =
            std::fs::read_to_string(nginx.path("nginx.conf")).unwrap().lines().position(|l| l == directive).unwrap()
                + 1;
        let out = nginx.test_config();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{directive}: nginx -t passed");
        assert!(err.contains(expected), "{directive}: expected {expected:?} in:\n{err}");
        assert!(err.contains(&format!("nginx.conf:{line}")), "{directive}: expected nginx.conf:{line} in:\n{err}");
    }
}

#[test]
fn benign_requests_pass_everywhere() {
    if !have_nginx() {
        return;
    }
    let w = waf("16k");
    for port in [w.on, w.det, w.off] {
        assert_upstream_ok(&get(port, "/search?q=hello+world"), 0);
        assert_upstream_ok(&post_form(port, "/login", b"user=alice&pass=secret"), 22);
    }
    assert!(w.nginx.log_lines_with(&["ModSecurity:"]).is_empty(), "{}", w.nginx.error_log());
}

/// With Ward on, the upstream gets exactly the bytes the client sent: in memory and
/// spilled to a temp file, under every engine mode.
#[test]
fn upstream_receives_unchanged_body() {
    if !have_nginx() {
        return;
    }
    let w = waf("8k");
    let body: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i: usize| (i * 7 % 256) as u8).collect();
    for (port, name) in [(w.on, "on"), (w.det, "det"), (w.off, "off")] {
        for size in [100usize, 5000, body.len()] {
            let path = format!("/bin-{name}-{size}");
            let r =
                request(port, "POST", &path, &[("Content-Type", "application/octet-stream")], &body[..size]).unwrap();
            assert_upstream_ok(&r, size);
            let seen = w.upstream.requests_to(&path);
            assert_eq!(seen.len(), 1, "{path}");
            assert!(seen[0].body == body[..size], "{path}: body changed on the way");
        }
    }
}

#[test]
fn reload_keeps_serving_and_applies_new_config() {
    if !have_nginx() {
        return;
    }
    let upstream = Upstream::start();
    let mut nginx = Nginx::prepare();
    let port = free_port();
    let conf = |extra: &str| {
        format!(
            "ward on;\nward_rules 'SecRuleEngine DetectionOnly';\nserver {{ listen 127.0.0.1:{port};\n\
             location / {{ proxy_pass http://127.0.0.1:{}; }}\n{extra}\n}}",
            upstream.port
        )
    };
    nginx.write_conf(&conf(""));
    nginx.start(port);
    assert_upstream_ok(&get(port, "/before"), 0);
    nginx.write_conf(&conf("location /added/ { ward off; proxy_pass http://127.0.0.1:1; }"));
    let out = nginx.signal("reload");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The new config sends /added/ to a dead port: 502 once the new workers serve.
    wait_until("the reloaded config", Duration::from_secs(10), || get(port, "/added/x").status == 502);
    assert_upstream_ok(&get(port, "/after"), 0);
}

#[test]
fn broken_reload_keeps_old_workers_serving() {
    if !have_nginx() {
        return;
    }
    let upstream = Upstream::start();
    let mut nginx = Nginx::prepare();
    let port = free_port();
    nginx.write_conf(&format!(
        "ward on;\nward_rules 'SecRuleEngine DetectionOnly';\nserver {{ listen 127.0.0.1:{port}; \
         location / {{ proxy_pass http://127.0.0.1:{}; }} }}",
        upstream.port
    ));
    nginx.start(port);
    assert_upstream_ok(&get(port, "/before"), 0);
    let workers = nginx.worker_pids();
    assert!(!workers.is_empty());
    nginx.write_conf("ward_rules_file rules/missing.conf;\n");
    nginx.hup();
    wait_until("the master to reject the new config", Duration::from_secs(10), || {
        nginx.error_log().contains("rules/missing.conf\": No such file or directory")
    });
    for i in 0..5 {
        assert_upstream_ok(&get(port, &format!("/after-{i}")), 0);
    }
    assert_eq!(nginx.worker_pids(), workers, "workers were replaced");
}

// ------------------------------------------------------------ needs the engine (issue #2 spec)

#[test]
fn sqli_in_query_per_engine_mode() {
    if !have_nginx() {
        return;
    }
    let w = waf("16k");
    let r = get(w.on, &format!("/q-on?{SQLI_QUERY}"));
    assert_eq!(r.status, 403);
    assert!(w.upstream.requests_to("/q-on").is_empty(), "blocked request reached the upstream");
    assert!(!w.nginx.log_lines_with(&[DENIED, RULE_ID, "/q-on"]).is_empty(), "{}", w.nginx.error_log());

    assert_upstream_ok(&get(w.det, &format!("/q-det?{SQLI_QUERY}")), 0);
    assert_eq!(w.upstream.requests_to("/q-det")[0].request_line, format!("GET /q-det?{SQLI_QUERY} HTTP/1.0"));
    assert!(!w.nginx.log_lines_with(&[WARNING, RULE_ID, "/q-det"]).is_empty(), "{}", w.nginx.error_log());
    assert!(w.nginx.log_lines_with(&[DENIED, "/q-det"]).is_empty());

    assert_upstream_ok(&get(w.off, &format!("/q-off?{SQLI_QUERY}")), 0);
    assert!(w.nginx.log_lines_with(&["ModSecurity:", "/q-off"]).is_empty());
}

#[test]
fn sqli_in_urlencoded_post_per_engine_mode() {
    if !have_nginx() {
        return;
    }
    let w = waf("16k");
    let body = SQLI_FORM.as_bytes();
    assert_eq!(post_form(w.on, "/p-on", body).status, 403);
    assert!(w.upstream.requests_to("/p-on").is_empty());
    assert!(!w.nginx.log_lines_with(&[DENIED, RULE_ID, "/p-on"]).is_empty(), "{}", w.nginx.error_log());

    assert_upstream_ok(&post_form(w.det, "/p-det", body), body.len());
    assert_eq!(w.upstream.requests_to("/p-det")[0].body, body);
    assert!(!w.nginx.log_lines_with(&[WARNING, RULE_ID, "/p-det"]).is_empty(), "{}", w.nginx.error_log());

    assert_upstream_ok(&post_form(w.off, "/p-off", body), body.len());
    assert!(w.nginx.log_lines_with(&["ModSecurity:", "/p-off"]).is_empty());
}

/// A 2 MB form whose attack sits at the very end (in memory: buffer larger than body).
#[test]
fn large_body_is_inspected() {
    if !have_nginx() {
        return;
    }
    let w = waf("4m");
    let mut body = format!("filler={}&", "a".repeat(2 * 1024 * 1024)).into_bytes();
    body.extend_from_slice(SQLI_FORM.as_bytes());
    assert_eq!(post_form(w.on, "/big-on", &body).status, 403);
    assert!(!w.nginx.log_lines_with(&[DENIED, RULE_ID, "/big-on"]).is_empty(), "{}", w.nginx.error_log());
    assert_upstream_ok(&post_form(w.det, "/big-det", &body), body.len());
    assert!(w.upstream.requests_to("/big-det")[0].body == body);
    assert!(!w.nginx.log_lines_with(&[WARNING, RULE_ID, "/big-det"]).is_empty());
}

/// A body larger than client_body_buffer_size goes to a temp file; Ward reads it there.
#[test]
fn body_spilled_to_temp_file_is_inspected() {
    if !have_nginx() {
        return;
    }
    let w = waf("8k");
    let mut body = format!("filler={}&", "b".repeat(300 * 1024)).into_bytes();
    body.extend_from_slice(SQLI_FORM.as_bytes());
    assert_eq!(post_form(w.on, "/spill-on", &body).status, 403);
    assert!(
        !w.nginx.log_lines_with(&["buffered to a temporary file", "/spill-on"]).is_empty(),
        "the body was not spilled: {}",
        w.nginx.error_log()
    );
    assert!(!w.nginx.log_lines_with(&[DENIED, RULE_ID, "/spill-on"]).is_empty(), "{}", w.nginx.error_log());
    assert_upstream_ok(&post_form(w.det, "/spill-det", &body), body.len());
    assert!(w.upstream.requests_to("/spill-det")[0].body == body);
}

#[test]
fn ward_off_in_location_overrides_inherited_on() {
    if !have_nginx() {
        return;
    }
    let w = waf("16k");
    assert_eq!(get(w.on, &format!("/blocked?{SQLI_QUERY}")).status, 403);
    assert_upstream_ok(&get(w.on, &format!("/open/x?{SQLI_QUERY}")), 0);
    assert!(w.nginx.log_lines_with(&["ModSecurity:", "/open/x"]).is_empty());
}

#[test]
fn variables_reach_the_access_log() {
    if !have_nginx() {
        return;
    }
    let w = waf("16k");
    assert_eq!(get(w.on, &format!("/v-on?{SQLI_QUERY}")).status, 403);
    assert_upstream_ok(&get(w.det, &format!("/v-det?{SQLI_QUERY}")), 0);
    assert_upstream_ok(&get(w.on, "/v-benign"), 0);
    assert_upstream_ok(&get(w.off, "/v-off"), 0);
    let mut log = String::new();
    wait_until("access log lines", Duration::from_secs(5), || {
        log = std::fs::read_to_string(w.nginx.path("logs/ward.log")).unwrap_or_default();
        log.lines().count() >= 4
    });
    let line = |p: &str| log.lines().find(|l| l.starts_with(p)).unwrap_or_else(|| panic!("{p} in {log}")).to_string();
    assert!(line("/v-on").contains("action=block ids=1001 uid="), "{log}");
    assert!(line("/v-det").contains("action=detect ids=1001 uid="), "{log}");
    assert!(line("/v-benign").contains("action=pass"), "{log}");
    assert!(!line("/v-benign").contains("uid=-"), "{log}");
    assert!(line("/v-off").contains("uid=-"), "{log}");
}

/// The connection's addresses and ports reach the rules (REMOTE_ADDR, REMOTE_PORT,
/// SERVER_ADDR, SERVER_PORT), each read off nginx's socket addresses.
#[test]
fn connection_addresses_reach_the_rules() {
    if !have_nginx() {
        return;
    }
    let upstream = Upstream::start();
    let mut nginx = Nginx::prepare();
    let port = free_port();
    nginx.write(
        "rules/conn.conf",
        &format!(
            "SecRuleEngine On\n\
             SecRule REMOTE_ADDR \"@streq 127.0.0.1\" \"id:1,phase:1,deny,status:418,chain\"\n\
             SecRule SERVER_ADDR \"@streq 127.0.0.1\" \"chain\"\n\
             SecRule SERVER_PORT \"@eq {port}\" \"chain\"\n\
             SecRule REMOTE_PORT \"@gt 1023\" \"chain\"\n\
             SecRule REMOTE_PORT \"!@eq {port}\"\n"
        ),
    );
    nginx.write_conf(&format!(
        "ward on;\nward_rules_file rules/conn.conf;\nserver {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://127.0.0.1:{}; }} }}",
        upstream.port
    ));
    nginx.start(port);
    assert_eq!(get(port, "/conn").status, 418, "every link of the chain matched");
}

/// A rule error fails `nginx -t` with the rule file's own file:line.
#[test]
fn rule_error_names_rule_file_and_line() {
    if !have_nginx() {
        return;
    }
    let nginx = Nginx::prepare();
    nginx.write("rules/bad.conf", "SecRuleEngine On\nSecRule ARGS \"@nosuchop x\" \"id:1,deny\"\n");
    nginx.write_conf(&format!(
        "ward on;\nward_rules_file rules/bad.conf;\nserver {{ listen 127.0.0.1:{}; }}",
        free_port()
    ));
    let out = nginx.test_config();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "nginx -t passed with a bad rule:\n{err}");
    assert!(err.contains(&format!("{}:2:", nginx.path("rules/bad.conf").display())), "{err}");
}

/// Phase 1 `drop` and `redirect`, phase 3 on a header added by `add_header`, and a
/// phase 4 match (after the headers went out: the connection is cut).
#[test]
fn other_interventions_and_response_phases() {
    if !have_nginx() {
        return;
    }
    let upstream = Upstream::start();
    let mut nginx = Nginx::prepare();
    let port = free_port();
    nginx.write(
        "rules/resp.conf",
        r#"SecRuleEngine On
SecResponseBodyAccess On
SecResponseBodyMimeType text/plain
SecRule REQUEST_HEADERS:User-Agent "@contains sqlmap" "id:2001,phase:1,drop,log"
SecRule ARGS:go "@streq away" "id:2002,phase:1,redirect:http://example.com/blocked,log"
SecRule RESPONSE_HEADERS:X-Secret "@streq 1" "id:2003,phase:3,deny,status:403,log"
SecRule RESPONSE_BODY "@contains upstream-ok len=7" "id:2004,phase:4,deny,status:403,log"
"#,
    );
    let up = upstream.port;
    nginx.write_conf(&format!(
        "ward on;\nward_rules_file rules/resp.conf;\nserver {{ listen 127.0.0.1:{port};\n\
         location / {{ proxy_pass http://127.0.0.1:{up}; }}\n\
         location /secret/ {{ add_header X-Secret 1; proxy_pass http://127.0.0.1:{up}; }}\n}}"
    ));
    nginx.start(port);
    assert_upstream_ok(&get(port, "/fine"), 0);

    let dropped = request(port, "GET", "/drop", &[("User-Agent", "sqlmap/1.7")], b"");
    assert!(dropped.is_err(), "drop answered: {dropped:?}");

    let r = get(port, "/r?go=away");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("Location"), Some("http://example.com/blocked"));
    assert!(upstream.requests_to("/r?").is_empty());

    assert_eq!(get(port, "/secret/x").status, 403);
    assert!(!nginx.log_lines_with(&["(phase 3)", "[id \"2003\"]"]).is_empty(), "{}", nginx.error_log());

    // Phase 4: the 7-byte body makes the upstream answer "upstream-ok len=7".
    let cut = request(port, "POST", "/p4", &[], b"1234567");
    assert!(cut.map(|r| r.body_text() != "upstream-ok len=7").unwrap_or(true), "phase 4 body went through");
    assert!(!nginx.log_lines_with(&["(phase 4)", "[id \"2004\"]"]).is_empty(), "{}", nginx.error_log());
}
