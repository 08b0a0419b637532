//! `@verifySSN`
//!
//! Description: US social security number detection: candidates found by the pattern
//! (ModSecurity v3's suffix-by-suffix search) must have exactly 9 digits, not all
//! ascending by one nor all equal, no zero area/group/serial, and an area below 740 and
//! not 666.
//! Arguments: a PCRE pattern for candidates; an empty pattern never matches.
//! Returns: true when a candidate passes; captures it into TX:0.
//! Example: `SecRule ARGS "@verifySSN \d{3}-?\d{2}-?\d{4}" "id:1,deny,capture"`

use super::verified::Verified;
use super::{Operator, OperatorContext};

pub struct VerifySsn;

impl VerifySsn {
    pub fn create(param: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Verified::create(param, is_ssn)
    }
}

fn is_ssn(candidate: &[u8]) -> bool {
    let digits: Vec<u32> = candidate.iter().filter(|b| b.is_ascii_digit()).map(|b| u32::from(b - b'0')).collect();
    let [a0, a1, a2, g0, g1, s0, s1, s2, s3] = digits[..] else {
        return false;
    };
    let ascending = digits.windows(2).all(|w| w[0] + 1 == w[1]);
    let repeated = digits.windows(2).all(|w| w[0] == w[1]);
    let area = a0 * 100 + a1 * 10 + a2;
    let group = g0 * 10 + g1;
    let serial = s0 * 1000 + s1 * 100 + s2 * 10 + s3;
    !ascending && !repeated && area != 0 && group != 0 && serial != 0 && area < 740 && area != 666
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn table() {
        let ctx = OperatorContext::new(Path::new("."));
        for (input, want) in [
            ("574-57-8065", true),
            ("asdf 574-57-8065 asdf", true),
            ("asdf 800-57-8065 asdf", false),
            ("123-45-6789", false),
            ("666-12-3456", false),
            ("111-11-1111", false),
            ("574-00-8065", false),
            ("", false),
        ] {
            let op = VerifySsn::create(r"\d{3}-?\d{2}-?\d{4}", &ctx).unwrap();
            assert_eq!(op.evaluate(input.as_bytes(), None), want, "{input:?}");
        }
    }
}
