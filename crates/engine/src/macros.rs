//! `%{COLLECTION.key}` macros in action values and operator parameters.
//!
//! A template is split once at load into literal and variable parts; expansion per
//! request only looks values up. A template without macros expands without copying.

use std::borrow::Cow;

use crate::variables::Var;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Macro {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(Vec<u8>),
    /// Upper-cased collection or variable name and lower-cased key (may be empty), and
    /// the variable of that name, looked up once here (None for a name Ward does not know).
    Var {
        name: String,
        key: Vec<u8>,
        var: Option<Var>,
    },
}

/// Resolves one macro reference to its value (first value if several).
pub trait MacroResolver {
    fn resolve(&self, name: &str, key: &[u8]) -> Option<Cow<'_, [u8]>>;

    /// [`MacroResolver::resolve`] with the variable of `name` already known (macros look it
    /// up when parsed, not per request).
    fn resolve_known(&self, var: Option<Var>, name: &str, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let _ = var;
        self.resolve(name, key)
    }
}

impl Macro {
    pub fn parse(s: &str) -> Macro {
        let mut parts = Vec::new();
        let mut lit = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && b.get(i + 1) == Some(&b'{') {
                if let Some(end) = s[i + 2..].find('}') {
                    let inner = &s[i + 2..i + 2 + end];
                    if !lit.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut lit)));
                    }
                    let (name, key) = match inner.find(['.', ':']) {
                        Some(p) => (&inner[..p], &inner[p + 1..]),
                        None => (inner, ""),
                    };
                    let name = name.trim().to_ascii_uppercase();
                    let var = Var::from_name(&name);
                    parts.push(Part::Var { name, key: key.trim().to_ascii_lowercase().into_bytes(), var });
                    i += end + 3;
                    continue;
                }
            }
            lit.push(b[i]);
            i += 1;
        }
        if !lit.is_empty() {
            parts.push(Part::Literal(lit));
        }
        Macro { parts }
    }

    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// The upper-cased collection or variable names it reads.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.refs().map(|(name, _)| name)
    }

    /// What it reads: (upper-cased collection or variable name, lower-cased key).
    pub fn refs(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var { name, key, .. } => Some((name.as_str(), key.as_slice())),
            Part::Literal(_) => None,
        })
    }

    /// The text before its first macro (all of it for a literal).
    pub fn literal_prefix(&self) -> &[u8] {
        match self.parts.first() {
            Some(Part::Literal(l)) => l,
            _ => &[],
        }
    }

    /// The text of a template without macros.
    pub fn literal(&self) -> Option<&[u8]> {
        match self.parts.as_slice() {
            [] => Some(&[]),
            [Part::Literal(l)] => Some(l),
            _ => None,
        }
    }

    /// Calls `f` with the expansion, copying nothing when the template is a single macro.
    pub fn with_expanded<R>(&self, r: &dyn MacroResolver, f: impl FnOnce(&[u8]) -> R) -> R {
        match self.parts.as_slice() {
            [Part::Var { name, key, var }] => match r.resolve_known(*var, name, key) {
                Some(v) => f(&v),
                None => f(&[]),
            },
            _ => f(&self.expand(r)),
        }
    }

    /// Whether any part names this collection (e.g. `MATCHED_VAR`).
    pub fn references(&self, name: &str) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Var { name: n, .. } if n == name))
    }

    /// Appends the expansion to `out` (a caller's buffer, reused across expansions).
    pub fn expand_into(&self, r: &dyn MacroResolver, out: &mut Vec<u8>) {
        for p in &self.parts {
            match p {
                Part::Literal(l) => out.extend_from_slice(l),
                Part::Var { name, key, var } => {
                    if let Some(v) = r.resolve_known(*var, name, key) {
                        out.extend_from_slice(&v);
                    }
                }
            }
        }
    }

    pub fn expand<'a>(&'a self, r: &dyn MacroResolver) -> Cow<'a, [u8]> {
        match self.parts.as_slice() {
            [] => Cow::Borrowed(&[]),
            [Part::Literal(l)] => Cow::Borrowed(l),
            parts => {
                let mut out = Vec::new();
                for p in parts {
                    match p {
                        Part::Literal(l) => out.extend_from_slice(l),
                        Part::Var { name, key, var } => {
                            if let Some(v) = r.resolve_known(*var, name, key) {
                                out.extend_from_slice(&v);
                            }
                        }
                    }
                }
                Cow::Owned(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct R;
    impl MacroResolver for R {
        fn resolve(&self, name: &str, key: &[u8]) -> Option<Cow<'_, [u8]>> {
            match (name, key) {
                ("TX", b"critical_anomaly_score") => Some(Cow::Borrowed(b"5")),
                ("REQUEST_HEADERS", b"host") => Some(Cow::Borrowed(b"example.com")),
                ("MATCHED_VAR", b"") => Some(Cow::Borrowed(b"v")),
                _ => None,
            }
        }
    }

    #[test]
    fn expansion_table() {
        let cases: &[(&str, &[u8])] = &[
            ("plain", b"plain"),
            ("+%{tx.critical_anomaly_score}", b"+5"),
            ("%{TX.Critical_Anomaly_Score}", b"5"),
            ("%{request_headers.host}/x", b"example.com/x"),
            ("a %{MATCHED_VAR} b", b"a v b"),
            ("%{tx.missing}", b""),
            ("100%", b"100%"),
            ("%{unterminated", b"%{unterminated"),
        ];
        for (t, want) in cases {
            let m = Macro::parse(t);
            assert_eq!(m.expand(&R).as_ref(), *want, "{t}");
            assert_eq!(m.with_expanded(&R, <[u8]>::to_vec), *want, "{t}");
            assert_eq!(m.literal().is_some(), m.is_literal(), "{t}");
        }
        assert!(Macro::parse("x").is_literal());
        assert!(Macro::parse("%{MATCHED_VAR}").references("MATCHED_VAR"));
    }
}
