//! The web server as a client sees it: `/healthz` (no login) reports the store, the
//! pipeline backlog, each account's state and the outbox; unknown paths and methods are
//! refused.

use crate::support::{Serve, http, run_ok, tmp, web_port, write_file};
use std::time::{Duration, Instant};

const MAIL: &[u8] = b"From: a@customer.example\nTo: support@helpdesk.example\nSubject: health\nMessage-ID: <h1@customer.example>\n\nhi\n";

fn healthz(port: u16) -> (u16, serde_json::Value) {
    let (status, head, body) = http(port, "GET", "/healthz");
    assert!(head.contains("application/json"), "{head}");
    assert!(head.contains("X-Content-Type-Options: nosniff"), "{head}");
    (status, serde_json::from_str(&body).unwrap())
}

#[test]
fn healthz_reports_the_store_and_a_failing_account() {
    let t = tmp();
    let data = t.path().join("data");
    run_ok(
        &data,
        &[
            "import",
            &write_file(t.path(), "m.eml", MAIL).to_string_lossy(),
        ],
    );
    // A reply waiting for a relay that is not there: the outbox shows one queued.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    run_ok(
        &data,
        &[
            "smtp",
            "add",
            "relay",
            "--host",
            "127.0.0.1",
            "--port",
            &dead_port,
            "--security",
            "none",
            "--auth",
            "none",
        ],
    );
    run_ok(
        &data,
        &[
            "mailbox",
            "edit",
            "Inbox",
            "--address",
            "support@helpdesk.example",
            "--smtp",
            "relay",
        ],
    );
    let reply = crate::support::cmd(&data, &["reply", "1", "--body", "On its way."])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&reply.stdout).contains("not sent yet"));
    let mut serve = Serve::start(&data, &[]);
    let port = web_port(&serve.wait_for("ready", Duration::from_secs(30)));
    let (status, h) = healthz(port);
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["status"], "ok");
    assert_eq!(h["store"]["ok"], true);
    assert_eq!(h["store"]["messages"], 2, "the mail and the reply");
    assert_eq!(h["fetchers"].as_array().unwrap().len(), 0);
    assert_eq!(h["outbox"]["queued"], 1);
    assert_eq!(h["outbox"]["failed"], 0);
    // An account whose server is not there: the service stays up, health says degraded
    // and names the account with the error.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port_closed = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    run_ok(
        &data,
        &[
            "account",
            "add",
            "broken",
            "--host",
            "127.0.0.1",
            "--port",
            &port_closed,
            "--security",
            "none",
            "--user",
            "u",
            "--password",
            "p",
        ],
    );
    let until = Instant::now() + Duration::from_secs(30);
    let h = loop {
        let (status, h) = healthz(port);
        assert_eq!(status, 200);
        if h["status"] == "degraded" || Instant::now() > until {
            break h;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(h["status"], "degraded", "{h}");
    let f = &h["fetchers"][0];
    assert_eq!(f["account"], "broken");
    assert_eq!(f["ok"], false);
    assert!(f["state"].as_str().unwrap().contains("error"), "{f}");
    // Before the first user exists, every page leads to the setup page.
    let (status, head, _) = http(port, "GET", "/no/such/page");
    assert_eq!(status, 303);
    assert!(head.contains("Location: /setup"), "{head}");
    let (status, _, _) = http(port, "POST", "/healthz");
    assert_eq!(status, 405);
    serve.stop();
}

#[test]
fn a_busy_port_is_a_clear_error() {
    let t = tmp();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = crate::support::cmd(t.path(), &["serve", "--listen", &addr])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot serve the web interface on {addr}"))
            && err.contains("--listen"),
        "{err}"
    );
}

/// Listening on the LAN, the service announces NAME.local by mDNS with an `_http._tcp`
/// record carrying the web port and an `_https._tcp` record carrying the HTTPS port; a
/// resolver on this machine finds both, and the log names the HTTPS address first.
#[test]
fn the_service_announces_itself_by_mdns() {
    let t = tmp();
    let name = format!("postroom-it-{}", std::process::id());
    let mut serve = Serve::start(
        t.path(),
        &[
            ("POSTROOM_LISTEN", "0.0.0.0:0"),
            ("POSTROOM_HTTPS_LISTEN", "0.0.0.0:0"),
            ("POSTROOM_MDNS_NAME", &name),
        ],
    );
    let announced = serve.wait_for("mDNS: announcing", Duration::from_secs(30));
    let ready = serve.wait_for("ready", Duration::from_secs(30));
    let (port, tls_port) = (web_port(&ready), crate::support::https_port(&ready));
    assert!(
        announced.contains(&format!(
            "announcing https://{name}.local:{tls_port}/ (and http://{name}.local:{port}/)"
        )),
        "{announced}"
    );
    let resolve = |ty: &str| {
        let client = mdns_sd::ServiceDaemon::new().unwrap();
        let browse = client.browse(ty).unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        // (a resolution may come before the host's address records: wait for those)
        let mut found = None;
        while Instant::now() < until && found.is_none_or(|(_, addrs)| addrs == 0) {
            if let Ok(mdns_sd::ServiceEvent::ServiceResolved(info)) =
                browse.recv_timeout(Duration::from_millis(500))
                && info.get_hostname() == format!("{name}.local.")
            {
                found = Some((info.get_port(), info.get_addresses_v4().len()));
            }
        }
        let _ = client.shutdown();
        found.unwrap_or_else(|| panic!("no {ty} record for {name}.local was announced"))
    };
    let (p, addrs) = resolve("_http._tcp.local.");
    assert_eq!(p, port, "the http record carries the web port");
    assert!(addrs > 0, "with the machine's addresses");
    let (p, addrs) = resolve("_https._tcp.local.");
    assert_eq!(p, tls_port, "the https record carries the HTTPS port");
    assert!(addrs > 0, "with the machine's addresses");
    serve.stop();
}

#[test]
fn a_bad_mdns_name_is_refused() {
    let t = tmp();
    let out = crate::support::cmd(t.path(), &["serve", "--mdns-name", "post room"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a host name"));
}
