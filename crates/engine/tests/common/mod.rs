//! Helpers shared by the engine's integration tests that read ../shared.

use std::path::{Path, PathBuf};

/// The workspace's `../shared` (ModSecurity's test sets, the CRS).
pub fn shared() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")).to_path_buf()
}

/// JSON strings in ModSecurity's test sets stand for bytes: each char is one byte.
#[allow(dead_code)]
pub fn json_bytes(s: &str) -> Vec<u8> {
    s.chars()
        .flat_map(|c| match u8::try_from(u32::from(c)) {
            Ok(b) => vec![b],
            Err(_) => c.to_string().into_bytes(),
        })
        .collect()
}
