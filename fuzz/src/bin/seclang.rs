//! Fuzz target: the SecLang parser and rule compiler on whole files and single directives.
use std::path::Path;
use std::sync::Arc;

fn main() {
    let file: Arc<Path> = Arc::from(Path::new("/fuzz/x.conf"));
    afl::fuzz!(|data: &[u8]| {
        let text = String::from_utf8_lossy(data);
        let _ = ward_engine::parser::parse(&text, &file, 1);
        let _ = ward_engine::parser::split_actions(&text);
        let _ = ward_engine::parser::split_variables(&text);
        let _ = ward_engine::RuleSet::compile(&[ward_fuzz::inline(&text)]);
    });
}
