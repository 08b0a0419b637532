//! `@pmFromFile` (alias `@pmf`)
//!
//! Description: `@pm` with the phrases read from a file, one per line, taken as written
//! (no trimming, no escapes). Empty lines and lines whose first non-space byte is `#` are
//! skipped, as in ModSecurity v3.
//! Arguments: a path, relative to the rule file's directory (or absolute).
//! Returns: true when a phrase occurs; captures the matched text into TX:0.
//! Example: `SecRule REQUEST_HEADERS:User-Agent "@pmFromFile scanners-user-agents.data" "id:1,deny"`

use super::phrases::PhraseSet;
use super::{data_file, Captures, Operator, OperatorContext};

#[derive(Debug)]
pub struct PmFromFile {
    phrases: PhraseSet,
}

impl PmFromFile {
    pub fn create(param: &str, ctx: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        let data = data_file::read(param, ctx)?;
        let phrases = data.split(|&b| b == b'\n').filter(|line| !is_comment(line)).map(<[u8]>::to_vec).collect();
        Ok(Box::new(PmFromFile { phrases: PhraseSet::new(phrases)? }))
    }
}

/// Empty, or `#` after nothing but whitespace.
fn is_comment(line: &[u8]) -> bool {
    match line.iter().position(|&b| b == b'#') {
        Some(hash) => {
            line.get(..hash).unwrap_or_default().iter().all(|b| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
        }
        None => line.is_empty(),
    }
}

impl Operator for PmFromFile {
    fn evaluate(&self, input: &[u8], caps: Option<&mut Captures>) -> bool {
        self.phrases.evaluate(input, caps)
    }

    fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        self.phrases.required_literals()
    }

    fn prepare(&self, gated: bool) -> Result<(), String> {
        self.phrases.prepare(gated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments() {
        for (line, want) in [("", true), ("# x", true), ("  # x", true), ("a # x", false), ("abc", false), (" ", false)]
        {
            assert_eq!(is_comment(line.as_bytes()), want, "{line:?}");
        }
    }

    #[test]
    fn loads_relative_to_base_dir() {
        let dir = std::env::temp_dir().join(format!("ward-pmf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("list.data"), "# comment\n\nfoo bar\nbaz\n").unwrap();
        let ctx = OperatorContext::new(&dir);
        let op = PmFromFile::create("list.data", &ctx).unwrap();
        let mut caps = Captures::new();
        assert!(op.evaluate(b"xx FOO BARx", Some(&mut caps)));
        assert_eq!(caps, vec![b"foo bar".to_vec()]);
        assert!(!op.evaluate(b"foo", None));
        assert!(PmFromFile::create("missing.data", &ctx).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
