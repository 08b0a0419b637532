//! `@rbl`
//!
//! Description: real-time blocklist lookup (DNS) of an IPv4 address in the given zone.
//! Unavailable in Ward: the engine does no DNS at request time, so the rule loads and
//! never matches (as ModSecurity when the lookup fails).
//! Arguments: the blocklist zone, e.g. `sbl-xbl.spamhaus.org`.
//! Returns: always false.
//! Example: `SecRule REMOTE_ADDR "@rbl sbl-xbl.spamhaus.org" "id:1,deny"`

use super::{Captures, Operator, OperatorContext};

#[derive(Debug)]
pub struct Rbl {
    /// Kept for diagnostics; no lookup is made.
    #[allow(dead_code)]
    zone: String,
}

impl Rbl {
    pub fn create(param: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Ok(Box::new(Rbl { zone: param.trim().to_string() }))
    }
}

impl Operator for Rbl {
    fn evaluate(&self, _: &[u8], _: Option<&mut Captures>) -> bool {
        false
    }

    fn unavailable(&self) -> Option<&'static str> {
        Some("@rbl (Ward has no DNS blocklist client)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn loads_and_never_matches() {
        let ctx = OperatorContext::new(Path::new("."));
        let op = Rbl::create("sbl-xbl.spamhaus.org", &ctx).unwrap();
        assert!(!op.evaluate(b"127.0.0.2", None));
    }
}
