//! `ward`: Ward's command-line tool.
//!
//! Subcommands live in their own modules; `main` only parses the command line
//! (clap derive) and dispatches.

mod albedo;
mod check;
mod crs_test;
mod eval;
mod keygen;
mod passwd;
mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ward", version, about = "Ward web application firewall tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile rule files; report the first problem with its file:line.
    Check(check::CheckArgs),
    /// Evaluate a raw HTTP request file against a rule set, offline.
    Eval(eval::EvalArgs),
    /// Run the OWASP CRS regression tests (go-ftw / ftw YAML) against a running server.
    CrsTest(crs_test::CrsTestArgs),
    /// Add or update a user's argon2id hash in a login gate users file.
    Passwd(passwd::PasswdArgs),
    /// Write a new random HMAC secret (mode 0600) for ward_auth_key_file.
    Keygen(keygen::KeygenArgs),
    /// Print a signed login gate token (for tests and scripts).
    Token(token::TokenArgs),
    /// Test backend in the style of CRS's "albedo" (loopback only).
    #[command(hide = true)]
    Albedo(albedo::AlbedoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => check::run(args),
        Command::Eval(args) => eval::run(args),
        Command::CrsTest(args) => crs_test::run(args),
        Command::Albedo(args) => albedo::run(args),
        Command::Passwd(args) => passwd::run(args),
        Command::Keygen(args) => keygen::run(args),
        Command::Token(args) => token::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("ward: {err}");
            ExitCode::from(2)
        }
    }
}
