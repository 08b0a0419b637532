//! `t:escapeSeqDecode`: decode ANSI C escape sequences.
//!
//! As ModSecurity: `\a \b \f \n \r \t \v \\ \? \' \"`, `\xHH` (also `\XHH`) and
//! `\OOO` (one to three octal digits; values above 255 keep their low byte, so
//! `\666` is 0xB6). A backslash before anything else, including an invalid `\x`,
//! is dropped and the next byte kept. A lone trailing backslash is kept.

use super::js_decode::{control_escape, is_octal, octal_value};
use super::{changed, x2c};

/// `t:escapeSeqDecode`.
pub fn escape_seq_decode(input: &[u8]) -> Option<Vec<u8>> {
    if memchr::memchr(b'\\', input).is_none() {
        return None;
    }
    let hex = |c: u8| c.is_ascii_hexdigit();
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some(&first) = rest.first() {
        let used = match *rest {
            [b'\\', b'x' | b'X', h, l, ..] if hex(h) && hex(l) => {
                out.push(x2c(h, l));
                4
            }
            [b'\\', o, ..] if is_octal(o) => {
                let digits = rest.get(1..).unwrap_or_default();
                let n = digits.iter().take(3).take_while(|&&c| is_octal(c)).count();
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

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;

    #[test]
    fn table() {
        check(
            escape_seq_decode,
            &[
                (b"", b""),
                (b"plain", b"plain"),
                (b"\\x41\\X41\\101", b"AAA"),
                (b"\\666", b"\xb6"),
                (b"\\8\\9", b"89"),
                (b"\\xag", b"xag"),
                (b"\\x", b"x"),
                (b"\\a\\?\\'", b"\x07?'"),
                (b"\\u0041", b"u0041"),
                (b"abc\\", b"abc\\"),
            ],
        );
    }
}
