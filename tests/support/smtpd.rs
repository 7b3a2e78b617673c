//! A private, real SMTP server on 127.0.0.1 for the outgoing-mail tests.
//!
//! [`Smtpd::start`] makes a fresh directory under the temp dir with a self-signed
//! certificate (the same as Dovecot's, from [`crate::dovecot::make_cert`]), an empty users
//! file and a spool, and starts `tests/support/smtpd.py` (Debian's `python3-aiosmtpd`,
//! always run with `/usr/bin/python3`) with three listeners on free loopback ports:
//!
//! - **submission** ([`Smtpd::submission_port`]): plain TCP offering STARTTLS; every
//!   command but EHLO/NOOP/STARTTLS/QUIT before STARTTLS gets `530 Must issue a STARTTLS
//!   command first`, AUTH is only offered after it, MAIL/RCPT/DATA without AUTH get
//!   `530 5.7.0 Authentication required`;
//! - **smtps** ([`Smtpd::smtps_port`]): implicit TLS, AUTH required;
//! - **open** ([`Smtpd::open_port`]): plain, no TLS, no AUTH (a relay on a trusted LAN).
//!
//! The kernel picks the ports (the server binds port 0 and reports them), so there is no
//! probe-then-bind race. Dropping the value kills the server and removes the directory
//! (set `POSTROOM_KEEP_SMTPD=1` to keep it for a post-mortem; the path is printed). The
//! server also exits by itself when the test process dies (it watches its stdin pipe).
//!
//! Every accepted message becomes `NNNNNN.eml` (the DATA bytes exactly as received after
//! dot-unstuffing, CRLF kept, nothing added) and `NNNNNN.json` (its envelope, written
//! last and atomically) in [`Smtpd::spool`]; [`Smtpd::received`] reads them back.
//! [`Smtpd::transcript`] is the whole protocol exchange, one line per command received
//! (`C:`), reply line sent (`S:`) or event (`*`), each prefixed with the session number
//! and listener, e.g. `0003 submission C: MAIL FROM:<a@example.org> SIZE=120`. Line ends
//! are stripped and any other control character shows as `\xNN`, so a CR, LF or NUL
//! smuggled into a command stays visibly inside its line; DATA content is summarised as
//! `C: <DATA n bytes>`.
//!
//! Facts the tests may rely on (aiosmtpd 1.4 behaviour unless said otherwise):
//! - AUTH PLAIN (with initial response or after an empty `334 ` challenge) and AUTH LOGIN
//!   (challenges `Username:`/`Password:`, set by the harness; the username may come with
//!   the command). Wrong credentials: `535 5.7.8 Authentication credentials invalid`. The
//!   users file is re-read at every AUTH, so [`Smtpd::add_user`] works while running.
//! - Success replies: `235 2.7.0 Authentication successful`, `250 OK` for MAIL/RCPT,
//!   `250 2.0.0 OK queued as NNNNNN` after DATA.
//! - EHLO offers SIZE 33554432, 8BITMIME and SMTPUTF8 (non-ASCII in commands is accepted
//!   as UTF-8). MAIL/RCPT parameters are upper-cased in `mail_options`.
//! - A command line over 512 octets gets `500 Command line too long` (MAIL a little more:
//!   aiosmtpd adds 26 for SIZE and 10 for SMTPUTF8 at each EHLO, to a limit all sessions
//!   share); one over 1001 octets is discarded unlogged. A DATA line longer than
//!   1001 octets including CRLF and any stuffing dot makes the final reply
//!   `500 Line too long (see RFC5321 4.5.3.1.6)` and nothing is stored.
//! - A bare LF ends a command line; inside DATA only CRLF ends a line, so bare LFs and
//!   CRs in the content are stored as they came.
//! - The null reverse-path `MAIL FROM:<>` is recorded as `mail_from == ""`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The Debian packages this harness needs, for error messages.
pub const PACKAGES: &str = "python3-aiosmtpd openssl";

/// Debian's interpreter: the one `python3-aiosmtpd` installs into (a `python3` earlier
/// in PATH, e.g. a pyenv, does not have it).
const PYTHON: &str = "/usr/bin/python3";
/// How long `start` waits for the server to report its ports.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How many transcript lines a `wait_for` panic shows.
const TAIL_LINES: usize = 80;

static INSTANCES: AtomicU32 = AtomicU32::new(0);

/// One message the server accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The envelope sender; `""` for the null reverse-path `<>`.
    pub mail_from: String,
    /// The envelope recipients, in RCPT order, as given (not case-folded).
    pub rcpt_tos: Vec<String>,
    /// The DATA bytes after dot-unstuffing, CRLF kept, nothing added.
    pub data: Vec<u8>,
    /// The AUTH user of the session, `None` on the open listener.
    pub auth_user: Option<String>,
    /// Whether the session was encrypted (STARTTLS or implicit TLS).
    pub tls: bool,
    /// `"submission"`, `"smtps"` or `"open"`.
    pub listener: String,
    /// MAIL FROM parameters, upper-cased by aiosmtpd (e.g. `SIZE=120`, `BODY=8BITMIME`).
    pub mail_options: Vec<String>,
    /// The EHLO/HELO argument.
    pub helo: String,
    /// 1, 2, 3 ... in the order of acceptance (the spool file name).
    pub seq: u64,
}

/// Where a [`Fault::Reply`] strikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Greet with the reply (e.g. `421 4.3.2 shutting down`) and close.
    Connect,
    /// Answer MAIL FROM with the reply.
    Mail,
    /// Answer RCPT TO with the reply.
    Rcpt,
    /// Receive the whole content, then answer with the reply; nothing is stored.
    Data,
}

/// What the server does wrong from now on (all listeners); `count: Some(n)` limits it to
/// the next `n` matching events, after which the server behaves again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Normal service.
    None,
    /// Answer `reply` at `at` instead of going on.
    Reply {
        at: Stage,
        reply: String,
        count: Option<u32>,
    },
    /// Receive the DATA content, then close the connection without a reply. With
    /// `deliver` the message is stored first (the server delivered, but its 250 was
    /// lost: the client cannot know and will send it again).
    Drop { count: Option<u32>, deliver: bool },
    /// Close every new connection at once, before any greeting.
    Down,
}

/// One running server; dropped = stopped and removed.
pub struct Smtpd {
    dir: PathBuf,
    spool: PathBuf,
    child: Child,
    /// Held open: the server exits at EOF on its stdin.
    stdin: Option<ChildStdin>,
    submission: u16,
    smtps: u16,
    open: u16,
    cert_pem: PathBuf,
    cert_sha256: [u8; 32],
    users: Mutex<BTreeMap<String, String>>,
    routes: Mutex<BTreeMap<String, PathBuf>>,
}

impl Smtpd {
    /// Starts a fresh server. Panics with its own words (and the packages to install)
    /// when it cannot.
    pub fn start() -> Smtpd {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtpd.py");
        if !Path::new(PYTHON).is_file() {
            missing(&format!("{PYTHON} does not exist"));
        }
        let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let dir = make_dir(&format!("{}x{n}", std::process::id()));
        let (spool, tls) = (dir.join("spool"), dir.join("tls"));
        for d in [&spool, &tls] {
            fs::create_dir(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        let (cert_pem, cert_sha256) = crate::dovecot::make_cert(&tls);
        let users = dir.join("users.json");
        write_atomic(&users, b"{}");
        let log_path = dir.join("smtpd.log");
        let log = fs::File::create(&log_path)
            .unwrap_or_else(|e| panic!("create {}: {e}", log_path.display()));

        let mut child = Command::new(PYTHON)
            .arg(&script)
            .arg("--spool")
            .arg(&spool)
            .arg("--users")
            .arg(&users)
            .arg("--cert")
            .arg(&cert_pem)
            .arg("--key")
            .arg(tls.join("key.pem"))
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {PYTHON} {}: {e}", script.display()));
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("no stdout pipe"));

        // The first stdout line is {"submission": P, "smtps": P, "open": P}, printed
        // once every listener is bound.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = tx.send(BufReader::new(stdout).read_line(&mut line).map(|_| line));
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(line)) if !line.trim().is_empty() => line,
            other => {
                let _ = child.kill();
                let status = child.wait();
                let said = fs::read_to_string(&log_path).unwrap_or_default();
                let _ = fs::remove_dir_all(&dir);
                let why = match other {
                    Err(_) => format!("no ports reported within {START_TIMEOUT:?}"),
                    _ => format!("it exited ({status:?}) without reporting its ports"),
                };
                missing(&format!(
                    "the SMTP test server did not start: {why}\n{said}"
                ));
            }
        };
        let ports: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("smtpd.py reported {line:?}, not JSON: {e}"));
        let port = |name: &str| -> u16 {
            ports[name]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or_else(|| panic!("smtpd.py reported no {name} port: {line}"))
        };
        Smtpd {
            submission: port("submission"),
            smtps: port("smtps"),
            open: port("open"),
            dir,
            spool,
            child,
            stdin,
            cert_pem,
            cert_sha256,
            users: Mutex::new(BTreeMap::new()),
            routes: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds (or changes the password of) a user for AUTH; effective at the next AUTH.
    pub fn add_user(&self, user: &str, password: &str) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        users.insert(user.to_string(), password.to_string());
        let json = serde_json::to_vec(&*users).unwrap_or_else(|e| panic!("users: {e}"));
        write_atomic(&self.dir.join("users.json"), &json);
    }

    /// Plain TCP with STARTTLS; STARTTLS and AUTH required.
    pub fn submission_port(&self) -> u16 {
        self.submission
    }

    /// Implicit TLS; AUTH required.
    pub fn smtps_port(&self) -> u16 {
        self.smtps
    }

    /// Plain, no TLS, no AUTH.
    pub fn open_port(&self) -> u16 {
        self.open
    }

    /// The server certificate (PEM): self-signed, CN=localhost, SAN DNS:localhost and
    /// IP:127.0.0.1, EC P-256 (the same recipe as Dovecot's).
    pub fn cert_pem(&self) -> &Path {
        &self.cert_pem
    }

    /// SHA-256 of the certificate's DER as 64 lower-case hex digits (what
    /// `--pin-cert` takes; Dovecot's `cert_sha256` bytes printed the same way).
    pub fn cert_sha256(&self) -> String {
        self.cert_sha256
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The same fingerprint as bytes, e.g. for `postroom::net::Fingerprint`.
    pub fn cert_sha256_bytes(&self) -> [u8; 32] {
        self.cert_sha256
    }

    /// Every message accepted so far, in order of acceptance.
    pub fn received(&self) -> Vec<Received> {
        let entries = fs::read_dir(&self.spool)
            .unwrap_or_else(|e| panic!("read {}: {e}", self.spool.display()));
        let mut metas: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && p.file_stem()
                        .and_then(|s| s.to_str())
                        .is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect();
        metas.sort();
        metas.iter().map(|p| read_received(p)).collect()
    }

    /// Waits until at least `n` messages were accepted and returns them all. Panics with
    /// the transcript's tail after `timeout`.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if Instant::now() > deadline {
                panic!(
                    "smtpd: {} of {n} messages after {timeout:?}\n{}",
                    got.len(),
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Makes the server misbehave from now on (`Fault::None` ends it). Read by the
    /// server at every connection and command.
    pub fn set_fault(&self, f: Fault) {
        let path = self.spool.join("fault.json");
        let mut v = serde_json::Map::new();
        let count = match f {
            Fault::None => {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => panic!("remove {}: {e}", path.display()),
                }
                return;
            }
            Fault::Reply { at, reply, count } => {
                let at = match at {
                    Stage::Connect => "connect",
                    Stage::Mail => "mail",
                    Stage::Rcpt => "rcpt",
                    Stage::Data => "data",
                };
                v.insert("at".into(), at.into());
                v.insert("reply".into(), reply.into());
                count
            }
            Fault::Drop { count, deliver } => {
                v.insert("at".into(), "data".into());
                v.insert("drop".into(), true.into());
                v.insert("deliver".into(), deliver.into());
                count
            }
            Fault::Down => {
                v.insert("down".into(), true.into());
                None
            }
        };
        if let Some(c) = count {
            v.insert("count".into(), c.into());
        }
        let json = serde_json::to_vec(&v).unwrap_or_else(|e| panic!("fault: {e}"));
        write_atomic(&path, &json);
    }

    /// Also delivers every message later accepted for `address` (any case) into the
    /// Maildir `maildir` (`tmp/` then renamed into `new/`, with `Return-Path` and
    /// `Delivered-To` prepended like a local delivery agent), so e.g. a Dovecot serving
    /// that Maildir (`Dovecot::maildir(user)`) sees it.
    pub fn route(&self, address: &str, maildir: &Path) {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        routes.insert(address.to_lowercase(), maildir.to_path_buf());
        let map: BTreeMap<&str, String> = routes
            .iter()
            .map(|(a, p)| (a.as_str(), p.display().to_string()))
            .collect();
        let json = serde_json::to_vec(&map).unwrap_or_else(|e| panic!("routes: {e}"));
        write_atomic(&self.spool.join("routes.json"), &json);
    }

    /// The whole protocol transcript so far (see the module docs for its format).
    pub fn transcript(&self) -> String {
        fs::read_to_string(self.spool.join("transcript.log")).unwrap_or_default()
    }

    /// The spool directory (`NNNNNN.eml`/`.json`, `transcript.log`, `fault.json`,
    /// `routes.json`).
    pub fn spool(&self) -> &Path {
        &self.spool
    }

    /// The transcript's tail and the server's stderr, for panic messages.
    pub fn diagnostics(&self) -> String {
        let transcript = self.transcript();
        let lines: Vec<&str> = transcript.lines().collect();
        let tail = lines
            .get(lines.len().saturating_sub(TAIL_LINES)..)
            .unwrap_or_default()
            .join("\n");
        let log = fs::read_to_string(self.dir.join("smtpd.log")).unwrap_or_default();
        format!("transcript tail:\n{tail}\nsmtpd.py stderr:\n{log}")
    }
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("POSTROOM_KEEP_SMTPD").is_some() {
            eprintln!("smtpd harness: kept {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn missing(what: &str) -> ! {
    panic!(
        "{what}\nThe SMTP test harness needs the Debian packages {PACKAGES} (run with \
         {PYTHON}). Run ./tests/run.sh (it installs them), or `apt-get install -y {PACKAGES}`"
    )
}

fn read_received(meta: &Path) -> Received {
    let text = fs::read(meta).unwrap_or_else(|e| panic!("read {}: {e}", meta.display()));
    let v: serde_json::Value = serde_json::from_slice(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", meta.display()));
    let eml = meta.with_extension("eml");
    let data = fs::read(&eml).unwrap_or_else(|e| panic!("read {}: {e}", eml.display()));
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    let list = |k: &str| -> Vec<String> {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    Received {
        mail_from: s("mail_from"),
        rcpt_tos: list("rcpt_tos"),
        data,
        auth_user: v["auth_user"].as_str().map(String::from),
        tls: v["tls"].as_bool().unwrap_or(false),
        listener: s("listener"),
        mail_options: list("mail_options"),
        helo: s("helo"),
        seq: v["seq"].as_u64().unwrap_or_default(),
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, bytes).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    fs::rename(&tmp, path).unwrap_or_else(|e| panic!("rename to {}: {e}", path.display()));
}

fn make_dir(instance: &str) -> PathBuf {
    let base = std::env::temp_dir();
    for i in 0..100 {
        let dir = base.join(format!("postroom-smtpd-{instance}-{i}"));
        match fs::create_dir(&dir) {
            Ok(()) => {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                    .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.display()));
                return dir;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("create {}: {e}", dir.display()),
        }
    }
    panic!("cannot create a fresh smtpd dir under {}", base.display())
}
