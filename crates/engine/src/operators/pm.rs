//! `@pm`
//!
//! Description: case-insensitive (ASCII) search for any of a list of phrases
//! (Aho-Corasick). The parameter is read as ModSecurity v3 reads it: surrounding double
//! quotes are dropped, `|41 42|`-style hex runs become bytes (hex digits only, in pairs),
//! `\:`, `\;`, `\\` and `\"` are escapes; a malformed hex run or another escape makes
//! the whole parameter be used as written. The result is then split on whitespace.
//! Arguments: space-separated phrases.
//! Returns: true when a phrase occurs; captures the matched text into TX:0.
//! Example: `SecRule REQUEST_HEADERS:User-Agent "@pm nikto sqlmap" "id:1,deny"`

use super::phrases::PhraseSet;
use super::{Captures, Operator, OperatorContext};

#[derive(Debug)]
pub struct Pm {
    phrases: PhraseSet,
}

impl Pm {
    pub fn create(param: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        let content = parse_content(param.as_bytes());
        let phrases = content.split(|b| is_c_space(*b)).filter(|p| !p.is_empty()).map(<[u8]>::to_vec).collect();
        Ok(Box::new(Pm { phrases: PhraseSet::new(phrases)? }))
    }
}

impl Operator for Pm {
    fn evaluate(&self, input: &[u8], caps: Option<&mut Captures>) -> bool {
        self.phrases.evaluate(input, caps)
    }

    fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        self.phrases.required_literals()
    }

    fn prepare(&self, gated: bool) -> Result<(), String> {
        self.phrases.prepare(gated)
    }
}

/// C's `isspace` in the C locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// ModSecurity's `parse_pm_content`: quotes, hex runs and escapes.
fn parse_content(param: &[u8]) -> Vec<u8> {
    let Some(offset) = param.iter().position(|b| !matches!(b, b' ' | b'\t')) else {
        return param.to_vec();
    };
    let mut body = param.get(offset..).unwrap_or_default();
    if body.len() >= 2 && body.first() == Some(&b'"') && body.last() == Some(&b'"') {
        body = body.get(1..body.len() - 1).unwrap_or_default();
    }
    if body.is_empty() {
        return param.to_vec();
    }
    let mut out = Vec::with_capacity(body.len());
    let (mut bin, mut esc) = (false, false);
    let mut hex: Option<u8> = None;
    for &c in body {
        if c == b'|' {
            bin = !bin;
        } else if !esc && c == b'\\' {
            esc = true;
        } else if bin {
            let Some(digit) = (c as char).to_digit(16) else {
                return param.to_vec();
            };
            match hex.take() {
                None => hex = Some(digit as u8),
                Some(high) => out.push(high << 4 | digit as u8),
            }
        } else if esc {
            if !matches!(c, b':' | b';' | b'\\' | b'"') {
                return param.to_vec();
            }
            out.push(c);
            esc = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn parameter_parsing() {
        for (param, want) in [
            ("abc def", "abc def"),
            ("\"abc def\"", "abc def"),
            ("a|41 42|b", "a|41 42|b"), // space in a hex run: used as written
            ("a|4142|b", "aABb"),
            ("a\\;b", "a;b"),
            ("a\\nb", "a\\nb"), // unsupported escape: used as written
            ("   ", "   "),
        ] {
            assert_eq!(parse_content(param.as_bytes()), want.as_bytes(), "{param:?}");
        }
    }

    #[test]
    fn table() {
        let ctx = OperatorContext::new(Path::new("."));
        for (param, input, want) in [
            ("abc def ghi", "xxxDEFyyy", true),
            ("abc def ghi", "xxxyyy", false),
            ("TestCase", "", false),
            ("", "abc", false),
            ("a|20|b", "xa by", true),
        ] {
            let op = Pm::create(param, &ctx).unwrap();
            assert_eq!(op.evaluate(input.as_bytes(), None), want, "{param:?} {input:?}");
        }
    }
}
