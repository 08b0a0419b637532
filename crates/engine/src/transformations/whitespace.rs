//! `t:removeWhitespace` and `t:compressWhitespace`.
//!
//! Whitespace is C's `isspace` (space, `\t \n \v \f \r`). `removeWhitespace` also
//! removes the bytes 0xA0 and 0xC2 (the non-breaking space, alone or as the lead
//! byte of its UTF-8 form), as ModSecurity does. `compressWhitespace` replaces each
//! run of whitespace with one space.

use super::{changed, is_c_space};

/// `t:removeWhitespace`.
pub fn remove_whitespace(input: &[u8]) -> Option<Vec<u8>> {
    let drop = |c: u8| is_c_space(c) || c == 0xa0 || c == 0xc2;
    if !input.iter().any(|&c| drop(c)) {
        return None;
    }
    Some(input.iter().copied().filter(|&c| !drop(c)).collect())
}

/// `t:compressWhitespace`.
pub fn compress_whitespace(input: &[u8]) -> Option<Vec<u8>> {
    if !input.iter().any(|&c| is_c_space(c)) {
        return None;
    }
    let mut out = Vec::with_capacity(input.len());
    let mut in_space = false;
    for &c in input {
        if is_c_space(c) {
            if !in_space {
                out.push(b' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    changed(input, out)
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;

    #[test]
    fn remove_table() {
        check(
            remove_whitespace,
            &[
                (b"", b""),
                (b"abc", b"abc"),
                (b" a\tb\x0bc\x0cd\re\nf ", b"abcdef"),
                (b"a\xc2\xa0b", b"ab"),
                (b"\xc3\xa9", b"\xc3\xa9"),
            ],
        );
    }

    #[test]
    fn compress_table() {
        check(
            compress_whitespace,
            &[(b"", b""), (b"a b", b"a b"), (b"a \t\r\n\x0b\x0cb", b"a b"), (b"\ta", b" a"), (b"a\xa0b", b"a\xa0b")],
        );
    }
}
