//! ModSecurity-format error-log lines for rule matches, so existing parsers and the
//! CRS test markers work unchanged.

use std::sync::Arc;

use once_cell::sync::Lazy;

use crate::rule::Rule;

/// The match a message reports (the deepest chain link's last match).
#[derive(Debug, Clone, Default)]
pub struct MatchInfo {
    pub var: String,
    pub value: Vec<u8>,
    /// Which link of the rule's chain matched (0: the rule itself): its operator is reported.
    pub link: usize,
    /// That operator's parameter as expanded, when it has macros.
    pub expanded: Option<Arc<str>>,
}

impl MatchInfo {
    /// The matching link's operator of `rule` in ModSecurity's spelling (`Rx`) and its
    /// parameter. Looked up when a match is logged, not kept with every match: sharing them
    /// was an atomic write into the rule set per rule evaluation.
    pub fn operator(&self, rule: &Rule) -> (Arc<str>, Arc<str>) {
        static UNCONDITIONAL: Lazy<(Arc<str>, Arc<str>)> = Lazy::new(|| (Arc::from("Unconditional"), Arc::from("")));
        match rule.links().nth(self.link).and_then(|l| l.operator.as_ref()) {
            Some(o) => (o.display_name(), self.expanded.clone().unwrap_or_else(|| o.param.clone())),
            None => UNCONDITIONAL.clone(),
        }
    }
}

pub struct Message<'a> {
    pub rule: &'a Rule,
    pub phase: u8,
    /// Some(status) when the rule denied the request.
    pub denied_with: Option<u16>,
    pub matched: &'a MatchInfo,
    pub msg: &'a [u8],
    pub data: &'a [u8],
    pub hostname: &'a [u8],
    pub uri: &'a [u8],
    pub unique_id: &'a str,
}

/// Printable text: bytes outside printable ASCII become `\xHH`, quotes are escaped.
fn clean(b: &[u8], limit: usize) -> String {
    let mut s = String::with_capacity(b.len().min(limit));
    for &c in b.iter().take(limit) {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

pub fn error_line(m: &Message) -> String {
    let (op, param) = m.matched.operator(m.rule);
    let r = m.rule;
    let mut out = String::with_capacity(512);
    match m.denied_with {
        Some(code) => out.push_str(&format!("ModSecurity: Access denied with code {code} (phase {}). ", m.phase)),
        None => out.push_str("ModSecurity: Warning. "),
    }
    out.push_str(&format!(
        "Matched \"Operator `{}' with parameter `{}' against variable `{}' (Value: `{}' )",
        op,
        clean(param.as_bytes(), 200),
        clean(m.matched.var.as_bytes(), 200),
        clean(&m.matched.value, 100)
    ));
    out.push_str(&format!(" [file \"{}\"] [line \"{}\"] [id \"{}\"]", r.file.display(), r.line, r.id));
    out.push_str(&format!(" [rev \"{}\"]", clean(r.actions.rev.as_deref().unwrap_or("").as_bytes(), 200)));
    out.push_str(&format!(" [msg \"{}\"]", clean(m.msg, 500)));
    out.push_str(&format!(" [data \"{}\"]", clean(m.data, 200)));
    out.push_str(&format!(" [severity \"{}\"]", r.actions.severity.unwrap_or(0)));
    out.push_str(&format!(" [ver \"{}\"]", clean(r.actions.ver.as_deref().unwrap_or("").as_bytes(), 200)));
    out.push_str(&format!(
        " [maturity \"{}\"] [accuracy \"{}\"]",
        r.actions.maturity.unwrap_or(0),
        r.actions.accuracy.unwrap_or(0)
    ));
    for t in &r.actions.tags {
        out.push_str(&format!(" [tag \"{}\"]", clean(t.as_bytes(), 200)));
    }
    out.push_str(&format!(
        " [hostname \"{}\"] [uri \"{}\"] [unique_id \"{}\"]",
        clean(m.hostname, 200),
        clean(m.uri, 200),
        m.unique_id
    ));
    out
}
