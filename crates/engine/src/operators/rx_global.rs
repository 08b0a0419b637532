//! `@rxGlobal`
//!
//! Description: like `@rx`, but collects every match in the value, not just the first
//! (ModSecurity v3.0.13+). Captures are numbered on across matches: TX:0.. hold the first
//! match and its groups, the next match's whole match follows, and so on.
//! Arguments: the pattern (macros expanded by the caller).
//! Returns: true when there is at least one match; an empty pattern matches everything.
//! Example: `SecRule ARGS "@rxGlobal [a-z]+" "id:1,pass,capture"`

use super::rx::Rx;
use super::{Operator, OperatorContext};

/// `@rxGlobal` is `@rx` that captures every match.
pub struct RxGlobal;

impl RxGlobal {
    pub fn create(param: &str, ctx: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Rx::build(param, true, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::Captures;
    use std::path::Path;

    #[test]
    fn table() {
        let ctx = OperatorContext::new(Path::new("."));
        let cases: &[(&str, &str, &[&str])] = &[
            ("(^|a)(b|c)(d)", "bdacd", &["bd", "", "b", "d", "acd", "a", "c", "d"]),
            ("[a-z]+", "aaa0bbb", &["aaa", "bbb"]),
            ("([a-z]*)", "", &["", ""]),
        ];
        for (param, input, want) in cases {
            let op = RxGlobal::create(param, &ctx).unwrap();
            let mut caps = Captures::new();
            assert!(op.evaluate(input.as_bytes(), Some(&mut caps)), "{param:?}");
            let want: Vec<Vec<u8>> = want.iter().map(|s| s.as_bytes().to_vec()).collect();
            assert_eq!(caps, want, "{param:?}");
        }
    }
}
