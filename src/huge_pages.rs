//! `ward_huge_pages on` (the default): a starting worker backs its anonymous memory,
//! the compiled rule sets above all, with 2 MB pages.
//!
//! A request walks hundreds of rules, their gates and automata spread over the ~12 MB
//! heap the master compiled them into; between two requests the kernel and nginx evict
//! them, and with 4 KB pages each rule touched may also cost a TLB miss. bench.sh, the
//! module with and without this, six runs each: worker CPU per request -8% (6 args, 2 KB
//! form) to -15% (1 MB form), `GET /` unchanged, medians (docs/bench.md, session 24).
//! The price: the worker's copy of the heap is its own instead of shared with the master
//! (about the master's heap per worker), and its RSS grows by ~2 MB (a collapse fills
//! each 2 MB page's gaps); `off` keeps the sharing.
//!
//! `MADV_HUGEPAGE` marks the 2 MB-aligned parts of each private anonymous mapping;
//! `MADV_COLLAPSE` (Linux 6.1) turns what is already there into huge pages now. Where
//! the kernel has no transparent huge pages or no `MADV_COLLAPSE`, nothing changes.

/// A huge page, and the alignment of what can be one.
const HUGE: usize = 2 << 20;

/// The 2 MB-aligned part `[start, end)` of a `/proc/self/maps` line's mapping when it is
/// private, writable, anonymous (or the heap) and holds at least one huge page.
pub(crate) fn huge_part(line: &str) -> Option<(usize, usize)> {
    let mut fields = line.split_ascii_whitespace();
    let (range, perms) = (fields.next()?, fields.next()?);
    let (_offset, _dev, inode) = (fields.next()?, fields.next()?, fields.next()?);
    let name = fields.next();
    if perms != "rw-p" || inode != "0" || !matches!(name, None | Some("[heap]")) {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    let (start, end) = (usize::from_str_radix(start, 16).ok()?, usize::from_str_radix(end, 16).ok()?);
    let (start, end) = (start.checked_add(HUGE - 1)? & !(HUGE - 1), end & !(HUGE - 1));
    (end > start).then_some((start, end))
}

/// What [`back_with_huge_pages`] did, in bytes: asked for, and made huge now.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) marked: usize,
    pub(crate) collapsed: usize,
    /// The first error `MADV_COLLAPSE` reported, if any.
    pub(crate) error: Option<std::io::Error>,
}

/// Marks and collapses this process's anonymous memory (see the module comment).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn back_with_huge_pages() -> std::io::Result<Outcome> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut out = Outcome::default();
    for (start, end) in maps.lines().filter_map(huge_part) {
        let (addr, len) = (start as *mut libc::c_void, end - start);
        // SAFETY: the range lies inside one of this process's own mappings (just read);
        // both advices change how its pages are backed, never their contents.
        let marked = unsafe { libc::madvise(addr, len, libc::MADV_HUGEPAGE) } == 0;
        if !marked {
            continue;
        }
        out.marked += len;
        // SAFETY: as above.
        if unsafe { libc::madvise(addr, len, libc::MADV_COLLAPSE) } == 0 {
            out.collapsed += len;
        } else if out.error.is_none() {
            out.error = Some(std::io::Error::last_os_error());
        }
    }
    Ok(out)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn back_with_huge_pages() -> std::io::Result<Outcome> {
    Ok(Outcome::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_parts_of_maps_lines() {
        let cases: &[(&str, Option<(usize, usize)>)] = &[
            // The heap: its aligned middle.
            (
                "55f7a2300000-55f7a3055000 rw-p 00000000 00:00 0                          [heap]",
                Some((0x55f7a2400000, 0x55f7a3000000)),
            ),
            // An anonymous mapping, already aligned.
            ("7f5548000000-7f5548400000 rw-p 00000000 00:00 0 ", Some((0x7f5548000000, 0x7f5548400000))),
            ("7f5548000000-7f5548400000 rw-p 00000000 00:00 0", Some((0x7f5548000000, 0x7f5548400000))),
            // Smaller than a huge page once aligned.
            ("7f5548001000-7f5548201000 rw-p 00000000 00:00 0", None),
            ("7f5548000000-7f5548100000 rw-p 00000000 00:00 0", None),
            // Files, shared memory, code, the stack, read-only: never.
            ("7f1e51145000-7f1e5143c000 rw-p 00144000 fe:00 10011136   /tmp/ward.so", None),
            ("7f1e40000000-7f1e40800000 rw-s 00000000 00:01 2048   /dev/zero (deleted)", None),
            ("7f1e40000000-7f1e40800000 r-xp 00000000 00:00 0", None),
            ("7ffd40000000-7ffd40800000 rw-p 00000000 00:00 0                          [stack]", None),
            ("7f1e40000000-7f1e40800000 r--p 00000000 00:00 0", None),
            // Not a maps line.
            ("", None),
            ("zz-7f1e40800000 rw-p 00000000 00:00 0", None),
            ("7f1e40000000 rw-p 00000000 00:00 0", None),
            ("ffffffffffffffff-ffffffffffffffff rw-p 00000000 00:00 0", None),
        ];
        for (line, want) in cases {
            assert_eq!(huge_part(line), *want, "{line:?}");
        }
    }
}
