//! `@within`
//!
//! Description: true when the value occurs inside the parameter (the reverse of
//! `@contains`), byte-exact. ModSecurity matches an empty value unconditionally.
//! Arguments: the string to search in, e.g. a space-separated list of allowed words.
//! Returns: true when the value is empty or a substring of the parameter.
//! Example: `SecRule REQUEST_METHOD "!@within GET POST HEAD" "id:1,deny"`

use super::{Captures, Operator, OperatorContext};

#[derive(Debug)]
pub struct Within {
    haystack: Vec<u8>,
}

impl Within {
    pub fn create(param: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Ok(Box::new(Within { haystack: param.as_bytes().to_vec() }))
    }
}

impl Operator for Within {
    fn evaluate(&self, input: &[u8], _: Option<&mut Captures>) -> bool {
        let Some((&first, rest)) = input.split_first() else { return true };
        // The parameter is a short list and the value a word: trying each place its first
        // byte occurs beats building a `memmem` searcher for the value on every call. The
        // CRS's lists repeat a separator (`/accept-charset/ /content-encoding/ …`), so most
        // places differ at once: compared in line, not through a `memcmp` call each.
        let h = &self.haystack;
        h.len() >= input.len()
            && memchr::memchr_iter(first, &h[..=h.len() - input.len()])
                .any(|at| h[at + 1..].iter().zip(rest).all(|(a, b)| a == b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn table() {
        let ctx = OperatorContext::new(Path::new("."));
        for (param, input, want) in [
            ("", "", true),
            ("abc", "", true),
            ("", "abc", false),
            ("GET POST", "POST", true),
            ("GET POST", "PUT", false),
            ("GET POST", "GET POST", true),
            ("GET POST", "GET POST ", false),
            ("GET POST", "T", true),
            ("GET POST", "ST", true),
            ("GET POST", "STX", false),
            ("aab", "ab", true),
            ("a", "aa", false),
        ] {
            let op = Within::create(param, &ctx).unwrap();
            assert_eq!(op.evaluate(input.as_bytes(), None), want, "{param:?} {input:?}");
        }
    }

    proptest::proptest! {
        /// The same answer as a plain substring search, over a small alphabet so that
        /// values often occur.
        #[test]
        fn is_a_substring_search(h in "[ab ]{0,12}", v in "[ab ]{0,5}") {
            let ctx = OperatorContext::new(Path::new("."));
            let want = v.is_empty() || h.as_bytes().windows(v.len()).any(|w| w == v.as_bytes());
            proptest::prop_assert_eq!(Within::create(&h, &ctx).unwrap().evaluate(v.as_bytes(), None), want);
        }
    }
}
