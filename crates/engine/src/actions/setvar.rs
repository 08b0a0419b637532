//! `setvar`: writes to TX, IP, GLOBAL, SESSION, USER or RESOURCE.
//!
//! Forms: `col.key=value`, `col.key=+n`, `col.key=-n`, `!col.key` (delete) and
//! `col.key` (set to 1). Key and value may hold macros.

use crate::macros::Macro;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetVarOp {
    Set(Macro),
    Add(Macro),
    Sub(Macro),
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetVar {
    /// Upper-case collection name.
    pub collection: String,
    pub key: Macro,
    pub op: SetVarOp,
}

const COLLECTIONS: [&str; 6] = ["TX", "IP", "GLOBAL", "SESSION", "USER", "RESOURCE"];

impl SetVar {
    pub fn parse(s: &str) -> Result<SetVar, String> {
        let s = s.trim();
        let (delete, s) = match s.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (lhs, rhs) = match s.split_once('=') {
            Some((l, r)) => (l, Some(r)),
            None => (s, None),
        };
        let (col, key) = lhs.split_once('.').ok_or_else(|| format!("setvar '{s}' needs COLLECTION.KEY"))?;
        let collection = col.trim().to_ascii_uppercase();
        if !COLLECTIONS.contains(&collection.as_str()) {
            return Err(format!("setvar cannot write collection '{col}'"));
        }
        let op = match (delete, rhs) {
            (true, _) => SetVarOp::Delete,
            (false, None) => SetVarOp::Set(Macro::parse("1")),
            (false, Some(r)) => {
                if let Some(n) = r.strip_prefix('+') {
                    SetVarOp::Add(Macro::parse(n))
                } else if let Some(n) = r.strip_prefix('-') {
                    SetVarOp::Sub(Macro::parse(n))
                } else {
                    SetVarOp::Set(Macro::parse(r))
                }
            }
        };
        Ok(SetVar { collection, key: Macro::parse(&key.to_ascii_lowercase()), op })
    }
}

/// ModSecurity's numeric reading of a value: leading integer, otherwise 0.
pub fn to_int(v: &[u8]) -> i64 {
    // Most values are a few plain digits (scores, limits): read them without the general
    // path. 18 digits cannot overflow.
    if !v.is_empty() && v.len() <= 18 && v.iter().all(u8::is_ascii_digit) {
        return v.iter().fold(0, |n, &d| n * 10 + i64::from(d - b'0'));
    }
    let s = std::str::from_utf8(v).unwrap_or("").trim();
    let end = s.char_indices().take_while(|(i, c)| c.is_ascii_digit() || (*i == 0 && (*c == '-' || *c == '+'))).count();
    s[..end].parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let v = SetVar::parse("tx.anomaly_score_pl1=+%{tx.critical_anomaly_score}").unwrap();
        assert_eq!(v.collection, "TX");
        assert!(matches!(v.op, SetVarOp::Add(_)));
        assert!(matches!(SetVar::parse("!tx.foo").unwrap().op, SetVarOp::Delete));
        assert!(matches!(SetVar::parse("tx.foo").unwrap().op, SetVarOp::Set(_)));
        assert!(matches!(SetVar::parse("ip.x=-1").unwrap().op, SetVarOp::Sub(_)));
        assert!(SetVar::parse("args.x=1").is_err());
        assert!(SetVar::parse("nodot").is_err());
    }

    #[test]
    fn ints() {
        assert_eq!(to_int(b"5"), 5);
        assert_eq!(to_int(b"-3x"), -3);
        assert_eq!(to_int(b"abc"), 0);
        assert_eq!(to_int(b""), 0);
        assert_eq!(to_int(b"007"), 7);
        assert_eq!(to_int(b"999999999999999999"), 999_999_999_999_999_999);
        // Past i64: 0, as the general path's parse gives.
        assert_eq!(to_int(b"99999999999999999999"), 0);
    }

    /// The general path, as it was before plain digits got their own.
    fn to_int_general(v: &[u8]) -> i64 {
        let s = std::str::from_utf8(v).unwrap_or("").trim();
        let end =
            s.char_indices().take_while(|(i, c)| c.is_ascii_digit() || (*i == 0 && (*c == '-' || *c == '+'))).count();
        s[..end].parse().unwrap_or(0)
    }

    proptest::proptest! {
        #[test]
        fn plain_digits_read_as_the_general_path_does(v in proptest::collection::vec(proptest::sample::select(b"0123456789 +-x".to_vec()), 0..24)) {
            proptest::prop_assert_eq!(to_int(&v), to_int_general(&v));
        }

        #[test]
        fn digit_strings_read_as_the_general_path_does(v in "[0-9]{0,22}") {
            proptest::prop_assert_eq!(to_int(v.as_bytes()), to_int_general(v.as_bytes()));
        }
    }
}
