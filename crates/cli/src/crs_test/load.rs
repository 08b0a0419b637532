//! Loads CRS regression-test YAML in both formats into one model:
//! v4 go-ftw (`rule_id`, `tests[].test_id`, `stages[].input/output`) and the
//! CRS 3.3 ftw 1.x format (`test_title`, `stages[].stage.input/output`).
//!
//! Defaults and post-processing follow go-ftw 2.3 (`test/defaults.go`): headers
//! are sorted by name, `stop_magic` is the inverse of `autocomplete_headers`,
//! `log_contains`/`no_log_contains` become `match_regex`/`no_match_regex`.
//! 3.3 `data` given as a list is joined with CRLF, as ftw 1.x did.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;
use serde_yaml::Value;

/// One YAML file.
pub struct TestFile {
    pub display: String,
    pub category: String,
    pub tests: Vec<TestCase>,
}

pub struct TestCase {
    /// `<rule_id>-<test_id>` (v4) or `test_title` (3.3); what include/exclude match.
    pub title: String,
    pub rule_id: u32,
    pub test_id: u32,
    pub stages: Vec<Stage>,
}

pub struct Stage {
    pub input: Input,
    pub output: Output,
}

#[derive(Clone, Default)]
pub struct Input {
    pub method: Option<String>,
    pub uri: Option<String>,
    pub version: Option<String>,
    /// Sorted by name (go-ftw sorts the YAML map for a stable order).
    pub headers: Vec<(String, String)>,
    pub data: Option<Vec<u8>>,
    /// Data came from a 3.3 list and is already CRLF-joined.
    pub data_is_crlf_list: bool,
    /// Raw bytes to send as-is (`encoded_request`, `raw_request`).
    pub raw: Option<Vec<u8>>,
    pub autocomplete: bool,
    /// A CRS 3.3 test: built the way ftw 1.x (Python) built it, see `request::build_legacy`.
    pub legacy: bool,
}

#[derive(Clone, Default, Debug)]
pub struct Output {
    pub status: Vec<u16>,
    /// 3.3 style `status: [a, b]` (only changes the failure message).
    pub status_list: bool,
    pub expect_ids: Vec<u32>,
    pub no_expect_ids: Vec<u32>,
    pub match_regex: Option<String>,
    pub no_match_regex: Option<String>,
    pub response_contains: Option<String>,
    pub expect_error: bool,
    pub retry_once: bool,
    pub isolated: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawInput {
    method: Option<String>,
    uri: Option<String>,
    version: Option<String>,
    headers: Option<serde_yaml::Mapping>,
    data: Option<Value>,
    encoded_request: Option<String>,
    raw_request: Option<String>,
    autocomplete_headers: Option<bool>,
    stop_magic: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawLog {
    expect_ids: Option<Vec<u32>>,
    no_expect_ids: Option<Vec<u32>>,
    match_regex: Option<String>,
    no_match_regex: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RawOutput {
    status: Option<Value>,
    log: Option<RawLog>,
    log_contains: Option<String>,
    no_log_contains: Option<String>,
    response_contains: Option<String>,
    expect_error: Option<bool>,
    retry_once: Option<bool>,
    isolated: Option<bool>,
}

#[derive(Deserialize)]
struct RawStage {
    input: Option<RawInput>,
    output: Option<RawOutput>,
}

#[derive(Deserialize)]
struct V4Test {
    test_id: Option<u32>,
    #[serde(default)]
    stages: Vec<RawStage>,
}

#[derive(Deserialize)]
struct LegacyStageWrap {
    stage: RawStage,
}

#[derive(Deserialize)]
struct LegacyTest {
    test_title: String,
    #[serde(default)]
    stages: Vec<LegacyStageWrap>,
}

/// Collects `*.yaml`/`*.yml` below `dir`, sorted by path.
pub fn find_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `REQUEST-920-PROTOCOL-ENFORCEMENT` -> `920 PROTOCOL-ENFORCEMENT`.
fn category_of(path: &Path) -> String {
    let dir = path.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).unwrap_or("");
    let rest = dir.strip_prefix("REQUEST-").or_else(|| dir.strip_prefix("RESPONSE-")).unwrap_or(dir);
    match rest.split_once('-') {
        Some((num, name)) => format!("{num} {name}"),
        None => rest.to_string(),
    }
}

fn rule_id_from_name(path: &Path) -> u32 {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let digits: String = name.chars().skip_while(|c| !c.is_ascii_digit()).take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().unwrap_or(0)
}

/// Loads one file. `Err` is a load problem (reported, not fatal).
pub fn load_file(path: &Path, display: String) -> Result<TestFile, String> {
    let text = std::fs::read(path).map_err(|e| e.to_string())?;
    let doc: Value = serde_yaml::from_slice(&text).map_err(|e| format!("yaml: {e}"))?;
    let category = category_of(path);
    let Value::Mapping(map) = &doc else { return Err("no tests in file".into()) };
    let tests_val = map.get("tests").cloned().unwrap_or(Value::Null);
    let Value::Sequence(raw_tests) = tests_val else { return Err("no tests in file".into()) };
    if raw_tests.is_empty() {
        return Err("no tests in file".into());
    }
    let file_rule =
        map.get("rule_id").and_then(Value::as_u64).map(|v| v as u32).unwrap_or_else(|| rule_id_from_name(path));
    let legacy = raw_tests.first().and_then(|t| t.get("test_title")).is_some();
    let mut tests = Vec::new();
    for (index, raw) in raw_tests.into_iter().enumerate() {
        if legacy {
            let t: LegacyTest = serde_yaml::from_value(raw).map_err(|e| format!("test {index}: {e}"))?;
            let stages = t.stages.into_iter().map(|s| convert_stage(s.stage, true)).collect::<Result<_, _>>()?;
            tests.push(TestCase { title: t.test_title, rule_id: file_rule, test_id: index as u32 + 1, stages });
        } else {
            let t: V4Test = serde_yaml::from_value(raw).map_err(|e| format!("test {index}: {e}"))?;
            let test_id = t.test_id.filter(|&id| id != 0).unwrap_or(index as u32 + 1);
            let stages = t.stages.into_iter().map(|s| convert_stage(s, false)).collect::<Result<_, _>>()?;
            tests.push(TestCase { title: format!("{file_rule}-{test_id}"), rule_id: file_rule, test_id, stages });
        }
    }
    Ok(TestFile { display, category, tests })
}

fn convert_stage(raw: RawStage, legacy: bool) -> Result<Stage, String> {
    Ok(Stage {
        input: convert_input(raw.input.unwrap_or_default(), legacy)?,
        output: convert_output(raw.output.unwrap_or_default()),
    })
}

/// YAML scalars as go-ftw's `map[string]string` sees them.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => serde_yaml::to_string(other).unwrap_or_default().trim_end().to_string(),
    }
}

fn convert_input(raw: RawInput, legacy: bool) -> Result<Input, String> {
    let mut headers: Vec<(String, String)> =
        raw.headers.unwrap_or_default().iter().map(|(k, v)| (scalar(k), scalar(v))).collect();
    if !legacy {
        // ftw 1.x kept the YAML order; go-ftw sorts.
        headers.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    }
    // autocomplete_headers wins; else the inverse of stop_magic; default on.
    let autocomplete = match (raw.autocomplete_headers, raw.stop_magic) {
        (Some(a), _) => a,
        (None, Some(stop)) => !stop,
        (None, None) => true,
    };
    let mut data_is_crlf_list = false;
    let data = match raw.data {
        None | Some(Value::Null) => None,
        Some(Value::Sequence(items)) => {
            data_is_crlf_list = true;
            Some(items.iter().map(scalar).collect::<Vec<_>>().join("\r\n").into_bytes())
        }
        Some(v) => render_template(&scalar(&v)),
    };
    let raw_bytes = match (raw.encoded_request.filter(|s| !s.is_empty()), raw.raw_request) {
        (Some(enc), _) => {
            let compact: String = enc.chars().filter(|c| !c.is_whitespace()).collect();
            Some(
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .map_err(|e| format!("encoded_request: {e}"))?,
            )
        }
        (None, Some(raw)) if legacy => Some(ftw1_raw_request(&raw)),
        (None, Some(raw)) => Some(latin1_or_utf8(&raw)),
        (None, None) => None,
    };
    Ok(Input {
        method: raw.method,
        uri: raw.uri,
        version: raw.version,
        headers,
        data,
        data_is_crlf_list,
        raw: raw_bytes,
        autocomplete,
        legacy,
    })
}

pub fn convert_output(raw: RawOutput) -> Output {
    let (status, status_list) = match raw.status {
        Some(Value::Number(n)) => (n.as_u64().map(|s| vec![s as u16]).unwrap_or_default(), false),
        Some(Value::Sequence(items)) => (items.iter().filter_map(Value::as_u64).map(|s| s as u16).collect(), true),
        _ => (Vec::new(), false),
    };
    let log = raw.log.unwrap_or_default();
    let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let mut match_regex = nonempty(log.match_regex);
    let mut no_match_regex = nonempty(log.no_match_regex);
    if match_regex.is_none() && log.expect_ids.is_none() {
        match_regex = nonempty(raw.log_contains);
    }
    if no_match_regex.is_none() && log.no_expect_ids.is_none() {
        no_match_regex = nonempty(raw.no_log_contains);
    }
    Output {
        status: status.into_iter().filter(|&s| s != 0).collect(),
        status_list,
        expect_ids: log.expect_ids.unwrap_or_default(),
        no_expect_ids: log.no_expect_ids.unwrap_or_default(),
        match_regex,
        no_match_regex,
        response_contains: nonempty(raw.response_contains),
        expect_error: raw.expect_error.unwrap_or(false),
        retry_once: raw.retry_once.unwrap_or(false),
        isolated: raw.isolated.unwrap_or(false),
    }
}

/// A CRS 3.3 `raw_request` as ftw 1.x sent it: `raw.encode('utf-8')
/// .decode('unicode_escape')`, sent as UTF-8. Each UTF-8 byte of a non-ASCII
/// character thus goes out UTF-8 encoded again (944200-0FP's `¬í` is 8 bytes, and its
/// Content-Length of 9 cuts the body before any `\xac\xed`), and backslash escapes
/// are decoded (`\\`, `\n`, `\r`, `\t`, `\xhh`, …; others are kept as written).
fn ftw1_raw_request(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut chars = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        i += 1;
        if c != b'\\' || i >= b.len() {
            chars.push(char::from(c));
            continue;
        }
        let e = b[i];
        i += 1;
        let simple = match e {
            b'\\' => Some('\\'),
            b'\'' => Some('\''),
            b'"' => Some('"'),
            b'a' => Some('\u{7}'),
            b'b' => Some('\u{8}'),
            b'f' => Some('\u{c}'),
            b'n' => Some('\n'),
            b'r' => Some('\r'),
            b't' => Some('\t'),
            b'v' => Some('\u{b}'),
            _ => None,
        };
        if let Some(ch) = simple {
            chars.push(ch);
        } else if e == b'\n' {
            // backslash-newline is a line continuation
        } else if e == b'x' && i + 2 <= b.len() && b[i].is_ascii_hexdigit() && b[i + 1].is_ascii_hexdigit() {
            let v = u8::from_str_radix(&text[i..i + 2], 16).unwrap_or(0);
            chars.push(char::from(v));
            i += 2;
        } else if (b'0'..=b'7').contains(&e) {
            let mut v = u32::from(e - b'0');
            let mut n = 1;
            while n < 3 && i < b.len() && (b'0'..=b'7').contains(&b[i]) {
                v = v * 8 + u32::from(b[i] - b'0');
                i += 1;
                n += 1;
            }
            chars.push(char::from_u32(v).unwrap_or('\u{fffd}'));
        } else {
            chars.push('\\');
            chars.push(char::from(e));
        }
    }
    chars.into_bytes()
}

/// `raw_request` text as bytes: one byte per character when all are below
/// U+0100 (so `"\xac\xed"` in YAML sends those bytes), else UTF-8.
fn latin1_or_utf8(text: &str) -> Vec<u8> {
    if text.chars().all(|c| (c as u32) < 0x100) {
        text.chars().map(|c| c as u32 as u8).collect()
    } else {
        text.as_bytes().to_vec()
    }
}

/// go-ftw runs `data` through Go's text/template with sprig. The CRS tests only
/// use `{{ "x" | repeat N }}`; other actions make go-ftw drop the data (template
/// error), which is what `None` does here.
fn render_template(data: &str) -> Option<Vec<u8>> {
    if !data.contains("{{") {
        return Some(data.as_bytes().to_vec());
    }
    let re = regex::Regex::new(
        r#"^\s*"((?:[^"\\]|\\.)*)"\s*\|\s*repeat\s+(\d+)\s*$|^\s*repeat\s+(\d+)\s+"((?:[^"\\]|\\.)*)"\s*$"#,
    )
    .ok()?;
    let mut out = String::new();
    let mut rest = data;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}")?;
        let action = &after[..end];
        let caps = re.captures(action)?;
        let (text, count) = match (caps.get(1), caps.get(2), caps.get(3), caps.get(4)) {
            (Some(t), Some(n), _, _) | (_, _, Some(n), Some(t)) => (t.as_str(), n.as_str()),
            _ => return None,
        };
        let count: usize = count.parse().ok().filter(|&n| n <= 16 * 1024 * 1024)?;
        out.push_str(&text.replace("\\\"", "\"").repeat(count));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let cases: &[(&str, Option<&str>)] = &[
            ("plain", Some("plain")),
            ("a{{ \"1\" | repeat 3 }}b", Some("a111b")),
            ("{{ repeat 2 \"xy\" }}", Some("xyxy")),
            ("{{ .Unknown }}", None),
        ];
        for (input, want) in cases {
            assert_eq!(
                render_template(input).map(|v| String::from_utf8(v).unwrap()),
                want.map(String::from),
                "{input}"
            );
        }
    }

    #[test]
    fn ftw1_raw_requests_are_unicode_escape_decoded_then_utf8() {
        let cases: &[(&str, &[u8])] = &[
            ("GET / HTTP/1.0\r\n\r\n", b"GET / HTTP/1.0\r\n\r\n"),
            ("a=\u{ac}\u{ed}\u{0}\u{5}", b"a=\xc3\x82\xc2\xac\xc3\x83\xc2\xad\x00\x05"),
            ("a\\r\\n\\\\\\x41\\101\\q", b"a\r\n\\AA\\q"),
        ];
        for (input, want) in cases {
            assert_eq!(ftw1_raw_request(input), *want, "{input:?}");
        }
    }

    #[test]
    fn categories() {
        assert_eq!(
            category_of(Path::new("x/REQUEST-920-PROTOCOL-ENFORCEMENT/920100.yaml")),
            "920 PROTOCOL-ENFORCEMENT"
        );
        assert_eq!(rule_id_from_name(Path::new("x/y/942100.yaml")), 942100);
    }
}
