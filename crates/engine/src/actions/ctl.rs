//! `ctl`: changes to one transaction's configuration, effective from the next rule.

use crate::parser::split_variables;
use crate::ruleset::EngineMode;
use crate::variables::{Selector, Var};

/// A rule-id selection: a single id or an inclusive range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange(pub u64, pub u64);

impl IdRange {
    pub fn parse(s: &str) -> Result<IdRange, String> {
        let s = s.trim();
        let bad = || format!("invalid rule id or range '{s}'");
        match s.split_once('-') {
            Some((a, b)) => Ok(IdRange(a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?)),
            None => {
                let n = s.parse().map_err(|_| bad())?;
                Ok(IdRange(n, n))
            }
        }
    }

    pub fn contains(&self, id: u64) -> bool {
        self.0 <= id && id <= self.1
    }
}

/// Body processors selectable by `ctl:requestBodyProcessor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyProcessor {
    Urlencoded,
    Multipart,
    Json,
    Xml,
}

impl BodyProcessor {
    pub fn parse(s: &str) -> Option<BodyProcessor> {
        match s.to_ascii_uppercase().as_str() {
            "URLENCODED" => Some(BodyProcessor::Urlencoded),
            "MULTIPART" => Some(BodyProcessor::Multipart),
            "JSON" => Some(BodyProcessor::Json),
            "XML" => Some(BodyProcessor::Xml),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BodyProcessor::Urlencoded => "URLENCODED",
            BodyProcessor::Multipart => "MULTIPART",
            BodyProcessor::Json => "JSON",
            BodyProcessor::Xml => "XML",
        }
    }
}

/// A target removed by `ruleRemoveTargetBy*`.
#[derive(Debug, Clone)]
pub struct TargetRef {
    pub var: Var,
    pub selector: Selector,
}

impl TargetRef {
    pub fn parse(s: &str) -> Result<TargetRef, String> {
        let items = split_variables(s)?;
        let [it] = items.as_slice() else { return Err(format!("expected one variable, got '{s}'")) };
        let var = Var::from_name(&it.name).ok_or_else(|| format!("unknown variable {}", it.name))?;
        Ok(TargetRef { var, selector: Selector::parse(it.selector.as_deref())? })
    }
}

#[derive(Debug, Clone)]
pub enum Ctl {
    RuleEngine(EngineMode),
    RuleRemoveById(Vec<IdRange>),
    RuleRemoveByTag(String),
    RuleRemoveByMsg(String),
    RuleRemoveTargetById(Vec<IdRange>, TargetRef),
    RuleRemoveTargetByTag(String, TargetRef),
    RequestBodyProcessor(BodyProcessor),
    RequestBodyAccess(bool),
    ResponseBodyAccess(bool),
    ForceRequestBodyVariable(bool),
    AuditEngine(String),
    AuditLogParts(String),
    /// Accepted and without effect in Ward (debug log, hash engine, …).
    Ignored,
}

fn on_off(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(format!("expected On or Off, got '{v}'")),
    }
}

pub fn engine_mode(v: &str) -> Result<EngineMode, String> {
    match v.to_ascii_lowercase().as_str() {
        "on" => Ok(EngineMode::On),
        "off" => Ok(EngineMode::Off),
        "detectiononly" => Ok(EngineMode::DetectionOnly),
        _ => Err(format!("invalid rule engine mode '{v}' (On, Off or DetectionOnly)")),
    }
}

fn id_list(v: &str) -> Result<Vec<IdRange>, String> {
    v.split([',', ' ']).filter(|s| !s.is_empty()).map(IdRange::parse).collect()
}

impl Ctl {
    pub fn parse(s: &str) -> Result<Ctl, String> {
        let (name, value) = s.split_once('=').ok_or_else(|| format!("ctl '{s}' needs NAME=VALUE"))?;
        let value = value.trim();
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "ruleengine" => Ctl::RuleEngine(engine_mode(value)?),
            "ruleremovebyid" => Ctl::RuleRemoveById(id_list(value)?),
            "ruleremovebytag" => Ctl::RuleRemoveByTag(value.to_string()),
            "ruleremovebymsg" => Ctl::RuleRemoveByMsg(value.to_string()),
            "ruleremovetargetbyid" => {
                let (ids, target) = value
                    .split_once(';')
                    .ok_or_else(|| format!("ctl:ruleRemoveTargetById needs ID;VARIABLE, got '{value}'"))?;
                Ctl::RuleRemoveTargetById(id_list(ids)?, TargetRef::parse(target)?)
            }
            "ruleremovetargetbytag" => {
                let (tag, target) = value
                    .split_once(';')
                    .ok_or_else(|| format!("ctl:ruleRemoveTargetByTag needs TAG;VARIABLE, got '{value}'"))?;
                Ctl::RuleRemoveTargetByTag(tag.to_string(), TargetRef::parse(target)?)
            }
            "requestbodyprocessor" => Ctl::RequestBodyProcessor(
                BodyProcessor::parse(value).ok_or_else(|| format!("unknown request body processor '{value}'"))?,
            ),
            "requestbodyaccess" => Ctl::RequestBodyAccess(on_off(value)?),
            "responsebodyaccess" => Ctl::ResponseBodyAccess(on_off(value)?),
            "forcerequestbodyvariable" => Ctl::ForceRequestBodyVariable(on_off(value)?),
            "auditengine" => Ctl::AuditEngine(value.to_string()),
            "auditlogparts" => Ctl::AuditLogParts(value.to_string()),
            "debugloglevel" | "hashengine" | "hashenforcement" | "requestbodylimit" | "parsexmlintoargs" => {
                Ctl::Ignored
            }
            other => return Err(format!("unknown ctl option '{other}'")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert!(matches!(Ctl::parse("ruleEngine=DetectionOnly").unwrap(), Ctl::RuleEngine(EngineMode::DetectionOnly)));
        match Ctl::parse("ruleRemoveById=1-999999").unwrap() {
            Ctl::RuleRemoveById(r) => assert!(r[0].contains(942100) && !r[0].contains(1_000_000)),
            c => panic!("{c:?}"),
        }
        match Ctl::parse("ruleRemoveTargetById=942100;ARGS:password").unwrap() {
            Ctl::RuleRemoveTargetById(ids, t) => {
                assert_eq!(ids, vec![IdRange(942100, 942100)]);
                assert_eq!(t.var, Var::Args);
                assert!(t.selector.matches(b"Password"));
            }
            c => panic!("{c:?}"),
        }
        assert!(matches!(
            Ctl::parse("requestBodyProcessor=JSON").unwrap(),
            Ctl::RequestBodyProcessor(BodyProcessor::Json)
        ));
        assert!(Ctl::parse("requestBodyProcessor=YAML").is_err());
        assert!(Ctl::parse("nonsense=1").is_err());
        assert!(Ctl::parse("ruleEngine=maybe").is_err());
    }
}
