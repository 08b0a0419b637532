//! `t:trim`, `t:trimLeft` and `t:trimRight`: strip leading and/or trailing
//! whitespace (C's `isspace`: space, `\t \n \v \f \r`).

use super::is_c_space;

/// `t:trim`.
pub fn trim(input: &[u8]) -> Option<Vec<u8>> {
    owned_if_shorter(input, trim_end(trim_start(input)))
}

/// `t:trimLeft`.
pub fn trim_left(input: &[u8]) -> Option<Vec<u8>> {
    owned_if_shorter(input, trim_start(input))
}

/// `t:trimRight`.
pub fn trim_right(input: &[u8]) -> Option<Vec<u8>> {
    owned_if_shorter(input, trim_end(input))
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| is_c_space(c)).count();
    s.get(n..).unwrap_or_default()
}

fn trim_end(s: &[u8]) -> &[u8] {
    let n = s.iter().rev().take_while(|&&c| is_c_space(c)).count();
    s.get(..s.len() - n).unwrap_or_default()
}

/// A trimmed value is a sub-slice: it changed exactly when it got shorter.
fn owned_if_shorter(input: &[u8], trimmed: &[u8]) -> Option<Vec<u8>> {
    (trimmed.len() != input.len()).then(|| trimmed.to_vec())
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;

    #[test]
    fn table() {
        check(trim, &[(b"", b""), (b"a b", b"a b"), (b" \t\x0ba b\r\n ", b"a b"), (b"   ", b"")]);
        check(trim_left, &[(b"", b""), (b" \x0ca b ", b"a b "), (b"\xa0a", b"\xa0a")]);
        check(trim_right, &[(b"", b""), (b" a b \x0c", b" a b"), (b"   ", b"")]);
    }
}
