//! `@detectSQLi`
//!
//! Description: SQL injection detection with libinjection (the pure-Rust port
//! `libinjectionrs` with Ward's speed fixes, vendor/libinjectionrs; ported from libinjection 85e252a; ModSecurity v3 bundles b9fcaaf,
//! whose detection code is the same apart from formatting). On the 14,404 CRS test
//! payloads it gives the same verdicts and fingerprints as the libinjection 3.9.2 inside
//! Debian's ModSecurity 3.0.9.
//! Arguments: none (a parameter is ignored).
//! Returns: true when libinjection reports SQLi; captures the fingerprint (e.g. `s&sos`)
//! into TX:0.
//! Example: `SecRule ARGS "@detectSQLi" "id:1,deny,capture"`

use super::{capture_one, Captures, Operator, OperatorContext};

#[derive(Debug)]
pub struct DetectSqli;

impl DetectSqli {
    pub fn create(_: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        // The (patched, vendor/libinjectionrs) crate builds its keyword index on first use:
        // at load, in nginx's master, so that workers inherit it instead of each building it.
        let _ = std::panic::catch_unwind(|| libinjectionrs::detect_sqli(b"1 union select x"));
        Ok(Box::new(DetectSqli))
    }
}

impl Operator for DetectSqli {
    fn evaluate(&self, input: &[u8], caps: Option<&mut Captures>) -> bool {
        // The port still indexes slices; a panic there must not take the worker down.
        let Ok(result) = std::panic::catch_unwind(|| libinjectionrs::detect_sqli(input)) else {
            return false;
        };
        if !result.is_injection() {
            return false;
        }
        let fingerprint = result.fingerprint.as_ref().map(|f| f.as_str().as_bytes()).unwrap_or_default();
        capture_one(caps, fingerprint);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let mut caps = Captures::new();
        for (input, want) in [
            ("", None),
            ("this is not isqli", None),
            ("ascii(substring(version() from 1 for 1))", Some("f(f(f")),
            ("1' OR '1'='1", Some("s&sos")),
        ] {
            let got = DetectSqli.evaluate(input.as_bytes(), Some(&mut caps));
            assert_eq!(got, want.is_some(), "{input:?}");
            if let Some(fp) = want {
                assert_eq!(caps, vec![fp.as_bytes().to_vec()], "{input:?}");
            }
        }
    }
}
