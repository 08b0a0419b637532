//! `t:htmlEntityDecode`: decode HTML character references.
//!
//! ModSecurity v3.0.9's decoder (the engine behind the CRS reference results),
//! byte for byte:
//! - `&#D...` and `&#xH...` take all the digits that follow, so leading zeros
//!   cannot hide a character (`&#000123;` is `{`), and give one byte: the value's
//!   low byte, or 0xFF when it overflows (C's `strtol` saturates). The `;` is
//!   optional.
//! - Named references: only `quot`, `amp`, `lt`, `gt` and `nbsp` (0xA0), matched
//!   case-insensitively against the whole alphanumeric run after `&` (`&ltx;` is
//!   kept). The `;` is optional.
//! - Anything else (`&`, `&#`, `&#x` without digits, unknown names) is kept as is.
//!
//! (libmodsecurity 3.0.13 limits references to 3 decimal / 2 hex digits and
//! matches names by prefix; that rewrite lets `&#0000123;` through, ModSecurity
//! issue #3340, and the current test vectors expect the v3.0.9 behaviour.)

use super::changed;

/// Every entity starts with `&` (see `triggers.rs`).
pub(super) fn trigger(c: u8) -> bool {
    c == b'&'
}

/// `t:htmlEntityDecode`.
pub fn html_entity_decode(input: &[u8]) -> Option<Vec<u8>> {
    // From `&` to `&` (anything else is copied as is), and no output until a reference
    // decodes: a large body full of `&` separators is checked at memchr's speed.
    let mut i = memchr::memchr(b'&', input)?;
    let mut out: Option<Vec<u8>> = None;
    // Input before this index is in `out` (once there is one).
    let mut copied = 0;
    loop {
        match entity(input, i) {
            Entity::Decoded(byte, next) => {
                let o = out.get_or_insert_with(|| Vec::with_capacity(input.len()));
                o.extend_from_slice(input.get(copied..i).unwrap_or_default());
                o.push(byte);
                copied = next;
                i = next;
            }
            Entity::Copy(n) => i = (i + n).min(input.len()),
        }
        match input.get(i..).and_then(|rest| memchr::memchr(b'&', rest)) {
            Some(at) => i += at,
            None => break,
        }
    }
    let mut out = out?;
    out.extend_from_slice(input.get(copied..).unwrap_or_default());
    changed(input, out)
}

enum Entity {
    /// A decoded byte and the index after the reference.
    Decoded(u8, usize),
    /// Copy this many bytes verbatim.
    Copy(usize),
}

/// Looks at `input[i..]` for a reference.
fn entity(input: &[u8], i: usize) -> Entity {
    let at = |k: usize| input.get(k).copied();
    if at(i) != Some(b'&') || at(i + 1).is_none() {
        return Entity::Copy(1);
    }
    // Skips an optional `;` at `j`.
    let after = |j: usize| if at(j) == Some(b';') { j + 1 } else { j };
    let run = |from: usize, max: usize, pred: fn(&u8) -> bool| {
        input.get(from..).unwrap_or_default().iter().take(max).take_while(|c| pred(c)).count()
    };

    if at(i + 1) == Some(b'#') {
        let j = i + 2;
        match at(j) {
            None => Entity::Copy(2),
            Some(b'x' | b'X') => {
                let k = j + 1;
                let n = run(k, usize::MAX, u8::is_ascii_hexdigit);
                match input.get(k..k + n) {
                    Some(digits) if n > 0 => Entity::Decoded(strtol_byte(digits, 16), after(k + n)),
                    _ => Entity::Copy(3),
                }
            }
            Some(_) => {
                let n = run(j, usize::MAX, u8::is_ascii_digit);
                match input.get(j..j + n) {
                    Some(digits) if n > 0 => Entity::Decoded(strtol_byte(digits, 10), after(j + n)),
                    _ => Entity::Copy(2),
                }
            }
        }
    } else {
        let k = i + 1;
        let n = run(k, usize::MAX, u8::is_ascii_alphanumeric);
        if n == 0 {
            return Entity::Copy(1);
        }
        let name = input.get(k..k + n).unwrap_or_default();
        const NAMES: &[(&[u8], u8)] = &[(b"quot", b'"'), (b"amp", b'&'), (b"lt", b'<'), (b"gt", b'>'), (b"nbsp", 0xa0)];
        match NAMES.iter().find(|(p, _)| name.eq_ignore_ascii_case(p)) {
            Some(&(_, byte)) => Entity::Decoded(byte, after(k + n)),
            None => Entity::Copy(n + 1),
        }
    }
}

/// `(unsigned char)strtol(digits, NULL, radix)`: the low byte of the value, which
/// saturates at `LONG_MAX` (low byte 0xFF) on overflow.
fn strtol_byte(digits: &[u8], radix: u32) -> u8 {
    let value = digits.iter().try_fold(0i64, |v, &d| {
        let d = char::from(d).to_digit(radix)?;
        v.checked_mul(i64::from(radix))?.checked_add(i64::from(d))
    });
    value.map_or(0xff, |v| v as u8)
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;

    /// The decoder one byte at a time, as it was before it skipped from `&` to `&`.
    fn bytewise(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < input.len() {
            match entity(input, i) {
                Entity::Decoded(byte, next) => {
                    out.push(byte);
                    i = next;
                }
                Entity::Copy(n) => {
                    let end = (i + n).min(input.len());
                    out.extend_from_slice(&input[i..end]);
                    i = end;
                }
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 3000, failure_persistence: None, ..Default::default() })]
        #[test]
        fn skipping_to_ampersands_decodes_the_same(
            input in proptest::collection::vec(proptest::sample::select(b"&#x;ampltgqu0129aF; \xff".to_vec()), 0..40)
        ) {
            let want = bytewise(&input);
            let got = html_entity_decode(&input);
            proptest::prop_assert_eq!(got.clone().unwrap_or_else(|| input.clone()), want.clone());
            proptest::prop_assert_eq!(got.is_some(), want != input);
        }
    }

    #[test]
    fn table() {
        check(
            html_entity_decode,
            &[
                (b"", b""),
                (b"no entity", b"no entity"),
                (b"&lt;&gt;&amp;&quot;&nbsp;", b"<>&\"\xa0"),
                (b"&LT&Gt", b"<>"),
                (b"&ltfoo;x", b"&ltfoo;x"),
                (b"&foo;", b"&foo;"),
                (b"&#65;&#x41;&#X41", b"AAA"),
                (b"&#0000065;", b"A"), // leading zeros
                (b"&#x0000041", b"A"),
                (b"&#x141;", b"A"), // low byte
                (b"&#321;", b"A"),
                (b"&#99999999999999999999;", b"\xff"), // strtol saturates
                (b"&", b"&"),
                (b"&#", b"&#"),
                (b"&#x", b"&#x"),
                (b"&#xg", b"&#xg"),
                (b"&#;", b"&#;"),
                (b"& ;", b"& ;"),
            ],
        );
    }
}
