//! Ward's SecLang engine: ModSecurity's rule language, without nginx.
//!
//! Text flows top-down: [`parser`] turns SecLang into directives with file:line,
//! [`compile`] turns them into an immutable [`RuleSet`] (operators built, regexes
//! compiled, defaults merged once), and a [`Transaction`] carries one request's state
//! through phases 1-5. Each registry (operators, transformations, actions, variables,
//! body processors) keeps one small file per entry with its tests beside it.

pub mod actions;
pub mod audit;
pub mod body;
pub mod collections;
pub mod compile;
pub mod error;
pub mod inputs;
pub mod log;
pub mod macros;
pub mod operators;
pub mod parser;
mod prebuild;
pub mod prefilter;
pub mod rule;
pub mod ruleset;
mod spare;
pub mod transaction;
pub mod transformations;
pub mod variables;

pub use audit::{AuditEnv, AuditRecord};
pub use error::Error;
pub use ruleset::{EngineMode, RuleSet, RuleSource};
pub use transaction::{Disruptive, Intervention, Transaction};
