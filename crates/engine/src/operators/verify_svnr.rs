//! `@verifySVNR`
//!
//! Description: Austrian social insurance number (SVNR) detection: candidates found by the
//! pattern (ModSecurity v3's suffix-by-suffix search) are checked on their first 10
//! digits: not one of ModSecurity's rejected sequences, and the check digit (the 4th)
//! equal to the weighted sum (3 7 9 _ 5 8 4 2 1 6) mod 11, 10 counting as 0.
//! Arguments: a PCRE pattern for candidates; an empty pattern never matches.
//! Returns: true when a candidate passes; captures it into TX:0.
//! Example: `SecRule ARGS "@verifySVNR ([0-9]{4} ?[0-9]{6})" "id:1,deny,capture"`

use super::verified::Verified;
use super::{Operator, OperatorContext};

/// The sequences ModSecurity compares against (its table has two more that its loop
/// never reaches: 8888888888 and 9999999999 are not rejected).
const INVALID: [&[u8; 10]; 10] = [
    b"0000000000",
    b"0123456789",
    b"1234567890",
    b"1111111111",
    b"2222222222",
    b"3333333333",
    b"4444444444",
    b"5555555555",
    b"6666666666",
    b"7777777777",
];
const WEIGHTS: [u32; 10] = [3, 7, 9, 0, 5, 8, 4, 2, 1, 6];

pub struct VerifySvnr;

impl VerifySvnr {
    pub fn create(param: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Verified::create(param, is_svnr)
    }
}

fn is_svnr(candidate: &[u8]) -> bool {
    let text = candidate.split(|&b| b == 0).next().unwrap_or_default();
    let digits: Vec<u8> = text.iter().copied().filter(u8::is_ascii_digit).take(10).collect();
    if digits.len() != 10 || INVALID.iter().any(|bad| bad.as_slice() == digits.as_slice()) {
        return false;
    }
    let d: Vec<u32> = digits.iter().map(|b| u32::from(b - b'0')).collect();
    let sum = d.iter().zip(WEIGHTS).map(|(x, w)| x * w).sum::<u32>() % 11;
    d.get(3) == Some(&(if sum == 10 { 0 } else { sum }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn table() {
        let ctx = OperatorContext::new(Path::new("."));
        for (input, want) in [
            ("1237010180", true),
            ("asdf 1237 010180 asdf", true),
            ("asdf 0100817 asdf", false),
            ("1238010180", false),
            ("", false),
        ] {
            let op = VerifySvnr::create("([0-9]{4} ?[0-9]{6})", &ctx).unwrap();
            assert_eq!(op.evaluate(input.as_bytes(), None), want, "{input:?}");
        }
    }
}
