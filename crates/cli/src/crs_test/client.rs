//! Sends one request over a fresh raw `TcpStream` and reads the response.
//!
//! Like go-ftw, a test's "error" is a connection that could not be made, a
//! response that never came (timeout) or a connection closed without a
//! parseable status line; any HTTP response, 400 included, is a status.
//! The whole response is read (by Content-Length, chunked end or EOF) so the
//! server has finished the request, log phase included, before the end marker.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Upper bound on a response we keep (bodies above it are drained, not stored).
const MAX_RESPONSE: usize = 4 * 1024 * 1024;

pub struct Response {
    pub status: u16,
    pub raw: Vec<u8>,
}

pub fn exchange(addr: SocketAddr, request: &[u8], timeout: Duration) -> Result<Response, String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|e| format!("can't connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    // A server may answer (400) and close before the body is fully sent; the
    // answer still counts, so a write error only matters if nothing comes back.
    let write_err = stream.write_all(request).err();
    let head_request = request.starts_with(b"HEAD ");
    let deadline = Instant::now() + timeout;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16384];
    let mut head: Option<(usize, u16, Framing)> = None;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return finish(buf, head, "timeout waiting for response");
        }
        let _ = stream.set_read_timeout(Some(deadline - now));
        match stream.read(&mut chunk) {
            Ok(0) => return finish(buf, head, "connection closed without response"),
            Ok(n) => {
                if buf.len() < MAX_RESPONSE {
                    buf.extend_from_slice(&chunk[..n]);
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return finish(buf, head, "timeout waiting for response")
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let what = match &write_err {
                    Some(w) => format!("connection error: {e} (write: {w})"),
                    None => format!("connection error: {e}"),
                };
                return finish(buf, head, &what);
            }
        }
        if head.is_none() {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                let status = parse_status(&buf).ok_or_else(|| "malformed response status line".to_string())?;
                let framing = framing(&buf[..end], status, head_request);
                head = Some((end + 4, status, framing));
            }
        }
        if let Some((body_start, _, framing)) = &head {
            let body = buf.get(*body_start..).unwrap_or(&[]);
            let done = match framing {
                Framing::None => true,
                Framing::Length(len) => body.len() >= *len || buf.len() >= MAX_RESPONSE,
                Framing::Chunked => body.ends_with(b"0\r\n\r\n") || buf.len() >= MAX_RESPONSE,
                Framing::UntilClose => false,
            };
            if done {
                return finish(buf, head, "");
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

fn finish(buf: Vec<u8>, head: Option<(usize, u16, Framing)>, err: &str) -> Result<Response, String> {
    match head {
        Some((_, status, _)) => Ok(Response { status, raw: buf }),
        None if buf.is_empty() => Err(err.to_string()),
        // A status line without the blank line after the headers (e.g. closed early).
        None => parse_status(&buf)
            .map(|status| Response { status, raw: buf })
            .ok_or_else(|| "malformed response".to_string()),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `HTTP/x.y NNN ...` -> NNN.
fn parse_status(buf: &[u8]) -> Option<u16> {
    let line_end = find(buf, b"\r\n").or_else(|| find(buf, b"\n"))?;
    let line = std::str::from_utf8(buf.get(..line_end)?).ok()?;
    let mut parts = line.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

fn framing(head: &[u8], status: u16, head_request: bool) -> Framing {
    if head_request || status < 200 || status == 204 || status == 304 {
        return Framing::None;
    }
    let text = String::from_utf8_lossy(head);
    let mut framing = Framing::UntilClose;
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else { continue };
        let name = name.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") && value.to_ascii_lowercase().contains("chunked") {
            return Framing::Chunked;
        }
        if name.eq_ignore_ascii_case("content-length") {
            if let Ok(len) = value.trim().parse() {
                framing = Framing::Length(len);
            }
        }
    }
    framing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let cases: &[(&[u8], Option<u16>)] = &[
            (b"HTTP/1.1 200 OK\r\n", Some(200)),
            (b"HTTP/1.0 400 Bad Request\r\n\r\n", Some(400)),
            (b"HTTP/1.1 505\r\n", Some(505)),
            (b"<html>", None),
            (b"FOO 200 OK\r\n", None),
        ];
        for (buf, want) in cases {
            assert_eq!(parse_status(buf), *want);
        }
    }
}
