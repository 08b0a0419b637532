//! `@contains`
//!
//! Description: true when the parameter occurs anywhere in the value (byte-exact).
//! Arguments: the substring (macros expanded by the caller).
//! Returns: true on a match; an empty parameter matches everything.
//! Example: `SecRule REQUEST_LINE "@contains .php" "id:1,deny"`

use memchr::memmem::Finder;

use super::{Captures, Operator, OperatorContext};

#[derive(Debug)]
pub struct Contains {
    needle: Finder<'static>,
}

impl Contains {
    pub fn create(param: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Ok(Box::new(Contains { needle: Finder::new(param.as_bytes()).into_owned() }))
    }
}

impl Operator for Contains {
    fn evaluate(&self, input: &[u8], _: Option<&mut Captures>) -> bool {
        self.needle.find(input).is_some()
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
            [("", "", true), ("def", "abcdefghi", true), ("x", "", false), ("gij", "abcdefghi", false)]
        {
            let op = Contains::create(param, &ctx).unwrap();
            assert_eq!(op.evaluate(input.as_bytes(), None), want, "{param:?} {input:?}");
        }
    }
}
