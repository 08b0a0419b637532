//! `@detectXSS`
//!
//! Description: cross-site scripting detection with libinjection (the pure-Rust port
//! `libinjectionrs`; see `@detectSQLi` for the version). Known difference from the
//! libinjection 3.9.2 inside Debian's ModSecurity 3.0.9: that one flags any attribute
//! named `on...` (`<x onabcdefgh=...`), later libinjection (and ModSecurity v3 master's
//! bundled copy, and this port) only the real event handler names.
//! Arguments: none (a parameter is ignored).
//! Returns: true when libinjection reports XSS; captures the whole value into TX:0, as
//! ModSecurity v3 does.
//! Example: `SecRule ARGS "@detectXSS" "id:1,deny"`

use super::{capture_one, Captures, Operator, OperatorContext};

#[derive(Debug)]
pub struct DetectXss;

impl DetectXss {
    pub fn create(_: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Ok(Box::new(DetectXss))
    }
}

impl Operator for DetectXss {
    fn evaluate(&self, input: &[u8], caps: Option<&mut Captures>) -> bool {
        // The port still indexes slices; a panic there must not take the worker down.
        let is_xss = std::panic::catch_unwind(|| libinjectionrs::detect_xss(input).is_injection()).unwrap_or(false);
        if is_xss {
            capture_one(caps, input);
        }
        is_xss
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        for (input, want) in [
            ("", false),
            ("this is not an XSS", false),
            ("<a href=\"javascript:alert(1)\">)", true),
            ("<script>alert(1)</script>", true),
            // Attribute names compare case-insensitively with NUL bytes skipped (the
            // vendored crate's normalised comparison, WARD.md item 5).
            ("<img src=x oNeRrOr=alert(1)>", true),
            ("<img src=x on\0err\0or=alert(1)>", true),
            ("<img src=x onerrorx=alert(1)>", false),
            ("<a xlink:href=x>", true),
            ("<a sTyLe=x>", true),
            ("<a title=x>", false),
        ] {
            assert_eq!(DetectXss.evaluate(input.as_bytes(), None), want, "{input:?}");
        }
    }
}
