//! Loading the data files named by `@pmFromFile` and `@ipMatchFromFile`.
//!
//! As ModSecurity v3's `find_resource`: the path as given (absolute, or relative to the
//! working directory) if it can be opened, else relative to the rule file's directory.
//! `https://` lists (downloaded by ModSecurity at load time) are not supported.

use std::path::Path;

use super::OperatorContext;

/// The bytes of the file `param` names.
pub fn read(param: &str, ctx: &OperatorContext) -> Result<Vec<u8>, String> {
    if param.starts_with("https://") {
        return Err(format!("cannot load {param}: downloading data files is not supported"));
    }
    let as_given = Path::new(param);
    ctx.read(as_given).or_else(|_| {
        let beside = ctx.base_dir.join(param);
        ctx.read(&beside)
            .map_err(|e| format!("failed to open file {param} (looked at {param}, {}): {e}", beside.display()))
    })
}
