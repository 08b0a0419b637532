//! Fuzz target: raw request → transaction, phases 1-5, with CRS-like rules. Input:
//! `METHOD URI PROTOCOL\n`, header lines `Name: value\n`, an empty line, the body.
use ward_engine::Transaction;

fn main() {
    // Compiled once, before the fuzz loop (the static keeps it out of the closure's captures).
    let _ = ward_fuzz::ruleset();
    afl::fuzz!(|data: &[u8]| {
        let (line, mut rest) = ward_fuzz::split_once(data, b'\n');
        let mut parts = line.splitn(3, |&b| b == b' ');
        let method = parts.next().unwrap_or_default();
        let uri = parts.next().unwrap_or_default();
        let protocol = parts.next().unwrap_or(b"HTTP/1.1");
        let mut tx = Transaction::new(ward_fuzz::ruleset(), "fuzz-uid");
        tx.process_connection("10.1.2.3", 40000, "127.0.0.1", 80);
        tx.process_uri(uri, method, protocol);
        loop {
            let (h, r) = ward_fuzz::split_once(rest, b'\n');
            rest = r;
            if h.is_empty() || h == b"\r" {
                break;
            }
            let (name, value) = ward_fuzz::split_once(h, b':');
            tx.add_request_header(name, value.strip_prefix(b" ").unwrap_or(value));
        }
        if tx.process_request_headers().is_none() {
            if tx.wants_request_body() {
                let half = rest.len() / 2;
                tx.append_request_body(&rest[..half]);
                tx.append_request_body(&rest[half..]);
            }
            if tx.process_request_body().is_none() {
                tx.add_response_header(b"Content-Type", b"text/html");
                let _ = tx.process_response_headers(200, b"HTTP/1.1");
                if tx.wants_response_body() {
                    tx.append_response_body(rest);
                }
                let _ = tx.process_response_body();
            }
        }
        tx.process_logging();
        let _ = tx.take_messages();
        let _ = (tx.outcome(), tx.matched_ids());
    });
}
