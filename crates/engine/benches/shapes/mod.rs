//! Request shapes of scripts/bench.sh against the real CRS v4 (../shared/crs/v4), shared by
//! the criterion benchmark (benches/crs.rs) and the instruction-count example (examples/icount.rs).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ward_engine::{RuleSet, RuleSource, Transaction};

pub fn crs_dir() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/crs/v4");
    p.is_dir().then_some(p)
}

pub fn sources(crs: &Path, paranoia: u8) -> Vec<RuleSource> {
    let mut s = vec![
        RuleSource::Inline {
            text: "SecRuleEngine On\nSecRequestBodyAccess On\nSecResponseBodyAccess On\nSecResponseBodyMimeType text/plain text/html text/xml\n\
                   SecRule REQUEST_HEADERS:Content-Type \"^application/json\" \"id:200001,phase:1,t:none,pass,nolog,ctl:requestBodyProcessor=JSON\""
                .into(),
            origin: PathBuf::from("bench-base.conf"),
            line: 1,
        },
        RuleSource::File(crs.join("crs-setup.conf.example")),
        RuleSource::Inline {
            text: format!("SecAction \"id:900000,phase:1,pass,nolog,setvar:tx.blocking_paranoia_level={paranoia}\""),
            origin: PathBuf::from("bench-pl.conf"),
            line: 1,
        },
    ];
    let mut rules: Vec<PathBuf> = std::fs::read_dir(crs.join("rules"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    rules.sort();
    s.extend(rules.into_iter().map(RuleSource::File));
    // Rules after the CRS, e.g. `SecRuleRemoveById 942100` to measure what one rule costs.
    if let Ok(text) = std::env::var("WARD_BENCH_EXTRA_RULES") {
        s.push(RuleSource::Inline { text, origin: PathBuf::from("bench-extra.conf"), line: 1 });
    }
    s
}

pub struct Shape {
    pub name: &'static str,
    pub method: &'static str,
    pub uri: String,
    pub content_type: Option<&'static str>,
    pub body: Vec<u8>,
}

pub fn shapes() -> Vec<Shape> {
    let form: String = (0..60).map(|i| format!("field{i}=value+number+{i}+with+some+text&")).collect::<String>();
    let mut json = String::from("{\"size\":500,\"query\":{\"bool\":{\"filter\":[");
    while json.len() < 16_000 {
        json.push_str("{\"range\":{\"@timestamp\":{\"gte\":\"2024-01-01T00:00:00.000Z\",\"lte\":\"now\"}}},{\"match_phrase\":{\"host.name\":\"web-01\"}},");
    }
    json.push_str("{\"match_all\":{}}]}}}");
    let big: String = (0..)
        .map(|i| format!("k{i}=lorem+ipsum+dolor+sit+amet+consectetur&"))
        .scan(0usize, |n, s| {
            *n += s.len();
            (*n < 1_000_000).then_some(s)
        })
        .collect();
    // scripts/bench.sh's 1 MB form: 400 fields of ~2.6 KB, padded with `x` (same bytes).
    let words = "alpha bravo charlie delta echo foxtrot golf hotel india juliett kilo lima mike november oscar papa";
    let words: Vec<&str> = words.split(' ').collect();
    let mut bench_1m = String::new();
    for f in 1..=400usize {
        let mut v = String::new();
        let mut i = 0;
        while v.len() < 2600 {
            v += &format!("{}{}_", words[(f * 7 + i) % words.len()], i % 10);
            i += 1;
        }
        bench_1m += &format!("{}field{f:03}={v}", if f > 1 { "&" } else { "" });
    }
    bench_1m.extend(std::iter::repeat_n('x', 1_048_576usize.saturating_sub(bench_1m.len())));
    bench_1m.truncate(1_048_576);
    vec![
        Shape { name: "get_root", method: "GET", uri: "/".into(), content_type: None, body: vec![] },
        Shape {
            name: "get_6_args",
            method: "GET",
            uri: "/search?q=blue+shoes&page=2&sort=price&order=asc&lang=en&session=a1b2c3d4e5f6a7b8c9d0".into(),
            content_type: None,
            body: vec![],
        },
        Shape {
            name: "post_form_2k",
            method: "POST",
            uri: "/submit".into(),
            content_type: Some("application/x-www-form-urlencoded"),
            body: form.into_bytes()[..2048].to_vec(),
        },
        Shape {
            name: "post_json_16k",
            method: "POST",
            uri: "/internal/search/es".into(),
            content_type: Some("application/json"),
            body: json.into_bytes(),
        },
        Shape {
            // scripts/bench.sh's 2 KB form (a checkout: 57 fields, escapes, an e-mail address).
            name: "post_form_2k_bench",
            method: "POST",
            uri: "/account/checkout".into(),
            content_type: Some("application/x-www-form-urlencoded"),
            body: std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/form-2k.txt"))
                .expect("bench/form-2k.txt"),
        },
        Shape {
            // The Kibana-like search body scripts/bench.sh posts (388 mostly distinct values).
            name: "post_kibana_json",
            method: "POST",
            uri: "/internal/search/es".into(),
            content_type: Some("application/json"),
            body: std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/kibana-search-16k.json"))
                .expect("bench/kibana-search-16k.json"),
        },
        Shape {
            name: "post_form_1m",
            method: "POST",
            uri: "/upload".into(),
            content_type: Some("application/x-www-form-urlencoded"),
            body: big.into_bytes(),
        },
        Shape {
            name: "post_form_1m_bench",
            method: "POST",
            uri: "/upload/form".into(),
            content_type: Some("application/x-www-form-urlencoded"),
            body: bench_1m.into_bytes(),
        },
    ]
}

pub fn run(rs: &Arc<RuleSet>, s: &Shape) -> bool {
    served(rs, s, false).1
}

/// [`run`] with the response phases, as nginx runs them for scripts/bench.sh's upstream
/// (`200`, `text/plain`, `ok\n`): the CRS RESPONSE-95x rules inspect it.
pub fn run_with_response(rs: &Arc<RuleSet>, s: &Shape) -> bool {
    served(rs, s, true).1
}

/// One request of shape `s` through the logging phase (and the response phases when
/// `with_response`), its transaction not yet dropped; whether it was blocked.
pub fn served(rs: &Arc<RuleSet>, s: &Shape, with_response: bool) -> (Transaction, bool) {
    let (mut tx, mut blocked) = request(rs, s);
    if with_response && !blocked {
        blocked = response(&mut tx);
    }
    tx.process_logging();
    (tx, blocked)
}

/// Phases 3 and 4 on bench.sh's upstream answer (`200`, `ok\n`); whether they blocked.
pub fn response(tx: &mut Transaction) -> bool {
    for (k, v) in [
        ("Server", "nginx/1.22.1"),
        ("Date", "Fri, 27 Nov 2026 00:00:00 GMT"),
        ("Content-Type", "text/plain"),
        ("Content-Length", "3"),
        ("Connection", "keep-alive"),
    ] {
        tx.add_response_header(k.as_bytes(), v.as_bytes());
    }
    if tx.process_response_headers(200, b"HTTP/1.1").is_some() {
        return true;
    }
    tx.append_response_body(b"ok\n");
    tx.process_response_body().is_some()
}

/// The transaction of `s` after its request phases (where nginx keeps it while the upstream
/// answers), and whether it was blocked.
pub fn request(rs: &Arc<RuleSet>, s: &Shape) -> (Transaction, bool) {
    let mut tx = Transaction::new(rs.clone(), "bench");
    tx.process_connection("127.0.0.1", 40000, "127.0.0.1", 80);
    tx.process_uri(s.uri.as_bytes(), s.method.as_bytes(), b"HTTP/1.1");
    tx.add_request_header(b"Host", b"localhost");
    tx.add_request_header(
        b"User-Agent",
        b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    );
    tx.add_request_header(b"Accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");
    tx.add_request_header(b"Accept-Language", b"en-US,en;q=0.5");
    tx.add_request_header(b"Accept-Encoding", b"gzip, deflate");
    if let Some(ct) = s.content_type {
        tx.add_request_header(b"Content-Type", ct.as_bytes());
        tx.add_request_header(b"Content-Length", s.body.len().to_string().as_bytes());
    }
    let mut blocked = tx.process_request_headers().is_some();
    if !blocked {
        tx.append_request_body(&s.body);
        blocked = tx.process_request_body().is_some();
    }
    (tx, blocked)
}
