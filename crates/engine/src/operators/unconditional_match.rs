//! `@unconditionalMatch`
//!
//! Description: matches every value.
//! Arguments: none (a parameter is ignored).
//! Returns: always true.
//! Example: `SecRule REMOTE_ADDR "@unconditionalMatch" "id:1,pass,setvar:tx.seen=1"`

use super::{Captures, Operator, OperatorContext};

#[derive(Debug)]
pub struct UnconditionalMatch;

impl UnconditionalMatch {
    pub fn create(_: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Ok(Box::new(UnconditionalMatch))
    }
}

impl Operator for UnconditionalMatch {
    fn evaluate(&self, _: &[u8], _: Option<&mut Captures>) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        for input in ["", "x", "\0"] {
            assert!(UnconditionalMatch.evaluate(input.as_bytes(), None));
        }
    }
}
