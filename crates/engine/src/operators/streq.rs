//! `@streq`
//!
//! Description: true when the value equals the parameter (byte-exact, case-sensitive).
//! Arguments: the string to compare with (macros expanded by the caller).
//! Returns: true when equal.
//! Example: `SecRule REQUEST_METHOD "@streq POST" "id:1,pass"`

use super::{Captures, Operator, OperatorContext};

#[derive(Debug)]
pub struct StrEq {
    expected: Vec<u8>,
}

impl StrEq {
    pub fn create(param: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Ok(Box::new(StrEq { expected: param.as_bytes().to_vec() }))
    }
}

impl Operator for StrEq {
    fn evaluate(&self, input: &[u8], _: Option<&mut Captures>) -> bool {
        input == self.expected.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn table() {
        let ctx = OperatorContext::new(Path::new("."));
        for (param, input, want) in
            [("", "", true), ("abc", "abc", true), ("abc", "ABC", false), ("abc", "abcd", false)]
        {
            let op = StrEq::create(param, &ctx).unwrap();
            assert_eq!(op.evaluate(input.as_bytes(), None), want, "{param:?} {input:?}");
        }
    }
}
