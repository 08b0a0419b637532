//! The key file named by `ward_auth_key_file`, read once at load by the master.
//!
//! Three formats, told apart by content:
//! - a JWK Set (`{"keys":[...]}`) or a single JWK: several keys selected by `kid`
//!   (RSA, EC P-256/P-384, Ed25519, and `oct` HMAC secrets); `"use":"enc"` keys are skipped;
//! - PEM blocks: public keys (`PUBLIC KEY`, `RSA PUBLIC KEY`) to verify tokens issued elsewhere,
//!   or a private key (`PRIVATE KEY`, `RSA PRIVATE KEY`, `EC PRIVATE KEY`) to issue tokens too
//!   (its public half is derived to verify them);
//! - anything else: an HMAC secret, the file's raw bytes (HS256/384/512), at least 32 bytes.
//!
//! Each key carries the explicit list of algorithms its type allows, so `alg: none`, an HMAC
//! token "signed" with a public key (algorithm confusion) and any other algorithm the key was not
//! made for are refused before any signature check. Files holding secrets (HMAC secrets, private
//! keys, `oct` JWKs or JWKs with private members) must not be world-readable.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};

use crate::error::AuthError;

/// Key files larger than this are refused (a JWKS of a few dozen keys is a few tens of KB).
const MAX_KEY_FILE: u64 = 1024 * 1024;
/// RFC 7518 §3.2: an HMAC key must be at least as long as the hash output (256 bits for HS256).
pub const MIN_HMAC_SECRET: usize = 32;
/// RSA keys shorter than this are refused (RFC 7518 §3.3 requires 2048 bits).
const MIN_RSA_BITS: usize = 2048;

const HMAC_ALGS: &[Algorithm] = &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
const RSA_ALGS: &[Algorithm] =
    &[Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256, Algorithm::PS384, Algorithm::PS512];

/// One key able to verify tokens, with the algorithms it accepts.
pub(crate) struct VerifyKey {
    pub kid: Option<String>,
    pub algs: Vec<Algorithm>,
    pub key: DecodingKey,
    /// Built by `KeySet::finish` from the configured claims policy (one per key: the allow-list
    /// differs per key type).
    pub validation: Validation,
}

/// The key used to issue tokens (built-in login, `ward token`).
pub(crate) struct SignKey {
    pub kid: Option<String>,
    pub alg: Algorithm,
    pub key: EncodingKey,
}

/// Every key of a key file.
pub struct KeySet {
    pub(crate) verify: Vec<VerifyKey>,
    pub(crate) sign: Option<SignKey>,
    /// The file holds secret material (so it must not be world-readable).
    pub(crate) secret: bool,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("verify_keys", &self.verify.len())
            .field("can_sign", &self.sign.is_some())
            .finish()
    }
}

impl KeySet {
    /// Reads and parses `path`; refuses a world-readable file holding secrets.
    pub fn load(path: &Path) -> Result<KeySet, AuthError> {
        let file = std::fs::File::open(path).map_err(|e| AuthError::io(path, e))?;
        let meta = file.metadata().map_err(|e| AuthError::io(path, e))?;
        if !meta.is_file() {
            return Err(AuthError::file(path, "the key file is not a regular file"));
        }
        let mut bytes = Vec::new();
        file.take(MAX_KEY_FILE + 1).read_to_end(&mut bytes).map_err(|e| AuthError::io(path, e))?;
        if bytes.len() as u64 > MAX_KEY_FILE {
            return Err(AuthError::file(path, "the key file is larger than 1 MiB"));
        }
        let set = KeySet::parse(&bytes).map_err(|m| AuthError::file(path, m))?;
        let mode = meta.permissions().mode();
        if set.secret && mode & 0o004 != 0 {
            return Err(AuthError::file(
                path,
                format!(
                    "the key file holds a secret (HMAC secret or private key) but is world-readable \
                     (mode {:04o}); run `chmod 600 {}` (nginx reads it as root at startup)",
                    mode & 0o7777,
                    path.display()
                ),
            ));
        }
        Ok(set)
    }

    /// Parses key file content; the error says what is wrong (the caller adds the path).
    pub fn parse(bytes: &[u8]) -> Result<KeySet, String> {
        if bytes.is_empty() {
            return Err("the key file is empty".into());
        }
        if let Ok(text) = std::str::from_utf8(bytes) {
            let trimmed = text.trim_start();
            if trimmed.starts_with('{') {
                return parse_jwks(trimmed);
            }
            if text.contains("-----BEGIN ") {
                return parse_pem(text);
            }
        }
        parse_hmac(bytes)
    }

    /// Whether tokens can be issued (an HMAC secret or a private key is present).
    pub fn can_sign(&self) -> bool {
        self.sign.is_some()
    }

    /// Whether the file holds secret material.
    pub fn is_secret(&self) -> bool {
        self.secret
    }

    /// Installs the claims policy into every key's validation.
    pub(crate) fn finish(&mut self, policy: &Validation) {
        for k in &mut self.verify {
            let mut v = policy.clone();
            v.algorithms = k.algs.clone();
            k.validation = v;
        }
    }
}

fn placeholder_validation() -> Validation {
    Validation::new(Algorithm::HS256)
}

fn verify_key(kid: Option<String>, algs: Vec<Algorithm>, key: DecodingKey) -> VerifyKey {
    VerifyKey { kid, algs, key, validation: placeholder_validation() }
}

fn parse_hmac(bytes: &[u8]) -> Result<KeySet, String> {
    if bytes.len() < MIN_HMAC_SECRET {
        return Err(format!(
            "the HMAC secret is {} bytes; at least {} are required (generate one with `ward keygen`)",
            bytes.len(),
            MIN_HMAC_SECRET
        ));
    }
    Ok(KeySet {
        verify: vec![verify_key(None, HMAC_ALGS.to_vec(), DecodingKey::from_secret(bytes))],
        sign: Some(SignKey { kid: None, alg: Algorithm::HS256, key: EncodingKey::from_secret(bytes) }),
        secret: true,
    })
}

/// Splits PEM text into (label, block) pairs, each block a complete BEGIN..END document.
fn pem_blocks(text: &str) -> Result<Vec<(&str, &str)>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let label_end = after.find("-----").ok_or("a PEM BEGIN line is not terminated")?;
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        let end =
            rest[start..].find(&end_marker).ok_or_else(|| format!("the PEM block \"{label}\" has no END line"))?;
        let block_end = start + end + end_marker.len();
        out.push((label, &rest[start..block_end]));
        rest = &rest[block_end..];
    }
    Ok(out)
}

fn rsa_public(key: &rsa::RsaPublicKey) -> Result<DecodingKey, String> {
    use rsa::traits::PublicKeyParts;
    let bits = key.n().bits();
    if bits < MIN_RSA_BITS {
        return Err(format!("the RSA key has {bits} bits; at least {MIN_RSA_BITS} are required"));
    }
    Ok(DecodingKey::from_rsa_raw_components(&key.n().to_bytes_be(), &key.e().to_bytes_be()))
}

fn p256_public(key: &p256::PublicKey) -> DecodingKey {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    DecodingKey::from_ec_der(key.to_encoded_point(false).as_bytes())
}

fn p384_public(key: &p384::PublicKey) -> DecodingKey {
    use p384::elliptic_curve::sec1::ToEncodedPoint;
    DecodingKey::from_ec_der(key.to_encoded_point(false).as_bytes())
}

fn parse_pem(text: &str) -> Result<KeySet, String> {
    use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
    use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};

    let blocks = pem_blocks(text)?;
    let mut set = KeySet { verify: Vec::new(), sign: None, secret: false };
    for (i, (label, block)) in blocks.iter().enumerate() {
        let n = i + 1;
        let bad = |what: &str, e: &dyn std::fmt::Display| format!("PEM block {n} ({label}): {what}: {e}");
        match *label {
            "PUBLIC KEY" => {
                let (algs, key) = if let Ok(k) = rsa::RsaPublicKey::from_public_key_pem(block) {
                    (RSA_ALGS.to_vec(), rsa_public(&k).map_err(|e| format!("PEM block {n}: {e}"))?)
                } else if let Ok(k) = p256::PublicKey::from_public_key_pem(block) {
                    (vec![Algorithm::ES256], p256_public(&k))
                } else if let Ok(k) = p384::PublicKey::from_public_key_pem(block) {
                    (vec![Algorithm::ES384], p384_public(&k))
                } else if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(block) {
                    (vec![Algorithm::EdDSA], DecodingKey::from_ed_der(k.as_bytes()))
                } else {
                    return Err(format!(
                        "PEM block {n} (PUBLIC KEY): not an RSA, EC P-256/P-384 or Ed25519 public key"
                    ));
                };
                set.verify.push(verify_key(None, algs, key));
            }
            "RSA PUBLIC KEY" => {
                let k = rsa::RsaPublicKey::from_pkcs1_pem(block).map_err(|e| bad("invalid RSA public key", &e))?;
                set.verify.push(verify_key(None, RSA_ALGS.to_vec(), rsa_public(&k)?));
            }
            "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
                if set.sign.is_some() {
                    return Err(format!("PEM block {n} ({label}): only one private key is allowed"));
                }
                set.secret = true;
                let (alg, verify, sign_key) = if *label == "RSA PRIVATE KEY" {
                    let k =
                        rsa::RsaPrivateKey::from_pkcs1_pem(block).map_err(|e| bad("invalid RSA private key", &e))?;
                    rsa_private(&k)?
                } else if *label == "EC PRIVATE KEY" {
                    if let Ok(k) = p256::SecretKey::from_sec1_pem(block) {
                        let der = k.to_pkcs8_der().map_err(|e| bad("EC key", &e))?;
                        (Algorithm::ES256, p256_public(&k.public_key()), EncodingKey::from_ec_der(der.as_bytes()))
                    } else if let Ok(k) = p384::SecretKey::from_sec1_pem(block) {
                        let der = k.to_pkcs8_der().map_err(|e| bad("EC key", &e))?;
                        (Algorithm::ES384, p384_public(&k.public_key()), EncodingKey::from_ec_der(der.as_bytes()))
                    } else {
                        return Err(format!("PEM block {n} (EC PRIVATE KEY): not a P-256 or P-384 key"));
                    }
                } else if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(block) {
                    rsa_private(&k)?
                } else if let Ok(k) = p256::SecretKey::from_pkcs8_pem(block) {
                    let der = k.to_pkcs8_der().map_err(|e| bad("EC key", &e))?;
                    (Algorithm::ES256, p256_public(&k.public_key()), EncodingKey::from_ec_der(der.as_bytes()))
                } else if let Ok(k) = p384::SecretKey::from_pkcs8_pem(block) {
                    let der = k.to_pkcs8_der().map_err(|e| bad("EC key", &e))?;
                    (Algorithm::ES384, p384_public(&k.public_key()), EncodingKey::from_ec_der(der.as_bytes()))
                } else if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(block) {
                    let der = k.to_pkcs8_der().map_err(|e| bad("Ed25519 key", &e))?;
                    (
                        Algorithm::EdDSA,
                        DecodingKey::from_ed_der(k.verifying_key().as_bytes()),
                        EncodingKey::from_ed_der(der.as_bytes()),
                    )
                } else {
                    return Err(format!(
                        "PEM block {n} (PRIVATE KEY): not an RSA, EC P-256/P-384 or Ed25519 private key"
                    ));
                };
                // The private key verifies only the algorithm it signs with.
                set.verify.push(verify_key(None, vec![alg], verify));
                set.sign = Some(SignKey { kid: None, alg, key: sign_key });
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(format!(
                    "PEM block {n}: encrypted private keys are not supported; decrypt it with \
                     `openssl pkey -in KEY -out KEY.plain` and protect the file with mode 0600"
                ));
            }
            "CERTIFICATE" => {
                return Err(format!(
                    "PEM block {n}: certificates are not supported; extract the public key with \
                     `openssl x509 -in CERT -pubkey -noout`"
                ));
            }
            other => return Err(format!("PEM block {n}: unsupported PEM type \"{other}\"")),
        }
    }
    if set.verify.is_empty() {
        return Err("no PEM key found".into());
    }
    Ok(set)
}

fn rsa_private(k: &rsa::RsaPrivateKey) -> Result<(Algorithm, DecodingKey, EncodingKey), String> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let verify = rsa_public(&k.to_public_key())?;
    let der = k.to_pkcs1_der().map_err(|e| format!("RSA private key: {e}"))?;
    Ok((Algorithm::RS256, verify, EncodingKey::from_rsa_der(der.as_bytes())))
}

fn key_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::HS256 => Algorithm::HS256,
        KeyAlgorithm::HS384 => Algorithm::HS384,
        KeyAlgorithm::HS512 => Algorithm::HS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

fn parse_jwks(text: &str) -> Result<KeySet, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("invalid JSON (JWK Set expected): {e}"))?;
    let entries: Vec<&serde_json::Value> = match value.get("keys") {
        Some(serde_json::Value::Array(keys)) => keys.iter().collect(),
        Some(_) => return Err("\"keys\" must be an array of JWKs".into()),
        None if value.get("kty").is_some() => vec![&value],
        None => return Err("a JSON key file must be a JWK Set ({\"keys\": [...]}) or a JWK".into()),
    };
    let mut set = KeySet { verify: Vec::new(), sign: None, secret: false };
    for (i, entry) in entries.into_iter().enumerate() {
        let name = match entry.get("kid").and_then(|k| k.as_str()) {
            Some(kid) => format!("JWK {i} (kid \"{kid}\")"),
            None => format!("JWK {i}"),
        };
        // Private members ("d", or "k" for oct) make the file secret.
        if entry.get("d").is_some() || entry.get("kty").and_then(|k| k.as_str()) == Some("oct") {
            set.secret = true;
        }
        let jwk: Jwk = serde_json::from_value(entry.clone()).map_err(|e| format!("{name}: {e}"))?;
        if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
            continue;
        }
        let family: Vec<Algorithm> = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => RSA_ALGS.to_vec(),
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                _ => return Err(format!("{name}: unsupported EC curve (P-256 and P-384 are supported)")),
            },
            AlgorithmParameters::OctetKeyPair(p) => match p.curve {
                EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
                _ => return Err(format!("{name}: unsupported OKP curve (Ed25519 is supported)")),
            },
            AlgorithmParameters::OctetKey(_) => HMAC_ALGS.to_vec(),
        };
        // An "alg" member narrows the key to that one algorithm, which must suit its type.
        let algs = match jwk.common.key_algorithm {
            None => family,
            Some(ka) => match key_algorithm(ka) {
                Some(alg) if family.contains(&alg) => vec![alg],
                _ => return Err(format!("{name}: \"alg\" does not match the key type")),
            },
        };
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("{name}: {e}"))?;
        if let AlgorithmParameters::OctetKey(_) = &jwk.algorithm {
            if key.as_bytes().len() < MIN_HMAC_SECRET {
                return Err(format!("{name}: the oct key is shorter than {MIN_HMAC_SECRET} bytes"));
            }
            // The first oct key signs, with its kid: a rotation lists the new key first and
            // keeps the old one to verify the tokens already out.
            if set.sign.is_none() {
                let (kid, alg) = (jwk.common.key_id.clone(), algs[0]);
                set.sign = Some(SignKey { kid, alg, key: EncodingKey::from_secret(key.as_bytes()) });
            }
        }
        if let AlgorithmParameters::RSA(_) = &jwk.algorithm {
            if let jsonwebtoken::DecodingKeyKind::RsaModulusExponent { n, .. } = key.kind() {
                let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
                if bits < MIN_RSA_BITS {
                    return Err(format!("{name}: the RSA key is shorter than {MIN_RSA_BITS} bits"));
                }
            }
        }
        set.verify.push(verify_key(jwk.common.key_id.clone(), algs, key));
    }
    if set.verify.is_empty() {
        return Err("the JWK Set holds no signature key".into());
    }
    Ok(set)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    #[test]
    fn hmac_secret_raw_bytes() {
        let set = KeySet::parse(&[7u8; 40]).unwrap();
        assert!(set.can_sign() && set.is_secret());
        assert_eq!(set.verify[0].algs, HMAC_ALGS);
        let err = KeySet::parse(b"short").unwrap_err();
        assert!(err.contains("at least 32"), "{err}");
        assert!(KeySet::parse(b"").unwrap_err().contains("empty"));
    }

    #[test]
    fn bad_files_have_clear_errors() {
        let cases: &[(&str, &str)] = &[
            ("{not json", "invalid JSON"),
            ("{\"a\":1}", "JWK Set"),
            ("{\"keys\":3}", "array"),
            ("{\"keys\":[]}", "no signature key"),
            ("{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2hvcnQ\"}]}", "shorter than 32"),
            ("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"AA\",\"y\":\"AA\"}]}", "unsupported EC curve"),
            ("{\"keys\":[{\"kty\":\"oct\",\"alg\":\"RS256\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}", "does not match"),
            ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "openssl x509"),
            ("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n", "encrypted"),
            ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not an RSA"),
            ("-----BEGIN PUBLIC KEY-----\nAAAA\n", "no END line"),
            ("-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n", "unsupported PEM type"),
        ];
        for (text, want) in cases {
            let err = KeySet::parse(text.as_bytes()).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn jwks_oct_is_secret_and_enc_keys_skipped() {
        let k = URL_SAFE_NO_PAD.encode([9u8; 32]);
        let text = format!(
            r#"{{"keys":[{{"kty":"oct","kid":"a","k":"{k}"}},{{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}}]}}"#
        );
        let set = KeySet::parse(text.as_bytes()).unwrap();
        assert!(set.is_secret());
        assert_eq!(set.verify.len(), 1);
        assert_eq!(set.verify[0].kid.as_deref(), Some("a"));
    }

    #[test]
    fn jwks_first_oct_key_signs_with_its_kid_and_alg() {
        let (a, b) = (URL_SAFE_NO_PAD.encode([9u8; 32]), URL_SAFE_NO_PAD.encode([8u8; 48]));
        let text = format!(
            r#"{{"keys":[{{"kty":"oct","kid":"new","alg":"HS384","k":"{a}"}},{{"kty":"oct","kid":"old","k":"{b}"}}]}}"#
        );
        let set = KeySet::parse(text.as_bytes()).unwrap();
        let sign = set.sign.as_ref().expect("an oct key signs");
        assert_eq!((sign.kid.as_deref(), sign.alg), (Some("new"), Algorithm::HS384));
    }
}
