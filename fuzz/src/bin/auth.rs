//! Fuzz target: the login gate's parsers. The input is used as a token (bearer and
//! cookie), as Cookie headers, as a key file, as a login form and query, and as `next`.
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use ward_auth::cookie::find_cookie;
use ward_auth::{safe_next, AuthConfig, AuthSettings, KeySet, RequestView};

fn write_0600(path: &std::path::Path, bytes: &[u8]) {
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

fn gate() -> AuthConfig {
    let dir = std::env::temp_dir().join(format!("ward-fuzz-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key");
    write_0600(&key, b"0123456789abcdef0123456789abcdef-ward-fuzz");
    let users = dir.join("users");
    // bcrypt cost 4: each login attempt stays cheap for the fuzzer.
    write_0600(&users, format!("alice:{}\n", bcrypt::hash("secret", 4).unwrap()).as_bytes());
    let settings = AuthSettings {
        key_file: Some(key),
        users_file: Some(users),
        login: true,
        required_claims: vec![("role".into(), "admin".into())],
        ..AuthSettings::default()
    };
    let cfg = AuthConfig::load(&settings).expect("gate loads");
    let _ = std::fs::remove_dir_all(&dir);
    cfg
}

fn main() {
    let cfg = std::panic::AssertUnwindSafe(gate());
    afl::fuzz!(|data: &[u8]| {
        let _ = cfg.verify_token(data);
        let auth = [b"Bearer ".as_slice(), data].concat();
        let cookie = [b"a=b; ward_token=".as_slice(), data].concat();
        let cookies: [&[u8]; 2] = [data, &cookie];
        let req = RequestView { method: b"GET", uri: data, accept: Some(data), authorization: Some(&auth), cookies: &cookies };
        let _ = cfg.check(&req);
        let _ = cfg.login_location(data);
        let _ = find_cookie(&cookies, "ward_csrf");
        let _ = KeySet::parse(data);
        let _ = cfg.login_get(data, false);
        let (form, csrf) = ward_fuzz::split_once(data, b'\n');
        let _ = cfg.handle_login_post(form, std::str::from_utf8(csrf).ok(), true);
        let _ = safe_next(&String::from_utf8_lossy(data));
    });
}
