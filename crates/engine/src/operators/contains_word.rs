//! `@containsWord`
//!
//! Description: true when the parameter occurs in the value as a whole word. As in
//! ModSecurity v3, only ASCII letters are word characters: digits, `_` and non-ASCII
//! bytes count as boundaries, as do the start and the end of the value.
//! Arguments: the word (macros expanded by the caller).
//! Returns: true on a match; an empty parameter matches everything, an empty value nothing.
//! Example: `SecRule ARGS "@containsWord select" "id:1,deny"`

use memchr::memmem::Finder;

use super::{Captures, Operator, OperatorContext};

#[derive(Debug)]
pub struct ContainsWord {
    word: Finder<'static>,
}

impl ContainsWord {
    pub fn create(param: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Ok(Box::new(ContainsWord { word: Finder::new(param.as_bytes()).into_owned() }))
    }
}

/// A boundary byte next to the word: present and not an ASCII letter.
fn boundary_at(input: &[u8], pos: Option<usize>) -> bool {
    pos.and_then(|p| input.get(p)).is_some_and(|b| !b.is_ascii_alphabetic())
}

impl Operator for ContainsWord {
    fn evaluate(&self, input: &[u8], _: Option<&mut Captures>) -> bool {
        let word_len = self.word.needle().len();
        if word_len == 0 {
            return true;
        }
        if input.is_empty() {
            return false;
        }
        if input == self.word.needle() {
            return true;
        }
        // Every occurrence, overlapping ones included, as ModSecurity steps by one byte.
        let mut from = 0;
        while let Some(found) = input.get(from..).and_then(|rest| self.word.find(rest)) {
            let pos = from + found;
            let end = pos + word_len;
            let left = boundary_at(input, pos.checked_sub(1));
            let right = boundary_at(input, Some(end));
            if (pos == 0 && right) || (end == input.len() && left) || (left && right) {
                return true;
            }
            from = pos + 1;
        }
        false
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
            ("abc", "", false),
            ("abc", "abcdef", false),
            ("def", "abc def ghi", true),
            ("def", "abc1def_", true),
            ("y", "xyz", false),
            ("x", " x ", true),
            ("hiding", "hidingX hiding", true),
            ("aa", "aaa", false),
        ] {
            let op = ContainsWord::create(param, &ctx).unwrap();
            assert_eq!(op.evaluate(input.as_bytes(), None), want, "{param:?} {input:?}");
        }
    }
}
