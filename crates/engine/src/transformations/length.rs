//! `t:length`: replace the value with its length in bytes, in decimal.

/// `t:length`.
pub fn length(input: &[u8]) -> Option<Vec<u8>> {
    let out = input.len().to_string().into_bytes();
    (out != input).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;

    #[test]
    fn table() {
        check(length, &[(b"", b"0"), (b"abc", b"3"), (b"1", b"1"), (b"\0\0", b"2")]);
    }
}
