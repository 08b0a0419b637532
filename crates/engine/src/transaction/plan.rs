//! Per-phase walk plans for transactions that started from the setup's TX.
//!
//! Of the ~310 entries a `GET /` visited in phases 1 and 2 with the CRS, ~145 had a
//! result fixed at load: setup rules already folded, markers, rules decided never to
//! match, and the paranoia-level `skipAfter`s that always match and do nothing else.
//! Yet each cost a visit to its entry (a cold cache line in a worker) and ~100
//! instructions. A plan lists only the rest, in order, each beside its quick-skip record,
//! and keeps what the left-out rules did to MATCHED_VARS as one edit before the next
//! step. The walk hands over to the general loop (`run_phase`) at the first rule that
//! changes the flow in a way fixed at load could not foresee: a matched rule's own `skip`
//! or `skipAfter`, or a ctl that removes rules or TX targets.

use crate::parser::Dialect;
use crate::rule::Rule;
use crate::ruleset::{Entry, Quick, RuleSet};

use super::setup::{no_side_effects, MatchedEffect, Outcome, Setup};

/// `Step::edit` when the step has no edit before it.
pub(crate) const NO_EDIT: u32 = u32::MAX;

/// One phase's plan.
#[derive(Debug, Default, Clone)]
pub(crate) struct Plan {
    pub(crate) steps: Vec<Step>,
    pub(crate) edits: Vec<MatchedEffect>,
    /// The edit after the last step (MATCHED_VARS carries into the next phase).
    pub(crate) tail: u32,
}

/// An entry the walk visits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Step {
    pub(crate) entry: u32,
    /// Into `Plan::edits`, applied before the step; [`NO_EDIT`] when none.
    pub(crate) edit: u32,
    /// Its outcome is `Always` (its actions run; its `skipAfter` is already in the plan).
    pub(crate) always: bool,
    /// The rule's `RuleSet::quick` record, here so a passed-over rule is not read.
    pub(crate) quick: Quick,
}

impl Plan {
    fn take_edit(&mut self, pending: &mut MatchedEffect) -> u32 {
        if pending.is_none() {
            return NO_EDIT;
        }
        self.edits.push(std::mem::take(pending));
        (self.edits.len() - 1) as u32
    }

    pub(crate) fn edit(&self, at: u32) -> Option<&MatchedEffect> {
        self.edits.get(at as usize)
    }
}

/// An `Always` rule whose match does nothing but append to MATCHED_VARS (and jump).
fn only_matches(rule: &Rule, dialect: Dialect) -> bool {
    let a = &rule.actions;
    super::setup::acts_without_match(rule, dialect)
        && a.setvars.is_empty()
        && a.ctls.is_empty()
        && a.severity.is_none()
        && a.skip == 0
        && no_side_effects(a)
}

/// Per phase and entry: a transaction can evaluate the rule while the setup's TX holds
/// (it is a step of its phase's plan; every rule without plans). What a plan leaves out
/// is decided at load or jumped over, unless a request leaves the plan (a `ctl` removed a
/// TX target, or it did not start from the setup's TX): then the rule is evaluated anyway.
pub(crate) fn reached(rules: &RuleSet) -> [Vec<bool>; 5] {
    let plans = rules.setup.as_ref().and_then(|s| s.plans.as_deref());
    std::array::from_fn(|p| match plans {
        Some(plans) => {
            let mut reached = vec![false; rules.phases[p].len()];
            for step in &plans[p].steps {
                reached[step.entry as usize] = true;
            }
            reached
        }
        None => vec![true; rules.phases[p].len()],
    })
}

/// The plans of phases 1..=5 for `setup` (phase 1's starts where the folding left off).
pub(crate) fn plans(rules: &RuleSet, setup: &Setup) -> [Plan; 5] {
    std::array::from_fn(|p| plan(rules, setup, p))
}

/// Walks the phase as `run_phase` would with every outcome as decided at load and no
/// rule removed, leaving out what needs no visit.
fn plan(rules: &RuleSet, setup: &Setup, p: usize) -> Plan {
    let dialect = rules.config().dialect;
    let (entries, outcomes, quick) = (&rules.phases[p], &setup.outcomes[p], &rules.quick[p]);
    let mut plan = Plan::default();
    let mut pending = MatchedEffect::default();
    let mut effects = if p == 0 { &setup.matched[..] } else { &[] }.iter().peekable();
    let mut i = 0;
    while i < entries.len() {
        if let Some((_, e)) = effects.next_if(|(at, _)| *at == i) {
            pending.then(e);
        }
        if p == 0 && setup.done[i] {
            i += 1;
            continue;
        }
        let Entry::Rule { rule, skip_after_to } = &entries[i] else {
            i += 1;
            continue;
        };
        let after_jump = skip_after_to.unwrap_or(i + 1);
        match &outcomes[i] {
            Outcome::Never => {
                pending = MatchedEffect { clear: true, push: Vec::new() };
                i += 1;
            }
            Outcome::Always(hits) if only_matches(rule, dialect) => {
                pending.push.extend(hits.iter().cloned());
                i = after_jump;
            }
            // An always step with a counted skip hands over to the general loop when it
            // runs (`run_plan`): the steps after it are never reached.
            o => {
                let always = matches!(o, Outcome::Always(_));
                let edit = plan.take_edit(&mut pending);
                plan.steps.push(Step { entry: i as u32, edit, always, quick: quick[i] });
                i = if always { after_jump } else { i + 1 };
            }
        }
    }
    plan.tail = plan.take_edit(&mut pending);
    plan
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use crate::ruleset::RuleSource;
    use crate::transaction::Transaction;

    use super::*;

    fn compile(text: &str) -> RuleSet {
        let src = RuleSource::Inline { text: text.into(), origin: PathBuf::from("/t/plan.conf"), line: 1 };
        RuleSet::compile(&[src]).unwrap()
    }

    /// Everything a request leaves behind that a rule or a log can see.
    type Seen = (Vec<(Vec<u8>, Vec<u8>)>, String, Option<u16>, Vec<String>);

    fn run(rs: &Arc<RuleSet>, uri: &str, headers: &[(&str, &str)]) -> Seen {
        let mut tx = Transaction::new(Arc::clone(rs), "t");
        tx.process_connection("127.0.0.1", 1000, "127.0.0.1", 80);
        tx.process_uri(uri.as_bytes(), b"GET", b"HTTP/1.1");
        for (k, v) in headers {
            tx.add_request_header(k.as_bytes(), v.as_bytes());
        }
        let iv = tx
            .process_request_headers()
            .or_else(|| tx.process_request_body())
            .or_else(|| tx.process_response_headers(200, b"HTTP/1.1"))
            .or_else(|| tx.process_response_body());
        tx.process_logging();
        let mut vars: Vec<_> = tx.tx_vars().into_iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        vars.sort();
        (vars, tx.matched_ids(), iv.map(|i| i.status), tx.take_messages())
    }

    fn ids(rs: &RuleSet, p: usize) -> Vec<u64> {
        let plan = &rs.setup.as_ref().unwrap().plans.as_ref().unwrap()[p - 1];
        plan.steps
            .iter()
            .map(|s| match &rs.phases[p - 1][s.entry as usize] {
                Entry::Rule { rule, .. } => rule.id,
                Entry::Marker(_) => unreachable!("a plan steps on rules only"),
            })
            .collect()
    }

    const RULES: &str = r#"
SecRuleEngine On
SecAction "id:1,phase:1,pass,nolog,setvar:tx.pl=1,setvar:tx.score=0"
SecRule REQUEST_HEADERS:A "@rx ." "id:2,phase:1,pass,nolog,ctl:ruleRemoveById=21"
SecRule REQUEST_HEADERS:B "@rx ." "id:3,phase:1,pass,nolog,ctl:ruleRemoveTargetById=21;TX:pl"
SecRule REQUEST_HEADERS:C "@rx ." "id:4,phase:1,pass,nolog,skipAfter:END1"
SecRule REQUEST_HEADERS:D "@rx ." "id:5,phase:1,pass,nolog,skip:1"
SecRule REQUEST_HEADERS:E "@rx ." "id:6,phase:1,pass,log,msg:'e %{MATCHED_VAR_NAME}'"
SecRule REQUEST_HEADERS:F "@rx ." "id:7,phase:1,pass,nolog,ctl:ruleRemoveTargetByTag=t;REQUEST_FILENAME"
SecMarker END1
SecRule ARGS:rm "@rx ." "id:19,phase:2,pass,nolog,ctl:ruleRemoveById=21"
SecRule TX:pl "@lt 1" "id:20,phase:2,pass,nolog,skipAfter:END2"
SecRule TX:pl "@lt 2" "id:21,phase:2,pass,nolog,skipAfter:END2"
SecRule ARGS "@rx attack" "id:22,phase:2,deny,log"
SecMarker END2
SecRule TX:pl "@ge 1" "id:23,phase:2,pass,nolog,setvar:tx.score=+%{tx.pl}"
SecRule ARGS:x "@rx ^(\w+)$" "id:24,phase:2,pass,log,capture,msg:'x %{MATCHED_VAR_NAME}',setvar:tx.x=%{tx.1}"
SecRule TX:pl "@lt 2" "id:25,phase:2,pass,nolog,skipAfter:END3"
SecRule ARGS "@rx other" "id:26,phase:2,deny,log"
SecMarker END3
SecRule MATCHED_VARS_NAMES "@rx ." "id:27,phase:2,pass,log,msg:'after the skip: %{MATCHED_VAR_NAME}'"
SecRule TX:pl "@lt 2" "id:30,phase:3,pass,nolog"
SecRule MATCHED_VAR "@rx ." "id:40,phase:4,pass,log,msg:'carried into phase 4: %{MATCHED_VAR}'"
SecRule ARGS:y "@rx ^\d+$" "id:41,phase:4,deny,log,skipAfter:END4"
SecRule TX:pl "@lt 2" "id:42,phase:4,pass,nolog,skipAfter:END4"
SecRule ARGS "@rx never" "id:43,phase:4,deny,log"
SecMarker END4
SecRule TX:pl "@lt 0" "id:44,phase:4,deny,log"
SecRule TX:pl "@lt 2" "id:37,phase:5,pass,nolog,skip:1"
SecRule ARGS "@rx skipped" "id:38,phase:5,pass,log,msg:'not skipped'"
SecRule MATCHED_VARS_NAMES "@rx ." "id:39,phase:5,pass,log,msg:'after the counted skip: %{MATCHED_VAR_NAME}'"
"#;

    #[test]
    fn a_plan_leaves_out_what_was_decided_at_load() {
        let rs = compile(RULES);
        // 20 never matches; 21 only skips; 22 is jumped over; 23 adds per request; 25
        // (only a skip) jumps over 26.
        assert_eq!(ids(&rs, 2), [19, 23, 24, 27]);
        // 30 only matches: its MATCHED_VARS is the tail, for phase 4's 40.
        assert!(ids(&rs, 3).is_empty());
        assert_ne!(rs.setup.as_ref().unwrap().plans.as_ref().unwrap()[2].tail, NO_EDIT);
        assert_eq!(ids(&rs, 4), [40, 41]);
        // 37 always matches, with a counted skip that the general loop takes over.
        assert_eq!(ids(&rs, 5), [37, 38, 39]);
    }

    #[test]
    fn walking_the_plan_gives_what_the_general_loop_gives() {
        let (planned, general) = (Arc::new(compile(RULES)), Arc::new(compile(RULES).without_plans()));
        assert!(general.setup.as_ref().unwrap().plans.is_none());
        let headers: [&[(&str, &str)]; 10] = [
            &[],
            &[("A", "1")],
            &[("B", "1")],
            &[("C", "1")],
            &[("D", "1")],
            &[("E", "1")],
            &[("F", "1")],
            &[("A", "1"), ("B", "1"), ("E", "1")],
            &[("D", "1"), ("E", "1"), ("F", "1")],
            &[("C", "1"), ("E", "1")],
        ];
        let uris = [
            "/",
            "/?x=word",
            "/?q=attack",
            "/?q=other&x=y",
            "/?y=12",
            "/?q=never&y=x",
            "/?rm=1&q=attack",
            "/?q=skipped",
        ];
        for h in headers {
            for uri in uris {
                assert_eq!(run(&planned, uri, h), run(&general, uri, h), "{uri} {h:?}");
            }
        }
        // The cases do reach the plan's hand-overs: 22 denies once 2, 3 or 19 took 21 away,
        // 41 denies and skips; 27 sees what 25 (left out of the plan) added to MATCHED_VARS,
        // 40 what phase 3's 30 left there.
        assert_eq!(run(&planned, "/?q=attack", &[("B", "1")]).2, Some(403));
        assert_eq!(run(&planned, "/?q=attack", &[("A", "1")]).2, Some(403));
        assert_eq!(run(&planned, "/?rm=1&q=attack", &[]).2, Some(403));
        // 4's jump passes over 6.
        assert_eq!(run(&planned, "/", &[("E", "1")]).1, "6,27,40,39");
        assert_eq!(run(&planned, "/", &[("C", "1"), ("E", "1")]).1, "27,40,39");
        assert_eq!(run(&planned, "/?q=attack", &[]).2, None);
        assert_eq!(run(&planned, "/?y=12", &[]).2, Some(403));
        // 37's skip passes over 38; 39 sees 37's match.
        let (_, ids, _, logs) = run(&planned, "/?q=skipped", &[]);
        assert!(!ids.contains("38") && ids.ends_with("39"), "{ids}");
        assert!(
            logs.iter().any(|m| m.contains("[msg \"after the counted skip: MATCHED_VARS_NAMES:TX:pl\"]")),
            "{logs:?}"
        );
        let logs = run(&planned, "/?x=word", &[]).3;
        assert!(logs.iter().any(|m| m.contains("[msg \"after the skip: MATCHED_VARS_NAMES:TX:pl\"]")), "{logs:?}");
        assert!(logs.iter().any(|m| m.contains("[msg \"carried into phase 4: 1\"]")), "{logs:?}");
    }
}
