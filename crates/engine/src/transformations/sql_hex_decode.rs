//! `t:sqlHexDecode`: decode SQL hex literals (`0x414243` becomes `ABC`).
//!
//! As ModSecurity: `0x`/`0X` followed by at least one pair of hex digits is
//! replaced by the decoded bytes of all the whole pairs that follow; an odd last
//! digit and everything else is kept.

use super::x2c;

/// `t:sqlHexDecode`.
pub fn sql_hex_decode(input: &[u8]) -> Option<Vec<u8>> {
    let hex = |c: u8| c.is_ascii_hexdigit();
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some(&c) = rest.first() {
        if let [b'0', b'x' | b'X', h, l, ..] = *rest {
            if hex(h) && hex(l) {
                rest = rest.get(2..).unwrap_or_default();
                while let [h, l, ..] = *rest {
                    if !(hex(h) && hex(l)) {
                        break;
                    }
                    out.push(x2c(h, l));
                    rest = rest.get(2..).unwrap_or_default();
                }
                continue;
            }
        }
        out.push(c);
        rest = rest.get(1..).unwrap_or_default();
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
            sql_hex_decode,
            &[
                (b"", b""),
                (b"plain 0x", b"plain 0x"),
                (b"0x414243", b"ABC"),
                (b"a0X4142z", b"aABz"),
                (b"0x4142434", b"ABC4"),
                (b"0x4g", b"0x4g"),
            ],
        );
    }
}
