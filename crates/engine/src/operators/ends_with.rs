//! `@endsWith`
//!
//! Description: true when the value ends with the parameter (byte-exact, case-sensitive).
//! Arguments: the suffix (macros expanded by the caller).
//! Returns: true on a match; an empty suffix matches everything.
//! Example: `SecRule REQUEST_FILENAME "@endsWith .bak" "id:1,deny"`

use super::{Captures, Operator, OperatorContext};

#[derive(Debug)]
pub struct EndsWith {
    suffix: Vec<u8>,
}

impl EndsWith {
    pub fn create(param: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Ok(Box::new(EndsWith { suffix: param.as_bytes().to_vec() }))
    }
}

impl Operator for EndsWith {
    fn evaluate(&self, input: &[u8], _: Option<&mut Captures>) -> bool {
        input.ends_with(&self.suffix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn table() {
        let ctx = OperatorContext::new(Path::new("."));
        for (param, input, want) in [("", "", true), ("def", "abcdef", true), ("abc", "bc", false), ("b", "abc", false)]
        {
            let op = EndsWith::create(param, &ctx).unwrap();
            assert_eq!(op.evaluate(input.as_bytes(), None), want, "{param:?} {input:?}");
        }
    }
}
