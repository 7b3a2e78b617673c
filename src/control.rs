//! The control socket: the command line talks to a running `postroom serve`.
//!
//! `serve` holds the data dir's lock (redb is one process's file), so while it runs, every
//! other command (`postroom account add`, `postroom fetch`, `postroom conversations` ...)
//! is sent over a Unix socket in the data dir, `postroom.sock` (mode 0600 inside the 0700
//! data dir: only the service's user and root can connect), and runs inside the service,
//! which then picks up changed accounts at once. Output comes back as it is written.
//!
//! Owns: the socket's wire format (client and server side) and the per-thread output
//! sink the command line writes through (`emit`), so one command's output goes to the
//! terminal when run locally and over the socket when run by the service.
//! Must not: parse arguments or run commands itself (that is `cli`), or decide what
//! runs where beyond "is a service listening".
//!
//! Wire format. Request: a u32 big-endian length, then JSON
//! `{"argv": [..], "cwd": ".."}`. Reply: frames of one kind byte, a u32 big-endian length
//! and the payload: 1 = stdout bytes, 2 = stderr bytes, 3 = done (payload: the exit code
//! as one byte). The connection closes after "done".

use std::cell::RefCell;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Name of the socket inside the data dir.
pub const SOCKET_FILE: &str = "postroom.sock";

/// Largest request accepted (a command line; a reply body read from stdin travels in it).
const MAX_REQUEST: u32 = 32 << 20;

const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const DONE: u8 = 3;

/// Which output stream a piece of output belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One piece of output of a command run by the service.
#[derive(Debug)]
pub enum Frame {
    Out(Stream, Vec<u8>),
    Done(u8),
}

thread_local! {
    static SINK: RefCell<Option<smol::channel::Sender<Frame>>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's output going to `sink` instead of the terminal.
pub fn with_sink<R>(sink: smol::channel::Sender<Frame>, f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            SINK.with(|s| s.borrow_mut().take());
        }
    }
    SINK.with(|s| *s.borrow_mut() = Some(sink));
    let _reset = Reset;
    f()
}

/// True when this thread's output goes over the control socket (no terminal to draw on).
pub fn captured() -> bool {
    SINK.with(|s| s.borrow().is_some())
}

/// Writes command output: to the caller of the control socket when running inside the
/// service, else to this process's stdout/stderr. A closed stdout (`| head`) ends the
/// program quietly, as a pipe reader expects; a gone socket client only drops output.
pub fn emit(stream: Stream, bytes: &[u8]) {
    let sent = SINK.with(|s| {
        s.borrow().as_ref().map(|tx| {
            let _ = tx.send_blocking(Frame::Out(stream, bytes.to_vec()));
        })
    });
    if sent.is_some() {
        return;
    }
    let result = match stream {
        Stream::Stdout => {
            let mut o = std::io::stdout().lock();
            o.write_all(bytes).and_then(|()| o.flush())
        }
        Stream::Stderr => std::io::stderr().lock().write_all(bytes),
    };
    if let Err(e) = result
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// The socket path of a data dir.
pub fn socket_path(data: &Path) -> PathBuf {
    data.join(SOCKET_FILE)
}

/// Whether a service listens on this data dir now.
pub fn service_running(data: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(socket_path(data)).is_ok()
}

/// A request as the server reads it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Request {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> String {
    format!(
        "the running postroom service ({}) {what}: {e}. Check `systemctl status postroom` (or the terminal running `postroom serve`) and try again",
        path.display()
    )
}

/// Sends the command line to a running service, copying its output to ours. Returns
/// `Ok(None)` when no service listens on this data dir (the caller runs the command
/// itself), else its exit code.
pub fn forward(data: &Path, argv: Vec<String>) -> Result<Option<u8>, String> {
    use std::os::unix::net::UnixStream;
    let path = socket_path(data);
    let mut s = match UnixStream::connect(&path) {
        Ok(s) => s,
        // No socket, or a stale one a killed service left: nobody is listening.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(io_err("cannot be reached", &path, e)),
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let body = serde_json::to_vec(&Request { argv, cwd }).map_err(|e| e.to_string())?;
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    s.write_all(&len.to_be_bytes())
        .and_then(|()| s.write_all(&body))
        .map_err(|e| io_err("did not take the command", &path, e))?;
    log::debug!("command sent to the running service at {}", path.display());
    loop {
        let mut head = [0u8; 5];
        s.read_exact(&mut head)
            .map_err(|e| io_err("stopped before the command finished", &path, e))?;
        let [kind, a, b, c, d] = head;
        let n = u32::from_be_bytes([a, b, c, d]);
        let mut payload = vec![0u8; n as usize];
        s.read_exact(&mut payload)
            .map_err(|e| io_err("stopped before the command finished", &path, e))?;
        match kind {
            STDOUT => emit(Stream::Stdout, &payload),
            STDERR => emit(Stream::Stderr, &payload),
            DONE => return Ok(Some(payload.first().copied().unwrap_or(1))),
            other => {
                return Err(format!(
                    "the running postroom service sent an unknown reply (kind {other}); is it the same version as this program? (`postroom --version`)"
                ));
            }
        }
    }
}

/// Binds the data dir's socket (the caller holds the data dir lock, so a socket file
/// that is already there is a leftover of a killed service).
pub fn bind(data: &Path) -> std::io::Result<smol::net::unix::UnixListener> {
    let path = socket_path(data);
    match std::fs::remove_file(&path) {
        Ok(()) => log::debug!("removed a stale control socket {}", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let l = std::os::unix::net::UnixListener::bind(&path)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    l.set_nonblocking(true)?;
    smol::net::unix::UnixListener::try_from(l)
}

/// Reads one request from a connection.
pub async fn read_request(s: &mut smol::net::unix::UnixStream) -> std::io::Result<Request> {
    use smol::io::AsyncReadExt;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await?;
    let n = u32::from_be_bytes(len);
    if n > MAX_REQUEST {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("request of {n} bytes is larger than {MAX_REQUEST}"),
        ));
    }
    let mut body = vec![0u8; n as usize];
    s.read_exact(&mut body).await?;
    serde_json::from_slice(&body)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Writes one frame to a connection.
pub async fn write_frame(s: &mut smol::net::unix::UnixStream, f: &Frame) -> std::io::Result<()> {
    use smol::io::AsyncWriteExt;
    let (kind, payload): (u8, &[u8]) = match f {
        Frame::Out(Stream::Stdout, b) => (STDOUT, b),
        Frame::Out(Stream::Stderr, b) => (STDERR, b),
        Frame::Done(code) => (DONE, std::slice::from_ref(code)),
    };
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut buf = Vec::with_capacity(payload.len() + 5);
    buf.push(kind);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(payload);
    s.write_all(&buf).await?;
    s.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sink_catches_output_and_is_reset_after() {
        let (tx, rx) = smol::channel::unbounded();
        with_sink(tx, || {
            assert!(captured());
            emit(Stream::Stdout, b"hello\n");
            emit(Stream::Stderr, b"warn\n");
        });
        assert!(!captured());
        let got: Vec<Frame> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert!(
            matches!(&got[..], [Frame::Out(Stream::Stdout, a), Frame::Out(Stream::Stderr, b)] if a == b"hello\n" && b == b"warn\n")
        );
    }

    #[test]
    fn forward_without_a_service_runs_locally() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(forward(dir.path(), vec!["postroom".into()]).unwrap(), None);
        // A stale socket file nobody listens on counts as "no service".
        let l = std::os::unix::net::UnixListener::bind(socket_path(dir.path())).unwrap();
        drop(l);
        assert_eq!(forward(dir.path(), vec!["postroom".into()]).unwrap(), None);
    }
}
