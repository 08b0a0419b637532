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
//! Prefilter: a value without `<` or `=` is never XSS here (see `NEEDED`), so the rule-set
//! prefilter gates the operator on those two bytes.

use super::{capture_one, Captures, Operator, OperatorContext};

#[derive(Debug)]
pub struct DetectXss;

impl DetectXss {
    pub fn create(_: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Ok(Box::new(DetectXss))
    }
}

/// Bytes without one of which libinjection finds no XSS in any of its five contexts
/// (vendor/libinjectionrs/src/xss/html5.rs): tags, comments and doctypes begin at a `<`
/// (the only way out of the data state), and an attribute value follows its name only
/// after `=` (a quoted context's own first value has no name, so nothing to flag).
const NEEDED: &[u8] = b"<=";

impl Operator for DetectXss {
    fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        Some(NEEDED.iter().map(|&b| vec![b]).collect())
    }

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

    /// Values made of XSS words and every other byte, without the needed ones, are never
    /// XSS.
    #[test]
    fn values_without_a_needed_byte_are_never_xss() {
        const WORDS: &str = "on error onerror onload javascript: alert(1) script style src href xlink:href x img svg \
                             !doctype !-- [if xml data: vbscript: &#x3c; %3c";
        let pieces: Vec<Vec<u8>> = WORDS
            .split(' ')
            .map(|p| p.as_bytes().to_vec())
            .chain((0..=255u8).map(|b| vec![b]))
            // HTML's own punctuation, often.
            .chain(std::iter::repeat_n(b"<>=/ '\"`!-?&;\t\n".iter().map(|&b| vec![b]), 12).flatten())
            .filter(|p| !p.iter().any(|b| NEEDED.contains(b)))
            .collect();
        let mut next = crate::operators::random_below(0x2545_f491_4f6c_dd1d);
        for _ in 0..20_000 {
            let mut v = Vec::new();
            for _ in 0..1 + next(8) {
                v.extend_from_slice(&pieces[next(pieces.len())]);
            }
            assert!(!DetectXss.evaluate(&v, None), "{:?}", String::from_utf8_lossy(&v));
        }
        // One needed byte is enough, in each context.
        for xss in ["<script", "<!doctype", "onerror=1", "x/onerror=1", "x'onerror=1", "x\"onerror=1", "x`onerror=1"] {
            assert!(DetectXss.evaluate(xss.as_bytes(), None), "{xss}");
        }
    }
}
