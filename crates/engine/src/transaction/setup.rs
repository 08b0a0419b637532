//! Phase-1 setup rules evaluated once, at load.
//!
//! A rule set starts with rules that only read and write TX: the CRS's 901xxx defaults
//! (`SecRule &TX:x "@eq 0" "setvar:tx.x=…"`), crs-setup.conf's SecActions, the paranoia
//! `skipAfter`s. Their outcome is the same for every request, yet they were a sixth of a
//! `GET /`. At load a probe transaction runs phase 1 from the top for as long as the
//! outcome cannot depend on the request; each transaction then starts phase 1 from the
//! probe's TX and skips the rules already accounted for.
//!
//! Rules that neither read nor write TX nor change the flow (Debian's
//! `ctl:requestBodyProcessor=XML` rules before the CRS) may sit between them: they are
//! left to run per request, since reordering them past TX-only rules changes nothing.
//! The first rule that is neither ends the folding.
//!
//! The same holds further on for rules that only read TX variables which no per-request
//! rule writes (the CRS's `TX:DETECTION_PARANOIA_LEVEL "@lt 2"` skips, eight per rule
//! file, and its per-paranoia-level score sums): whether they match is decided here,
//! once ([`Outcome`]); their actions still run per request.

use std::sync::Arc;

use crate::actions::{Actions, Ctl, DisruptiveAction, SetVarOp};
use crate::collections::Vars;
use crate::parser::Dialect;
use crate::rule::{OperatorImpl, Rule, RuleOperator};
use crate::ruleset::{Entry, RuleSet};
use crate::variables::{Selector, Var};

use super::Transaction;

/// What folding phase 1's setup rules left: the TX to start from and the entries to skip.
#[derive(Debug, Clone)]
pub struct Setup {
    pub(crate) tx: Vars,
    /// Per phase-1 entry: already accounted for (evaluated at load, or jumped over).
    pub(crate) done: Vec<bool>,
    /// What the folded rules did to MATCHED_VARS, replayed before the entry at that index
    /// (each per-request rule among them, and the first entry after them), in order.
    pub(crate) matched: Vec<(usize, MatchedEffect)>,
    /// Rules evaluated at load.
    pub(crate) folded: usize,
    /// Per phase and entry: the rule's result when it is the same for every request.
    pub(crate) outcomes: [Vec<Outcome>; 5],
    /// Per phase: the entries left to visit (plan.rs); None to always walk them all.
    pub(crate) plans: Option<Box<[super::plan::Plan; 5]>>,
    /// What the rule set's `TX:/regex/` targets select of `tx` (see [`TxSelections`]).
    pub(crate) selections: Arc<TxSelections>,
}

/// For each `TX:/regex/` target of a rule set (by its regex's address, which the rule set
/// holds): the keys of its setup TX that the regex selects, sorted. A transaction whose TX
/// is still that setup's but for the keys it changed (`TxTable::changed_since`) meets the
/// regex with those keys only, not with the setup's ~100 (`State::values`).
#[derive(Debug, Default)]
pub(crate) struct TxSelections {
    /// `RuleSet::id`.
    pub(crate) origin: u64,
    pub(crate) by_regex: rustc_hash::FxHashMap<usize, Box<[Vec<u8>]>>,
}

impl TxSelections {
    fn of(rules: &RuleSet, tx: &Vars) -> TxSelections {
        let mut by_regex = rustc_hash::FxHashMap::default();
        let links = rules.phases.iter().flatten().filter_map(|e| match e {
            Entry::Rule { rule, .. } => Some(rule.links()),
            _ => None,
        });
        for t in links.flatten().flat_map(|l| &l.targets) {
            if let (Var::Tx, Selector::Regex(re)) = (t.var, &t.selector) {
                by_regex.entry(Arc::as_ptr(re) as usize).or_insert_with(|| {
                    let mut keys: Vec<Vec<u8>> = tx.keys().filter(|k| re.is_match(k)).cloned().collect();
                    keys.sort_unstable();
                    keys.into_boxed_slice()
                });
            }
        }
        TxSelections { origin: rules.id, by_regex }
    }
}

/// A rule's result for every request that started from [`Setup::tx`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    Evaluate,
    /// Its first link never matches.
    Never,
    /// Matches with these MATCHED_VARS entries; its actions run per request (it has no
    /// chain, capture or log line: see `acts_without_match`).
    Always(Vec<(String, Vec<u8>)>),
}

/// The TX variables that rules evaluated per request may write.
struct Written {
    keys: std::collections::HashSet<Vec<u8>>,
    /// Literal beginnings of keys built from macros (`tx.header_name_%{tx.0}`).
    prefixes: Vec<Vec<u8>>,
}

impl Written {
    fn of(rules: &RuleSet, done: &[bool]) -> Written {
        let mut w = Written { keys: Default::default(), prefixes: Vec::new() };
        // Written by the engine itself when a PCRE limit is hit.
        w.keys.insert(b"msc_pcre_limits_exceeded".to_vec());
        for (p, entries) in rules.phases.iter().enumerate() {
            for (i, e) in entries.iter().enumerate() {
                let Entry::Rule { rule, .. } = e else { continue };
                if p == 0 && done.get(i) == Some(&true) {
                    continue;
                }
                for l in rule.links() {
                    if l.actions.capture {
                        w.keys.extend((b'0'..=b'9').map(|d| vec![d]));
                    }
                    if l.actions.initcols.iter().any(|(c, _)| c.eq_ignore_ascii_case("TX")) {
                        w.prefixes.push(Vec::new());
                    }
                    for sv in l.actions.setvars.iter().filter(|sv| sv.collection == "TX") {
                        let lit = sv.key.literal_prefix().to_ascii_lowercase();
                        if sv.key.is_literal() {
                            w.keys.insert(lit);
                        } else {
                            w.prefixes.push(lit);
                        }
                    }
                }
            }
        }
        w
    }

    fn may_write(&self, key: &[u8]) -> bool {
        self.keys.contains(key) || self.prefixes.iter().any(|p| key.starts_with(p))
    }
}

/// Reads nothing but TX variables that stay as the setup left them.
fn reads_constant(l: &Rule, w: &Written) -> bool {
    let keys_constant = |k: &[u8]| !w.may_write(k);
    reads_pure(l)
        && !l.targets.is_empty()
        && l.targets.iter().all(|t| matches!(&t.selector, Selector::Key(k) if keys_constant(k)))
        && l.operator.as_ref().is_some_and(|op| match &op.imp {
            OperatorImpl::Static(_) => true,
            // reads_pure checked that its macros name TX only.
            OperatorImpl::Dynamic(d) => d.template.refs().all(|(_, k)| keys_constant(k)),
        })
}

/// A match runs its actions without needing the match itself again: no chain to
/// evaluate, no captures, no log line (which would quote the match).
pub(super) fn acts_without_match(rule: &Rule, dialect: Dialect) -> bool {
    let a = &rule.actions;
    rule.chain.is_none() && !a.capture && !a.multi_match && !a.logs_in(dialect)
}

/// The net effect of consecutive folded rules on MATCHED_VARS (a rule that does not match
/// clears it, a match appends).
#[derive(Debug, Clone, Default)]
pub(crate) struct MatchedEffect {
    pub(crate) clear: bool,
    pub(crate) push: Vec<(String, Vec<u8>)>,
}

impl MatchedEffect {
    pub(super) fn is_none(&self) -> bool {
        !self.clear && self.push.is_empty()
    }

    /// Adds `next`, which follows this effect.
    pub(super) fn then(&mut self, next: &MatchedEffect) {
        if next.clear {
            self.clear = true;
            self.push.clear();
        }
        self.push.extend_from_slice(&next.push);
    }

    /// Adds the change from `before` to `after`.
    fn record(&mut self, before: &[(String, Vec<u8>)], after: &[(String, Vec<u8>)]) {
        let kept = after.len() >= before.len() && after[..before.len()] == *before;
        if !kept {
            self.clear = true;
            self.push.clear();
        }
        self.push.extend_from_slice(&after[if kept { before.len() } else { 0 }..]);
    }
}

/// Whether `op` gives a result that depends only on its input and parameter.
pub(crate) fn pure_operator(op: &RuleOperator) -> bool {
    PURE_OPERATORS.iter().any(|n| n.eq_ignore_ascii_case(&op.name))
}

/// Operators whose result depends only on their input and parameter.
const PURE_OPERATORS: &[&str] = &[
    "rx", "pm", "pmf", "pmFromFile", "streq", "strmatch", "eq", "ne", "ge", "gt", "le", "lt", "within",
    "contains", "containsWord", "beginsWith", "endsWith", "unconditionalMatch", "noMatch",
];

enum Class {
    /// Reads only TX; its effects only touch TX (or it skips): evaluated at load.
    Pure,
    /// Its first link reads only TX, but a match would do more (deny, log, a chain that
    /// reads the request…): folded only when that link does not match at load.
    PureRead,
    /// Neither reads nor writes TX nor changes the flow: left to run per request.
    Independent,
    Other,
}

fn classify(rule: &Rule, dialect: Dialect) -> Class {
    if rule.links().all(|l| reads_pure(l) && effects_pure(l, dialect)) {
        Class::Pure
    } else if rule.operator.is_some() && reads_pure(rule) {
        Class::PureRead
    } else if rule.links().all(independent) {
        Class::Independent
    } else {
        Class::Other
    }
}

fn reads_pure(l: &Rule) -> bool {
    l.targets.iter().all(|t| t.var == Var::Tx)
        && l.operator.as_ref().is_none_or(|op| {
            pure_operator(op)
                && match &op.imp {
                    OperatorImpl::Static(_) => true,
                    OperatorImpl::Dynamic(d) => d.template.names().all(|n| n == "TX"),
                }
        })
}

fn effects_pure(l: &Rule, dialect: Dialect) -> bool {
    let a = &l.actions;
    // MATCHED_VAR is the link's own match only when it has an operator.
    let allowed = |n: &str| {
        n == "TX" || n == "RULE" || (l.operator.is_some() && (n == "MATCHED_VAR" || n == "MATCHED_VAR_NAME"))
    };
    a.setvars.iter().all(|sv| {
        sv.collection == "TX"
            && sv.key.names().all(allowed)
            && match &sv.op {
                SetVarOp::Delete => true,
                SetVarOp::Set(m) | SetVarOp::Add(m) | SetVarOp::Sub(m) => m.names().all(allowed),
            }
    }) && no_side_effects(a)
        && a.ctls.is_empty()
        && a.severity.is_none()
        && !a.logs_in(dialect)
}

pub(super) fn no_side_effects(a: &Actions) -> bool {
    a.setenvs.is_empty()
        && a.expirevars.is_empty()
        && a.initcols.is_empty()
        && matches!(a.disruptive, None | Some(DisruptiveAction::Pass))
}

fn independent(l: &Rule) -> bool {
    let reads_tx = |n: &str| n == "TX" || n == "MATCHED_VARS" || n == "MATCHED_VARS_NAMES";
    let a = &l.actions;
    l.targets.iter().all(|t| {
        !matches!(t.var, Var::Tx | Var::MatchedVar | Var::MatchedVars | Var::MatchedVarName | Var::MatchedVarsNames)
    }) && l.operator.as_ref().is_none_or(|op| match &op.imp {
        OperatorImpl::Static(_) => true,
        OperatorImpl::Dynamic(d) => !d.template.names().any(reads_tx),
    }) && a.setvars.is_empty()
        && !a.capture
        && a.skip == 0
        && a.skip_after.is_none()
        && no_side_effects(a)
        && a.msg.iter().chain(&a.logdata).all(|m| !m.names().any(reads_tx))
        && a.ctls.iter().all(|c| {
            matches!(
                c,
                Ctl::RequestBodyProcessor(_)
                    | Ctl::RequestBodyAccess(_)
                    | Ctl::ResponseBodyAccess(_)
                    | Ctl::ForceRequestBodyVariable(_)
                    | Ctl::AuditEngine(_)
                    | Ctl::AuditLogParts(_)
                    | Ctl::Ignored
            )
        })
}

impl Transaction {
    /// Runs phase 1's leading setup rules on this (fresh) transaction; None when there is
    /// nothing to fold.
    pub(crate) fn fold_setup(&mut self) -> Option<Setup> {
        let rules = Arc::clone(&self.rules);
        let entries = &rules.phases[0];
        let dialect = rules.config().dialect;
        let mut done = vec![false; entries.len()];
        let (mut i, mut skip, mut folded) = (0, 0u32, 0);
        let mut effects = Vec::new();
        let mut pending = MatchedEffect::default();
        while i < entries.len() {
            let Entry::Rule { rule, skip_after_to } = &entries[i] else {
                done[i] = true;
                i += 1;
                continue;
            };
            if skip > 0 {
                skip -= 1;
                done[i] = true;
                i += 1;
                continue;
            }
            match classify(rule, dialect) {
                Class::Pure => {
                    let before = self.s.matched_vars.as_slice().to_vec();
                    let matched = self.eval_link(rule, rule);
                    pending.record(&before, self.s.matched_vars.as_slice());
                    done[i] = true;
                    folded += 1;
                    i += 1;
                    if matched {
                        if rule.actions.skip > 0 {
                            skip = rule.actions.skip;
                        }
                        if let Some(to) = *skip_after_to {
                            done[i..to].iter_mut().for_each(|d| *d = true);
                            i = to;
                        }
                    }
                }
                Class::PureRead => {
                    let Some(op) = &rule.operator else { break };
                    self.collect_hits(rule, rule, op);
                    if self.hits.len > 0 {
                        break;
                    }
                    self.s.matched_vars.clear();
                    pending = MatchedEffect { clear: true, push: Vec::new() };
                    done[i] = true;
                    folded += 1;
                    i += 1;
                }
                Class::Independent => {
                    if !pending.is_none() {
                        effects.push((i, std::mem::take(&mut pending)));
                    }
                    i += 1;
                }
                Class::Other => break,
            }
        }
        // A PCRE limit hit writes a message and a TX flag: keep that per request.
        if folded == 0 || !self.messages.is_empty() {
            return None;
        }
        if !pending.is_none() {
            effects.push((i, pending));
        }
        // Before deciding the later rules: a PCRE limit hit there flags TX.
        let tx = self.s.collections.get("TX").cloned().unwrap_or_default();
        let outcomes = self.constant_outcomes(&done);
        let selections = Arc::new(TxSelections::of(&self.rules, &tx));
        Some(Setup { tx, done, matched: effects, folded, outcomes, plans: None, selections })
    }

    /// Decides, on the folded state, the rules whose result cannot change per request.
    fn constant_outcomes(&mut self, done: &[bool]) -> [Vec<Outcome>; 5] {
        let rules = Arc::clone(&self.rules);
        let dialect = rules.config().dialect;
        let written = Written::of(&rules, done);
        std::array::from_fn(|p| {
            let entries = &rules.phases[p];
            let mut out = vec![Outcome::Evaluate; entries.len()];
            for (i, e) in entries.iter().enumerate() {
                let Entry::Rule { rule, .. } = e else { continue };
                let Some(op) = rule.operator.as_ref().filter(|_| reads_constant(rule, &written)) else { continue };
                if p == 0 && done[i] {
                    continue;
                }
                let before = self.messages.len();
                self.collect_hits(rule, rule, op);
                let hits = &self.hits.items[..self.hits.len];
                if self.messages.len() != before {
                    // A PCRE limit: keep its message and flag per request.
                    self.messages.truncate(before);
                    continue;
                }
                out[i] = if hits.is_empty() {
                    Outcome::Never
                } else if acts_without_match(rule, dialect) {
                    Outcome::Always(hits.iter().map(|h| (h.name.clone(), h.value.clone())).collect())
                } else {
                    Outcome::Evaluate
                };
            }
            out
        })
    }
}

/// `rs` with its phase-1 setup rules folded (see the module comment).
pub(crate) fn with_setup(rs: RuleSet) -> RuleSet {
    let rs = Arc::new(rs);
    let setup = Transaction::new(Arc::clone(&rs), "setup").fold_setup();
    // The probe transaction has ended: this is the only reference again.
    let mut rs = Arc::into_inner(rs).expect("no transaction outlives the setup probe");
    rs.stats.folded_setup_rules = setup.as_ref().map_or(0, |s| s.folded);
    rs.stats.decided_at_load = setup
        .as_ref()
        .map_or(0, |s| s.outcomes.iter().flatten().filter(|o| **o != Outcome::Evaluate).count());
    rs.setup = setup.map(|mut s| {
        s.plans = Some(Box::new(super::plan::plans(&rs, &s)));
        s
    });
    rs
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::ruleset::RuleSource;

    fn compile(text: &str) -> RuleSet {
        let src = RuleSource::Inline { text: text.into(), origin: PathBuf::from("/t/setup.conf"), line: 1 };
        RuleSet::compile(&[src]).unwrap()
    }

    type Outcome = (Vec<(Vec<u8>, Vec<u8>)>, String, Option<u16>, usize);

    /// Phase 1 and 2 of a GET with `headers`; what the rules left behind.
    fn run(rs: &Arc<RuleSet>, headers: &[(&str, &str)]) -> Outcome {
        run_uri(rs, "/", headers)
    }

    fn run_uri(rs: &Arc<RuleSet>, uri: &str, headers: &[(&str, &str)]) -> Outcome {
        let mut tx = Transaction::new(Arc::clone(rs), "t");
        tx.process_connection("127.0.0.1", 1000, "127.0.0.1", 80);
        tx.process_uri(uri.as_bytes(), b"GET", b"HTTP/1.1");
        for (k, v) in headers {
            tx.add_request_header(k.as_bytes(), v.as_bytes());
        }
        let iv = tx.process_request_headers().or_else(|| tx.process_request_body());
        let vars = tx.tx_vars().into_iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        (vars, tx.matched_ids(), iv.map(|i| i.status), tx.take_messages().len())
    }

    fn both(text: &str) -> (Arc<RuleSet>, Arc<RuleSet>) {
        (Arc::new(compile(text)), Arc::new(compile(text).without_setup_folding()))
    }

    const SETUP: &str = r#"
SecRuleEngine On
SecRule REQUEST_HEADERS:Content-Type "@rx ^text/xml" "id:1,phase:1,pass,nolog,ctl:requestBodyProcessor=XML"
SecAction "id:2,phase:1,pass,nolog,setvar:tx.a=1"
SecRule &TX:b "@eq 0" "id:3,phase:1,pass,nolog,setvar:tx.b=%{tx.a}0"
SecRule &TX:setup_missing "@eq 1" "id:4,phase:1,deny,status:500,log,msg:'no setup'"
SecRule TX:b "@eq 10" "id:5,phase:1,pass,nolog,skipAfter:END"
SecRule REQUEST_HEADERS:X "@rx ." "id:6,phase:1,deny,log"
SecMarker END
SecRule TX:b "@rx ^(1)0$" "id:7,phase:1,pass,nolog,capture,setvar:tx.c=%{tx.1}"
SecAction "id:8,phase:1,pass,nolog,setenv:seen=1,setvar:tx.mv=%{MATCHED_VAR}"
SecRule REQBODY_PROCESSOR "@streq XML" "id:9,phase:1,pass,log,msg:'xml',setvar:tx.xml=1"
SecRule REQUEST_HEADERS:X "@rx ." "id:10,phase:2,deny,log"
"#;

    #[test]
    fn setup_rules_are_folded_and_change_nothing() {
        let (folded, unfolded) = both(SETUP);
        // 2, 3, 4 (did not match), 5 (its jump covers 6) and 7; 1 is left to each request
        // and 8 (it reads the request's environment) ends the folding.
        assert_eq!(folded.stats().folded_setup_rules, 5);
        assert!(unfolded.setup.is_none());
        let setup = folded.setup.as_ref().unwrap();
        let ids: Vec<u64> = folded.phases[0]
            .iter()
            .zip(&setup.done)
            .filter_map(|(e, d)| match e {
                Entry::Rule { rule, .. } if !d => Some(rule.id),
                _ => None,
            })
            .collect();
        assert_eq!(ids, [1, 8, 9]);
        for headers in [&[][..], &[("Content-Type", "text/xml"), ("X", "1")], &[("X", "1")]] {
            let (a, b) = (run(&folded, headers), run(&unfolded, headers));
            assert_eq!(a, b, "{headers:?}");
        }
        let (vars, ids, status, _) = run(&folded, &[("Content-Type", "text/xml"), ("X", "1")]);
        let get = |k: &str| vars.iter().find(|(n, _)| n == k.as_bytes()).map(|(_, v)| v.as_slice());
        assert_eq!((get("b"), get("c"), get("xml")), (Some(&b"10"[..]), Some(&b"1"[..]), Some(&b"1"[..])));
        // MATCHED_VAR as rule 7's match left it, although 7 ran at load.
        assert_eq!(get("mv"), Some(&b"10"[..]));
        // Rule 6 was jumped over (never per request); phase 2's rule 10 still denies.
        assert_eq!((ids.as_str(), status), ("9,10", Some(403)));
    }

    #[test]
    fn tx_regex_targets_select_from_the_setup_and_the_changes() {
        // Setup keys p_a, p_b, q; per request, a new p_c, p_b changed twice, p_a removed
        // (with header Y), and with 300 headers more changes than a table notes before them.
        let rules = r#"
SecRuleEngine On
SecAction "id:1,phase:1,pass,nolog,setvar:tx.p_a=1,setvar:tx.p_b=2,setvar:tx.q=3"
SecRule REQUEST_HEADERS_NAMES "@rx ^h" "id:4,phase:1,pass,nolog,setvar:tx.n_%{MATCHED_VAR}=1"
SecRule REQUEST_HEADERS:X "@rx (.+)" "id:2,phase:1,pass,nolog,capture,setvar:tx.p_c=%{tx.1},setvar:tx.p_b=8,setvar:tx.p_b=9"
SecRule REQUEST_HEADERS:Y "@rx ." "id:3,phase:1,pass,nolog,setvar:!tx.p_a"
SecRule TX:/^P_/ "@rx ." "id:5,phase:2,pass,nolog,setvar:tx.seen=%{tx.seen}%{MATCHED_VAR_NAME}=%{MATCHED_VAR};"
"#;
        let (folded, unfolded) = both(rules);
        let sel = &folded.setup.as_ref().unwrap().selections;
        let keys: Vec<&[u8]> = sel.by_regex.values().flat_map(|k| k.iter().map(Vec::as_slice)).collect();
        assert_eq!(keys, [&b"p_a"[..], b"p_b"]);
        let mut many: Vec<(String, &str)> = (0..300).map(|i| (format!("h{i}"), "1")).collect();
        many.push(("X".into(), "7"));
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let cases: [(&[(&str, &str)], &str); 4] = [
            (&[], "TX:p_a=1;TX:p_b=2;"),
            (&[("X", "7")], "TX:p_a=1;TX:p_b=9;TX:p_c=7;"),
            (&[("X", "7"), ("Y", "1")], "TX:p_b=9;TX:p_c=7;"),
            (&many, "TX:p_a=1;TX:p_b=9;TX:p_c=7;"),
        ];
        for (headers, want) in cases {
            let (a, b) = (run(&folded, headers), run(&unfolded, headers));
            assert_eq!(a, b, "{:?}", &headers[..headers.len().min(2)]);
            let seen = a.0.iter().find(|(k, _)| k == b"seen").map(|(_, v)| String::from_utf8_lossy(v).into_owned());
            assert_eq!(seen.as_deref(), Some(want));
        }
    }

    #[test]
    fn a_setup_check_that_fails_at_load_still_denies_each_request() {
        let rules = r#"
SecRuleEngine On
SecRule &TX:crs_setup_version "@eq 0" "id:1,phase:1,deny,status:500,log,msg:'setup missing'"
SecAction "id:2,phase:1,pass,nolog,setvar:tx.a=1"
"#;
        let (folded, unfolded) = both(rules);
        assert!(folded.setup.is_none(), "the first rule matches at load: nothing is folded");
        assert_eq!(run(&folded, &[]), run(&unfolded, &[]));
        assert_eq!(run(&folded, &[]).2, Some(500));
    }

    #[test]
    fn request_rules_between_setup_rules_run_per_request() {
        // Rule 1 reads the request and changes no TX: rules 2-3 fold around it. Rule 4
        // writes TX from the request: the folding stops there.
        let rules = r#"
SecRuleEngine On
SecAction "id:2,phase:1,pass,nolog,setvar:tx.a=1"
SecRule REQUEST_HEADERS:X "@rx ^bad" "id:1,phase:1,deny,log"
SecRule &TX:a "@eq 1" "id:3,phase:1,pass,nolog,setvar:tx.b=2"
SecRule REQUEST_HEADERS:Y "@rx (.*)" "id:4,phase:1,pass,nolog,capture,setvar:tx.y=%{tx.1}"
SecAction "id:5,phase:1,pass,nolog,setvar:tx.c=3"
"#;
        let (folded, unfolded) = both(rules);
        // Rule 1 denies: not independent (it may end the request before rule 3's setvar).
        assert_eq!(folded.stats().folded_setup_rules, 1);
        for h in [&[][..], &[("X", "bad")], &[("Y", "why")]] {
            assert_eq!(run(&folded, h), run(&unfolded, h), "{h:?}");
        }
        let logged = r#"
SecRuleEngine On
SecAction "id:2,phase:1,pass,nolog,setvar:tx.a=1"
SecRule REQUEST_HEADERS:X "@rx ^bad" "id:1,phase:1,pass,log,msg:'bad %{MATCHED_VAR}'"
SecRule &TX:a "@eq 1" "id:3,phase:1,pass,nolog,setvar:tx.b=2"
SecRule REQUEST_HEADERS:Y "@rx (.*)" "id:4,phase:1,pass,nolog,capture,setvar:tx.y=%{tx.1}"
"#;
        let (folded, unfolded) = both(logged);
        assert_eq!(folded.stats().folded_setup_rules, 2);
        for h in [&[][..], &[("X", "bad")], &[("Y", "why")], &[("X", "bad"), ("Y", "y")]] {
            assert_eq!(run(&folded, h), run(&unfolded, h), "{h:?}");
        }
        assert_eq!(run(&folded, &[("X", "bad")]).1, "1");
    }

    fn outcomes(rs: &RuleSet, phase: usize) -> Vec<(u64, super::Outcome)> {
        let o = &rs.setup.as_ref().unwrap().outcomes[phase - 1];
        rs.phases[phase - 1]
            .iter()
            .zip(o)
            .filter_map(|(e, o)| match e {
                Entry::Rule { rule, .. } => Some((rule.id, o.clone())),
                Entry::Marker(_) => None,
            })
            .collect()
    }

    const PARANOIA: &str = r#"
SecRuleEngine On
SecAction "id:1,phase:1,pass,nolog,setvar:tx.pl=1"
SecRule REQUEST_HEADERS:X "@rx ." "id:2,phase:1,pass,nolog,ctl:ruleRemoveTargetById=10;TX:pl"
SecRule REQUEST_HEADERS:Z "@rx ." "id:4,phase:1,pass,nolog,ctl:ruleRemoveTargetByTag=perf;REQUEST_FILENAME"
SecRule ARGS:score "@rx ^(\d+)$" "id:3,phase:1,pass,nolog,capture,setvar:tx.score_%{tx.1}=1,setvar:tx.level=%{tx.1}"
SecRule TX:pl "@lt 2" "id:10,phase:2,pass,nolog,skipAfter:END"
SecRule ARGS "@rx attack" "id:11,phase:2,deny,log"
SecMarker END
SecRule TX:pl "@ge 2" "id:12,phase:2,deny,log"
SecRule TX:level "@ge 5" "id:13,phase:2,deny,log"
SecRule TX:score_7 "@eq 1" "id:14,phase:2,deny,log"
SecRule &TX:unset "@eq 0" "id:15,phase:2,pass,log,msg:'logs: decided per request'"
SecRule TX:pl "@ge 1" "id:16,phase:2,pass,nolog,setvar:tx.sum=+%{tx.pl},setvar:tx.seen=%{MATCHED_VAR_NAME}"
"#;

    #[test]
    fn rules_on_tx_set_up_once_are_decided_at_load() {
        let (folded, unfolded) = both(PARANOIA);
        use super::Outcome::{Always, Evaluate, Never};
        // 10 always skips, 12 never matches, 16 always adds; 13 and 14 read variables a
        // request writes (3's setvars: a literal key and a key made from a macro); 15 logs
        // when it matches.
        assert_eq!(
            outcomes(&folded, 2),
            [
                (10, Always(vec![("TX:pl".into(), b"1".to_vec())])),
                (11, Evaluate),
                (12, Never),
                (13, Evaluate),
                (14, Evaluate),
                (15, Evaluate),
                (16, Always(vec![("TX:pl".into(), b"1".to_vec())])),
            ]
        );
        assert_eq!(folded.stats().decided_at_load, 3);
        let cases: [(&str, &[(&str, &str)]); 6] = [
            ("/?q=attack", &[]),
            ("/?score=7", &[]),
            ("/?score=3", &[]),
            // 2 removes rule 10's only target: 10 no longer skips, 11 denies.
            ("/?q=attack", &[("X", "1")]),
            ("/", &[("X", "1")]),
            // A removed target other than TX (as the CRS's 941010 does) keeps the decisions.
            ("/?q=attack", &[("Z", "1")]),
        ];
        for (uri, h) in cases {
            assert_eq!(run_uri(&folded, uri, h), run_uri(&unfolded, uri, h), "{uri} {h:?}");
        }
        let (vars, _, status, _) = run_uri(&folded, "/?q=attack", &[]);
        assert_eq!(status, None);
        // 16's setvars ran per request, with its match as MATCHED_VAR_NAME.
        let get = |k: &str| vars.iter().find(|(n, _)| n == k.as_bytes()).map(|(_, v)| v.as_slice());
        assert_eq!((get("sum"), get("seen")), (Some(&b"1"[..]), Some(&b"TX:pl"[..])));
        assert_eq!(run_uri(&folded, "/?score=7", &[]).2, Some(403));
        assert_eq!(run_uri(&folded, "/?q=attack", &[("X", "1")]).2, Some(403));
    }
}
