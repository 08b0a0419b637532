//! Every distinct transformation list of a rule set, as a prefix tree: `t:a,t:b,t:c` is the
//! node [a,b,c] whose parent is [a,b]. The transaction's cache computes a list from its
//! parent's result, so lists that share a prefix (most CRS lists start with
//! `utf8toUnicode,urlDecodeUni`) compute it once per value.

use std::collections::HashMap;

use crate::actions::TransformStep;

/// The empty list (the raw value).
pub const ROOT: u32 = 0;

#[derive(Debug)]
pub struct Node {
    /// None for the root.
    pub parent: Option<u32>,
    /// The last step of the list (None for the root).
    pub step: Option<TransformStep>,
    /// Every step only changes ASCII case: the prefilter, which compares ASCII
    /// case-insensitively, finds the same literals in the raw value.
    pub case_only: bool,
    /// The union of the steps' masks (`triggers.rs`): a value whose mask misses it is the
    /// list's result.
    pub changes_on: u64,
    /// The last step's mask.
    pub step_changes_on: u64,
    /// The one-step list of this node's last step (None for the root's children): what
    /// the step makes of the raw value, which lists with other prefixes that leave it
    /// unchanged share (`t:base64Decode` after CRS's `t:urlDecodeUni,t:jsDecode`…).
    pub raw_twin: Option<u32>,
    /// The last step makes nothing of an empty value (most steps: a value emptied by
    /// `t:base64Decode` stays empty without running the rest of its list).
    pub keeps_empty: bool,
}

/// Transformations that change nothing but ASCII case (both are ASCII-only here).
const CASE_ONLY: [&str; 2] = ["lowercase", "uppercase"];

#[derive(Debug)]
pub struct TransformTree {
    nodes: Vec<Node>,
    /// (parent, lower-cased step name) → node.
    children: HashMap<(u32, String), u32>,
}

impl Default for TransformTree {
    fn default() -> Self {
        let root = Node {
            parent: None,
            step: None,
            case_only: true,
            changes_on: 0,
            step_changes_on: 0,
            raw_twin: None,
            keeps_empty: true,
        };
        TransformTree { nodes: vec![root], children: HashMap::new() }
    }
}

impl TransformTree {
    /// The node of `steps`, added with its prefixes when new.
    pub fn key(&mut self, steps: &[TransformStep]) -> u32 {
        let mut k = ROOT;
        for step in steps {
            let id = (k, step.name.to_ascii_lowercase());
            k = match self.children.get(&id) {
                Some(&c) => c,
                None => {
                    let raw_twin = (k != ROOT).then(|| self.key(std::slice::from_ref(step)));
                    let c = self.nodes.len() as u32;
                    let parent = &self.nodes[k as usize];
                    let case_only = parent.case_only && CASE_ONLY.contains(&id.1.as_str());
                    let step_changes_on = super::triggers::step_mask(&step.name);
                    let changes_on = parent.changes_on | step_changes_on;
                    let keeps_empty = (step.func)(b"").is_none_or(|v| v.is_empty());
                    self.nodes.push(Node {
                        parent: Some(k),
                        step: Some(step.clone()),
                        case_only,
                        changes_on,
                        step_changes_on,
                        raw_twin,
                        keeps_empty,
                    });
                    self.children.insert(id, c);
                    c
                }
            };
        }
        k
    }

    pub fn node(&self, key: u32) -> &Node {
        &self.nodes[key as usize]
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// Steps of the transformations `names` (for tests).
#[cfg(test)]
pub(crate) fn steps(names: &[&str]) -> Vec<TransformStep> {
    names
        .iter()
        .map(|n| TransformStep { name: n.to_string(), func: crate::transformations::lookup(n).unwrap() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_share_their_prefixes() {
        let mut t = TransformTree::default();
        let xss = t.key(&steps(&["utf8toUnicode", "urlDecodeUni", "htmlEntityDecode"]));
        let sqli = t.key(&steps(&["utf8ToUnicode", "urldecodeuni", "removeNulls"]));
        // Root, utf8toUnicode, +urlDecodeUni, the two leaves, and the one-step lists of
        // urlDecodeUni, htmlEntityDecode and removeNulls (their raw twins).
        assert_eq!(t.len(), 8);
        let shared = t.node(xss).parent.unwrap();
        assert_eq!(t.node(sqli).parent, Some(shared));
        assert_eq!(t.key(&steps(&["utf8toUnicode", "urlDecodeUni"])), shared);
        assert_eq!(t.key(&[]), ROOT);
        assert_eq!(t.node(ROOT).parent, None);
        // Order matters: another list (its first step's node was there as a twin).
        let other = t.key(&steps(&["urlDecodeUni", "utf8toUnicode"]));
        assert!(other != shared && t.len() == 9);
    }

    #[test]
    fn a_step_after_others_knows_its_one_step_list() {
        let mut t = TransformTree::default();
        let list = t.key(&steps(&["urlDecodeUni", "jsDecode", "base64Decode"]));
        let b64 = t.key(&steps(&["base64decode"]));
        let js = t.key(&steps(&["jsDecode"]));
        let url = t.key(&steps(&["urlDecodeUni"]));
        assert_eq!(t.node(list).raw_twin, Some(b64));
        assert_eq!(t.node(t.node(list).parent.unwrap()).raw_twin, Some(js));
        // A one-step list is its own twin: none.
        for k in [b64, js, url] {
            assert_eq!(t.node(k).raw_twin, None);
            assert_eq!(t.node(k).parent, Some(ROOT));
        }
        assert_eq!(t.len(), 6, "no node made twice");
    }

    #[test]
    fn steps_that_fill_an_empty_value_are_marked() {
        let mut t = TransformTree::default();
        for (name, keeps) in [("lowercase", true), ("base64Decode", true), ("length", false), ("md5", false)] {
            let k = t.key(&steps(&["trim", name]));
            assert_eq!(t.node(k).keeps_empty, keeps, "{name}");
        }
    }

    #[test]
    fn case_only_lists_are_marked() {
        let mut t = TransformTree::default();
        for (names, case_only) in [
            (&[][..], true),
            (&["lowercase"][..], true),
            (&["lowercase", "uppercase"][..], true),
            (&["lowercase", "urlDecodeUni"][..], false),
            (&["urlDecodeUni", "lowercase"][..], false),
            (&["trim"][..], false),
        ] {
            let k = t.key(&steps(names));
            assert_eq!(t.node(k).case_only, case_only, "{names:?}");
        }
    }
}
