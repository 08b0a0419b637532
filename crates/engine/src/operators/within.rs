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
    /// Which byte pairs occur in the parameter (hashed into 4096 bits): a value with a pair
    /// that does not is no substring of it. Most values are not in the list (the CRS asks
    /// for every header name whether it is a restricted one), and this answers them
    /// before building a `memmem` searcher for the value.
    pairs: Box<[u64; 64]>,
}

fn pair_bit(a: u8, b: u8) -> usize {
    ((usize::from(a) << 6) ^ usize::from(b)) & 4095
}

impl Within {
    pub fn create(param: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        let haystack = param.as_bytes().to_vec();
        let mut pairs = Box::new([0u64; 64]);
        for w in haystack.windows(2) {
            let bit = pair_bit(w[0], w[1]);
            pairs[bit / 64] |= 1 << (bit % 64);
        }
        Ok(Box::new(Within { haystack, pairs }))
    }

    fn has_pair(&self, a: u8, b: u8) -> bool {
        let bit = pair_bit(a, b);
        self.pairs[bit / 64] & (1 << (bit % 64)) != 0
    }
}

impl Operator for Within {
    fn evaluate(&self, input: &[u8], _: Option<&mut Captures>) -> bool {
        match input {
            [] => true,
            [b] => memchr::memchr(*b, &self.haystack).is_some(),
            _ => {
                input.len() <= self.haystack.len()
                    && input.windows(2).all(|w| self.has_pair(w[0], w[1]))
                    && memchr::memmem::find(&self.haystack, input).is_some()
            }
        }
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
