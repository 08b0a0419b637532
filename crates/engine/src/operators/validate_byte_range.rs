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
    /// A match holds a byte outside the set. Not worth a gate when letters or digits are
    /// outside it: nearly every value would pass, and every byte would report to the scan.
    fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        let outside: Vec<u8> = (0..=255u8).filter(|&b| !self.allowed[usize::from(b)]).collect();
        if outside.is_empty() || outside.iter().any(u8::is_ascii_alphanumeric) {
            return None;
        }
        Some(outside.into_iter().map(|b| vec![b]).collect())
    }

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

    /// Gated on the bytes outside the set, unless letters or digits are among them.
    #[test]
    fn matches_hold_a_byte_outside_the_set() {
        let ctx = OperatorContext::new(Path::new("."));
        // The CRS's sets (920270-920273), and one with a single byte outside.
        for param in
            ["1-255", "9,10,13,32-126,128-255", "32-36,38-126", "38,44-46,48-58,61,65-90,95,97-122", "0-90,92-255"]
        {
            let op = ValidateByteRange::create(param, &ctx).unwrap();
            let alphabet: Vec<u8> = (0..=255u8).chain(*b"%&'\x00\x01\x7f\x80").collect();
            crate::operators::assert_literals_needed(op.as_ref(), &alphabet);
        }
        let set = |p: &str| ValidateByteRange::create(p, &ctx).unwrap().required_literals();
        assert_eq!(set("1-255"), Some(vec![vec![0]]));
        assert_eq!(set("0-255"), None, "nothing outside");
        assert_eq!(set("32-126,128-255").map(|s| s.len()), Some(33));
        assert_eq!(set("48-57"), None, "letters outside");
        assert_eq!(set("97-122"), None, "digits outside");
    }
}
