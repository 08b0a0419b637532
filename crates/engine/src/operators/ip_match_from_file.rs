//! `@ipMatchFromFile` (alias `@ipMatchF`)
//!
//! Description: `@ipMatch` with the list read from a file. As in ModSecurity v3 every line
//! is cut at its first `#` and then read like an `@ipMatch` parameter (commas allowed);
//! a line left empty is skipped, any other malformed line (stray spaces included) is an
//! error.
//! Arguments: a path, relative to the rule file's directory (or absolute).
//! Returns: true when the address is in the set.
//! Example: `SecRule REMOTE_ADDR "@ipMatchFromFile blocked.txt" "id:1,deny"`

use super::ip_match::IpSet;
use super::{data_file, Captures, Operator, OperatorContext};

#[derive(Debug)]
pub struct IpMatchFromFile {
    set: IpSet,
}

impl IpMatchFromFile {
    pub fn create(param: &str, ctx: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        let data = data_file::read(param, ctx)?;
        let text = String::from_utf8_lossy(&data);
        let mut set = IpSet::default();
        for (n, line) in text.split('\n').enumerate() {
            let line = line.split('#').next().unwrap_or_default();
            set.add_list(line).map_err(|e| format!("{param}:{}: {e}", n + 1))?;
        }
        Ok(Box::new(IpMatchFromFile { set }))
    }
}

impl Operator for IpMatchFromFile {
    fn evaluate(&self, input: &[u8], _: Option<&mut Captures>) -> bool {
        self.set.contains(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_and_matches() {
        let dir = std::env::temp_dir().join(format!("ward-ipf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ips.txt"), "# blocked\n10.0.0.0/8\n192.168.1.1,::1# two\n\n").unwrap();
        std::fs::write(dir.join("bad.txt"), "10.0.0.1 \n").unwrap();
        let ctx = OperatorContext::new(&dir);
        let op = IpMatchFromFile::create("ips.txt", &ctx).unwrap();
        for (input, want) in [("10.2.3.4", true), ("192.168.1.1", true), ("::1", true), ("11.0.0.1", false)] {
            assert_eq!(op.evaluate(input.as_bytes(), None), want, "{input}");
        }
        assert!(IpMatchFromFile::create("bad.txt", &ctx).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
