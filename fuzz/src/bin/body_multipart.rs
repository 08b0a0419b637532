//! Fuzz target: the multipart body processor. Input: the Content-Type value, a newline,
//! then the body.
use ward_engine::body::multipart::{self, MultipartLimits};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let (ct, body) = ward_fuzz::split_once(data, b'\n');
        let _ = multipart::parse(ct, body, &MultipartLimits::default());
        let _ = multipart::parse(ct, body, &MultipartLimits { file_limit: 1, store_files: true });
    });
}
