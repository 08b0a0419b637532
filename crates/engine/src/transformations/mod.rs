//! Transformation registry (`t:name`): pure byte functions with ModSecurity's semantics.
//!
//! Each transformation returns `None` when its input is unchanged, so that a
//! value is never copied for a no-op. `Some` is returned exactly when the output
//! bytes differ from the input. (ModSecurity v3's own "changed" flag, used only for
//! `multiMatch`, sometimes disagrees: e.g. `compressWhitespace` turning a tab into a
//! space reports "unchanged", `md5` always reports "changed".) Names are
//! case-insensitive.
//!
//! The byte-level behaviour follows ModSecurity v3 (libmodsecurity 3.0.x), including
//! its quirks, because verdicts must match it; each file says which quirks it keeps.

mod base64;
pub(crate) mod case;
mod cmd_line;
mod comments;
mod css_decode;
mod escape_seq_decode;
mod hash;
mod hex;
mod html_entity_decode;
mod js_decode;
mod length;
mod normalize_path;
mod nulls;
mod parity;
mod php_args_names;
mod sql_hex_decode;
pub mod tree;
pub(crate) mod triggers;
mod trim;
mod url_decode;
mod url_encode;
mod utf8_to_unicode;
mod whitespace;

/// A transformation function. `None` means "unchanged".
pub type Transform = fn(&[u8]) -> Option<Vec<u8>>;

/// Bytes without which a transformation returns its input unchanged; `None` when it may
/// change any input (decoders of every byte, hashes, `length`…). See `triggers.rs`.
type Trigger = Option<fn(u8) -> bool>;

/// Every transformation by its SecLang name, with its trigger. `none` is handled by the
/// compiler.
const TABLE: &[(&str, Transform, Trigger)] = &[
    ("base64Decode", base64::base64_decode, None),
    ("base64DecodeExt", base64::base64_decode_ext, None),
    ("base64Encode", base64::base64_encode, None),
    ("cmdLine", cmd_line::cmd_line, Some(cmd_line::trigger)),
    ("compressWhitespace", whitespace::compress_whitespace, Some(is_c_space)),
    ("cssDecode", css_decode::css_decode, Some(backslash)),
    ("escapeSeqDecode", escape_seq_decode::escape_seq_decode, Some(backslash)),
    ("hexDecode", hex::hex_decode, None),
    ("hexEncode", hex::hex_encode, None),
    ("htmlEntityDecode", html_entity_decode::html_entity_decode, Some(html_entity_decode::trigger)),
    ("jsDecode", js_decode::js_decode, Some(backslash)),
    ("length", length::length, None),
    ("lowercase", case::lowercase, Some(case::lowercase_trigger)),
    ("md5", hash::md5, None),
    ("normalisePath", normalize_path::normalize_path, Some(normalize_path::trigger)),
    ("normalisePathWin", normalize_path::normalize_path_win, Some(normalize_path::win_trigger)),
    ("normalizePath", normalize_path::normalize_path, Some(normalize_path::trigger)),
    ("normalizePathWin", normalize_path::normalize_path_win, Some(normalize_path::win_trigger)),
    ("parityEven7bit", parity::parity_even_7bit, None),
    ("parityOdd7bit", parity::parity_odd_7bit, None),
    ("parityZero7bit", parity::parity_zero_7bit, None),
    ("phpArgsNames", php_args_names::php_args_names, None),
    ("removeComments", comments::remove_comments, Some(comments::remove_trigger)),
    ("removeCommentsChar", comments::remove_comments_char, Some(comments::remove_char_trigger)),
    ("removeNulls", nulls::remove_nulls, Some(nulls::trigger)),
    ("removeWhitespace", whitespace::remove_whitespace, Some(whitespace::remove_trigger)),
    ("replaceComments", comments::replace_comments, Some(comments::replace_trigger)),
    ("replaceNulls", nulls::replace_nulls, Some(nulls::trigger)),
    ("sha1", hash::sha1, None),
    ("sqlHexDecode", sql_hex_decode::sql_hex_decode, None),
    ("trim", trim::trim, Some(is_c_space)),
    ("trimLeft", trim::trim_left, Some(is_c_space)),
    ("trimRight", trim::trim_right, Some(is_c_space)),
    ("uppercase", case::uppercase, Some(case::uppercase_trigger)),
    ("urlDecode", url_decode::url_decode, Some(url_decode::trigger)),
    ("urlDecodeUni", url_decode::url_decode_uni, Some(url_decode::trigger)),
    ("urlEncode", url_encode::url_encode, None),
    ("utf8toUnicode", utf8_to_unicode::utf8_to_unicode, Some(utf8_to_unicode::trigger)),
];

/// Looks up a transformation by name (case-insensitive). `none` is handled by the
/// compiler (it clears the chain) and is not in this table.
pub fn lookup(name: &str) -> Option<Transform> {
    TABLE.iter().find(|(n, ..)| n.eq_ignore_ascii_case(name)).map(|&(_, f, _)| f)
}

/// Names of all transformations in the table, for diagnostics.
pub fn names() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|&(n, ..)| n)
}

/// `Some(out)` if `out` differs from `input`, else `None` (the "unchanged" contract).
fn changed(input: &[u8], out: Vec<u8>) -> Option<Vec<u8>> {
    if out == input {
        None
    } else {
        Some(out)
    }
}

/// C's `isspace` in the "C" locale: space, `\t`, `\n`, `\v`, `\f`, `\r`.
/// (Rust's `is_ascii_whitespace` leaves out `\v`.)
const fn is_c_space(c: u8) -> bool {
    c == b' ' || (c >= 0x09 && c <= 0x0d)
}

/// The escapes of `jsDecode`, `cssDecode` and `escapeSeqDecode` (their trigger).
fn backslash(c: u8) -> bool {
    c == b'\\'
}

/// One hex digit's value as ModSecurity's `xsingle2c` computes it. Callers pass
/// validated digits, except `hexDecode`, which keeps ModSecurity's wrapping result
/// for non-hex input.
fn hex_digit(c: u8) -> u8 {
    if c >= b'A' {
        (c & 0xdf).wrapping_sub(b'A').wrapping_add(10)
    } else {
        c.wrapping_sub(b'0')
    }
}

/// Two hex digits to a byte, as ModSecurity's `x2c`.
fn x2c(hi: u8, lo: u8) -> u8 {
    hex_digit(hi).wrapping_mul(16).wrapping_add(hex_digit(lo))
}

/// ModSecurity's "full-width ASCII" rule for `%uFFxx`-style escapes: only the low
/// byte is kept, and U+FF01..U+FF5E map to `!`..`~` by adding 0x20.
fn full_width_low_byte(hi1: u8, hi2: u8, low: u8) -> u8 {
    let is_f = |c: u8| c == b'f' || c == b'F';
    if low > 0x00 && low < 0x5f && is_f(hi1) && is_f(hi2) {
        low + 0x20
    } else {
        low
    }
}

/// Table-test helper shared by the transformation files: runs `f` on each input
/// and compares the resulting bytes (an unchanged input is its own output), and
/// checks the `None` contract.
#[cfg(test)]
fn check(f: Transform, cases: &[(&[u8], &[u8])]) {
    for &(input, want) in cases {
        let got = f(input);
        if let Some(out) = &got {
            assert_ne!(out.as_slice(), input, "Some(unchanged) for {:?}", String::from_utf8_lossy(input));
        }
        let got = got.unwrap_or_else(|| input.to_vec());
        assert_eq!(
            got,
            want,
            "input {:?}: got {:?}, want {:?}",
            String::from_utf8_lossy(input),
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(want)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive_and_knows_aliases() {
        assert!(lookup("urlDecodeUni").is_some());
        assert!(lookup("URLDECODEUNI").is_some());
        assert!(lookup("normalizePathWin").is_some());
        assert!(lookup("normalisepathwin").is_some());
        assert!(lookup("none").is_none());
        assert!(lookup("nope").is_none());
    }

    #[test]
    fn every_entry_is_unique() {
        let mut seen: Vec<String> = names().map(|n| n.to_ascii_lowercase()).collect();
        seen.sort();
        let before = seen.len();
        seen.dedup();
        assert_eq!(before, seen.len());
    }

    /// Every transformation on many pseudo-random inputs built from the bytes the
    /// decoders care about: no panics, and `Some` only for a changed value.
    #[test]
    fn no_panics_and_none_contract() {
        const ALPHABET: &[u8] =
            b"%uUxX0123456789aAbBfFzZ&#;\\/.*-<!>=+ \t\n\r\x0b\x00\x80\xc2\xa0\xc3\xe2\xed\xf0\xf5\xff[]qlgtnsp\"'^,()";
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..4000 {
            let len = (next() % 24) as usize;
            let input: Vec<u8> = (0..len).map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize]).collect();
            for &(name, f, _) in TABLE {
                if let Some(out) = f(&input) {
                    assert_ne!(out, input, "{name} returned Some for an unchanged value");
                }
            }
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(x2c(b'4', b'1'), b'A');
        assert_eq!(x2c(b'f', b'F'), 0xff);
        assert_eq!(x2c(b'0', b'z'), b'#'); // ModSecurity's wrapping digit math
        assert!(is_c_space(0x0b));
        assert!(!is_c_space(0xa0));
        assert_eq!(full_width_low_byte(b'f', b'F', 0x01), b'!');
        assert_eq!(full_width_low_byte(b'0', b'0', 0x01), 0x01);
    }
}
