//! The phrase matcher behind `@pm` and `@pmFromFile`.
//!
//! ModSecurity v3 uses its own Aho-Corasick (src/utils/acmp.cc): ASCII case-insensitive,
//! stopping at the first position where it sees a phrase end, and reporting the text of
//! its automaton state there (spelt as in the first phrase added through that state).
//! Its failure links are built one level deep only (a node fails to its parent's failure
//! node's child, else to the root), so it misses some phrases that a longer, partly
//! matched phrase overlaps: with phrases `abcdz bcx cde`, "abcde" does not match
//! (checked against ModSecurity 3.0.9). Verdicts must agree, so Ward keeps that automaton
//! ([`Acmp`]) but runs it only on values where the `aho-corasick` crate has found a
//! phrase: acmp only ever reports real occurrences, so no occurrence means no match.
//! That automaton is built by [`PhraseSet::prepare`] at the end of the load, and not at
//! all for a rule link the rule-set prefilter gates on these very phrases (the gate has
//! already found one in every value that reaches the operator).

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use super::Captures;

#[derive(Debug)]
pub struct PhraseSet {
    /// Fast test for "some phrase occurs" (a necessary condition for an acmp match);
    /// `None` when not worth it (gated link) or not buildable: acmp alone decides.
    prefilter: OnceLock<Option<AhoCorasick>>,
    acmp: Acmp,
    /// The phrases themselves, when all are selective enough to prefilter on.
    literals: Option<Vec<Vec<u8>>>,
}

impl PhraseSet {
    pub fn new(phrases: Vec<Vec<u8>>) -> Result<PhraseSet, String> {
        let literals =
            (!phrases.is_empty() && phrases.iter().all(|p| super::literals::selective(p))).then(|| phrases.clone());
        Ok(PhraseSet { prefilter: OnceLock::new(), acmp: Acmp::new(phrases), literals })
    }

    /// Builds the prefilter, or skips it when `gated` (see the module documentation).
    pub fn prepare(&self, gated: bool) -> Result<(), String> {
        if gated {
            let _ = self.prefilter.set(None);
            return Ok(());
        }
        if self.prefilter.get().is_none() {
            let _ = self.prefilter.set(Some(self.build_prefilter()?));
        }
        Ok(())
    }

    fn build_prefilter(&self) -> Result<AhoCorasick, String> {
        AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&self.acmp.phrases)
            .map_err(|e| format!("cannot build phrase matcher: {e}"))
    }

    /// See [`super::Operator::required_literals`].
    pub fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        self.literals.clone()
    }

    /// True when acmp matches `input`; fills `caps[0]` with its match text.
    pub fn evaluate(&self, input: &[u8], caps: Option<&mut Captures>) -> bool {
        // Not prepared (a set built outside a rule-set load): built on first use.
        if let Some(prefilter) = self.prefilter.get_or_init(|| self.build_prefilter().ok()) {
            if !prefilter.is_match(input) {
                return false;
            }
        }
        let Some(text) = self.acmp.first_match(input) else {
            return false;
        };
        if let Some(caps) = caps {
            caps.clear();
            caps.push(text.to_vec());
        }
        true
    }
}

const ROOT: usize = 0;

/// ModSecurity's acmp automaton, quirks included.
#[derive(Debug)]
struct Acmp {
    nodes: Vec<Node>,
    phrases: Vec<Vec<u8>>,
}

#[derive(Debug, Default)]
struct Node {
    /// (lower-cased byte, node), sorted by byte.
    children: Vec<(u8, usize)>,
    fail: usize,
    /// A phrase ends here.
    is_last: bool,
    /// Some node on the failure chain ends a phrase.
    other_match: bool,
    /// The node's text: the first `depth` bytes of phrase `text_of`.
    text_of: usize,
    depth: usize,
}

impl Acmp {
    fn new(phrases: Vec<Vec<u8>>) -> Acmp {
        let mut nodes = vec![Node::default()];
        for (index, phrase) in phrases.iter().enumerate() {
            let mut at = ROOT;
            for (i, &b) in phrase.iter().enumerate() {
                let letter = b.to_ascii_lowercase();
                at = match Self::child_in(&nodes, at, letter) {
                    Some(child) => child,
                    None => {
                        let child = nodes.len();
                        nodes.push(Node { text_of: index, depth: i + 1, ..Node::default() });
                        let children = &mut nodes[at].children;
                        let slot = children.partition_point(|&(l, _)| l < letter);
                        children.insert(slot, (letter, child));
                        child
                    }
                };
            }
            if at != ROOT {
                nodes[at].is_last = true;
            }
        }
        // Failure links level by level: the parent's failure node's child, else the root.
        let mut level: Vec<(usize, usize, u8)> = nodes[ROOT].children.iter().map(|&(l, c)| (ROOT, c, l)).collect();
        while !level.is_empty() {
            let mut next = Vec::new();
            for &(parent, node, letter) in &level {
                nodes[node].fail = if parent == ROOT {
                    ROOT
                } else {
                    Self::child_in(&nodes, nodes[parent].fail, letter).unwrap_or(ROOT)
                };
                next.extend(nodes[node].children.iter().map(|&(l, c)| (node, c, l)));
            }
            level = next;
        }
        for node in 1..nodes.len() {
            let mut at = nodes[node].fail;
            while at != ROOT {
                if nodes[at].is_last {
                    nodes[node].other_match = true;
                    break;
                }
                at = nodes[at].fail;
            }
        }
        Acmp { nodes, phrases }
    }

    fn child_in(nodes: &[Node], node: usize, letter: u8) -> Option<usize> {
        let children = &nodes.get(node)?.children;
        children.binary_search_by_key(&letter, |&(l, _)| l).ok().and_then(|i| children.get(i)).map(|&(_, c)| c)
    }

    fn text(&self, node: usize) -> &[u8] {
        self.nodes
            .get(node)
            .and_then(|n| self.phrases.get(n.text_of).and_then(|p| p.get(..n.depth)))
            .unwrap_or_default()
    }

    /// acmp_process_quick: the text reported at the first match, if any.
    fn first_match(&self, input: &[u8]) -> Option<&[u8]> {
        let mut node = ROOT;
        for &b in input {
            let letter = b.to_ascii_lowercase();
            // Follow failure links until a transition exists or the root has none.
            let go_to = loop {
                if let Some(next) = Self::child_in(&self.nodes, node, letter) {
                    if self.nodes.get(next).is_some_and(|n| n.is_last) {
                        return Some(self.text(next));
                    }
                    break Some(next);
                }
                if node == ROOT {
                    break None;
                }
                node = self.nodes.get(node).map_or(ROOT, |n| n.fail);
            };
            if let Some(next) = go_to {
                node = next;
            }
            if self.nodes.get(node).is_some_and(|n| n.other_match) {
                return Some(self.text(node));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(phrases: &[&str]) -> PhraseSet {
        PhraseSet::new(phrases.iter().map(|p| p.as_bytes().to_vec()).collect()).unwrap()
    }

    #[test]
    fn matches_and_match_text_as_modsecurity() {
        let mut caps = Captures::new();
        let cases: &[(&[&str], &str, Option<&str>)] = &[
            (&["Select", "abcd", "bc", "select"], "xx SELECT yy", Some("Select")),
            // The state reached is "abc" (a prefix of abcd); "bc" is reported by it.
            (&["Select", "abcd", "bc", "select"], "abc", Some("abc")),
            (&["Select", "abcd", "bc", "select"], "xbcx", Some("bc")),
            (&["Select", "abcd", "bc", "select"], "nothing", None),
            // acmp's one-level failure links miss `cde` here (as ModSecurity 3.0.9 does)...
            (&["abcdz", "bcx", "cde"], "abcde", None),
            // ...but not when the path does not lead through the longer phrase.
            (&["abcdz", "bcx", "cde"], "xcdex", Some("cde")),
            (&["cde"], "abcde", Some("cde")),
        ];
        // Unprepared (prefilter built on first use), prepared, gated (no prefilter): same answers.
        for prepare in [None, Some(false), Some(true)] {
            for (phrases, input, want) in cases {
                let s = set(phrases);
                if let Some(gated) = prepare {
                    s.prepare(gated).unwrap();
                }
                let got = s.evaluate(input.as_bytes(), Some(&mut caps));
                assert_eq!(got, want.is_some(), "{phrases:?} {input:?} {prepare:?}");
                if let Some(want) = want {
                    assert_eq!(caps, vec![want.as_bytes().to_vec()], "{input:?}");
                }
            }
        }
    }
}
