//! `t:replaceComments`, `t:removeComments` and `t:removeCommentsChar`: defeat
//! comment-based evasions (C `/* */`, HTML `<!-- -->`, SQL `--` and shell `#`).
//!
//! - `replaceComments`: each `/* ... */` becomes one space; an unterminated one
//!   runs to the end and also becomes a space. A lone `*/` is kept.
//! - `removeComments`: `/* ... */` and `<!-- ... -->` are removed; `--` and `#`
//!   (outside a comment) cut the value there. Kept ModSecurity quirks: the byte
//!   right after a closing `*/` or `-->` is copied without being examined, and when
//!   the close is at the very end ModSecurity copies its terminating NUL, so
//!   `/* x */` becomes a single 0x00 byte; an unterminated comment becomes a space.
//! - `removeCommentsChar`: just deletes the markers `/*`, `*/`, `<!--`, `-->`, `--`
//!   and `#`, keeping the text between them.

use super::changed;

/// Each family's markers' bytes (see `triggers.rs`): `replaceComments` needs `/*`,
/// `removeComments` also `<!--`, `--` and `#`; `removeCommentsChar` deletes `#` and
/// markers that hold `--`, `/*` or `*/` (conditions of their own there).
pub(super) fn replace_trigger(c: u8) -> bool {
    c == b'/'
}

pub(super) fn remove_trigger(c: u8) -> bool {
    matches!(c, b'/' | b'<' | b'-' | b'#')
}

pub(super) fn remove_char_trigger(c: u8) -> bool {
    c == b'#'
}

/// `t:replaceComments`.
pub fn replace_comments(input: &[u8]) -> Option<Vec<u8>> {
    if memchr::memmem::find(input, b"/*").is_none() {
        return None;
    }
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some(open) = memchr::memmem::find(rest, b"/*") {
        out.extend_from_slice(rest.get(..open).unwrap_or_default());
        out.push(b' ');
        let body = rest.get(open + 2..).unwrap_or_default();
        match memchr::memmem::find(body, b"*/") {
            Some(close) => rest = body.get(close + 2..).unwrap_or_default(),
            None => return changed(input, out),
        }
    }
    out.extend_from_slice(rest);
    changed(input, out)
}

/// `t:removeComments`.
pub fn remove_comments(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut in_comment = false;
    let mut i = 0;
    while i < input.len() {
        let tail = input.get(i..).unwrap_or_default();
        if !in_comment {
            if tail.starts_with(b"/*") {
                in_comment = true;
                i += 2;
            } else if tail.starts_with(b"<!--") {
                in_comment = true;
                i += 4;
            } else if tail.starts_with(b"--") || tail.starts_with(b"#") {
                // The rest of the value is a comment.
                return changed(input, out);
            } else {
                out.extend_from_slice(tail.get(..1).unwrap_or_default());
                i += 1;
            }
        } else {
            let close = if tail.starts_with(b"*/") {
                2
            } else if tail.starts_with(b"-->") {
                3
            } else {
                i += 1;
                continue;
            };
            in_comment = false;
            i += close;
            // ModSecurity copies the next byte unexamined (its NUL terminator at the end).
            out.push(input.get(i).copied().unwrap_or(0));
            i += 1;
        }
    }
    if in_comment {
        out.push(b' ');
    }
    changed(input, out)
}

/// `t:removeCommentsChar`.
pub fn remove_comments_char(input: &[u8]) -> Option<Vec<u8>> {
    // Every marker has one of these bytes.
    memchr::memchr3(b'#', b'-', b'*', input)?;
    // Bytes a marker can start with: runs of anything else are copied whole, and nothing
    // is copied until a marker is found (a long body with dashes in dates stays borrowed).
    const STARTS: [bool; 256] = {
        let mut t = [false; 256];
        let mut i = 0;
        while i < 5 {
            t[b"/*<-#"[i] as usize] = true;
            i += 1;
        }
        t
    };
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    while let Some(at) = input.get(i..).and_then(|rest| rest.iter().position(|&c| STARTS[usize::from(c)])) {
        i += at;
        let rest = input.get(i..).unwrap_or_default();
        match [&b"/*"[..], b"*/", b"<!--", b"-->", b"--", b"#"].iter().find(|m| rest.starts_with(m)) {
            Some(m) => {
                let o = out.get_or_insert_with(|| Vec::with_capacity(input.len()));
                o.extend_from_slice(input.get(copied..i).unwrap_or_default());
                i += m.len();
                copied = i;
            }
            None => i += 1,
        }
    }
    let mut out = out?;
    out.extend_from_slice(input.get(copied..).unwrap_or_default());
    changed(input, out)
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;

    /// `removeCommentsChar` one byte at a time, as it was before it skipped runs.
    fn remove_comments_char_bytewise(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = input;
        while let Some(&c) = rest.first() {
            let skip = [&b"/*"[..], b"*/", b"<!--", b"-->", b"--", b"#"]
                .iter()
                .find(|m| rest.starts_with(m))
                .map_or(0, |m| m.len());
            if skip == 0 {
                out.push(c);
            }
            rest = &rest[skip.max(1)..];
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 3000, failure_persistence: None, ..Default::default() })]
        #[test]
        fn remove_comments_char_skipping_runs_is_the_same(
            input in proptest::collection::vec(proptest::sample::select(b"/*<!-#>ab ".to_vec()), 0..40)
        ) {
            let want = remove_comments_char_bytewise(&input);
            let got = remove_comments_char(&input);
            proptest::prop_assert_eq!(got.clone().unwrap_or_else(|| input.clone()), want.clone());
            proptest::prop_assert_eq!(got.is_some(), want != input);
        }
    }

    #[test]
    fn replace_table() {
        check(
            replace_comments,
            &[(b"", b""), (b"a*/b", b"a*/b"), (b"a/*x*/b/**/c", b"a b c"), (b"a/*x", b"a "), (b"/*/", b" ")],
        );
    }

    #[test]
    fn remove_table() {
        check(
            remove_comments,
            &[
                (b"", b""),
                (b"plain", b"plain"),
                (b"/* x */", b"\0"),
                (b"a/* x */b", b"ab"),
                (b"a<!-- x -->b", b"ab"),
                (b"a/*x*/#b", b"a#b"), // the byte after */ is not examined
                (b"a--b", b"a"),
                (b"a#b", b"a"),
                (b"a/* x", b"a "),
                (b"a*/b", b"a*/b"),
            ],
        );
    }

    #[test]
    fn remove_char_table() {
        check(
            remove_comments_char,
            &[
                (b"", b""),
                (b"plain", b"plain"),
                (b"a/*b*/c", b"abc"),
                (b"a<!--b-->c", b"abc"),
                (b"a--b#c", b"abc"),
                (b"a-b/c", b"a-b/c"),
            ],
        );
    }
}
