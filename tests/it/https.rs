//! The web UI over HTTPS as a browser sees it: a self-signed certificate made on first
//! start and kept in the data dir (same fingerprint after a restart, key readable by the
//! service only), requests answered through the TLS front, plain HTTP on the HTTPS port
//! refused without harm, and `--no-https` / a busy port handled.

use crate::support::{Serve, cmd, https_fingerprint, https_port, tmp, web_port};
use futures_rustls::pki_types::CertificateDer;
use futures_rustls::pki_types::pem::PemObject;
use postroom::net::{Endpoint, Fingerprint, Security};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use std::path::Path;
use std::time::Duration;

const READY: Duration = Duration::from_secs(60);

/// An HTTP/1.0 request over TLS to 127.0.0.1:`port`, trusting exactly the certificate
/// with fingerprint `pin`; returns (status, head, body).
fn https(port: u16, pin: &str, method: &str, path: &str) -> (u16, String, String) {
    let ep = Endpoint {
        host: "127.0.0.1".into(),
        port,
        security: Security::Tls,
        pinned: Some(Fingerprint::parse(pin).expect("a fingerprint")),
        timeout: Duration::from_secs(30),
    };
    let buf = smol::block_on(async {
        let mut c = postroom::net::connect(&ep).await.expect("TLS connection");
        let req = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        c.write_all(req.as_bytes()).await.unwrap();
        c.flush().await.unwrap();
        let mut buf = Vec::new();
        c.read_to_end(&mut buf).await.expect("the whole answer");
        buf
    });
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// SHA-256 of the certificate in the data dir.
fn file_fingerprint(data: &Path) -> String {
    let der = CertificateDer::from_pem_file(data.join("https-cert.pem")).unwrap();
    Fingerprint::of(der.as_ref()).to_string()
}

fn healthz_ok(port: u16, pin: &str) {
    let (status, head, body) = https(port, pin, "GET", "/healthz");
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(head.contains("application/json"), "{head}");
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["status"], "ok", "{h}");
}

#[test]
fn healthz_answers_over_https_with_the_certificate_in_the_data_dir() {
    let t = tmp();
    let data = t.path().join("data");
    let mut serve = Serve::start(&data, &[]);
    let ready = serve.wait_for("ready", READY);
    assert!(web_port(&ready) > 0, "{ready}");
    let (port, fp) = (https_port(&ready), https_fingerprint(&ready));
    assert_eq!(fp, file_fingerprint(&data), "{ready}");
    // The journal gets the fingerprint too.
    assert!(
        serve
            .seen
            .iter()
            .any(|l| l.contains(&fp) && l.contains("INFO")),
        "{}",
        serve.seen.join("\n")
    );
    healthz_ok(port, &fp);
    // Before the first user exists, every page leads to the setup page.
    let (status, head, _) = https(port, &fp, "GET", "/no/such/page");
    assert_eq!(status, 303);
    assert!(head.contains("Location: /setup"), "{head}");
    serve.stop();
}

#[test]
fn the_certificate_stays_the_same_after_a_restart() {
    let t = tmp();
    let data = t.path().join("data");
    let mut serve = Serve::start(&data, &[]);
    let first = https_fingerprint(&serve.wait_for("ready", READY));
    serve.stop();
    let pem = std::fs::read(data.join("https-cert.pem")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("https-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the key is the service's only");
    let mut serve = Serve::start(&data, &[]);
    let ready = serve.wait_for("ready", READY);
    assert_eq!(https_fingerprint(&ready), first);
    assert_eq!(std::fs::read(data.join("https-cert.pem")).unwrap(), pem);
    healthz_ok(https_port(&ready), &first);
    serve.stop();
}

#[test]
fn plain_http_on_the_https_port_is_closed_and_https_still_works() {
    use std::io::{ErrorKind, Read, Write};
    let t = tmp();
    let mut serve = Serve::start(t.path(), &[]);
    let ready = serve.wait_for("ready", READY);
    let (port, fp) = (https_port(&ready), https_fingerprint(&ready));
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    match s.read_to_end(&mut buf) {
        // At most a TLS alert, never an HTTP answer.
        Ok(_) => assert!(!buf.starts_with(b"HTTP"), "{buf:?}"),
        Err(e) => assert!(
            !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "the connection was left open: {e}"
        ),
    }
    healthz_ok(port, &fp);
    serve.stop();
}

#[test]
fn no_https_serves_plain_http_only() {
    let t = tmp();
    let mut serve = Serve::start_with(t.path(), &["--no-https"], &[]);
    let ready = serve.wait_for("ready", READY);
    assert!(!ready.contains("https"), "{ready}");
    let (status, _, _) = crate::support::http(web_port(&ready), "GET", "/healthz");
    assert_eq!(status, 200);
    assert!(!t.path().join("https-cert.pem").exists());
    serve.stop();
}

#[test]
fn a_busy_https_port_is_a_clear_error() {
    let t = tmp();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = cmd(t.path(), &["serve", "--https-listen", &addr])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot serve HTTPS on {addr}"))
            && err.contains("--https-listen")
            && err.contains("--no-https"),
        "{err}"
    );
}
