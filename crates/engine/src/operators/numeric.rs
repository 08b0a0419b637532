//! `@eq`, `@ge`, `@gt`, `@le`, `@lt`
//!
//! Description: numeric comparison of the value (left) with the parameter (right), both
//! read the way ModSecurity v3 reads them: C-style leading whitespace, an optional sign and
//! decimal digits, anything after ignored (also after a NUL byte), no digits = 0. `@eq` uses
//! `std::stoi` (a number outside 32-bit `int` counts as 0); the others use `atoll`
//! (64-bit, saturating on overflow).
//! Arguments: the number to compare with (macros expanded by the caller).
//! Returns: the comparison's result.
//! Example: `SecRule TX:ANOMALY_SCORE "@ge 5" "id:1,deny"`

use std::cmp::Ordering;

use super::{Captures, Operator, OperatorContext};

#[derive(Debug, Clone, Copy)]
enum Comparison {
    Eq,
    Ge,
    Gt,
    Le,
    Lt,
}

#[derive(Debug)]
pub struct Numeric {
    comparison: Comparison,
    right: i64,
}

impl Numeric {
    fn create(comparison: Comparison, param: &str) -> Result<Box<dyn Operator>, String> {
        let right = read_number(comparison, param.as_bytes());
        Ok(Box::new(Numeric { comparison, right }))
    }

    pub fn create_eq(param: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Self::create(Comparison::Eq, param)
    }
    pub fn create_ge(param: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Self::create(Comparison::Ge, param)
    }
    pub fn create_gt(param: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Self::create(Comparison::Gt, param)
    }
    pub fn create_le(param: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Self::create(Comparison::Le, param)
    }
    pub fn create_lt(param: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Self::create(Comparison::Lt, param)
    }
}

/// `strtol`-style prefix parse: `None` without digits, magnitude saturated far past i64.
fn c_integer(bytes: &[u8]) -> Option<i128> {
    // C's isspace: space, \t, \n, \v, \f, \r.
    let start = bytes.iter().position(|b| !matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))?;
    let rest = bytes.get(start..)?;
    let (negative, digits) = match rest.first() {
        Some(b'-') => (true, rest.get(1..)?),
        Some(b'+') => (false, rest.get(1..)?),
        _ => (false, rest),
    };
    let count = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if count == 0 {
        return None;
    }
    let magnitude =
        digits[..count].iter().fold(0i128, |acc, d| (acc * 10 + i128::from(d - b'0')).min(i128::from(u64::MAX)));
    Some(if negative { -magnitude } else { magnitude })
}

/// Reads one side as ModSecurity does for this comparison.
fn read_number(comparison: Comparison, bytes: &[u8]) -> i64 {
    let value = c_integer(bytes);
    match comparison {
        // std::stoi: invalid or out of int range throws, and ModSecurity uses 0.
        Comparison::Eq => value.and_then(|v| i32::try_from(v).ok()).map_or(0, i64::from),
        // atoll (glibc strtoll): saturates.
        _ => value.map_or(0, |v| v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64),
    }
}

impl Operator for Numeric {
    fn evaluate(&self, input: &[u8], _: Option<&mut Captures>) -> bool {
        let left = read_number(self.comparison, input);
        let ord = left.cmp(&self.right);
        match self.comparison {
            Comparison::Eq => ord == Ordering::Equal,
            Comparison::Ge => ord != Ordering::Less,
            Comparison::Gt => ord == Ordering::Greater,
            Comparison::Le => ord != Ordering::Greater,
            Comparison::Lt => ord == Ordering::Less,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn table() {
        let ctx = OperatorContext::new(Path::new("."));
        type Ctor = fn(&str, &OperatorContext) -> Result<Box<dyn Operator>, String>;
        let cases: &[(Ctor, &str, &str, bool)] = &[
            (Numeric::create_eq, "0", "", true),
            (Numeric::create_eq, "xxx", "0", true),
            (Numeric::create_eq, "5", " +5abc", true),
            (Numeric::create_eq, "0", "99999999999", true), // outside int: stoi throws, 0
            (Numeric::create_eq, "-1", "-1", true),
            (Numeric::create_gt, "5", "99999999999", true), // atoll keeps 64 bits
            (Numeric::create_gt, "0", "99999999999999999999999", true), // saturates
            (Numeric::create_ge, "5", "5", true),
            (Numeric::create_le, "5", "\t4", true),
            (Numeric::create_lt, "5", "5", false),
            (Numeric::create_lt, "1", "0\x001", true),
            (Numeric::create_gt, "-", "0", false),
        ];
        for (ctor, param, input, want) in cases {
            let op = ctor(param, &ctx).unwrap();
            assert_eq!(op.evaluate(input.as_bytes(), None), *want, "{param:?} {input:?}");
        }
    }
}
