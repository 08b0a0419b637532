//! `@ipMatch`
//!
//! Description: true when the value is an IPv4 or IPv6 address inside one of the listed
//! addresses or networks. Parsing follows ModSecurity v3 (src/utils/msc_tree.cc): entries
//! are split on `,` with no trimming; an entry with `:` is IPv6, else IPv4; a `/N` prefix
//! length is read like `atoi` and must be 1..=32 (IPv4) or 1..=127 (IPv6) — ModSecurity
//! rejects `/0`, and an explicit IPv6 `/128` too (it keeps the suffix in the address);
//! host bits of the network are ignored. A value that is not an address does not match.
//! Arguments: comma-separated addresses/networks, e.g. `127.0.0.1,10.0.0.0/8,::1`.
//! Returns: true when the address is in the set.
//! Example: `SecRule REMOTE_ADDR "@ipMatch 192.168.1.0/24,::1" "id:1,allow"`

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Captures, Operator, OperatorContext};

/// A set of IPv4 and IPv6 networks.
#[derive(Debug, Default)]
pub struct IpSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl IpSet {
    /// Adds the comma-separated entries of one parameter or file line.
    pub fn add_list(&mut self, list: &str) -> Result<(), String> {
        for entry in list.split(',').filter(|e| !e.is_empty()) {
            self.add(entry).ok_or_else(|| format!("could not add entry {entry:?} from: {list}"))?;
        }
        Ok(())
    }

    fn add(&mut self, entry: &str) -> Option<()> {
        if entry.contains(':') {
            // ModSecurity copies at most 127 bytes of the entry.
            let entry = truncate(entry, 127);
            let (addr, bits) = match entry.split_once('/') {
                None => (entry, 128),
                Some((_, mask)) if mask.contains(':') => return None,
                // With an explicit /128 ModSecurity leaves "/128" in the address: rejected.
                Some((addr, mask)) => match atoi(mask) {
                    1..=127 => (addr, atoi(mask) as u32),
                    _ => return None,
                },
            };
            let net = u128::from(addr.parse::<Ipv6Addr>().ok()?);
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            self.v6.push((net & mask, mask));
        } else {
            let entry = truncate(entry, 31);
            let (addr, bits) = match entry.split_once('/') {
                None => (entry, 32),
                Some((_, mask)) if mask.contains('.') => return None,
                Some((addr, mask)) => match atoi(mask) {
                    1..=32 => (addr, atoi(mask) as u32),
                    _ => return None,
                },
            };
            let net = u32::from(addr.parse::<Ipv4Addr>().ok()?);
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            self.v4.push((net & mask, mask));
        }
        Some(())
    }

    /// True when `value` (read up to a NUL, as ModSecurity's C string) is in the set.
    pub fn contains(&self, value: &[u8]) -> bool {
        let value = value.split(|&b| b == 0).next().unwrap_or_default();
        let Ok(text) = std::str::from_utf8(value) else {
            return false;
        };
        if text.contains(':') {
            let Ok(addr) = text.parse::<Ipv6Addr>() else {
                return false;
            };
            let addr = u128::from(addr);
            self.v6.iter().any(|&(net, mask)| addr & mask == net)
        } else {
            let Ok(addr) = text.parse::<Ipv4Addr>() else {
                return false;
            };
            let addr = u32::from(addr);
            self.v4.iter().any(|&(net, mask)| addr & mask == net)
        }
    }
}

/// The first `max` bytes of `s` (on a char boundary), like ModSecurity's fixed buffers.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// C's `atoi`: leading whitespace, sign, digits; 0 without digits.
fn atoi(s: &str) -> i64 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (sign, digits) = match t.as_bytes().first() {
        Some(b'-') => (-1, t.get(1..).unwrap_or_default()),
        Some(b'+') => (1, t.get(1..).unwrap_or_default()),
        _ => (1, t),
    };
    let n = digits.bytes().take_while(u8::is_ascii_digit).take(12).fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
    sign * n
}

#[derive(Debug)]
pub struct IpMatch {
    set: IpSet,
}

impl IpMatch {
    pub fn create(param: &str, _: &OperatorContext) -> Result<Box<dyn Operator>, String> {
        let mut set = IpSet::default();
        set.add_list(param)?;
        Ok(Box::new(IpMatch { set }))
    }
}

impl Operator for IpMatch {
    fn evaluate(&self, input: &[u8], _: Option<&mut Captures>) -> bool {
        self.set.contains(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn table() {
        let ctx = OperatorContext::new(Path::new("."));
        for (param, input, want) in [
            ("10.10.10.10", "10.10.10.10", true),
            ("10.10.10.0/21", "10.10.15.254", true),
            ("10.10.10.0/21", "10.10.16.1", false),
            ("127.0.0.1,::1", "::1", true),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("10.0.0.0/8", "garbage", false),
            ("10.0.0.0/8", "10.1.2.3\0junk", true),
        ] {
            let op = IpMatch::create(param, &ctx).unwrap();
            assert_eq!(op.evaluate(input.as_bytes(), None), want, "{param:?} {input:?}");
        }
        for bad in ["10.0.0.0/0", "1.2.3.4/33", " 1.2.3.4", "::1/128", "1.2.3.4/255.0.0.0", "::/0"] {
            assert!(IpMatch::create(bad, &ctx).is_err(), "{bad:?}");
        }
    }
}
