//! Test harness: a private nginx (own prefix, free loopback ports) with the built Ward
//! module, a recording upstream on loopback, and a tiny raw HTTP client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const NGINX: &str = "/usr/sbin/nginx";
const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// The module built by `cargo build --release` (scripts/test.sh builds it first).
pub fn module_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let so = target.join("release/libngx_http_ward_module.so");
    assert!(
        so.exists(),
        "{} not found: build it first with `cargo build --release --workspace` (scripts/test.sh does)",
        so.display()
    );
    so.canonicalize().unwrap()
}

/// The CRS v4 of ../shared (canonical path), or None after saying the test is skipped.
#[allow(dead_code)]
pub fn crs_v4() -> Option<std::path::PathBuf> {
    let crs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/crs/v4");
    if !crs.join("rules").is_dir() {
        eprintln!("SKIPPED: ../shared/crs/v4 not found");
        return None;
    }
    crs.canonicalize().ok()
}

/// A rules file running the CRS v4 in `crs` at `paranoia`, engine and body inspection on:
/// `settings` go before the CRS setup, `after` after its rules.
pub fn crs_v4_rules(crs: &Path, settings: &str, paranoia: u8, after: &str) -> String {
    format!(
        "SecRuleEngine On\nSecRequestBodyAccess On\n{settings}\
         Include {crs}/crs-setup.conf.example\n\
         SecAction \"id:900000,phase:1,pass,nolog,setvar:tx.blocking_paranoia_level={paranoia}\"\n\
         Include {crs}/rules/*.conf\n{after}",
        crs = crs.display()
    )
}

/// nginx started with `env`, serving `html/index.html` (`ok`) on a new port with Ward on
/// and the CRS v4 in `crs` at `paranoia`; `http_extra` goes first in the http block.
#[allow(dead_code)]
pub fn start_crs_v4_site(crs: &Path, paranoia: u8, http_extra: &str, env: &[(&str, &str)]) -> (Nginx, u16) {
    let mut nginx = Nginx::prepare();
    let port = free_port();
    nginx.write("rules/crs.conf", &crs_v4_rules(crs, "", paranoia, ""));
    nginx.write("html/index.html", "ok\n");
    nginx.write_conf(&format!(
        "{http_extra}\nward on;\nward_rules_file rules/crs.conf;\n\
         server {{ listen 127.0.0.1:{port}; root html; }}\n"
    ));
    nginx.start_with_env(port, env);
    (nginx, port)
}

/// False (with a SKIPPED line) when the system nginx is missing.
pub fn have_nginx() -> bool {
    if Path::new(NGINX).exists() {
        return true;
    }
    eprintln!("SKIPPED: {NGINX} not found (run scripts/setup.sh)");
    false
}

/// A loopback port nobody listens on right now, and never handed out before in this
/// test process: the kernel may give a just-released port again, and two servers of one
/// test on the same port silently share it (nginx answers from the first server).
/// A process's resident set (`VmRSS`), in kB.
pub fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS for {pid}"))
}

pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

// ---------------------------------------------------------------- upstream

/// What the upstream saw for one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub request_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A loopback HTTP/1.x server that records every request and answers
/// `200 upstream-ok len=<body length>`.
pub struct Upstream {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rec = seen.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let rec = rec.clone();
                thread::spawn(move || {
                    let _ = serve_one(conn, &rec);
                });
            }
        });
        Upstream { port, seen }
    }

    /// Requests whose request line contains `needle`.
    pub fn requests_to(&self, needle: &str) -> Vec<Seen> {
        self.seen.lock().unwrap().iter().filter(|s| s.request_line.contains(needle)).cloned().collect()
    }
}

fn serve_one(conn: TcpStream, rec: &Mutex<Vec<Seen>>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut out = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    let mut request_line = String::new();
    r.read_line(&mut request_line)?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        r.read_exact(&mut body)?;
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    let reply = format!("upstream-ok len={}", body.len());
    rec.lock().unwrap().push(Seen { request_line: request_line.trim_end().to_string(), headers, body });
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    )?;
    out.flush()?;
    let _ = out.shutdown(Shutdown::Write);
    Ok(())
}

// ---------------------------------------------------------------- client

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Sends one raw HTTP/1.1 request (`Connection: close`) and reads the whole answer.
/// Err when the connection fails or closes without a status line (e.g. `drop`).
pub fn request(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    // A blocked request may be answered before the whole body is sent.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw)
}

pub fn get(port: u16, target: &str) -> Response {
    request(port, "GET", target, &[], b"").unwrap_or_else(|e| panic!("GET {target}: {e}"))
}

pub fn post_form(port: u16, target: &str, body: &[u8]) -> Response {
    request(port, "POST", target, &[("Content-Type", "application/x-www-form-urlencoded")], body)
        .unwrap_or_else(|e| panic!("POST {target}: {e}"))
}

fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "no HTTP response");
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(bad)?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))).collect();
    let mut body = raw[end + 4..].to_vec();
    if headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body);
    }
    Ok(Response { status, headers, body })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if n == 0 || b.len() < eol + 2 + n {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[(eol + 4 + n).min(b.len())..];
    }
    out
}

// ---------------------------------------------------------------- nginx

/// A private nginx: its own prefix directory, config and logs; stopped on drop.
pub struct Nginx {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Nginx {
    /// Creates the prefix (with `logs/` and `rules/`) without starting nginx.
    pub fn prepare() -> Nginx {
        let dir = tempfile::Builder::new().prefix("ward-test-").tempdir().unwrap();
        for sub in ["logs", "rules", "html"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        // Workers (user nobody when we are root) must reach the prefix.
        let _ = Command::new("chmod").args(["-R", "a+rX"]).arg(dir.path()).status();
        Nginx { dir, child: None }
    }

    pub fn prefix(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path(rel);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(&p, content).unwrap();
        let _ = Command::new("chmod").arg("a+r").arg(&p).status();
    }

    /// Writes `nginx.conf` = the main preamble (module, error log, pid) + `http_body`
    /// inside `http { … }`.
    pub fn write_conf(&self, http_body: &str) {
        let conf = format!(
            "load_module {module};\n\
             {user}\
             worker_processes 1;\n\
             error_log {prefix}/logs/error.log info;\n\
             pid {prefix}/logs/nginx.pid;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
             access_log {prefix}/logs/access.log;\n\
             client_body_temp_path {prefix}/client_body_temp;\n\
             proxy_temp_path {prefix}/proxy_temp;\n\
             fastcgi_temp_path {prefix}/fastcgi_temp;\n\
             uwsgi_temp_path {prefix}/uwsgi_temp;\n\
             scgi_temp_path {prefix}/scgi_temp;\n\
             {http_body}\n\
             }}\n",
            module = module_path().display(),
            user = if is_root() { "user root;\n" } else { "" },
            prefix = self.prefix().display(),
        );
        self.write("nginx.conf", &conf);
    }

    fn base_args(&self) -> Vec<String> {
        let p = self.prefix().display().to_string();
        vec![
            "-p".into(),
            format!("{p}/"),
            "-c".into(),
            format!("{p}/nginx.conf"),
            "-e".into(),
            format!("{p}/logs/error.log"),
        ]
    }

    /// `nginx -t` on the current config.
    pub fn test_config(&self) -> Output {
        Command::new(NGINX).args(self.base_args()).arg("-t").output().unwrap()
    }

    /// Starts nginx in the foreground (master + 1 worker) and waits until `port` accepts.
    pub fn start(&mut self, port: u16) {
        self.start_with_env(port, &[]);
    }

    /// [`Nginx::start`] with extra environment variables for nginx.
    pub fn start_with_env(&mut self, port: u16, env: &[(&str, &str)]) {
        let child = Command::new(NGINX)
            .args(self.base_args())
            .envs(env.iter().copied())
            .args(["-g", "daemon off; master_process on;"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let mut err = String::new();
                let _ = self.child.as_mut().unwrap().stderr.take().unwrap().read_to_string(&mut err);
                panic!("nginx exited ({status}): {err}\n{}", self.error_log());
            }
            assert!(Instant::now() < deadline, "nginx did not listen on {port}\n{}", self.error_log());
            thread::sleep(Duration::from_millis(50));
        }
        // The master listens before it forks the workers: wait for them too, so that tests
        // that compare worker pids before and after start from the real set.
        let expected = self.configured_workers();
        while self.worker_pids().len() < expected {
            assert!(Instant::now() < deadline, "nginx did not start {expected} worker(s)\n{}", self.error_log());
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `worker_processes N;` from nginx.conf (1 when absent or not a number).
    fn configured_workers(&self) -> usize {
        let conf = std::fs::read_to_string(self.path("nginx.conf")).unwrap_or_default();
        conf.lines()
            .find_map(|l| l.trim().strip_prefix("worker_processes")?.trim().strip_suffix(';')?.trim().parse().ok())
            .unwrap_or(1)
    }

    /// `nginx -s <signal>` against this instance.
    pub fn signal(&self, sig: &str) -> Output {
        Command::new(NGINX).args(self.base_args()).args(["-s", sig]).output().unwrap()
    }

    /// SIGHUP to the master directly: `nginx -s reload` parses the new config itself
    /// and would refuse to signal when it is broken.
    pub fn hup(&self) {
        let pid = self.child.as_ref().expect("nginx started").id();
        // SAFETY: plain kill(2) on our own child process.
        let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGHUP) };
        assert_eq!(rc, 0, "kill -HUP {pid}");
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.path("logs/error.log")).unwrap_or_default()
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.path("logs/access.log")).unwrap_or_default()
    }

    /// Error-log lines containing every needle (polled briefly: workers write
    /// asynchronously to the test's reads).
    pub fn log_lines_with(&self, needles: &[&str]) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_millis(1500);
        loop {
            let lines: Vec<String> = self
                .error_log()
                .lines()
                .filter(|l| needles.iter().all(|n| l.contains(n)))
                .map(str::to_string)
                .collect();
            if !lines.is_empty() || Instant::now() > deadline {
                return lines;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Worker pids (children of the master), to watch reloads.
    pub fn worker_pids(&self) -> Vec<u32> {
        let Some(child) = &self.child else { return vec![] };
        let master = child.id();
        let mut pids: Vec<u32> = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                // /proc/PID/stat: "pid (comm) state ppid …"; comm may contain spaces.
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
                after.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(master)
            })
            .collect();
        pids.sort_unstable();
        pids
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        // SIGTERM to the master directly: `nginx -s stop` re-reads the config and does nothing
        // when a test left it broken, and the SIGKILL below would then orphan the workers.
        // SAFETY: plain kill(2) on our own child process.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Polls `f` until it returns true (bounded).
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}
