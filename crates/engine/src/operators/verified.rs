//! The shared shape of `@verifyCPF`, `@verifySSN` and `@verifySVNR`: the parameter is a
//! regex that finds candidates, a checksum function confirms them, and the first
//! confirmed candidate is the match (captured into TX:0). An empty pattern never matches.

use super::pattern::Pattern;
use super::{capture_one, Captures, Operator};

#[derive(Debug)]
pub struct Verified {
    pattern: Option<Pattern>,
    check: fn(&[u8]) -> bool,
}

impl Verified {
    pub fn create(param: &str, check: fn(&[u8]) -> bool) -> Result<Box<dyn Operator>, String> {
        let pattern = if param.is_empty() { None } else { Some(Pattern::new(param)?) };
        Ok(Box::new(Verified { pattern, check }))
    }
}

impl Operator for Verified {
    fn evaluate(&self, input: &[u8], caps: Option<&mut Captures>) -> bool {
        let Some(pattern) = &self.pattern else {
            return false;
        };
        match pattern.first_verified(input, self.check) {
            Some(found) => {
                capture_one(caps, found);
                true
            }
            None => false,
        }
    }
}
