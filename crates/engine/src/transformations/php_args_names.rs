//! `t:phpArgsNames`: rewrite an argument name the way PHP stores it in `$_GET`
//! and friends, so rules see the name the application sees.
//!
//! PHP's rules (`php_register_variable_ex`): the name ends at a NUL byte; leading
//! spaces are dropped; in the base name (up to the first `[`) spaces and dots
//! become `_`; an empty base name makes PHP drop the variable (result: empty).
//! Each `[...]` that is closed is an index (`[ ]` counts as `[]`), and anything
//! after the last index that is not another `[` is ignored. If the first `[` is
//! never closed it becomes `_` and the rest is kept as is; an unclosed later `[`
//! is dropped with the rest. More than 64 levels of indices drop the variable.

/// PHP's default `max_input_nesting_level`.
const MAX_NESTING: usize = 64;

/// `t:phpArgsNames`.
pub fn php_args_names(input: &[u8]) -> Option<Vec<u8>> {
    super::changed(input, mangle(input))
}

fn mangle(input: &[u8]) -> Vec<u8> {
    let name = input.split(|&c| c == 0).next().unwrap_or_default();
    let name = name.get(name.iter().take_while(|&&c| c == b' ').count()..).unwrap_or_default();

    let base_len = name.iter().position(|&c| c == b'[').unwrap_or(name.len());
    if base_len == 0 {
        return Vec::new();
    }
    let mut out: Vec<u8> = name.iter().take(base_len).map(|&c| if c == b' ' || c == b'.' { b'_' } else { c }).collect();

    // `rest` starts at a `[` on every turn of the loop.
    let mut rest = name.get(base_len..).unwrap_or_default();
    let mut level = 0;
    while rest.first() == Some(&b'[') {
        level += 1;
        if level > MAX_NESTING {
            return Vec::new();
        }
        let inner = rest.get(1..).unwrap_or_default();
        let probe = inner.strip_prefix(b" ").unwrap_or(inner);
        let (index, after) = if probe.first() == Some(&b']') {
            (&b""[..], probe.get(1..).unwrap_or_default())
        } else if let Some(close) = memchr::memchr(b']', probe) {
            let close = close + (inner.len() - probe.len());
            (inner.get(..close).unwrap_or_default(), inner.get(close + 1..).unwrap_or_default())
        } else {
            if level == 1 {
                // Not an index after all: the `[` becomes part of the name.
                out.push(b'_');
                out.extend_from_slice(inner);
            }
            break;
        };
        out.push(b'[');
        out.extend_from_slice(index);
        out.push(b']');
        rest = after;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;

    #[test]
    fn table() {
        check(
            php_args_names,
            &[
                (b"", b""),
                (b"abc", b"abc"),
                (b"a b.c", b"a_b_c"),
                (b"  a", b"a"),
                (b"a[b][c]", b"a[b][c]"),
                (b"a[ ]", b"a[]"),
                (b"a[ x]", b"a[ x]"),
                (b"a[b]x[c]", b"a[b]"),
                (b"a[b", b"a_b"),
                (b"a[b][c", b"a[b]"),
                (b"[a]", b""),
                (b"a.b\0c", b"a_b"),
            ],
        );
    }
}
