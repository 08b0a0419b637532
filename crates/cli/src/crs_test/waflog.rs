//! Reads a server's error log between go-ftw style markers and extracts the ids
//! of the rules that fired.
//!
//! go-ftw sends `GET /status/200` with `X-CRS-Test: <id>` before and after each
//! stage; CRS's marker rule 999999 logs that request, so the lines between the
//! two marker lines belong to the stage. Here the log is followed forward from
//! the last position instead of scanned backwards, which gives the same lines
//! when one runner worker owns the log.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use regex::bytes::Regex;

/// go-ftw's `stdLogIdRegex` and `jsonLogIdRegex` (the second only when the first finds nothing on a line).
pub const ID_REGEXES: [&str; 2] =
    [r#"\[(?:id |\\?"id\\?":)\\?"(\d+)\\?"\]"#, r#"(?:\{|,)\s*"(?:id|ruleId)":\s*"?(\d+)"?"#];

pub struct IdExtractor {
    std: Regex,
    json: Regex,
}

impl IdExtractor {
    pub fn new() -> Self {
        // Constant patterns: compiling them cannot fail.
        Self { std: Regex::new(ID_REGEXES[0]).expect("id regex"), json: Regex::new(ID_REGEXES[1]).expect("id regex") }
    }

    /// Sorted, de-duplicated rule ids found in `lines`.
    pub fn ids(&self, lines: &[Vec<u8>]) -> Vec<u32> {
        let mut ids = Vec::new();
        for line in lines {
            let mut found = false;
            for caps in self.std.captures_iter(line) {
                found = true;
                if let Some(id) = caps.get(1).and_then(|m| std::str::from_utf8(m.as_bytes()).ok()?.parse().ok()) {
                    ids.push(id);
                }
            }
            if !found {
                for caps in self.json.captures_iter(line) {
                    if let Some(id) = caps.get(1).and_then(|m| std::str::from_utf8(m.as_bytes()).ok()?.parse().ok()) {
                        ids.push(id);
                    }
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

pub struct LogFollower {
    file: File,
    pos: u64,
    partial: Vec<u8>,
    header_lower: Vec<u8>,
}

impl LogFollower {
    /// Opens `path` positioned at its current end.
    pub fn open(path: &Path, marker_header: &str) -> std::io::Result<Self> {
        let mut file = File::open(path)?;
        let pos = file.seek(SeekFrom::End(0))?;
        Ok(Self { file, pos, partial: Vec::new(), header_lower: marker_header.to_ascii_lowercase().into_bytes() })
    }

    /// Complete lines appended since the last call.
    fn new_lines(&mut self) -> Vec<Vec<u8>> {
        let len = self.file.metadata().map(|m| m.len()).unwrap_or(self.pos);
        if len < self.pos {
            // Truncated: start over from the beginning.
            self.pos = 0;
            self.partial.clear();
        }
        if len > self.pos && self.file.seek(SeekFrom::Start(self.pos)).is_ok() {
            let mut chunk = Vec::new();
            if let Ok(n) = (&mut self.file).take(len - self.pos).read_to_end(&mut chunk) {
                self.pos += n as u64;
                self.partial.extend_from_slice(&chunk);
            }
        }
        let mut lines = Vec::new();
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.partial.drain(..=i).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            lines.push(line);
        }
        lines
    }

    fn is_marker(&self, line: &[u8], id: &[u8]) -> bool {
        let lower = line.to_ascii_lowercase();
        contains(&lower, &self.header_lower) && contains(&lower, id)
    }

    /// Waits up to `wait` for the marker line of `id`. Lines seen before it are
    /// appended to `before`. Returns whether the marker was found.
    pub fn wait_for(&mut self, id: &str, wait: Duration, before: &mut Vec<Vec<u8>>) -> bool {
        let id = id.to_ascii_lowercase().into_bytes();
        let deadline = Instant::now() + wait;
        let mut sleep = Duration::from_micros(200);
        loop {
            let lines = self.new_lines();
            let mut iter = lines.into_iter();
            for line in iter.by_ref() {
                if self.is_marker(&line, &id) {
                    // Lines after the marker belong to the next phase; put them back.
                    let rest: Vec<Vec<u8>> = iter.collect();
                    let mut back = Vec::new();
                    for l in rest {
                        back.extend_from_slice(&l);
                        back.push(b'\n');
                    }
                    back.extend_from_slice(&self.partial);
                    self.partial = back;
                    return true;
                }
                before.push(line);
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(sleep);
            sleep = (sleep * 2).min(Duration::from_millis(5));
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_ids() {
        let ex = IdExtractor::new();
        let lines: Vec<Vec<u8>> = [
            &br#"ModSecurity: Warning. Matched [file "x"] [id "920300"] [msg "y"]"#[..],
            br#"[id "949110"] [id "920300"]"#,
            br#"{"transaction":{"messages":[{"details":{"ruleId":"942100"}}]}}"#,
            br#"{"id": 1234, "x": 1}"#,
            b"no ids here",
        ]
        .iter()
        .map(|l| l.to_vec())
        .collect();
        assert_eq!(ex.ids(&lines), vec![1234, 920300, 942100, 949110]);
    }
}
