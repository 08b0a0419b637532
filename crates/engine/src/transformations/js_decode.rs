//! `t:jsDecode`: decode JavaScript escape sequences.
//!
//! As ModSecurity: `\uHHHH` keeps only the low byte (with the full-width ASCII
//! rule: `\uFF01`..`\uFF5E` gain 0x20), `\xHH` gives its byte, `\OOO` up to three
//! octal digits (only two when the first is above `3`, so the value fits a byte),
//! `\a \b \f \n \r \t \v` their control bytes, and a backslash before any other
//! byte is dropped (`\u` or `\x` without valid digits become `u` / `x`). A lone
//! trailing backslash is kept.

use super::{changed, full_width_low_byte, x2c};

/// `t:jsDecode`.
pub fn js_decode(input: &[u8]) -> Option<Vec<u8>> {
    if memchr::memchr(b'\\', input).is_none() {
        return None;
    }
    let hex = |c: u8| c.is_ascii_hexdigit();
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some(&first) = rest.first() {
        let used = match *rest {
            [b'\\', b'u', a, b, c, d, ..] if hex(a) && hex(b) && hex(c) && hex(d) => {
                out.push(full_width_low_byte(a, b, x2c(c, d)));
                6
            }
            [b'\\', b'x', h, l, ..] if hex(h) && hex(l) => {
                out.push(x2c(h, l));
                4
            }
            [b'\\', o, ..] if is_octal(o) => {
                let digits = rest.get(1..).unwrap_or_default();
                let mut n = digits.iter().take(3).take_while(|&&c| is_octal(c)).count();
                if n == 3 && o > b'3' {
                    n = 2;
                }
                out.push(octal_value(digits.get(..n).unwrap_or_default()) as u8);
                1 + n
            }
            [b'\\', c, ..] => {
                out.push(control_escape(c));
                2
            }
            _ => {
                out.push(first);
                1
            }
        };
        rest = rest.get(used..).unwrap_or_default();
    }
    changed(input, out)
}

/// `0`..`7`.
pub(super) fn is_octal(c: u8) -> bool {
    (b'0'..=b'7').contains(&c)
}

/// Value of a run of (at most three) octal digits.
pub(super) fn octal_value(digits: &[u8]) -> u32 {
    digits.iter().fold(0, |v, &d| v * 8 + u32::from(d - b'0'))
}

/// The byte for `\c`: the C control escapes, otherwise `c` itself.
pub(super) fn control_escape(c: u8) -> u8 {
    match c {
        b'a' => 0x07,
        b'b' => 0x08,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'v' => 0x0b,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;

    #[test]
    fn table() {
        check(
            js_decode,
            &[
                (b"", b""),
                (b"plain", b"plain"),
                (b"\\u0041\\x41\\101", b"AAA"),
                (b"\\uff21", b"A"),
                (b"\\u12", b"u12"),
                (b"\\x4", b"x4"),
                (b"\\777", b"?7"), // \77 then '7'
                (b"\\377", b"\xff"),
                (b"\\0", b"\0"),
                (b"\\a\\b\\f\\n\\r\\t\\v", b"\x07\x08\x0c\n\r\t\x0b"),
                (b"\\'\\\"\\\\\\q", b"'\"\\q"),
                (b"abc\\", b"abc\\"),
            ],
        );
    }
}
