//! `@validateByteRange`
//!
//! Description: flags values containing a byte outside the allowed set.
//! Arguments: comma-separated byte values and ranges, e.g. `1-255` or `9,10,13,32-126`.
//! As in ModSecurity v3, an entry that is not a number (or a bad range) is skipped, not an
//! error; numbers are read like `std::stoi` (leading spaces, trailing junk ignored).
//! Returns: true when at least one byte is outside the set (an empty value is valid).
//! Example: `SecRule ARGS "@validateByteRange 32-126" "id:1,deny"`

use super::{Captures, Operator, OperatorContext};

#[derive(Debug)]
pub struct ValidateByteRange {
    allowed: [bool; 256],
}

/// `std::stoi` on one side of a range.
fn stoi(text: &str) -> Option<i64> {
    let t = text.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (sign, digits) = match t.as_bytes().first() {
        Some(b'-') => (-1, &t[1..]),
        Some(b'+') => (1, &t[1..]),
        _ => (1, t),
    };
    let end = digits.bytes().take_while(u8::is_ascii_digit).count();
    // Long digit runs overflow int in stoi, which throws.
    digits.get(..end).filter(|d| !d.is_empty() && d.len() <= 10).and_then(|d| d.parse::<i64>().ok()).map(|v| sign * v)
}

impl ValidateByteRange {
    pub fn create(param: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        let mut allowed = [false; 256];
        for entry in param.split(',') {
            match entry.split_once('-') {
                None => {
                    // ModSecurity does not range-check a single value (it writes past its
                    // table); values outside 0..=255 are simply ignored here.
                    if let Some(slot) =
                        stoi(entry).and_then(|v| usize::try_from(v).ok()).and_then(|v| allowed.get_mut(v))
                    {
                        *slot = true;
                    }
                }
                Some((lo, hi)) => {
                    if let (Some(lo), Some(hi)) = (stoi(lo), stoi(hi)) {
                        if (0..=255).contains(&lo) && (0..=255).contains(&hi) && lo <= hi {
                            for slot in allowed.iter_mut().take(hi as usize + 1).skip(lo as usize) {
                                *slot = true;
                            }
                        }
                    }
                }
            }
        }
        Ok(Box::new(ValidateByteRange { allowed }))
    }
}

impl Operator for ValidateByteRange {
    fn evaluate(&self, input: &[u8], _: Option<&mut Captures>) -> bool {
        input.iter().any(|&b| !self.allowed[usize::from(b)])
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
            ("32-126", "", false),
            ("32-126", "abc def", false),
            ("32-126", "abc\tdef", true),
            ("9,10,13,32-126", "a\tb", false),
            ("48-57, 97", "0a9", false), // " 97" read like stoi
            ("x,48-57", "1", false),
            ("300", "a", true),
            ("0-255", "\u{0}\u{7f}", false),
        ] {
            let op = ValidateByteRange::create(param, &ctx).unwrap();
            assert_eq!(op.evaluate(input.as_bytes(), None), want, "{param:?} {input:?}");
        }
    }
}
