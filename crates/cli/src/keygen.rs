//! `ward keygen FILE`: writes a new random HMAC secret (384 bits, base64url text) for
//! `ward_auth_key_file`, with mode 0600. An existing file is kept unless `--force`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Args)]
pub struct KeygenArgs {
    /// Where to write the secret.
    pub file: PathBuf,
    /// Replace an existing file (tokens signed with the old secret stop working).
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: KeygenArgs) -> Result<ExitCode, String> {
    let secret = ward_auth::generate_hmac_secret().map_err(|e| e.to_string())?;
    let path = &args.file;
    if path.exists() && !args.force {
        return Err(format!("{} exists; use --force to replace it", path.display()));
    }
    // Written beside the target and renamed over it, so a reader never sees half a key and
    // the secret is never readable by others, even briefly.
    let name = path.file_name().ok_or_else(|| format!("{}: not a file name", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.ward-tmp", name.to_string_lossy()));
    let _ = std::fs::remove_file(&tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(&secret)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{}: {e}", path.display()));
    }
    eprintln!("ward: wrote a new HMAC secret to {} (mode 0600)", path.display());
    Ok(ExitCode::SUCCESS)
}
