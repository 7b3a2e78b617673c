//! The settings page against a real `postroom serve`: values are checked field by field
//! (each error next to its field, in the user's language) and nothing is stored unless
//! all are valid; the site name shows on every page; the HTTPS certificate is replaced
//! by an upload (a key that does not belong is refused) or regenerated, and the TLS
//! front presents the new one to the next connection.

use crate::support::{Serve, https_fingerprint, https_port, run_ok, tmp, write_file};
use crate::webui::{PW, csrf_of, form};
use postroom::net::{Endpoint, Fingerprint, Security};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use std::time::Duration;

/// One HTTP/1.0 request over TLS trusting any certificate whose fingerprint we record;
/// returns (status, head, body, the certificate's SHA-256 as served).
fn https(
    port: u16,
    pin: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let ep = Endpoint {
        host: "127.0.0.1".into(),
        port,
        security: Security::Tls,
        pinned: Some(Fingerprint::parse(pin).expect("a fingerprint")),
        timeout: Duration::from_secs(30),
    };
    let buf = smol::block_on(async {
        let mut c = postroom::net::connect(&ep).await.expect("TLS connection");
        let mut req = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        c.write_all(req.as_bytes()).await.unwrap();
        c.write_all(body).await.unwrap();
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

fn cookie(head: &str, name: &str) -> Option<String> {
    head.lines()
        .filter_map(|l| l.strip_prefix("Set-Cookie: "))
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .filter(|v| !v.is_empty())
}

fn multipart(boundary: &str, fields: &[(&str, &str)], files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (k, v) in fields {
        b.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    for (k, bytes) in files {
        b.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{k}.pem\"\r\n\
                 Content-Type: application/x-pem-file\r\n\r\n"
            )
            .as_bytes(),
        );
        b.extend_from_slice(bytes);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    b
}

#[test]
fn settings_are_checked_saved_and_the_certificate_is_replaced() {
    let t = tmp();
    let data = t.path();
    let pw = write_file(data, "pw", format!("{PW}\n").as_bytes());
    run_ok(
        data,
        &[
            "user",
            "add",
            "boss",
            "--role",
            "admin",
            "--name",
            "Boss",
            "--language",
            "fr",
            "--password-file",
            pw.to_str().unwrap(),
        ],
    );
    let mail = write_file(
        data,
        "m.eml",
        b"From: Anna <anna@customer.example>\r\nTo: support@example.org\r\n\
          Subject: Summer\r\nDate: Wed, 15 Jul 2026 12:00:00 +0000\r\n\
          Message-ID: <summer@customer.example>\r\n\r\nHello.\r\n",
    );
    run_ok(data, &["import", mail.to_str().unwrap()]);
    let mut serve = Serve::start_with(data, &["--no-mdns"], &[]);
    let ready = serve.wait_for("ready", Duration::from_secs(60));
    let port = https_port(&ready);
    let mut pin = https_fingerprint(&ready);
    let origin = format!("https://127.0.0.1:{port}");

    // Log in over HTTPS.
    let (_, head, page) = https(port, &pin, "GET", "/login", &[], b"");
    let pre = cookie(&head, "postroom_pre").unwrap();
    let (status, head, _) = https(
        port,
        &pin,
        "POST",
        "/login",
        &[
            ("Cookie", &format!("postroom_pre={pre}")),
            ("Origin", &origin),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &form(&[
            ("csrf", &csrf_of(&page)),
            ("login", "boss"),
            ("password", PW),
        ]),
    );
    assert_eq!(status, 303, "{head}");
    let session = format!(
        "postroom_session={}",
        cookie(&head, "postroom_session").unwrap()
    );
    let get = |pin: &str, path: &str| https(port, pin, "GET", path, &[("Cookie", &session)], b"");
    let (status, _, page) = get(&pin, "/admin/settings");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&pin), "the fingerprint is shown: {page}");
    let csrf = csrf_of(&page);
    let post = |pin: &str, path: &str, ct: &str, body: &[u8]| {
        https(
            port,
            pin,
            "POST",
            path,
            &[
                ("Cookie", &session),
                ("Origin", &origin),
                ("Content-Type", ct),
            ],
            body,
        )
    };
    let urlenc = "application/x-www-form-urlencoded";

    // Two bad values: each refused next to its field, in French; nothing stored.
    let fields = |site: &str, days: &str, tz: &str| {
        form(&[
            ("csrf", &csrf),
            ("site_name", site),
            ("subject_tag_prefix", "Ticket#"),
            ("comm_log_retention_days", days),
            ("max_message_mb", "40"),
            ("max_recipients", "10"),
            ("time_zone", tz),
            ("web_url", "https://helpdesk.example.org:8443"),
        ])
    };
    let (status, _, page) = post(
        &pin,
        "/admin/settings/save",
        urlenc,
        &fields("", "0", "Mars/Olympus_Mons"),
    );
    assert_eq!(status, 200);
    assert!(page.contains("id=\"err-site_name\""), "{page}");
    assert!(
        page.contains("id=\"err-comm_log_retention_days\""),
        "{page}"
    );
    assert!(
        page.contains("doit être un nombre de jours de 1 à 3650"),
        "in French: {page}"
    );
    assert!(!page.contains("id=\"err-max_message_mb\""));
    assert!(page.contains("id=\"err-time_zone\""), "{page}");
    let (_, _, page) = get(&pin, "/admin/settings");
    assert!(
        page.contains("value=\"#\""),
        "the tag prefix was not stored: {page}"
    );

    // Valid values are stored and used: the site name on every page.
    let (status, _, page) = post(
        &pin,
        "/admin/settings/save",
        urlenc,
        &fields("Helpdesk Müller", "90", "Europe/Paris"),
    );
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"notice\""), "{page}");
    let (_, _, inbox) = get(&pin, "/inbox?folder=unassigned");
    assert!(inbox.contains("id=\"brand\">Helpdesk Müller<"), "{inbox}");
    // Times show in the office's zone: 12:00 UTC in July is 14:00 in Paris.
    assert!(inbox.contains("2026-07-15 14:00"), "{inbox}");
    let (_, _, log) = get(&pin, "/admin/log");
    assert!(log.contains("Heure (Europe&#x2f;Paris)"), "{log}");
    assert!(inbox.contains("· Helpdesk Müller</title>"));
    let out = run_ok(data, &["settings", "max_message_mb"]);
    assert_eq!(out.trim(), "40");
    // A new account starts with that size limit.
    run_ok(
        data,
        &[
            "account",
            "add",
            "new",
            "--protocol",
            "imap",
            "--host",
            "127.0.0.1",
            "--port",
            "1",
            "--security",
            "none",
            "--user",
            "u",
            "--password",
            "p",
            "--disabled",
        ],
    );
    let out = run_ok(data, &["account", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["max_message_bytes"], 40u64 << 20, "{out}");

    // Upload: a pair made elsewhere. First with a key that does not belong.
    let other = tmp();
    let (_, other_slot) =
        postroom::web::tls::load_or_create(other.path(), &["elsewhere.example".into()]).unwrap();
    let new_cert = std::fs::read(other.path().join("https-cert.pem")).unwrap();
    let new_key = std::fs::read(other.path().join("https-key.pem")).unwrap();
    let own_key = std::fs::read(data.join("https-key.pem")).unwrap();
    let boundary = "postroomtestboundary";
    let ct = format!("multipart/form-data; boundary={boundary}");
    let body = multipart(
        boundary,
        &[("csrf", &csrf)],
        &[("cert", &new_cert), ("key", &own_key)],
    );
    let (status, _, page) = post(&pin, "/admin/settings/certificate", &ct, &body);
    assert_eq!(status, 200);
    assert!(page.contains("id=\"error\""), "{page}");
    assert!(page.contains("cannot be used together"), "{page}");
    assert_eq!(std::fs::read(data.join("https-key.pem")).unwrap(), own_key);
    // The old certificate is still presented.
    assert_eq!(get(&pin, "/healthz").0, 200);

    let body = multipart(
        boundary,
        &[("csrf", &csrf)],
        &[("cert", &new_cert), ("key", &new_key)],
    );
    let (status, _, page) = post(&pin, "/admin/settings/certificate", &ct, &body);
    assert_eq!(status, 200, "{page}");
    let uploaded = other_slot.info().fingerprint;
    assert!(page.contains(&uploaded), "{page}");
    // The next connection gets the uploaded certificate (the old pin no longer fits).
    pin = uploaded.clone();
    let (status, _, page) = get(&pin, "/admin/settings");
    assert_eq!(status, 200);
    assert!(page.contains(&uploaded));

    // Regenerate: a new self-signed one, presented at once and kept for the next start.
    let body = form(&[("csrf", &csrf), ("action", "regenerate")]);
    let (status, _, page) = post(&pin, "/admin/settings/certificate", urlenc, &body);
    assert_eq!(status, 200, "{page}");
    let fresh = page
        .split("id=\"cert-fingerprint\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    assert_ne!(fresh, uploaded);
    assert_eq!(get(&fresh, "/healthz").0, 200);
    serve.stop();
    let mut serve = Serve::start_with(data, &["--no-mdns"], &[]);
    let ready = serve.wait_for("ready", Duration::from_secs(60));
    assert_eq!(https_fingerprint(&ready), fresh);
    serve.stop();
}
