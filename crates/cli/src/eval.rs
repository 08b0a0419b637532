//! `ward eval --rules FILE… REQUEST`: evaluates one raw HTTP/1.x request file offline
//! and prints the log lines, the verdict and the anomaly scores.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use ward_engine::{RuleSet, RuleSource, Transaction};

#[derive(Args)]
pub struct EvalArgs {
    /// SecLang files, loaded in order.
    #[arg(long = "rules", required = true, num_args = 1..)]
    pub rules: Vec<PathBuf>,
    /// A raw request: request line, headers, blank line, body.
    pub request: PathBuf,
    /// Client address to report as REMOTE_ADDR.
    #[arg(long, default_value = "127.0.0.1")]
    pub client: String,
}

struct RawRequest {
    method: Vec<u8>,
    uri: Vec<u8>,
    protocol: Vec<u8>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
}

fn parse_request(raw: &[u8]) -> Result<RawRequest, String> {
    let split = find(raw, b"\r\n\r\n").map(|p| (p, 4)).or_else(|| find(raw, b"\n\n").map(|p| (p, 2)));
    let (head, body) = match split {
        Some((p, n)) => (&raw[..p], raw[p + n..].to_vec()),
        None => (raw, Vec::new()),
    };
    let mut lines = head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let first = lines.next().ok_or("empty request file")?;
    let parts: Vec<&[u8]> = first.split(|&b| b == b' ').filter(|p| !p.is_empty()).collect();
    let [method, uri, protocol] = parts.as_slice() else {
        return Err(format!("bad request line: {:?} (expected METHOD URI PROTOCOL)", String::from_utf8_lossy(first)));
    };
    let mut headers = Vec::new();
    for (i, l) in lines.enumerate() {
        let p = l.iter().position(|&b| b == b':').ok_or_else(|| format!("header line {} has no ':'", i + 2))?;
        let v = &l[p + 1..];
        let v = &v[v.iter().take_while(|b| **b == b' ' || **b == b'\t').count()..];
        headers.push((l[..p].to_vec(), v.to_vec()));
    }
    Ok(RawRequest { method: method.to_vec(), uri: uri.to_vec(), protocol: protocol.to_vec(), headers, body })
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

pub fn run(args: EvalArgs) -> Result<ExitCode, String> {
    let sources: Vec<RuleSource> = args.rules.into_iter().map(RuleSource::File).collect();
    let rs = Arc::new(RuleSet::compile(&sources).map_err(|e| e.to_string())?);
    let raw = std::fs::read(&args.request).map_err(|e| format!("{}: {e}", args.request.display()))?;
    let req = parse_request(&raw).map_err(|e| format!("{}: {e}", args.request.display()))?;
    let mut tx = Transaction::new(rs, "ward-eval");
    tx.process_connection(&args.client, 40000, "127.0.0.1", 80);
    tx.process_uri(&req.uri, &req.method, &req.protocol);
    for (k, v) in &req.headers {
        tx.add_request_header(k, v);
        if k.eq_ignore_ascii_case(b"host") {
            tx.set_server_name(v);
        }
    }
    let mut verdict = tx.process_request_headers();
    if verdict.is_none() {
        if tx.wants_request_body() {
            verdict = tx.append_request_body(&req.body);
        }
        if verdict.is_none() {
            verdict = tx.process_request_body();
        }
    }
    tx.process_logging();
    for line in tx.take_messages() {
        println!("{line}");
    }
    for k in ["blocking_inbound_anomaly_score", "inbound_anomaly_score", "anomaly_score"] {
        if let Some(v) = tx.tx(k) {
            println!("tx.{k} = {}", String::from_utf8_lossy(v));
        }
    }
    match verdict {
        Some(i) => println!("verdict: {:?} with status {} (rule {})", i.action, i.status, i.rule_id),
        None => println!("verdict: {} (engine {})", tx.outcome(), tx.engine_mode().name()),
    }
    Ok(ExitCode::SUCCESS)
}
