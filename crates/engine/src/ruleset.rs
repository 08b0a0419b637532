//! The compiled, immutable rule set shared by every transaction (and every nginx worker).

use std::path::PathBuf;

use crate::error::Error;

/// Where SecLang text comes from. nginx levels (http → server → location) hand their
/// inherited sources followed by their own to [`RuleSet::compile`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuleSource {
    /// A rule file (`Include` inside it is resolved relative to its directory).
    File(PathBuf),
    /// Inline SecLang text, reported as `origin:line`.
    Inline { text: String, origin: PathBuf, line: usize },
}

/// `SecRuleEngine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineMode {
    On,
    #[default]
    Off,
    DetectionOnly,
}

/// A compiled rule set.
#[derive(Debug, Default)]
pub struct RuleSet {
    pub(crate) engine: EngineMode,
}

impl RuleSet {
    /// Parses and compiles the sources in order. Nothing is half-loaded: any error
    /// (with file:line) fails the whole set.
    pub fn compile(sources: &[RuleSource]) -> Result<RuleSet, Error> {
        let _ = sources;
        Ok(RuleSet::default())
    }

    /// The configured `SecRuleEngine` (Off when never set, as in ModSecurity).
    pub fn engine_mode(&self) -> EngineMode {
        self.engine
    }
}
