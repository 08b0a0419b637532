//! Transformation registry (`t:name`): pure byte functions with ModSecurity's semantics.
//!
//! Each transformation returns `None` when its input is unchanged, so that a
//! value is never copied for a no-op. Names are case-insensitive.

/// A transformation function. `None` means "unchanged".
pub type Transform = fn(&[u8]) -> Option<Vec<u8>>;

/// Looks up a transformation by name (case-insensitive). `none` is handled by the
/// compiler (it clears the chain) and is not in this table.
pub fn lookup(name: &str) -> Option<Transform> {
    let _ = name;
    None
}
