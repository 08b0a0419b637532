//! A compiled rule: targets, operator, effective actions and its chain.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::actions::{Actions, TransformStep};
use crate::macros::Macro;
use crate::operators::pattern::PcreLimits;
use crate::operators::{self, Operator, OperatorContext};
use crate::variables::Target;

/// The operator of a rule, ready to evaluate. What an evaluation reads first (see [`Rule`]).
#[derive(Debug)]
#[repr(C)]
pub struct RuleOperator {
    pub negated: bool,
    pub imp: OperatorImpl,
    /// Shared so that a match record does not copy (CRS patterns run to kilobytes).
    pub param: std::sync::Arc<str>,
    /// As written, without `@` (`rx`, `pmFromFile`, …).
    pub name: String,
    /// ModSecurity's spelling in log lines (`Rx`, `Pm`, `DetectSQLi`).
    pub display: std::sync::Arc<str>,
}

#[derive(Debug)]
pub enum OperatorImpl {
    /// Built once at load.
    Static(Box<dyn Operator>),
    /// The parameter holds macros (`%{tx.x}`): expanded per evaluation.
    Dynamic(DynamicOperator),
}

/// An operator whose parameter is known per request. The CRS expands the same setup
/// values (`%{tx.allowed_methods}`, `%{tx.restricted_headers_basic}`…) in every request,
/// so the operator built for the last expansion is kept and reused while it repeats.
#[derive(Debug)]
pub struct DynamicOperator {
    pub template: Macro,
    base_dir: PathBuf,
    /// (expanded parameter, the operator built from it)
    last: Mutex<Option<(Arc<str>, Arc<dyn Operator>)>>,
}

impl DynamicOperator {
    /// The operator `name` for the expanded parameter `param` (built, or the last one when
    /// `param` is the same), and the parameter as shared text for match records.
    pub fn get(&self, name: &str, param: &[u8], limits: PcreLimits) -> Result<(Arc<str>, Arc<dyn Operator>), String> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((p, o)) = last.as_ref().filter(|(p, _)| p.as_bytes() == param) {
            return Ok((p.clone(), o.clone()));
        }
        let text: Arc<str> = String::from_utf8_lossy(param).into();
        let mut o = operators::create(name, &text, &OperatorContext::new(&self.base_dir))?;
        if limits != PcreLimits::default() {
            o.set_pcre_limits(limits)?;
        }
        let o: Arc<dyn Operator> = Arc::from(o);
        *last = Some((text.clone(), o.clone()));
        Ok((text, o))
    }
}

/// A rule's operator argument split into (negated, name, parameter); no `@name` means
/// `@rx` with the whole argument. `None` when the name is missing.
fn operator_parts(spec: &str) -> Option<(bool, &str, &str)> {
    let s = spec.trim_start();
    let (negated, s) = match s.strip_prefix('!') {
        Some(r) => (true, r.trim_start()),
        None => (false, s),
    };
    let Some(r) = s.strip_prefix('@') else { return Some((negated, "rx", s)) };
    let end = r.find(|c: char| c.is_ascii_whitespace()).unwrap_or(r.len());
    let param = r[end..].strip_prefix(|c: char| c.is_ascii_whitespace()).unwrap_or(&r[end..]);
    (end > 0).then_some((negated, &r[..end], param))
}

impl RuleOperator {
    /// Parses `@name param`; `ctx` locates (and, during a load, records) data files.
    pub fn new(spec: &str, ctx: &OperatorContext) -> Result<RuleOperator, String> {
        let base_dir = ctx.base_dir;
        let (negated, name, param) = operator_parts(spec).ok_or_else(|| format!("missing operator name in '{spec}'"))?;
        let (name, param) = (name.to_string(), param.to_string());
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
            OperatorImpl::Dynamic(DynamicOperator { template, base_dir: base_dir.to_path_buf(), last: Mutex::default() })
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
///
/// In declaration order (`repr(C)`), the fields every evaluated link reads first: through
/// nginx the rule is out of the core's cache, and each line it spreads over is a miss.
#[derive(Debug)]
#[repr(C)]
pub struct Rule {
    /// `chain` with no rule after it: never matches.
    pub dangling_chain: bool,
    pub phase: u8,
    /// Identifies `transforms` for the per-transaction transformation cache.
    pub transform_key: u32,
    /// (gate, bit) in the rule-set prefilter, when the operator has required literals.
    pub gate: Option<(u32, u32)>,
    /// Index among links whose operator result depends only on the value (static and not
    /// negated): a transaction remembers values they did not match.
    pub memo: Option<u32>,
    /// The chain starter's id for chained links.
    pub id: u64,
    /// Empty for SecAction.
    pub targets: Vec<Target>,
    /// None for SecAction (always matches once).
    pub operator: Option<RuleOperator>,
    /// Effective transformations (SecDefaultAction's first unless `t:none`).
    pub transforms: Vec<TransformStep>,
    pub chain: Option<Box<Rule>>,
    /// A gated `multiMatch` link's stages: per prefix of `transforms` (none, the first
    /// step, …, all), its transformation key and (gate, bit). Empty when not gated.
    pub stage_gates: Vec<(u32, u32, u32)>,
    /// Per target, then per stage of `stage_gates`: the target's union of that stage's gate
    /// (`Target::union`'s kind; [`crate::variables::NO_UNION`] when it has none).
    pub stage_unions: Vec<u32>,
    /// Bit `k`: a value empty at stage `k` of `stage_gates` ends the walk. That stage's gate
    /// refuses an empty value and every later step leaves it empty, so no later stage
    /// differs from it.
    pub stage_empty_ends: u64,
    pub actions: Actions,
    pub file: Arc<Path>,
    pub line: usize,
}

impl Rule {
    /// Every link of the chain starting here.
    pub fn links(&self) -> impl Iterator<Item = &Rule> {
        std::iter::successors(Some(self), |r| r.chain.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dynamic(spec: &str) -> DynamicOperator {
        match RuleOperator::new(spec, &OperatorContext::new(Path::new("."))).unwrap().imp {
            OperatorImpl::Dynamic(d) => d,
            OperatorImpl::Static(_) => panic!("{spec} has a macro"),
        }
    }

    #[test]
    fn a_dynamic_operator_is_rebuilt_only_when_its_parameter_changes() {
        let d = dynamic("@within %{tx.allowed}");
        let limits = PcreLimits::default();
        let (p1, a) = d.get("within", b"GET POST", limits).unwrap();
        let (_, again) = d.get("within", b"GET POST", limits).unwrap();
        assert!(Arc::ptr_eq(&a, &again), "same parameter: same operator");
        assert_eq!(&*p1, "GET POST");
        assert!(a.evaluate(b"POST", None) && !a.evaluate(b"PUT", None));
        let (p2, b) = d.get("within", b"PUT", limits).unwrap();
        assert_eq!(&*p2, "PUT");
        assert!(b.evaluate(b"PUT", None) && !b.evaluate(b"POST", None));
        let (_, c) = d.get("within", b"GET POST", limits).unwrap();
        assert!(c.evaluate(b"POST", None) && !c.evaluate(b"PUT", None));
        // A parameter the operator rejects is an error, every time.
        let d = dynamic("@rx %{tx.pattern}");
        assert!(d.get("rx", b"(", limits).is_err());
        assert!(d.get("rx", b"(", limits).is_err());
        assert!(d.get("rx", b"a+", limits).unwrap().1.evaluate(b"xaa", None));
    }
}
