//! The README's first command, end to end: `scripts/demo.sh` (without its setup and
//! build step, which scripts/test.sh has done) on free loopback ports in a private
//! directory; the SQL injection leaks SQLite's version through the DetectionOnly server
//! and gets 403 from the On server; the error log names the CRS rules and the JSON
//! access log the verdicts; `scripts/demo.sh stop` leaves nothing running.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, have_nginx, module_path, request};

const SQLI: &str = "user=admin%27%20UNION%20SELECT%201%2C%20sqlite_version%28%29%2C%201%20--";

fn alive(pid: &str) -> bool {
    Path::new(&format!("/proc/{}", pid.trim())).exists()
        && !std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).is_ok_and(|s| s.contains(") Z "))
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn demo_runs_end_to_end_and_stops_cleanly() {
    if !have_nginx() {
        return;
    }
    if !Path::new("/usr/share/modsecurity-crs/rules").is_dir() || Command::new("python3").arg("-V").output().is_err() {
        eprintln!("SKIPPED: Debian's modsecurity-crs or python3 missing (run scripts/setup.sh)");
        return;
    }
    module_path(); // built?
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::Builder::new().prefix("ward-demo-").tempdir().unwrap();
    let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
    let (on, det, kib_site, app, kib) = (ports[0], ports[1], ports[2], ports[3], ports[4]);
    let env = |c: &mut Command| {
        c.env("WARD_DEMO_NO_BUILD", "1")
            .env("WARD_DEMO_DIR", dir.path())
            .env("WARD_DEMO_PORT_ON", on.to_string())
            .env("WARD_DEMO_PORT_DET", det.to_string())
            .env("WARD_DEMO_PORT_KIBANA_SITE", kib_site.to_string())
            .env("WARD_DEMO_APP_PORT", app.to_string())
            .env("WARD_DEMO_KIBANA_PORT", kib.to_string());
    };
    let mut cmd = Command::new(root.join("scripts/demo.sh"));
    env(&mut cmd);
    let mut demo = Demo(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap());
    let demo = &mut demo.0;

    // Wait for the banner; it names the commands to try.
    let mut out = BufReader::new(demo.stdout.take().unwrap());
    let mut banner = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !banner.contains("Ctrl-C") {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(demo.stderr.as_mut().unwrap(), &mut err);
            panic!("demo.sh ended early:\n{banner}\n{err}");
        }
        banner.push_str(&line);
        assert!(Instant::now() < deadline, "no banner: {banner}");
    }
    assert!(banner.contains(&format!("http://localhost:{det}/login?{SQLI}")), "{banner}");
    assert!(banner.contains("logs/error.log") && banner.contains("logs/access.json"), "{banner}");

    let run = dir.path().join("run");
    let pids: Vec<String> = ["demo", "nginx", "vulnapp", "kibana"]
        .iter()
        .map(|n| std::fs::read_to_string(run.join(format!("{n}.pid"))).unwrap_or_else(|e| panic!("{n}.pid: {e}")))
        .collect();

    // common::request sends Host: localhost (a name, so CRS 920350 stays quiet).
    let localhost: [(&str, &str); 0] = [];
    let version = String::from_utf8(
        Command::new("python3").args(["-c", "import sqlite3; print(sqlite3.sqlite_version)"]).output().unwrap().stdout,
    )
    .unwrap();
    let version = version.trim();

    // DetectionOnly: the injection works and leaks the version.
    let r = request(det, "GET", &format!("/login?{SQLI}"), &localhost, b"").unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body_text().contains(&format!("Welcome, {version}!")), "{}", r.body_text());
    // On: refused.
    let r = request(on, "GET", &format!("/login?{SQLI}"), &localhost, b"").unwrap();
    assert_eq!(r.status, 403);
    assert!(!r.body_text().contains(version));
    let form = SQLI.as_bytes();
    let r = request(on, "POST", "/login", &[("Content-Type", "application/x-www-form-urlencoded")], form).unwrap();
    assert_eq!(r.status, 403);
    // Normal use works through both, and the Kibana site answers.
    let r = request(on, "GET", "/login?user=alice&password=wonderland", &localhost, b"").unwrap();
    assert_eq!((r.status, r.body_text().trim()), (200, "Welcome, alice!"));
    // The Kibana site is behind the login gate: no token, no Kibana.
    let r = request(kib_site, "GET", "/api/status", &localhost, b"").unwrap();
    assert_eq!(r.status, 401, "{}", r.body_text());
    let r = request(kib_site, "GET", "/login", &localhost, b"").unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body_text().contains("name=\"password\""), "{}", r.body_text());
    // With a token issued from the demo's key, the stand-in Kibana answers.
    let key = dir.path().join("auth/auth.key");
    let token = std::process::Command::new(common::module_path().with_file_name("ward"))
        .args(["token", "--key-file"])
        .arg(&key)
        .args(["--sub", "kibana"])
        .output()
        .unwrap();
    assert!(token.status.success(), "{}", String::from_utf8_lossy(&token.stderr));
    let bearer = format!("Bearer {}", String::from_utf8_lossy(&token.stdout).trim());
    let r = request(kib_site, "GET", "/api/status", &[("Authorization", bearer.as_str())], b"").unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body_text().contains("kibana-standin"));

    // The records.
    let logs = dir.path().join("logs");
    common::wait_until("5 access-log records", Duration::from_secs(10), || {
        std::fs::read_to_string(logs.join("access.json")).unwrap_or_default().lines().count() >= 5
    });
    let errors = std::fs::read_to_string(logs.join("error.log")).unwrap();
    let warn = errors.lines().find(|l| l.contains("ModSecurity: Warning.") && l.contains("[id \"942100\"]"));
    assert!(warn.is_some(), "no DetectionOnly record for 942100:\n{errors}");
    let denied = errors
        .lines()
        .find(|l| l.contains("ModSecurity: Access denied with code 403") && l.contains("[id \"949110\"]"));
    assert!(denied.is_some(), "no 403 record:\n{errors}");
    let access = std::fs::read_to_string(logs.join("access.json")).unwrap();
    let recs: Vec<serde_json::Value> = access.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let on_port = on.to_string();
    let det_port = det.to_string();
    assert!(recs.iter().any(|r| r["server_port"] == det_port.as_str()
        && r["ward_action"] == "detect"
        && r["ward_matched_ids"].as_str().unwrap().contains("942100")));
    assert!(recs
        .iter()
        .any(|r| r["server_port"] == on_port.as_str() && r["ward_action"] == "block" && r["status"] == "403"));

    // Stop from "another terminal"; nothing may be left.
    let mut stop = Command::new(root.join("scripts/demo.sh"));
    env(&mut stop);
    let st = stop.arg("stop").output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = demo.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "demo.sh still running after stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "demo.sh exit {status}");
    common::wait_until("demo processes to end", Duration::from_secs(10), || pids.iter().all(|p| !alive(p)));
    for p in [on, det, kib_site, app, kib] {
        assert!(!listening(p), "port {p} still listening after stop");
    }
    assert!(std::fs::read_dir(&run).unwrap().next().is_none(), "pid files left in {}", run.display());
}

/// Stops the demo if the test fails half-way (SIGTERM runs demo.sh's cleanup trap).
struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
            let _ = self.0.wait();
        }
    }
}

#[test]
fn demo_refuses_busy_ports() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = tempfile::Builder::new().prefix("ward-demo-").tempdir().unwrap();
    let out = Command::new(root.join("scripts/demo.sh"))
        .env("WARD_DEMO_NO_BUILD", "1")
        .env("WARD_DEMO_DIR", dir.path())
        .env("WARD_DEMO_PORT", free_port().to_string())
        .env("WARD_DEMO_PORT_ON", port.to_string())
        .env("WARD_DEMO_KIBANA_PORT", free_port().to_string())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("port(s) {port}")) && err.contains("already in use"), "{err}");
}
