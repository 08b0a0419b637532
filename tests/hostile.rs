//! Hostile input through the real nginx (issue #7): limits answered with a clear status,
//! never a crash, the worker alive (same pid) afterwards; `ward_failure_mode` closed and
//! open with faults injected through `WARD_FAULT_INJECTION` (see src/guard.rs); CRS v4
//! against catastrophic-backtracking inputs at 1 MB (a liveness check: the answer must
//! come within the harness's I/O timeout, no timing assertion).

mod common;

use common::*;

/// CRS-style limit rules (REQUEST-901/920 and ModSecurity's recommended base config).
const LIMIT_RULES: &str = r#"SecRuleEngine On
SecRequestBodyAccess On
SecRequestBodyLimit 13107200
SecRequestBodyJsonDepthLimit 512
SecArgumentsLimit 1000
SecRule REQUEST_HEADERS:Content-Type "@rx (?i)^application/json" "id:200001,phase:1,t:none,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule REQBODY_ERROR "!@eq 0" "id:200002,phase:2,t:none,log,deny,status:400,msg:'Failed to parse request body.',logdata:'%{reqbody_error_msg}'"
SecRule MULTIPART_STRICT_ERROR "!@eq 0" "id:200003,phase:2,t:none,log,deny,status:400,msg:'Multipart request body failed strict validation'"
SecRule MULTIPART_UNMATCHED_BOUNDARY "@eq 1" "id:200004,phase:2,t:none,log,deny,status:400,msg:'Multipart parser detected a possible unmatched boundary.'"
SecRule &ARGS "@ge 1000" "id:200007,phase:2,t:none,log,deny,status:400,msg:'Failed to fully parse request body due to large argument count'"
SecRule REQUEST_URI|REQUEST_BODY "@validateUrlEncoding" "id:920220,phase:2,t:none,log,deny,status:400,msg:'URL Encoding Abuse Attack Attempt'"
SecRule ARGS|ARGS_NAMES "@validateUtf8Encoding" "id:920250,phase:2,t:none,log,deny,status:400,msg:'UTF8 Encoding Abuse Attack Attempt'"
SecRule ARGS|ARGS_NAMES|REQUEST_HEADERS "@validateByteRange 1-255" "id:920270,phase:2,t:none,log,deny,status:400,msg:'Invalid character in request (null character)'"
"#;

fn limits_server() -> (Nginx, Upstream, u16) {
    let upstream = Upstream::start();
    let mut nginx = Nginx::prepare();
    let port = free_port();
    nginx.write("rules/limits.conf", LIMIT_RULES);
    nginx.write_conf(&format!(
        r#"
client_max_body_size 64m;
client_body_buffer_size 1m;
large_client_header_buffers 4 2m;
ward on;
ward_rules_file rules/limits.conf;
server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://127.0.0.1:{up}; }}
}}
"#,
        up = upstream.port
    ));
    nginx.start(port);
    (nginx, upstream, port)
}

/// No Ward panic, internal failure or worker crash in the error log.
fn assert_clean_log(nginx: &Nginx) {
    let log = nginx.error_log();
    for bad in ["panic", "internal failure", "exited on signal", "[alert]", "[emerg]"] {
        assert!(!log.contains(bad), "error log has {bad:?}:\n{}", tail(&log));
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn send(port: u16, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    request(port, method, target, headers, body)
        .unwrap_or_else(|e| panic!("{method} {}: {e}", &target[..target.len().min(60)]))
}

/// One hostile request: the status, then the same worker still answering.
fn check(
    nginx: &Nginx,
    port: u16,
    what: &str,
    want: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) {
    let workers = nginx.worker_pids();
    assert_eq!(workers.len(), 1, "one worker before {what}");
    let r = send(port, method, target, headers, body);
    assert_eq!(r.status, want, "{what}: {}\n{}", r.body_text(), tail(&nginx.error_log()));
    assert_eq!(get(port, "/alive").status, 200, "{what}: a benign request after it");
    assert_eq!(nginx.worker_pids(), workers, "{what}: the worker survived");
}

#[test]
fn hostile_inputs_get_clear_answers_and_the_worker_lives() {
    if !have_nginx() {
        return;
    }
    let (nginx, _upstream, port) = limits_server();
    let json = [("Content-Type", "application/json")];
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let mp = [("Content-Type", "multipart/form-data; boundary=B0undary")];

    // Deeply nested JSON: the depth limit sets REQBODY_ERROR (v3: "JSON depth limit exceeded").
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    check(&nginx, port, "JSON 100,000 levels", 400, "POST", "/json", &json, deep.as_bytes());
    let deep_obj = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    check(&nginx, port, "JSON 100,000 nested objects", 400, "POST", "/json", &json, deep_obj.as_bytes());

    // Multipart with 10,000 parts: the argument limit (SecArgumentsLimit / &ARGS).
    let mut parts = String::new();
    for i in 0..10_000 {
        parts.push_str(&format!("--B0undary\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nv{i}\r\n"));
    }
    let complete = format!("{parts}--B0undary--\r\n");
    check(&nginx, port, "multipart 10,000 parts", 400, "POST", "/mp", &mp, complete.as_bytes());
    // Missing final boundary: REQBODY_ERROR / MULTIPART_STRICT_ERROR.
    check(
        &nginx,
        port,
        "multipart without final boundary",
        400,
        "POST",
        "/mp",
        &mp,
        b"--B0undary\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue\r\n",
    );

    // 10,000 arguments in the query string and in a form body.
    let args: String = (0..10_000).map(|i| format!("a{i}=1&")).collect();
    check(&nginx, port, "10,000 query arguments", 400, "GET", &format!("/q?{args}"), &[], b"");
    check(&nginx, port, "10,000 form arguments", 400, "POST", "/f", &form, args.as_bytes());

    // A 1 MB header and a 1 MB argument name: inspected, nothing to block.
    let big = "a".repeat(1 << 20);
    check(&nginx, port, "1 MB header", 200, "GET", "/h", &[("X-Big", &big)], b"");
    check(&nginx, port, "1 MB argument name", 200, "POST", "/f", &form, format!("{big}=1").as_bytes());
    check(&nginx, port, "1 MB argument name in the query", 200, "GET", &format!("/q?{big}=1"), &[], b"");

    // Invalid percent-encoding and overlong UTF-8, in the query and the body.
    check(&nginx, port, "invalid %-encoding in the query", 400, "GET", "/q?a=%zz%4", &[], b"");
    check(&nginx, port, "invalid %-encoding in the body", 400, "POST", "/f", &form, b"a=%G1&b=%");
    check(&nginx, port, "overlong UTF-8 in a value", 400, "GET", "/q?a=%c0%af", &[], b"");
    check(&nginx, port, "overlong UTF-8 in a name", 400, "POST", "/f", &form, b"%e0%80%af=1");

    // NUL bytes in names and values (encoded in the query, raw in the body).
    check(&nginx, port, "NUL in a query name", 400, "GET", "/q?a%00b=1", &[], b"");
    check(&nginx, port, "NUL in a query value", 400, "GET", "/q?a=1%002", &[], b"");
    check(&nginx, port, "raw NUL in body name and value", 400, "POST", "/f", &form, b"a\0b=c\0d");

    assert_clean_log(&nginx);
}

/// Faults injected through the debug hook, per `ward_failure_mode`.
#[test]
fn failure_mode_closed_answers_500_open_passes_and_the_worker_lives() {
    if !have_nginx() {
        return;
    }
    let upstream = Upstream::start();
    let mut nginx = Nginx::prepare();
    let (closed, open, loc) = (free_port(), free_port(), free_port());
    nginx.write(
        "rules/r.conf",
        "SecRuleEngine On\nSecRequestBodyAccess On\nSecResponseBodyAccess On\n\
        SecRule ARGS \"@contains attack\" \"id:1,phase:2,deny,status:403,log\"\n",
    );
    nginx.write_conf(&format!(
        r#"
log_format ward '$request_uri uid=$ward_unique_id';
access_log {prefix}/logs/ward.log ward;
ward on;
ward_rules_file rules/r.conf;
server {{
    listen 127.0.0.1:{closed};
    location / {{ proxy_pass http://127.0.0.1:{up}; }}
}}
server {{
    listen 127.0.0.1:{open};
    ward_failure_mode open;
    location / {{ proxy_pass http://127.0.0.1:{up}; }}
}}
server {{
    listen 127.0.0.1:{loc};
    ward_failure_mode open;
    location / {{ proxy_pass http://127.0.0.1:{up}; }}
    location /strict/ {{ ward_failure_mode closed; proxy_pass http://127.0.0.1:{up}; }}
}}
"#,
        prefix = nginx.prefix().display(),
        up = upstream.port
    ));
    // The hook is only live when the worker's environment says so (nginx's `env`).
    let conf = std::fs::read_to_string(nginx.path("nginx.conf")).unwrap();
    nginx.write("nginx.conf", &conf.replacen("worker_processes", "env WARD_FAULT_INJECTION=1;\nworker_processes", 1));
    nginx.start(closed);
    let workers = nginx.worker_pids();
    assert_eq!(workers.len(), 1);

    for point in ["access", "error", "body", "header-filter"] {
        let body: &[u8] = if point == "body" { b"a=1" } else { b"" };
        let method = if point == "body" { "POST" } else { "GET" };
        let fault = [("X-Ward-Fault", point), ("Content-Type", "application/x-www-form-urlencoded")];

        let before = upstream.requests_to(&format!("/{point}-closed")).len();
        let r = send(closed, method, &format!("/{point}-closed"), &fault, body);
        assert_eq!(r.status, 500, "closed, fault at {point}: {}\n{}", r.body_text(), tail(&nginx.error_log()));
        let lines =
            nginx.log_lines_with(&["[alert]", "ward: internal failure in", "ward_failure_mode closed: answering 500"]);
        assert!(!lines.is_empty(), "closed, fault at {point}: alert logged\n{}", tail(&nginx.error_log()));
        assert!(lines.iter().all(|l| !l.contains("[unique_id \"-\"]")), "the unique id is logged: {lines:?}");
        if point != "header-filter" {
            assert_eq!(
                upstream.requests_to(&format!("/{point}-closed")).len(),
                before,
                "closed: {point} never reached upstream"
            );
        }

        let r = send(open, method, &format!("/{point}-open"), &fault, body);
        assert_eq!(r.status, 200, "open, fault at {point}: {}\n{}", r.body_text(), tail(&nginx.error_log()));
        assert!(r.body_text().contains("upstream-ok"), "open: passed to upstream");
        assert!(!nginx.log_lines_with(&["ward_failure_mode open: passing the request uninspected"]).is_empty());

        // Location level overrides the server's open.
        let r = send(loc, method, &format!("/strict/{point}"), &fault, body);
        assert_eq!(r.status, 500, "location closed overrides server open ({point})");
        let r = send(loc, method, &format!("/{point}-loc-open"), &fault, body);
        assert_eq!(r.status, 200, "server open inherited ({point})");

        // Same worker, still inspecting: a normal attack is still blocked, a benign request passes.
        assert_eq!(nginx.worker_pids(), workers, "worker alive after a fault at {point}");
        assert_eq!(get(closed, "/?q=attack").status, 403);
        assert_eq!(get(open, "/?q=attack").status, 403);
        assert_eq!(get(closed, "/fine").status, 200);
    }
    // Each alert names the unique id that the access log shows for that request.
    let access = std::fs::read_to_string(nginx.path("logs/ward.log")).unwrap_or_default();
    let uid = access
        .lines()
        .find(|l| l.starts_with("/access-closed "))
        .and_then(|l| l.split("uid=").nth(1))
        .unwrap_or_default()
        .to_string();
    assert!(!uid.is_empty() && uid != "-", "unique id in the access log: {access}");
    assert!(!nginx.log_lines_with(&[&format!("[unique_id \"{uid}\"]")]).is_empty(), "alert names uid {uid}");
    assert!(!nginx.error_log().contains("exited on signal"));
}

#[test]
fn failure_mode_directive_is_validated() {
    if !have_nginx() {
        return;
    }
    let nginx = Nginx::prepare();
    nginx.write_conf("ward_failure_mode maybe;\nserver { listen 127.0.0.1:1; }");
    let out = nginx.test_config();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("invalid value \"maybe\" in \"ward_failure_mode\" directive"), "{err}");
}

/// CRS v4 at paranoia level 4 against classic catastrophic-backtracking shapes, at 1 MB,
/// in a query argument, a header, a form body and a JSON body. Liveness: every request is
/// answered within the harness's I/O timeout and the worker survives.
#[test]
fn crs_v4_survives_redos_inputs() {
    if !have_nginx() {
        return;
    }
    let Some(crs) = crs_v4() else { return };
    let upstream = Upstream::start();
    let mut nginx = Nginx::prepare();
    let port = free_port();
    nginx.write(
        "rules/crs.conf",
        &crs_v4_rules(
            &crs,
            "SecRequestBodyLimit 13107200\nSecRequestBodyNoFilesLimit 13107200\n\
             SecRule REQUEST_HEADERS:Content-Type \"@rx (?i)^application/json\" \"id:200001,phase:1,t:none,pass,nolog,ctl:requestBodyProcessor=JSON\"\n",
            4,
            "",
        ),
    );
    nginx.write_conf(&format!(
        r#"
client_max_body_size 64m;
client_body_buffer_size 4m;
large_client_header_buffers 4 4m;
ward on;
ward_rules_file rules/crs.conf;
server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://127.0.0.1:{up}; }}
}}
"#,
        up = upstream.port
    ));
    nginx.start(port);
    let workers = nginx.worker_pids();
    // CRS is loaded and blocking.
    assert_eq!(get(port, "/?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E").status, 403);
    let mb = 1 << 20;
    let shapes: Vec<(&str, String)> = vec![
        ("a+!", format!("{}!", "a".repeat(mb))),
        ("spaces", format!("x{}x", " ".repeat(mb))),
        ("tabs+semicolons", "\t;".repeat(mb / 2)),
        ("nested parens", format!("{}{}", "(".repeat(mb / 2), ")".repeat(mb / 2 - 1))),
        ("quotes", "'\"".repeat(mb / 2)),
        ("slashes", "/.".repeat(mb / 2)),
        ("comment opens", "/*".repeat(mb / 2)),
        ("angle brackets", "<a".repeat(mb / 2)),
        ("digits dots", "1.".repeat(mb / 2)),
        ("percent", "%u".repeat(mb / 2)),
    ];
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let json = [("Content-Type", "application/json")];
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect()
    };
    for (name, payload) in &shapes {
        let enc = encode(payload);
        for (what, r) in [
            ("form body", request(port, "POST", "/f", &form, format!("q={enc}").as_bytes())),
            (
                "json body",
                request(port, "POST", "/j", &json, serde_json::json!({ "q": payload }).to_string().as_bytes()),
            ),
            ("header", request(port, "GET", "/h", &[("X-Payload", &payload.replace(['\t'], " "))], b"")),
        ] {
            let r = r.unwrap_or_else(|e| panic!("{name} in a {what}: no answer within the harness timeout: {e}"));
            assert!(r.status < 500, "{name} in a {what}: {}", r.status);
        }
        // The query string is limited by the header buffers: 64 KiB of payload there.
        let q = encode(&payload[..payload.len().min(64 * 1024)]);
        let r =
            request(port, "GET", &format!("/q?q={q}"), &[], b"").unwrap_or_else(|e| panic!("{name} in the query: {e}"));
        assert!(r.status < 500, "{name} in the query: {}", r.status);
        assert_eq!(nginx.worker_pids(), workers, "worker alive after {name}");
    }
    assert_clean_log(&nginx);
}
