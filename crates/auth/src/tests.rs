//! End-to-end tests of the login gate through its public API, including every attack of
//! issue #8 ("Attack tests"). Keys are made at runtime with the `openssl` command line and
//! cached under target/ (generating RSA keys takes a moment).

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-ward-test";

/// Writes `bytes` to `path` with exactly `mode`.
pub(crate) fn write_mode(path: &Path, bytes: &[u8], mode: u32) {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).unwrap();
    f.write_all(bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Directory of openssl-made keys, created once.
fn keys_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/ward-auth-test-keys"));
        if dir.join("done").exists() {
            return dir;
        }
        let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let run = |args: &str| {
            let st = std::process::Command::new("openssl")
                .args(args.split(' '))
                .current_dir(&tmp)
                .stderr(std::process::Stdio::null())
                .status()
                .expect("openssl");
            assert!(st.success(), "openssl {args}");
        };
        run("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem");
        run("pkey -in rsa.pem -pubout -out rsa.pub");
        run("pkey -in rsa.pem -traditional -out rsa1.pem");
        run("rsa -in rsa.pem -RSAPublicKey_out -out rsa1.pub");
        run("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out rsa1024.pem");
        run("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem");
        run("pkey -in ec.pem -pubout -out ec.pub");
        run("ecparam -name prime256v1 -genkey -noout -out ec1.pem");
        run("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out ec384.pem");
        run("pkey -in ec384.pem -pubout -out ec384.pub");
        run("genpkey -algorithm ed25519 -out ed.pem");
        run("pkey -in ed.pem -pubout -out ed.pub");
        std::fs::write(tmp.join("done"), b"").unwrap();
        if std::fs::rename(&tmp, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp); // another test binary won the race
        }
        dir
    })
}

fn key(name: &str) -> Vec<u8> {
    std::fs::read(keys_dir().join(name)).unwrap()
}

/// A loaded config with `key_bytes` as the key file (mode 0600) and optional users.
struct Env {
    _dir: tempfile::TempDir,
    cfg: AuthConfig,
}

fn env_with(key_bytes: &[u8], users: Option<&str>, tweak: impl FnOnce(&mut AuthSettings)) -> Result<Env, AuthError> {
    let dir = tempfile::tempdir().unwrap();
    let kp = dir.path().join("key");
    write_mode(&kp, key_bytes, 0o600);
    let mut s = AuthSettings { key_file: Some(kp), ..AuthSettings::default() };
    if let Some(u) = users {
        let up = dir.path().join("users");
        write_mode(&up, u.as_bytes(), 0o600);
        s.users_file = Some(up);
        s.login = true;
    }
    tweak(&mut s);
    Ok(Env { cfg: AuthConfig::load(&s)?, _dir: dir })
}

fn hmac_env(tweak: impl FnOnce(&mut AuthSettings)) -> Env {
    env_with(SECRET, None, tweak).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn claims(v: Value) -> Claims {
    v.as_object().unwrap().clone()
}

/// A token signed with the test HMAC secret.
fn hs(alg: Algorithm, kid: Option<&str>, c: Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    encode(&h, &c, &EncodingKey::from_secret(SECRET)).unwrap()
}

fn valid_claims() -> Value {
    json!({"sub": "alice", "exp": now() + 600, "iat": now()})
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn verify(env: &Env, token: &str) -> Result<String, TokenError> {
    env.cfg.verify_token(token.as_bytes()).map(|(sub, _)| sub)
}

fn api(auth: Option<&str>) -> (Vec<u8>, Option<Vec<u8>>) {
    (b"/api/x".to_vec(), auth.map(|a| a.as_bytes().to_vec()))
}

#[test]
fn config_is_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<AuthConfig>();
}

#[test]
fn hmac_issue_and_verify_roundtrip() {
    let env = hmac_env(|s| {
        s.issuer = Some("ward".into());
        s.audience = Some("kibana".into());
    });
    let t = env.cfg.issue_token("alice", &claims(json!({"role": "admin", "sub": "mallory"})), None).unwrap();
    let (sub, c) = env.cfg.verify_token(t.as_bytes()).unwrap();
    assert_eq!(sub, "alice", "extra claims cannot override sub");
    assert_eq!(c["iss"], "ward");
    assert_eq!(c["aud"], "kibana");
    assert_eq!(c["role"], "admin");
    let iat = c["iat"].as_u64().unwrap();
    assert_eq!(c["exp"].as_u64().unwrap(), iat + 8 * 3600);
    assert!(c["jti"].as_str().unwrap().len() >= 22);
    let t2 = issue_token(&env.cfg, "alice", &Claims::new(), Some(Duration::from_secs(60))).unwrap();
    let (_, c2) = env.cfg.verify_token(t2.as_bytes()).unwrap();
    assert_ne!(c2["jti"], c["jti"]);
    assert_eq!(c2["exp"].as_u64().unwrap() - c2["iat"].as_u64().unwrap(), 60);
    // Every HMAC size is allowed for an HMAC secret.
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        assert_eq!(
            verify(&env, &hs(alg, None, json!({"sub":"a","exp":now()+60,"iss":"ward","aud":"kibana"}))),
            Ok("a".into())
        );
    }
}

#[test]
fn attack_alg_none() {
    let env = hmac_env(|_| {});
    let payload = b64(&valid_claims());
    for alg in ["none", "None", "NONE", "nOnE", ""] {
        let header = b64(&json!({"alg": alg, "typ": "JWT"}));
        for sig in ["", "AAAA"] {
            let t = format!("{header}.{payload}.{sig}");
            let e = verify(&env, &t).unwrap_err();
            assert!(matches!(e, TokenError::Algorithm | TokenError::Malformed), "{alg}: {e:?}");
        }
    }
    // Unknown algorithm names are reported as such (for the logs).
    let t = format!("{}.{payload}.", b64(&json!({"alg": "none"})));
    assert_eq!(verify(&env, &t), Err(TokenError::Algorithm));
    // A header without alg at all.
    let t = format!("{}.{payload}.", b64(&json!({"typ": "JWT"})));
    assert!(verify(&env, &t).is_err());
}

#[test]
fn attack_algorithm_confusion_hs256_with_public_key() {
    for public in ["rsa.pub", "ec.pub", "ed.pub"] {
        let pem = key(public);
        let env = env_with(&pem, None, |_| {}).unwrap();
        // The classic attack: HMAC keyed with the public key file as the verifier would read it.
        for secret in [pem.clone(), pem.trim_ascii_end().to_vec()] {
            for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
                let t = encode(&Header::new(alg), &valid_claims(), &EncodingKey::from_secret(&secret)).unwrap();
                assert_eq!(verify(&env, &t), Err(TokenError::Algorithm), "{public} {alg:?}");
            }
        }
    }
}

#[test]
fn attack_key_does_not_allow_alg() {
    let ec = env_with(&key("ec.pem"), None, |_| {}).unwrap();
    let t = ec.cfg.issue_token("alice", &Claims::new(), None).unwrap();
    assert_eq!(verify(&ec, &t), Ok("alice".into()));
    // Same token with the header claiming ES384 (P-256 key allows ES256 only).
    let parts: Vec<&str> = t.split('.').collect();
    let h384 = b64(&json!({"alg": "ES384", "typ": "JWT"}));
    assert_eq!(verify(&ec, &format!("{h384}.{}.{}", parts[1], parts[2])), Err(TokenError::Algorithm));
    // An RS256 header against an HMAC secret.
    let hm = hmac_env(|_| {});
    let hrs = b64(&json!({"alg": "RS256"}));
    assert_eq!(verify(&hm, &format!("{hrs}.{}.{}", parts[1], parts[2])), Err(TokenError::Algorithm));
    // A JWK restricted to RS256 refuses PS256 even though the key is RSA.
    let jwks = rsa_jwks(Some("RS256"));
    let env = env_with(jwks.as_bytes(), None, |_| {}).unwrap();
    let der = {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        let k = rsa::RsaPrivateKey::from_pkcs8_pem(std::str::from_utf8(&key("rsa.pem")).unwrap()).unwrap();
        k.to_pkcs1_der().unwrap().as_bytes().to_vec()
    };
    let mut h = Header::new(Algorithm::PS256);
    h.kid = Some("r1".into());
    let t = encode(&h, &valid_claims(), &EncodingKey::from_rsa_der(&der)).unwrap();
    assert_eq!(verify(&env, &t), Err(TokenError::Algorithm));
    h.alg = Algorithm::RS256;
    let t = encode(&h, &valid_claims(), &EncodingKey::from_rsa_der(&der)).unwrap();
    assert_eq!(verify(&env, &t), Ok("alice".into()));
    // Without "alg" in the JWK, PS256 is allowed for an RSA key.
    let env = env_with(rsa_jwks(None).as_bytes(), None, |_| {}).unwrap();
    h.alg = Algorithm::PS256;
    let t = encode(&h, &valid_claims(), &EncodingKey::from_rsa_der(&der)).unwrap();
    assert_eq!(verify(&env, &t), Ok("alice".into()));
}

#[test]
fn attack_tampered_payload_and_signature() {
    let env = hmac_env(|_| {});
    let t = hs(Algorithm::HS256, None, valid_claims());
    let parts: Vec<&str> = t.split('.').collect();
    let evil = b64(&json!({"sub": "admin", "exp": now() + 600}));
    assert_eq!(verify(&env, &format!("{}.{evil}.{}", parts[0], parts[2])), Err(TokenError::Signature));
    let mut sig = parts[2].as_bytes().to_vec();
    sig[3] = if sig[3] == b'A' { b'B' } else { b'A' };
    let t2 = format!("{}.{}.{}", parts[0], parts[1], String::from_utf8(sig).unwrap());
    assert_eq!(verify(&env, &t2), Err(TokenError::Signature));
    assert_eq!(verify(&env, &format!("{}.{}.", parts[0], parts[1])), Err(TokenError::Signature));
    // Signed with another secret.
    let other = encode(&Header::default(), &valid_claims(), &EncodingKey::from_secret(&[b'x'; 32])).unwrap();
    assert_eq!(verify(&env, &other), Err(TokenError::Signature));
    // Asymmetric keys too.
    let ed = env_with(&key("ed.pem"), None, |_| {}).unwrap();
    let t = ed.cfg.issue_token("alice", &Claims::new(), None).unwrap();
    let p: Vec<&str> = t.split('.').collect();
    assert_eq!(verify(&ed, &format!("{}.{evil}.{}", p[0], p[2])), Err(TokenError::Signature));
}

#[test]
fn attack_expired_and_nbf_with_leeway() {
    let env = hmac_env(|s| s.leeway = Duration::from_secs(30));
    let n = now();
    let cases: &[(Value, Result<&str, TokenError>)] = &[
        (json!({"sub":"a","exp":n-100}), Err(TokenError::Expired)),
        (json!({"sub":"a","exp":n-10}), Ok("a")),
        (json!({"sub":"a","exp":n+60,"nbf":n+100}), Err(TokenError::NotYetValid)),
        (json!({"sub":"a","exp":n+60,"nbf":n+10}), Ok("a")),
        (json!({"sub":"a","exp":n+60,"nbf":n-10}), Ok("a")),
        (json!({"sub":"a"}), Err(TokenError::MissingClaim("exp".into()))),
        (json!({"sub":"a","exp":"tomorrow"}), Err(TokenError::MissingClaim("exp".into()))),
        (json!({"exp":n+60}), Err(TokenError::MissingClaim("sub".into()))),
        (json!({"sub":"","exp":n+60}), Err(TokenError::MissingClaim("sub".into()))),
        (json!({"sub":7,"exp":n+60}), Err(TokenError::MissingClaim("sub".into()))),
    ];
    for (c, want) in cases {
        assert_eq!(verify(&env, &hs(Algorithm::HS256, None, c.clone())), want.clone().map(String::from), "{c}");
    }
    let strict = hmac_env(|s| s.leeway = Duration::ZERO);
    assert_eq!(verify(&strict, &hs(Algorithm::HS256, None, json!({"sub":"a","exp":n-10}))), Err(TokenError::Expired));
    assert_eq!(
        verify(&strict, &hs(Algorithm::HS256, None, json!({"sub":"a","exp":n+60,"nbf":n+10}))),
        Err(TokenError::NotYetValid)
    );
}

#[test]
fn attack_wrong_iss_aud() {
    let env = hmac_env(|s| {
        s.issuer = Some("https://idp".into());
        s.audience = Some("kibana".into());
    });
    let n = now() + 60;
    let cases: &[(Value, Result<&str, TokenError>)] = &[
        (json!({"sub":"a","exp":n,"iss":"https://idp","aud":"kibana"}), Ok("a")),
        (json!({"sub":"a","exp":n,"iss":"https://idp","aud":["x","kibana"]}), Ok("a")),
        (json!({"sub":"a","exp":n,"iss":"https://evil","aud":"kibana"}), Err(TokenError::Issuer)),
        (json!({"sub":"a","exp":n,"iss":"https://idp","aud":"grafana"}), Err(TokenError::Audience)),
        (json!({"sub":"a","exp":n,"iss":"https://idp","aud":["grafana"]}), Err(TokenError::Audience)),
        (json!({"sub":"a","exp":n,"aud":"kibana"}), Err(TokenError::MissingClaim("iss".into()))),
        (json!({"sub":"a","exp":n,"iss":"https://idp"}), Err(TokenError::MissingClaim("aud".into()))),
    ];
    for (c, want) in cases {
        assert_eq!(verify(&env, &hs(Algorithm::HS256, None, c.clone())), want.clone().map(String::from), "{c}");
    }
    // Without a configured audience, any aud is accepted.
    let open = hmac_env(|_| {});
    assert_eq!(verify(&open, &hs(Algorithm::HS256, None, json!({"sub":"a","exp":n,"aud":"x"}))), Ok("a".into()));
}

/// A JWKS with the test RSA key as kid "r1" (optionally restricted to `alg`), the EC key as
/// "e1" and an `enc` key that must be ignored.
fn rsa_jwks(alg: Option<&str>) -> String {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use rsa::pkcs8::DecodePublicKey;
    use rsa::traits::PublicKeyParts;
    let rsa = rsa::RsaPublicKey::from_public_key_pem(std::str::from_utf8(&key("rsa.pub")).unwrap()).unwrap();
    let ec = p256::PublicKey::from_public_key_pem(std::str::from_utf8(&key("ec.pub")).unwrap()).unwrap();
    let pt = ec.to_encoded_point(false);
    let mut r = json!({"kty":"RSA","kid":"r1","use":"sig",
        "n": URL_SAFE_NO_PAD.encode(rsa.n().to_bytes_be()), "e": URL_SAFE_NO_PAD.encode(rsa.e().to_bytes_be())});
    if let Some(a) = alg {
        r["alg"] = json!(a);
    }
    json!({"keys": [
        r,
        {"kty":"EC","crv":"P-256","kid":"e1","x":URL_SAFE_NO_PAD.encode(pt.x().unwrap()),"y":URL_SAFE_NO_PAD.encode(pt.y().unwrap())},
        {"kty":"RSA","kid":"enc1","use":"enc","alg":"RSA-OAEP","n":"AQAB","e":"AQAB"}
    ]})
    .to_string()
}

#[test]
fn attack_unknown_kid_and_kid_selection() {
    let jwks = rsa_jwks(None);
    let env = env_with(jwks.as_bytes(), None, |_| {}).unwrap();
    assert!(!env.cfg.can_issue());
    // Sign with the EC private key, labelling the token with each kid.
    let der = {
        use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
        let k = p256::SecretKey::from_pkcs8_pem(std::str::from_utf8(&key("ec.pem")).unwrap()).unwrap();
        k.to_pkcs8_der().unwrap().as_bytes().to_vec()
    };
    let with_kid = |kid: Option<&str>| {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = kid.map(str::to_string);
        encode(&h, &valid_claims(), &EncodingKey::from_ec_der(&der)).unwrap()
    };
    assert_eq!(verify(&env, &with_kid(Some("e1"))), Ok("alice".into()));
    assert_eq!(verify(&env, &with_kid(Some("nope"))), Err(TokenError::UnknownKid));
    assert_eq!(verify(&env, &with_kid(Some("enc1"))), Err(TokenError::UnknownKid));
    // kid of the RSA key: that key does not allow ES256.
    assert_eq!(verify(&env, &with_kid(Some("r1"))), Err(TokenError::Algorithm));
    // No kid: every key allowing the algorithm is tried.
    assert_eq!(verify(&env, &with_kid(None)), Ok("alice".into()));
}

#[test]
fn attack_malformed_base64_and_json() {
    let env = hmac_env(|_| {});
    let good = hs(Algorithm::HS256, None, valid_claims());
    let p: Vec<&str> = good.split('.').collect();
    let not_json = URL_SAFE_NO_PAD.encode("{not json");
    let array = URL_SAFE_NO_PAD.encode("[1,2]");
    let cases: Vec<String> = vec![
        "garbage".into(),
        "a.b".into(),
        "a.b.c.d".into(),
        "!!!.###.$$$".into(),
        format!("{}.{}.{}", p[0], "%%%", p[2]),
        format!("{not_json}.{}.{}", p[1], p[2]),
        format!("{}.{not_json}.{}", p[0], p[2]),
        format!("{}.{array}.{}", p[0], p[2]),
        format!("{}.{}.{}", "A", p[1], p[2]),
        format!("{}=.{}.{}", p[0], p[1], p[2]),
        format!("{}.{}.{}", p[0], p[1], "A"),
        format!("{}.{}.{}", b64(&json!({"alg":"HS256","crit":5,"kid":[1]})), p[1], p[2]),
    ];
    for t in cases {
        let e = verify(&env, &t).unwrap_err();
        assert!(matches!(e, TokenError::Malformed | TokenError::Signature | TokenError::Algorithm), "{t}: {e:?}");
    }
    // Payload not JSON but correctly signed: still malformed, never accepted.
    let msg = format!("{}.{not_json}", p[0]);
    let sig = {
        use hmac::Mac;
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET).unwrap();
        m.update(msg.as_bytes());
        URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
    };
    assert_eq!(verify(&env, &format!("{msg}.{sig}")), Err(TokenError::Malformed));
}

#[test]
fn attack_oversized_token() {
    let env = hmac_env(|_| {});
    let big = hs(Algorithm::HS256, None, json!({"sub":"a","exp":now()+60,"pad":"x".repeat(16 * 1024)}));
    assert!(big.len() > 16 * 1024);
    assert_eq!(verify(&env, &big), Err(TokenError::TooLarge));
    let junk = "a".repeat(16 * 1024);
    assert_eq!(verify(&env, &junk), Err(TokenError::TooLarge));
    // The same token fits a raised limit (the limit, not the content, refused it).
    let roomy = hmac_env(|s| s.max_token_len = 64 * 1024);
    assert_eq!(verify(&roomy, &big), Ok("a".into()));
}

fn req<'a>(
    method: &'a str,
    uri: &'a str,
    accept: Option<&'a str>,
    auth: Option<&'a str>,
    cookies: &'a [&'a [u8]],
) -> RequestView<'a> {
    RequestView {
        method: method.as_bytes(),
        uri: uri.as_bytes(),
        accept: accept.map(str::as_bytes),
        authorization: auth.map(str::as_bytes),
        cookies,
    }
}

#[test]
fn attack_query_string_token_ignored() {
    let env = hmac_env(|_| {});
    let t = hs(Algorithm::HS256, None, valid_claims());
    for uri in [
        format!("/api?access_token={t}"),
        format!("/api?token={t}"),
        format!("/api?ward_token={t}"),
        format!("/api?jwt={t}"),
    ] {
        let d = env.cfg.check(&req("GET", &uri, None, None, &[]));
        assert_eq!(
            d,
            Decision::Unauthorized { www_authenticate: CHALLENGE_NO_TOKEN, reason: TokenError::Missing },
            "{uri}"
        );
    }
    let _ = api(None);
}

#[test]
fn decisions() {
    let env = hmac_env(|s| s.required_claims = vec![("role".into(), "admin".into())]);
    let admin = hs(Algorithm::HS256, None, json!({"sub":"alice","exp":now()+60,"role":["user","admin"]}));
    let user = hs(Algorithm::HS256, None, json!({"sub":"bob","exp":now()+60,"role":"user"}));
    let cookie = format!("theme=dark; ward_token={admin}");
    let cookies: [&[u8]; 1] = [cookie.as_bytes()];
    let bearer_admin = format!("Bearer {admin}");
    let bearer_user = format!("bearer  {user}");
    let html = Some("text/html,application/xhtml+xml,*/*;q=0.8");

    // Valid token in the cookie, or in Authorization: Bearer.
    let d = env.cfg.check(&req("GET", "/app", html, None, &cookies));
    assert!(matches!(&d, Decision::Allow { user, claims } if user == "alice" && claim_text(claims, "role").is_some()));
    let d = env.cfg.check(&req("POST", "/api", None, Some(&bearer_admin), &[]));
    assert!(matches!(&d, Decision::Allow { user, .. } if user == "alice"));
    // Cookie first: a Bearer header is not consulted when the cookie is present.
    let d = env.cfg.check(&req("POST", "/api", None, Some(&bearer_user), &cookies));
    assert!(matches!(&d, Decision::Allow { user, .. } if user == "alice"));
    // Other schemes are not tokens.
    let d = env.cfg.check(&req("POST", "/api", None, Some("Basic YTpi"), &[]));
    assert_eq!(d, Decision::Unauthorized { www_authenticate: CHALLENGE_NO_TOKEN, reason: TokenError::Missing });

    // Browser navigation without token: redirect with the original path.
    let d = env.cfg.check(&req("GET", "/app/discover?x=1&y=%20", html, None, &[]));
    assert_eq!(
        d,
        Decision::Redirect {
            location: "/login?next=/app/discover%3Fx%3D1%26y%3D%2520".into(),
            reason: TokenError::Missing
        }
    );
    // Unsafe original targets become "/".
    let d = env.cfg.check(&req("GET", "//evil.com/x", html, None, &[]));
    assert!(matches!(d, Decision::Redirect { location, .. } if location == "/login?next=/"));
    // Not a navigation: 401 (POST with text/html, GET without text/html, XHR JSON).
    for (m, a) in [("POST", html), ("GET", Some("application/json")), ("GET", None), ("HEAD", html)] {
        let d = env.cfg.check(&req(m, "/app", a, None, &[]));
        assert!(matches!(d, Decision::Unauthorized { www_authenticate: CHALLENGE_NO_TOKEN, .. }), "{m} {a:?}");
    }
    // Invalid token: the challenge says invalid_token.
    let d = env.cfg.check(&req("GET", "/app", None, Some("Bearer a.b.c"), &[]));
    assert!(matches!(d, Decision::Unauthorized { www_authenticate: CHALLENGE_INVALID, reason: TokenError::Malformed }));
    // Valid token without the required claim: 403, also for navigations.
    for a in [None, html] {
        let d = env.cfg.check(&req("GET", "/app", a, Some(&bearer_user), &[]));
        assert_eq!(d, Decision::Forbidden { user: "bob".into(), reason: TokenError::Forbidden("role".into()) });
    }
    assert_eq!(env.cfg.verify_token(user.as_bytes()).unwrap_err(), TokenError::Forbidden("role".into()));
}

#[test]
fn pem_keys_sign_and_verify() {
    for (private, public, alg) in [
        ("rsa.pem", "rsa.pub", "RS256"),
        ("rsa1.pem", "rsa1.pub", "RS256"),
        ("ec.pem", "ec.pub", "ES256"),
        ("ec1.pem", "ec.pub", "ES256"),
        ("ec384.pem", "ec384.pub", "ES384"),
        ("ed.pem", "ed.pub", "EdDSA"),
    ] {
        let signer = env_with(&key(private), None, |_| {}).unwrap();
        assert!(signer.cfg.can_issue(), "{private}");
        let t = signer.cfg.issue_token("alice", &Claims::new(), None).unwrap();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(t.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["alg"], alg, "{private}");
        assert_eq!(verify(&signer, &t), Ok("alice".into()), "{private}");
        // ec1.pem is another key: its tokens must not verify with ec.pub.
        let verifier = env_with(&key(public), None, |_| {}).unwrap();
        assert!(!verifier.cfg.can_issue());
        let want = if private == "ec1.pem" { Err(TokenError::Signature) } else { Ok("alice".into()) };
        assert_eq!(verify(&verifier, &t), want, "{private} -> {public}");
    }
    // Several public keys in one file (rotation without kid): each one verifies its tokens.
    let mut both = key("ec.pub");
    both.extend(key("ed.pub"));
    let env = env_with(&both, None, |_| {}).unwrap();
    for private in ["ec.pem", "ed.pem"] {
        let t = env_with(&key(private), None, |_| {}).unwrap().cfg.issue_token("a", &Claims::new(), None).unwrap();
        assert_eq!(verify(&env, &t), Ok("a".into()));
    }
}

#[test]
fn key_file_policies() {
    let dir = tempfile::tempdir().unwrap();
    let load = |name: &str, bytes: &[u8], mode: u32| {
        let p = dir.path().join(name);
        write_mode(&p, bytes, mode);
        AuthConfig::load(&AuthSettings { key_file: Some(p), ..AuthSettings::default() })
    };
    // Secrets must not be world-readable; public keys may be.
    for (name, bytes) in [("hmac", SECRET.to_vec()), ("priv", key("ed.pem"))] {
        let e = load(name, &bytes, 0o604).unwrap_err().to_string();
        assert!(e.contains("world-readable") && e.contains(name), "{e}");
        assert!(load(name, &bytes, 0o640).is_ok());
    }
    assert!(load("pub", &key("rsa.pub"), 0o644).is_ok());
    assert!(load("jwks", rsa_jwks(None).as_bytes(), 0o644).is_ok());
    let oct = json!({"keys":[{"kty":"oct","kid":"h","k":URL_SAFE_NO_PAD.encode(SECRET)}]}).to_string();
    assert!(load("oct", oct.as_bytes(), 0o644).unwrap_err().to_string().contains("world-readable"));
    // Weak RSA keys are refused.
    let e = load("weak", &key("rsa1024.pem"), 0o600).unwrap_err().to_string();
    assert!(e.contains("1024 bits") && e.contains("weak"), "{e}");
    // Two private keys in one file.
    let mut two = key("ec.pem");
    two.extend(key("ed.pem"));
    assert!(load("two", &two, 0o600).unwrap_err().to_string().contains("only one private key"));
    // The login needs a signing key.
    let e = env_with(&key("rsa.pub"), Some(&format!("a:{}\n", crate::credentials::tests::cheap_hash("x"))), |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("ward_auth_login needs an HMAC secret, a private key or an oct JWK"), "{e}");
}

#[test]
fn generated_secret_works() {
    let s = generate_hmac_secret().unwrap();
    assert!(s.len() >= 32 && s.iter().all(u8::is_ascii_graphic));
    assert_ne!(s, generate_hmac_secret().unwrap());
    let env = env_with(&s, None, |_| {}).unwrap();
    let t = env.cfg.issue_token("a", &Claims::new(), None).unwrap();
    assert_eq!(verify(&env, &t), Ok("a".into()));
}

fn users() -> String {
    format!(
        "alice:{}\nbob:{}\n",
        crate::credentials::tests::cheap_hash("wonderland"),
        bcrypt::hash("builder", 4).unwrap()
    )
}

/// The CSRF token set by a login GET (from its Set-Cookie).
fn csrf_of(page: &LoginPage) -> String {
    let c = &page.set_cookies[0];
    c.strip_prefix("ward_csrf=").unwrap().split(';').next().unwrap().to_string()
}

fn post(env: &Env, body: &str, csrf: Option<&str>) -> LoginOutcome {
    env.cfg.handle_login_post(body.as_bytes(), csrf, true)
}

#[test]
fn login_flow() {
    let env = env_with(SECRET, Some(&users()), |s| {
        s.cookie_secure = CookieSecure::Auto;
        s.issuer = Some("ward".into());
    })
    .unwrap();
    let page = env.cfg.login_get(b"next=%2Fapp%2Fdiscover%3Fa%3D1", false);
    assert_eq!(page.status, 200);
    let csrf = csrf_of(&page);
    assert_eq!(page.set_cookies[0], format!("ward_csrf={csrf}; HttpOnly; SameSite=Strict; Path=/login; Max-Age=3600"));
    for field in ["name=\"username\"", "name=\"password\"", "name=\"csrf_token\"", "name=\"next\"", "action=\"/login\""]
    {
        assert!(page.body.contains(field), "{field}");
    }
    assert!(page.body.contains(&format!("value=\"{csrf}\"")));
    assert!(page.body.contains("value=\"/app/discover?a=1\""));
    assert!(!page.body.contains("http://") && !page.body.contains("https://"), "no external assets");

    for (user, pw) in [("alice", "wonderland"), ("bob", "builder")] {
        let body = format!("username={user}&password={pw}&csrf_token={csrf}&next=%2Fapp%2Fdiscover%3Fa%3D1");
        let LoginOutcome::Success { user: u, location, set_cookies } = post(&env, &body, Some(&csrf)) else {
            panic!("{user} login failed")
        };
        assert_eq!(u, user);
        assert_eq!(location, "/app/discover?a=1");
        let token_cookie = &set_cookies[0];
        assert!(token_cookie.ends_with("; HttpOnly; SameSite=Strict; Path=/; Max-Age=28800; Secure"), "{token_cookie}");
        assert!(set_cookies[1].starts_with("ward_csrf=; ") && set_cookies[1].contains("Max-Age=0"));
        // The cookie opens the gate.
        let cookie = token_cookie.split(';').next().unwrap().to_string();
        let cookies: [&[u8]; 1] = [cookie.as_bytes()];
        let d = env.cfg.check(&req("GET", "/app", Some("text/html"), None, &cookies));
        assert!(matches!(d, Decision::Allow { user: u, claims } if u == user && claims["iss"] == "ward"));
    }

    // Open redirects are refused: next falls back to "/".
    for next in ["%2F%2Fevil.com", "https%3A%2F%2Fevil.com", "%2F%5Cevil.com", "%2F%252F%252Fevil.com"] {
        let body = format!("username=alice&password=wonderland&csrf_token={csrf}&next={next}");
        assert!(
            matches!(post(&env, &body, Some(&csrf)), LoginOutcome::Success { location, .. } if location == "/"),
            "{next}"
        );
    }

    // Logout clears the cookie.
    assert_eq!(
        env.cfg.logout_cookie(true),
        "ward_token=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure"
    );
    assert!(!env.cfg.logout_cookie(false).contains("Secure"));
}

#[test]
fn login_csrf() {
    let env = env_with(SECRET, Some(&users()), |_| {}).unwrap();
    let csrf = csrf_of(&env.cfg.login_get(b"", false));
    let other = crate::login::new_csrf_token();
    let creds = "username=alice&password=wonderland";
    let cases: Vec<(String, Option<&str>)> = vec![
        (format!("{creds}&csrf_token={csrf}"), None),
        (creds.to_string(), Some(&csrf)),
        (format!("{creds}&csrf_token={other}"), Some(&csrf)),
        (format!("{creds}&csrf_token="), Some("")),
        (format!("{creds}&csrf_token=x"), Some("x")),
    ];
    for (body, cookie) in cases {
        let LoginOutcome::Failure { reason, page, .. } = post(&env, &body, cookie) else { panic!("{body} accepted") };
        assert_eq!(reason, LoginFailure::Csrf, "{body}");
        assert_eq!(page.status, 403);
        assert!(page.body.contains(crate::login::MSG_CSRF));
        // A fresh token comes with the page.
        assert_ne!(csrf_of(&page), csrf);
    }
}

#[test]
fn attack_unknown_user_and_wrong_password_look_the_same() {
    // A costlier argon2id hash so the timing comparison is above noise.
    let hash = {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let a = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(512, 2, 1, None).unwrap(),
        );
        a.hash_password(b"wonderland", &SaltString::encode_b64(b"saltsaltsaltsalt").unwrap()).unwrap().to_string()
    };
    let env = env_with(SECRET, Some(&format!("alice:{hash}\n")), |_| {}).unwrap();
    let csrf = crate::login::new_csrf_token();
    let outcome = |user: &str, pw: &str| {
        let body = format!("username={user}&password={pw}&csrf_token={csrf}&next=%2Fapp");
        let t = Instant::now();
        let o = post(&env, &body, Some(&csrf));
        (o, t.elapsed())
    };
    let normalize = |o: LoginOutcome| match o {
        LoginOutcome::Failure { reason, page, .. } => {
            let token = csrf_of(&page);
            (reason, page.status, page.body.replace(&token, "CSRF"), page.set_cookies.len())
        }
        LoginOutcome::Success { .. } => panic!("accepted"),
    };
    let wrong = normalize(outcome("alice", "nope").0);
    assert_eq!(wrong.0, LoginFailure::BadCredentials);
    assert_eq!(wrong.1, 401);
    assert!(wrong.2.contains(crate::login::MSG_BAD_CREDENTIALS));
    assert!(wrong.2.contains("value=\"/app\""));
    for (u, p) in
        [("mallory", "nope"), ("mallory", "wonderland"), ("", "x"), ("a%20b", "x"), ("%ff", "x"), ("alice", "")]
    {
        assert_eq!(normalize(outcome(u, p).0), wrong, "{u}");
    }
    let missing = post(&env, &format!("csrf_token={csrf}&next=%2Fapp"), Some(&csrf));
    assert_eq!(normalize(missing), wrong);

    // Same work: the unknown user runs a dummy hash with the same parameters. Interleaved
    // samples, the fastest of each kept (noise only adds time).
    let (mut known, mut unknown) = (Duration::MAX, Duration::MAX);
    for _ in 0..7 {
        known = known.min(outcome("alice", "nope").1);
        unknown = unknown.min(outcome("mallory", "nope").1);
    }
    let ratio = unknown.as_secs_f64() / known.as_secs_f64();
    assert!((0.33..3.0).contains(&ratio), "known {known:?} unknown {unknown:?}");
}

#[test]
fn login_unavailable_and_bad_form() {
    // No users file: the POST answers 503, never a token.
    let env = hmac_env(|_| {});
    let csrf = crate::login::new_csrf_token();
    let o = post(&env, &format!("username=a&password=b&csrf_token={csrf}"), Some(&csrf));
    assert!(matches!(
        o,
        LoginOutcome::Failure { reason: LoginFailure::Unavailable, page: LoginPage { status: 503, .. }, .. }
    ));
    let env = env_with(SECRET, Some(&users()), |_| {}).unwrap();
    let big = "x".repeat(crate::login::MAX_FORM_LEN + 1);
    let o = post(&env, &big, Some(&csrf));
    assert!(matches!(
        o,
        LoginOutcome::Failure { reason: LoginFailure::BadForm, page: LoginPage { status: 400, .. }, .. }
    ));
}

#[test]
fn login_page_escapes() {
    let env = hmac_env(|_| {});
    let html = env.cfg.login_page("/a\"><script>", "c\"sr<f", Some("<b>bad</b>"));
    assert!(!html.contains("<script>") && !html.contains("<b>"));
    assert!(html.contains("&lt;b&gt;bad&lt;/b&gt;") && html.contains("role=\"alert\""));
    assert!(html.contains("value=\"c&quot;sr&lt;f\""));
    // An unsafe next is replaced, not only escaped.
    assert!(html.contains("name=\"next\" value=\"/\""));
    assert!(!env.cfg.login_page("/", "c", None).contains("role=\"alert\""));
}
