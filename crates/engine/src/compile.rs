//! Directives → [`RuleSet`]: Sec* configuration, rules with SecDefaultAction merged,
//! chains, markers, `Include`, and rule removal/update exceptions.

use std::cell::RefCell;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::actions::{ctl, Actions, DisruptiveAction};
use crate::audit;
use crate::error::Error;
use crate::inputs::Inputs;
use crate::operators::deferred::Deferred;
use crate::operators::OperatorContext;
use crate::parser::{self, split_actions, split_variables, Dialect, Directive};
use crate::rule::{OperatorImpl, Rule, RuleOperator};
use crate::transformations::tree::TransformTree;
use crate::ruleset::{Config, Entry, LimitAction, RuleSet, RuleSource, Stats};
use crate::variables::{attach_exclusions, compile_targets, split_targets, Selector, Target, Var};

const MAX_INCLUDE_DEPTH: usize = 32;

/// A rule being assembled, before exceptions and marker resolution.
struct Pending {
    rule: Rule,
    /// Chain links still expected (the last link added had `chain`).
    open_chain: bool,
}

enum Item {
    Rule(Rule),
    Marker(String),
}

/// Exceptions that apply to every rule regardless of where they appear (as in ModSecurity v3).
#[derive(Default)]
struct Exceptions {
    remove_ids: Vec<(u64, u64)>,
    remove_tags: Vec<String>,
    remove_msgs: Vec<String>,
    /// (rule selector, targets text, where)
    update_targets: Vec<(RuleSelector, String, Arc<Path>, usize)>,
    update_actions: Vec<(u64, String, Arc<Path>, usize)>,
}

enum RuleSelector {
    Ids(Vec<(u64, u64)>),
    Tag(String),
    Msg(String),
}

struct Compiler {
    config: Config,
    defaults: [Actions; 5],
    default_set: [bool; 5],
    items: Vec<Item>,
    pending: Option<Pending>,
    ids: HashSet<u64>,
    exceptions: Exceptions,
    /// Files read so far (a RefCell: operator constructors record data files through a shared context).
    inputs: RefCell<Inputs>,
}

pub fn compile(sources: &[RuleSource]) -> Result<RuleSet, Error> {
    let mut c = Compiler {
        config: Config::default(),
        defaults: std::array::from_fn(|i| default_actions(i as u8 + 1)),
        default_set: [false; 5],
        items: Vec::new(),
        pending: None,
        ids: HashSet::new(),
        exceptions: Exceptions::default(),
        inputs: RefCell::default(),
    };
    let read = c.read(sources);
    if let Some(p) = c.pending.take() {
        c.items.push(Item::Rule(p.rule));
    }
    // A bad pattern read before an error is the first error, as when each pattern was
    // checked where it stands.
    c.check_patterns()?;
    read?;
    c.finish()
}

/// The `@rx` pattern of a static operator, built or not.
fn static_deferred(op: Option<&RuleOperator>) -> Option<&Deferred> {
    match op? {
        RuleOperator { imp: OperatorImpl::Static(o), .. } => o.deferred(),
        _ => None,
    }
}

fn default_actions(phase: u8) -> Actions {
    Actions {
        phase: Some(phase),
        log: Some(true),
        auditlog: Some(true),
        save_message: Some(true),
        disruptive: Some(DisruptiveAction::Pass),
        ..Actions::default()
    }
}

fn err(d: &Directive, msg: impl Into<String>) -> Error {
    Error::new(d.file.as_ref(), d.line, msg.into())
}

fn on_off(d: &Directive) -> Result<bool, Error> {
    match one_arg(d)?.to_ascii_lowercase().as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        v => Err(err(d, format!("{}: expected On or Off, got '{v}'", d.name))),
    }
}

fn one_arg(d: &Directive) -> Result<&str, Error> {
    match d.args.as_slice() {
        [a] => Ok(a),
        _ => Err(err(d, format!("{} takes exactly one argument, got {}", d.name, d.args.len()))),
    }
}

fn number(d: &Directive) -> Result<u64, Error> {
    let a = one_arg(d)?;
    a.parse().map_err(|_| err(d, format!("{}: '{a}' is not a number", d.name)))
}

fn limit_action(d: &Directive) -> Result<LimitAction, Error> {
    match one_arg(d)?.to_ascii_lowercase().as_str() {
        "reject" => Ok(LimitAction::Reject),
        "processpartial" => Ok(LimitAction::ProcessPartial),
        v => Err(err(d, format!("{}: expected Reject or ProcessPartial, got '{v}'", d.name))),
    }
}

impl Compiler {
    fn read(&mut self, sources: &[RuleSource]) -> Result<(), Error> {
        for src in sources {
            match src {
                RuleSource::File(p) => self.file(p, None, 0)?,
                RuleSource::Inline { text, origin, line } => {
                    let origin: Arc<Path> = Arc::from(origin.as_path());
                    let mut dialect = self.config.dialect;
                    let ds = parser::parse_dialect(text, &origin, *line, &mut dialect)?;
                    let base = origin.parent().map(Path::to_path_buf).unwrap_or_default();
                    self.directives(ds, &base, 0)?;
                }
            }
        }
        Ok(())
    }

    /// PCRE2's check of every `@rx` pattern read (see `operators::deferred`), on two
    /// cores: the first bad one in the files' order fails the load.
    fn check_patterns(&self) -> Result<(), Error> {
        let todo: Vec<(&Deferred, &Rule)> = self
            .items
            .iter()
            .filter_map(|it| match it {
                Item::Rule(r) => Some(r),
                Item::Marker(_) => None,
            })
            .flat_map(Rule::links)
            .filter_map(|l| Some((static_deferred(l.operator.as_ref())?, l)))
            .collect();
        let costs: Vec<usize> = todo.iter().map(|(d, _)| d.cost()).collect();
        let checked = crate::prebuild::on_two_cores(&costs, |i| todo[i].0.check());
        match checked.into_iter().zip(&todo).find_map(|((r, _), (_, l))| r.err().map(|e| (e, l))) {
            Some((e, l)) => Err(Error::new(l.file.as_ref(), l.line, e)),
            None => Ok(()),
        }
    }

    fn file(&mut self, path: &Path, from: Option<&Directive>, depth: usize) -> Result<(), Error> {
        let text = self.inputs.get_mut().read(path).map_err(|e| match from {
            Some(d) => err(d, format!("cannot read {}: {e}", path.display())),
            None => Error::new(path, 0, format!("cannot read rule file: {e}")),
        })?;
        let text = String::from_utf8_lossy(&text);
        let file: Arc<Path> = Arc::from(path);
        let mut dialect = self.config.dialect;
        let ds = parser::parse_dialect(&text, &file, 1, &mut dialect)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        self.directives(ds, &base, depth)
    }

    fn directives(&mut self, ds: Vec<Directive>, base: &Path, depth: usize) -> Result<(), Error> {
        for d in ds {
            self.directive(&d, base, depth)?;
        }
        Ok(())
    }

    fn directive(&mut self, d: &Directive, base: &Path, depth: usize) -> Result<(), Error> {
        let name = d.name.to_ascii_lowercase();
        // Anything but a SecRule closes an open chain.
        // A chain left open never matches (ModSecurity accepts it the same way).
        if name != "secrule" {
            if let Some(p) = self.pending.take() {
                self.items.push(Item::Rule(p.rule));
            }
        }
        let cfg = &mut self.config;
        match name.as_str() {
            "include" => {
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(err(d, "Include nested too deeply (a cycle?)"));
                }
                let pat = one_arg(d)?;
                let paths = self
                    .inputs
                    .get_mut()
                    .include_paths(pat, base)
                    .map_err(|e| err(d, format!("bad Include pattern '{pat}': {e}")))?;
                for p in paths {
                    self.file(&p, Some(d), depth + 1)?;
                }
            }
            "secruleengine" => cfg.engine = ctl::engine_mode(one_arg(d)?).map_err(|e| err(d, e))?,
            "secrequestbodyaccess" => cfg.request_body_access = Some(on_off(d)?),
            "secresponsebodyaccess" => cfg.response_body_access = on_off(d)?,
            "secrequestbodylimit" => cfg.request_body_limit = number(d)? as usize,
            "secrequestbodynofileslimit" => cfg.request_body_no_files_limit = Some(number(d)? as usize),
            "secrequestbodylimitaction" => cfg.request_body_limit_action = limit_action(d)?,
            "secresponsebodylimit" => cfg.response_body_limit = number(d)? as usize,
            "secresponsebodylimitaction" => cfg.response_body_limit_action = limit_action(d)?,
            "secresponsebodymimetype" => {
                cfg.response_body_mime_types.extend(d.args.iter().map(|s| s.to_ascii_lowercase()))
            }
            "secresponsebodymimetypesclear" => cfg.response_body_mime_types.clear(),
            "secargumentslimit" => cfg.arguments_limit = number(d)? as usize,
            "secrequestbodyjsondepthlimit" => cfg.json_depth_limit = number(d)? as usize,
            "secuploadfilelimit" => cfg.upload_file_limit = number(d)? as usize,
            "secpcrematchlimit" => cfg.pcre_match_limit = number(d)?,
            "secpcrematchlimitrecursion" => cfg.pcre_match_limit_recursion = number(d)?,
            "secargumentseparator" => {
                let a = one_arg(d)?;
                match a.as_bytes() {
                    [b] => cfg.argument_separator = *b,
                    _ => return Err(err(d, format!("SecArgumentSeparator takes one character, got '{a}'"))),
                }
            }
            "seccomponentsignature" => cfg.component_signatures.push(one_arg(d)?.to_string()),
            "secwebappid" => cfg.web_app_id = one_arg(d)?.to_string(),
            "wardcompatibility" => {
                let v = one_arg(d)?;
                cfg.dialect = Dialect::parse(v).ok_or_else(|| {
                    err(d, format!("WardCompatibility: expected ModSecurity2 or ModSecurity3, got '{v}'"))
                })?;
            }
            "secauditengine" => cfg.audit.engine = audit::AuditEngine::parse(one_arg(d)?).map_err(|e| err(d, e))?,
            "secauditlog" => cfg.audit.log = Some(PathBuf::from(one_arg(d)?)),
            "secauditlogparts" => cfg.audit.parts = audit::Parts::parse(one_arg(d)?).map_err(|e| err(d, e))?,
            "secauditlogformat" => cfg.audit.format = audit::AuditFormat::parse(one_arg(d)?).map_err(|e| err(d, e))?,
            "secauditlogtype" => cfg.audit.log_type = audit::AuditLogType::parse(one_arg(d)?).map_err(|e| err(d, e))?,
            "secauditlogrelevantstatus" => {
                cfg.audit.relevant_status = Some(audit::RelevantStatus::new(one_arg(d)?).map_err(|e| err(d, e))?)
            }
            "secauditlogstoragedir" => cfg.audit.storage_dir = Some(PathBuf::from(one_arg(d)?)),
            "secauditlogfilemode" => cfg.audit.file_mode = audit::parse_mode(one_arg(d)?).map_err(|e| err(d, e))?,
            "secauditlogdirmode" => cfg.audit.dir_mode = audit::parse_mode(one_arg(d)?).map_err(|e| err(d, e))?,
            // Accepted; without effect in Ward (documented in README).
            "sectmpdir"
            | "secdatadir"
            | "secuploaddir"
            | "secuploadfilemode"
            | "secuploadkeepfiles"
            | "sectmpsaveuploadedfiles"
            | "secunicodemapfile"
            | "seccollectiontimeout"
            | "secdebuglog"
            | "secdebugloglevel"
            | "secstatusengine"
            | "secserversignature"
            | "seccookieformat"
            | "secauditlog2"
            | "secrequestbodyinmemorylimit"
            | "secxmlexternalentity"
            | "secconnengine"
            | "secgeolookupdb"
            | "sechttpblkey"
            | "secremoterules"
            | "secremoterulesfailaction"
            | "secruleperftime"
            | "secsensorid"
            | "secconnreadstatelimit"
            | "secconnwritestatelimit"
            | "seccachetransformations"
            | "secchrootdir"
            | "secinterceptonerror"
            | "secstreaminbodyinspection"
            | "secstreamoutbodyinspection"
            | "secunicodecodepage"
            | "sechashengine"
            | "sechashkey"
            | "sechashparam"
            | "sechashmethodrx"
            | "sechashmethodpm"
            | "secauditlogprefix" => {}
            "secdefaultaction" => {
                let a = Actions::parse(&split_actions(one_arg(d)?).map_err(|e| err(d, e))?).map_err(|e| err(d, e))?;
                let phase = a.phase.ok_or_else(|| err(d, "SecDefaultAction must specify a phase"))?;
                if matches!(a.disruptive, None | Some(DisruptiveAction::Block)) {
                    return Err(err(d, "SecDefaultAction must specify a disruptive action"));
                }
                if a.id.is_some()
                    || a.msg.is_some()
                    || a.logdata.is_some()
                    || a.chain
                    || a.skip_after.is_some()
                    || a.skip > 0
                    || a.rev.is_some()
                    || a.ver.is_some()
                {
                    return Err(err(
                        d,
                        "SecDefaultAction may not carry id, msg, logdata, rev, ver, chain or skip actions",
                    ));
                }
                if self.default_set[usize::from(phase - 1)] {
                    return Err(err(d, format!("SecDefaultAction for phase {phase} is already set")));
                }
                self.default_set[usize::from(phase - 1)] = true;
                self.defaults[usize::from(phase - 1)] = a;
            }
            "secmarker" => self.items.push(Item::Marker(one_arg(d)?.to_string())),
            "secaction" => {
                let acts = one_arg(d)?;
                self.rule(d, None, None, acts)?;
            }
            "secrule" => {
                let (vars, op, acts) = match d.args.as_slice() {
                    [v, o] => (v, o, ""),
                    [v, o, a] => (v, o, a.as_str()),
                    _ => {
                        return Err(err(
                            d,
                            format!("SecRule takes VARIABLES OPERATOR [ACTIONS], got {} arguments", d.args.len()),
                        ))
                    }
                };
                self.rule(d, Some(vars), Some(op), acts)?;
            }
            "secruleremovebyid" => {
                for a in &d.args {
                    let r = ctl::IdRange::parse(a).map_err(|e| err(d, e))?;
                    self.exceptions.remove_ids.push((r.0, r.1));
                }
            }
            "secruleremovebytag" => self.exceptions.remove_tags.extend(d.args.iter().cloned()),
            "secruleremovebymsg" => self.exceptions.remove_msgs.extend(d.args.iter().cloned()),
            "secruleupdatetargetbyid" | "secruleupdatetargetbytag" | "secruleupdatetargetbymsg" => {
                let (sel, targets) = match d.args.as_slice() {
                    [s, t] => (s, t),
                    [s, t, _replace] => (s, t),
                    _ => return Err(err(d, format!("{} takes a rule selector and variables", d.name))),
                };
                let selector = match name.as_str() {
                    "secruleupdatetargetbyid" => RuleSelector::Ids(
                        sel.split([',', ' '])
                            .filter(|s| !s.is_empty())
                            .map(|s| ctl::IdRange::parse(s).map(|r| (r.0, r.1)))
                            .collect::<Result<_, _>>()
                            .map_err(|e| err(d, e))?,
                    ),
                    "secruleupdatetargetbytag" => RuleSelector::Tag(sel.clone()),
                    _ => RuleSelector::Msg(sel.clone()),
                };
                split_variables(targets).map_err(|e| err(d, e))?;
                self.exceptions.update_targets.push((selector, targets.clone(), d.file.clone(), d.line));
            }
            "secruleupdateactionbyid" => {
                let (id, acts) = match d.args.as_slice() {
                    [i, a] => (i, a),
                    _ => return Err(err(d, "SecRuleUpdateActionById takes a rule id and actions")),
                };
                let id: u64 = id
                    .split(':')
                    .next()
                    .unwrap_or("")
                    .parse()
                    .map_err(|_| err(d, format!("invalid rule id '{id}'")))?;
                self.exceptions.update_actions.push((id, acts.clone(), d.file.clone(), d.line));
            }
            "secrulescript" => return Err(err(d, "SecRuleScript (Lua) is not supported by Ward")),
            _ => return Err(err(d, format!("unknown directive '{}'", d.name))),
        }
        Ok(())
    }

    fn rule(&mut self, d: &Directive, vars: Option<&String>, op: Option<&String>, acts: &str) -> Result<(), Error> {
        let actions = Actions::parse(&split_actions(acts).map_err(|e| err(d, e))?).map_err(|e| err(d, e))?;
        let targets = match vars {
            Some(v) => compile_targets(&split_variables(v).map_err(|e| err(d, e))?).map_err(|e| err(d, e))?,
            None => Vec::new(),
        };
        let base = d.file.parent().map(Path::to_path_buf).unwrap_or_default();
        let operator = match op {
            Some(o) => {
                let ctx = OperatorContext { base_dir: &base, inputs: Some(&self.inputs), defer_patterns: true };
                Some(RuleOperator::new(o, &ctx).map_err(|e| err(d, e))?)
            }
            None => None,
        };
        let is_link = self.pending.as_ref().is_some_and(|p| p.open_chain);
        let phase =
            if is_link { self.pending.as_ref().map(|p| p.rule.phase).unwrap_or(2) } else { actions.phase.unwrap_or(2) };
        let id = if is_link {
            self.pending.as_ref().map(|p| p.rule.id).unwrap_or(0)
        } else {
            // This rule's bad pattern comes first, as when it was checked on creation.
            let fail = |e: &str| match static_deferred(operator.as_ref()).map(Deferred::check) {
                Some(Err(bad)) => err(d, bad),
                _ => err(d, e),
            };
            let id = match (actions.id, op) {
                (Some(id), _) => id,
                // ModSecurity accepts SecAction without an id.
                (None, None) => 0,
                (None, Some(_)) => return Err(fail("rule has no id (every SecRule needs id:N)")),
            };
            if id != 0 && !self.ids.insert(id) {
                return Err(fail(&format!("rule id {id} is duplicated")));
            }
            id
        };
        let def = &self.defaults[usize::from(phase - 1)];
        let mut transforms = if actions.t_none { Vec::new() } else { def.transforms.clone() };
        transforms.extend(actions.transforms.iter().cloned());
        let mut actions = actions;
        if actions.log.is_none() {
            actions.log = def.log;
        }
        if actions.auditlog.is_none() {
            actions.auditlog = def.auditlog;
        }
        if actions.save_message.is_none() {
            actions.save_message = def.save_message;
        }
        let chain = actions.chain;
        let rule = Rule {
            id,
            phase,
            file: d.file.clone(),
            line: d.line,
            targets,
            operator,
            actions,
            transforms,
            transform_key: 0,
            chain: None,
            dangling_chain: chain,
            gate: None,
            stage_gates: Vec::new(),
            stage_unions: Vec::new(),
            stage_empty_ends: 0,
            memo: None,
        };
        if is_link {
            let p = self.pending.as_mut().expect("checked above");
            let mut last = &mut p.rule;
            while last.chain.is_some() {
                last = last.chain.as_mut().expect("checked");
            }
            last.dangling_chain = false;
            last.chain = Some(Box::new(rule));
            p.open_chain = chain;
        } else {
            if let Some(p) = self.pending.take() {
                self.items.push(Item::Rule(p.rule));
            }
            self.pending = Some(Pending { rule, open_chain: chain });
        }
        Ok(())
    }

    fn finish(mut self) -> Result<RuleSet, Error> {
        // Action updates first (they may change tags/msg used by the selectors below).
        for (id, acts, file, line) in std::mem::take(&mut self.exceptions.update_actions) {
            let upd = Actions::parse(&split_actions(&acts).map_err(|e| Error::new(file.as_ref(), line, e))?)
                .map_err(|e| Error::new(file.as_ref(), line, e))?;
            let Some(rule) = self.items.iter_mut().find_map(|i| match i {
                Item::Rule(r) if r.id == id => Some(r),
                _ => None,
            }) else {
                return Err(Error::new(file.as_ref(), line, format!("SecRuleUpdateActionById: no rule with id {id}")));
            };
            apply_action_update(rule, upd);
        }
        let ex = &self.exceptions;
        let removed = |r: &Rule| {
            ex.remove_ids.iter().any(|(a, b)| (*a..=*b).contains(&r.id))
                || r.actions.tags.iter().any(|t| ex.remove_tags.iter().any(|x| x == t))
                || ex.remove_msgs.iter().any(|m| r.actions.msg.as_ref().is_some_and(|msg| msg_text(msg) == *m))
        };
        let mut rules: Vec<Item> = Vec::new();
        for it in self.items {
            match it {
                Item::Rule(r) if removed(&r) => {}
                other => rules.push(other),
            }
        }
        for (sel, targets, file, line) in &ex.update_targets {
            let items = split_variables(targets).map_err(|e| Error::new(file.as_ref(), *line, e))?;
            let (extra, excl) = split_targets(&items).map_err(|e| Error::new(file.as_ref(), *line, e))?;
            for it in rules.iter_mut() {
                let Item::Rule(r) = it else { continue };
                let hit = match sel {
                    RuleSelector::Ids(ids) => ids.iter().any(|(a, b)| (*a..=*b).contains(&r.id)),
                    RuleSelector::Tag(t) => r.actions.tags.iter().any(|x| x == t),
                    RuleSelector::Msg(m) => r.actions.msg.as_ref().is_some_and(|msg| msg_text(msg) == *m),
                };
                if hit {
                    update_targets(r, &extra, &excl);
                }
            }
        }
        // Number each distinct transformation list (after action updates changed some) in
        // a prefix tree, so that lists sharing a prefix share its computation.
        let mut transforms = TransformTree::default();
        for it in rules.iter_mut() {
            let Item::Rule(r) = it else { continue };
            let mut link = Some(r);
            while let Some(l) = link {
                l.transform_key = transforms.key(&l.transforms);
                link = l.chain.as_deref_mut();
            }
        }
        // SecPcreMatchLimit*: rules global, wherever the directive stands (as in ModSecurity),
        // so applied once every directive is read.
        let limits = self.config.pcre_limits();
        if limits != Default::default() {
            for it in rules.iter_mut() {
                let Item::Rule(r) = it else { continue };
                let mut link = Some(r);
                while let Some(l) = link {
                    if let Some(RuleOperator { imp: OperatorImpl::Static(o), .. }) = &mut l.operator {
                        o.set_pcre_limits(limits).map_err(|e| Error::new(l.file.as_ref(), l.line, e))?;
                    }
                    link = l.chain.as_deref_mut();
                }
            }
        }
        // A memo slot per static, non-negated link (a transaction's per-value results).
        let mut memos = 0;
        for it in rules.iter_mut() {
            let Item::Rule(r) = it else { continue };
            let mut link = Some(r);
            while let Some(l) = link {
                if let Some(RuleOperator { imp: OperatorImpl::Static(_), negated: false, .. }) = &l.operator {
                    l.memo = Some(memos);
                    memos += 1;
                }
                link = l.chain.as_deref_mut();
            }
        }
        let mut stats = Stats::default();
        let mut phases: [Vec<Entry>; 5] = Default::default();
        for it in rules {
            match it {
                Item::Marker(m) => {
                    for p in phases.iter_mut() {
                        p.push(Entry::Marker(m.clone()));
                    }
                }
                Item::Rule(r) => {
                    stats.rules += 1;
                    phases[usize::from(r.phase - 1)].push(Entry::Rule { rule: r, skip_after_to: None });
                }
            }
        }
        for list in phases.iter_mut() {
            let markers: Vec<(usize, String)> = list
                .iter()
                .enumerate()
                .filter_map(|(i, e)| if let Entry::Marker(m) = e { Some((i, m.clone())) } else { None })
                .collect();
            let len = list.len();
            for (i, e) in list.iter_mut().enumerate() {
                if let Entry::Rule { rule, skip_after_to } = e {
                    if let Some(name) = &rule.actions.skip_after {
                        *skip_after_to =
                            Some(markers.iter().find(|(j, m)| *j > i && m == name).map(|(j, _)| j + 1).unwrap_or(len));
                    }
                }
            }
        }
        // The setup is folded and the walk plans made before the patterns are built: what
        // the plans reach is built now and gated, the rest waits for a request that needs
        // it (see `operators::deferred`).
        let (quick, quick_targets, quick_keys) = quick_records(&phases);
        let rs = RuleSet {
            config: self.config,
            phases,
            defaults: self.defaults,
            stats,
            gates: Vec::new(),
            gate_thin: Vec::new(),
            unions: Vec::new(),
            union_group: Vec::new(),
            union_groups: 0,
            combined: None,
            inputs: self.inputs.into_inner(),
            transforms,
            setup: None,
            quick,
            quick_targets,
            quick_keys,
            id: {
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            },
        };
        let mut rs = crate::transaction::with_setup(rs);
        let reached = crate::transaction::reached(&rs);
        crate::prebuild::build(
            rs.phases
                .iter()
                .zip(&reached)
                .flat_map(|(list, reached)| list.iter().zip(reached))
                .filter_map(|(e, &r)| match e {
                    Entry::Rule { rule, .. } if r => Some(rule),
                    _ => None,
                })
                .flat_map(|r| r.links())
                .filter_map(|l| match &l.operator {
                    Some(RuleOperator { imp: OperatorImpl::Static(o), .. }) => o.deferred(),
                    _ => None,
                })
                .collect(),
        );
        add_gates(&mut rs, &reached)?;
        let mut stats = std::mem::take(&mut rs.stats);
        for r in rs.rules() {
            for l in r.links() {
                match l.operator.as_ref().map(|op| &op.imp) {
                    Some(OperatorImpl::Static(o)) if o.unavailable().is_some() => {
                        stats.unavailable.extend(o.unavailable().map(|why| (r.id, why)));
                    }
                    Some(OperatorImpl::Static(o)) => match o.backend() {
                        Some("pcre2") => stats.regex_on_pcre2 += 1,
                        Some("deferred") => stats.regex_deferred += 1,
                        Some(_) => stats.regex_on_regex_crate += 1,
                        None => {}
                    },
                    Some(OperatorImpl::Dynamic(_)) => stats.dynamic_operators += 1,
                    None => {}
                }
            }
        }
        rs.stats = stats;
        Ok(rs)
    }
}

/// [`Rule::stage_empty_ends`] of a multiMatch link's stages; `refuses_empty(g, bit)`: the
/// gate's scan of an empty value lacks the bit.
fn stage_empty_ends(stages: &[(u32, u32, u32)], tree: &TransformTree, refuses_empty: impl Fn(u32, u32) -> bool) -> u64 {
    let mut ends = 0u64;
    // Walked from the last stage: whether every step after stage k keeps a value empty.
    let mut later_keep = true;
    for (k, &(key, g, bit)) in stages.iter().enumerate().rev() {
        if k < 64 && later_keep && refuses_empty(g, bit) {
            ends |= 1 << k;
        }
        // `length`, `md5`, `sha1`… fill an empty value.
        later_keep &= tree.node(key).keeps_empty;
    }
    ends
}

/// Prefilter gates for the links of `reached` rules: one per transformation list, a bit
/// per gated link. The others are never gated nor prepared: they run as they are, if a
/// request ever reaches them.
fn add_gates(rs: &mut RuleSet, reached: &[Vec<bool>; 5]) -> Result<(), Error> {
    let mut gates = crate::prefilter::GateBuilder::default();
    let (mut gated, mut gated_two) = (0, 0);
    // Per scan domain, the gated links that read it.
    let mut domain_links = vec![Vec::new(); crate::transaction::DOMAINS];
    let mut table = UnionTable::default();
    // Lists that change nearly every value (see the multiMatch stage unions below).
    let broad = crate::transformations::triggers::broad();
    for (list, reached) in rs.phases.iter_mut().zip(reached) {
        for (e, _) in list.iter_mut().zip(reached).filter(|(_, &r)| r) {
            let Entry::Rule { rule, .. } = e else { continue };
            let mut link = Some(rule);
            while let Some(l) = link {
                if let Some(op) = &l.operator {
                    let (lits, also) = match (&op.imp, op.negated) {
                        (OperatorImpl::Static(o), false) => {
                            let lits = o.required_literals();
                            let also = lits.as_ref().and_then(|_| o.also_required_literals());
                            gated_two += usize::from(also.is_some());
                            (lits, also)
                        }
                        _ => (None, None),
                    };
                    if let (Some(lits), true) = (&lits, l.actions.multi_match) {
                        // A multiMatch link runs on each stage of its transformations: a bit
                        // in the gate of each stage's prefix of the list, read value by value.
                        let mut keys = vec![l.transform_key];
                        while let Some(parent) = rs.transforms.node(keys[keys.len() - 1]).parent {
                            keys.push(parent);
                        }
                        for &key in keys.iter().rev() {
                            let (g, bit) = gates.add(key, lits.clone(), also.clone());
                            l.stage_gates.push((key, g, bit));
                            for t in &l.targets {
                                for &d in crate::transaction::var_domains(t.var) {
                                    domain_links[d].push((g, bit));
                                }
                            }
                        }
                        // Each target's union per stage: a target none of whose stage
                        // unions has the link's bit is passed over whole. Not where a
                        // stage changes nearly every value (`base64Decode`): its union would
                        // transform and scan each, where walking the values skips the
                        // stages that repeat the one before.
                        let narrow =
                            l.stage_gates.iter().all(|&(key, ..)| rs.transforms.node(key).changes_on & broad == 0);
                        for t in l.targets.iter().filter(|_| narrow) {
                            for &(_, g, _) in &l.stage_gates {
                                l.stage_unions.push(table.slot(t, g));
                            }
                        }
                        gated += 1;
                    } else if let Some(lits) = lits {
                        let gate = gates.add(l.transform_key, lits, also);
                        l.gate = Some(gate);
                        gated += 1;
                        for t in &mut l.targets {
                            for &d in crate::transaction::var_domains(t.var) {
                                domain_links[d].push(gate);
                            }
                            t.union = table.slot(t, gate.0);
                        }
                    }
                    if let OperatorImpl::Static(o) = &op.imp {
                        o.prepare(l.gate.is_some()).map_err(|e| Error::new(l.file.as_ref(), l.line, e))?;
                    }
                }
                link = l.chain.as_deref_mut();
            }
        }
    }
    let (gates, combined) = gates.build_all(&domain_links).map_err(|e| Error::new("<rule set>", 0, e))?;
    rs.gate_thin = thin_gates(gates.len(), &domain_links);
    rs.gates = gates;
    rs.combined = Some(combined);
    // Where an empty value ends a multiMatch walk: the built gates say which refuse one.
    let RuleSet { phases, gates, transforms, .. } = &mut *rs;
    for e in phases.iter_mut().flatten() {
        let Entry::Rule { rule, .. } = e else { continue };
        let mut link = Some(rule);
        while let Some(l) = link {
            l.stage_empty_ends = stage_empty_ends(&l.stage_gates, transforms, |g, bit| {
                !crate::prefilter::has(gates[g as usize].empty_scan(), bit)
            });
            link = l.chain.as_deref_mut();
        }
    }
    rs.union_groups = table.groups.len();
    rs.unions = table.unions;
    rs.union_group = table.union_group;
    rs.stats.gated_links = gated;
    rs.stats.gated_on_two_sets = gated_two;
    // The quick-skip records read the gates; the plans keep copies of them.
    (rs.quick, rs.quick_targets, rs.quick_keys) = quick_records(&rs.phases);
    if let Some(plans) = rs.setup.as_mut().and_then(|s| s.plans.as_mut()) {
        for (plan, quick) in plans.iter_mut().zip(&rs.quick) {
            for step in &mut plan.steps {
                step.quick = quick[step.entry as usize];
            }
        }
    }
    Ok(())
}

/// Per gate, the scan domains (bits) that at most [`crate::ruleset::THIN_LINKS`] of its
/// links read (`domain_links`: per domain, the (gate, bit) of each link reading it).
fn thin_gates(gates: usize, domain_links: &[Vec<(u32, u32)>]) -> Vec<u64> {
    let mut thin = vec![0u64; gates];
    for (d, links) in domain_links.iter().enumerate().take(64) {
        let mut count = vec![0usize; gates];
        links.iter().for_each(|&(g, _)| count[g as usize] += 1);
        for (g, &n) in count.iter().enumerate() {
            if (1..=crate::ruleset::THIN_LINKS).contains(&n) {
                thin[g] |= 1 << d;
            }
        }
    }
    thin
}

/// The unions of gate bits a transaction computes (`RuleSet::unions`), assigned at load.
#[derive(Default)]
struct UnionTable {
    /// (variable, key, gate) → its union's index in a transaction's table.
    slots: rustc_hash::FxHashMap<(Var, Option<Vec<u8>>, u32), u32>,
    unions: Vec<(Var, Selector)>,
    /// (variable, key) → its value group: unions over the same values share their list.
    groups: rustc_hash::FxHashMap<(Var, Option<Vec<u8>>), u32>,
    union_group: Vec<u32>,
}

impl UnionTable {
    /// Target `t`'s union of gate `g`, made on first use; [`crate::variables::NO_UNION`] for
    /// a target that has none.
    fn slot(&mut self, t: &crate::variables::Target, g: u32) -> u32 {
        if !crate::transaction::has_union(t) {
            return crate::variables::NO_UNION;
        }
        let key = match &t.selector {
            Selector::Key(k) => Some(k.clone()),
            _ => None,
        };
        let UnionTable { slots, unions, groups, union_group } = self;
        *slots.entry((t.var, key.clone(), g)).or_insert_with(|| {
            let n = groups.len() as u32;
            union_group.push(*groups.entry((t.var, key.clone())).or_insert(n));
            unions.push((t.var, key.map_or(Selector::All, Selector::Key)));
            unions.len() as u32 - 1
        })
    }
}

type QuickRecords = ([Vec<crate::ruleset::Quick>; 5], Vec<(u32, u16)>, Vec<(Var, Box<[u8]>)>);

/// Each entry's quick-skip record (`RuleSet::quick`, `quick_targets`, `quick_keys`).
fn quick_records(phases: &[Vec<Entry>; 5]) -> QuickRecords {
    let (mut targets, mut keys) = (Vec::new(), Vec::new());
    let quick = phases.each_ref().map(|list| {
        list.iter()
            .map(|e| match e {
                Entry::Rule { rule, .. } => crate::ruleset::Quick::of(rule, &mut targets, &mut keys),
                Entry::Marker(_) => Default::default(),
            })
            .collect()
    });
    (quick, targets, keys)
}

fn msg_text(m: &crate::macros::Macro) -> String {
    struct NoVars;
    impl crate::macros::MacroResolver for NoVars {
        fn resolve(&self, _: &str, _: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
            None
        }
    }
    String::from_utf8_lossy(&m.expand(&NoVars)).into_owned()
}

fn update_targets(r: &mut Rule, extra: &[Target], excl: &[(Var, Selector)]) {
    attach_exclusions(&mut r.targets, excl);
    for t in extra {
        if !r.targets.iter().any(|x| x.var == t.var && x.selector.same_as(&t.selector) && x.count == t.count) {
            r.targets.push(t.clone());
        }
    }
}

fn apply_action_update(r: &mut Rule, u: Actions) {
    /// An action given in the update replaces the rule's own.
    fn replace<T>(slot: &mut Option<T>, new: Option<T>) {
        if new.is_some() {
            *slot = new;
        }
    }
    let a = &mut r.actions;
    replace(&mut a.disruptive, u.disruptive);
    replace(&mut a.msg, u.msg);
    replace(&mut a.logdata, u.logdata);
    replace(&mut a.severity, u.severity);
    replace(&mut a.status, u.status);
    replace(&mut a.log, u.log);
    replace(&mut a.auditlog, u.auditlog);
    replace(&mut a.save_message, u.save_message);
    a.tags.extend(u.tags);
    a.setvars.extend(u.setvars);
    a.ctls.extend(u.ctls);
    if u.t_none {
        r.transforms.clear();
    }
    r.transforms.extend(u.transforms);
}
