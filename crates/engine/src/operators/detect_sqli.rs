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

use libinjectionrs::{SqliFlags, SqliState};

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
        // The state is used directly: the crate's `detect_sqli` fingerprints every input
        // once more after detection to return it, which doubled the cost of a benign value.
        let hit = std::panic::catch_unwind(|| {
            let mut state = SqliState::new(input, SqliFlags::FLAG_NONE);
            state.detect().then(|| state.fingerprint_string())
        });
        let Ok(Some(fingerprint)) = hit else {
            return false;
        };
        capture_one(caps, fingerprint.as_bytes());
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

    /// Verdict and fingerprint as the crate's `detect_sqli` gives them (which fingerprints
    /// again after detecting), whichever context detected it: as-is, MySQL comments,
    /// single or double quoted.
    fn same_as_the_crate(input: &[u8]) {
        let want = libinjectionrs::detect_sqli(input);
        let mut caps = Captures::new();
        let got = DetectSqli.evaluate(input, Some(&mut caps));
        assert_eq!(got, want.is_injection(), "{:?}", String::from_utf8_lossy(input));
        if got {
            let fp = want.fingerprint.as_ref().map(|f| f.as_str().as_bytes().to_vec()).unwrap_or_default();
            assert_eq!(caps, vec![fp], "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn agrees_with_the_crate_in_every_context() {
        for input in [
            "1 union select x",
            "1' OR '1'='1",
            "1\" or \"1\"=\"1",
            "admin'--",
            "1 -- comment\nunion select 1",
            "1 # x\n or 1=1",
            "x' /*!union*/ select",
            "\"; drop table t; --",
            "@timestamp",
            "2024-01-01T00:00:00.000Z",
            "it's fine",
        ] {
            same_as_the_crate(input.as_bytes());
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, failure_persistence: None, ..Default::default() })]
        #[test]
        fn agrees_with_the_crate_on_sql_like_input(
            input in proptest::collection::vec(proptest::sample::select(
                b"1a' \"-#/*!=();,orunselect\n".to_vec()), 0..24)
        ) {
            same_as_the_crate(&input);
        }
    }
}
