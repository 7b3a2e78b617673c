//! Wiring: the data dir, its lock, the store, and the long-running service.
//!
//! Owns: creating the data dir, the single-instance lock, opening the store with the
//! replay of unfinished work, and `serve` (start, run until SIGINT/SIGTERM, stop cleanly).
//! Must not: hold globals or business rules; it hands `Store` and `Settings` to the
//! parts that need them.

use crate::config::Settings;
use crate::fetch::FetchCtx;
use crate::model::{Clock, SystemClock};
use crate::pipeline;
use crate::pipeline::Waker;
use crate::secret::{self, Keyring};
use crate::store::{Store, StoreError, StoreOptions};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Name of the store file inside the data dir.
pub const STORE_FILE: &str = "postroom.redb";
/// Name of the lock file inside the data dir.
pub const LOCK_FILE: &str = "postroom.lock";

/// Errors of the program as a whole, rendered for people by `main`.
#[derive(Debug)]
pub enum AppError {
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    Locked {
        path: PathBuf,
        holder: String,
    },
    Store(StoreError),
    Import(crate::import::ImportError),
    Setting(crate::config::SettingError),
    Signals(std::io::Error),
    Account(crate::accounts::AccountError),
    Secret(crate::secret::SecretError),
    Fetch(Box<crate::fetch::FetchError>),
    Usage(String),
    Web(crate::web::ListenError),
    /// The HTTPS port could not be bound.
    Https(crate::web::ListenError),
    /// The HTTPS certificate could not be made or read.
    Tls(crate::web::tls::TlsError),
    Smtp(crate::smtp::servers::SmtpConfigError),
    Mailbox(crate::mailboxes::MailboxError),
    User(crate::users::UserError),
    Outbox(crate::outbox::OutboxError),
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::DataDir { path, source } => write!(
                f,
                "cannot use the data directory {}: {source}. Create it or point --data (or POSTROOM_DATA) at a writable directory",
                path.display()
            ),
            AppError::Locked { path, holder } => write!(
                f,
                "the data directory {} is in use by another postroom process ({holder}). \
                 Stop it first (for the service: systemctl stop postroom), or use another --data directory",
                path.display()
            ),
            AppError::Store(e) => e.fmt(f),
            AppError::Import(e) => e.fmt(f),
            AppError::Setting(e) => e.fmt(f),
            AppError::Signals(e) => write!(f, "cannot install the SIGINT/SIGTERM handlers: {e}"),
            AppError::Account(e) => e.fmt(f),
            AppError::Secret(e) => e.fmt(f),
            AppError::Fetch(e) => e.fmt(f),
            AppError::Usage(s) => f.write_str(s),
            AppError::Web(e) => e.fmt(f),
            AppError::Https(e) => write!(
                f,
                "cannot serve HTTPS on {}: {}. Another program may use that port: stop it, \
                 choose another address with --https-listen (or POSTROOM_HTTPS_LISTEN), e.g. \
                 --https-listen 0.0.0.0:8444, or turn HTTPS off with --no-https",
                e.listen, e.detail
            ),
            AppError::Tls(e) => e.fmt(f),
            AppError::Smtp(e) => e.fmt(f),
            AppError::Mailbox(e) => e.fmt(f),
            AppError::User(e) => e.fmt(f),
            AppError::Outbox(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for AppError {}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        AppError::Store(e)
    }
}
impl From<crate::import::ImportError> for AppError {
    fn from(e: crate::import::ImportError) -> Self {
        AppError::Import(e)
    }
}
impl From<crate::config::SettingError> for AppError {
    fn from(e: crate::config::SettingError) -> Self {
        AppError::Setting(e)
    }
}

/// An open data dir: the lock is held for as long as this value lives.
pub struct DataDir {
    pub path: PathBuf,
    pub store: Arc<Store>,
    _lock: File,
}

impl DataDir {
    /// Creates the directory if needed (mode 0700), takes the lock, opens and migrates the
    /// store, and finishes any pipeline work a crash left queued.
    pub fn open(path: &Path, clock: &dyn Clock) -> Result<DataDir, AppError> {
        let dd = |source| AppError::DataDir {
            path: path.to_owned(),
            source,
        };
        if !path.exists() {
            let mut b = std::fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
            b.create(path).map_err(dd)?;
            log::info!("created data directory {}", path.display());
        }
        refuse_foreign_dir(path)?;
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path.join(LOCK_FILE))
            .map_err(dd)?;
        if lock.try_lock().is_err() {
            let mut holder = String::new();
            let _ = lock.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(AppError::Locked {
                path: path.to_owned(),
                holder: if holder.is_empty() {
                    "unknown pid".into()
                } else {
                    holder.to_owned()
                },
            });
        }
        lock.set_len(0).map_err(dd)?;
        lock.rewind().map_err(dd)?;
        let _ = writeln!(
            lock,
            "pid {} ({})",
            std::process::id(),
            std::env::args().nth(1).unwrap_or_default()
        );
        let store = Store::open(&path.join(STORE_FILE), &StoreOptions::default())?;
        let settings = Settings::load(&store.read()?)?;
        let pending = store.read()?.pending_count()?;
        if pending > 0 {
            log::info!("finishing {pending} raw messages queued before the last stop");
            let s = pipeline::process_pending(&store, &settings, clock)?;
            log::info!(
                "replayed {} messages: {} new conversations, {} joined",
                s.processed,
                s.new_conversations,
                s.joined
            );
        }
        Ok(DataDir {
            path: path.to_owned(),
            store: Arc::new(store),
            _lock: lock,
        })
    }

    pub fn settings(&self) -> Result<Settings, StoreError> {
        Settings::load(&self.store.read()?)
    }

    /// The key that seals stored passwords (the key file is created on first need).
    pub fn keyring(&self) -> Result<Keyring, AppError> {
        Keyring::load_or_create(&secret::key_path(&self.path)).map_err(AppError::Secret)
    }

    /// What the fetchers need, with the given pipeline waker.
    pub fn fetch_ctx(&self, waker: Waker) -> Result<FetchCtx, AppError> {
        Ok(FetchCtx {
            store: self.store.clone(),
            keys: Arc::new(self.keyring()?),
            clock: Arc::new(SystemClock),
            waker,
            states: Arc::default(),
        })
    }
}

/// This process's effective user id, from `/proc/self/status` (no unsafe libc call).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// root opening a data dir that belongs to another user (the service's) would leave
/// root-owned files in it that the service can no longer open: refused, with what to do.
fn refuse_foreign_dir(path: &Path) -> Result<(), AppError> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    if effective_uid() == Some(0) && meta.uid() != 0 {
        return Err(AppError::DataDir {
            path: path.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "it belongs to user id {}, and files root wrote there would lock that user out.                      Run the command as its owner (sudo -u postroom postroom ...), or start the                      service (systemctl start postroom): commands then run inside it",
                    meta.uid()
                ),
            ),
        });
    }
    Ok(())
}

/// Drops communication-log entries older than the retention setting.
pub fn prune_log(store: &Store, clock: &dyn Clock) -> Result<u64, StoreError> {
    let days = Settings::load(&store.read()?)?.comm_log_retention_days;
    let cutoff = clock.now_ms() - i64::from(days) * 86_400_000;
    let n = store.write(|tx| tx.prune_log(cutoff))?;
    if n > 0 {
        log::info!("communication log: removed {n} entries older than {days} days");
    }
    Ok(n)
}

/// Runs the service until SIGINT or SIGTERM: the pipeline worker, one fetch task per
/// enabled account, the web server (plain HTTP on `listen`, and HTTPS on `https_listen`
/// unless that is `None`), and the control socket through which the command line works
/// while the service runs.
pub fn serve(
    data: &Path,
    listen: &str,
    https_listen: Option<&str>,
    mdns: Option<&str>,
) -> Result<(), AppError> {
    let clock = SystemClock;
    let dir = Arc::new(DataDir::open(data, &clock)?);
    let r = dir.store.read()?;
    log::info!(
        "postroom {} serving data dir {} ({} conversations, {} messages)",
        env!("CARGO_PKG_VERSION"),
        dir.path.display(),
        r.conversations()?.len(),
        r.message_count()?
    );
    drop(r);
    // The outbox sender wakes on new replies and on auto-replies the pipeline queues.
    let (outbox_wake, wake_rx) = smol::channel::bounded::<()>(1);
    let (waker, pipeline) = crate::pipeline::spawn_worker_with(
        dir.store.clone(),
        Arc::new(SystemClock),
        Some(outbox_wake.clone()),
    );
    prune_log(&dir.store, &clock)?;
    let ctx = dir.fetch_ctx(waker.clone())?;
    let ex = Arc::new(smol::Executor::<'static>::new());
    let fleet = Arc::new(smol::lock::Mutex::new(crate::fetch::Fleet::new(
        ctx.clone(),
        ex.clone(),
    )));
    let control = crate::control::bind(&dir.path).map_err(|source| AppError::DataDir {
        path: crate::control::socket_path(&dir.path),
        source,
    })?;
    let mut web_ctx = crate::web::WebCtx::new(dir.store.clone());
    web_ctx.states = ctx.states.clone();
    web_ctx.outbox_wake = Some(outbox_wake.clone());
    // Accounts changed in the browser: the account tasks restart to match.
    let (accounts_changed, accounts_rx) = smol::channel::bounded::<()>(1);
    web_ctx.fetch = Some(ctx.clone());
    web_ctx.accounts_changed = Some(accounts_changed);
    // No user yet: a one-time code lets the first admin be created in the browser.
    let setup_code = if dir.store.read()?.users()?.is_empty() {
        Some(web_ctx.setup.issue(clock.now_secs()))
    } else {
        None
    };
    let https_port = web_ctx.https_port.clone();
    let cert_slot = web_ctx.cert.clone();
    let web = crate::web::Web::start(listen, web_ctx, 4).map_err(AppError::Web)?;
    let web_addr = web.addr;
    let https = match https_listen.map(|l| start_https(&dir.path, l, &web, mdns)) {
        Some(Ok(h)) => Some(h),
        Some(Err(e)) => {
            web.stop();
            return Err(e);
        }
        None => None,
    };
    if let Some((front, slot)) = &https {
        // From now on plain HTTP redirects to HTTPS once a user exists.
        https_port.store(front.addr.port(), std::sync::atomic::Ordering::Relaxed);
        let _ = cert_slot.set(slot.clone());
    }
    let https_note = https
        .as_ref()
        .map(|(front, slot)| {
            format!(
                ", https on https://{}/ (certificate SHA-256 {})",
                front.addr,
                slot.info().fingerprint
            )
        })
        .unwrap_or_default();
    // mDNS is a convenience: without multicast the service still runs.
    let https_addr = https.as_ref().map(|(front, _)| front.addr);
    let announcer = match mdns.map(|name| crate::mdns::announce(name, web_addr, https_addr)) {
        Some(Ok(a)) => a,
        Some(Err(e)) => {
            log::warn!("{e}; reach the service by its IP address instead");
            None
        }
        None => None,
    };
    // Handlers first, then "ready": a signal right after "ready" must stop us cleanly.
    use async_signal::{Signal, Signals};
    let mut signals = Signals::new([Signal::Int, Signal::Term]).map_err(AppError::Signals)?;
    // The outbox sender stops when `outbox_stop` closes.
    let (outbox_stop, stop_rx) = smol::channel::bounded::<()>(1);
    let sender = ex.spawn(crate::outbox::run_sender(
        crate::outbox::SenderCtx {
            store: dir.store.clone(),
            keys: ctx.keys.clone(),
            clock: Arc::new(SystemClock),
        },
        wake_rx,
        stop_rx,
    ));
    let service = Arc::new(crate::cli::Service {
        fetch: ctx.clone(),
        outbox: outbox_wake,
    });
    let housekeeping = ex.spawn({
        let store = dir.store.clone();
        async move {
            loop {
                smol::Timer::after(std::time::Duration::from_secs(86_400)).await;
                let s = store.clone();
                if let Err(e) = smol::unblock(move || prune_log(&s, &SystemClock)).await {
                    log::error!("{e}");
                }
            }
        }
    });
    let reloader = ex.spawn({
        let fleet = fleet.clone();
        async move {
            while accounts_rx.recv().await.is_ok() {
                if let Err(e) = fleet.lock().await.reconcile().await {
                    log::error!("cannot restart the account tasks after a change: {e}");
                }
            }
        }
    });
    let result = smol::block_on(ex.run(async {
        use smol::future::FutureExt;
        use smol::stream::StreamExt;
        fleet.lock().await.reconcile().await?;
        let n = fleet.lock().await.len();
        eprintln!(
            "postroom: ready (data dir {}, {n} accounts, web on http://{web_addr}/{https_note}); stop with Ctrl-C or SIGTERM",
            dir.path.display()
        );
        if let Some(code) = &setup_code {
            eprintln!(
                "postroom: first start: open the web page and enter the setup code {code} (valid for 60 minutes, once) to create the first administrator"
            );
            log::info!("setup code for the first administrator: {code} (valid for 60 minutes)");
        }
        // Control connections in flight; cancelled at shutdown (see below).
        let conns = std::cell::RefCell::new(Vec::<smol::Task<()>>::new());
        let accept = async {
            loop {
                match control.accept().await {
                    Ok((conn, _)) => {
                        let (dir, service, fleet) = (dir.clone(), service.clone(), fleet.clone());
                        let task = ex.spawn(control_conn(conn, dir, service, fleet));
                        let mut c = conns.borrow_mut();
                        c.retain(|t| !t.is_finished());
                        c.push(task);
                    }
                    Err(e) => {
                        log::error!("control socket: {e}");
                        smol::Timer::after(std::time::Duration::from_millis(200)).await;
                    }
                }
            }
        };
        let signal = async {
            if let Some(sig) = signals.next().await {
                let name = match sig {
                    Ok(Signal::Int) => "SIGINT",
                    Ok(Signal::Term) => "SIGTERM",
                    _ => "a signal",
                };
                log::info!("{name} received, stopping");
            }
        };
        accept.or(signal).await;
        let _ = std::fs::remove_file(crate::control::socket_path(&dir.path));
        // A connection still working (say, restarting accounts after its command) holds
        // the fleet, which holds the executor, which holds the connection: left to the
        // executor's drop, that cycle would keep a pipeline waker alive for ever and the
        // shutdown would hang. Cancelling them here drops what they hold.
        let in_flight: Vec<smol::Task<()>> = conns.borrow_mut().drain(..).collect();
        for t in in_flight {
            t.cancel().await;
        }
        reloader.cancel().await;
        fleet.lock().await.stop_all().await;
        drop(outbox_stop);
        sender.await;
        housekeeping.cancel().await;
        Ok::<(), AppError>(())
    }));
    if let Some(a) = announcer {
        a.stop();
    }
    if let Some((front, _)) = https {
        front.stop();
    }
    web.stop();
    // Every holder of a pipeline waker must be gone before the worker can finish: the
    // service handle, the fleet, the fetch context, and the executor with any control
    // connection still parked on it.
    drop(service);
    drop(fleet);
    drop(ctx);
    drop(ex);
    drop(waker);
    let _ = pipeline.join();
    result?;
    drop(dir);
    eprintln!("postroom: stopped cleanly");
    Ok(())
}

/// Loads (or makes, on first run) the HTTPS certificate for `NAME.local` and localhost,
/// and starts the TLS front on `listen` in front of the web server's internal listener.
fn start_https(
    data: &Path,
    listen: &str,
    web: &crate::web::Web,
    mdns: Option<&str>,
) -> Result<(crate::web::tls::HttpsFront, Arc<crate::web::tls::CertSlot>), AppError> {
    let name = mdns.unwrap_or(crate::mdns::DEFAULT_NAME);
    let names = [format!("{name}.local"), "localhost".to_owned()];
    let (config, slot) = crate::web::tls::load_or_create(data, &names).map_err(AppError::Tls)?;
    let info = slot.info();
    let front =
        crate::web::tls::HttpsFront::start(listen, config, web.tls_backend, web.peers.clone())
            .map_err(AppError::Https)?;
    log::info!(
        "https: certificate {} has SHA-256 fingerprint {} (valid until {} UTC); \
         check it in the browser on the first visit",
        info.cert_path.display(),
        info.fingerprint,
        crate::model::format_utc(info.not_after)
    );
    Ok((front, slot))
}

/// Runs one command line sent over the control socket, streaming its output back, then
/// brings the account tasks in line with what the command may have changed.
async fn control_conn(
    mut conn: smol::net::unix::UnixStream,
    dir: Arc<DataDir>,
    service: Arc<crate::cli::Service>,
    fleet: Arc<smol::lock::Mutex<crate::fetch::Fleet>>,
) {
    use crate::control::{Frame, Stream, write_frame};
    let req = match crate::control::read_request(&mut conn).await {
        Ok(r) => r,
        // A caller that only checked whether the service runs.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return,
        Err(e) => {
            log::warn!("control socket: unreadable request: {e}");
            return;
        }
    };
    let (tx, rx) = smol::channel::unbounded::<Frame>();
    let parsed = <crate::cli::Cli as clap::Parser>::try_parse_from(&req.argv);
    let mut cmd = match parsed {
        Ok(cli) => cli.command,
        Err(e) => {
            let _ = write_frame(
                &mut conn,
                &Frame::Out(Stream::Stderr, e.to_string().into_bytes()),
            )
            .await;
            let _ = write_frame(&mut conn, &Frame::Done(2)).await;
            return;
        }
    };
    cmd.absolutize(&req.cwd);
    log::info!("control socket: running `{}`", summary(&req.argv));
    // A one-off fetch must not race the account's own task: pause it for the pass.
    let mut paused = None;
    if let crate::cli::Command::Fetch { name } = &cmd {
        let mut f = fleet.lock().await;
        if let Some(id) = f.find(name) {
            f.stop(id).await;
            paused = Some(f);
        }
    }
    let run = smol::unblock(move || {
        crate::control::with_sink(tx.clone(), || {
            let code = match crate::cli::execute(&dir, cmd, Some(&service)) {
                Ok(()) => 0,
                Err(e) => {
                    crate::control::emit(Stream::Stderr, format!("error: {e}\n").as_bytes());
                    1
                }
            };
            let _ = tx.send_blocking(Frame::Done(code));
        })
    });
    let forward = async {
        while let Ok(frame) = rx.recv().await {
            let done = matches!(frame, Frame::Done(_));
            if write_frame(&mut conn, &frame).await.is_err() || done {
                break;
            }
        }
    };
    let ((), ()) = smol::future::zip(run, forward).await;
    drop(paused);
    if let Err(e) = fleet.lock().await.reconcile().await {
        log::error!("cannot restart the account tasks after a command: {e}");
    }
}

/// The command line for the log, without secrets given as flags and without `--data`.
fn summary(argv: &[String]) -> String {
    let mut out = Vec::new();
    let (mut hide, mut skip) = (false, false);
    for a in argv.iter().skip(1) {
        if skip {
            skip = false;
        } else if a == "--data" {
            // the service's own data dir: noise in its log
            skip = true;
        } else if a.starts_with("--data=") {
        } else if hide {
            out.push("***".to_owned());
            hide = false;
        } else if a == "--password" {
            out.push(a.clone());
            hide = true;
        } else if a.starts_with("--password=") {
            out.push("--password=***".to_owned());
        } else {
            out.push(a.clone());
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_logged_command_line_hides_passwords() {
        let argv: Vec<String> = [
            "postroom",
            "--data",
            "/d",
            "account",
            "add",
            "x",
            "--password",
            "hunter2",
            "--user=u",
            "--password=s3cret",
        ]
        .map(String::from)
        .to_vec();
        let s = summary(&argv);
        assert_eq!(s, "account add x --password *** --user=u --password=***");
    }
}
