//! `t:md5` and `t:sha1`: replace the value with its raw (binary, not hex) digest.

use md5::{Digest, Md5};
use sha1::Sha1;

/// `t:md5`.
pub fn md5(input: &[u8]) -> Option<Vec<u8>> {
    Some(Md5::digest(input).to_vec())
}

/// `t:sha1`.
pub fn sha1(input: &[u8]) -> Option<Vec<u8>> {
    Some(Sha1::digest(input).to_vec())
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;

    #[test]
    fn table() {
        check(md5, &[(b"", b"\xd4\x1d\x8c\xd9\x8f\x00\xb2\x04\xe9\x80\x09\x98\xec\xf8\x42\x7e")]);
        check(sha1, &[(b"abc", b"\xa9\x99\x3e\x36\x47\x06\x81\x6a\xba\x3e\x25\x71\x78\x50\xc2\x6c\x9c\xd0\xd8\x9d")]);
    }
}
