//! The files a rule set was loaded from (rule files, `Include` patterns, `@pmFromFile` and
//! `@ipMatchFromFile` data), so that a reload can tell whether compiling the same sources
//! again would give the same set and reuse it instead (no second copy in memory, no
//! compile time).
//!
//! Every read is recorded with a SHA-256 of what it returned, failed reads too (a data file
//! is looked up in two places; the first one appearing changes the result), and every
//! `Include` pattern with the paths it expanded to.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

type Sha = [u8; 32];

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// (path, digest of its bytes; None when it could not be read)
    files: Vec<(PathBuf, Option<Sha>)>,
    /// (pattern, the sorted paths it matched)
    globs: Vec<(String, Vec<PathBuf>)>,
}

fn digest(bytes: &[u8]) -> Sha {
    Sha256::digest(bytes).into()
}

/// The sorted paths `pattern` matches now.
fn expand(pattern: &str) -> Result<Vec<PathBuf>, glob::PatternError> {
    let mut paths: Vec<PathBuf> = glob::glob(pattern)?.filter_map(Result::ok).collect();
    paths.sort();
    Ok(paths)
}

impl Inputs {
    /// The files an `Include` argument names: `pattern` relative to `base` unless
    /// absolute, a glob (`*`, `?`, `[`) expanded and remembered.
    pub(crate) fn include_paths(&mut self, pattern: &str, base: &Path) -> Result<Vec<PathBuf>, glob::PatternError> {
        let full = if Path::new(pattern).is_absolute() { PathBuf::from(pattern) } else { base.join(pattern) };
        let full_s = full.to_string_lossy();
        if full_s.contains(['*', '?', '[']) {
            self.glob(&full_s)
        } else {
            Ok(vec![full])
        }
    }

    /// Reads `path`, remembering what it returned.
    pub(crate) fn read(&mut self, path: &Path) -> std::io::Result<Vec<u8>> {
        let r = std::fs::read(path);
        self.files.push((path.to_path_buf(), r.as_ref().ok().map(|b| digest(b))));
        r
    }

    /// Expands an `Include` pattern, remembering the result.
    pub(crate) fn glob(&mut self, pattern: &str) -> Result<Vec<PathBuf>, glob::PatternError> {
        let paths = expand(pattern)?;
        self.globs.push((pattern.to_string(), paths.clone()));
        Ok(paths)
    }

    /// Whether every recorded read and pattern gives the same result today.
    pub fn unchanged(&self) -> bool {
        self.globs.iter().all(|(p, was)| expand(p).is_ok_and(|now| &now == was))
            && self.files.iter().all(|(p, was)| std::fs::read(p).ok().map(|b| digest(&b)) == *was)
    }

    /// How many files were read (for the load log).
    pub fn files(&self) -> usize {
        self.files.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ward-inputs-{name}-{}", std::process::id()));
        std::fs::remove_dir_all(&d).ok();
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_changed_file_is_seen() {
        let d = dir("file");
        let f = d.join("a.conf");
        std::fs::write(&f, "one").unwrap();
        let mut i = Inputs::default();
        assert_eq!(i.read(&f).unwrap(), b"one");
        assert!(i.unchanged());
        std::fs::write(&f, "two").unwrap();
        assert!(!i.unchanged());
        std::fs::write(&f, "one").unwrap();
        assert!(i.unchanged());
        std::fs::remove_file(&f).unwrap();
        assert!(!i.unchanged());
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn a_missing_file_that_appears_is_seen() {
        let d = dir("missing");
        let f = d.join("later.data");
        let mut i = Inputs::default();
        assert!(i.read(&f).is_err());
        assert!(i.unchanged());
        std::fs::write(&f, "").unwrap();
        assert!(!i.unchanged());
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn a_rule_set_records_its_rule_and_data_files() {
        use crate::ruleset::{RuleSet, RuleSource};
        let d = dir("ruleset");
        std::fs::create_dir_all(d.join("rules")).unwrap();
        std::fs::write(d.join("main.conf"), "Include rules/*.conf\n").unwrap();
        std::fs::write(
            d.join("rules/a.conf"),
            "SecRule ARGS \"@pmFromFile words.data\" \"id:1,phase:2,deny\"\n\
             SecRule REMOTE_ADDR \"@ipMatchFromFile ips.txt\" \"id:2,phase:1,deny\"\n",
        )
        .unwrap();
        std::fs::write(d.join("rules/words.data"), "evil\n").unwrap();
        std::fs::write(d.join("rules/ips.txt"), "10.0.0.1\n").unwrap();
        let rs = RuleSet::compile(&[RuleSource::File(d.join("main.conf"))]).unwrap();
        // main.conf, a.conf, and each data file where found (relative to the working
        // directory first: not found there).
        assert_eq!(rs.inputs().files(), 6, "{:?}", rs.inputs());
        assert!(rs.inputs().unchanged());
        for (path, changed) in [("rules/words.data", "evil\nworse\n"), ("rules/ips.txt", "10.0.0.2\n"), ("main.conf", "# x\n")]
        {
            let was = std::fs::read(d.join(path)).unwrap();
            std::fs::write(d.join(path), changed).unwrap();
            assert!(!rs.inputs().unchanged(), "{path} changed");
            std::fs::write(d.join(path), was).unwrap();
            assert!(rs.inputs().unchanged(), "{path} restored");
        }
        std::fs::write(d.join("rules/b.conf"), "").unwrap();
        assert!(!rs.inputs().unchanged(), "a new file matches the Include");
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn a_new_match_of_a_pattern_is_seen() {
        let d = dir("glob");
        std::fs::write(d.join("a.conf"), "").unwrap();
        let pattern = format!("{}/*.conf", d.display());
        let mut i = Inputs::default();
        assert_eq!(i.glob(&pattern).unwrap(), vec![d.join("a.conf")]);
        assert!(i.unchanged());
        std::fs::write(d.join("b.txt"), "").unwrap();
        assert!(i.unchanged(), "not matched by the pattern");
        std::fs::write(d.join("b.conf"), "").unwrap();
        assert!(!i.unchanged());
        std::fs::remove_dir_all(&d).ok();
    }
}
