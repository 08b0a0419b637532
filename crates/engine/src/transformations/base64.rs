//! `t:base64Encode`, `t:base64Decode` and `t:base64DecodeExt`.
//!
//! - `base64Encode`: standard alphabet with padding.
//! - `base64Decode`: ModSecurity v3 uses mbedTLS's strict decoder on the value up
//!   to its first NUL byte: the whole input must be valid (standard alphabet, at
//!   most two `=` and nothing but `=` after the first one; spaces only before a
//!   line break or at the end; `\r\n` and `\n` ignored), otherwise the result is
//!   empty. A trailing group of fewer than four characters is dropped (`YWJjZA`
//!   gives `abc`), and unused trailing bits are ignored.
//! - `base64DecodeExt`: ModSecurity's forgiving decoder: every byte outside the
//!   alphabet is skipped and whatever whole bytes the digits make are returned.
//!   Kept quirks: an `=` seen when the digit count is 1 modulo 4 (and not followed
//!   by another `=`) empties the result, and so does ending, after such a digit
//!   count, on `=` or on `9` (ModSecurity confuses the digit value of `9`, 61, with
//!   the code of `=`).

use base64::alphabet::STANDARD;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD as ENCODER};
use base64::engine::DecodePaddingMode;
use base64::Engine;

/// Decodes complete groups leniently: any padding placement the validation allowed,
/// and non-zero trailing bits.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `t:base64Encode`.
pub fn base64_encode(input: &[u8]) -> Option<Vec<u8>> {
    if input.is_empty() {
        return None;
    }
    Some(ENCODER.encode(input).into_bytes())
}

/// `t:base64Decode`.
pub fn base64_decode(input: &[u8]) -> Option<Vec<u8>> {
    if input.is_empty() {
        return None;
    }
    // Most values (934100 decodes every argument) hold a byte mbedTLS never accepts, or
    // no space or line break to drop: neither needs a copy of the characters. One table
    // load per byte, and a stop at the first chunk that holds an odd byte. The value
    // ends at its first NUL, which the same pass finds (a memchr call apart cost as much
    // as the pass on short values).
    const ODD: u8 = 1;
    const SPACED: u8 = 2;
    const NUL: u8 = 4;
    const CLASS: [u8; 256] = {
        let mut t = [ODD; 256];
        t[0] = NUL;
        let mut c = 1;
        while c < 256 {
            let b = c as u8;
            if b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=' {
                t[c] = 0;
            } else if b == b' ' || b == b'\r' || b == b'\n' {
                t[c] = SPACED;
            }
            c += 1;
        }
        t
    };
    let classes = |value: &[u8]| {
        let mut class = 0;
        for chunk in value.chunks(32) {
            class |= chunk.iter().fold(0, |m, &c| m | CLASS[usize::from(c)]);
            if class & (ODD | NUL) != 0 {
                break;
            }
        }
        class
    };
    let mut value = input;
    let mut class = classes(value);
    if class & NUL != 0 {
        value = memchr::memchr(0, input).map_or(input, |i| input.get(..i).unwrap_or_default());
        class = classes(value);
    }
    let (odd, spaced) = (class & ODD != 0, class & SPACED != 0);
    let out = if odd {
        Vec::new()
    } else if !spaced {
        if padding_ok(value) {
            LENIENT.decode(value.get(..value.len() / 4 * 4).unwrap_or_default()).unwrap_or_default()
        } else {
            Vec::new()
        }
    } else {
        decode_significant(value)
    };
    super::changed(input, out)
}

/// The general path: mbedTLS's validation, then the complete groups decoded.
fn decode_significant(value: &[u8]) -> Vec<u8> {
    match significant_chars(value) {
        Some(mut chars) => {
            chars.truncate(chars.len() / 4 * 4);
            LENIENT.decode(&chars).unwrap_or_default()
        }
        None => Vec::new(),
    }
}

/// mbedTLS's rule for `=` in characters that are all base64 digits or `=`: at most two,
/// and nothing but `=` after the first.
fn padding_ok(chars: &[u8]) -> bool {
    match chars.iter().position(|&c| c == b'=') {
        Some(first) => {
            let tail = chars.get(first..).unwrap_or_default();
            tail.len() <= 2 && tail.iter().all(|&c| c == b'=')
        }
        None => true,
    }
}

/// mbedTLS's validation pass. Returns the base64 characters (line breaks and
/// spaces removed), or `None` if mbedTLS rejects the input.
fn significant_chars(value: &[u8]) -> Option<Vec<u8>> {
    let mut chars = Vec::with_capacity(value.len());
    let mut equals = 0;
    let mut i = 0;
    while i < value.len() {
        let spaces = value.get(i..).unwrap_or_default().iter().take_while(|&&c| c == b' ').count();
        i += spaces;
        let Some(&c) = value.get(i) else { break }; // spaces at the end are fine
        if c == b'\n' || (c == b'\r' && value.get(i + 1) == Some(&b'\n')) {
            i += 1;
            continue;
        }
        if spaces > 0 {
            return None; // a space inside a line
        }
        if c == b'=' {
            equals += 1;
            if equals > 2 {
                return None;
            }
        } else if equals > 0 || !(c.is_ascii_alphanumeric() || c == b'+' || c == b'/') {
            return None;
        }
        chars.push(c);
        i += 1;
    }
    Some(chars)
}

/// `t:base64DecodeExt`.
pub fn base64_decode_ext(input: &[u8]) -> Option<Vec<u8>> {
    if input.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 2);
    let mut digits = 0usize;
    let mut acc = 0u32;
    for (i, &c) in input.iter().enumerate() {
        if c == b'=' {
            if digits % 4 == 1 && input.get(i + 1) != Some(&b'=') {
                return super::changed(input, Vec::new());
            }
            continue;
        }
        let Some(v) = digit_value(c) else { continue };
        acc = (acc << 6) | u32::from(v);
        digits += 1;
        if digits % 4 == 0 {
            out.extend_from_slice(&acc.to_be_bytes()[1..]);
            acc = 0;
        }
    }
    // Whole bytes from a last partial group of 2 or 3 digits.
    match digits % 4 {
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&((acc >> 2) as u16).to_be_bytes()),
        _ => {}
    }
    if digits % 4 == 1 && matches!(input.last(), Some(b'=' | b'9')) {
        out.clear();
    }
    super::changed(input, out)
}

/// The 6-bit value of a standard base64 digit.
fn digit_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;

    #[test]
    fn encode_table() {
        check(base64_encode, &[(b"", b""), (b"TestCase", b"VGVzdENhc2U="), (b"\0", b"AA==")]);
    }

    #[test]
    fn decode_table() {
        check(
            base64_decode,
            &[
                (b"", b""),
                (b"YWJj", b"abc"),
                (b"YWJjZA==", b"abcd"),
                (b"YWJjZA", b"abc"),
                (b"YWJjZB==", b"abcd"), // trailing bits ignored
                (b"YWJj\r\nZA==", b"abcd"),
                (b"YWJj  \nZA==  ", b"abcd"),
                (b"YW Jj", b""), // space inside a line
                (b"YWJj!", b""),
                (b"YQ=a", b""),
                (b"YQ===", b""),
                (b"YWJj\0garbage", b"abc"), // stops at NUL
                (b"YWJjYWJjYWJjYWJjYWJjYWJjYWJjYWJjYWJj\0!", b"abcabcabcabcabcabcabcabcabc"),
                (b"YWJjYWJjYWJjYWJjYWJjYWJjYWJjYWJj!WJj\0", b""), // odd before the NUL
            ],
        );
    }

    #[test]
    fn decode_fast_paths_agree_with_mbedtls_validation() {
        // Bytes around every branch: digits, padding, spaces, line breaks, others, NUL.
        let alphabet = b"YWJjZA9+/= \r\n!-\0";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Up to 70 bytes: the fast pass reads 32-byte chunks.
            let len = (state % 71) as usize;
            let input: Vec<u8> =
                (0..len).map(|i| alphabet[((state >> (i * 4 % 60)) % alphabet.len() as u64) as usize]).collect();
            let value = input.split(|&c| c == 0).next().unwrap_or_default();
            let want = super::super::changed(&input, decode_significant(value));
            assert_eq!(base64_decode(&input), if input.is_empty() { None } else { want }, "{input:?}");
        }
    }

    #[test]
    fn decode_ext_table() {
        check(
            base64_decode_ext,
            &[
                (b"", b""),
                (b"YWJj", b"abc"),
                (b"YWJjZA==", b"abcd"),
                (b"YWJjZA", b"abcd"),
                (b"Y.W!J j", b"abc"),
                (b"P.HNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", b"<script>alert(1)</script>"),
                (b"YWJjZ=", b""),  // '=' after 4n+1 digits
                (b"YWJjZ==", b""), // the second = is followed by the end
                (b"YWJj9", b""),   // ends on '9' after 4n+1 digits
                (b"YWJjZ", b"abc"),
            ],
        );
    }
}
