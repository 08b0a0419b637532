//! A test backend in the style of CRS's "albedo" (github.com/coreruleset/albedo),
//! used behind nginx by the CRS regression tests.
//!
//! Every request gets `200` with an empty body, except `POST /reflect` whose JSON
//! body `{"status": N, "headers": {..}, "body": "..", "encodedBody": "<base64>"}`
//! describes the response to send back (the response-phase 95x tests use it).
//! Like albedo (Go net/http), a non-empty body without a `Content-Type` gets a
//! sniffed one, so ModSecurity's `SecResponseBodyMimeType` sees `text/plain`.
//!
//! Bounded: loopback listeners only, a cap on concurrent connections, on header
//! and body sizes, and read timeouts.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use clap::Args;
use serde::Deserialize;

const MAX_CONNECTIONS: usize = 256;
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 32 * 1024 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Args)]
pub struct AlbedoArgs {
    /// Address to listen on; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:18099")]
    listen: SocketAddr,
}

pub fn run(args: AlbedoArgs) -> Result<ExitCode, String> {
    if !args.listen.ip().is_loopback() {
        return Err(format!("albedo: refusing non-loopback address {}", args.listen));
    }
    let listener = TcpListener::bind(args.listen).map_err(|e| format!("albedo: bind {}: {e}", args.listen))?;
    eprintln!("albedo: listening on {}", args.listen);
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            continue; // dropped: over the connection cap
        }
        let active = Arc::clone(&active);
        std::thread::spawn(move || {
            let _ = serve(stream);
            active.fetch_sub(1, Ordering::SeqCst);
        });
    }
    Ok(ExitCode::SUCCESS)
}

struct Request {
    method: String,
    path: String,
    keep_alive: bool,
    body: Vec<u8>,
}

fn serve(stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some(req) = read_request(&mut reader)? else { return Ok(()) };
        let response = respond(&req);
        writer.write_all(&response)?;
        writer.flush()?;
        if !req.keep_alive {
            return Ok(());
        }
    }
}

/// Reads one request; `None` on a clean EOF before any byte.
fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut head_len = 0usize;
    let mut lines: Vec<String> = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = reader.by_ref().take((MAX_HEAD - head_len) as u64 + 1).read_until(b'\n', &mut line)?;
        if n == 0 {
            if lines.is_empty() {
                return Ok(None);
            }
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head_len += n;
        if head_len > MAX_HEAD {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        let text = String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_string();
        if text.is_empty() {
            if lines.is_empty() {
                continue; // tolerate leading blank lines
            }
            break;
        }
        lines.push(text);
    }
    let mut parts = lines[0].split_whitespace();
    let method = parts.next().unwrap_or("GET").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let version = parts.next().unwrap_or("HTTP/1.0").to_string();
    let mut content_length = 0usize;
    let mut chunked = false;
    let mut keep_alive = version == "HTTP/1.1";
    for line in &lines[1..] {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => content_length = value.parse().unwrap_or(0),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => {
                let v = value.to_ascii_lowercase();
                if v.contains("close") {
                    keep_alive = false;
                } else if v.contains("keep-alive") {
                    keep_alive = true;
                }
            }
            _ => {}
        }
    }
    let body = if chunked { read_chunked(reader)? } else { read_exact_bounded(reader, content_length)? };
    let path = target.split('?').next().unwrap_or("/").to_string();
    Ok(Some(Request { method, path, keep_alive, body }))
}

fn read_exact_bounded(reader: &mut BufReader<TcpStream>, len: usize) -> std::io::Result<Vec<u8>> {
    if len > MAX_BODY {
        return Err(std::io::ErrorKind::InvalidData.into());
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    Ok(body)
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.by_ref().take(1024).read_line(&mut size_line)?;
        let size_hex = size_line.trim().split(';').next().unwrap_or("");
        let size =
            usize::from_str_radix(size_hex, 16).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))?;
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                let mut t = String::new();
                let n = reader.by_ref().take(8192).read_line(&mut t)?;
                if n == 0 || t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = String::new();
        reader.by_ref().take(2).read_line(&mut crlf)?;
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ReflectSpec {
    status: i64,
    headers: BTreeMap<String, String>,
    body: String,
    #[serde(rename = "encodedBody")]
    encoded_body: String,
}

fn respond(req: &Request) -> Vec<u8> {
    let reflect = req.method == "POST" && (req.path == "/reflect" || req.path == "/reflect/");
    if !reflect {
        return build_response(200, &BTreeMap::new(), b"", req.method == "HEAD");
    }
    let spec: ReflectSpec = match serde_json::from_slice(&req.body) {
        Ok(spec) => spec,
        Err(_) => return build_response(400, &BTreeMap::new(), b"Invalid JSON in request body", false),
    };
    if (spec.status > 0 && spec.status < 100) || spec.status >= 600 {
        let msg = format!("Invalid status code: {}", spec.status);
        return build_response(400, &BTreeMap::new(), msg.as_bytes(), false);
    }
    let status = if spec.status <= 0 { 200 } else { spec.status as u16 };
    let body = if !spec.body.is_empty() {
        spec.body.into_bytes()
    } else if spec.encoded_body.is_empty() {
        Vec::new()
    } else {
        match base64::engine::general_purpose::STANDARD.decode(spec.encoded_body.as_bytes()) {
            Ok(b) => b,
            Err(_) => return build_response(400, &BTreeMap::new(), b"invalid base64 encoding of response body", false),
        }
    };
    build_response(status, &spec.headers, &body, false)
}

fn build_response(status: u16, headers: &BTreeMap<String, String>, body: &[u8], head: bool) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
    let has = |name: &str| headers.keys().any(|k| k.eq_ignore_ascii_case(name));
    for (name, value) in headers {
        // Framing is ours to decide; a reflected length could desynchronise nginx.
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding") {
            continue;
        }
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if !body.is_empty() && !has("content-type") {
        out.extend_from_slice(format!("Content-Type: {}\r\n", sniff_content_type(body)).as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()).as_bytes());
    if !head {
        out.extend_from_slice(body);
    }
    out
}

/// A small subset of Go's `http.DetectContentType`, enough for the CRS tests.
fn sniff_content_type(body: &[u8]) -> &'static str {
    let data = &body[..body.len().min(512)];
    let trimmed = {
        let start =
            data.iter().position(|b| !matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')).unwrap_or(data.len());
        &data[start..]
    };
    const HTML_TAGS: [&[u8]; 17] = [
        b"<!DOCTYPE HTML",
        b"<HTML",
        b"<HEAD",
        b"<SCRIPT",
        b"<IFRAME",
        b"<H1",
        b"<DIV",
        b"<FONT",
        b"<TABLE",
        b"<A",
        b"<STYLE",
        b"<TITLE",
        b"<B",
        b"<BODY",
        b"<BR",
        b"<P",
        b"<!--",
    ];
    for tag in HTML_TAGS {
        if trimmed.len() > tag.len()
            && trimmed[..tag.len()].eq_ignore_ascii_case(tag)
            && matches!(trimmed[tag.len()], b' ' | b'>')
        {
            return "text/html; charset=utf-8";
        }
    }
    if trimmed.starts_with(b"<?xml") {
        return "text/xml; charset=utf-8";
    }
    if data.starts_with(b"%PDF-") {
        return "application/pdf";
    }
    let binary = data.iter().any(|&b| matches!(b, 0x00..=0x08 | 0x0b | 0x0e..=0x1a | 0x1c..=0x1f));
    if binary {
        "application/octet-stream"
    } else {
        "text/plain; charset=utf-8"
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing() {
        let cases: &[(&[u8], &str)] = &[
            (b"hello", "text/plain; charset=utf-8"),
            (b"  <html><body>x", "text/html; charset=utf-8"),
            (b"<?xml version=\"1.0\"?><a/>", "text/xml; charset=utf-8"),
            (b"\x00\x01binary", "application/octet-stream"),
        ];
        for (body, want) in cases {
            assert_eq!(sniff_content_type(body), *want);
        }
    }

    #[test]
    fn reflected_response() {
        let req = Request {
            method: "POST".into(),
            path: "/reflect".into(),
            keep_alive: false,
            body: br#"{"status": 500, "headers": {"X-A": "b"}, "body": "oops"}"#.to_vec(),
        };
        let out = String::from_utf8(respond(&req)).unwrap();
        assert!(out.starts_with("HTTP/1.1 500 Internal Server Error\r\n"));
        assert!(out.contains("X-A: b\r\n"));
        assert!(out.contains("Content-Type: text/plain; charset=utf-8\r\n"));
        assert!(out.ends_with("\r\n\r\noops"));
    }
}
