//! `@rxGlobal`
//!
//! Description: like `@rx`, but collects every match in the value, not just the first
//! (ModSecurity v3.0.13+). Captures are numbered on across matches: TX:0.. hold the first
//! match and its groups, the next match's whole match follows, and so on.
//! Arguments: the pattern (macros expanded by the caller).
//! Returns: true when there is at least one match; an empty pattern matches everything.
//! Example: `SecRule ARGS "@rxGlobal [a-z]+" "id:1,pass,capture"`

use super::pattern::Pattern;
use super::{Captures, Operator, OperatorContext};

#[derive(Debug)]
pub struct RxGlobal {
    pattern: Option<Pattern>,
}

impl RxGlobal {
    pub fn create(param: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        let pattern = if param.is_empty() { None } else { Some(Pattern::new(param)?) };
        Ok(Box::new(RxGlobal { pattern }))
    }
}

impl Operator for RxGlobal {
    fn evaluate(&self, input: &[u8], caps: Option<&mut Captures>) -> bool {
        match (&self.pattern, caps) {
            (None, caps) => {
                if let Some(caps) = caps {
                    caps.clear();
                }
                true
            }
            (Some(p), None) => p.is_match(input),
            (Some(p), Some(caps)) => p.captures_global(input, caps),
        }
    }

    fn backend(&self) -> Option<&'static str> {
        Some(self.pattern.as_ref().map_or("regex", Pattern::backend))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn table() {
        let ctx = OperatorContext { base_dir: Path::new(".") };
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
