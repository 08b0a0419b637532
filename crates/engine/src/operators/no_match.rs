//! `@noMatch`
//!
//! Description: matches no value.
//! Arguments: none (a parameter is ignored).
//! Returns: always false.
//! Example: `SecRule REMOTE_ADDR "@noMatch" "id:1,pass"`

use super::{Captures, Operator, OperatorContext};

#[derive(Debug)]
pub struct NoMatch;

impl NoMatch {
    pub fn create(_: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Ok(Box::new(NoMatch))
    }
}

impl Operator for NoMatch {
    fn evaluate(&self, _: &[u8], _: Option<&mut Captures>) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        for input in ["", "x", "\0"] {
            assert!(!NoMatch.evaluate(input.as_bytes(), None));
        }
    }
}
