//! `@beginsWith`
//!
//! Description: true when the value starts with the parameter (byte-exact, case-sensitive).
//! Arguments: the prefix (macros expanded by the caller).
//! Returns: true on a match; an empty prefix matches everything.
//! Example: `SecRule REQUEST_LINE "!@beginsWith GET" "id:1,deny"`

use super::{Captures, Operator, OperatorContext};

#[derive(Debug)]
pub struct BeginsWith {
    prefix: Vec<u8>,
}

impl BeginsWith {
    pub fn create(param: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Ok(Box::new(BeginsWith { prefix: param.as_bytes().to_vec() }))
    }
}

impl Operator for BeginsWith {
    fn evaluate(&self, input: &[u8], _: Option<&mut Captures>) -> bool {
        input.starts_with(&self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn table() {
        let ctx = OperatorContext::new(Path::new("."));
        for (param, input, want) in [("", "", true), ("abc", "abcdef", true), ("abc", "ab", false), ("b", "abc", false)]
        {
            let op = BeginsWith::create(param, &ctx).unwrap();
            assert_eq!(op.evaluate(input.as_bytes(), None), want, "{param:?} {input:?}");
        }
    }
}
