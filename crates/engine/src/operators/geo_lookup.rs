//! `@geoLookup`
//!
//! Description: looks the address up in a GeoIP database and fills the GEO collection.
//! Unavailable in Ward (no GeoIP database support): the rule loads and never matches,
//! as ModSecurity without a database.
//! Arguments: none (a parameter is ignored).
//! Returns: always false.
//! Example: `SecRule REMOTE_ADDR "@geoLookup" "id:1,pass,chain"`

use super::{Captures, Operator, OperatorContext};

#[derive(Debug)]
pub struct GeoLookup;

impl GeoLookup {
    pub fn create(_: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        Ok(Box::new(GeoLookup))
    }
}

impl Operator for GeoLookup {
    fn evaluate(&self, _: &[u8], _: Option<&mut Captures>) -> bool {
        false
    }

    fn unavailable(&self) -> Option<&'static str> {
        Some("@geoLookup (Ward has no GeoIP database)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_matches() {
        for input in ["", "127.0.0.1", "www.modsecurity.org"] {
            assert!(!GeoLookup.evaluate(input.as_bytes(), None));
        }
    }
}
