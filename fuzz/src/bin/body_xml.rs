//! Fuzz target: the XML body processor and XPath evaluation over what it built.
use ward_engine::body::xml;

fn main() {
    let paths = std::panic::AssertUnwindSafe::<Vec<xml::XPath>>( ["/*", "//*", "//@*", "/a/b/text()", "//ns:x"]
        .iter()
        .filter_map(|p| xml::XPath::compile(p.as_bytes()).ok())
        .collect());
    let ns = [(b"ns".to_vec(), b"urn:x".to_vec())];
    afl::fuzz!(|data: &[u8]| {
        let out = xml::parse(data);
        for p in paths.iter() {
            let _ = p.eval(&out.doc, &ns);
        }
        let _ = out.doc.root_content();
        let _ = xml::XPath::compile(data);
    });
}
