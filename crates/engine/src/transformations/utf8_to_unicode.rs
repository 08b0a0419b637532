//! `t:utf8toUnicode`: replace each UTF-8 multi-byte sequence with `%uHHHH` (the code
//! point in lowercase hex, at least four digits).
//!
//! A port of ModSecurity's encoder, quirks included because rules see its output:
//! - the lead byte of an invalid or truncated 2-4 byte sequence is dropped, and
//!   the scan resumes at the next byte (lead bytes 0xF5-0xF7 are kept, and still
//!   decoded when followed by continuation bytes);
//! - for an overlong form or a surrogate (U+D800-U+DFFF) the `%u` escape is
//!   followed by the raw lead byte;
//! - a NUL byte is dropped unless it is the last byte;
//! - other bytes (ASCII, stray continuation bytes, 0xF8-0xFF) are copied.

/// Multi-byte sequences and NUL bytes (see `triggers.rs`).
pub(super) fn trigger(c: u8) -> bool {
    c >= 0x80 || c == 0
}

/// `t:utf8toUnicode`.
pub fn utf8_to_unicode(input: &[u8]) -> Option<Vec<u8>> {
    if input.is_ascii() && !input.split_last().is_some_and(|(_, head)| memchr::memchr(0, head).is_some()) {
        return None;
    }
    // Bytes past the end read as 0, as ModSecurity reads its NUL terminator.
    let at = |k: usize| input.get(k).copied().unwrap_or(0);
    let continuation = |k: usize| at(k) & 0xc0 == 0x80;
    let mut out = Vec::with_capacity(input.len() * 2);
    let mut i = 0;
    while let Some(&c) = input.get(i) {
        // Sequence length and code point of a valid sequence starting at `i`.
        let mut seq: Option<(usize, u32)> = None;
        if c & 0x80 == 0 {
            // ModSecurity parks a NUL in its output without advancing, so the next
            // byte overwrites it; only a final NUL survives.
            if c != 0 || i + 1 >= input.len() {
                out.push(c);
            }
        } else if c & 0xe0 == 0xc0 {
            if continuation(i + 1) {
                seq = Some((2, (u32::from(c & 0x1f) << 6) | u32::from(at(i + 1) & 0x3f)));
            }
        } else if c & 0xf0 == 0xe0 {
            if continuation(i + 1) && continuation(i + 2) {
                let d = (u32::from(c & 0x0f) << 12) | (u32::from(at(i + 1) & 0x3f) << 6) | u32::from(at(i + 2) & 0x3f);
                seq = Some((3, d));
            }
        } else if c & 0xf8 == 0xf0 {
            if c >= 0xf5 {
                out.push(c);
            }
            if continuation(i + 1) && continuation(i + 2) && continuation(i + 3) {
                let d = (u32::from(c & 0x07) << 18)
                    | (u32::from(at(i + 1) & 0x3f) << 12)
                    | (u32::from(at(i + 2) & 0x3f) << 6)
                    | u32::from(at(i + 3) & 0x3f);
                seq = Some((4, d));
            }
        } else {
            out.push(c);
        }

        match seq {
            Some((len, d)) => {
                out.extend_from_slice(format!("%u{d:04x}").as_bytes());
                let surrogate = (0xd800..=0xdfff).contains(&d);
                let overlong = match len {
                    2 => d < 0x80,
                    3 => d < 0x800,
                    _ => d < 0x1_0000,
                };
                if surrogate {
                    out.push(c);
                }
                if overlong {
                    out.push(c);
                }
                i += len;
            }
            None => i += 1,
        }
    }
    super::changed(input, out)
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;

    #[test]
    fn table() {
        check(
            utf8_to_unicode,
            &[
                (b"", b""),
                (b"abc", b"abc"),
                (b"\xc3\xa9", b"%u00e9"),
                (b"a\xe2\x82\xacb", b"a%u20acb"),
                (b"\xf0\x9f\x98\x80", b"%u1f600"),
                (b"\xc3", b""), // truncated: lead byte dropped
                (b"\xc3A", b"A"),
                (b"\x80", b"\x80"),           // stray continuation byte
                (b"\xc0\x80", b"%u0000\xc0"), // overlong
                (b"\xed\xa0\x80", b"%ud800\xed"),
                (b"a\0b", b"ab"),
                (b"ab\0", b"ab\0"),
                (b"\xf5\x80\x80\x80", b"\xf5%u140000"),
            ],
        );
    }
}
