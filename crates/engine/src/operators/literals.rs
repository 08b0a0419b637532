//! Required literals of a regular expression, for the rule-set prefilter.
//!
//! `required(pattern)` returns byte strings of which at least one occurs in every
//! value the pattern matches (compared ASCII case-insensitively), or `None` when no such
//! set is useful. The prefilter only ever skips a rule when none of its literals occur,
//! so the set must be a true necessary condition; it does not need to be minimal.

use regex_syntax::hir::{Class, Hir, HirKind};
use regex_syntax::ParserBuilder;

/// Literals shorter than this make the gate pass almost every value: not worth it.
const MIN_LEN: usize = 3;
/// Beyond this many alternatives the set is unlikely to be selective.
const MAX_SET: usize = 4096;

/// Parses `pattern` with the flags Ward's `regex` engine uses and extracts its literals.
pub fn required(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let hir = ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .multi_line(true)
        .dot_matches_new_line(true)
        .build()
        .parse(pattern)
        .ok()?;
    let set = req(&hir)?;
    (set.iter().all(|l| l.len() >= MIN_LEN) && set.len() <= MAX_SET).then_some(set)
}

/// The exact (case-folded) text a node always matches, if it is a fixed string.
fn exact(h: &Hir) -> Option<Vec<u8>> {
    match h.kind() {
        HirKind::Literal(l) => Some(l.0.to_ascii_lowercase()),
        HirKind::Class(c) => single_byte(c).map(|b| vec![b]),
        HirKind::Capture(c) => exact(&c.sub),
        HirKind::Concat(hs) => {
            let mut out = Vec::new();
            for h in hs {
                out.extend(exact(h)?);
            }
            Some(out)
        }
        HirKind::Repetition(r) if r.max == Some(r.min) && r.min <= 16 => {
            let one = exact(&r.sub)?;
            Some(one.repeat(r.min as usize))
        }
        _ => None,
    }
}

/// A class matching one byte, or one ASCII letter in either case.
fn single_byte(c: &Class) -> Option<u8> {
    let mut bytes = Vec::new();
    match c {
        Class::Bytes(b) => {
            for r in b.ranges() {
                if usize::from(r.end() - r.start()) + bytes.len() >= 2 {
                    return None;
                }
                bytes.extend(r.start()..=r.end());
            }
        }
        Class::Unicode(u) => {
            for r in u.ranges() {
                let (s, e) = (r.start() as u32, r.end() as u32);
                if e > 0x7f || (e - s) as usize + bytes.len() >= 2 {
                    return None;
                }
                bytes.extend((s..=e).map(|c| c as u8));
            }
        }
    }
    match bytes.as_slice() {
        [b] => Some(b.to_ascii_lowercase()),
        [a, b] if a.is_ascii_alphabetic() && a.eq_ignore_ascii_case(b) && a != b => Some(a.to_ascii_lowercase()),
        _ => None,
    }
}

/// Quality of a candidate set: its shortest literal (longer is more selective).
fn score(set: &[Vec<u8>]) -> usize {
    set.iter().map(Vec::len).min().unwrap_or(0)
}

fn req(h: &Hir) -> Option<Vec<Vec<u8>>> {
    if let Some(e) = exact(h) {
        return (!e.is_empty()).then(|| vec![e]);
    }
    match h.kind() {
        HirKind::Capture(c) => req(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => req(&r.sub),
        HirKind::Alternation(hs) => {
            let mut out: Vec<Vec<u8>> = Vec::new();
            for h in hs {
                for l in req(h)? {
                    if !out.contains(&l) {
                        out.push(l);
                    }
                }
                if out.len() > MAX_SET {
                    return None;
                }
            }
            Some(out)
        }
        HirKind::Concat(hs) => {
            // Every child must match: any child's set (or a run of fixed children
            // joined into one longer literal) is a valid necessary condition.
            let mut best: Option<Vec<Vec<u8>>> = None;
            let mut consider = |cand: Vec<Vec<u8>>| {
                if best
                    .as_ref()
                    .is_none_or(|b| score(&cand) > score(b) || (score(&cand) == score(b) && cand.len() < b.len()))
                {
                    best = Some(cand);
                }
            };
            let mut run: Vec<u8> = Vec::new();
            for h in hs {
                match exact(h) {
                    Some(e) => run.extend(e),
                    None => {
                        if !run.is_empty() {
                            consider(vec![std::mem::take(&mut run)]);
                        }
                        if let Some(s) = req(h) {
                            consider(s);
                        }
                    }
                }
            }
            if !run.is_empty() {
                consider(vec![run]);
            }
            best
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lits(p: &str) -> Option<Vec<String>> {
        required(p).map(|v| v.into_iter().map(|l| String::from_utf8(l).unwrap()).collect())
    }

    #[test]
    fn table() {
        assert_eq!(lits("union select"), Some(vec!["union select".into()]));
        assert_eq!(lits(r"(?i)union\s+select"), Some(vec!["select".into()]));
        assert_eq!(lits("(?i:foo|barbaz)"), Some(vec!["foo".into(), "barbaz".into()]));
        assert_eq!(lits("a(bcd)?e"), None, "short literals are not selective");
        assert_eq!(lits(r"^.*$"), None);
        assert_eq!(lits("(?:abc)+xyz"), Some(vec!["abc".into()]));
        assert_eq!(lits("(?:abc)*"), None);
        assert_eq!(lits("x(?:foo|[a-z]bar)"), Some(vec!["foo".into(), "bar".into()]));
        assert_eq!(lits("[("), None, "invalid patterns give no set");
    }

    /// The set is a necessary condition: whenever the regex matches, a literal occurs.
    #[test]
    fn necessary_condition_on_samples() {
        let pats = [
            r"(?i)union\s+(?:all\s+)?select",
            r"<script[^>]*>",
            r"(?:etc/passwd|boot\.ini)",
            r"\bjava\.lang\.(?:runtime|processbuilder)",
        ];
        let inputs: [&[u8]; 6] = [
            b"1 UNION ALL SELECT 2",
            b"<SCRIPT src=x>",
            b"../../etc/passwd",
            b"java.lang.Runtime",
            b"benign",
            b"BOOT.INI",
        ];
        for p in pats {
            let set = required(p).unwrap();
            let re = regex::bytes::RegexBuilder::new(p).unicode(false).build().unwrap();
            for i in inputs {
                if re.is_match(i) {
                    let low = i.to_ascii_lowercase();
                    assert!(
                        set.iter().any(|l| low.windows(l.len()).any(|w| w.eq_ignore_ascii_case(l))),
                        "{p} on {:?}",
                        String::from_utf8_lossy(i)
                    );
                }
            }
        }
    }
}
