//! `ward passwd FILE USER`: adds or updates USER's argon2id hash in a login gate users file
//! (`ward_auth_users_file`). The password comes from a prompt without echo (asked twice) or,
//! when stdin is not a terminal, from its first line (for scripts).

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Args)]
pub struct PasswdArgs {
    /// The users file (created with mode 0600 when missing).
    pub file: PathBuf,
    /// The user name (no `:`, whitespace or control characters).
    pub user: String,
}

fn read_password() -> Result<String, String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| format!("prompt: {e}"))?;
        let again = rpassword::prompt_password("Password again: ").map_err(|e| format!("prompt: {e}"))?;
        if first != again {
            return Err("the passwords do not match".into());
        }
        return Ok(first);
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line).map_err(|e| format!("reading stdin: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

pub fn run(args: PasswdArgs) -> Result<ExitCode, String> {
    if !ward_auth::valid_user_name(&args.user) {
        return Err(format!(
            "\"{}\" is not a valid user name (no `:`, whitespace or control characters)",
            args.user.escape_debug()
        ));
    }
    let password = read_password()?;
    if password.is_empty() {
        return Err("empty password refused".into());
    }
    let hash = ward_auth::hash_password(&password).map_err(|e| e.to_string())?;
    ward_auth::update_users_file(&args.file, &args.user, &hash).map_err(|e| e.to_string())?;
    eprintln!("ward: user \"{}\" updated in {} (reload nginx to apply)", args.user, args.file.display());
    Ok(ExitCode::SUCCESS)
}
