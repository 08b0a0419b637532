//! The compiled, immutable rule set shared by every transaction (and every nginx worker).

use std::path::PathBuf;

use crate::actions::{Actions, DisruptiveAction};
use crate::error::Error;
use crate::parser::Dialect;
use crate::rule::Rule;
use crate::variables::{Selector, Var};

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

impl EngineMode {
    pub fn name(self) -> &'static str {
        match self {
            EngineMode::On => "On",
            EngineMode::Off => "Off",
            EngineMode::DetectionOnly => "DetectionOnly",
        }
    }
}

/// What to do when a body exceeds its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitAction {
    Reject,
    ProcessPartial,
}

pub use crate::audit::AuditConfig;

/// Engine configuration from Sec* directives.
#[derive(Debug, Clone)]
pub struct Config {
    pub engine: EngineMode,
    /// `None` (never set) processes bodies, as ModSecurity v3 does; only an explicit Off skips phase 2.
    pub request_body_access: Option<bool>,
    pub response_body_access: bool,
    pub request_body_limit: usize,
    pub request_body_no_files_limit: Option<usize>,
    pub request_body_limit_action: LimitAction,
    pub response_body_limit: usize,
    pub response_body_limit_action: LimitAction,
    pub response_body_mime_types: Vec<String>,
    pub arguments_limit: usize,
    pub json_depth_limit: usize,
    pub upload_file_limit: usize,
    /// `SecPcreMatchLimit` (0: not set).
    pub pcre_match_limit: u64,
    /// `SecPcreMatchLimitRecursion` (0: not set). ModSecurity v3 accepts and ignores it;
    /// Ward passes it to PCRE2 as its depth limit.
    pub pcre_match_limit_recursion: u64,
    pub argument_separator: u8,
    pub audit: AuditConfig,
    pub component_signatures: Vec<String>,
    pub web_app_id: String,
    /// `WardCompatibility`: whose semantics to follow where ModSecurity v2 and v3 differ.
    pub dialect: Dialect,
}

impl Default for Config {
    fn default() -> Self {
        // ModSecurity v3's built-in defaults.
        Config {
            engine: EngineMode::Off,
            request_body_access: None,
            response_body_access: false,
            request_body_limit: 134_217_728,
            request_body_no_files_limit: None,
            request_body_limit_action: LimitAction::Reject,
            response_body_limit: 524_288,
            response_body_limit_action: LimitAction::Reject,
            response_body_mime_types: vec!["text/plain".into(), "text/html".into()],
            arguments_limit: 1000,
            json_depth_limit: 10_000,
            upload_file_limit: 0,
            pcre_match_limit: 0,
            pcre_match_limit_recursion: 0,
            argument_separator: b'&',
            audit: AuditConfig::default(),
            component_signatures: Vec::new(),
            web_app_id: "default".into(),
            dialect: Dialect::ModSecurity3,
        }
    }
}

impl Config {
    /// The PCRE2 limits of `@rx`/`@rxGlobal` (see [`crate::operators::pattern::PcreLimits`]).
    pub fn pcre_limits(&self) -> crate::operators::pattern::PcreLimits {
        let set = |n: u64| (n > 0).then(|| u32::try_from(n).unwrap_or(u32::MAX));
        crate::operators::pattern::PcreLimits {
            match_limit: set(self.pcre_match_limit),
            depth_limit: set(self.pcre_match_limit_recursion),
        }
    }
}

/// A rule or a `SecMarker` in a phase's list.
#[derive(Debug)]
pub enum Entry {
    Rule {
        rule: Rule,
        /// Index of the entry after the `skipAfter` marker (end of phase when absent).
        skip_after_to: Option<usize>,
    },
    Marker(String),
}

/// A compiled rule set.
#[derive(Debug, Default)]
pub struct RuleSet {
    pub(crate) config: Config,
    /// Entries of phases 1..=5 at index 0..=4.
    pub(crate) phases: [Vec<Entry>; 5],
    /// SecDefaultAction per phase (for `block`).
    pub(crate) defaults: [Actions; 5],
    pub(crate) stats: Stats,
    /// Prefilter gates, indexed by `Rule::gate`.
    pub(crate) gates: Vec<crate::prefilter::Gate>,
    /// Per gate, the scan domains (bits) where at most [`THIN_LINKS`] links read it: a long
    /// value of such a domain is not scanned by the gate (see `TransformCache::scan`).
    pub(crate) gate_thin: Vec<u64>,
    /// The (variable, key or all) of each union of gate bits targets read, by
    /// `Target::union` (one per variable, key and gate).
    pub(crate) unions: Vec<(crate::variables::Var, crate::variables::Selector)>,
    /// Each union's value group: unions of one (variable, key) over different gates read
    /// the same values, listed once per phase (see `Unions`).
    pub(crate) union_group: Vec<u32>,
    pub(crate) union_groups: usize,
    /// All gates in one automaton, for values a transformation list leaves unchanged (per
    /// scan domain: only the literals of rules reading it).
    pub(crate) combined: Option<crate::prefilter::DomainScans>,
    /// What it was loaded from.
    pub(crate) inputs: crate::inputs::Inputs,
    /// Every rule link's transformation list, by `Rule::transform_key`.
    pub(crate) transforms: crate::transformations::tree::TransformTree,
    /// Phase 1's setup rules, evaluated at load (transaction/setup.rs).
    pub(crate) setup: Option<crate::transaction::setup::Setup>,
    /// Unique per compiled rule set in this process (results kept across transactions
    /// belong to one rule set; an address could be reused after a reload).
    pub(crate) id: u64,
    /// Per phase, beside each entry: what decides a gated rule's miss without reading it.
    pub(crate) quick: [Vec<Quick>; 5],
    /// The targets of every [`Quick`]: (union slot, the variable's `empty_bit` or 0).
    pub(crate) quick_targets: Vec<(u32, u16)>,
    /// The keyed targets of every emptiable [`Quick`] (`REQUEST_HEADERS:Content-Length`).
    pub(crate) quick_keys: Vec<(Var, Box<[u8]>)>,
}

/// A gated rule whose every target reads a per-phase union of gate bits: when none of
/// those unions has its bit, the rule cannot match and is passed over without touching
/// the rule itself (most of `GET /`'s evaluations; the rule and its targets are cold
/// cache lines between requests in a worker).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Quick {
    pub(crate) gate: u32,
    pub(crate) bit: u32,
    pub(crate) transform_key: u32,
    /// `quick_targets[start..start + len]`; `len == 0`: no quick decision.
    pub(crate) start: u32,
    pub(crate) len: u32,
    /// Every target is a variable that can be known to be empty (args, cookies, files…),
    /// these (`State::empty_bit`), or one key of a collection, these
    /// (`quick_keys[keys..keys + keys_len]`): when all are empty or absent the rule has
    /// nothing to match.
    pub(crate) emptiable: bool,
    pub(crate) empty_bits: u16,
    pub(crate) keys_len: u16,
    pub(crate) keys: u32,
}

impl Quick {
    /// For the first link of a chain: its empty-target bits, and its gate's record when
    /// it qualifies (`len == 0` otherwise).
    pub(crate) fn of(rule: &Rule, targets: &mut Vec<(u32, u16)>, keys: &mut Vec<(Var, Box<[u8]>)>) -> Quick {
        let (mut bits, mut keyed) = (Some(0u16), Vec::new());
        for t in &rule.targets {
            match (t.count, crate::transaction::empty_bit(t.var), &t.selector) {
                (false, Some(b), _) => bits = bits.map(|m| m | b),
                (count, None, Selector::Key(k))
                    if crate::transaction::absence_known(t.var) && (!count || zero_never_matches(rule)) =>
                {
                    keyed.push((t.var, k))
                }
                _ => bits = None,
            }
        }
        let empty = match bits {
            Some(b) if rule.operator.is_some() && keyed.len() <= usize::from(u16::MAX) => {
                let at = keys.len() as u32;
                keys.extend(keyed.iter().map(|&(v, k)| (v, k.clone().into_boxed_slice())));
                Quick { emptiable: true, empty_bits: b, keys: at, keys_len: keyed.len() as u16, ..Quick::default() }
            }
            _ => Quick::default(),
        };
        let Some((gate, bit)) = rule.gate else { return empty };
        // A target without a union still qualifies: it decides when known to be empty.
        let counts = rule.targets.iter().any(|t| t.count);
        if rule.operator.is_none() || rule.dangling_chain || rule.targets.is_empty() || counts {
            return empty;
        }
        let start = targets.len() as u32;
        targets.extend(rule.targets.iter().map(|t| (t.union, crate::transaction::empty_bit(t.var).unwrap_or(0))));
        Quick { gate, bit, transform_key: rule.transform_key, start, len: rule.targets.len() as u32, ..empty }
    }
}

/// Whether a count of an absent key (`&REQUEST_HEADERS:Transfer-Encoding "!@eq 0"`), the
/// one value `0`, cannot match the rule's first link: a pure, static operator that says so
/// at load, with no transformation that could make something else of `0`.
fn zero_never_matches(rule: &Rule) -> bool {
    let Some(op) = &rule.operator else { return false };
    let crate::rule::OperatorImpl::Static(imp) = &op.imp else { return false };
    rule.transforms.is_empty() && crate::transaction::pure_operator(op) && imp.evaluate(b"0", None) == op.negated
}

/// Load-time figures, for the debug log.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub rules: usize,
    pub regex_on_regex_crate: usize,
    pub regex_on_pcre2: usize,
    /// `@rx` patterns of rules no walk plan reaches, built when a request first needs one.
    pub regex_deferred: usize,
    pub dynamic_operators: usize,
    /// Rule links the prefilter can skip.
    pub gated_links: usize,
    /// Of those, the links it gates on two literal sets (one of each needed).
    pub gated_on_two_sets: usize,
    /// Phase-1 setup rules evaluated at load instead of per request.
    pub folded_setup_rules: usize,
    /// Rules whose result was decided at load (they read only TX set up once).
    pub decided_at_load: usize,
    /// Rules whose operator Ward cannot evaluate (they never match): (id, why).
    pub unavailable: Vec<(u64, &'static str)>,
}

impl RuleSet {
    /// Parses and compiles the sources in order. Nothing is half-loaded: any error
    /// (with file:line) fails the whole set.
    pub fn compile(sources: &[RuleSource]) -> Result<RuleSet, Error> {
        crate::compile::compile(sources)
    }

    /// The configured `SecRuleEngine` (Off when never set, as in ModSecurity).
    pub fn engine_mode(&self) -> EngineMode {
        self.config.engine
    }

    /// The files it was loaded from: when [`Inputs::unchanged`](crate::inputs::Inputs::unchanged),
    /// compiling the same sources again gives the same set.
    pub fn inputs(&self) -> &crate::inputs::Inputs {
        &self.inputs
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The same set with every phase-1 setup rule evaluated per request again (for tests
    /// and measurements of the folding; see transaction/setup.rs).
    #[doc(hidden)]
    pub fn without_setup_folding(mut self) -> Self {
        self.setup = None;
        self.stats.folded_setup_rules = 0;
        self.stats.decided_at_load = 0;
        self
    }

    /// The same set walking every entry of every phase, as without plans (for tests and
    /// measurements of transaction/plan.rs).
    #[doc(hidden)]
    pub fn without_plans(mut self) -> Self {
        if let Some(s) = &mut self.setup {
            s.plans = None;
        }
        self
    }

    /// One line naming the rules that can never match in Ward and why, if any.
    pub fn unavailable_summary(&self) -> Option<String> {
        let u = &self.stats.unavailable;
        if u.is_empty() {
            return None;
        }
        let mut whys: Vec<&str> = u.iter().map(|(_, w)| *w).collect();
        whys.dedup();
        let ids: Vec<String> = u.iter().map(|(id, _)| id.to_string()).collect();
        Some(format!(
            "{} rule(s) use operators Ward cannot evaluate and never match: {} (rules {})",
            u.len(),
            whys.join(", "),
            ids.join(", ")
        ))
    }

    /// Every rule (chain starters), in phase order.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.phases.iter().flatten().filter_map(|e| match e {
            Entry::Rule { rule, .. } => Some(rule),
            Entry::Marker(_) => None,
        })
    }

    /// Whether the prefilter lets `value` (already transformed as `link` does) reach the
    /// operator of `link`, one of this set's rule links; always true for ungated links.
    /// Both scans a transaction uses (the link's gate, and all gates at once for unchanged
    /// values) must let it through.
    pub fn gate_passes(&self, link: &Rule, value: &[u8]) -> bool {
        link.gate.is_none_or(|(g, bit)| self.passes(link, g, bit, value))
    }

    /// [`Self::gate_passes`] for stage `stage` of a gated `multiMatch` link (0: the raw
    /// value, k: after its first k transformations).
    pub fn stage_gate_passes(&self, link: &Rule, stage: usize, value: &[u8]) -> bool {
        link.stage_gates.get(stage).is_none_or(|&(_, g, bit)| self.passes(link, g, bit, value))
    }

    fn passes(&self, link: &Rule, g: u32, bit: u32, value: &[u8]) -> bool {
        let own = self.gates.get(g as usize).is_some_and(|gate| crate::prefilter::has(&gate.scan(value), bit));
        // The full automaton and that of every domain the link reads.
        let all = self.combined.as_ref().is_none_or(|c| {
            let domains = link.targets.iter().flat_map(|t| crate::transaction::var_domains(t.var));
            std::iter::once(c.all()).chain(domains.map(|&d| c.get(d))).all(|c| c.has(&c.scan(value), g, bit))
        });
        own && all
    }

    /// The disruptive action and status `block` stands for in `phase`.
    pub(crate) fn block_action(&self, phase: u8) -> (Option<&DisruptiveAction>, Option<u16>) {
        let d = &self.defaults[usize::from(phase.clamp(1, 5) - 1)];
        (d.disruptive.as_ref(), d.status)
    }
}

/// Links of a gate reading a scan domain up to which the gate does not scan that domain's
/// long values: its links' operators read them faster than its automaton walks them.
pub(crate) const THIN_LINKS: usize = 2;
