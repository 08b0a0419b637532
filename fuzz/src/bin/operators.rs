//! Fuzz target: the operators that parse their parameter or their input. Input: a
//! parameter line, a newline, then the value to evaluate.
use std::path::Path;

use ward_engine::operators::{self, OperatorContext};

const WITH_PARAM: &[&str] = &["ipMatch", "validateByteRange", "rx", "rxGlobal", "pm", "within", "eq", "verifyCC", "strmatch", "containsWord"];
const FIXED: &[(&str, &str)] = &[
    ("validateUrlEncoding", ""), ("validateUtf8Encoding", ""), ("validateByteRange", "1-255"),
    ("detectSQLi", ""), ("detectXSS", ""), ("ipMatch", "127.0.0.1,10.0.0.0/8,::1,2001:db8::/32"),
    ("verifyCC", "\\d{13,16}"), ("verifyCPF", "\\d{11}"), ("verifySSN", "\\d{9}"), ("verifySVNR", "\\d{10}"),
];

fn main() {
    let ctx = || OperatorContext::new(Path::new("/nonexistent"));
    let fixed = std::panic::AssertUnwindSafe::<Vec<_>>( FIXED.iter().map(|(n, p)| operators::create(n, p, &ctx()).expect("fixed operator")).collect());
    afl::fuzz!(|data: &[u8]| {
        let (param, input) = ward_fuzz::split_once(data, b'\n');
        let mut caps = Vec::new();
        for op in fixed.iter() {
            let _ = op.evaluate(input, Some(&mut caps));
            let _ = op.evaluate(data, None);
        }
        let param = String::from_utf8_lossy(param);
        for name in WITH_PARAM {
            if let Ok(op) = operators::create(name, &param, &ctx()) {
                let _ = op.evaluate(input, Some(&mut caps));
            }
        }
    });
}
