//! `t:urlDecode` and `t:urlDecodeUni`: decode URL percent-encoding.
//!
//! Both turn `+` into a space and `%HH` into its byte; a `%` not followed by two
//! hex digits is left as it is (ModSecurity's non-strict decoding).
//! `urlDecodeUni` also decodes IIS-style `%uHHHH`, as ModSecurity v3 does without
//! a unicode map (`SecUnicodeMapFile`): only the low byte is kept, and for
//! `%uFF01`..`%uFF5E` (full-width ASCII) 0x20 is added, so `%uFF21` becomes `A`.
//! An invalid or short `%u` keeps both the `%` and the `u`.

use super::{changed, full_width_low_byte, x2c};

/// Bytes either decoder acts on (see `triggers.rs`).
pub(super) fn trigger(c: u8) -> bool {
    c == b'%' || c == b'+'
}

/// `t:urlDecode`.
pub fn url_decode(input: &[u8]) -> Option<Vec<u8>> {
    decode(input, false)
}

/// `t:urlDecodeUni`.
pub fn url_decode_uni(input: &[u8]) -> Option<Vec<u8>> {
    decode(input, true)
}

fn decode(input: &[u8], uni: bool) -> Option<Vec<u8>> {
    if memchr::memchr2(b'%', b'+', input).is_none() {
        return None;
    }
    let hex = |c: u8| c.is_ascii_hexdigit();
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some(&c) = rest.first() {
        let used = match *rest {
            [b'%', u @ (b'u' | b'U'), ..] if uni => match *rest {
                [_, _, a, b, c, d, ..] if hex(a) && hex(b) && hex(c) && hex(d) => {
                    out.push(full_width_low_byte(a, b, x2c(c, d)));
                    6
                }
                _ => {
                    out.extend_from_slice(&[b'%', u]);
                    2
                }
            },
            [b'%', h, l, ..] if hex(h) && hex(l) => {
                out.push(x2c(h, l));
                3
            }
            [b'+', ..] => {
                out.push(b' ');
                1
            }
            _ => {
                out.push(c);
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
    fn url_decode_table() {
        check(
            url_decode,
            &[
                (b"", b""),
                (b"a+b%20c", b"a b c"),
                (b"%41%4a%4A", b"AJJ"),
                (b"%", b"%"),
                (b"%4", b"%4"),
                (b"%zz%4g", b"%zz%4g"),
                (b"%u0041", b"%u0041"),
                (b"%00", b"\0"),
            ],
        );
    }

    #[test]
    fn url_decode_uni_table() {
        check(
            url_decode_uni,
            &[
                (b"%u0041", b"A"),
                (b"%U0041", b"A"),
                (b"%u1241", b"A"),    // low byte only
                (b"%uff21", b"A"),    // full-width A: 0x21 + 0x20
                (b"%uFF5F", b"\x5f"), // outside the full-width range
                (b"%uFF00", b"\x00"),
                (b"%u004", b"%u004"),   // short
                (b"%u00zz", b"%u00zz"), // invalid
                (b"%u%41", b"%uA"),     // the % and u are kept, decoding goes on
                (b"+%41", b" A"),
            ],
        );
    }
}
