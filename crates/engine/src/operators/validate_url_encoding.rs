//! `@validateUrlEncoding`
//!
//! Description: flags values whose `%` escapes are malformed: a `%` not followed by two
//! hex digits (a `%` or `%4` at the end included), as ModSecurity v3 checks them.
//! Arguments: none.
//! Returns: true when the encoding is invalid (an empty value is valid).
//! Example: `SecRule REQUEST_URI_RAW "@validateUrlEncoding" "id:1,deny"`

use super::{Captures, Operator, OperatorContext};

#[derive(Debug)]
pub struct ValidateUrlEncoding;

impl ValidateUrlEncoding {
    pub fn create(_: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Ok(Box::new(ValidateUrlEncoding))
    }
}

impl Operator for ValidateUrlEncoding {
    /// Only a `%` can start a malformed escape.
    fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        Some(vec![b"%".to_vec()])
    }

    fn evaluate(&self, input: &[u8], _: Option<&mut Captures>) -> bool {
        let mut i = 0;
        while let Some(&b) = input.get(i) {
            if b != b'%' {
                i += 1;
                continue;
            }
            match (input.get(i + 1), input.get(i + 2)) {
                (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i += 3,
                _ => return true,
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        for (input, want) in [
            ("", false),
            ("abc", false),
            ("%41%42", false),
            ("%4", true),
            ("%", true),
            ("%zz", true),
            ("a%4g", true),
            ("%%41", true),
        ] {
            assert_eq!(ValidateUrlEncoding.evaluate(input.as_bytes(), None), want, "{input:?}");
        }
    }

    #[test]
    fn malformed_escapes_hold_a_percent() {
        crate::operators::assert_literals_needed(&ValidateUrlEncoding, b"%%0123456789abcdefABCDEFgzG+ \x00\xff");
    }
}
