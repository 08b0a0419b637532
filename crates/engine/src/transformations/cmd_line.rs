//! `t:cmdLine`: normalise a command line the way ModSecurity does, to defeat shell
//! and `cmd.exe` evasions.
//!
//! Deletes `\ " ' ^`; turns each run of space, tab, CR, LF, `,` and `;` into one
//! space; removes a space just before `/` or `(`; lowercases ASCII letters.

use super::changed;

/// Only these bytes (and upper case) can change anything (see `triggers.rs`).
pub(super) fn trigger(c: u8) -> bool {
    matches!(c, b'"' | b'\'' | b'\\' | b'^' | b' ' | b',' | b';' | b'\t' | b'\r' | b'\n') || c.is_ascii_uppercase()
}

/// `t:cmdLine`.
pub fn cmd_line(input: &[u8]) -> Option<Vec<u8>> {
    if !input.iter().any(|&c| trigger(c)) {
        return None;
    }
    let mut out = Vec::with_capacity(input.len());
    // True while the last byte written is a space this transformation made.
    let mut space = false;
    for &c in input {
        match c {
            b'"' | b'\'' | b'\\' | b'^' => {}
            b' ' | b',' | b';' | b'\t' | b'\r' | b'\n' => {
                if !space {
                    out.push(b' ');
                    space = true;
                }
            }
            b'/' | b'(' => {
                if space {
                    out.pop();
                }
                space = false;
                out.push(c);
            }
            _ => {
                out.push(c.to_ascii_lowercase());
                space = false;
            }
        }
    }
    changed(input, out)
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;

    #[test]
    fn table() {
        check(
            cmd_line,
            &[
                (b"", b""),
                (b"test", b"test"),
                (b"C^OMMAND /C DIR", b"command/c dir"),
                (b"cmd,;, /c", b"cmd/c"),
                (b"\"command\" /c DiR", b"command/c dir"),
                (b"a \" (b", b"a(b"),
                (b"a\t\r\nb", b"a b"),
                (b"\xc3\x89", b"\xc3\x89"),
            ],
        );
    }
}
