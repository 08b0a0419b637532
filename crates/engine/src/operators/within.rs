//! `@within`
//!
//! Description: true when the value occurs inside the parameter (the reverse of
//! `@contains`), byte-exact. ModSecurity matches an empty value unconditionally.
//! Arguments: the string to search in, e.g. a space-separated list of allowed words.
//! Returns: true when the value is empty or a substring of the parameter.
//! Example: `SecRule REQUEST_METHOD "!@within GET POST HEAD" "id:1,deny"`

use super::{Captures, Operator, OperatorContext};

#[derive(Debug)]
pub struct Within {
    haystack: Vec<u8>,
}

impl Within {
    pub fn create(param: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Ok(Box::new(Within { haystack: param.as_bytes().to_vec() }))
    }
}

impl Operator for Within {
    fn evaluate(&self, input: &[u8], _: Option<&mut Captures>) -> bool {
        input.is_empty() || memchr::memmem::find(&self.haystack, input).is_some()
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
            ("", "", true),
            ("abc", "", true),
            ("", "abc", false),
            ("GET POST", "POST", true),
            ("GET POST", "PUT", false),
        ] {
            let op = Within::create(param, &ctx).unwrap();
            assert_eq!(op.evaluate(input.as_bytes(), None), want, "{param:?} {input:?}");
        }
    }
}
