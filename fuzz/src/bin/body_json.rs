//! Fuzz target: the JSON body processor, with default and with tight limits.
use ward_engine::body::json::{self, JsonLimits};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let mut out = Vec::new();
        let _ = json::parse(data, &JsonLimits::default(), &mut out);
        let mut out = Vec::new();
        let tight = JsonLimits { max_depth: 3, max_args: Some(5), max_output_bytes: 4096 };
        let _ = json::parse(data, &tight, &mut out);
    });
}
