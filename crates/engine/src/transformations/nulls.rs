//! `t:removeNulls` and `t:replaceNulls`: delete NUL bytes, or turn them into spaces.

/// Both act on NUL bytes only (see `triggers.rs`).
pub(super) fn trigger(c: u8) -> bool {
    c == 0
}

/// `t:removeNulls`.
pub fn remove_nulls(input: &[u8]) -> Option<Vec<u8>> {
    if memchr::memchr(0, input).is_none() {
        return None;
    }
    Some(input.iter().copied().filter(|&c| c != 0).collect())
}

/// `t:replaceNulls`.
pub fn replace_nulls(input: &[u8]) -> Option<Vec<u8>> {
    if memchr::memchr(0, input).is_none() {
        return None;
    }
    Some(input.iter().map(|&c| if c == 0 { b' ' } else { c }).collect())
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;

    #[test]
    fn table() {
        check(remove_nulls, &[(b"", b""), (b"ab", b"ab"), (b"\0a\0\0b\0", b"ab")]);
        check(replace_nulls, &[(b"", b""), (b"ab", b"ab"), (b"\0a\0\0b\0", b" a  b ")]);
    }
}
