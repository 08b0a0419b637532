//! `t:cssDecode`: decode CSS 2 escapes (`\` followed by 1-6 hex digits, or by any
//! other character).
//!
//! As ModSecurity: a hex escape gives one byte, made from its last two digits (one
//! digit: that digit's value); for 4-digit escapes, and 5/6-digit ones whose extra
//! leading digits are `0`, the full-width ASCII rule applies (`\ff21` is `A`). One
//! whitespace byte after a hex escape is swallowed. `\` + newline is removed, `\`
//! + any other byte gives that byte, and a trailing `\` is removed.

use super::{changed, full_width_low_byte, hex_digit, is_c_space, x2c};

/// `t:cssDecode`.
pub fn css_decode(input: &[u8]) -> Option<Vec<u8>> {
    if memchr::memchr(b'\\', input).is_none() {
        return None;
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&c) = input.get(i) {
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1; // the backslash itself is never kept
        let Some(&next) = input.get(i) else { break };
        let tail = input.get(i..).unwrap_or_default();
        let digits = tail.iter().take(6).take_while(|c| c.is_ascii_hexdigit()).count();
        if digits > 0 {
            let d = |k: usize| tail.get(k).copied().unwrap_or(0);
            let last_two = || x2c(d(digits - 2), d(digits - 1));
            let byte = match digits {
                1 => hex_digit(d(0)),
                2 | 3 => last_two(),
                // The full-width check looks at the two digits before the last two.
                4 => full_width_low_byte(d(0), d(1), last_two()),
                5 if d(0) == b'0' => full_width_low_byte(d(1), d(2), last_two()),
                6 if d(0) == b'0' && d(1) == b'0' => full_width_low_byte(d(2), d(3), last_two()),
                _ => last_two(),
            };
            out.push(byte);
            let skip_space = tail.get(digits).is_some_and(|&c| is_c_space(c));
            i += digits + usize::from(skip_space);
        } else if next == b'\n' {
            i += 1;
        } else {
            out.push(next);
            i += 1;
        }
    }
    changed(input, out)
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;

    #[test]
    fn table() {
        check(
            css_decode,
            &[
                (b"", b""),
                (b"plain", b"plain"),
                (b"\\41", b"A"),
                (b"\\4", b"\x04"),
                (b"\\141", b"A"),
                (b"\\0041 x", b"Ax"), // one space swallowed
                (b"\\41  x", b"A x"),
                (b"\\ff21", b"A"), // full-width
                (b"\\0ff21", b"A"),
                (b"\\1ff21", b"!"), // no full-width check
                (b"\\00ff21", b"A"),
                (b"\\10ff21", b"!"),
                (b"\\1234567", b"V7"), // at most 6 digits
                (b"a\\\nb", b"ab"),
                (b"\\q\\\\", b"q\\"),
                (b"abc\\", b"abc"),
            ],
        );
    }
}
