// SQL injection blacklist checker - matches C implementation exactly

use super::sqli_data;

/// Check if a fingerprint is blacklisted
/// This matches libinjection_sqli_blacklist from the C version
pub fn is_blacklisted(fingerprint: &str) -> bool {
    // Match the C version: convert v0 fingerprint to v1 format
    // v0: up to 5 chars, mixed case  
    // v1: '0' prefix, up to 5 more chars, upper case
    
    is_blacklisted_bytes(fingerprint.as_bytes())
}

/// [`is_blacklisted`] on bytes.
pub(crate) fn is_blacklisted_bytes(fp: &[u8]) -> bool {
    if fp.is_empty() {
        return false;
    }
    
    // "0" + the fingerprint, on the stack (was a String): the lookup ignores ASCII case,
    // which is all the upper-casing here did.
    let mut buf = [0u8; 16];
    match buf.get_mut(1..=fp.len()) {
        Some(rest) => rest.copy_from_slice(fp),
        None => return false, // longer than any keyword
    }
    buf[0] = b'0';
    let fp2 = buf.get(..=fp.len()).unwrap_or_default();

    // Check if this fingerprint exists in the keywords table with type 'F'
    sqli_data::lookup_word_bytes(fp2) == crate::sqli::TokenType::Fingerprint
}
