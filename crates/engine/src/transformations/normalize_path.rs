//! `t:normalizePath` / `t:normalisePath` and `t:normalizePathWin` /
//! `t:normalisePathWin`: collapse `//`, `/./` and `/../` in a path.
//!
//! A faithful port of ModSecurity's `normalize_path_inplace`: a `..` that would
//! climb above the start is dropped for absolute paths and kept for relative ones,
//! a trailing slash survives only if the input had one, and a relative path loses
//! its leading slashes.
//!
//! The Windows variant treats `\` as a separator: each backslash is turned into `/`
//! as the scan reaches it, before that segment is normalised. (One ModSecurity
//! quirk is kept on purpose: in a run of several separators the scan jumps to the
//! last one and copies it unconverted, so `a/\\b` gives `a\b`.)

/// `t:normalizePath`.
pub fn normalize_path(input: &[u8]) -> Option<Vec<u8>> {
    normalize(input, false)
}

/// `t:normalizePathWin`.
pub fn normalize_path_win(input: &[u8]) -> Option<Vec<u8>> {
    normalize(input, true)
}

/// Separators (see `triggers.rs`): a value without them is one segment, which only a
/// final `.` can change (a condition of its own there).
pub(super) fn trigger(c: u8) -> bool {
    c == b'/'
}

/// `trigger`, and the backslash that `normalizePathWin` turns into a separator.
pub(super) fn win_trigger(c: u8) -> bool {
    trigger(c) || c == b'\\'
}

fn normalize(input: &[u8], win: bool) -> Option<Vec<u8>> {
    let Some(&last) = input.last() else {
        return None;
    };
    // Without a separator the only segment is the whole value: only a final `.` can change it.
    if last != b'.' && !input.iter().any(|&c| c == b'/' || (win && c == b'\\')) {
        return None;
    }
    normalize_full(input, win)
}

fn normalize_full(input: &[u8], win: bool) -> Option<Vec<u8>> {
    let (Some(&first), Some(&last)) = (input.first(), input.last()) else {
        return None;
    };
    let mut buf = input.to_vec();
    let at = |buf: &[u8], k: usize| buf.get(k).copied().unwrap_or(0);
    let set = |buf: &mut [u8], k: usize, v: u8| {
        if let Some(b) = buf.get_mut(k) {
            *b = v;
        }
    };
    let is_sep = |c: u8| c == b'/' || (win && c == b'\\');
    let end = input.len() - 1;
    let relative = !is_sep(first);
    let trailing = is_sep(last);

    let (mut src, mut dst) = (0usize, 0usize);
    let mut hit_root = false;
    let mut done = false;
    while !done && src <= end && dst <= end {
        if win {
            if at(&buf, src) == b'\\' {
                set(&mut buf, src, b'/');
            }
            if src < end && at(&buf, src + 1) == b'\\' {
                set(&mut buf, src + 1, b'/');
            }
        }

        // Normalise at the end of each segment (and at the end of the input);
        // `break 'segment` goes on to copy the byte at `src`.
        let mut skip_copy = false;
        'segment: {
            if src == end {
                done = true;
            } else if at(&buf, src + 1) != b'/' {
                break 'segment;
            }
            let c = at(&buf, src);
            if src != end && c == b'/' {
                // Empty segment: the copy below collapses the slashes.
                break 'segment;
            } else if c == b'.' {
                if dst > 0 && at(&buf, dst - 1) == b'.' {
                    // `..`: keep it when a relative path cannot climb any more.
                    if relative && (hit_root || dst <= 2) {
                        hit_root = true;
                        break 'segment;
                    }
                    // Drop `..` and the previous segment, never going above the root.
                    dst = dst.saturating_sub(3);
                    while dst > 0 && at(&buf, dst) != b'/' {
                        dst -= 1;
                    }
                    if dst == 0 {
                        hit_root = true;
                        if !relative && src == end {
                            dst = 1; // keep the root slash
                        }
                    }
                    if done {
                        skip_copy = true;
                        break 'segment;
                    }
                    src += 1;
                } else if dst == 0 {
                    // Leading `./` of a relative path.
                    if done {
                        skip_copy = true;
                        break 'segment;
                    }
                    src += 1;
                } else if at(&buf, dst - 1) == b'/' {
                    // `/./`
                    if done {
                        skip_copy = true;
                        break 'segment;
                    }
                    dst -= 1;
                    src += 1;
                }
            } else if dst > 0 {
                hit_root = false;
            }
        }
        if skip_copy {
            continue;
        }

        if at(&buf, src) == b'/' {
            // Jump to the last of several slashes.
            while src < end && is_sep(at(&buf, src + 1)) {
                src += 1;
            }
            // A relative path does not start with a slash.
            if relative && dst == 0 {
                src += 1;
                continue;
            }
        }
        let c = at(&buf, src);
        set(&mut buf, dst, c);
        dst += 1;
        src += 1;
    }

    if !trailing && dst > 0 && at(&buf, dst - 1) == b'/' {
        dst -= 1;
    }
    buf.truncate(dst);
    super::changed(input, buf)
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;

    #[test]
    fn fast_path_agrees_with_the_full_walk() {
        // Every string of up to 4 bytes over an alphabet with dots, letters, NUL and a
        // backslash (a separator only for the Windows flavour).
        let alphabet = [b'.', b'a', b'\\', 0, b' '];
        let mut inputs = vec![Vec::new()];
        for len in 1..=4 {
            let mut idx = vec![0usize; len];
            loop {
                inputs.push(idx.iter().map(|&i| alphabet[i]).collect::<Vec<u8>>());
                let Some(k) = idx.iter().rposition(|&i| i + 1 < alphabet.len()) else { break };
                idx[k] += 1;
                idx[k + 1..].iter_mut().for_each(|i| *i = 0);
            }
        }
        for v in &inputs {
            for win in [false, true] {
                assert_eq!(normalize(v, win), normalize_full(v, win), "{v:?} win={win}");
            }
        }
    }

    #[test]
    fn unix_table() {
        check(
            normalize_path,
            &[
                (b"", b""),
                (b"/foo/bar", b"/foo/bar"),
                (b"/foo//bar", b"/foo/bar"),
                (b"/foo/./bar", b"/foo/bar"),
                (b"/foo/../bar", b"/bar"),
                (b"/../../bar", b"/bar"),
                (b"../../bar", b"../../bar"),
                (b"foo/../../bar", b"../bar"),
                (b"./foo", b"foo"),
                (b"/foo/", b"/foo/"),
                (b"/foo/..", b""), // ModSecurity: the root slash goes with the trailing-slash rule
                (b"/foo/.", b"/foo"),
                (b"a\\..\\b", b"a\\..\\b"),
            ],
        );
    }

    #[test]
    fn windows_table() {
        check(
            normalize_path_win,
            &[
                (b"\\foo\\bar", b"/foo/bar"),
                (b"c:\\foo\\..\\bar", b"c:/bar"),
                (b"\\foo\\.\\bar\\", b"/foo/bar/"),
                (b"a\\\\b", b"a/b"),
                (b"a/\\\\b", b"a\\b"), // ModSecurity copies the last separator unconverted
            ],
        );
    }
}
