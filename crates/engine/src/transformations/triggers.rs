//! Which transformation lists can change a value, read off its bytes once.
//!
//! Most transformations leave most values as they are, and each one names the bytes it
//! acts on (its trigger, in `TABLE`): a value without any of them is its own output. A
//! JSON body's ~400 values made ~30,000 such calls per request, each reading the whole
//! value. Instead a value gets a mask with one bit per class of bytes it holds (a class
//! is the bytes that the same transformations act on), a list has the union of its
//! steps' masks, and a list whose mask misses the value's leaves the value unchanged.

use once_cell::sync::Lazy;

use super::TABLE;

/// In every value's mask and in the mask of every transformation without a trigger.
pub const ANY: u64 = 1 << 63;

/// Conditions on more than one byte, for steps that a lone trigger byte says too little
/// about (a JSON body's dotted names and dashed dates hold `.` and `-` in most values):
/// the value ends with `.` (the one-segment paths `normalizePath` can change) …
const DOT_END: u64 = 1 << 62;
/// … holds `--` …
const DASHES: u64 = 1 << 61;
/// … holds `/*` or `*/` (`removeCommentsChar`'s markers: these, `--` and `#`).
const STAR_COMMENT: u64 = 1 << 60;

/// The conditions of step `name` besides its trigger bytes.
fn conditions(name: &str) -> u64 {
    match name.to_ascii_lowercase().as_str() {
        "normalizepath" | "normalisepath" | "normalizepathwin" | "normalisepathwin" => DOT_END,
        "removecommentschar" => DASHES | STAR_COMMENT,
        _ => 0,
    }
}

struct Classes {
    /// Each byte's class bit (0 for bytes that no transformation acts on).
    of_byte: [u64; 256],
    /// By `TABLE` index: the classes of the bytes it acts on, or [`ANY`].
    of_step: Vec<u64>,
    /// The classes of `-` and `/`, which every pair condition holds (every bit when one
    /// has no class of its own).
    of_pairs: u64,
}

static CLASSES: Lazy<Classes> = Lazy::new(|| {
    // A byte's signature: which transformations act on it (TABLE has fewer than 64).
    let signature = |b: u8| {
        TABLE.iter().enumerate().filter(|(_, (_, _, t))| t.is_some_and(|t| t(b))).fold(0u64, |s, (i, _)| s | 1 << i)
    };
    let mut classes: Vec<u64> = Vec::new();
    let mut of_byte = [0u64; 256];
    for b in 0..=255u8 {
        let sig = signature(b);
        if sig == 0 {
            continue;
        }
        let class = classes.iter().position(|&c| c == sig).unwrap_or_else(|| {
            classes.push(sig);
            classes.len() - 1
        });
        assert!(class < 60, "more byte classes than mask bits");
        of_byte[usize::from(b)] = 1 << class;
    }
    let of_step = TABLE
        .iter()
        .map(|(name, _, t)| match t {
            Some(t) => (0..=255u8).filter(|&b| t(b)).fold(conditions(name), |m, b| m | of_byte[usize::from(b)]),
            None => ANY,
        })
        .collect();
    let class = |b: u8| match of_byte[usize::from(b)] {
        0 => u64::MAX,
        c => c,
    };
    Classes { of_byte, of_step, of_pairs: class(b'-') | class(b'/') }
});

/// The mask of the transformation `name` ([`ANY`] for a name not in the table).
pub fn step_mask(name: &str) -> u64 {
    TABLE.iter().position(|(n, ..)| n.eq_ignore_ascii_case(name)).map_or(ANY, |i| CLASSES.of_step[i])
}

/// The classes of letters and digits, and [`ANY`]: a list whose mask meets these changes
/// nearly every value.
pub fn broad() -> u64 {
    let c = &CLASSES.of_byte;
    (b'a'..=b'z').chain(b'A'..=b'Z').chain(b'0'..=b'9').fold(ANY, |m, b| m | c[usize::from(b)])
}

/// The mask of a value: a list whose mask has no bit of it returns the value unchanged.
#[inline]
pub fn value_mask(value: &[u8]) -> u64 {
    let classes = &*CLASSES;
    let mut m = value.iter().fold(ANY, |m, &b| m | classes.of_byte[usize::from(b)]);
    if value.last() == Some(&b'.') {
        m |= DOT_END;
    }
    // `-` and `/` are other steps' triggers: a value without their classes holds no pair.
    if m & classes.of_pairs != 0 {
        m |= pairs(value);
    }
    m
}

/// The conditions on pairs of bytes that `value` meets.
#[inline(never)]
fn pairs(value: &[u8]) -> u64 {
    let mut m = 0;
    if holds_pair(value, b'-', b'-') {
        m |= DASHES;
    }
    if holds_pair(value, b'/', b'*') || holds_pair(value, b'*', b'/') {
        m |= STAR_COMMENT;
    }
    m
}

/// Whether `value` holds `a` followed by `b` (a `memmem` finder costs more to make than
/// this takes on most values).
fn holds_pair(value: &[u8], a: u8, b: u8) -> bool {
    let mut rest = value;
    while let Some(i) = memchr::memchr(a, rest) {
        if rest.get(i + 1) == Some(&b) {
            return true;
        }
        rest = rest.get(i + 1..).unwrap_or_default();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value whose mask misses a transformation's is returned unchanged: every one- and
    /// two-byte value, and pseudo-random longer ones made of the bytes that are not its
    /// triggers and of those its conditions on several bytes look for.
    #[test]
    fn a_value_that_misses_a_steps_mask_is_unchanged() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for &(name, f, trigger) in TABLE {
            let Some(trigger) = trigger else { continue };
            let step = step_mask(name);
            let mut checked = 0;
            let mut unchanged = |v: &[u8]| {
                if step & value_mask(v) == 0 {
                    assert!(f(v).is_none(), "{name} changed {v:?}, whose mask misses its own");
                    checked += 1;
                }
            };
            unchanged(b"");
            for a in 0..=255u8 {
                unchanged(&[a]);
                for b in 0..=255u8 {
                    unchanged(&[a, b]);
                }
            }
            let mut bytes: Vec<u8> = (0..=255u8).filter(|&b| !trigger(b)).collect();
            bytes.extend_from_slice(b"..--**//");
            for _ in 0..20_000 {
                let len = 3 + (next() % 40) as usize;
                let v: Vec<u8> = (0..len).map(|_| bytes[(next() % bytes.len() as u64) as usize]).collect();
                unchanged(&v);
            }
            assert!(checked > 20_000, "{name}: only {checked} values miss its mask");
        }
    }

    /// The masks themselves: a value meets a list's mask exactly when it holds one of its
    /// steps' trigger bytes.
    #[test]
    fn masks_meet_on_trigger_bytes() {
        let cases: &[(&str, &[u8], bool)] = &[
            ("urlDecodeUni", b"web-01", false),
            ("urlDecodeUni", b"a+b", true),
            ("urlDecodeUni", b"%41", true),
            ("htmlEntityDecode", b"a&b", true),
            ("htmlEntityDecode", b"a%b", false),
            ("jsDecode", b"a\\b", true),
            ("cssDecode", b"a\\b", true),
            ("cmdLine", b"now", false),
            ("cmdLine", b"Now", true),
            ("cmdLine", b"a;b", true),
            ("lowercase", b"now", false),
            ("lowercase", b"nOw", true),
            ("uppercase", b"NOW", false),
            ("uppercase", b"NoW", true),
            ("removeWhitespace", b"a\xa0b", true),
            ("compressWhitespace", b"a\xa0b", false),
            ("compressWhitespace", b"a\x0bb", true),
            ("utf8toUnicode", b"caf\xc3\xa9", true),
            ("utf8toUnicode", b"a\0", true),
            ("removeNulls", b"a\0", true),
            ("removeNulls", b"a b", false),
            ("normalizePath", b"a.b", false),
            ("normalizePath", b"ab.", true),
            ("normalizePath", b"a/b", true),
            ("normalizePath", b"a\\b", false),
            ("normalizePathWin", b"a\\b", true),
            ("normalizePathWin", b"a.b", false),
            ("removeCommentsChar", b"2024-01-01", false),
            ("removeCommentsChar", b"a--b", true),
            ("removeCommentsChar", b"a*b/c", false),
            ("removeCommentsChar", b"a/*b", true),
            ("removeCommentsChar", b"a*/b", true),
            ("removeCommentsChar", b"a#b", true),
            ("replaceComments", b"2024-01-01", false),
            ("trim", b" a", true),
            // No trigger: every value, the empty one too.
            ("base64Decode", b"", true),
            ("length", b"abc", true),
            ("noSuchTransformation", b"", true),
        ];
        for &(name, v, meets) in cases {
            assert_eq!(step_mask(name) & value_mask(v) != 0, meets, "{name} on {:?}", String::from_utf8_lossy(v));
        }
        assert_eq!(step_mask("URLDECODEUNI"), step_mask("urlDecodeUni"), "names are case-insensitive");
        assert_eq!(step_mask("urlDecode"), step_mask("urlDecodeUni"), "same bytes, same class");
    }
}
