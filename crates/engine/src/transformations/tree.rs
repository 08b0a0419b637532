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
        let root = Node { parent: None, step: None, case_only: true, changes_on: 0, step_changes_on: 0 };
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
                    let c = self.nodes.len() as u32;
                    let parent = &self.nodes[k as usize];
                    let case_only = parent.case_only && CASE_ONLY.contains(&id.1.as_str());
                    let step_changes_on = super::triggers::step_mask(&step.name);
                    let changes_on = parent.changes_on | step_changes_on;
                    self.nodes.push(Node {
                        parent: Some(k),
                        step: Some(step.clone()),
                        case_only,
                        changes_on,
                        step_changes_on,
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
        assert_eq!(t.len(), 5, "root, utf8toUnicode, +urlDecodeUni, and the two leaves");
        let shared = t.node(xss).parent.unwrap();
        assert_eq!(t.node(sqli).parent, Some(shared));
        assert_eq!(t.key(&steps(&["utf8toUnicode", "urlDecodeUni"])), shared);
        assert_eq!(t.key(&[]), ROOT);
        assert_eq!(t.node(ROOT).parent, None);
        // Order matters: another list.
        let other = t.key(&steps(&["urlDecodeUni", "utf8toUnicode"]));
        assert!(other != shared && t.len() == 7);
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
