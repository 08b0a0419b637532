//! `ward token --key-file F --sub USER [--ttl 1h] [--claim k=v]…`: prints a signed token, as
//! the built-in login would issue it (for tests, scripts and service accounts).
//! `--claim k=v` adds a string claim; `--claim k:=JSON` a JSON value (`roles:=["a","b"]`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::Value;
use ward_auth::{issue_token, parse_time, AuthConfig, AuthSettings, Claims};

#[derive(Args)]
pub struct TokenArgs {
    /// HMAC secret or private key (the file nginx's `ward_auth_key_file` names).
    #[arg(long)]
    pub key_file: PathBuf,
    /// The subject (user name); `$ward_auth_user` in nginx.
    #[arg(long)]
    pub sub: String,
    /// Lifetime, nginx-style (`45s`, `30m`, `8h`, `1d`).
    #[arg(long, default_value = "1h")]
    pub ttl: String,
    /// Extra claim `name=value` (string) or `name:=json`; repeatable.
    #[arg(long = "claim", value_name = "NAME=VALUE")]
    pub claims: Vec<String>,
    /// `iss` claim (must match `ward_auth_issuer` when that is set).
    #[arg(long)]
    pub issuer: Option<String>,
    /// `aud` claim (must match `ward_auth_audience` when that is set).
    #[arg(long)]
    pub audience: Option<String>,
}

fn parse_claim(arg: &str) -> Result<(String, Value), String> {
    if let Some((k, v)) = arg.split_once(":=") {
        if !k.contains('=') {
            let v = serde_json::from_str(v).map_err(|e| format!("--claim {arg}: invalid JSON: {e}"))?;
            return Ok((k.to_string(), v));
        }
    }
    let (k, v) = arg.split_once('=').ok_or_else(|| format!("--claim {arg}: expected NAME=VALUE"))?;
    if k.is_empty() {
        return Err(format!("--claim {arg}: empty claim name"));
    }
    Ok((k.to_string(), Value::from(v)))
}

pub fn run(args: TokenArgs) -> Result<ExitCode, String> {
    let ttl = parse_time(&args.ttl).map_err(|e| format!("--ttl: {e}"))?;
    let mut extra = Claims::new();
    for c in &args.claims {
        let (k, v) = parse_claim(c)?;
        extra.insert(k, v);
    }
    let settings = AuthSettings {
        key_file: Some(args.key_file),
        issuer: args.issuer,
        audience: args.audience,
        token_ttl: ttl.max(std::time::Duration::from_secs(1)),
        ..AuthSettings::default()
    };
    let config = AuthConfig::load(&settings).map_err(|e| e.to_string())?;
    let token = issue_token(&config, &args.sub, &extra, Some(ttl)).map_err(|e| e.to_string())?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims() {
        let cases: &[(&str, Option<(&str, Value)>)] = &[
            ("role=admin", Some(("role", Value::from("admin")))),
            ("url=a=b", Some(("url", Value::from("a=b")))),
            ("roles:=[\"a\"]", Some(("roles", serde_json::json!(["a"])))),
            ("n:=3", Some(("n", Value::from(3)))),
            ("n:=oops", None),
            ("=x", None),
            ("novalue", None),
        ];
        for (arg, want) in cases {
            let got = parse_claim(arg).ok();
            assert_eq!(got.as_ref().map(|(k, v)| (k.as_str(), v.clone())), want.clone(), "{arg}");
        }
    }
}
