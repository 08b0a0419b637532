//! `@rx`
//!
//! Description: regular expression match, PCRE semantics as in ModSecurity v3 (no UTF,
//! DOTALL and MULTILINE always on, bytes not text). Patterns run on the `regex` crate
//! when they can be translated without changing their meaning, else on PCRE2 (see
//! [`super::pattern`]). An empty pattern matches everything.
//! Arguments: the pattern (macros expanded by the caller).
//! Returns: true on a match; captures the whole match and the groups into TX:0, TX:1, ...
//! (every group up to the last one that took part).
//! Example: `SecRule ARGS "@rx (?i)union\s+select" "id:1,deny,capture"`

use super::deferred::Deferred;
use super::pattern::{Pattern, PcreLimits};
use super::{Captures, Operator, OperatorContext};

#[derive(Debug)]
pub struct Rx {
    /// `None` for the empty pattern, which ModSecurity matches without running it.
    pattern: Option<Deferred>,
    /// `@rxGlobal`: capture every match, not just the first.
    global: bool,
}

impl Rx {
    pub fn create(param: &str, ctx: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Self::build(param, false, ctx)
    }

    /// Shared by `@rx` and `@rxGlobal`, which differ only in what they capture. During a
    /// rule-set load the pattern is checked once the files are read, and built later
    /// (see [`Deferred`]).
    pub(super) fn build(param: &str, global: bool, ctx: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        let pattern = match param {
            "" => None,
            _ if ctx.defer_patterns => Some(Deferred::unchecked(param)),
            _ => Some(Deferred::now(param)?),
        };
        Ok(Box::new(Rx { pattern, global }))
    }
}

impl Operator for Rx {
    fn evaluate(&self, input: &[u8], caps: Option<&mut Captures>) -> bool {
        self.evaluate_limited(input, caps, &mut false)
    }

    fn evaluate_limited(&self, input: &[u8], caps: Option<&mut Captures>, limit_hit: &mut bool) -> bool {
        let pattern = match &self.pattern {
            None => None,
            // Vouched for by PCRE2 at load: no build fails (see `Deferred`).
            Some(d) => match d.get() {
                Some(p) => Some(p),
                None => return false,
            },
        };
        match (pattern, caps) {
            (None, caps) => {
                if let Some(caps) = caps {
                    caps.clear();
                }
                true
            }
            // ModSecurity's `@rxGlobal` never reports a limit (see `captures_global`).
            (Some(p), None) if self.global => p.is_match(input),
            (Some(p), None) => p.is_match_limited(input, limit_hit),
            (Some(p), Some(caps)) if self.global => p.captures_global(input, caps),
            (Some(p), Some(caps)) => p.captures(input, caps, limit_hit),
        }
    }

    fn set_pcre_limits(&mut self, limits: PcreLimits) -> Result<(), String> {
        match &mut self.pattern {
            Some(p) => p.set_limits(limits),
            None => Ok(()),
        }
    }

    fn backend(&self) -> Option<&'static str> {
        match &self.pattern {
            None => Some("regex"),
            Some(d) => Some(d.built().map_or("deferred", Pattern::backend)),
        }
    }

    fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        self.pattern.as_ref()?.built()?.required_literals()
    }

    fn also_required_literals(&self) -> Option<Vec<Vec<u8>>> {
        self.pattern.as_ref()?.built()?.also_required_literals()
    }

    fn deferred(&self) -> Option<&Deferred> {
        self.pattern.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn table() {
        let ctx = OperatorContext::new(Path::new("."));
        let cases: &[(&str, &[u8], &[&str])] = &[
            ("", b"anything", &[]),
            ("def", b"abcdefghi", &["def"]),
            ("(abc)(def)", b"abcdef", &["abcdef", "abc", "def"]),
            ("^b", b"a\nb", &["b"]),     // MULTILINE
            ("a.b", b"a\nb", &["a\nb"]), // DOTALL
            ("(?i)SELECT", b"select", &["select"]),
            (r"\x{ff}", b"\xff", &["\u{ff}"]), // compared as bytes below
        ];
        for (param, input, want) in cases {
            let op = Rx::create(param, &ctx).unwrap();
            let mut caps = Captures::new();
            assert!(op.evaluate(input, Some(&mut caps)), "{param:?}");
            if *param == r"\x{ff}" {
                assert_eq!(caps, vec![b"\xff".to_vec()]);
                continue;
            }
            let want: Vec<Vec<u8>> = want.iter().map(|s| s.as_bytes().to_vec()).collect();
            assert_eq!(caps, want, "{param:?}");
        }
        // `^.*$` (920450, on every header name) captures the whole value: DOTALL.
        for input in [&b""[..], b"x-forwarded-for", b"a\nb\n", b"\n", b"\xff\x00"] {
            let mut caps = Captures::new();
            assert!(Rx::create("^.*$", &ctx).unwrap().evaluate(input, Some(&mut caps)), "{input:?}");
            assert_eq!(caps, vec![input.to_vec()], "{input:?}");
        }
        let op = Rx::create("ghij", &ctx).unwrap();
        assert!(!op.evaluate(b"abcdefghi", None));
        assert!(Rx::create("(", &ctx).is_err());
    }
}
