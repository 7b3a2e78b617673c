//! A real headless Chromium for the web UI tests, driven over W3C WebDriver.
//!
//! [`Browser::start`] makes a temp dir, starts Debian's `chromedriver --port=0` (it binds
//! loopback only and prints the port it got) in its own process group, waits until its
//! `/status` says ready, and opens one session: new headless mode, `--no-sandbox` (we
//! run as root), no GPU, no /dev/shm, a 1280x900 window, a fresh profile in the temp
//! dir, and `acceptInsecureCerts` (our HTTPS certificate is self-signed). The client is
//! plain HTTP/1.1 over `std::net::TcpStream`, one connection per command.
//!
//! This module owns every process of that instance: dropping the value ends the session,
//! kills chromedriver and whatever is left of its process group, plus Chromium's crash
//! handlers (they detach into their own sessions; `XDG_CONFIG_HOME` points their database
//! into the temp dir so they can be found by it), and waits until none is running, then
//! removes the temp dir. [`Browser::pids`] lists them for a test. Chromium's zygotes
//! outlive the browser process, so init (not us) reaps them: they may show as zombies
//! for a second or two after the drop.
//!
//! Convenience methods panic with the WebDriver error and the current URL: in a test
//! that is the result. [`Browser::cmd`] gives the raw `Result` for anything else.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`./tests/run.sh` installs them).

use serde_json::{Value, json};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PACKAGES: &str = "chromium chromium-driver";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long `start` waits for chromedriver, and one command for its answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const IO_TIMEOUT: Duration = Duration::from_secs(120);
/// `wait_for` and `wait_until` poll this often, this long.
const POLL: Duration = Duration::from_millis(50);
const WAIT_TIMEOUT: Duration = Duration::from_secs(20);
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver error (`error` is the W3C code, e.g. "no such element").
#[derive(Debug, Clone)]
pub struct WdError {
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    pub path: Option<String>,
    pub domain: Option<String>,
    pub http_only: bool,
    pub secure: bool,
    /// "Strict", "Lax" or "None" as the browser reports it.
    pub same_site: Option<String>,
}

pub struct Browser {
    port: u16,
    session: String,
    driver: Child,
    dir: tempfile::TempDir,
}

pub struct Element<'b> {
    b: &'b Browser,
    id: String,
}

fn missing(what: &str) -> ! {
    panic!(
        "{what}: the browser tests need the Debian packages {PACKAGES}. Run ./tests/run.sh \
         (it installs them), or `apt-get install -y {PACKAGES}`"
    )
}

/// One HTTP/1.1 exchange with chromedriver; returns the status and the JSON body.
/// The body is read by its Content-Length: chromedriver does not always close.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> io::Result<(u16, Value)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if let Some(body) = body.map(Value::to_string) {
        req += &format!(
            "Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    } else {
        req += "\r\n";
    }
    s.write_all(req.as_bytes())?;
    let mut r = BufReader::new(s);
    let (mut status, mut len) = (None, None);
    let mut line = String::new();
    while r.read_line(&mut line)? > 0 && !line.trim().is_empty() {
        if status.is_none() {
            status = line.split(' ').nth(1).and_then(|s| s.parse().ok());
        } else if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().ok();
        }
        line.clear();
    }
    let (Some(status), Some(len)) = (status, len) else {
        return Err(io::Error::other(format!(
            "a bad answer, ending with {line:?}"
        )));
    };
    let mut raw = vec![0; len];
    r.read_exact(&mut raw)?;
    let json = serde_json::from_slice(&raw)
        .map_err(|e| io::Error::other(format!("{e}: {}", String::from_utf8_lossy(&raw))))?;
    Ok((status, json))
}

impl Browser {
    pub fn start() -> Browser {
        for (bin, pkg) in [(CHROMEDRIVER, "chromium-driver"), (CHROMIUM, "chromium")] {
            if !Path::new(bin).is_file() {
                missing(&format!("{bin} (package {pkg}) is not installed"));
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("postroom-browser-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        let out_path = dir.path().join("chromedriver.out");
        let out = std::fs::File::create(&out_path).unwrap_or_else(|e| panic!("{out_path:?}: {e}"));
        let log = dir.path().join("chromedriver.log");
        let driver = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .arg(format!("--log-path={}", log.display()))
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| missing(&format!("cannot run {CHROMEDRIVER}: {e}")));
        // From here on Drop cleans up whatever happens.
        let mut b = Browser {
            port: 0,
            session: String::new(),
            driver,
            dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let said = || std::fs::read_to_string(&out_path).unwrap_or_default();
        let mut ready = false;
        while !ready {
            if let Ok(Some(status)) = b.driver.try_wait() {
                missing(&format!(
                    "{CHROMEDRIVER} exited ({status}) before it was ready: {}",
                    said()
                ));
            }
            assert!(
                Instant::now() < deadline,
                "{CHROMEDRIVER} not ready within {START_TIMEOUT:?} (port {}): {}",
                b.port,
                said()
            );
            if b.port == 0 {
                let text = said();
                let port = text.split("started successfully on port ").nth(1);
                b.port = port
                    .and_then(|p| p.trim().trim_end_matches('.').parse().ok())
                    .unwrap_or(0);
            } else if let Ok((200, v)) = http(b.port, "GET", "/status", None) {
                ready = v["value"]["ready"] == true;
            }
            if !ready {
                std::thread::sleep(POLL);
            }
        }
        let profile = dir_arg(b.dir.path().join("profile"));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900",
                         format!("--user-data-dir={profile}")],
            },
        }}});
        let v = b.cmd("POST", "/session", Some(&caps)).unwrap_or_else(|e| {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            let tail = log.get(log.len().saturating_sub(3000)..).unwrap_or(&log);
            missing(&format!(
                "chromedriver could not start {CHROMIUM}: {e}\n... {tail}"
            ))
        });
        b.session = v["sessionId"].as_str().unwrap_or_default().to_string();
        assert!(!b.session.is_empty(), "no sessionId in {v}");
        b
    }

    /// A raw WebDriver command; `path` below `/session/{id}` unless it starts with it.
    pub fn cmd(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, WdError> {
        let full = match path.strip_prefix('~') {
            Some(rest) => format!("/session/{}{rest}", self.session),
            None => path.to_string(),
        };
        // A POST always carries a JSON body for chromedriver.
        let empty = json!({});
        let body = body.or((method == "POST").then_some(&empty));
        match http(self.port, method, &full, body) {
            Ok((200, v)) => Ok(v["value"].clone()),
            Ok((status, v)) => Err(WdError {
                error: v["value"]["error"].as_str().unwrap_or("?").to_string(),
                message: format!(
                    "HTTP {status}: {}",
                    v["value"]["message"].as_str().unwrap_or("")
                ),
            }),
            Err(e) => Err(WdError {
                error: "transport".into(),
                message: format!("{method} {full}: {e}"),
            }),
        }
    }

    /// Like `cmd` on the session; panics with the error and the current URL.
    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let body = (!body.is_null()).then_some(&body);
        self.cmd(method, &format!("~{path}"), body)
            .unwrap_or_else(|e| {
                let url = self.cmd("GET", "~/url", None).unwrap_or_default();
                panic!("WebDriver {method} {path} failed: {e} (at {url})")
            })
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }));
    }
    pub fn url(&self) -> String {
        str_of(self.call("GET", "/url", Value::Null))
    }
    pub fn title(&self) -> String {
        str_of(self.call("GET", "/title", Value::Null))
    }
    pub fn source(&self) -> String {
        str_of(self.call("GET", "/source", Value::Null))
    }
    pub fn back(&self) {
        self.call("POST", "/back", Value::Null);
    }
    pub fn refresh(&self) {
        self.call("POST", "/refresh", Value::Null);
    }

    pub fn find(&self, css: &str) -> Element<'_> {
        self.try_find(css)
            .unwrap_or_else(|| panic!("no element {css:?} at {}:\n{}", self.url(), self.excerpt()))
    }
    pub fn try_find(&self, css: &str) -> Option<Element<'_>> {
        let by = json!({"using": "css selector", "value": css});
        match self.cmd("POST", "~/element", Some(&by)) {
            Ok(v) => Some(self.element(&v)),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("find {css:?}: {e} (at {})", self.url()),
        }
    }
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let v = self.call(
            "POST",
            "/elements",
            json!({"using": "css selector", "value": css}),
        );
        v.as_array()
            .into_iter()
            .flatten()
            .map(|e| self.element(e))
            .collect()
    }
    /// Waits until `css` matches (checked every 50 ms, at most 20 s).
    pub fn wait_for(&self, css: &str) -> Element<'_> {
        let deadline = Instant::now() + WAIT_TIMEOUT;
        loop {
            if let Some(e) = self.try_find(css) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "{css:?} did not appear within {WAIT_TIMEOUT:?} at {}:\n{}",
                self.url(),
                self.excerpt()
            );
            std::thread::sleep(POLL);
        }
    }
    /// Waits until `cond` holds (checked every 50 ms, at most 20 s).
    pub fn wait_until(&self, what: &str, mut cond: impl FnMut(&Browser) -> bool) {
        let deadline = Instant::now() + WAIT_TIMEOUT;
        while !cond(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {WAIT_TIMEOUT:?} at {}:\n{}",
                self.url(),
                self.excerpt()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Runs `script` as a function body (`arguments[i]` are `args`) and returns its value.
    pub fn exec(&self, script: &str, args: Vec<Value>) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
    }

    pub fn cookies(&self) -> Vec<Cookie> {
        let v = self.call("GET", "/cookie", Value::Null);
        let s = |c: &Value, k: &str| c[k].as_str().map(str::to_string);
        let cookie = |c: &Value| Cookie {
            name: s(c, "name").unwrap_or_default(),
            value: s(c, "value").unwrap_or_default(),
            path: s(c, "path"),
            domain: s(c, "domain"),
            http_only: c["httpOnly"] == true,
            secure: c["secure"] == true,
            same_site: s(c, "sameSite"),
        };
        v.as_array().into_iter().flatten().map(cookie).collect()
    }
    /// Adds a cookie for the current page's domain (fields left `None` are not sent).
    pub fn add_cookie(&self, c: &Cookie) {
        let mut j =
            json!({"name": c.name, "value": c.value, "httpOnly": c.http_only, "secure": c.secure});
        for (k, v) in [
            ("path", &c.path),
            ("domain", &c.domain),
            ("sameSite", &c.same_site),
        ] {
            if let Some(v) = v {
                j[k] = json!(v);
            }
        }
        self.call("POST", "/cookie", json!({ "cookie": j }));
    }
    pub fn delete_cookies(&self) {
        self.call("DELETE", "/cookie", Value::Null);
    }

    pub fn switch_to_frame(&self, frame: &Element<'_>) {
        self.call("POST", "/frame", json!({ "id": frame.json() }));
    }
    pub fn switch_to_parent(&self) {
        self.call("POST", "/frame/parent", Value::Null);
    }

    /// The text of the open alert, confirm or prompt; `None` if there is none.
    pub fn alert_text(&self) -> Option<String> {
        match self.cmd("GET", "~/alert/text", None) {
            Ok(v) => Some(str_of(v)),
            Err(e) if e.error == "no such alert" => None,
            Err(e) => panic!("alert text: {e}"),
        }
    }
    pub fn accept_alert(&self) {
        self.call("POST", "/alert/accept", Value::Null);
    }
    pub fn dismiss_alert(&self) {
        self.call("POST", "/alert/dismiss", Value::Null);
    }

    /// Writes a PNG of the viewport to `path` (the file tool shows it).
    pub fn screenshot(&self, path: &Path) {
        let png = base64(&str_of(self.call("GET", "/screenshot", Value::Null)));
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// Live processes of this instance (chromedriver, Chromium and its helpers).
    /// After drop none is alive; orphaned ones may stay zombies until init reaps them.
    pub fn pids(&self) -> Vec<u32> {
        instance_pids(self.driver.id(), &dir_arg(self.dir.path().to_path_buf()))
    }

    fn element(&self, v: &Value) -> Element<'_> {
        let id = v[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("not an element: {v}"));
        Element {
            b: self,
            id: id.to_string(),
        }
    }

    /// The first 2000 characters of the page source, for failure messages.
    fn excerpt(&self) -> String {
        let src = self
            .cmd("GET", "~/source", None)
            .map(str_of)
            .unwrap_or_else(|e| e.to_string());
        src.chars().take(2000).collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let (pgid, marker) = (self.driver.id(), dir_arg(self.dir.path().to_path_buf()));
        let mut pids = instance_pids(pgid, &marker);
        if !self.session.is_empty() {
            let _ = self.cmd("DELETE", "~", None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // Orphans are reaped by init (which may take a second or two): zombies are dead.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            pids.extend(instance_pids(pgid, &marker));
            pids.sort_unstable();
            pids.dedup();
            pids.retain(|p| alive(*p));
            if pids.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                eprintln!("browser harness: processes {pids:?} would not die");
                break;
            }
            for pid in &pids {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Element<'_> {
    /// The element as a WebDriver argument for `exec`.
    pub fn json(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }
    fn call(&self, method: &str, what: &str, body: Value) -> Value {
        self.b
            .call(method, &format!("/element/{}{what}", self.id), body)
    }
    pub fn click(&self) {
        self.call("POST", "/click", Value::Null);
    }
    pub fn send_keys(&self, text: &str) {
        self.call("POST", "/value", json!({ "text": text }));
    }
    pub fn clear(&self) {
        self.call("POST", "/clear", Value::Null);
    }
    pub fn text(&self) -> String {
        str_of(self.call("GET", "/text", Value::Null))
    }
    /// The attribute as in the markup (`value` stays the default); `prop` for live state.
    pub fn attr(&self, name: &str) -> Option<String> {
        self.call("GET", &format!("/attribute/{name}"), Value::Null)
            .as_str()
            .map(str::to_string)
    }
    pub fn prop(&self, name: &str) -> Value {
        self.call("GET", &format!("/property/{name}"), Value::Null)
    }
    pub fn is_displayed(&self) -> bool {
        self.call("GET", "/displayed", Value::Null) == true
    }
}

fn str_of(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => panic!("expected a string from WebDriver, got {other}"),
    }
}

fn dir_arg(p: std::path::PathBuf) -> String {
    p.to_string_lossy().into_owned()
}

/// Live processes in chromedriver's process group, or whose command line names our temp
/// dir (Chromium's crash handlers start their own session).
fn instance_pids(pgid: u32, marker: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid pgrp ...
        let group = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(2)?.parse().ok());
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let named = String::from_utf8_lossy(&cmdline).contains(marker);
        if (group == Some(pgid) || named) && alive(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// Whether `pid` exists and is not a zombie waiting for its parent.
pub fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    state.is_some_and(|s| s != "Z" && s != "X")
}

/// Standard base64 (screenshots); skips anything outside the alphabet.
fn base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = ((acc << 6) | u32::from(v)) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
