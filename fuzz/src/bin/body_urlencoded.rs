//! Fuzz target: the urlencoded body processor (and the query-string splitter).
use ward_engine::body::urlencoded;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let mut out = Vec::new();
        let o = urlencoded::parse(data, &mut out);
        assert_eq!(o.count, out.len());
        let mut out = Vec::new();
        let _ = urlencoded::parse_with_separator(data, b';', &mut out);
        let mut borrowed = Vec::new();
        let _ = urlencoded::parse_borrowed(data, b'&', &mut borrowed);
        let _ = urlencoded::decode(data);
    });
}
