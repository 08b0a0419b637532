//! Fuzz target: every transformation (`transformations::names()`), with the "unchanged"
//! contract and the round-trips that hold.
use ward_engine::transformations::{lookup, names};

fn apply(name: &str, input: &[u8]) -> Vec<u8> {
    lookup(name).and_then(|f| f(input)).unwrap_or_else(|| input.to_vec())
}

fn main() {
    afl::fuzz!(|data: &[u8]| {
        for name in names() {
            if let Some(out) = lookup(name).and_then(|f| f(data)) {
                assert_ne!(out, data, "{name}: Some for unchanged input");
            }
        }
        assert_eq!(apply("urlDecode", &apply("urlEncode", data)), data);
        assert_eq!(apply("hexDecode", &apply("hexEncode", data)), data);
        assert_eq!(apply("base64Decode", &apply("base64Encode", data)), data);
        for name in ["lowercase", "compressWhitespace"] {
            let once = apply(name, data);
            assert_eq!(apply(name, &once), once, "{name} idempotent");
        }
    });
}
