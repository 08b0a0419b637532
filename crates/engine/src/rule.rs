//! A compiled rule: targets, operator, effective actions and its chain.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::actions::{Actions, TransformStep};
use crate::macros::Macro;
use crate::operators::{self, Operator, OperatorContext};
use crate::variables::Target;

/// The operator of a rule, ready to evaluate.
#[derive(Debug)]
pub struct RuleOperator {
    /// As written, without `@` (`rx`, `pmFromFile`, …).
    pub name: String,
    /// Shared so that a match record does not copy (CRS patterns run to kilobytes).
    pub param: std::sync::Arc<str>,
    /// ModSecurity's spelling in log lines (`Rx`, `Pm`, `DetectSQLi`).
    pub display: std::sync::Arc<str>,
    pub negated: bool,
    pub imp: OperatorImpl,
}

#[derive(Debug)]
pub enum OperatorImpl {
    /// Built once at load.
    Static(Box<dyn Operator>),
    /// The parameter holds macros (`%{tx.x}`): expanded and built per evaluation.
    Dynamic { template: Macro, base_dir: PathBuf },
}

impl RuleOperator {
    /// Parses `@name param`; `ctx` locates (and, during a load, records) data files.
    pub fn new(spec: &str, ctx: &OperatorContext) -> Result<RuleOperator, String> {
        let base_dir = ctx.base_dir;
        let s = spec.trim_start();
        let (negated, s) = match s.strip_prefix('!') {
            Some(r) => (true, r.trim_start()),
            None => (false, s),
        };
        let (name, param) = match s.strip_prefix('@') {
            Some(r) => {
                let end = r.find(|c: char| c.is_ascii_whitespace()).unwrap_or(r.len());
                let param = r[end..].strip_prefix(|c: char| c.is_ascii_whitespace()).unwrap_or(&r[end..]);
                (r[..end].to_string(), param.to_string())
            }
            // No operator named: the whole argument is a regular expression.
            None => ("rx".to_string(), s.to_string()),
        };
        if name.is_empty() {
            return Err(format!("missing operator name in '{spec}'"));
        }
        let template = Macro::parse(&param);
        let imp = if template.is_literal() {
            OperatorImpl::Static(operators::create(&name, &param, ctx)?)
        } else {
            // Validate the name now; the parameter is only known per request.
            if let Err(e) = operators::create(&name, "0", &OperatorContext::new(base_dir)) {
                if e.starts_with("unknown operator") {
                    return Err(e);
                }
            }
            OperatorImpl::Dynamic { template, base_dir: base_dir.to_path_buf() }
        };
        let display = {
            let mut c = name.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        };
        Ok(RuleOperator { name, param: param.into(), display: display.into(), negated, imp })
    }

    /// ModSecurity's spelling in log lines (`Rx`, `Pm`, `DetectSQLi`).
    pub fn display_name(&self) -> std::sync::Arc<str> {
        self.display.clone()
    }
}

/// One rule (SecRule or SecAction; markers are separate entries).
#[derive(Debug)]
pub struct Rule {
    /// The chain starter's id for chained links.
    pub id: u64,
    pub phase: u8,
    pub file: Arc<Path>,
    pub line: usize,
    /// Empty for SecAction.
    pub targets: Vec<Target>,
    /// None for SecAction (always matches once).
    pub operator: Option<RuleOperator>,
    pub actions: Actions,
    /// Effective transformations (SecDefaultAction's first unless `t:none`).
    pub transforms: Vec<TransformStep>,
    /// Identifies `transforms` for the per-transaction transformation cache.
    pub transform_key: u32,
    pub chain: Option<Box<Rule>>,
    /// `chain` with no rule after it: never matches.
    pub dangling_chain: bool,
    /// (gate, bit) in the rule-set prefilter, when the operator has required literals.
    pub gate: Option<(u32, u32)>,
    /// Index among links whose operator result depends only on the value (static and not
    /// negated): a transaction remembers values they did not match.
    pub memo: Option<u32>,
}

impl Rule {
    /// Every link of the chain starting here.
    pub fn links(&self) -> impl Iterator<Item = &Rule> {
        std::iter::successors(Some(self), |r| r.chain.as_deref())
    }
}
