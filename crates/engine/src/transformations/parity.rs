//! `t:parityEven7bit`, `t:parityOdd7bit` and `t:parityZero7bit`: treat each byte as
//! 7 data bits and set the top bit to even parity, odd parity, or zero.

/// `t:parityEven7bit`.
pub fn parity_even_7bit(input: &[u8]) -> Option<Vec<u8>> {
    map_bytes(input, |c| with_parity(c, true))
}

/// `t:parityOdd7bit`.
pub fn parity_odd_7bit(input: &[u8]) -> Option<Vec<u8>> {
    map_bytes(input, |c| with_parity(c, false))
}

/// `t:parityZero7bit`.
pub fn parity_zero_7bit(input: &[u8]) -> Option<Vec<u8>> {
    map_bytes(input, |c| c & 0x7f)
}

/// Sets bit 7 so that the whole byte has even (or odd) parity. As in ModSecurity the
/// parity is computed over all eight bits of the input byte.
fn with_parity(c: u8, even: bool) -> u8 {
    let odd_ones = c.count_ones() % 2 == 1;
    if odd_ones == even {
        c | 0x80
    } else {
        c & 0x7f
    }
}

fn map_bytes(input: &[u8], f: impl Fn(u8) -> u8) -> Option<Vec<u8>> {
    if input.iter().all(|&c| f(c) == c) {
        return None;
    }
    Some(input.iter().map(|&c| f(c)).collect())
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;

    #[test]
    fn table() {
        check(parity_even_7bit, &[(b"", b""), (b"A", b"A"), (b"C", b"\xc3"), (b"\x80", b"\x80")]);
        check(parity_odd_7bit, &[(b"", b""), (b"A", b"\xc1"), (b"C", b"C")]);
        check(parity_zero_7bit, &[(b"", b""), (b"abc", b"abc"), (b"\xc1\xff", b"A\x7f")]);
    }
}
