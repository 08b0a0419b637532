//! URLENCODED body processor (ARGS_POST) and query-string splitter (ARGS_GET).
//!
//! ModSecurity v3 semantics (`Transaction::extractArguments`):
//! - the input is split on the separator (`&`, or `SecArgumentSeparator`) the way
//!   `std::getline` splits: empty pieces in the middle are kept (they become an
//!   argument with an empty name and value), a trailing separator adds nothing;
//! - each piece is split at its first `=`; a piece without `=` is a name with an
//!   empty value;
//! - name and value are decoded with `urldecode_nonstrict`: `+` becomes a space,
//!   `%XX` with two hex digits becomes the byte, any other `%` is kept as-is and
//!   counted as invalid;
//! - v3 resets the invalid counter for every decode and tests it after the value,
//!   so only invalid escapes in a *value* raise URLENCODED_ERROR. We report both.
//!
//! Decoding borrows when a piece has no `%` or `+`, so a plain query string costs
//! no allocation per argument (see [`parse_borrowed`]).

use std::borrow::Cow;
use std::ops::Range;

/// A (name, value) pair borrowing from the input where nothing was decoded.
pub type CowPair<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// What the splitter saw besides the arguments.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UrlencodedOutcome {
    /// Number of arguments appended to `out`.
    pub count: usize,
    /// Invalid `%` escapes in values: v3 sets URLENCODED_ERROR to 1 when this is > 0.
    pub invalid_encoding: usize,
    /// Invalid `%` escapes in names (v3 ignores these for URLENCODED_ERROR).
    pub invalid_encoding_names: usize,
    /// Nothing was decoded: every name and value is the input's own bytes (see [`spans`]).
    pub verbatim: bool,
}

impl UrlencodedOutcome {
    /// The URLENCODED_ERROR flag as ModSecurity v3 sets it.
    pub fn urlencoded_error(&self) -> bool {
        self.invalid_encoding > 0
    }

    fn start() -> UrlencodedOutcome {
        UrlencodedOutcome { verbatim: true, ..UrlencodedOutcome::default() }
    }

    /// Counts an argument: whether its name and value were decoded, and their invalid escapes.
    fn add(&mut self, (name_decoded, bad_name): (bool, usize), (value_decoded, bad_value): (bool, usize)) {
        self.invalid_encoding_names += bad_name;
        self.invalid_encoding += bad_value;
        self.verbatim &= !name_decoded && !value_decoded;
        self.count += 1;
    }
}

/// Splits `input` on `&` and appends decoded (name, value) pairs to `out`.
pub fn parse(input: &[u8], out: &mut Vec<(Vec<u8>, Vec<u8>)>) -> UrlencodedOutcome {
    parse_with_separator(input, b'&', out)
}

/// Like [`parse`] with a custom separator (SecArgumentSeparator).
pub fn parse_with_separator(input: &[u8], separator: u8, out: &mut Vec<(Vec<u8>, Vec<u8>)>) -> UrlencodedOutcome {
    parse_into(input, separator, out, Vec::with_capacity)
}

/// Like [`parse_with_separator`], each name and value written into a buffer that `room`
/// gives for its raw length (decoding never lengthens): a transaction's kept buffers
/// rather than two allocations per argument.
pub fn parse_into(
    input: &[u8],
    separator: u8,
    out: &mut Vec<(Vec<u8>, Vec<u8>)>,
    mut room: impl FnMut(usize) -> Vec<u8>,
) -> UrlencodedOutcome {
    let mut outcome = UrlencodedOutcome::start();
    pieces(input, separator, |name, value| {
        let (mut k, mut v) = (room(name.len()), room(value.len()));
        k.clear();
        v.clear();
        outcome.add(decode_into(&input[name], &mut k), decode_into(&input[value], &mut v));
        out.push((k, v));
    });
    outcome
}

/// Like [`parse_with_separator`], but borrows from `input` where nothing was encoded.
pub fn parse_borrowed<'a>(input: &'a [u8], separator: u8, out: &mut Vec<CowPair<'a>>) -> UrlencodedOutcome {
    split(input, separator, |k, v| out.push((k, v)))
}

fn split<'a>(input: &'a [u8], separator: u8, mut emit: impl FnMut(Cow<'a, [u8]>, Cow<'a, [u8]>)) -> UrlencodedOutcome {
    let mut outcome = UrlencodedOutcome::start();
    pieces(input, separator, |name, value| {
        let (name, bad_name) = decode(&input[name]);
        let (value, bad_value) = decode(&input[value]);
        outcome.add((matches!(name, Cow::Owned(_)), bad_name), (matches!(value, Cow::Owned(_)), bad_value));
        emit(name, value);
    });
    outcome
}

/// Where each argument's raw name and value lie in `input`, in the order [`parse`] gives
/// them: when the outcome was `verbatim`, these are the arguments themselves.
pub fn spans(input: &[u8], separator: u8) -> Vec<(Range<usize>, Range<usize>)> {
    let mut out = Vec::new();
    pieces(input, separator, |name, value| out.push((name, value)));
    out
}

/// Cuts `input` into (raw name, raw value) ranges: on the separator as `std::getline`
/// does (a trailing separator adds nothing), then at each piece's first `=`.
fn pieces(input: &[u8], separator: u8, mut emit: impl FnMut(Range<usize>, Range<usize>)) {
    let mut at = 0;
    while at < input.len() {
        let end = memchr::memchr(separator, &input[at..]).map_or(input.len(), |i| at + i);
        match memchr::memchr(b'=', &input[at..end]) {
            Some(i) => emit(at..at + i, at + i + 1..end),
            None => emit(at..end, end..end),
        }
        at = end + 1;
    }
}

/// `urldecode_nonstrict`: returns the decoded bytes and the count of invalid escapes.
pub fn decode(input: &[u8]) -> (Cow<'_, [u8]>, usize) {
    if memchr::memchr2(b'%', b'+', input).is_none() {
        return (Cow::Borrowed(input), 0);
    }
    let mut out = Vec::with_capacity(input.len());
    let (_, invalid) = decode_into(input, &mut out);
    (Cow::Owned(out), invalid)
}

/// [`decode`], appended to `out`; whether anything was decoded (a `%` or `+` was there).
fn decode_into(input: &[u8], out: &mut Vec<u8>) -> (bool, usize) {
    let Some(first) = memchr::memchr2(b'%', b'+', input) else {
        out.extend_from_slice(input);
        return (false, 0);
    };
    out.extend_from_slice(&input[..first]);
    let mut invalid = 0;
    let mut i = first;
    while let Some(&b) = input.get(i) {
        match b {
            b'%' => match (input.get(i + 1).and_then(|&c| hex(c)), input.get(i + 2).and_then(|&c| hex(c))) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    invalid += 1;
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                // The run up to the next escape or `+`, at once.
                let end = memchr::memchr2(b'%', b'+', &input[i..]).map_or(input.len(), |n| i + n);
                out.extend_from_slice(&input[i..end]);
                i = end;
            }
        }
    }
    (true, invalid)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pairs = &'static [(&'static [u8], &'static [u8])];

    #[test]
    fn table() {
        let cases: &[(&[u8], Pairs, usize, usize)] = &[
            (b"", &[], 0, 0),
            (b"a=1", &[(b"a", b"1")], 0, 0),
            (b"a=1&b=2", &[(b"a", b"1"), (b"b", b"2")], 0, 0),
            (b"a", &[(b"a", b"")], 0, 0),
            (b"a=", &[(b"a", b"")], 0, 0),
            (b"=b", &[(b"", b"b")], 0, 0),
            (b"a=1&", &[(b"a", b"1")], 0, 0),
            (b"a=1&&b=2", &[(b"a", b"1"), (b"", b""), (b"b", b"2")], 0, 0),
            (b"&a", &[(b"", b""), (b"a", b"")], 0, 0),
            (b"&", &[(b"", b"")], 0, 0),
            (b"a=b=c", &[(b"a", b"b=c")], 0, 0),
            (b"a+b=c+d", &[(b"a b", b"c d")], 0, 0),
            (b"a=%41%2b%2B", &[(b"a", b"A++")], 0, 0),
            (b"a=%4", &[(b"a", b"%4")], 1, 0),
            (b"a=%", &[(b"a", b"%")], 1, 0),
            (b"a=%zz%41", &[(b"a", b"%zzA")], 1, 0),
            (b"%zz=1", &[(b"%zz", b"1")], 0, 1),
            (b"a=%00", &[(b"a", b"\0")], 0, 0),
            (b"a=%%41", &[(b"a", b"%A")], 1, 0),
            (b"a=\xff\xfe", &[(b"a", b"\xff\xfe")], 0, 0),
        ];
        for (input, want, bad_v, bad_n) in cases {
            let mut out = Vec::new();
            let o = parse(input, &mut out);
            let want: Vec<(Vec<u8>, Vec<u8>)> = want.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
            assert_eq!(out, want, "input {:?}", String::from_utf8_lossy(input));
            assert_eq!(o.invalid_encoding, *bad_v, "input {:?}", String::from_utf8_lossy(input));
            assert_eq!(o.invalid_encoding_names, *bad_n);
            assert_eq!(o.count, want.len());
            assert_eq!(o.verbatim, !input.iter().any(|&b| b == b'%' || b == b'+'), "input {input:?}");
            spans_agree(input, b'&', &out, &o);
        }
    }

    /// [`spans`] cuts where `parse` does; where nothing was decoded they are the arguments.
    fn spans_agree(input: &[u8], sep: u8, out: &[(Vec<u8>, Vec<u8>)], o: &UrlencodedOutcome) {
        let spans = spans(input, sep);
        assert_eq!(spans.len(), out.len(), "input {input:?}");
        for ((name, value), (k, v)) in spans.into_iter().zip(out) {
            assert_eq!(decode(&input[name.clone()]).0, &k[..], "input {input:?}");
            assert_eq!(decode(&input[value.clone()]).0, &v[..], "input {input:?}");
            if o.verbatim {
                assert_eq!((&input[name], &input[value]), (&k[..], &v[..]), "input {input:?}");
            }
        }
    }

    #[test]
    fn arguments_are_written_into_the_buffers_given() {
        let mut given = Vec::new();
        let mut out = Vec::new();
        let o = parse_into(b"a=x%41&bb=", b'&', &mut out, |n| {
            let mut v = Vec::with_capacity(64);
            v.extend_from_slice(b"stale");
            given.push((n, v.as_ptr()));
            v
        });
        assert_eq!(out, vec![(b"a".to_vec(), b"xA".to_vec()), (b"bb".to_vec(), b"".to_vec())]);
        assert_eq!((o.count, o.verbatim), (2, false));
        // Each buffer asked for its raw length, came back cleared and holding its argument.
        assert_eq!(given.iter().map(|g| g.0).collect::<Vec<_>>(), [1, 4, 2, 0]);
        let held: Vec<_> = out.iter().flat_map(|(k, v)| [k.as_ptr(), v.as_ptr()]).collect();
        assert_eq!(given.iter().map(|g| g.1).collect::<Vec<_>>(), held);
    }

    #[test]
    fn separator_and_borrowing() {
        let mut out = Vec::new();
        let o = parse_borrowed(b"a=1;b=%41", b';', &mut out);
        assert_eq!(o.count, 2);
        assert!(matches!(out[0].1, Cow::Borrowed(_)));
        assert!(matches!(out[1].1, Cow::Owned(_)));
        assert_eq!(&*out[1].1, b"A");
    }

    /// `decode` one byte at a time, as it was before it copied runs.
    fn decode_bytewise(input: &[u8]) -> (Vec<u8>, usize) {
        let (mut out, mut invalid, mut i) = (Vec::new(), 0, 0);
        while let Some(&b) = input.get(i) {
            match (b, input.get(i + 1).and_then(|&c| hex(c)), input.get(i + 2).and_then(|&c| hex(c))) {
                (b'%', Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                (b'%', ..) => invalid += 1,
                _ => {}
            }
            out.push(if b == b'+' { b' ' } else { b });
            i += 1;
        }
        (out, invalid)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 3000, failure_persistence: None, ..Default::default() })]
        #[test]
        fn decode_copies_runs_as_bytewise_decoding_would(
            input in proptest::collection::vec(proptest::sample::select(b"%+aF09gG &=".to_vec()), 0..40)
        ) {
            let (got, invalid) = decode(&input);
            proptest::prop_assert_eq!((got.into_owned(), invalid), decode_bytewise(&input));
        }

        #[test]
        fn spans_cut_where_parse_does(
            input in proptest::collection::vec(proptest::sample::select(b"%+a4;&=".to_vec()), 0..40),
            sep in proptest::sample::select(b"&;".to_vec()),
        ) {
            let mut out = Vec::new();
            let o = parse_with_separator(&input, sep, &mut out);
            spans_agree(&input, sep, &out, &o);
        }
    }

    #[test]
    fn hostile_is_linear() {
        let big = b"%&=+".repeat(250_000);
        let mut out = Vec::new();
        let o = parse(&big, &mut out);
        assert_eq!(o.count, 250_001);
    }
}
