//! `ward check FILE…`: compiles rule files as one set (in order, as nginx would load
//! them) and reports the first problem with file:line, or a summary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use ward_engine::{RuleSet, RuleSource};

#[derive(Args)]
pub struct CheckArgs {
    /// SecLang files, loaded in the order given (Include inside them works).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(args: CheckArgs) -> Result<ExitCode, String> {
    let sources: Vec<RuleSource> = args.files.into_iter().map(RuleSource::File).collect();
    let t = Instant::now();
    match RuleSet::compile(&sources) {
        Ok(rs) => {
            let s = rs.stats();
            println!(
                "ok: {} rules, engine {}, regex: {} on the regex crate, {} on PCRE2, {} built on first use, {} operators with macros, {} rule links prefiltered ({} on two literal sets), {} setup rules evaluated at load, {} more decided at load; compiled in {:.0} ms",
                s.rules,
                rs.engine_mode().name(),
                s.regex_on_regex_crate,
                s.regex_on_pcre2,
                s.regex_deferred,
                s.dynamic_operators,
                s.gated_links,
                s.gated_on_two_sets,
                s.folded_setup_rules,
                s.decided_at_load,
                t.elapsed().as_secs_f64() * 1000.0
            );
            if let Some(note) = rs.unavailable_summary() {
                println!("info: {note}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
