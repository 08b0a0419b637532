//! The login gate (issue #8) through real nginx: every flow and every attack, each test with
//! its own nginx (private prefix, loopback ports) in front of a recording upstream.
//!
//! Keys and certificates are made with the `openssl` CLI at test time; hostile tokens are
//! crafted by hand (HMAC via the `hmac` crate, RSA signatures via `openssl dgst`).
//! Needs `cargo build --release --workspace` first (scripts/test.sh does it).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

use common::*;

const ALICE_PASSWORD: &str = "correct horse battery staple";
const BROWSER: (&str, &str) = ("Accept", "text/html,application/xhtml+xml,*/*;q=0.8");
const GENERIC_FAILURE: &str = "Invalid username or password.";
const SQLI_FORM_FIELD: &str = "admin%27+UNION+SELECT+1%2C+sqlite_version%28%29%2C+1+--";
const WAF_RULES: &str = r#"SecRuleEngine On
SecRequestBodyAccess On
SecRule ARGS "@rx (?i)union\s+select" "id:1001,phase:2,deny,status:403,log,msg:'SQLi',t:none,t:urlDecodeUni"
"#;

// ------------------------------------------------------------------ helpers

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl CLI");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn write_mode(path: &Path, content: &[u8], mode: u32) {
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.payload` of a token.
fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()))
}

fn hmac_sign(alg: &str, key: &[u8], data: &[u8]) -> Vec<u8> {
    match alg {
        "HS384" => {
            let mut m = Hmac::<sha2::Sha384>::new_from_slice(key).unwrap();
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        "HS512" => {
            let mut m = Hmac::<sha2::Sha512>::new_from_slice(key).unwrap();
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        _ => {
            let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
    }
}

/// A token with any header, signed with HMAC (`header.alg` picks the hash; HS256 otherwise).
fn hmac_token(header: Value, claims: Value, key: &[u8]) -> String {
    let alg = header["alg"].as_str().unwrap_or("HS256").to_string();
    let input = signing_input(&header, &claims);
    let sig = hmac_sign(&alg, key, input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

fn hs256(claims: Value, key: &[u8]) -> String {
    hmac_token(json!({"alg": "HS256", "typ": "JWT"}), claims, key)
}

/// RS256 with `openssl dgst -sha256 -sign` (PKCS#1 v1.5, as JWS RS256).
fn rs256(claims: Value, private_key: &Path) -> String {
    let input = signing_input(&json!({"alg": "RS256", "typ": "JWT"}), &claims);
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(private_key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl CLI");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    format!("{input}.{}", b64(&out.stdout))
}

/// Claims of a token valid for an hour.
fn claims(sub: &str) -> Value {
    let t = now();
    json!({"sub": sub, "iat": t, "exp": t + 3600})
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `name=value` of a `Set-Cookie` value.
fn cookie_pair(set_cookie: &str) -> (&str, &str) {
    let first = set_cookie.split(';').next().unwrap_or("");
    first.split_once('=').unwrap_or((first, ""))
}

fn set_cookies(r: &Response) -> Vec<&str> {
    r.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie")).map(|(_, v)| v.as_str()).collect()
}

fn set_cookie_named<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    set_cookies(r).into_iter().find(|c| cookie_pair(c).0 == name)
}

fn attrs(set_cookie: &str) -> Vec<String> {
    set_cookie.split(';').skip(1).map(|a| a.trim().to_ascii_lowercase()).collect()
}

/// The value of the form's hidden `csrf_token` input.
fn form_csrf(html: &str) -> String {
    let at = html.find("name=\"csrf_token\" value=\"").expect("csrf_token field") + 25;
    html[at..].split('"').next().unwrap().to_string()
}

fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

// ------------------------------------------------------------------ fixture

/// nginx with the gate on for `/`, the login/logout/verify locations and a public area.
struct Gate {
    nginx: Nginx,
    upstream: Upstream,
    port: u16,
    /// The HMAC secret of `keys/hmac.key`.
    key: Vec<u8>,
}

struct Options<'a> {
    /// Extra directives at server level (before the locations).
    server: &'a str,
    /// Extra directives at http level.
    http: &'a str,
    /// Extra locations.
    locations: &'a str,
}

/// The login location of the fixture (removed where the key set cannot sign).
const LOGIN_LOCATION: &str = "location = /login { ward_auth off; ward_auth_login; }";

const PLAIN: Options<'static> = Options { server: "", http: "", locations: "" };

/// Writes keys/hmac.key (openssl rand, mode 0600) and keys/users (alice, bob).
fn write_secrets(nginx: &Nginx) -> Vec<u8> {
    let keys = nginx.path("keys");
    std::fs::create_dir_all(&keys).unwrap();
    openssl(&["rand", "-out", "hmac.key", "48"], &keys);
    std::fs::set_permissions(keys.join("hmac.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let users = format!(
        "# test users\nalice:{}\nbob:{}\n",
        ward_auth::hash_password(ALICE_PASSWORD).unwrap(),
        ward_auth::hash_password("bob's secret").unwrap()
    );
    write_mode(&keys.join("users"), users.as_bytes(), 0o600);
    std::fs::read(keys.join("hmac.key")).unwrap()
}

fn gate_conf(nginx: &Nginx, port: u16, up: u16, o: &Options<'_>) {
    nginx.write_conf(&format!(
        r#"
log_format gate '$request_uri status=$status user=$ward_auth_user role=$ward_jwt_claim_role';
access_log {prefix}/logs/gate.log gate;
{http}
server {{
    listen 127.0.0.1:{port};
    absolute_redirect off;
    large_client_header_buffers 4 32k;
    ward_auth on;
    ward_auth_key_file keys/hmac.key;
    ward_auth_users_file keys/users;
    {server}
    {LOGIN_LOCATION}
    location = /logout {{ ward_auth off; ward_auth_logout; }}
    location = /verify {{ ward_auth off; ward_auth_verify; }}
    location /public/ {{ ward_auth off; proxy_pass http://127.0.0.1:{up}; }}
    {locations}
    location / {{
        proxy_pass http://127.0.0.1:{up};
        proxy_set_header X-Ward-User $ward_auth_user;
        proxy_set_header X-Ward-Role $ward_jwt_claim_role;
    }}
}}
"#,
        prefix = nginx.prefix().display(),
        http = o.http,
        server = o.server,
        locations = o.locations.replace("@UP@", &up.to_string()),
    ));
}

fn gate_with(o: Options<'_>) -> Gate {
    let upstream = Upstream::start();
    let mut nginx = Nginx::prepare();
    let key = write_secrets(&nginx);
    nginx.write("rules/waf.conf", WAF_RULES);
    let port = free_port();
    gate_conf(&nginx, port, upstream.port, &o);
    nginx.start(port);
    Gate { nginx, upstream, port, key }
}

fn gate() -> Gate {
    gate_with(PLAIN)
}

impl Gate {
    fn get(&self, target: &str, headers: &[(&str, &str)]) -> Response {
        request(self.port, "GET", target, headers, b"").unwrap_or_else(|e| panic!("GET {target}: {e}"))
    }

    /// GET /api/data with `Authorization: Bearer <token>`.
    fn api(&self, token: &str) -> Response {
        self.get("/api/data", &[("Authorization", &bearer(token))])
    }

    fn upstream_hits(&self, needle: &str) -> usize {
        self.upstream.requests_to(needle).len()
    }

    /// Asserts that `token` is refused like an invalid token (401 `invalid_token`) and that
    /// nothing reached the upstream.
    fn assert_refused(&self, token: &str, what: &str) {
        let before = self.upstream_hits("/api/data");
        let r = self.api(token);
        assert_eq!(r.status, 401, "{what}: {}", r.body_text());
        let challenge = r.header("WWW-Authenticate").unwrap_or_default();
        assert!(challenge.starts_with("Bearer") && challenge.contains("invalid_token"), "{what}: {challenge}");
        assert_eq!(self.upstream_hits("/api/data"), before, "{what}: reached the upstream");
    }

    fn assert_accepted(&self, token: &str, what: &str) {
        let r = self.api(token);
        assert_eq!(r.status, 200, "{what}: {} {:?}", r.body_text(), r.headers);
        assert!(r.body_text().starts_with("upstream-ok"), "{what}");
    }

    /// GET /login: (CSRF cookie value, form csrf_token).
    fn login_form(&self) -> (String, String) {
        let r = self.get("/login", &[BROWSER]);
        assert_eq!(r.status, 200);
        let cookie = set_cookie_named(&r, "ward_csrf").expect("CSRF cookie");
        let value = cookie_pair(cookie).1.to_string();
        (value, form_csrf(&r.body_text()))
    }

    /// POSTs the login form with the CSRF cookie `csrf_cookie` (if any).
    fn login_post(&self, body: &str, csrf_cookie: Option<&str>) -> Response {
        let cookie = csrf_cookie.map(|c| format!("ward_csrf={c}"));
        let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded"), BROWSER];
        if let Some(c) = &cookie {
            headers.push(("Cookie", c));
        }
        request(self.port, "POST", "/login", &headers, body.as_bytes()).expect("POST /login")
    }

    /// A full login as `user`; returns the answer to the POST.
    fn login(&self, user: &str, password: &str, next: &str) -> Response {
        let (cookie, csrf) = self.login_form();
        let body = format!(
            "username={}&password={}&csrf_token={csrf}&next={}",
            form_encode(user),
            form_encode(password),
            form_encode(next)
        );
        self.login_post(&body, Some(&cookie))
    }

    /// SIGHUP, then waits until every old worker has exited (until then an old worker may
    /// still accept a connection with the old configuration).
    fn reload(&self) {
        let old = self.nginx.worker_pids();
        self.nginx.hup();
        wait_until("the old workers to exit", Duration::from_secs(15), || {
            let now = self.nginx.worker_pids();
            !now.is_empty() && now.iter().all(|p| !old.contains(p))
        });
    }

    fn key_path(&self) -> PathBuf {
        self.nginx.path("keys/hmac.key")
    }
}

// ------------------------------------------------------------------ flows

#[test]
fn browser_navigation_without_token_redirects_to_login() {
    if !have_nginx() {
        return;
    }
    let g = gate();
    let r = g.get("/app/discover?x=1", &[BROWSER]);
    assert_eq!(r.status, 302, "{}", r.body_text());
    assert_eq!(r.header("Location"), Some("/login?next=/app/discover%3Fx%3D1"));
    assert_eq!(g.upstream_hits("/app/discover"), 0);
    // Public locations (`ward_auth off`) and the login page itself need no token.
    assert_eq!(g.get("/public/logo.svg", &[BROWSER]).status, 200);
    assert_eq!(g.get("/login", &[BROWSER]).status, 200);
}

#[test]
fn api_request_without_token_gets_401_bearer() {
    if !have_nginx() {
        return;
    }
    let g = gate();
    for headers in [&[][..], &[("Accept", "application/json")][..]] {
        let r = g.get("/api/data", headers);
        assert_eq!(r.status, 401);
        assert_eq!(r.header("WWW-Authenticate"), Some("Bearer realm=\"ward\""));
        assert!(r.header("Location").is_none());
    }
    // A browser POST is not a navigation to redirect either.
    let r = request(g.port, "POST", "/api/data", &[BROWSER], b"x=1").unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(g.upstream_hits("/api/data"), 0);
}

#[test]
fn login_page_has_form_fields_and_csrf_cookie() {
    if !have_nginx() {
        return;
    }
    let g = gate();
    let r = g.get("/login?next=/app/home", &[BROWSER]);
    assert_eq!(r.status, 200);
    let html = r.body_text();
    for field in
        ["name=\"username\"", "name=\"password\"", "name=\"csrf_token\"", "type=\"password\"", "method=\"post\""]
    {
        assert!(html.contains(field), "{field} missing in\n{html}");
    }
    assert!(html.contains("name=\"next\" value=\"/app/home\""), "{html}");
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"), "no external assets");
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    assert_eq!(r.header("X-Frame-Options"), Some("DENY"));
    assert!(r.header("Content-Security-Policy").unwrap_or_default().contains("frame-ancestors 'none'"));
    let cookie = set_cookie_named(&r, "ward_csrf").expect("CSRF cookie");
    assert_eq!(cookie_pair(cookie).1, form_csrf(&html), "double-submit: cookie = form field");
    let a = attrs(cookie);
    assert!(
        a.contains(&"httponly".into()) && a.contains(&"samesite=strict".into()) && a.contains(&"path=/login".into()),
        "{cookie}"
    );
    assert!(!a.contains(&"secure".into()), "plain HTTP: no Secure ({cookie})");
    // HEAD answers the headers only; other methods are refused.
    let head = request(g.port, "HEAD", "/login", &[], b"").unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(request(g.port, "PUT", "/login", &[], b"x").unwrap().status, 405);
}

#[test]
fn handler_locations_are_never_gated() {
    if !have_nginx() {
        return;
    }
    // `ward_auth on` inherited by the login, logout and verify locations (no `off` there).
    let upstream = Upstream::start();
    let mut nginx = Nginx::prepare();
    write_secrets(&nginx);
    let port = free_port();
    gate_conf(&nginx, port, upstream.port, &PLAIN);
    let conf =
        std::fs::read_to_string(nginx.path("nginx.conf")).unwrap().replace(" ward_auth off; ward_auth_", " ward_auth_");
    assert!(!conf.contains("ward_auth off; ward_auth_"));
    nginx.write("nginx.conf", &conf);
    nginx.start(port);
    let g = Gate { nginx, upstream, port, key: vec![] };
    assert_eq!(g.get("/login", &[BROWSER]).status, 200);
    assert_eq!(g.login("alice", ALICE_PASSWORD, "/app").status, 303);
    assert_eq!(g.get("/logout", &[BROWSER]).status, 303);
    assert_eq!(g.get("/verify", &[BROWSER]).status, 401);
    assert_eq!(g.get("/app", &[BROWSER]).status, 302);
}

#[test]
fn login_post_sets_token_cookie_and_redirects() {
    if !have_nginx() {
        return;
    }
    let g = gate();
    let r = g.login("alice", ALICE_PASSWORD, "/app/discover?q=1");
    assert_eq!(r.status, 303, "{}", r.body_text());
    assert_eq!(r.header("Location"), Some("/app/discover?q=1"));
    let token_cookie = set_cookie_named(&r, "ward_token").expect("token cookie");
    let a = attrs(token_cookie);
    for want in ["httponly", "samesite=strict", "path=/"] {
        assert!(a.contains(&want.to_string()), "{want} missing: {token_cookie}");
    }
    assert!(!a.contains(&"secure".into()), "plain HTTP: no Secure ({token_cookie})");
    assert!(a.iter().any(|x| x == "max-age=28800"), "default ttl 8h: {token_cookie}");
    // The CSRF cookie is cleared, one Set-Cookie header per cookie.
    assert!(set_cookie_named(&r, "ward_csrf").unwrap().contains("Max-Age=0"));
    assert_eq!(set_cookies(&r).len(), 2);
    // The cookie opens the application, and the token carries the issued claims.
    let token = cookie_pair(token_cookie).1;
    let payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    for claim in ["sub", "iat", "exp", "jti"] {
        assert!(payload.get(claim).is_some(), "{claim} missing in {payload}");
    }
    assert_eq!(payload["sub"], "alice");
    let cookie = format!("ward_token={token}");
    let app = g.get("/app/discover", &[BROWSER, ("Cookie", &cookie)]);
    assert_eq!(app.status, 200, "{}", app.body_text());
    let seen = g.upstream.requests_to("/app/discover");
    assert_eq!(seen.len(), 1);
    assert!(seen[0].headers.contains(&("x-ward-user".into(), "alice".into())), "{:?}", seen[0].headers);
}

#[test]
fn login_over_tls_sets_secure_cookie() {
    if !have_nginx() {
        return;
    }
    let tls_port = free_port();
    let upstream = Upstream::start();
    let mut nginx = Nginx::prepare();
    write_secrets(&nginx);
    let keys = nginx.path("keys");
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "tls.key",
            "-out",
            "tls.crt",
            "-subj",
            "/CN=localhost",
            "-days",
            "2",
        ],
        &keys,
    );
    let port = free_port();
    let server =
        format!("listen 127.0.0.1:{tls_port} ssl;\n ssl_certificate keys/tls.crt;\n ssl_certificate_key keys/tls.key;");
    gate_conf(&nginx, port, upstream.port, &Options { server: &server, ..PLAIN });
    nginx.start(port);

    let curl = |args: &[&str]| -> Response {
        let out = Command::new("curl")
            .args(["-sk", "-i", "--http1.1", "--max-time", "20"])
            .args(args)
            .output()
            .expect("curl");
        assert!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        parse(&out.stdout)
    };
    let base = format!("https://127.0.0.1:{tls_port}");
    let page = curl(&[&format!("{base}/login")]);
    assert_eq!(page.status, 200);
    let csrf_cookie = set_cookie_named(&page, "ward_csrf").unwrap().to_string();
    assert!(attrs(&csrf_cookie).contains(&"secure".into()), "{csrf_cookie}");
    let csrf = cookie_pair(&csrf_cookie).1.to_string();
    let body = format!("username=alice&password={}&csrf_token={csrf}&next=/app", form_encode(ALICE_PASSWORD));
    let r = curl(&["-H", &format!("Cookie: ward_csrf={csrf}"), "--data", &body, &format!("{base}/login")]);
    assert_eq!(r.status, 303, "{}", r.body_text());
    let token_cookie = set_cookie_named(&r, "ward_token").expect("token cookie");
    let a = attrs(token_cookie);
    for want in ["secure", "httponly", "samesite=strict", "path=/"] {
        assert!(a.contains(&want.to_string()), "{want} missing: {token_cookie}");
    }
    // The same server over plain HTTP: no Secure.
    let g = Gate { nginx, upstream, port, key: vec![] };
    let plain = g.login("alice", ALICE_PASSWORD, "/");
    assert!(!attrs(set_cookie_named(&plain, "ward_token").unwrap()).contains(&"secure".into()));
}

/// Parses curl's `-i` output (raw head and body).
fn parse(raw: &[u8]) -> Response {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("HTTP head");
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap();
    let headers =
        lines.filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))).collect();
    Response { status, headers, body: raw[end + 4..].to_vec() }
}

#[test]
fn token_cookie_and_bearer_header_both_work() {
    if !have_nginx() {
        return;
    }
    let g = gate();
    let token = hs256(json!({"sub": "alice", "exp": now() + 600, "role": "admin"}), &g.key);
    g.assert_accepted(&token, "Bearer");
    let cookie = format!("theme=dark; ward_token={token}");
    let r = g.get("/api/data", &[("Cookie", &cookie)]);
    assert_eq!(r.status, 200, "cookie: {}", r.body_text());
    // The scheme name is case-insensitive (RFC 7235).
    let r = g.get("/api/data", &[("Authorization", &format!("bearer {token}"))]);
    assert_eq!(r.status, 200);
    // $ward_auth_user and $ward_jwt_claim_role reach the upstream and the access log.
    let seen = g.upstream.requests_to("/api/data");
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert!(s.headers.contains(&("x-ward-user".into(), "alice".into())), "{:?}", s.headers);
        assert!(s.headers.contains(&("x-ward-role".into(), "admin".into())), "{:?}", s.headers);
    }
    wait_until("access log", Duration::from_secs(5), || {
        std::fs::read_to_string(g.nginx.path("logs/gate.log"))
            .unwrap_or_default()
            .contains("/api/data status=200 user=alice role=admin")
    });
}

#[test]
fn required_claim_missing_gets_403() {
    if !have_nginx() {
        return;
    }
    let g = gate_with(Options {
        locations: "location /admin/ { ward_auth_require_claim role admin; ward_auth_require_claim team ops; \
                    proxy_pass http://127.0.0.1:@UP@; }",
        ..PLAIN
    });
    let t = now() + 600;
    let cases = [
        (json!({"sub": "alice", "exp": t}), 403),
        (json!({"sub": "alice", "exp": t, "role": "viewer", "team": "ops"}), 403),
        (json!({"sub": "alice", "exp": t, "role": "admin"}), 403),
        // Arrays match when they contain the value.
        (json!({"sub": "alice", "exp": t, "role": ["viewer", "admin"], "team": "ops"}), 200),
    ];
    for (claims, want) in cases {
        let token = hs256(claims.clone(), &g.key);
        // A browser too gets 403, not a redirect: logging in again would not help.
        let r = g.get("/admin/x", &[BROWSER, ("Authorization", &bearer(&token))]);
        assert_eq!(r.status, want, "{claims}");
        assert!(r.header("Location").is_none());
        assert_eq!(g.upstream_hits("/admin/x"), usize::from(want == 200), "{claims}");
    }
    // Elsewhere the same token without the claim is fine.
    g.assert_accepted(&hs256(json!({"sub": "alice", "exp": t}), &g.key), "no requirement at /");
}

// ------------------------------------------------------------------ token attacks

#[test]
fn alg_none_refused() {
    if !have_nginx() {
        return;
    }
    let g = gate();
    let c = claims("alice");
    for alg in ["none", "None", "NONE"] {
        let unsigned = format!("{}.", signing_input(&json!({"alg": alg, "typ": "JWT"}), &c));
        g.assert_refused(&unsigned, alg);
        // A "none" header with a valid HMAC signature appended is refused too.
        let signed = hmac_token(json!({"alg": alg}), c.clone(), &g.key);
        g.assert_refused(&signed, &format!("{alg} with signature"));
    }
    g.assert_accepted(&hs256(c, &g.key), "control");
}

#[test]
fn algorithm_confusion_hs256_with_public_key_refused() {
    if !have_nginx() {
        return;
    }
    for (kind, genkey) in [
        ("RSA", &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "priv.pem"][..]),
        ("EC", &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "priv.pem"][..]),
    ] {
        let upstream = Upstream::start();
        let mut nginx = Nginx::prepare();
        write_secrets(&nginx);
        let keys = nginx.path("keys");
        openssl(genkey, &keys);
        openssl(&["pkey", "-in", "priv.pem", "-pubout", "-out", "pub.pem"], &keys);
        let port = free_port();
        gate_conf(&nginx, port, upstream.port, &Options { server: "", http: "", locations: "" });
        // Verify-only key set: the public key.
        let conf = std::fs::read_to_string(nginx.path("nginx.conf"))
            .unwrap()
            .replace("keys/hmac.key", "keys/pub.pem")
            .replace(LOGIN_LOCATION, "");
        nginx.write("nginx.conf", &conf);
        nginx.start(port);
        let g = Gate { nginx, upstream, port, key: vec![] };
        let public_pem = std::fs::read(keys.join("pub.pem")).unwrap();
        for alg in ["HS256", "HS384", "HS512"] {
            let forged = hmac_token(json!({"alg": alg, "typ": "JWT"}), claims("alice"), &public_pem);
            g.assert_refused(&forged, &format!("{alg} signed with the {kind} public key"));
        }
        if kind == "RSA" {
            g.assert_accepted(&rs256(claims("alice"), &keys.join("priv.pem")), "RS256 control");
        }
    }
}

#[test]
fn key_set_not_allowing_alg_refused() {
    if !have_nginx() {
        return;
    }
    let g = gate();
    let keys = g.nginx.path("keys");
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "rsa.pem"], &keys);
    // The key set is an HMAC secret: an RS256 token (validly signed by someone's RSA key) is
    // refused before any signature check.
    g.assert_refused(&rs256(claims("alice"), &keys.join("rsa.pem")), "RS256 against an HMAC key");
    // Names of algorithms the key does not support, and unknown names.
    for alg in ["ES256", "PS256", "EdDSA", "HS1", "hs256"] {
        let t = hmac_token(json!({"alg": alg, "typ": "JWT"}), claims("alice"), &g.key);
        g.assert_refused(&t, alg);
    }
    // Every HMAC strength the secret supports works.
    for alg in ["HS256", "HS384", "HS512"] {
        g.assert_accepted(&hmac_token(json!({"alg": alg}), claims("alice"), &g.key), alg);
    }
}

#[test]
fn tampered_payload_refused() {
    if !have_nginx() {
        return;
    }
    let g = gate();
    let token = hs256(json!({"sub": "bob", "exp": now() + 600, "role": "viewer"}), &g.key);
    let parts: Vec<&str> = token.split('.').collect();
    let evil = b64(json!({"sub": "bob", "exp": now() + 600, "role": "admin"}).to_string().as_bytes());
    g.assert_refused(&format!("{}.{evil}.{}", parts[0], parts[2]), "role changed");
    let other = b64(json!({"sub": "alice", "exp": now() + 600, "role": "viewer"}).to_string().as_bytes());
    g.assert_refused(&format!("{}.{other}.{}", parts[0], parts[2]), "sub changed");
    g.assert_accepted(&token, "control");
}

#[test]
fn tampered_signature_refused() {
    if !have_nginx() {
        return;
    }
    let g = gate();
    let token = hs256(claims("alice"), &g.key);
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
    raw[0] ^= 1;
    g.assert_refused(&format!("{input}.{}", b64(&raw)), "one bit flipped");
    g.assert_refused(&format!("{input}.{}", b64(&raw[..16])), "truncated");
    g.assert_refused(&format!("{input}."), "empty signature");
    g.assert_refused(&hs256(claims("alice"), b"another secret, 32 bytes or more!!"), "other key");
}

#[test]
fn expired_token_refused() {
    if !have_nginx() {
        return;
    }
    let g = gate(); // default leeway 30s
    let t = now();
    g.assert_refused(&hs256(json!({"sub": "alice", "exp": t - 3600}), &g.key), "expired an hour ago");
    g.assert_refused(&hs256(json!({"sub": "alice", "exp": t - 120}), &g.key), "expired beyond the leeway");
    g.assert_accepted(&hs256(json!({"sub": "alice", "exp": t - 5}), &g.key), "expired within the 30s leeway");
    g.assert_refused(&hs256(json!({"sub": "alice"}), &g.key), "no exp at all");
    g.assert_refused(&hs256(json!({"sub": "alice", "exp": "never"}), &g.key), "exp not a number");
}

#[test]
fn nbf_in_future_refused_with_leeway() {
    if !have_nginx() {
        return;
    }
    let g = gate_with(Options { server: "ward_auth_leeway 60s;", ..PLAIN });
    let t = now();
    g.assert_refused(&hs256(json!({"sub": "alice", "exp": t + 3600, "nbf": t + 600}), &g.key), "nbf in 10 minutes");
    g.assert_accepted(&hs256(json!({"sub": "alice", "exp": t + 3600, "nbf": t + 20}), &g.key), "nbf within the leeway");
    g.assert_accepted(&hs256(json!({"sub": "alice", "exp": t + 3600, "nbf": t - 10}), &g.key), "nbf past");
}

#[test]
fn wrong_issuer_or_audience_refused() {
    if !have_nginx() {
        return;
    }
    let g = gate_with(Options { server: "ward_auth_issuer https://sso.example; ward_auth_audience kibana;", ..PLAIN });
    let exp = now() + 600;
    let ok = json!({"sub": "alice", "exp": exp, "iss": "https://sso.example", "aud": "kibana"});
    g.assert_accepted(&hs256(ok, &g.key), "right iss and aud");
    g.assert_accepted(
        &hs256(json!({"sub": "alice", "exp": exp, "iss": "https://sso.example", "aud": ["grafana", "kibana"]}), &g.key),
        "aud list",
    );
    let bad = [
        (json!({"sub": "alice", "exp": exp, "iss": "https://evil.example", "aud": "kibana"}), "wrong iss"),
        (json!({"sub": "alice", "exp": exp, "aud": "kibana"}), "missing iss"),
        (json!({"sub": "alice", "exp": exp, "iss": "https://sso.example", "aud": "grafana"}), "wrong aud"),
        (json!({"sub": "alice", "exp": exp, "iss": "https://sso.example"}), "missing aud"),
    ];
    for (c, what) in bad {
        g.assert_refused(&hs256(c, &g.key), what);
    }
    // Tokens the built-in login issues carry both.
    let r = g.login("alice", ALICE_PASSWORD, "/");
    let token = cookie_pair(set_cookie_named(&r, "ward_token").unwrap()).1.to_string();
    g.assert_accepted(&token, "issued by the login");
}

#[test]
fn unknown_kid_refused() {
    if !have_nginx() {
        return;
    }
    let g = gate();
    // Replace the key file with a JWK Set of two HMAC keys with kids, and reload.
    let (k1, k2) = (b"first secret of at least 32 bytes!!".to_vec(), b"second secret of at least 32 bytes!".to_vec());
    let jwks = json!({"keys": [
        {"kty": "oct", "kid": "k1", "alg": "HS256", "k": b64(&k1)},
        {"kty": "oct", "kid": "k2", "alg": "HS256", "k": b64(&k2)},
    ]});
    write_mode(&g.nginx.path("keys/jwks.json"), jwks.to_string().as_bytes(), 0o600);
    let conf = std::fs::read_to_string(g.nginx.path("nginx.conf")).unwrap().replace("keys/hmac.key", "keys/jwks.json");
    g.nginx.write("nginx.conf", &conf);
    g.reload();
    let with_kid = |kid: &str, key: &[u8]| hmac_token(json!({"alg": "HS256", "kid": kid}), claims("alice"), key);
    wait_until("the new key set", Duration::from_secs(10), || g.api(&with_kid("k1", &k1)).status == 200);
    g.assert_accepted(&with_kid("k2", &k2), "kid k2");
    g.assert_refused(&with_kid("k3", &k1), "unknown kid");
    g.assert_refused(&with_kid("k2", &k1), "kid k2 signed with k1");
    g.assert_refused(&with_kid("", &k1), "empty kid");
    // The built-in login signs with the set's first oct key and names it.
    let r = g.login("alice", ALICE_PASSWORD, "/");
    let token = cookie_pair(set_cookie_named(&r, "ward_token").expect("the login issues a token")).1.to_string();
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!((header["kid"].as_str(), header["alg"].as_str()), (Some("k1"), Some("HS256")), "{header}");
    g.assert_accepted(&token, "issued by the login with k1");
}

#[test]
fn malformed_tokens_refused() {
    if !have_nginx() {
        return;
    }
    let g = gate();
    let good = hs256(claims("alice"), &g.key);
    let (h, rest) = good.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    let not_json = format!("{}.{p}", b64(b"{not json"));
    let not_json = format!("{not_json}.{}", b64(&hmac_sign("HS256", &g.key, not_json.as_bytes())));
    let payload_not_json = format!("{h}.{}", b64(b"[1,2"));
    let payload_not_json =
        format!("{payload_not_json}.{}", b64(&hmac_sign("HS256", &g.key, payload_not_json.as_bytes())));
    let cases = [
        "garbage".to_string(),
        "a.b".to_string(),
        format!("{h}.{p}"),
        format!("{h}.{p}.{s}.x"),
        format!("{h}=.{p}.{s}"),
        format!("{h}.{p}+.{s}"),
        format!("{}.{p}.{s}", h.replace(|c: char| c.is_ascii_alphabetic(), "*")),
        format!("..{s}"),
        not_json,
        payload_not_json,
    ];
    for t in &cases {
        g.assert_refused(t, t);
    }
    // A token that is not even a header value nginx accepts is refused the same way.
    let r = g.get("/api/data", &[("Authorization", "Bearer")]);
    assert_eq!(r.status, 401);
    g.assert_accepted(&good, "control");
}

#[test]
fn oversized_token_refused() {
    if !have_nginx() {
        return;
    }
    let g = gate(); // large_client_header_buffers 4 32k: the 16 KB header reaches Ward
    let padding = "x".repeat(16 * 1024);
    let big = hs256(json!({"sub": "alice", "exp": now() + 600, "pad": padding}), &g.key);
    assert!(big.len() > 16 * 1024);
    g.assert_refused(&big, "16 KB token");
    let cookie = format!("ward_token={big}");
    let r = g.get("/api/data", &[("Cookie", &cookie)]);
    assert_eq!(r.status, 401);
    assert_eq!(g.upstream_hits("/api/data"), 0);
}

#[test]
fn token_in_query_string_ignored() {
    if !have_nginx() {
        return;
    }
    let g = gate();
    let token = hs256(claims("alice"), &g.key);
    for q in ["token", "access_token", "ward_token", "jwt", "authorization"] {
        let r = g.get(&format!("/api/data?{q}={token}"), &[]);
        assert_eq!(r.status, 401, "?{q}=");
        let r = g.get(&format!("/app?{q}={token}"), &[BROWSER]);
        assert_eq!(r.status, 302, "?{q}= (browser)");
    }
    assert_eq!(g.upstream_hits("/api/data"), 0);
}

#[test]
fn logout_clears_cookie() {
    if !have_nginx() {
        return;
    }
    let g = gate();
    let r = g.login("alice", ALICE_PASSWORD, "/");
    let set = set_cookie_named(&r, "ward_token").unwrap();
    let cookie = format!("ward_token={}", cookie_pair(set).1);
    assert_eq!(g.get("/app", &[BROWSER, ("Cookie", &cookie)]).status, 200);

    let out = g.get("/logout", &[BROWSER, ("Cookie", &cookie)]);
    assert_eq!(out.status, 303);
    assert_eq!(out.header("Location"), Some("/login"));
    let clear = set_cookie_named(&out, "ward_token").expect("clearing Set-Cookie");
    assert_eq!(cookie_pair(clear).1, "", "{clear}");
    let a = attrs(clear);
    // Same name and path as the login cookie, so the browser replaces it and drops it.
    assert!(a.contains(&"path=/".into()) && a.contains(&"max-age=0".into()), "{clear}");
    assert!(a.iter().any(|x| x.starts_with("expires=thu, 01 jan 1970")), "{clear}");
    // The browser now sends the cleared (empty) cookie: back to the login page.
    let after = g.get("/app", &[BROWSER, ("Cookie", "ward_token=")]);
    assert_eq!(after.status, 302);
    assert_eq!(after.header("Location"), Some("/login?next=/app"));
}

#[test]
fn wrong_password_and_unknown_user_look_the_same() {
    if !have_nginx() {
        return;
    }
    let g = gate();
    let (cookie, csrf) = g.login_form();
    let attempt = |user: &str, password: &str| -> (Response, Duration) {
        let body = format!("username={user}&password={}&csrf_token={csrf}&next=/", form_encode(password));
        let t = Instant::now();
        let r = g.login_post(&body, Some(&cookie));
        (r, t.elapsed())
    };
    let normalize = |r: &Response| {
        let html = r.body_text();
        html.replace(&form_csrf(&html), "CSRF")
    };
    let (wrong, _) = attempt("alice", "wrong password");
    let (unknown, _) = attempt("mallory", "wrong password");
    for r in [&wrong, &unknown] {
        assert_eq!(r.status, 401);
        assert!(r.body_text().contains(GENERIC_FAILURE), "{}", r.body_text());
        assert!(set_cookie_named(r, "ward_token").is_none());
        assert!(r.body_text().contains("name=\"username\""), "the form again");
    }
    assert_eq!(normalize(&wrong), normalize(&unknown), "same page");
    let names = |r: &Response| {
        r.headers.iter().map(|(k, _)| k.to_ascii_lowercase()).filter(|k| k != "date").collect::<Vec<_>>()
    };
    assert_eq!(names(&wrong), names(&unknown), "same headers");

    // Same work: the unknown user costs a full (dummy) hash check. Interleaved samples, the
    // fastest of each kept (noise only adds time); a skipped check would be ~100x faster.
    let (mut w, mut u) = (Duration::MAX, Duration::MAX);
    for _ in 0..7 {
        w = w.min(attempt("alice", "wrong password").1);
        u = u.min(attempt("nobody-here", "wrong password").1);
    }
    assert!(u * 3 > w && w * 3 > u, "wrong password {w:?} vs unknown user {u:?}");
}

#[test]
fn csrf_missing_or_wrong_refused() {
    if !have_nginx() {
        return;
    }
    let g = gate();
    let (cookie, csrf) = g.login_form();
    let (other_cookie, _) = g.login_form();
    let creds = format!("username=alice&password={}", form_encode(ALICE_PASSWORD));
    let altered = format!("{}{}", if csrf.starts_with('A') { 'B' } else { 'A' }, &csrf[1..]);
    let cases: [(String, Option<&str>, &str); 5] = [
        (format!("{creds}&next=/"), Some(&cookie), "no form token"),
        (format!("{creds}&csrf_token={csrf}"), None, "no CSRF cookie (cross-site post)"),
        (format!("{creds}&csrf_token={csrf}"), Some(&other_cookie), "cookie of another form"),
        (format!("{creds}&csrf_token={altered}"), Some(&cookie), "altered token"),
        (format!("{creds}&csrf_token="), Some(""), "both empty"),
    ];
    for (body, c, what) in cases {
        let r = g.login_post(&body, c);
        assert_eq!(r.status, 403, "{what}");
        assert!(set_cookie_named(&r, "ward_token").is_none(), "{what}");
        assert!(r.body_text().contains("name=\"username\""), "{what}: the form again");
    }
    // The same form with the right pair logs in.
    let ok = g.login_post(&format!("{creds}&csrf_token={csrf}"), Some(&cookie));
    assert_eq!(ok.status, 303);
}

#[test]
fn open_redirects_land_on_root() {
    if !have_nginx() {
        return;
    }
    let g = gate();
    let attempts = [
        "//evil.com",
        "///evil.com",
        "https://evil.com/",
        "http:evil.com",
        "/\\evil.com",
        "\\\\evil.com",
        "/%2F%2Fevil.com",
        "/%252F%252Fevil.com",
        "%2F%2Fevil.com",
        "/%5Cevil.com",
        "/\t/evil.com",
        "javascript:alert(1)",
        "/a\r\nSet-Cookie: x=1",
    ];
    for next in attempts {
        let r = g.login("alice", ALICE_PASSWORD, next);
        assert_eq!(r.status, 303, "{next:?}");
        assert_eq!(r.header("Location"), Some("/"), "{next:?}");
    }
    // The login page does not echo them into its form either.
    let r = g.get("/login?next=//evil.com", &[BROWSER]);
    assert!(r.body_text().contains("name=\"next\" value=\"/\""));
    // A same-site path is kept.
    assert_eq!(g.login("alice", ALICE_PASSWORD, "/app/x?y=1#z").header("Location"), Some("/app/x?y=1#z"));
}

// ------------------------------------------------------------------ configuration

#[test]
fn world_readable_key_file_fails_config_test() {
    if !have_nginx() {
        return;
    }
    let nginx = Nginx::prepare();
    write_secrets(&nginx);
    let key = nginx.path("keys/hmac.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    gate_conf(&nginx, free_port(), 1, &PLAIN);
    let out = nginx.test_config();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "nginx -t passed:\n{err}");
    let want =
        format!("{}: the key file holds a secret (HMAC secret or private key) but is world-readable", key.display());
    assert!(err.contains(&want) && err.contains("chmod 600"), "{err}");
    // Fixed permissions: the same configuration passes.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = nginx.test_config();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn config_errors_fail_nginx_t_with_position() {
    if !have_nginx() {
        return;
    }
    // (server-level directive, expected message, reported at the directive's line)
    let cases: [(&str, &str, bool); 9] = [
        ("ward_auth_token_ttl 8x;", "\"ward_auth_token_ttl\": \"8x\" is not a valid time", true),
        ("ward_auth_leeway 2d;", "\"ward_auth_leeway\" must be at most 1d", true),
        ("ward_auth_cookie_secure yes;", "\"yes\" is not one of on, off, auto", true),
        ("ward_auth_cookie \"a b\";", "\"ward_auth_cookie\": \"a b\" is not a valid cookie name", true),
        ("ward_auth maybe;", "invalid value \"maybe\" in \"ward_auth\" directive", true),
        ("ward_auth_require_claim role;", "invalid number of arguments in \"ward_auth_require_claim\"", true),
        ("ward_auth_verify;", "\"ward_auth_verify\" directive is not allowed here", true),
        ("ward_auth_token_ttl 1h; ward_auth_token_ttl 2h;", "\"ward_auth_token_ttl\" directive is duplicate", true),
        ("ward_auth_key_file keys/missing.key;", "keys/missing.key: No such file or directory", false),
    ];
    for (directive, expected, positioned) in cases {
        let nginx = Nginx::prepare();
        write_secrets(&nginx);
        gate_conf(&nginx, free_port(), 1, &PLAIN);
        // Put the directive on its own line at server level (replacing the key file line
        // for the key file case).
        let conf = std::fs::read_to_string(nginx.path("nginx.conf")).unwrap();
        let conf = if directive.starts_with("ward_auth_key_file") {
            conf.replace("ward_auth_key_file keys/hmac.key;", directive)
        } else {
            conf.replace("absolute_redirect off;", &format!("absolute_redirect off;\n{directive}"))
        };
        nginx.write("nginx.conf", &conf);
        let line = conf.lines().position(|l| l.trim() == directive).unwrap() + 1;
        let out = nginx.test_config();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{directive}: nginx -t passed");
        assert!(err.contains(expected), "{directive}: want {expected:?} in\n{err}");
        if positioned {
            assert!(err.contains(&format!("nginx.conf:{line}")), "{directive}: want line {line} in\n{err}");
        }
    }
    // Combinations checked at load: no key file, login without users file.
    let nginx = Nginx::prepare();
    write_secrets(&nginx);
    gate_conf(&nginx, free_port(), 1, &PLAIN);
    let conf = std::fs::read_to_string(nginx.path("nginx.conf")).unwrap();
    nginx.write("nginx.conf", &conf.replace("ward_auth_key_file keys/hmac.key;", ""));
    let err = String::from_utf8_lossy(&nginx.test_config().stderr).into_owned();
    assert!(err.contains("ward_auth_key_file is not set"), "{err}");
    nginx.write("nginx.conf", &conf.replace("ward_auth_users_file keys/users;", ""));
    let err = String::from_utf8_lossy(&nginx.test_config().stderr).into_owned();
    assert!(err.contains("ward_auth_login needs ward_auth_users_file") && err.contains("location \"/login\""), "{err}");
}

#[test]
fn key_rotation_needs_only_reload() {
    if !have_nginx() {
        return;
    }
    let g = gate();
    let old = hs256(claims("alice"), &g.key);
    g.assert_accepted(&old, "old key before rotation");
    openssl(&["rand", "-out", "hmac.key.new", "48"], &g.nginx.path("keys"));
    let new_key = std::fs::read(g.nginx.path("keys/hmac.key.new")).unwrap();
    write_mode(&g.key_path(), &new_key, 0o600);
    let new = hs256(claims("alice"), &new_key);
    assert_eq!(g.api(&new).status, 401, "workers keep the key they loaded until the reload");
    g.reload();
    wait_until("the rotated key", Duration::from_secs(10), || g.api(&new).status == 200);
    g.assert_refused(&old, "old key after rotation");
}

#[test]
fn rs256_token_from_external_issuer_accepted() {
    if !have_nginx() {
        return;
    }
    let upstream = Upstream::start();
    let mut nginx = Nginx::prepare();
    write_secrets(&nginx);
    let keys = nginx.path("keys");
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "idp.pem"], &keys);
    openssl(&["pkey", "-in", "idp.pem", "-pubout", "-out", "idp.pub"], &keys);
    // A public key may be world-readable: it is not a secret.
    std::fs::set_permissions(keys.join("idp.pub"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let port = free_port();
    gate_conf(&nginx, port, upstream.port, &PLAIN);
    let conf = std::fs::read_to_string(nginx.path("nginx.conf"))
        .unwrap()
        .replace("keys/hmac.key", "keys/idp.pub")
        .replace(LOGIN_LOCATION, "");
    nginx.write("nginx.conf", &conf);
    nginx.start(port);
    let g = Gate { nginx, upstream, port, key: vec![] };
    g.assert_accepted(&rs256(json!({"sub": "svc", "exp": now() + 600}), &keys.join("idp.pem")), "RS256 from the IdP");
    g.assert_refused(&rs256(json!({"sub": "svc", "exp": now() - 600}), &keys.join("idp.pem")), "expired RS256");
}

// ------------------------------------------------------------------ composition

#[test]
fn auth_request_with_ward_auth_verify() {
    if !have_nginx() {
        return;
    }
    let g = gate_with(Options {
        locations: "location = /_ward_verify { internal; ward_auth off; ward_auth_verify; }\n\
                    location /classic/ { ward_auth off; auth_request /_ward_verify; \
                    proxy_pass http://127.0.0.1:@UP@; proxy_set_header X-Ward-User $ward_auth_user; }\n\
                    location = /verify-admin { ward_auth off; ward_auth_require_claim role admin; \
                    ward_auth_verify; }",
        ..PLAIN
    });

    let token = hs256(claims("alice"), &g.key);
    // Directly: 204 / 401.
    let ok = g.get("/verify", &[("Authorization", &bearer(&token))]);
    assert_eq!(ok.status, 204);
    assert!(ok.body.is_empty());
    let no = g.get("/verify", &[BROWSER]);
    assert_eq!(no.status, 401);
    assert_eq!(no.header("WWW-Authenticate"), Some("Bearer realm=\"ward\""));
    let bad =
        g.get("/verify", &[("Authorization", &bearer(&hs256(claims("alice"), b"not the key, but 32 bytes long!!")))]);
    assert_eq!(bad.status, 401);
    assert!(bad.header("WWW-Authenticate").unwrap_or_default().contains("invalid_token"));

    // Through nginx's auth_request: 2xx lets the request through, 401 is passed on.
    let r = g.get("/classic/x", &[("Cookie", &format!("ward_token={token}"))]);
    assert_eq!(r.status, 200, "{}", r.body_text());
    let seen = g.upstream.requests_to("/classic/x");
    assert_eq!(seen.len(), 1);
    assert!(seen[0].headers.contains(&("x-ward-user".into(), "alice".into())), "{:?}", seen[0].headers);
    let r = g.get("/classic/x", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("WWW-Authenticate"), Some("Bearer realm=\"ward\""));
    assert_eq!(g.upstream.requests_to("/classic/x").len(), 1);

    // A valid token without a required claim: 403 (auth_request passes it on as 403).
    let r = g.get("/verify-admin", &[("Authorization", &bearer(&token))]);
    assert_eq!(r.status, 403);
    let admin = hs256(json!({"sub": "alice", "exp": now() + 600, "role": "admin"}), &g.key);
    assert_eq!(g.get("/verify-admin", &[("Authorization", &bearer(&admin))]).status, 204);
}

fn waf_gate() -> Gate {
    gate_with(Options { http: "client_max_body_size 1m;", server: "ward on; ward_rules_file rules/waf.conf;", ..PLAIN })
}

#[test]
fn waf_blocks_sqli_in_login_post() {
    if !have_nginx() {
        return;
    }
    let g = waf_gate();
    let (cookie, csrf) = g.login_form();
    let body = format!("username={SQLI_FORM_FIELD}&password=x&csrf_token={csrf}");
    let r = g.login_post(&body, Some(&cookie));
    assert_eq!(r.status, 403, "{}", r.body_text());
    assert!(set_cookie_named(&r, "ward_token").is_none());
    assert!(!g
        .nginx
        .log_lines_with(&["ModSecurity: Access denied with code 403 (phase 2)", "[id \"1001\"]"])
        .is_empty());
    // The WAF read the body first; the login handler still gets it.
    let ok = g.login("alice", ALICE_PASSWORD, "/app");
    assert_eq!(ok.status, 303, "{}", ok.body_text());
    assert!(set_cookie_named(&ok, "ward_token").is_some());
}

#[test]
fn token_checked_before_waf_reads_body() {
    if !have_nginx() {
        return;
    }
    let g = waf_gate();
    // A full SQLi body without a token: the gate answers (401), the WAF never ran.
    let body = format!("q={SQLI_FORM_FIELD}");
    let r = request(
        g.port,
        "POST",
        "/api/search",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 401);
    assert!(g.nginx.log_lines_with(&["ModSecurity"]).is_empty(), "{}", g.nginx.error_log());

    // A body announced but never sent: the gate answers at once, without waiting for it.
    let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t = Instant::now();
    write!(
        s,
        "POST /api/upload HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 500000\r\n\r\nq=partial"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).expect("an answer before the body is complete");
        assert!(n > 0, "connection closed without an answer");
        head.extend_from_slice(&buf[..n]);
    }
    assert!(head.starts_with(b"HTTP/1.1 401"), "{}", String::from_utf8_lossy(&head));
    assert!(t.elapsed() < Duration::from_secs(3));
    // With a valid token the WAF does inspect the body.
    let token = hs256(claims("alice"), &g.key);
    let r = request(
        g.port,
        "POST",
        "/api/search",
        &[("Content-Type", "application/x-www-form-urlencoded"), ("Authorization", &bearer(&token))],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(g.upstream_hits("/api/"), 0);
}

#[test]
fn failed_logins_logged_with_client_address() {
    if !have_nginx() {
        return;
    }
    let g = gate_with(Options { server: "set_real_ip_from 127.0.0.1; real_ip_header X-Forwarded-For;", ..PLAIN });
    let (cookie, csrf) = g.login_form();
    let body = format!("username=mallory%22%0aforged&password=guess&csrf_token={csrf}");
    let c = format!("ward_csrf={cookie}");
    let r = request(
        g.port,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded"), ("Cookie", &c), ("X-Forwarded-For", "203.0.113.9")],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 401);
    let lines = g.nginx.log_lines_with(&[
        "[warn]",
        "ward_auth: failed login for user",
        "from 203.0.113.9",
        "invalid username or password",
    ]);
    assert_eq!(lines.len(), 1, "{}", g.nginx.error_log());
    // The submitted name is escaped: no forged log line.
    assert!(lines[0].contains("mallory\\\"\\nforged"), "{}", lines[0]);
    assert!(!g.nginx.error_log().lines().any(|l| l.starts_with("forged")));
    // CSRF failures are logged too.
    let r = g.login_post("username=alice&password=x&csrf_token=nope", None);
    assert_eq!(r.status, 403);
    assert_eq!(g.nginx.log_lines_with(&["[warn]", "failed login for user \"alice\" from 127.0.0.1", "CSRF"]).len(), 1);
}

// ------------------------------------------------------------------ ward tool

fn ward_bin() -> PathBuf {
    let so = module_path();
    let bin = so.parent().unwrap().join("ward");
    assert!(bin.exists(), "{} not found: build with `cargo build --release --workspace`", bin.display());
    bin
}

#[test]
fn ward_tool_keygen_passwd_token_work_with_nginx() {
    if !have_nginx() {
        return;
    }
    let ward = ward_bin();
    let upstream = Upstream::start();
    let mut nginx = Nginx::prepare();
    let keys = nginx.path("keys");
    std::fs::create_dir_all(&keys).unwrap();
    // keygen: mode 0600, refuses to overwrite without --force.
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(&ward)
            .args(args)
            .current_dir(&keys)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The tool may exit (refusing its arguments) before reading stdin.
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().unwrap()
    };
    assert!(run(&["keygen", "hmac.key"], "").status.success());
    let meta = std::fs::metadata(keys.join("hmac.key")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(meta.len() >= 32);
    let first = std::fs::read(keys.join("hmac.key")).unwrap();
    let again = run(&["keygen", "hmac.key"], "");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(std::fs::read(keys.join("hmac.key")).unwrap(), first);
    assert!(run(&["keygen", "--force", "hmac.key"], "").status.success());
    assert_ne!(std::fs::read(keys.join("hmac.key")).unwrap(), first);
    // passwd from stdin (not a terminal): adds, then updates.
    assert!(run(&["passwd", "users", "carol"], "first password\n").status.success());
    assert!(run(&["passwd", "users", "carol"], "second password\n").status.success());
    assert!(run(&["passwd", "users", "dave"], "dave's password\n").status.success());
    let users = std::fs::read_to_string(keys.join("users")).unwrap();
    assert_eq!(users.lines().filter(|l| l.starts_with("carol:$argon2id$")).count(), 1, "{users}");
    assert!(!run(&["passwd", "users", "bad:name"], "x\n").status.success());
    assert!(!run(&["passwd", "users", "erin"], "\n").status.success(), "empty password");
    // token: accepted by nginx with the claims given.
    let out = run(&["token", "--key-file", "hmac.key", "--sub", "carol", "--ttl", "10m", "--claim", "role=admin"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let port = free_port();
    gate_conf(&nginx, port, upstream.port, &PLAIN);
    nginx.start(port);
    let g = Gate { nginx, upstream, port, key: vec![] };
    g.assert_accepted(&token, "ward token");
    let seen = g.upstream.requests_to("/api/data");
    assert!(seen[0].headers.contains(&("x-ward-role".into(), "admin".into())), "{:?}", seen[0].headers);
    // The updated password logs in; the old one does not.
    assert_eq!(g.login("carol", "second password", "/").status, 303);
    assert_eq!(g.login("carol", "first password", "/").status, 401);
}

#[test]
fn kibana_example_config_passes_nginx_t_and_gates() {
    if !have_nginx() {
        return;
    }
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("nginx-conf/kibana-gate-standalone.conf");
    let text = std::fs::read_to_string(&example).unwrap();
    let upstream = Upstream::start();
    let mut nginx = Nginx::prepare();
    write_secrets(&nginx);
    let port = free_port();
    let prefix = nginx.prefix().display().to_string();
    // The example is an http-level snippet (conf.d); point it at this test's files and ports.
    let snippet = text
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
        .replace("/etc/ward/", &format!("{prefix}/keys/"))
        .replace("/var/log/nginx/", &format!("{prefix}/logs/"))
        .replace("127.0.0.1:5601", &format!("127.0.0.1:{}", upstream.port));
    nginx.write_conf(&snippet);
    let out = nginx.test_config();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    nginx.start(port);
    let g = Gate { nginx, upstream, port, key: vec![] };
    // Kibana's app needs a login; its public assets and status do not.
    let r = g.get("/app/discover", &[BROWSER]);
    assert_eq!(r.status, 302);
    assert!(
        r.header("Location").unwrap_or_default().ends_with("/login?next=/app/discover"),
        "{:?}",
        r.header("Location")
    );
    assert_eq!(g.get("/api/status", &[]).status, 401);
    assert_eq!(g.get("/ui/favicons/favicon.png", &[]).status, 200);
    let ok = g.login("alice", ALICE_PASSWORD, "/app/discover");
    assert_eq!(ok.status, 303, "{}", ok.body_text());
    let cookie = format!("ward_token={}", cookie_pair(set_cookie_named(&ok, "ward_token").unwrap()).1);
    assert_eq!(g.get("/app/discover", &[BROWSER, ("Cookie", &cookie)]).status, 200);
    let seen = g.upstream.requests_to("/app/discover");
    assert!(seen[0].headers.contains(&("x-forwarded-user".into(), "alice".into())), "{:?}", seen[0].headers);
    // limit_req on the login location: a burst of guesses is cut off with 429.
    let statuses: Vec<u16> = (0..12).map(|_| g.login_post("username=alice&password=x", None).status).collect();
    assert!(statuses.contains(&429), "{statuses:?}");
}
