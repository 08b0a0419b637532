//! `@verifyCC`
//!
//! Description: credit card number detection: every match of the pattern (searched from
//! each start offset, as ModSecurity v3 does) is checked with the Luhn (mod 10) sum over
//! its digits; the first match that passes counts.
//! Arguments: a PCRE pattern for candidate numbers.
//! Returns: true when a candidate passes Luhn; captures it into TX:0.
//! Example: `SecRule ARGS "@verifyCC \d{13,16}" "id:1,deny,capture"`

use super::pattern::Pattern;
use super::{capture_one, Captures, Operator, OperatorContext};

#[derive(Debug)]
pub struct VerifyCc {
    pattern: Pattern,
}

impl VerifyCc {
    pub fn create(param: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Ok(Box::new(VerifyCc { pattern: Pattern::new(param)? }))
    }
}

/// Luhn check over the digits of `number` (other bytes skipped); no digits fails.
fn luhn(number: &[u8]) -> bool {
    // Doubled digit with its digits summed.
    const DOUBLED: [u32; 10] = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9];
    let digits = number.iter().filter(|b| b.is_ascii_digit()).map(|b| u32::from(b - b'0'));
    // Summing both weightings from the left avoids knowing the parity in advance.
    let (mut sums, mut odd, mut count) = ([0u32; 2], 0usize, 0usize);
    for d in digits {
        let (plain, doubled) = (d, DOUBLED[d as usize]);
        sums[0] += if odd == 0 { doubled } else { plain };
        sums[1] += if odd == 1 { doubled } else { plain };
        odd = 1 - odd;
        count += 1;
    }
    count > 0 && sums[odd] % 10 == 0
}

impl Operator for VerifyCc {
    fn evaluate(&self, input: &[u8], caps: Option<&mut Captures>) -> bool {
        let mut offset = 0;
        while offset < input.len() {
            let Some((start, end)) = self.pattern.find_at(input, offset) else {
                return false;
            };
            let candidate = input.get(start..end).unwrap_or_default();
            if luhn(candidate) {
                capture_one(caps, candidate);
                return true;
            }
            // ModSecurity retries from every later offset; up to `start` that finds this
            // same match again, so resume just past it.
            offset = offset.max(start) + 1;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn table() {
        let ctx = OperatorContext::new(Path::new("."));
        let pattern = r"\b\d{4}-?\d{4}-?\d{4}-?\d{4}\b";
        for (input, want) in
            [("4111111111111111", true), ("4111111111111112", false), ("card: 4111-1111-1111-1111.", true), ("", false)]
        {
            let op = VerifyCc::create(pattern, &ctx).unwrap();
            assert_eq!(op.evaluate(input.as_bytes(), None), want, "{input:?}");
        }
        assert!(luhn(b"79927398713") && !luhn(b"79927398710") && !luhn(b"abc"));
    }
}
