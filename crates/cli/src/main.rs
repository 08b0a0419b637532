//! `ward`: Ward's command-line tool.
//!
//! Subcommands live in their own modules; `main` only parses the command line
//! (clap derive) and dispatches. Room is left for `check`, `eval`,
//! `hash-password` and `keygen`, which are added beside `crs-test`.

mod albedo;
mod crs_test;

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
    /// Run the OWASP CRS regression tests (go-ftw / ftw YAML) against a running server.
    CrsTest(crs_test::CrsTestArgs),
    /// Test backend in the style of CRS's "albedo" (loopback only).
    #[command(hide = true)]
    Albedo(albedo::AlbedoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CrsTest(args) => crs_test::run(args),
        Command::Albedo(args) => albedo::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("ward: {err}");
            ExitCode::from(2)
        }
    }
}
