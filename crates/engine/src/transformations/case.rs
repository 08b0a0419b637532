//! `t:lowercase` and `t:uppercase`: change the case of ASCII letters (bytes
//! outside A-Z / a-z are left alone, as C's `tolower`/`toupper` in the "C" locale).

/// `t:lowercase`.
pub fn lowercase(input: &[u8]) -> Option<Vec<u8>> {
    has_in(input, b'A', b'Z').then(|| input.to_ascii_lowercase())
}

/// `t:uppercase`.
pub fn uppercase(input: &[u8]) -> Option<Vec<u8>> {
    has_in(input, b'a', b'z').then(|| input.to_ascii_uppercase())
}

/// The bytes `lowercase` changes (see `triggers.rs`).
pub(super) fn lowercase_trigger(c: u8) -> bool {
    c.is_ascii_uppercase()
}

/// The bytes `uppercase` changes.
pub(super) fn uppercase_trigger(c: u8) -> bool {
    c.is_ascii_lowercase()
}

/// Whether `input` has an ASCII upper-case letter.
pub fn has_uppercase(input: &[u8]) -> bool {
    has_in(input, b'A', b'Z')
}

/// Whether a byte of `input` is in `lo..=hi`. A block at a time without stopping early
/// inside it, so that the compiler makes it vector code: a byte-wise `any` stops at every
/// byte, and cost 1 ns a byte on a 1 MB body (each `t:lowercase` and prefilter scan).
fn has_in(input: &[u8], lo: u8, hi: u8) -> bool {
    let mut blocks = input.chunks_exact(32);
    for b in &mut blocks {
        if b.iter().fold(false, |acc, &c| acc | (c.wrapping_sub(lo) <= hi - lo)) {
            return true;
        }
    }
    blocks.remainder().iter().any(|&c| c.wrapping_sub(lo) <= hi - lo)
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;

    #[test]
    fn table() {
        check(lowercase, &[(b"", b""), (b"abc1", b"abc1"), (b"AbC\xc3\x89", b"abc\xc3\x89")]);
        check(uppercase, &[(b"", b""), (b"ABC1", b"ABC1"), (b"aBc\xc3\xa9", b"ABC\xc3\xa9")]);
    }

    #[test]
    fn block_search_finds_a_letter_anywhere() {
        // Lengths around the 32-byte block, the letter in a block or in the remainder,
        // the bytes right outside A-Z ('@' and '[') never counting.
        for len in [0usize, 1, 31, 32, 33, 64, 95, 100] {
            let plain = vec![b'@'; len];
            assert!(!has_uppercase(&plain), "{len}");
            assert_eq!(lowercase(&plain), None);
            for at in 0..len {
                for (c, upper) in [(b'A', true), (b'Z', true), (b'[', false), (b'a', false)] {
                    let mut v = plain.clone();
                    v[at] = c;
                    assert_eq!(has_uppercase(&v), upper, "{len} {at} {c}");
                    assert_eq!(uppercase(&v).is_some(), c == b'a', "{len} {at} {c}");
                }
            }
        }
    }
}
