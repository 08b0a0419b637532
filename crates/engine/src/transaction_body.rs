//! Temporary glue until the body processors land (replaced by crate::body).
#![allow(dead_code)]

use crate::variables::Var;

pub mod urlencoded {
    /// Returns true when an invalid %-encoding was seen.
    pub fn parse_into(input: &[u8], sep: u8, out: &mut Vec<(Vec<u8>, Vec<u8>)>, limit: usize) -> bool {
        let mut invalid = false;
        for piece in input.split(|&b| b == sep) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = match memchr::memchr(b'=', piece) {
                Some(p) => (&piece[..p], &piece[p + 1..]),
                None => (piece, &b""[..]),
            };
            out.push((dec(k, &mut invalid), dec(v, &mut invalid)));
        }
        invalid
    }
    fn dec(s: &[u8], invalid: &mut bool) -> Vec<u8> {
        let mut o = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            match s[i] {
                b'+' => o.push(b' '),
                b'%' => {
                    let h = s.get(i + 1).and_then(|c| (*c as char).to_digit(16));
                    let l = s.get(i + 2).and_then(|c| (*c as char).to_digit(16));
                    if let (Some(h), Some(l)) = (h, l) {
                        o.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    *invalid = true;
                    o.push(b'%');
                }
                c => o.push(c),
            }
            i += 1;
        }
        o
    }
}

pub mod json {
    pub fn parse_into(_b: &[u8], _depth: usize, _out: &mut Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), String> {
        Ok(())
    }
}

pub mod xml {
    #[derive(Debug)]
    pub struct XmlDocument;
    impl XmlDocument {
        pub fn parse(_b: &[u8]) -> Result<XmlDocument, String> {
            Ok(XmlDocument)
        }
        pub fn xpath(&self, _p: &str) -> Vec<Vec<u8>> {
            Vec::new()
        }
    }
}

pub mod multipart {
    use super::Var;
    pub struct File {
        pub field_name: Vec<u8>,
        pub filename: Vec<u8>,
        pub size: usize,
    }
    pub struct Flags(pub Vec<(Var, bool)>);
    impl Flags {
        pub fn iter(&self) -> impl Iterator<Item = (Var, bool)> + '_ {
            self.0.iter().copied()
        }
    }
    pub struct Multipart {
        pub fields: Vec<(Vec<u8>, Vec<u8>)>,
        pub files: Vec<File>,
        pub names: Vec<Vec<u8>>,
        pub part_headers: Vec<(Vec<u8>, Vec<u8>)>,
        pub flags: Flags,
        pub error: Option<String>,
    }
    pub fn parse(_ct: &[u8], _b: &[u8], _limit: usize) -> Multipart {
        Multipart { fields: vec![], files: vec![], names: vec![], part_headers: vec![], flags: Flags(vec![]), error: None }
    }
}
