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
    /// All phrases are selective enough to prefilter on (see `required_literals`).
    selective: bool,
}

impl PhraseSet {
    pub fn new(phrases: Vec<Vec<u8>>) -> Result<PhraseSet, String> {
        let selective = !phrases.is_empty() && phrases.iter().all(|p| super::literals::selective(p));
        Ok(PhraseSet { prefilter: OnceLock::new(), acmp: Acmp::new(&phrases), selective })
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
            .build(self.acmp.phrases())
            .map_err(|e| format!("cannot build phrase matcher: {e}"))
    }

    /// See [`super::Operator::required_literals`] (asked at load only: made anew). A gate
    /// looks for their starts only (`prefilter::GATE_LEN`).
    pub fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        self.selective.then(|| self.acmp.phrases().map(<[u8]>::to_vec).collect())
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

const ROOT: u32 = 0;

/// ModSecurity's acmp automaton, quirks included. Flat arrays rather than a node per
/// allocation: the CRS's data files make ~100,000 nodes, which took ~13 MB as boxed
/// child lists and ~3 MB like this (kept by every worker for its life).
#[derive(Debug)]
struct Acmp {
    nodes: Vec<Node>,
    /// Children of node `n`: `letters`/`targets[n.first .. n.first + n.count]`, sorted by
    /// (lower-cased) letter.
    letters: Vec<u8>,
    targets: Vec<u32>,
    /// The phrases, one after another: phrase `i` is `text[starts[i]..starts[i + 1]]`.
    text: Vec<u8>,
    starts: Vec<u32>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Node {
    first: u32,
    fail: u32,
    /// The node's text: the first `depth` bytes of phrase `text_of`.
    text_of: u32,
    depth: u32,
    count: u16,
    /// A phrase ends here.
    is_last: bool,
    /// Some node on the failure chain ends a phrase.
    other_match: bool,
}

impl Acmp {
    fn new(phrases: &[Vec<u8>]) -> Acmp {
        // The trie from the phrases in (lower-cased) order: each phrase shares its path
        // with the one before up to their common prefix. A node's text is spelt as in
        // the first phrase (by index) through it, as acmp's insertion in order does.
        let lower: Vec<Vec<u8>> = phrases.iter().map(|p| p.to_ascii_lowercase()).collect();
        let mut order: Vec<u32> = (0..phrases.len() as u32).collect();
        order.sort_by(|&a, &b| lower[a as usize].cmp(&lower[b as usize]).then(a.cmp(&b)));
        let mut nodes = vec![Node::default()];
        // (parent, letter, child), each parent's children in letter order.
        let mut edges: Vec<(u32, u8, u32)> = Vec::new();
        // The previous phrase's path: path[d] is its node at depth d.
        let mut path: Vec<u32> = vec![ROOT];
        let mut prev: &[u8] = &[];
        for &index in &order {
            let phrase = lower[index as usize].as_slice();
            let shared = prev.iter().zip(phrase).take_while(|(a, b)| a == b).count();
            path.truncate(shared + 1);
            for node in &path[1..] {
                let n = &mut nodes[*node as usize];
                n.text_of = n.text_of.min(index);
            }
            for (i, &letter) in phrase.iter().enumerate().skip(shared) {
                let child = nodes.len() as u32;
                nodes.push(Node { text_of: index, depth: (i + 1) as u32, ..Node::default() });
                edges.push((path[i], letter, child));
                path.push(child);
            }
            if path.len() > 1 {
                nodes[path[path.len() - 1] as usize].is_last = true;
            }
            prev = phrase;
        }
        // Children grouped by parent, in letter order (a stable counting sort).
        for &(parent, _, _) in &edges {
            nodes[parent as usize].count += 1;
        }
        let mut first = 0u32;
        for n in nodes.iter_mut() {
            n.first = first;
            first += u32::from(n.count);
        }
        let (mut letters, mut targets) = (vec![0u8; edges.len()], vec![0u32; edges.len()]);
        let mut fill: Vec<u32> = nodes.iter().map(|n| n.first).collect();
        for &(parent, letter, child) in &edges {
            let at = &mut fill[parent as usize];
            letters[*at as usize] = letter;
            targets[*at as usize] = child;
            *at += 1;
        }
        let (mut text, mut starts) = (Vec::new(), vec![0u32]);
        for p in phrases {
            text.extend_from_slice(p);
            starts.push(text.len() as u32);
        }
        let mut acmp = Acmp { nodes, letters, targets, text, starts };
        acmp.link_failures();
        acmp
    }

    /// Failure links level by level: the parent's failure node's child, else the root.
    fn link_failures(&mut self) {
        let mut level: Vec<(u32, u32, u8)> = self.children(ROOT).map(|(l, c)| (ROOT, c, l)).collect();
        while !level.is_empty() {
            let mut next = Vec::new();
            for &(parent, node, letter) in &level {
                let fail =
                    if parent == ROOT { ROOT } else { self.child(self.node(parent).fail, letter).unwrap_or(ROOT) };
                // A phrase ends on the failure chain: at the failure node or on its chain
                // (shallower, so settled on an earlier level).
                let f = self.node(fail);
                let n = &mut self.nodes[node as usize];
                n.fail = fail;
                n.other_match = fail != ROOT && (f.is_last || f.other_match);
                next.extend(self.children(node).map(|(l, c)| (node, c, l)));
            }
            level = next;
        }
    }

    fn node(&self, n: u32) -> Node {
        self.nodes.get(n as usize).copied().unwrap_or_default()
    }

    fn edges(&self, node: &Node) -> (&[u8], &[u32]) {
        let r = node.first as usize..node.first as usize + node.count as usize;
        (self.letters.get(r.clone()).unwrap_or_default(), self.targets.get(r).unwrap_or_default())
    }

    fn children(&self, n: u32) -> impl Iterator<Item = (u8, u32)> + '_ {
        let (letters, targets) = self.edges(&self.node(n));
        letters.iter().copied().zip(targets.iter().copied())
    }

    fn child(&self, n: u32, letter: u8) -> Option<u32> {
        self.child_of(&self.node(n), letter)
    }

    fn child_of(&self, node: &Node, letter: u8) -> Option<u32> {
        let (letters, targets) = self.edges(node);
        letters.binary_search(&letter).ok().and_then(|k| targets.get(k)).copied()
    }

    fn phrase(&self, i: usize) -> &[u8] {
        match (self.starts.get(i), self.starts.get(i + 1)) {
            (Some(&a), Some(&b)) => self.text.get(a as usize..b as usize).unwrap_or_default(),
            _ => &[],
        }
    }

    fn phrases(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.starts.len().saturating_sub(1)).map(|i| self.phrase(i))
    }

    fn text(&self, node: &Node) -> &[u8] {
        self.phrase(node.text_of as usize).get(..node.depth as usize).unwrap_or_default()
    }

    /// acmp_process_quick: the text reported at the first match, if any.
    fn first_match(&self, input: &[u8]) -> Option<&[u8]> {
        let (mut at, mut node) = (ROOT, self.node(ROOT));
        for &b in input {
            let letter = b.to_ascii_lowercase();
            // Follow failure links until a transition exists or the root has none.
            loop {
                if let Some(next) = self.child_of(&node, letter) {
                    let n = self.node(next);
                    if n.is_last {
                        return Some(self.text(&n));
                    }
                    (at, node) = (next, n);
                    break;
                }
                if at == ROOT {
                    break;
                }
                at = node.fail;
                node = self.node(at);
            }
            if node.other_match {
                return Some(self.text(&node));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_literals_are_the_phrases() {
        // The gate cuts them to their starts (prefilter's `a_gate_looks_for_a_long_literals_start`).
        let s = set(&["Fatal error: Uncaught exception", "abc"]);
        assert_eq!(s.required_literals(), Some(vec![b"Fatal error: Uncaught exception".to_vec(), b"abc".to_vec()]));
        // The operator itself wants the whole phrase.
        assert!(!s.evaluate(b"Fatal error: Unknown", None));
        assert!(s.evaluate(b"PHP Fatal error: Uncaught exception 'E'", None));
        assert_eq!(set(&["ab", "abc"]).required_literals(), None, "not selective");
    }

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
            // A state is spelt as the first phrase through it: "abd" (not "AB", which ends
            // there, nor "ABC", which sorts before "abd").
            (&["abd", "AB", "ABC"], "xxABxx", Some("ab")),
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
