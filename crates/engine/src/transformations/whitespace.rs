//! `t:removeWhitespace` and `t:compressWhitespace`.
//!
//! Whitespace is C's `isspace` (space, `\t \n \v \f \r`). `removeWhitespace` also
//! removes the bytes 0xA0 and 0xC2 (the non-breaking space, alone or as the lead
//! byte of its UTF-8 form), as ModSecurity does. `compressWhitespace` replaces each
//! run of whitespace with one space.

use super::{changed, is_c_space};

/// What `removeWhitespace` removes (see `triggers.rs`); `compressWhitespace` acts on
/// `is_c_space` bytes only.
pub(super) const fn remove_trigger(c: u8) -> bool {
    is_c_space(c) || c == 0xa0 || c == 0xc2
}

/// `t:removeWhitespace`.
pub fn remove_whitespace(input: &[u8]) -> Option<Vec<u8>> {
    // A table: this runs on nearly every value, and a byte compare chain is ~3x slower.
    const DROP: [bool; 256] = {
        let mut t = [false; 256];
        let mut c = 0;
        while c < 256 {
            t[c] = remove_trigger(c as u8);
            c += 1;
        }
        t
    };
    let drop = |c: &u8| DROP[usize::from(*c)];
    // Long values (bodies): three vectorised searches beat one byte loop.
    let first = if input.len() >= 256 {
        [
            memchr::memchr3(b' ', b'\t', b'\n', input),
            memchr::memchr3(b'\r', 0x0b, 0x0c, input),
            memchr::memchr2(0xa0, 0xc2, input),
        ]
        .into_iter()
        .flatten()
        .min()?
    } else {
        input.iter().position(drop)?
    };
    let mut out = Vec::with_capacity(input.len());
    out.extend_from_slice(&input[..first]);
    out.extend(input[first..].iter().copied().filter(|c| !drop(c)));
    Some(out)
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
    fn long_values_find_every_kind_of_whitespace() {
        for c in [b' ', b'\t', b'\n', b'\r', 0x0b, 0x0c, 0xa0, 0xc2] {
            let mut v = vec![b'a'; 300];
            v[290] = c;
            assert_eq!(remove_whitespace(&v), Some(vec![b'a'; 299]), "{c:#x}");
        }
        assert_eq!(remove_whitespace(&[b'a'; 300]), None);
    }

    #[test]
    fn compress_table() {
        check(
            compress_whitespace,
            &[(b"", b""), (b"a b", b"a b"), (b"a \t\r\n\x0b\x0cb", b"a b"), (b"\ta", b" a"), (b"a\xa0b", b"a\xa0b")],
        );
    }
}
