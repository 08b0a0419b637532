//! `t:lowercase` and `t:uppercase`: change the case of ASCII letters (bytes
//! outside A-Z / a-z are left alone, as C's `tolower`/`toupper` in the "C" locale).

/// `t:lowercase`.
pub fn lowercase(input: &[u8]) -> Option<Vec<u8>> {
    input.iter().any(u8::is_ascii_uppercase).then(|| input.to_ascii_lowercase())
}

/// `t:uppercase`.
pub fn uppercase(input: &[u8]) -> Option<Vec<u8>> {
    input.iter().any(u8::is_ascii_lowercase).then(|| input.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;

    #[test]
    fn table() {
        check(lowercase, &[(b"", b""), (b"abc1", b"abc1"), (b"AbC\xc3\x89", b"abc\xc3\x89")]);
        check(uppercase, &[(b"", b""), (b"ABC1", b"ABC1"), (b"aBc\xc3\xa9", b"ABC\xc3\xa9")]);
    }
}
