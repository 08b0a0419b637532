//! Operator registry (`@name param`).
//!
//! An operator is built once at rule-compile time (all parsing and compiling of its
//! parameter happens in its constructor) and then only evaluates.

use std::fmt::Debug;
use std::path::Path;

/// Capture groups of a match: index 0 is the whole match, 1..=9 the groups (TX:0-9).
pub type Captures = Vec<Vec<u8>>;

/// What a constructor may need from the loading context.
pub struct OperatorContext<'a> {
    /// Directory of the rule file, for `@pmFromFile`/`@ipMatchFromFile` relative paths.
    pub base_dir: &'a Path,
}

pub trait Operator: Send + Sync + Debug {
    /// Evaluates the operator against one (already transformed) value. When `caps`
    /// is given and the operator captures, it is cleared and filled.
    fn evaluate(&self, input: &[u8], caps: Option<&mut Captures>) -> bool;

    /// For regex operators, which engine runs it (`regex` or `pcre2`), for load stats.
    fn backend(&self) -> Option<&'static str> {
        None
    }
}

/// Builds an operator from its name (case-insensitive, without `@`) and parameter
/// (macros already expanded).
pub fn create(name: &str, param: &str, ctx: &OperatorContext) -> Result<Box<dyn Operator>, String> {
    let _ = (param, ctx);
    Err(format!("unknown operator @{name}"))
}
