//! Builds the request bytes exactly as go-ftw 2.3 does (`ftwhttp/request.go`,
//! `BuildRequest`): request line, the test's headers in sorted order, then the
//! autocompleted ones (`Content-Type`, `Connection: close`, `Content-Length`),
//! a blank line and the body. Raw (`encoded_request`) requests go out untouched.

use super::load::Input;

/// go-ftw's `^POST|PUT|PATCH|DELETE$` (sic: the anchors bind to the ends only).
fn method_allows_body(method: &str) -> bool {
    method.starts_with("POST") || method.contains("PUT") || method.contains("PATCH") || method.ends_with("DELETE")
}

fn has_header(headers: &[(String, String)], name: &str) -> bool {
    headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
}

pub fn build(input: &Input) -> Vec<u8> {
    if let Some(raw) = &input.raw {
        return raw.clone();
    }
    if input.legacy {
        return build_legacy(input);
    }
    let method = input.method.as_deref().unwrap_or("GET");
    let uri = input.uri.as_deref().unwrap_or("/");
    let version = input.version.as_deref().unwrap_or("HTTP/1.1");
    let mut headers = input.headers.clone();
    let mut data: Vec<u8> = input.data.clone().unwrap_or_default();

    if !data.is_empty() && input.autocomplete {
        if !has_header(&headers, "Content-Type") {
            headers.push(("Content-Type".into(), "application/x-www-form-urlencoded".into()));
        }
        data = encode_data_parameters(&headers, data);
    }
    let multipart = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("Content-Type") && v.to_ascii_lowercase().contains("multipart/form-data;")
    });
    if multipart && !input.data_is_crlf_list {
        data = replace_lf_with_crlf(&data);
    }
    if input.autocomplete {
        if !has_header(&headers, "Connection") {
            headers.push(("Connection".into(), "close".into()));
        }
        if !has_header(&headers, "Content-Length") && (!data.is_empty() || method_allows_body(method)) {
            headers.push(("Content-Length".into(), data.len().to_string()));
        }
    }

    let mut out = Vec::with_capacity(256 + data.len());
    out.extend_from_slice(format!("{method} {uri} {version}\r\n").as_bytes());
    for (name, value) in &headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&data);
    out
}

/// CRS 3.3 tests were written for ftw 1.x (Python, `ftw/ruleset.py` `Input` and
/// `ftw/http.py` `build_request`), and the reference results were produced that
/// way: headers in YAML order; only when there is data and `stop_magic` is off,
/// a missing `Content-Type` (exact key) becomes urlencoded, urlencoded data is
/// re-encoded with `urlencode(parse_qsl(data))`, and a missing `Content-Length`
/// (exact key) is added with the data's length in characters. No `Connection`
/// header, no CRLF rewriting of multipart bodies.
fn build_legacy(input: &Input) -> Vec<u8> {
    let method = input.method.as_deref().unwrap_or("GET");
    let uri = input.uri.as_deref().unwrap_or("/");
    let version = input.version.as_deref().unwrap_or("HTTP/1.1");
    let mut headers = input.headers.clone();
    let mut data: Vec<u8> = input.data.clone().unwrap_or_default();
    let magic = input.autocomplete;
    if !data.is_empty() && magic {
        let content_type = |h: &[(String, String)]| h.iter().find(|(n, _)| n == "Content-Type").map(|(_, v)| v.clone());
        if content_type(&headers).is_none() {
            headers.push(("Content-Type".into(), "application/x-www-form-urlencoded".into()));
        }
        if content_type(&headers).as_deref() == Some("application/x-www-form-urlencoded")
            && !has_valid_percent_escape(&data)
        {
            if let Some(encoded) = python_urlencode_parse_qsl(&data) {
                data = encoded;
            }
        }
        if !headers.iter().any(|(n, _)| n == "Content-Length") {
            let chars = String::from_utf8_lossy(&data).chars().count();
            headers.push(("Content-Length".into(), chars.to_string()));
        }
    }
    let mut out = Vec::with_capacity(256 + data.len());
    out.extend_from_slice(format!("{method} {uri} {version}\r\n").as_bytes());
    for (name, value) in &headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&data);
    out
}

/// Whether Python's `unquote` would change `data` (a `%` followed by two hex digits).
fn has_valid_percent_escape(data: &[u8]) -> bool {
    data.windows(3).any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
}

/// `urlencode(parse_qsl(data))` for data without valid `%XX` escapes: `&`
/// separated pairs, pairs without `=` or with an empty value dropped, `+` read
/// as space; `None` when no pair survives (ftw then keeps the data as it was).
fn python_urlencode_parse_qsl(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() * 2);
    let mut any = false;
    for token in data.split(|&b| b == b'&') {
        let Some(eq) = token.iter().position(|&b| b == b'=') else { continue };
        let (name, value) = (&token[..eq], &token[eq + 1..]);
        if value.is_empty() {
            continue;
        }
        if any {
            out.push(b'&');
        }
        any = true;
        let plus_to_space = |s: &[u8]| s.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect::<Vec<u8>>();
        query_escape(&plus_to_space(name), &mut out);
        out.push(b'=');
        query_escape(&plus_to_space(value), &mut out);
    }
    any.then_some(out)
}

/// The marker request go-ftw sends before and after each stage.
pub fn marker(header_name: &str, id: &str) -> Vec<u8> {
    format!(
        "GET /status/200 HTTP/1.1\r\nAccept: */*\r\nUser-Agent: go-ftw test agent\r\nHost: localhost\r\n{header_name}: {id}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

fn replace_lf_with_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 16);
    for &b in data {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// go-ftw's `encodeDataParameters`: for an exact (case-insensitive)
/// `application/x-www-form-urlencoded` content type, and only when
/// `url.QueryUnescape` would leave the data unchanged (no `%`, no `+`), every
/// `key=value` token is query-escaped; the trailing `&` is dropped.
fn encode_data_parameters(headers: &[(String, String)], data: Vec<u8>) -> Vec<u8> {
    let urlencoded = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("Content-Type") && v.eq_ignore_ascii_case("application/x-www-form-urlencoded")
    });
    if !urlencoded || data.is_empty() || data.iter().any(|&b| b == b'%' || b == b'+') {
        return data;
    }
    let mut out = Vec::with_capacity(data.len() * 2);
    let mut remaining: &[u8] = &data;
    while !remaining.is_empty() {
        let (token, rest) = match remaining.iter().position(|&b| b == b'&') {
            Some(i) => (&remaining[..i], &remaining[i + 1..]),
            None => (remaining, &[][..]),
        };
        remaining = rest;
        match token.iter().position(|&b| b == b'=') {
            None => query_escape(token, &mut out),
            Some(eq) => {
                query_escape(&token[..eq], &mut out);
                out.push(b'=');
                query_escape(&token[eq + 1..], &mut out);
            }
        }
        out.push(b'&');
    }
    out.pop();
    out
}

/// Go's `url.QueryEscape`: unreserved bytes stay, space becomes `+`, the rest `%XX`.
fn query_escape(input: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in input {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b),
            b' ' => out.push(b'+'),
            _ => out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(method: &str, headers: &[(&str, &str)], data: Option<&str>, autocomplete: bool) -> Input {
        let mut headers: Vec<(String, String)> = headers.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        headers.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        Input {
            method: Some(method.into()),
            headers,
            data: data.map(|d| d.as_bytes().to_vec()),
            autocomplete,
            ..Default::default()
        }
    }

    #[test]
    fn builds_like_go_ftw() {
        let cases: &[(Input, &str)] = &[
            (
                input("GET", &[("User-Agent", "ua"), ("Host", "localhost")], None, true),
                "GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: ua\r\nConnection: close\r\n\r\n",
            ),
            (
                input("POST", &[("Host", "localhost")], Some("a=b c&d=<x>&e"), true),
                "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nConnection: close\r\nContent-Length: 17\r\n\r\na=b+c&d=%3Cx%3E&e",
            ),
            (
                input("POST", &[("Host", "h")], Some("a=%41+b"), true),
                "POST / HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\nConnection: close\r\nContent-Length: 7\r\n\r\na=%41+b",
            ),
            (input("POST", &[("Host", "h")], None, true), "POST / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"),
            (input("GET", &[("Host", "h")], Some("x\ny"), false), "GET / HTTP/1.1\r\nHost: h\r\n\r\nx\ny"),
            (
                input("POST", &[("Content-Type", "multipart/form-data; boundary=b")], Some("--b\nx\n--b--\n"), false),
                "POST / HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\nx\r\n--b--\r\n",
            ),
        ];
        for (inp, want) in cases {
            assert_eq!(String::from_utf8(build(inp)).unwrap(), *want);
        }
    }

    #[test]
    fn builds_like_ftw_1x() {
        let legacy = |method: &str, headers: &[(&str, &str)], data: Option<&str>, magic: bool| Input {
            method: Some(method.into()),
            headers: headers.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
            data: data.map(|d| d.as_bytes().to_vec()),
            autocomplete: magic,
            legacy: true,
            ..Default::default()
        };
        let cases: &[(Input, &str)] = &[
            (legacy("POST", &[("Host", "h")], None, true), "POST / HTTP/1.1\r\nHost: h\r\n\r\n"),
            (
                legacy("POST", &[("User-Agent", "u"), ("Host", "h")], Some("a=1 2&b=&c&d=<"), true),
                "POST / HTTP/1.1\r\nUser-Agent: u\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\na=1+2&d=%3C",
            ),
            (
                legacy("POST", &[("Content-Type", "multipart/form-data; boundary=b")], Some("--b\nx\n--b--\n"), true),
                "POST / HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 12\r\n\r\n--b\nx\n--b--\n",
            ),
            (legacy("POST", &[("Host", "h")], Some("x=%41"), false), "POST / HTTP/1.1\r\nHost: h\r\n\r\nx=%41"),
        ];
        for (inp, want) in cases {
            assert_eq!(String::from_utf8(build(inp)).unwrap(), *want);
        }
    }

    #[test]
    fn method_regex_quirk() {
        assert!(method_allows_body("POSTX"));
        assert!(method_allows_body("XDELETE"));
        assert!(!method_allows_body("GET"));
    }
}
