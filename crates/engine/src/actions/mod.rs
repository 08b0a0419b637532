//! Action registry: parses a rule's action list into [`Actions`].
//!
//! Families live in their own files: [`disruptive`] (deny, block, …), [`setvar`]
//! (collection writes), [`ctl`] (per-transaction configuration changes). Metadata and
//! flow actions (id, msg, tag, chain, skipAfter, …) are plain fields here.

pub mod ctl;
pub mod disruptive;
pub mod setvar;

use crate::macros::Macro;
use crate::parser::{ActionItem, Dialect};
use crate::transformations;

pub use ctl::Ctl;
pub use disruptive::{AllowScope, DisruptiveAction};
pub use setvar::{SetVar, SetVarOp};

/// One step of a rule's transformation pipeline.
#[derive(Debug, Clone)]
pub struct TransformStep {
    pub name: String,
    pub func: transformations::Transform,
}

/// A rule's (or SecDefaultAction's) parsed actions. In declaration order (`repr(C)`), what
/// evaluating a rule reads first (see [`crate::rule::Rule`]).
#[derive(Debug, Clone, Default)]
#[repr(C)]
pub struct Actions {
    pub capture: bool,
    pub multi_match: bool,
    pub chain: bool,
    /// `t:none` seen: default transformations do not apply.
    pub t_none: bool,
    pub log: Option<bool>,
    pub auditlog: Option<bool>,
    /// The last of `log`, `nolog`, `auditlog`, `noauditlog`: libmodsecurity 3 lets each
    /// of them decide whether the error-log line is written (`noauditlog` after `log`
    /// silences it), where ModSecurity v2 only listens to `log`/`nolog`.
    pub save_message: Option<bool>,
    pub severity: Option<u8>,
    pub phase: Option<u8>,
    pub maturity: Option<u8>,
    pub accuracy: Option<u8>,
    pub status: Option<u16>,
    pub skip: u32,
    pub setvars: Vec<SetVar>,
    pub ctls: Vec<Ctl>,
    pub setenvs: Vec<(Macro, Macro)>,
    pub expirevars: Vec<(String, Macro)>,
    pub initcols: Vec<(String, Macro)>,
    pub disruptive: Option<DisruptiveAction>,
    pub id: Option<u64>,
    pub msg: Option<Macro>,
    pub logdata: Option<Macro>,
    pub tags: Vec<String>,
    pub rev: Option<String>,
    pub ver: Option<String>,
    pub skip_after: Option<String>,
    pub transforms: Vec<TransformStep>,
}

fn need<'a>(it: &'a ActionItem) -> Result<&'a str, String> {
    it.value.as_deref().ok_or_else(|| format!("action '{}' needs a value", it.name))
}

fn phase_number(v: &str) -> Result<u8, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "request_headers" => Ok(1),
        "2" | "request" | "request_body" => Ok(2),
        "3" | "response_headers" => Ok(3),
        "4" | "response" | "response_body" => Ok(4),
        "5" | "logging" => Ok(5),
        _ => Err(format!("invalid phase '{v}' (1-5, request, response or logging)")),
    }
}

fn severity_number(v: &str) -> Result<u8, String> {
    const NAMES: [&str; 8] = ["EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"];
    if let Ok(n) = v.parse::<u8>() {
        if n <= 7 {
            return Ok(n);
        }
    }
    NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(v))
        .map(|p| p as u8)
        .ok_or_else(|| format!("invalid severity '{v}'"))
}

impl Actions {
    /// Parses action items in order. Unknown actions are errors, never ignored.
    pub fn parse(items: &[ActionItem]) -> Result<Actions, String> {
        let mut a = Actions::default();
        for it in items {
            let name = it.name.to_ascii_lowercase();
            match name.as_str() {
                "id" => {
                    let v = need(it)?;
                    let id: u64 = v.trim().parse().map_err(|_| format!("invalid rule id '{v}'"))?;
                    if id == 0 {
                        return Err("rule id 0 is not allowed".into());
                    }
                    a.id = Some(id);
                }
                "phase" => a.phase = Some(phase_number(need(it)?)?),
                "msg" => a.msg = Some(Macro::parse(need(it)?)),
                "logdata" => a.logdata = Some(Macro::parse(need(it)?)),
                "tag" => a.tags.push(need(it)?.to_string()),
                "severity" => a.severity = Some(severity_number(need(it)?)?),
                "rev" => a.rev = Some(need(it)?.to_string()),
                "ver" => a.ver = Some(need(it)?.to_string()),
                "maturity" => a.maturity = need(it)?.parse().ok(),
                "accuracy" => a.accuracy = need(it)?.parse().ok(),
                "status" => {
                    let v = need(it)?;
                    a.status = Some(
                        v.parse()
                            .ok()
                            .filter(|s| (100..=999).contains(s))
                            .ok_or_else(|| format!("invalid status '{v}'"))?,
                    );
                }
                "log" => (a.log, a.save_message) = (Some(true), Some(true)),
                "nolog" => (a.log, a.save_message) = (Some(false), Some(false)),
                "auditlog" => (a.auditlog, a.save_message) = (Some(true), Some(true)),
                "noauditlog" => (a.auditlog, a.save_message) = (Some(false), Some(false)),
                "capture" => a.capture = true,
                "multimatch" => a.multi_match = true,
                "chain" => a.chain = true,
                "skip" => {
                    let v = need(it)?;
                    a.skip = v.parse().map_err(|_| format!("invalid skip count '{v}'"))?;
                }
                "skipafter" => a.skip_after = Some(need(it)?.to_string()),
                "t" => {
                    let v = need(it)?;
                    if v.eq_ignore_ascii_case("none") {
                        a.t_none = true;
                        a.transforms.clear();
                    } else {
                        let func = transformations::lookup(v).ok_or_else(|| format!("unknown transformation t:{v}"))?;
                        a.transforms.push(TransformStep { name: v.to_string(), func });
                    }
                }
                "setvar" => a.setvars.push(SetVar::parse(need(it)?)?),
                "ctl" => a.ctls.push(Ctl::parse(need(it)?)?),
                "setenv" => {
                    let v = need(it)?;
                    let (k, val) = v.split_once('=').unwrap_or((v, "1"));
                    a.setenvs.push((Macro::parse(k.trim_start_matches('!')), Macro::parse(val)));
                }
                "expirevar" => {
                    let v = need(it)?;
                    let (k, secs) =
                        v.split_once('=').ok_or_else(|| format!("expirevar needs NAME=SECONDS, got '{v}'"))?;
                    a.expirevars.push((k.to_string(), Macro::parse(secs)));
                }
                "initcol" => {
                    let v = need(it)?;
                    let (k, val) =
                        v.split_once('=').ok_or_else(|| format!("initcol needs COLLECTION=KEY, got '{v}'"))?;
                    a.initcols.push((k.to_ascii_uppercase(), Macro::parse(val)));
                }
                // Accepted for compatibility; they change nothing Ward evaluates.
                "sanitisearg"
                | "sanitizearg"
                | "sanitisematched"
                | "sanitizematched"
                | "sanitisematchedbytes"
                | "sanitizematchedbytes"
                | "sanitiserequestheader"
                | "sanitizerequestheader"
                | "sanitiseresponseheader"
                | "sanitizeresponseheader"
                | "setuid"
                | "setsid"
                | "setrsc"
                | "xmlns"
                | "deprecatevar"
                | "append"
                | "prepend"
                | "exec"
                | "proxy" => {}
                _ => match DisruptiveAction::parse(&name, it.value.as_deref())? {
                    Some(DisruptiveAction::Block)
                        if a.disruptive.as_ref().is_some_and(|d| *d != DisruptiveAction::Block) => {}
                    Some(d) => a.disruptive = Some(d),
                    None => return Err(format!("unknown action '{}'", it.name)),
                },
            }
        }
        Ok(a)
    }

    /// Whether the rule writes messages to the log (default: yes, as ModSecurity).
    pub fn logs(&self) -> bool {
        self.log.unwrap_or(true)
    }

    /// [`Actions::logs`] as the reference engine of `dialect` decides it.
    pub fn logs_in(&self, dialect: Dialect) -> bool {
        match dialect {
            Dialect::ModSecurity3 => self.save_message.unwrap_or(true),
            Dialect::ModSecurity2 => self.logs(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::split_actions;

    fn parse(s: &str) -> Result<Actions, String> {
        Actions::parse(&split_actions(s).unwrap())
    }

    #[test]
    fn metadata_and_flow() {
        let a = parse("id:942100,phase:request,block,capture,msg:'SQLi',tag:'a',tag:'b',severity:CRITICAL,skipAfter:END,nolog,status:406").unwrap();
        assert_eq!(a.id, Some(942100));
        assert_eq!(a.phase, Some(2));
        assert_eq!(a.disruptive, Some(DisruptiveAction::Block));
        assert!(a.capture);
        assert_eq!(a.tags, ["a", "b"]);
        assert_eq!(a.severity, Some(2));
        assert_eq!(a.skip_after.as_deref(), Some("END"));
        assert_eq!(a.log, Some(false));
        assert_eq!(a.status, Some(406));
    }

    #[test]
    fn log_decision_per_dialect() {
        // (actions, logs in ModSecurity3, logs in ModSecurity2)
        let cases = [
            ("id:1", true, true),
            ("id:1,log", true, true),
            ("id:1,nolog", false, false),
            ("id:1,noauditlog", false, true),
            ("id:1,log,noauditlog", false, true),
            ("id:1,noauditlog,log", true, true),
            ("id:1,nolog,auditlog", true, false),
        ];
        for (text, v3, v2) in cases {
            let a = parse(text).unwrap();
            assert_eq!((a.logs_in(Dialect::ModSecurity3), a.logs_in(Dialect::ModSecurity2)), (v3, v2), "{text}");
        }
    }

    #[test]
    fn t_none_clears_earlier_transformations() {
        let a = parse("id:1,t:lowercase,t:none").unwrap();
        assert!(a.t_none);
        assert!(a.transforms.is_empty());
    }

    #[test]
    fn errors_are_explicit() {
        assert!(parse("id:1,bogus").unwrap_err().contains("unknown action"));
        assert!(parse("id:x").unwrap_err().contains("invalid rule id"));
        assert!(parse("id:1,phase:9").unwrap_err().contains("invalid phase"));
        assert!(parse("id:1,t:nosuch").unwrap_err().contains("unknown transformation"));
        assert!(parse("id:1,status:abc").is_err());
    }
}
