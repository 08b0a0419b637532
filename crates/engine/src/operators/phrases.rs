//! The phrase matcher behind `@pm` and `@pmFromFile`.
//!
//! ModSecurity v3 uses its own Aho-Corasick (src/utils/acmp.cc): ASCII case-insensitive,
//! it stops at the first position where some phrase ends and reports the text of the
//! automaton's state there, i.e. the longest suffix of the input read so far that begins
//! some phrase, spelt as in the first phrase added with that beginning. Ward finds the
//! same end position with the `aho-corasick` crate and rebuilds that text from a sorted
//! copy of the phrases, only when a capture is asked for.
//!
//! Known difference: acmp builds its failure links one level deep only (a node fails to
//! its parent's failure node's child, else to the root), so it can miss a phrase that a
//! longer, partly matched phrase overlaps, e.g. `cde` in "abcde" with phrases
//! `abcdz bcx cde`. Ward finds every phrase.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use super::Captures;

#[derive(Debug)]
pub struct PhraseSet {
    matcher: AhoCorasick,
    /// Lower-cased phrases in byte order, each with its index in `phrases`.
    sorted: Vec<(Vec<u8>, usize)>,
    /// Phrases in the order given.
    phrases: Vec<Vec<u8>>,
    longest: usize,
}

impl PhraseSet {
    pub fn new(phrases: Vec<Vec<u8>>) -> Result<PhraseSet, String> {
        let matcher = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&phrases)
            .map_err(|e| format!("cannot build phrase matcher: {e}"))?;
        let mut sorted: Vec<(Vec<u8>, usize)> = phrases
            .iter()
            .enumerate()
            .map(|(i, p)| (p.to_ascii_lowercase(), i))
            .collect();
        sorted.sort();
        let longest = phrases.iter().map(Vec::len).max().unwrap_or(0);
        Ok(PhraseSet {
            matcher,
            sorted,
            phrases,
            longest,
        })
    }

    /// True when a phrase occurs in `input`; fills `caps[0]` with ModSecurity's match text.
    pub fn evaluate(&self, input: &[u8], caps: Option<&mut Captures>) -> bool {
        let Some(found) = self.matcher.find(input) else {
            return false;
        };
        if let Some(caps) = caps {
            caps.clear();
            caps.push(self.state_text(input, found.end(), found.len()));
        }
        true
    }

    /// The text acmp reports when it stops at `end`: the longest suffix of `input[..end]`
    /// that begins a phrase (at least the `matched` bytes of the phrase found).
    fn state_text(&self, input: &[u8], end: usize, matched: usize) -> Vec<u8> {
        let read = input.get(..end).unwrap_or_default();
        for len in (matched..=self.longest.min(end)).rev() {
            let key = read
                .get(end - len..)
                .unwrap_or_default()
                .to_ascii_lowercase();
            let from = self
                .sorted
                .partition_point(|(p, _)| p.as_slice() < key.as_slice());
            // Among the phrases beginning with `key`, the first one given names the state.
            let first = self
                .sorted
                .get(from..)
                .unwrap_or_default()
                .iter()
                .take_while(|(p, _)| p.starts_with(&key))
                .map(|&(_, i)| i)
                .min();
            if let Some(text) = first
                .and_then(|i| self.phrases.get(i))
                .and_then(|p| p.get(..len))
            {
                return text.to_vec();
            }
        }
        read.get(end.saturating_sub(matched)..)
            .unwrap_or_default()
            .to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_text_is_the_automaton_state() {
        let set = PhraseSet::new(vec![
            b"Select".to_vec(),
            b"abcd".to_vec(),
            b"bc".to_vec(),
            b"select".to_vec(),
        ])
        .unwrap();
        let mut caps = Captures::new();
        for (input, want) in [
            ("xx SELECT yy", Some("Select")),
            ("abc", Some("abc")),
            ("xbcx", Some("bc")),
            ("nothing", None),
        ] {
            let got = set.evaluate(input.as_bytes(), Some(&mut caps));
            assert_eq!(got, want.is_some(), "{input:?}");
            if let Some(want) = want {
                assert_eq!(caps, vec![want.as_bytes().to_vec()], "{input:?}");
            }
        }
    }
}
