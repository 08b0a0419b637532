//! Property tests (issue #7): the login gate's parsers never panic on hostile input
//! (tokens, cookies, key files, users files, login forms, redirect targets), and what it
//! issues it accepts back.
//!
//! Case counts are small so `cargo test` stays fast; `PROPTEST_CASES=N` raises them.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use ward_auth::cookie::find_cookie;
use ward_auth::{parse_time, safe_next, AuthConfig, AuthSettings, Claims, KeySet, RequestView, UserDb};

fn cfg(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-ward-prop";

fn write_0600(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

/// An HMAC gate with a users file (alice, bcrypt cost 4 so each login check is cheap).
fn gate() -> &'static AuthConfig {
    static CFG: OnceLock<(tempfile::TempDir, AuthConfig)> = OnceLock::new();
    &CFG.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        write_0600(&key, SECRET);
        let users = dir.path().join("users");
        let hash = bcrypt::hash("secret", 4).unwrap();
        write_0600(&users, format!("alice:{hash}\n").as_bytes());
        let settings = AuthSettings {
            key_file: Some(key),
            users_file: Some(users),
            login: true,
            issuer: Some("ward".into()),
            required_claims: vec![("role".into(), "admin".into())],
            ..AuthSettings::default()
        };
        let cfg = AuthConfig::load(&settings).expect("gate config loads");
        (dir, cfg)
    })
    .1
}

/// JSON-ish object text for token headers and payloads.
fn json_part() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("\"HS256\"".to_string()),
        Just("\"none\"".to_string()),
        Just("\"RS256\"".to_string()),
        Just("\"alice\"".to_string()),
        Just("9999999999".to_string()),
        Just("-1".to_string()),
        Just("1e400".to_string()),
        Just("null".to_string()),
        Just("[\"ward\",1]".to_string()),
        Just("{\"a\":{}}".to_string()),
        "\"[a-z\\\\\"]{0,8}\"",
    ];
    let key = prop::sample::select(vec![
        "alg", "typ", "kid", "sub", "exp", "nbf", "iat", "iss", "aud", "role", "crit", "jku", "",
    ]);
    prop_oneof![
        prop::collection::vec((key, value), 0..6).prop_map(|kv| {
            format!("{{{}}}", kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect::<Vec<_>>().join(","))
        }),
        "\\PC{0,24}",
    ]
}

/// Token-shaped bytes: three (or some other number of) base64url segments of JSON-ish
/// text, random signatures, stray characters.
fn token() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (json_part(), json_part(), prop::collection::vec(any::<u8>(), 0..48), any::<bool>()).prop_map(
            |(h, p, sig, pad)| {
                let mut t = format!(
                    "{}.{}.{}",
                    URL_SAFE_NO_PAD.encode(h),
                    URL_SAFE_NO_PAD.encode(p),
                    URL_SAFE_NO_PAD.encode(sig)
                );
                if pad {
                    t.push('=');
                }
                t.into_bytes()
            }
        ),
        "[A-Za-z0-9_\\-.=+/ ]{0,80}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..80),
    ]
}

proptest! {
    #![proptest_config(cfg(256))]

    #[test]
    fn token_verification_never_panics(t in token()) {
        let _ = gate().verify_token(&t);
    }

    #[test]
    fn gate_check_never_panics(
        method in "[A-Z]{0,7}",
        uri in prop::collection::vec(any::<u8>(), 0..64),
        accept in prop::option::of(prop::collection::vec(any::<u8>(), 0..32)),
        bearer in prop::option::of(token()),
        cookies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..3),
        tok in prop::option::of(token()),
    ) {
        let authorization = bearer.map(|t| [b"Bearer ".as_slice(), &t].concat());
        let mut cookie_values = cookies;
        if let Some(t) = tok {
            cookie_values.push([b"ward_token=".as_slice(), &t].concat());
        }
        let cookie_refs: Vec<&[u8]> = cookie_values.iter().map(Vec::as_slice).collect();
        let req = RequestView {
            method: method.as_bytes(),
            uri: &uri,
            accept: accept.as_deref(),
            authorization: authorization.as_deref(),
            cookies: &cookie_refs,
        };
        let _ = gate().check(&req);
        let _ = gate().find_token(&req);
        let _ = gate().login_location(&uri);
    }

    #[test]
    fn issued_tokens_verify(sub in "[a-zA-Z0-9@._-]{1,32}") {
        let mut extra = Claims::new();
        extra.insert("role".into(), "admin".into());
        let t = gate().issue_token(&sub, &extra, None).unwrap();
        let (got, _) = gate().verify_token(t.as_bytes()).unwrap();
        prop_assert_eq!(got, sub);
    }

    #[test]
    fn cookie_parsing_never_panics_and_finds_what_was_set(
        headers in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..4),
        value in "[A-Za-z0-9._\\-]{0,40}",
    ) {
        let refs: Vec<&[u8]> = headers.iter().map(Vec::as_slice).collect();
        let _ = find_cookie(&refs, "ward_token");
        let set = format!("other=1; ward_token={value}; x=2");
        prop_assert_eq!(find_cookie(&[set.as_bytes()], "ward_token"), Some(value.as_bytes()));
    }

    #[test]
    fn login_form_handling_never_panics(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..128),
            "(username|password|csrf_token|next)=[%a-zA-Z0-9/&=+.:]{0,40}(&(username|password|csrf_token|next)=[%a-zA-Z0-9/&=+]{0,20}){0,4}"
                .prop_map(String::into_bytes),
        ],
        csrf in prop::option::of("[A-Za-z0-9_\\-]{0,44}"),
        secure in any::<bool>(),
    ) {
        let _ = gate().login_get(&body, secure);
        let _ = gate().handle_login_post(&body, csrf.as_deref(), secure);
    }

    #[test]
    fn redirect_and_time_parsing_never_panic(s in "\\PC{0,64}") {
        let next = safe_next(&s);
        prop_assert!(next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\"), "{:?}", next);
        let _ = parse_time(&s);
    }
}

/// Key-file-shaped text: JWKS JSON, PEM armour around garbage, raw bytes.
fn key_file() -> impl Strategy<Value = Vec<u8>> {
    let jwk_field = prop::sample::select(vec![
        "\"kty\":\"oct\"",
        "\"kty\":\"RSA\"",
        "\"kty\":\"EC\"",
        "\"kty\":\"OKP\"",
        "\"crv\":\"P-256\"",
        "\"crv\":\"Ed25519\"",
        "\"k\":\"c2VjcmV0\"",
        "\"k\":\"\"",
        "\"n\":\"AQAB\"",
        "\"e\":\"AQAB\"",
        "\"x\":\"AA\"",
        "\"y\":\"AA\"",
        "\"d\":\"AA\"",
        "\"alg\":\"HS256\"",
        "\"alg\":\"none\"",
        "\"kid\":1",
        "\"use\":\"sig\"",
        "\"keys\":[]",
    ]);
    prop_oneof![
        prop::collection::vec(prop::collection::vec(jwk_field, 0..6), 0..4).prop_map(|keys| {
            let ks: Vec<String> = keys.iter().map(|k| format!("{{{}}}", k.join(","))).collect();
            format!("{{\"keys\":[{}]}}", ks.join(",")).into_bytes()
        }),
        (
            prop::sample::select(vec![
                "PUBLIC KEY",
                "PRIVATE KEY",
                "RSA PRIVATE KEY",
                "EC PRIVATE KEY",
                "CERTIFICATE",
                "X"
            ]),
            "[A-Za-z0-9+/=\\n]{0,200}"
        )
            .prop_map(|(label, body)| format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n").into_bytes()),
        prop::collection::vec(any::<u8>(), 0..96),
    ]
}

proptest! {
    #![proptest_config(cfg(256))]

    #[test]
    fn key_file_parsing_never_panics(bytes in key_file()) {
        let _ = KeySet::parse(&bytes);
    }
}

proptest! {
    // Parsing a users file hashes a dummy password (argon2id when the file names no user
    // with a cheaper scheme), so fewer cases.
    #![proptest_config(cfg(24))]

    #[test]
    fn users_file_parsing_never_panics(
        lines in prop::collection::vec(prop_oneof![
            "[a-z]{0,8}:\\$2y\\$0[4-5]\\$[./A-Za-z0-9]{0,60}",
            "[a-z]{0,8}:\\$argon2id\\$v=19\\$m=[0-9]{1,3},t=1,p=1\\$[A-Za-z0-9+/]{0,24}\\$[A-Za-z0-9+/]{0,44}",
            "\\PC{0,40}",
            Just("# comment".to_string()),
            Just(String::new()),
        ], 0..6),
    ) {
        let _ = UserDb::parse(&lines.join("\n"));
    }
}
