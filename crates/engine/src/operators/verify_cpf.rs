//! `@verifyCPF`
//!
//! Description: Brazilian CPF number detection: candidates found by the pattern
//! (ModSecurity v3's suffix-by-suffix search) are checked on their first 11 digits
//! (ModSecurity reads at most 11 and ignores the rest): not a known invalid sequence,
//! and both check digits right.
//! Arguments: a PCRE pattern for candidates; an empty pattern never matches.
//! Returns: true when a candidate passes; captures it into TX:0.
//! Example: `SecRule ARGS "@verifyCPF ([0-9]{3}\.){2}[0-9]{3}-[0-9]{2}" "id:1,deny,capture"`

use super::verified::Verified;
use super::{Operator, OperatorContext};

/// Sequences ModSecurity rejects outright.
const INVALID: [&[u8; 11]; 11] = [
    b"00000000000",
    b"01234567890",
    b"11111111111",
    b"22222222222",
    b"33333333333",
    b"44444444444",
    b"55555555555",
    b"66666666666",
    b"77777777777",
    b"88888888888",
    b"99999999999",
];

pub struct VerifyCpf;

impl VerifyCpf {
    pub fn create(param: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Verified::create(param, is_cpf)
    }
}

fn is_cpf(candidate: &[u8]) -> bool {
    // ModSecurity reads the candidate as a C string: it ends at a NUL.
    let text = candidate.split(|&b| b == 0).next().unwrap_or_default();
    let digits: Vec<u8> = text.iter().copied().filter(u8::is_ascii_digit).take(11).collect();
    if digits.len() != 11 || INVALID.iter().any(|bad| bad.as_slice() == digits.as_slice()) {
        return false;
    }
    let d: Vec<u32> = digits.iter().map(|b| u32::from(b - b'0')).collect();
    let check = |n: usize| {
        // Weights n+1 down to 2 over the first n digits.
        let sum: u32 = d.iter().take(n).zip((2..=n as u32 + 1).rev()).map(|(x, w)| x * w).sum();
        let r = sum % 11;
        if r < 2 {
            0
        } else {
            11 - r
        }
    };
    let first = check(9);
    // The second check digit is computed over the first nine and the computed first one.
    let sum2: u32 = d.iter().take(9).zip((3..=11).rev()).map(|(x, w)| x * w).sum::<u32>() + first * 2;
    let second = if sum2 % 11 < 2 { 0 } else { 11 - sum2 % 11 };
    d.get(9) == Some(&first) && d.get(10) == Some(&second)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn table() {
        let ctx = OperatorContext::new(Path::new("."));
        for (input, want) in [
            ("asdf 010.817.514-60 asdf", true),
            ("asdf 010.817.514-61 asdf", false),
            ("asdf 010.817 asdf", false),
            ("111.111.111-11", false),
            ("", false),
        ] {
            let op = VerifyCpf::create(r"([0-9]{3}\.){2}[0-9]{3}-[0-9]{2}", &ctx).unwrap();
            assert_eq!(op.evaluate(input.as_bytes(), None), want, "{input:?}");
        }
    }
}
