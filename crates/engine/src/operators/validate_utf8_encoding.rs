//! `@validateUtf8Encoding`
//!
//! Description: flags values that are not well-formed UTF-8 by ModSecurity v3's rules:
//! truncated sequences, bad continuation bytes, overlong forms, surrogates (U+D800-DFFF),
//! lead bytes 0xF5-0xF7 (above U+10FFFF) and 0x80-0xBF/0xF8-0xFF as lead bytes.
//! (ModSecurity does not check 0xF4 sequences above U+10FFFF; neither does this.)
//! Arguments: none.
//! Returns: true when the value is invalid UTF-8.
//! Example: `SecRule ARGS "@validateUtf8Encoding" "id:1,deny"`

use super::{Captures, Operator, OperatorContext};

#[derive(Debug)]
pub struct ValidateUtf8Encoding;

impl ValidateUtf8Encoding {
    pub fn create(_: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Ok(Box::new(ValidateUtf8Encoding))
    }
}

/// Length of the valid character at the start of `s`, or `None` when it is invalid.
fn character_len(s: &[u8]) -> Option<usize> {
    let lead = *s.first()?;
    let (len, mut code) = match lead {
        0x00..=0x7f => return Some(1),
        0xc0..=0xdf => (2, u32::from(lead & 0x1f)),
        0xe0..=0xef => (3, u32::from(lead & 0x0f)),
        0xf0..=0xf4 => (4, u32::from(lead & 0x07)),
        _ => return None, // continuation byte as lead, 0xF5.. restricted/invalid
    };
    let tail = s.get(1..len)?;
    for &b in tail {
        if b & 0xc0 != 0x80 {
            return None;
        }
        code = (code << 6) | u32::from(b & 0x3f);
    }
    let min = match len {
        2 => 0x80,
        3 => 0x800,
        _ => 0x10000,
    };
    if code < min || (0xd800..=0xdfff).contains(&code) {
        return None;
    }
    Some(len)
}

impl Operator for ValidateUtf8Encoding {
    /// ASCII is valid UTF-8: an invalid value holds a byte of 0x80-0xFF.
    fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        Some((0x80..=0xff).map(|b| vec![b]).collect())
    }

    fn evaluate(&self, input: &[u8], _: Option<&mut Captures>) -> bool {
        // The standard library's check is stricter (it also refuses 0xF4 sequences above
        // U+10FFFF) and much faster on ASCII: what it accepts is valid here too.
        std::str::from_utf8(input).is_err() && invalid(input)
    }
}

/// Whether `input` has a character ModSecurity finds invalid, one character at a time.
fn invalid(input: &[u8]) -> bool {
    let mut rest = input;
    while !rest.is_empty() {
        match character_len(rest) {
            Some(n) => rest = rest.get(n..).unwrap_or_default(),
            None => return true,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&[u8], bool)] = &[
            (b"", false),
            (b"ascii", false),
            ("é€𝄞".as_bytes(), false),
            (b"\xc3", true),
            (b"\xc3\x28", true),
            (b"\xc0\xaf", true),          // overlong
            (b"\xed\xa0\x80", true),      // surrogate
            (b"\xf5\x80\x80\x80", true),  // above U+10FFFF
            (b"\xf4\x90\x80\x80", false), // not checked by ModSecurity
            (b"\x80", true),
        ];
        for (input, want) in cases {
            assert_eq!(ValidateUtf8Encoding.evaluate(input, None), *want, "{input:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 3000, failure_persistence: None, ..Default::default() })]
        /// The fast path (the standard library's check first) says what the
        /// character-by-character check says: on valid text, and with bytes spliced in.
        #[test]
        fn fast_path_agrees(text in "\\PC{0,24}", bytes in proptest::collection::vec(0x80u8..=0xff, 0..4), at in 0usize..100) {
            let mut v = text.into_bytes();
            let at = at.min(v.len());
            v.splice(at..at, bytes);
            proptest::prop_assert_eq!(ValidateUtf8Encoding.evaluate(&v, None), invalid(&v));
        }
    }

    #[test]
    fn invalid_values_hold_a_byte_above_ascii() {
        let alphabet: Vec<u8> = (0..=255u8).collect();
        crate::operators::assert_literals_needed(&ValidateUtf8Encoding, &alphabet);
        assert!(ValidateUtf8Encoding.evaluate(b"a\xff", None));
    }
}
