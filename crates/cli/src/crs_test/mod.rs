//! `ward crs-test`: the CRS regression-test runner (go-ftw compatible).
//!
//! Loads go-ftw (v4) and ftw (3.3) YAML tests, sends each stage byte-exact as
//! go-ftw builds it, finds the rules that fired between two marker requests in
//! the server's error log and judges the stage. Parallel workers each own one
//! server (`--port` + worker index) and its error log (`--error-log` with
//! `{port}`/`{worker}` placeholders), as the reference setup did.
//! Writes a JSON results file in the format of `shared/crs/anchor-results`.

mod check;
mod client;
mod load;
mod overrides;
mod request;
mod waflog;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use regex::Regex;
use serde_json::{json, Value};

use load::{TestCase, TestFile};
use waflog::{IdExtractor, LogFollower};

const MARKER_RETRIES: usize = 20;

#[derive(Args)]
pub struct CrsTestArgs {
    /// Directory of test YAML files (searched recursively), e.g. ../shared/crs/v4/tests.
    #[arg(long)]
    tests: PathBuf,
    /// Server address (loopback only).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port of the first server; worker i uses port + i.
    #[arg(long, default_value_t = 18180)]
    port: u16,
    /// Error log of the server(s); `{port}` and `{worker}` are substituted per worker.
    #[arg(long)]
    error_log: String,
    /// Parallel workers (each needs its own server and error log).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// go-ftw platform overrides YAML (per-test expected-output overrides).
    #[arg(long)]
    overrides: Option<PathBuf>,
    /// Only run tests whose id (e.g. `920100-4`) matches this regex (wins over --exclude).
    #[arg(long)]
    include: Option<String>,
    /// Skip tests whose id matches this regex.
    #[arg(long)]
    exclude: Option<String>,
    /// Write machine-readable results (anchor-results format) here.
    #[arg(long)]
    results: Option<PathBuf>,
    /// Exit non-zero when fewer tests pass.
    #[arg(long)]
    min_pass: Option<usize>,
    /// Seconds to wait for a response.
    #[arg(long, default_value_t = 2.0)]
    read_timeout: f64,
    /// Name of the marker header the marker rule (999999) logs.
    #[arg(long, default_value = "X-CRS-Test")]
    marker_header: String,
    /// Print only failing tests and the totals.
    #[arg(long)]
    quiet: bool,
}

struct StageResult {
    status: Option<u16>,
    error: Option<String>,
    triggered: Vec<u32>,
    reason: Option<String>,
    lines: Vec<Vec<u8>>,
}

struct CaseResult {
    stages: Vec<StageResult>,
    /// "pass", "fail" or "error" (runner problem, e.g. marker not found).
    result: &'static str,
    reason: String,
    duration: f64,
}

struct Worker {
    addr: SocketAddr,
    log: LogFollower,
    timeout: Duration,
    header: String,
    nonce: String,
    counter: u64,
    ids: IdExtractor,
}

static MARKER_SEQ: AtomicU64 = AtomicU64::new(0);

impl Worker {
    fn next_marker(&mut self, kind: &str) -> String {
        self.counter += 1;
        format!("{}-{}-{}-{}", self.nonce, kind, self.counter, MARKER_SEQ.fetch_add(1, Ordering::Relaxed))
    }

    /// Sends marker requests until the marker shows up in the log.
    fn mark(&mut self, id: &str, before: &mut Vec<Vec<u8>>) -> Result<(), String> {
        let req = request::marker(&self.header, id);
        for _ in 0..MARKER_RETRIES {
            client::exchange(self.addr, &req, self.timeout).map_err(|e| format!("marker request failed: {e}"))?;
            if self.log.wait_for(id, Duration::from_millis(250), before) {
                return Ok(());
            }
        }
        Err("can't find log marker; is --error-log the server's log?".into())
    }

    fn run_stage(&mut self, stage: &load::Stage) -> StageResult {
        let start_id = self.next_marker("start");
        let end_id = self.next_marker("end");
        let mut discard = Vec::new();
        let start_err = self.mark(&start_id, &mut discard).err();
        let response = client::exchange(self.addr, &request::build(&stage.input), self.timeout);
        let mut lines = Vec::new();
        let end_err = self.mark(&end_id, &mut lines).err();
        let start_lower = start_id.to_ascii_lowercase();
        // Re-sent start markers (retries) are not the stage's lines.
        lines.retain(|l| !l.to_ascii_lowercase().windows(start_lower.len()).any(|w| w == start_lower.as_bytes()));
        let triggered = self.ids.ids(&lines);
        let marker_err = start_err.or(end_err);
        let reason = match (&marker_err, stage.output.expect_error) {
            (Some(e), false) => Some(e.clone()),
            _ => check::check(&stage.output, &response, &triggered, &lines),
        };
        let (status, error) = match response {
            Ok(r) => (Some(r.status), None),
            Err(e) => (None, Some(e)),
        };
        StageResult { status, error, triggered, reason, lines }
    }

    fn run_case(&mut self, case: &TestCase) -> CaseResult {
        let started = Instant::now();
        let mut stages = Vec::new();
        let mut failure = None;
        for (index, stage) in case.stages.iter().enumerate() {
            let mut result = self.run_stage(stage);
            if result.reason.is_some() && stage.output.retry_once {
                result = self.run_stage(stage);
            }
            if failure.is_none() {
                if let Some(reason) = &result.reason {
                    failure = Some(format!("stage {index}: {reason}"));
                }
            }
            stages.push(result);
        }
        let errored = stages.iter().any(|s| {
            s.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("can't find log marker") || r.starts_with("marker request failed"))
        });
        let result = match (&failure, errored) {
            (None, _) => "pass",
            (Some(_), true) => "error",
            (Some(_), false) => "fail",
        };
        CaseResult { stages, result, reason: failure.unwrap_or_default(), duration: started.elapsed().as_secs_f64() }
    }
}

struct Loaded {
    files: Vec<TestFile>,
    problems: Vec<Value>,
}

fn display_root(tests: &Path) -> String {
    let comps: Vec<String> = tests.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    let n = comps.len();
    comps[n.saturating_sub(2)..].join("/")
}

fn load_all(dir: &Path) -> Result<Loaded, String> {
    let root = display_root(dir);
    let paths = load::find_files(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        let rel = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().into_owned();
        let display = format!("{root}/{rel}");
        match load::load_file(&path, display.clone()) {
            Ok(f) => files.push(f),
            Err(problem) => problems.push(json!({"file": display, "problem": problem})),
        }
    }
    Ok(Loaded { files, problems })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn pct(passed: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        round2(passed as f64 * 100.0 / total as f64)
    }
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) without a date crate.
fn iso_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn compile(re: &Option<String>) -> Result<Option<Regex>, String> {
    re.as_deref().map(|r| Regex::new(r).map_err(|e| format!("bad regex {r}: {e}"))).transpose()
}

/// go-ftw's `needToSkipTest`: include wins over exclude.
fn skipped(title: &str, include: &Option<Regex>, exclude: &Option<Regex>) -> bool {
    if include.as_ref().is_some_and(|r| r.is_match(title)) {
        return false;
    }
    if exclude.as_ref().is_some_and(|r| r.is_match(title)) {
        return true;
    }
    include.is_some()
}

pub fn run(args: CrsTestArgs) -> Result<ExitCode, String> {
    if !args.host.is_loopback() {
        return Err(format!("crs-test only talks to loopback servers, not {}", args.host));
    }
    let jobs = args.jobs.clamp(1, 64);
    let include = compile(&args.include)?;
    let exclude = compile(&args.exclude)?;
    let mut loaded = load_all(&args.tests)?;
    if let Some(path) = &args.overrides {
        let ov = overrides::Overrides::load(path)?;
        for file in &mut loaded.files {
            for case in &mut file.tests {
                ov.apply(case);
            }
        }
    }
    // (file index, test index) of every test to run, in load order.
    let mut queue = Vec::new();
    let mut skipped_count = 0usize;
    for (fi, file) in loaded.files.iter().enumerate() {
        for (ti, case) in file.tests.iter().enumerate() {
            if skipped(&case.title, &include, &exclude) {
                skipped_count += 1;
            } else {
                queue.push((fi, ti));
            }
        }
    }

    let timeout = Duration::from_secs_f64(args.read_timeout.clamp(0.05, 60.0));
    let nonce = format!(
        "{:x}{:x}",
        std::process::id(),
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
    );
    let mut targets = Vec::new();
    let mut workers = Vec::new();
    for i in 0..jobs {
        let port = args.port.checked_add(i as u16).ok_or("port out of range")?;
        let log_path = args.error_log.replace("{port}", &port.to_string()).replace("{worker}", &i.to_string());
        let log = LogFollower::open(Path::new(&log_path), &args.marker_header)
            .map_err(|e| format!("can't open error log {log_path}: {e}"))?;
        targets.push(json!([args.host.to_string(), port, log_path]));
        workers.push(Worker {
            addr: SocketAddr::new(args.host, port),
            log,
            timeout,
            header: args.marker_header.clone(),
            nonce: format!("ward-{nonce}-w{i}"),
            counter: 0,
            ids: IdExtractor::new(),
        });
    }

    let started_at = iso_now();
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    // Like go-ftw, a marker that never shows up ends the run: every further
    // stage would only wait for it again.
    let abort = AtomicBool::new(false);
    let results: Mutex<Vec<Option<CaseResult>>> = Mutex::new((0..queue.len()).map(|_| None).collect());
    let print_lock = Mutex::new(());
    std::thread::scope(|scope| {
        for mut worker in workers {
            let (queue, files, next, results, print_lock, abort) =
                (&queue, &loaded.files, &next, &results, &print_lock, &abort);
            let quiet = args.quiet;
            scope.spawn(move || loop {
                if abort.load(Ordering::SeqCst) {
                    break;
                }
                let slot = next.fetch_add(1, Ordering::SeqCst);
                let Some(&(fi, ti)) = queue.get(slot) else { break };
                let case = &files[fi].tests[ti];
                let result = worker.run_case(case);
                if result.result == "error" {
                    abort.store(true, Ordering::SeqCst);
                }
                {
                    let _guard = print_lock.lock().unwrap_or_else(|p| p.into_inner());
                    match result.result {
                        "pass" if !quiet => println!("PASS  {}", case.title),
                        "pass" => {}
                        other => println!("{}  {}  {}", other.to_uppercase(), case.title, result.reason),
                    }
                }
                results.lock().unwrap_or_else(|p| p.into_inner())[slot] = Some(result);
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());

    // Totals, per category and the JSON report.
    #[derive(Default)]
    struct Tally {
        total: usize,
        passed: usize,
        failed: usize,
        errors: usize,
    }
    let mut all = Tally::default();
    let mut per_cat: BTreeMap<String, Tally> = BTreeMap::new();
    let mut tests_json = Vec::new();
    for (&(fi, ti), result) in queue.iter().zip(results.iter()) {
        let Some(result) = result else { continue };
        let file = &loaded.files[fi];
        let case = &file.tests[ti];
        let cat = per_cat.entry(file.category.clone()).or_default();
        for t in [&mut all, cat] {
            t.total += 1;
            match result.result {
                "pass" => t.passed += 1,
                "fail" => t.failed += 1,
                _ => t.errors += 1,
            }
        }
        let stages: Vec<Value> = result
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut v = json!({
                    "stage": i,
                    "status": s.status,
                    "error": s.error,
                    "triggered_ids": s.triggered,
                    "ok": s.reason.is_none(),
                    "reason": s.reason.clone().unwrap_or_default(),
                });
                if s.reason.is_some() {
                    v["log_lines"] =
                        s.lines.iter().map(|l| Value::from(String::from_utf8_lossy(l).into_owned())).collect();
                }
                v
            })
            .collect();
        tests_json.push(json!({
            "title": case.title,
            "rule_id": case.rule_id,
            "file": file.display,
            "category": file.category,
            "stages": stages,
            "result": result.result,
            "reason": result.reason,
            "duration_s": (result.duration * 10000.0).round() / 10000.0,
        }));
    }
    let tally_json = |t: &Tally| json!({"total": t.total, "passed": t.passed, "failed": t.failed, "errors": t.errors, "skipped": 0, "pass_pct": pct(t.passed, t.total)});
    let per_category: serde_json::Map<String, Value> =
        per_cat.iter().map(|(k, t)| (k.clone(), tally_json(t))).collect();
    let mut summary = tally_json(&all);
    summary["skipped"] = json!(skipped_count);
    summary["per_category"] = Value::Object(per_category);
    summary["elapsed_s"] = json!((elapsed * 10.0).round() / 10.0);
    summary["load_problems"] = Value::Array(loaded.problems.clone());
    let report = json!({
        "meta": {
            "tests": display_root(&args.tests),
            "targets": targets,
            "overrides": args.overrides.as_ref().map(|p| p.display().to_string()),
            "skip_file": null,
            "only": args.include,
            "id_regexes": waflog::ID_REGEXES,
            "started": started_at,
        },
        "summary": summary,
        "tests": tests_json,
    });
    if let Some(path) = &args.results {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    for p in &loaded.problems {
        eprintln!("load problem: {} ({})", p["file"].as_str().unwrap_or(""), p["problem"].as_str().unwrap_or(""));
    }
    println!(
        "{}: {}/{} passed ({} failed, {} errors, {} skipped) in {:.1}s",
        display_root(&args.tests),
        all.passed,
        all.total,
        all.failed,
        all.errors,
        skipped_count,
        elapsed
    );
    if abort.load(Ordering::SeqCst) {
        eprintln!(
            "crs-test: aborted: the marker rule's log line (999999, header {}) was not found in the error log",
            args.marker_header
        );
        return Ok(ExitCode::from(2));
    }
    if let Some(min) = args.min_pass {
        if all.passed < min {
            eprintln!("crs-test: {} passed, below --min-pass {min}", all.passed);
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}
