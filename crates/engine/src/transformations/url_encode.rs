//! `t:urlEncode`: percent-encode a value.
//!
//! As ModSecurity: only `*`, digits and ASCII letters are kept, a space becomes
//! `+`, every other byte becomes `%hh` with lowercase hex digits.

use super::changed;

/// `t:urlEncode`.
pub fn url_encode(input: &[u8]) -> Option<Vec<u8>> {
    let keep = |c: u8| c == b'*' || c.is_ascii_alphanumeric();
    if input.iter().all(|&c| keep(c)) {
        return None;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(input.len() * 3);
    for &c in input {
        if c == b' ' {
            out.push(b'+');
        } else if keep(c) {
            out.push(c);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(c >> 4)], HEX[usize::from(c & 0x0f)]]);
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
            url_encode,
            &[
                (b"", b""),
                (b"Abc*09", b"Abc*09"),
                (b"a b", b"a+b"),
                (b"a-b.c_d~", b"a%2db%2ec%5fd%7e"),
                (b"\x00\xff", b"%00%ff"),
            ],
        );
    }
}
