//! `ward_huge_pages` (src/huge_pages.rs): a worker's heap, the CRS's compiled rules above
//! all, on 2 MB pages unless `off`, and still on them after requests (src/config.rs
//! `release_free_heap`: a small request's free heap is not given back, which would split
//! them).

mod common;

// Its table test of `/proc/self/maps` lines runs here (the module's own library is only
// built inside nginx).
#[allow(dead_code)]
#[path = "../src/huge_pages.rs"]
mod huge_pages;

use std::time::Duration;

use common::*;

/// The kernel's transparent huge page mode (`always`, `madvise` or `never`), if it has them.
fn thp_mode() -> Option<String> {
    let text = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok()?;
    let (_, rest) = text.split_once('[')?;
    Some(rest.split_once(']')?.0.to_string())
}

fn anon_huge_kb(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
    let line = text.lines().find(|l| l.starts_with("AnonHugePages:")).expect("AnonHugePages in smaps_rollup");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A CRS v4 worker's huge pages (kB) once started, and after a few requests and the trim
/// interval (src/ctx.rs), with `setting` in the http block; its error log.
fn worker_huge_kb(setting: &str) -> Option<(u64, u64, String)> {
    let crs = crs_v4()?;
    let (nginx, port) = start_crs_v4_site(&crs, 1, setting, &[]);
    let worker = *nginx.worker_pids().first().expect("a worker");
    // The worker reports once its pages are collapsed (when on), before its first request.
    let on = !setting.contains("off");
    wait_until("the worker's report", Duration::from_secs(10), || !on || nginx.error_log().contains("huge pages:"));
    let first = anon_huge_kb(worker);
    // Forms whose parsed arguments leave free pages inside the heap's huge pages, which
    // a trim would give back (splitting them) although the next request reuses them.
    let form = (0..100).map(|i| format!("field{i}={}", "v".repeat(2500))).collect::<Vec<_>>().join("&");
    for _ in 0..5 {
        assert_eq!(get(port, "/index.html?q=hello+world").status, 200);
        assert_eq!(post_form(port, "/index.html", form.as_bytes()).status, 405);
    }
    std::thread::sleep(Duration::from_millis(1300));
    let later = anon_huge_kb(worker);
    eprintln!("worker huge pages with {setting:?}: {first} kB at the start, {later} kB after requests");
    Some((first, later, nginx.error_log()))
}

#[test]
fn a_worker_s_heap_is_on_huge_pages_unless_off() {
    if !have_nginx() {
        return;
    }
    let Some(mode) = thp_mode().filter(|m| m != "never") else {
        eprintln!("SKIPPED: this kernel has no transparent huge pages (mode {:?})", thp_mode());
        return;
    };
    let Some((first, later, log)) = worker_huge_kb("") else { return };
    let said = log.lines().find(|l| l.contains("ward: huge pages:")).unwrap_or_else(|| panic!("no report in:\n{log}"));
    if said.contains("Invalid argument") {
        eprintln!("SKIPPED: this kernel has no MADV_COLLAPSE (Linux 6.1): {said}");
        return;
    }
    // The CRS v4's rules fill ~12 MB of the heap: some of it in 2 MB pages at least.
    assert!(first >= 4096, "{first} kB on huge pages at the start; {said}");
    assert!(later >= first, "huge pages split by later requests: {first} kB, then {later} kB");

    let (first, later, log) = worker_huge_kb("ward_huge_pages off;").unwrap();
    assert!(!log.contains("ward: huge pages:"), "{log}");
    // With `always` the kernel gives any large enough mapping huge pages by itself.
    if mode == "madvise" {
        assert_eq!((first, later), (0, 0), "huge pages with ward_huge_pages off");
    }
}

#[test]
fn huge_pages_directive_errors_fail_nginx_t() {
    if !have_nginx() {
        return;
    }
    let cases = [
        ("ward_huge_pages maybe;", "invalid value \"maybe\" in \"ward_huge_pages\" directive"),
        ("ward_huge_pages on; ward_huge_pages off;", "\"ward_huge_pages\" directive is duplicate"),
        ("server { listen 127.0.0.1:1; ward_huge_pages off; }", "\"ward_huge_pages\" directive is not allowed here"),
    ];
    for (directive, expected) in cases {
        let nginx = Nginx::prepare();
        nginx.write_conf(directive);
        let out = nginx.test_config();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{directive}: nginx -t passed");
        assert!(err.contains(expected), "{directive}: expected {expected:?} in:\n{err}");
    }
    let nginx = Nginx::prepare();
    nginx.write_conf("ward_huge_pages off;");
    let out = nginx.test_config();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The cache manager and loader, which run no rule, keep their pages as they are: one
/// report, the worker's.
#[test]
fn only_workers_collapse_their_heap() {
    if !have_nginx() {
        return;
    }
    if thp_mode().is_none_or(|m| m == "never") {
        eprintln!("SKIPPED: this kernel has no transparent huge pages (mode {:?})", thp_mode());
        return;
    }
    let mut nginx = Nginx::prepare();
    let port = free_port();
    nginx.write("rules/one.conf", "SecRuleEngine On\nSecRule ARGS \"@rx evil\" \"id:1,phase:1,deny\"\n");
    nginx.write("html/index.html", "ok\n");
    nginx.write_conf(&format!(
        "proxy_cache_path {}/cache keys_zone=c:1m;\nward on;\nward_rules_file rules/one.conf;\n\
         server {{ listen 127.0.0.1:{port}; root html; }}\n",
        nginx.prefix().display()
    ));
    nginx.start(port);
    assert_eq!(get(port, "/index.html").status, 200);
    let reports = || nginx.error_log().lines().filter(|l| l.contains("ward: huge pages:")).count();
    wait_until("the worker's report", Duration::from_secs(10), || reports() > 0);
    // The cache manager starts with the worker; the loader a minute later.
    std::thread::sleep(Duration::from_millis(500));
    let title = |pid: &u32| std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(nginx.worker_pids().iter().any(|p| title(p).contains("cache manager")), "no cache manager running");
    assert_eq!(reports(), 1, "{}", nginx.error_log());
}
