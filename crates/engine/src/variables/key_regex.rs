//! Selector regexes (`VAR:/regex/`, `!VAR:/regex/`): matched against every key of a
//! collection, for every rule that names them (the CRS's `!REQUEST_COOKIES:/^_pk_ref/`
//! exclusions apply to every value of dozens of rules). Most are an anchored literal
//! prefix, which decides a plain ASCII key without running the regex.

use regex_syntax::hir::{HirKind, Look};

use crate::operators::pattern::Pattern;

#[derive(Debug)]
pub struct KeyRegex {
    /// The selector, case-insensitive as in ModSecurity.
    pattern: Pattern,
    /// `^literal…`: the literal, and whether it is the whole pattern.
    prefix: Option<(Vec<u8>, bool)>,
}

impl KeyRegex {
    pub fn new(pat: &str) -> Result<KeyRegex, String> {
        let pattern = Pattern::new(&format!("(?i){pat}"))?;
        Ok(KeyRegex { pattern, prefix: anchored_prefix(pat) })
    }

    pub fn is_match(&self, key: &[u8]) -> bool {
        // Asked first: a collection's every key comes here (the pattern would refuse a
        // short key too, after more work).
        if key.len() < self.pattern.min_len() {
            return false;
        }
        if let Some((lit, _)) = &self.prefix {
            // Most keys differ at their first byte; an ASCII byte folds to no other ASCII
            // byte than its other case, so no regex could match from there.
            if let (Some(&k), Some(&l)) = (key.first(), lit.first()) {
                if k.is_ascii() && !k.eq_ignore_ascii_case(&l) {
                    return false;
                }
            }
        }
        // Non-ASCII keys go to the regex: its case folding is not only ASCII's.
        if let (Some((lit, whole)), true) = (&self.prefix, key.is_ascii()) {
            let starts = key.len() >= lit.len() && key[..lit.len()].eq_ignore_ascii_case(lit);
            if !starts || *whole {
                return starts;
            }
        }
        self.pattern.is_match(key)
    }
}

/// The literal after `^` at the start of `pat` (ASCII only), and whether nothing follows it.
fn anchored_prefix(pat: &str) -> Option<(Vec<u8>, bool)> {
    let hir = regex_syntax::ParserBuilder::new().build().parse(pat).ok()?;
    let HirKind::Concat(parts) = hir.kind() else { return None };
    let [start, lit, rest @ ..] = parts.as_slice() else { return None };
    match (start.kind(), lit.kind()) {
        (HirKind::Look(Look::Start), HirKind::Literal(l)) if l.0.is_ascii() => Some((l.0.to_vec(), rest.is_empty())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_found_only_where_sound() {
        let table: &[(&str, Option<(&[u8], bool)>)] = &[
            ("^_pk_ref", Some((b"_pk_ref", true))),
            ("^header_name_920450_", Some((b"header_name_920450_", true))),
            ("^pbjs-\\w+$", Some((b"pbjs-", false))),
            ("^_ga(?:_\\w+)?$", Some((b"_ga", false))),
            // The last letter is optional: not part of a required prefix.
            ("^ab?", Some((b"a", false))),
            ("rfi_parameter_.*", None),
            ("__utm", None),
            ("^(?:a|b)", None),
            ("^é", None),
            ("(", None),
        ];
        for (pat, want) in table {
            let got = anchored_prefix(pat);
            assert_eq!(got.as_ref().map(|(l, w)| (l.as_slice(), *w)), *want, "{pat}");
        }
    }

    #[test]
    fn the_fast_path_agrees_with_the_regex() {
        let keys: &[&[u8]] = &[
            b"_pk_ref",
            b"_PK_REF.1",
            b"x_pk_ref",
            b"_pk_re",
            b"pbjs-abc",
            b"PBJS-",
            b"pbjs-a.b",
            b"_ga",
            b"_ga_1",
            b"_gax",
            b"",
            b"a",
            b"ab",
            b"ac",
            "_pk_ref\u{212a}".as_bytes(),
            "\u{212a}ey".as_bytes(),
            "\u{17f}".as_bytes(),
            b"multipart_headers_content_types",
            b"multipart_headers_content_type",
            b"x_MULTIPART_HEADERS_CONTENT_TYPES_",
            b"paramcounter_",
            b"paramcounter",
            b"a_paramcounter_1",
            b"Key",
            b"xey",
            b"KEY_1",
            "k\u{212a}y".as_bytes(),
            "\u{17f}_ga".as_bytes(),
        ];
        for pat in [
            "^_pk_ref",
            "^pbjs-\\w+$",
            "^_ga(?:_\\w+)?$",
            "^ab?",
            "^ab?$",
            "^key",
            "__utm",
            "MULTIPART_HEADERS_CONTENT_TYPES_*",
            "paramcounter_.*",
            "k.y",
            "s",
        ] {
            let k = KeyRegex::new(pat).unwrap();
            let plain = Pattern::new(&format!("(?i){pat}")).unwrap();
            for key in keys {
                assert_eq!(k.is_match(key), plain.is_match(key), "/{pat}/ on {:?}", String::from_utf8_lossy(key));
            }
        }
    }
}
