//! Disruptive actions: deny, drop, block, pass, allow, redirect.

use crate::macros::Macro;

/// How far `allow` reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowScope {
    /// Skip every remaining rule of every phase.
    All,
    /// Skip the rest of the current phase.
    Phase,
    /// Skip the rest of the request phases (1-2); response phases still run.
    Request,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisruptiveAction {
    Deny,
    Drop,
    /// Resolved at run time to the phase's SecDefaultAction disruptive action.
    Block,
    Pass,
    Allow(AllowScope),
    Redirect(Macro),
}

impl DisruptiveAction {
    /// `Ok(None)` when `name` is not a disruptive action.
    pub fn parse(name: &str, value: Option<&str>) -> Result<Option<DisruptiveAction>, String> {
        Ok(Some(match name {
            "deny" => DisruptiveAction::Deny,
            "drop" => DisruptiveAction::Drop,
            "block" => DisruptiveAction::Block,
            "pass" => DisruptiveAction::Pass,
            "allow" => DisruptiveAction::Allow(match value.map(|v| v.to_ascii_lowercase()).as_deref() {
                None | Some("") => AllowScope::All,
                Some("phase") => AllowScope::Phase,
                Some("request") => AllowScope::Request,
                Some(v) => return Err(format!("invalid allow scope '{v}' (phase or request)")),
            }),
            "redirect" => DisruptiveAction::Redirect(Macro::parse(value.ok_or("redirect needs a URL")?)),
            _ => return Ok(None),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(DisruptiveAction::parse("deny", None).unwrap(), Some(DisruptiveAction::Deny));
        assert_eq!(
            DisruptiveAction::parse("allow", Some("phase")).unwrap(),
            Some(DisruptiveAction::Allow(AllowScope::Phase))
        );
        assert_eq!(DisruptiveAction::parse("allow", None).unwrap(), Some(DisruptiveAction::Allow(AllowScope::All)));
        assert!(DisruptiveAction::parse("allow", Some("x")).is_err());
        assert!(DisruptiveAction::parse("redirect", None).is_err());
        assert_eq!(DisruptiveAction::parse("msg", None).unwrap(), None);
    }
}
