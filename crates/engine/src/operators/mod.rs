//! Operator registry (`@name param`).
//!
//! An operator is built once at rule-compile time (all parsing and compiling of its
//! parameter happens in its constructor) and then only evaluates. Each operator lives in
//! its own file with ModSecurity v3's semantics and its table tests; [`create`] finds it
//! by name in [`REGISTRY`].

use std::cell::RefCell;
use std::fmt::Debug;
use std::path::Path;

use crate::inputs::Inputs;

mod begins_with;
mod contains;
mod contains_word;
mod data_file;
pub mod deferred;
mod detect_sqli;
mod detect_xss;
mod ends_with;
mod geo_lookup;
mod ip_match;
mod ip_match_from_file;
pub mod literals;
mod no_match;
mod numeric;
pub mod pattern;
mod phrases;
mod pm;
mod pm_from_file;
mod rbl;
mod rx;
mod rx_global;
mod streq;
mod strmatch;
mod unconditional_match;
mod validate_byte_range;
mod validate_url_encoding;
mod validate_utf8_encoding;
mod verified;
mod verify_cc;
mod verify_cpf;
mod verify_ssn;
mod verify_svnr;
mod within;

/// Capture groups of a match: index 0 is the whole match, 1.. the groups (TX:0, TX:1, ...).
pub type Captures = Vec<Vec<u8>>;

/// What a constructor may need from the loading context.
pub struct OperatorContext<'a> {
    /// Directory of the rule file, for `@pmFromFile`/`@ipMatchFromFile` relative paths.
    pub base_dir: &'a Path,
    /// Where a rule-set load records the data files it reads (None outside a load).
    pub inputs: Option<&'a RefCell<Inputs>>,
    /// During a rule-set load: `@rx` patterns are left unchecked, for the load to check
    /// once its files are read, and built once it knows which rules can run (see
    /// `deferred`).
    pub(crate) defer_patterns: bool,
}

impl<'a> OperatorContext<'a> {
    pub fn new(base_dir: &'a Path) -> Self {
        OperatorContext { base_dir, inputs: None, defer_patterns: false }
    }

    /// Reads a data file, recording it when a rule set is being loaded.
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        match self.inputs {
            Some(i) => i.borrow_mut().read(path),
            None => std::fs::read(path),
        }
    }
}

pub trait Operator: Send + Sync + Debug {
    /// Evaluates the operator against one (already transformed) value. When `caps`
    /// is given and the operator captures, it is cleared and filled.
    fn evaluate(&self, input: &[u8], caps: Option<&mut Captures>) -> bool;

    /// [`Self::evaluate`], also reporting a PCRE2 run that stopped at its match or depth
    /// limit (`SecPcreMatchLimit*`): the value then does not match and `limit_hit` is set,
    /// so the transaction can set MSC_PCRE_LIMITS_EXCEEDED. Only `@rx` reports, as in
    /// ModSecurity v3.
    fn evaluate_limited(&self, input: &[u8], caps: Option<&mut Captures>, limit_hit: &mut bool) -> bool {
        let _ = limit_hit;
        self.evaluate(input, caps)
    }

    /// Applies the rules' `SecPcreMatchLimit` / `SecPcreMatchLimitRecursion` (known only
    /// once every directive is read) to a regex operator's PCRE2 runs. The others, and
    /// `@verify*` (ModSecurity runs those without the configured limit), ignore them.
    fn set_pcre_limits(&mut self, limits: pattern::PcreLimits) -> Result<(), String> {
        let _ = limits;
        Ok(())
    }

    /// For regex operators, which engine runs the pattern: `"regex"` or `"pcre2"`
    /// (`"deferred"` while not built).
    fn backend(&self) -> Option<&'static str> {
        None
    }

    /// Byte strings of which at least one occurs (ASCII case-insensitively) in every value
    /// this operator matches; `None` when no set is worth gating on (`literals`). Used by the
    /// rule-set prefilter to skip the operator for values that cannot match.
    fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        None
    }

    /// A second such set, asked only when [`Self::required_literals`] gives one: every
    /// match holds a literal of each, and the prefilter needs both.
    fn also_required_literals(&self) -> Option<Vec<Vec<u8>>> {
        None
    }

    /// Called once per rule link at the end of the load, `gated` when the rule-set
    /// prefilter gates the link on [`Self::required_literals`] (so every value that
    /// reaches [`Self::evaluate`] holds one of them): builds what evaluation needs and
    /// this makes redundant. An error fails the load.
    fn prepare(&self, gated: bool) -> Result<(), String> {
        let _ = gated;
        Ok(())
    }

    /// A regex operator's pattern, when its build may wait (see `deferred`).
    fn deferred(&self) -> Option<&deferred::Deferred> {
        None
    }

    /// Why this operator can never match in Ward (a feature Ward does not have), for the
    /// load summary; `None` for every operator that really evaluates.
    fn unavailable(&self) -> Option<&'static str> {
        None
    }
}

/// Builds one operator from its parameter.
type Constructor = fn(&str, &OperatorContext) -> Result<Box<dyn Operator>, String>;

/// Every operator by lower-case name (ModSecurity's names and aliases).
pub const REGISTRY: &[(&str, Constructor)] = &[
    ("beginswith", begins_with::BeginsWith::create),
    ("contains", contains::Contains::create),
    ("containsword", contains_word::ContainsWord::create),
    ("detectsqli", detect_sqli::DetectSqli::create),
    ("detectxss", detect_xss::DetectXss::create),
    ("endswith", ends_with::EndsWith::create),
    ("eq", numeric::Numeric::create_eq),
    ("ge", numeric::Numeric::create_ge),
    ("geolookup", geo_lookup::GeoLookup::create),
    ("gt", numeric::Numeric::create_gt),
    ("ipmatch", ip_match::IpMatch::create),
    ("ipmatchf", ip_match_from_file::IpMatchFromFile::create),
    ("ipmatchfromfile", ip_match_from_file::IpMatchFromFile::create),
    ("le", numeric::Numeric::create_le),
    ("lt", numeric::Numeric::create_lt),
    ("nomatch", no_match::NoMatch::create),
    ("pm", pm::Pm::create),
    ("pmf", pm_from_file::PmFromFile::create),
    ("pmfromfile", pm_from_file::PmFromFile::create),
    ("rbl", rbl::Rbl::create),
    ("rx", rx::Rx::create),
    ("rxglobal", rx_global::RxGlobal::create),
    ("streq", streq::StrEq::create),
    ("strmatch", strmatch::StrMatch::create),
    ("unconditionalmatch", unconditional_match::UnconditionalMatch::create),
    ("validatebyterange", validate_byte_range::ValidateByteRange::create),
    ("validateurlencoding", validate_url_encoding::ValidateUrlEncoding::create),
    ("validateutf8encoding", validate_utf8_encoding::ValidateUtf8Encoding::create),
    ("verifycc", verify_cc::VerifyCc::create),
    ("verifycpf", verify_cpf::VerifyCpf::create),
    ("verifyssn", verify_ssn::VerifySsn::create),
    ("verifysvnr", verify_svnr::VerifySvnr::create),
    ("within", within::Within::create),
];

/// Builds an operator from its name (case-insensitive, without `@`) and parameter
/// (macros already expanded).
pub fn create(name: &str, param: &str, ctx: &OperatorContext) -> Result<Box<dyn Operator>, String> {
    REGISTRY
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .ok_or_else(|| format!("unknown operator @{name}"))
        .and_then(|(_, ctor)| ctor(param, ctx))
        .map_err(|e| format!("@{name}: {e}"))
}

/// Copies `bytes` into `caps` as its only capture (TX:0), when the caller asked for captures.
fn capture_one(caps: Option<&mut Captures>, bytes: &[u8]) {
    if let Some(caps) = caps {
        caps.clear();
        caps.push(bytes.to_vec());
    }
}

/// A repeatable test sequence (xorshift): each call gives a number below its argument.
#[cfg(test)]
pub(crate) fn random_below(mut seed: u64) -> impl FnMut(usize) -> usize {
    move |n| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    }
}

/// Checks an operator's prefilter: every value it matches holds one of its required
/// literals (ASCII case-insensitively). Tried on every value of one and two bytes, and on
/// random values of up to 12 bytes drawn from `alphabet`.
#[cfg(test)]
pub(crate) fn assert_literals_needed(op: &dyn Operator, alphabet: &[u8]) {
    let set = op.required_literals().expect("the operator has required literals");
    let holds = |v: &[u8]| {
        let v = v.to_ascii_lowercase();
        set.iter().any(|l| v.windows(l.len()).any(|w| w == l.to_ascii_lowercase().as_slice()))
    };
    let check = |v: &[u8]| {
        assert!(!op.evaluate(v, None) || holds(v), "{op:?} matches {v:?} without any of its literals");
    };
    for a in 0..=255u8 {
        check(&[a]);
        (0..=255u8).for_each(|b| check(&[a, b]));
    }
    let mut next = random_below(0x9e37_79b9_7f4a_7c15);
    for _ in 0..50_000 {
        let v: Vec<u8> = (0..1 + next(12)).map(|_| alphabet[next(alphabet.len())]).collect();
        check(&v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_and_unknown_is_an_error() {
        let ctx = OperatorContext::new(Path::new("."));
        assert!(create("beginsWith", "a", &ctx).is_ok());
        assert!(create("RX", "a", &ctx).is_ok());
        assert!(create("pmf", "/nonexistent", &ctx).is_err());
        assert!(create("nosuch", "", &ctx).unwrap_err().contains("unknown operator"));
    }
}
