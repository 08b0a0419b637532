//! `t:hexEncode` and `t:hexDecode`.
//!
//! `hexEncode` writes each byte as two lowercase hex digits. `hexDecode` reads the
//! input as pairs of hex digits, as ModSecurity does: without validation (a pair
//! with non-hex characters gives whatever ModSecurity's digit arithmetic gives, so
//! `0z` is `#`), and an odd last character is ignored (`a` decodes to nothing).

use super::x2c;

/// `t:hexEncode`.
pub fn hex_encode(input: &[u8]) -> Option<Vec<u8>> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if input.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(input.len() * 2);
    for &c in input {
        out.extend_from_slice(&[HEX[usize::from(c >> 4)], HEX[usize::from(c & 0x0f)]]);
    }
    Some(out)
}

/// `t:hexDecode`.
pub fn hex_decode(input: &[u8]) -> Option<Vec<u8>> {
    let out: Vec<u8> = input
        .chunks_exact(2)
        .filter_map(|pair| match *pair {
            [hi, lo] => Some(x2c(hi, lo)),
            _ => None,
        })
        .collect();
    super::changed(input, out)
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;

    #[test]
    fn table() {
        check(hex_encode, &[(b"", b""), (b"A\x00\xff", b"4100ff")]);
        check(hex_decode, &[(b"", b""), (b"4142", b"AB"), (b"414", b"A"), (b"a", b""), (b"0z", b"#")]);
    }
}
