//! `@rx` patterns checked at load and built when a rule that can run needs them.
//!
//! Building a pattern (the `regex` crate's automata and the prefilter's literal analysis)
//! is most of a rule-set load, and at paranoia level 1 the CRS v4 never runs 132 of its
//! 318 patterns (those of the PL2-4 rules, jumped over by its paranoia `skipAfter`s).
//! So a pattern is only checked: PCRE2 compiling it (no JIT, ~50 µs) proves that
//! [`Pattern::new`] will succeed, which falls back to that same compile. A pattern PCRE2
//! rejects is built at once, so its error, or its success on `regex` alone, is decided at
//! load. A load checks its patterns once the files are read, on two cores, and reports
//! the first bad one in the files' order (see `compile`). The load then builds the
//! patterns of the rules its walk plans reach (prebuild.rs); any other is built by the
//! first request that evaluates it (one whose `ctl` removed a TX target the plans relied
//! on, or that did not start from the folded setup).

use std::sync::OnceLock;

use super::pattern::{Pattern, PcreLimits};

#[derive(Debug)]
pub struct Deferred {
    pcre: Box<str>,
    limits: PcreLimits,
    /// `None` only if a build that PCRE2's check vouched for failed after all: no match.
    built: OnceLock<Option<Pattern>>,
}

impl Deferred {
    /// Checks `pcre` (ModSecurity's flags); builds it now only when PCRE2 rejects it.
    #[cfg(test)]
    pub fn new(pcre: &str) -> Result<Deferred, String> {
        let d = Self::unchecked(pcre);
        d.check()?;
        Ok(d)
    }

    /// Not checked yet: [`Deferred::check`] must run before the pattern is used.
    pub fn unchecked(pcre: &str) -> Deferred {
        Deferred { pcre: pcre.into(), limits: PcreLimits::default(), built: OnceLock::new() }
    }

    /// PCRE2's check; a pattern it rejects is built now (its error, or `regex` alone).
    pub fn check(&self) -> Result<(), String> {
        if self.built.get().is_some() || super::pattern::pcre2_accepts(&self.pcre) {
            return Ok(());
        }
        let p = Pattern::new(&self.pcre)?;
        let _ = self.built.set(Some(p));
        Ok(())
    }

    /// Built at once (outside a rule-set load: nothing to wait for).
    pub fn now(pcre: &str) -> Result<Deferred, String> {
        let built = OnceLock::from(Some(Pattern::new(pcre)?));
        Ok(Deferred { pcre: pcre.into(), limits: PcreLimits::default(), built })
    }

    /// The pattern, built on first use.
    pub fn get(&self) -> Option<&Pattern> {
        self.built.get_or_init(|| self.build()).as_ref()
    }

    /// The pattern if it has been built.
    pub fn built(&self) -> Option<&Pattern> {
        self.built.get()?.as_ref()
    }

    fn build(&self) -> Option<Pattern> {
        let mut p = Pattern::new(&self.pcre).ok()?;
        p.set_limits(self.limits).ok()?;
        Some(p)
    }

    /// Applies `SecPcreMatchLimit*` now, or to the build when it comes.
    pub fn set_limits(&mut self, limits: PcreLimits) -> Result<(), String> {
        self.limits = limits;
        match self.built.get_mut() {
            Some(Some(p)) => p.set_limits(limits),
            _ => Ok(()),
        }
    }

    /// The pattern's length: what building it costs, roughly.
    pub fn cost(&self) -> usize {
        self.pcre.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_now_built_on_first_use() {
        let cases: &[(&str, &[u8], bool)] = &[
            (r"(?i)union\s+select", b"1 UNION  SELECT 2", true),
            (r"a(?=b)", b"ab", true), // lookahead: PCRE2 only
            (r"^0?$", b"5\n", false), // no `^` after a final newline: PCRE's meaning
            ("abc", b"abd", false),
        ];
        for &(pcre, input, want) in cases {
            let d = Deferred::new(pcre).unwrap();
            assert!(d.built().is_none(), "{pcre}: built at load");
            assert_eq!(d.get().map(|p| p.is_match(input)), Some(want), "{pcre}");
            assert!(d.built().is_some(), "{pcre}: built once used");
        }
    }

    #[test]
    fn now_builds_at_once() {
        assert!(Deferred::now("a+b").unwrap().built().is_some_and(|p| p.is_match(b"aab")));
        assert!(Deferred::now("(").is_err());
    }

    #[test]
    fn a_pattern_pcre2_rejects_is_decided_at_once() {
        // Invalid everywhere: the error comes from the check, not from a later request.
        assert!(Deferred::new("(").is_err());
        assert!(Deferred::new("a{2,1}").is_err());
    }

    #[test]
    fn limits_reach_a_later_build() {
        // A backreference (PCRE2 only) that a low match limit cuts short.
        let limits = PcreLimits { match_limit: Some(2), depth_limit: None };
        let mut d = Deferred::new(r"(w+)+\1$").unwrap();
        d.set_limits(limits).unwrap();
        let mut hit = false;
        assert!(!d.get().unwrap().is_match_limited(b"wwwwwwww", &mut hit));
        assert!(hit, "the build took the limits set before it");
        // Set after the build: applied to the built pattern.
        let mut d = Deferred::new(r"(w+)+\1$").unwrap();
        assert!(d.get().unwrap().is_match(b"wwwwwwww"));
        d.set_limits(limits).unwrap();
        assert!(!d.get().unwrap().is_match(b"wwwwwwww"));
    }
}
