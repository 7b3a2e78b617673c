//! Proves the browser harness (`tests/support/browser.rs`) drives a real Chromium, and
//! the browser facts the web UI relies on: a posted form reaches the server, an
//! `HttpOnly; SameSite=Strict` cookie is invisible to page script, a sandboxed iframe
//! without `allow-scripts` runs no script (not even an `onerror` attribute), and
//! `img-src data:` keeps the page from fetching an image, and a self-signed HTTPS page
//! loads. Every negative check has a control that shows the same page does the thing
//! when the protection is off.
//!
//! The pages come from a tiny HTTP(S) server in this file that records every request.

use crate::browser::{self, Browser, Cookie};
use futures_rustls::pki_types::PrivatePkcs8KeyDer;
use futures_rustls::rustls;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        let h = self
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name));
        h.map(|(_, v)| v.as_str())
    }
}

/// Status, extra header lines, content type, body.
type Page = (u16, Vec<String>, &'static str, String);
type Handler = dyn Fn(&Request) -> Option<Page> + Send + Sync;

/// A one-page-per-path HTTP/1.1 server on 127.0.0.1 (every answer `Connection: close`).
struct Server {
    scheme: &'static str,
    port: u16,
    log: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(handler: impl Fn(&Request) -> Option<Page> + Send + Sync + 'static) -> Server {
        Server::start_with(None, handler)
    }

    /// The same over TLS with a fresh self-signed certificate for 127.0.0.1.
    fn start_tls(handler: impl Fn(&Request) -> Option<Page> + Send + Sync + 'static) -> Server {
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let key = PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key.into())
            .unwrap();
        Server::start_with(Some(Arc::new(config)), handler)
    }

    fn start_with(
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: impl Fn(&Request) -> Option<Page> + Send + Sync + 'static,
    ) -> Server {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (log2, stop2) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (log, handler) = (log2.clone(), handler.clone());
                // A thread per connection: Chromium keeps idle ones open.
                let tls = tls.clone();
                std::thread::spawn(move || match tls {
                    None => serve(conn, &log, &*handler),
                    Some(tls) => {
                        let Ok(session) = rustls::ServerConnection::new(tls) else {
                            return;
                        };
                        serve(rustls::StreamOwned::new(session, conn), &log, &*handler);
                    }
                });
            }
        });
        Server {
            scheme,
            port,
            log,
            stop,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.port)
    }

    fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    fn paths(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.path).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(conn: impl Read + Write, log: &Mutex<Vec<Request>>, handler: &Handler) {
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return; // a speculative connection closed unused
    }
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or_default().to_string();
    let path = words.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let req = Request {
        method,
        path,
        headers,
        body: String::new(),
    };
    let len = req
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    let req = Request {
        body: String::from_utf8(body).unwrap(),
        ..req
    };
    log.lock().unwrap().push(req.clone());
    let (status, extra, ctype, body) =
        handler(&req).unwrap_or((404, vec![], "text/plain", "not found".into()));
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Connection: close\r\nCache-Control: no-store\r\n",
        body.len()
    );
    for h in extra {
        head.push_str(&h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut w = r.into_inner();
    let _ = w.write_all(head.as_bytes());
    let _ = w.write_all(body.as_bytes());
    let _ = w.flush();
}

fn html(body: &str) -> Option<Page> {
    Some((200, vec![], "text/html; charset=utf-8", body.to_string()))
}

/// A 4x3 image that needs no binary: its natural width proves it was fetched.
const SVG: &str = r#"<svg xmlns="http://www.w3.org/2000/svg" width="4" height="3"></svg>"#;

#[test]
fn clicks_types_and_reads_a_page() {
    let server = Server::start(|req| match req.path.as_str() {
        "/" => html(
            r#"<!doctype html><title>Self test</title>
            <button id="b" onclick="n++; document.getElementById('out').textContent = 'clicked ' + n">Go</button>
            <p id="out">not yet</p><p class="item">one</p><p class="item">two</p>
            <p id="hidden" style="display:none" data-x="y">hidden</p>
            <input id="in" value="old"><button id="al" onclick="alert('careful')">Alert</button>
            <a id="next" href="/next">next</a><script>var n = 0;</script>"#,
        ),
        "/next" => html("<!doctype html><title>Next</title><p id=here>next page</p>"),
        _ => None,
    });
    let b = Browser::start();
    b.goto(&server.url("/"));
    assert_eq!(b.title(), "Self test");
    assert_eq!(b.url(), server.url("/"));
    assert_eq!(b.find("#out").text(), "not yet");
    b.find("#b").click();
    b.find("#b").click();
    assert_eq!(b.find("#out").text(), "clicked 2");
    assert_eq!(b.exec("return n", vec![]), json!(2));

    assert_eq!(
        b.find_all(".item")
            .iter()
            .map(|e| e.text())
            .collect::<Vec<_>>(),
        ["one", "two"]
    );
    assert!(b.try_find("#absent").is_none());
    let hidden = b.find("#hidden");
    assert!(!hidden.is_displayed());
    assert!(b.find("#out").is_displayed());
    assert_eq!(hidden.attr("data-x").as_deref(), Some("y"));
    assert_eq!(hidden.attr("data-none"), None);
    // exec takes elements as arguments.
    assert_eq!(
        b.exec(
            "return arguments[0].id + arguments[1]",
            vec![hidden.json(), json!(1)]
        ),
        json!("hidden1")
    );

    let input = b.find("#in");
    input.clear();
    input.send_keys("new text");
    assert_eq!(input.prop("value"), json!("new text"));
    assert_eq!(
        input.attr("value").as_deref(),
        Some("old"),
        "the markup's, not the property"
    );

    assert_eq!(b.alert_text(), None);
    b.find("#al").click();
    assert_eq!(b.alert_text().as_deref(), Some("careful"));
    b.accept_alert();
    assert_eq!(b.alert_text(), None);

    b.find("#next").click();
    assert_eq!(b.wait_for("#here").text(), "next page");
    b.back();
    b.wait_until("back on the first page", |b| b.title() == "Self test");
    b.exec(
        "document.getElementById('out').textContent = 'changed'",
        vec![],
    );
    b.refresh();
    b.wait_until("reloaded", |b| b.find("#out").text() == "not yet");
    assert!(b.source().contains("id=\"b\""));

    let shot = tempfile::NamedTempFile::new().unwrap();
    b.screenshot(shot.path());
    let png = std::fs::read(shot.path()).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG: {:?}",
        &png[..png.len().min(16)]
    );
    // IHDR: the viewport of the 1280x900 window.
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert_eq!(width, 1280);
}

#[test]
fn a_submitted_form_posts_its_fields() {
    let server = Server::start(|req| match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/form") => html(
            r#"<!doctype html><form method="post" action="/submit">
            <input name="subject"><textarea name="body"></textarea>
            <button id="send" type="submit">Send</button></form>"#,
        ),
        ("POST", "/submit") => html("<!doctype html><p id=thanks>thanks</p>"),
        _ => None,
    });
    let b = Browser::start();
    b.goto(&server.url("/form"));
    b.find("[name=subject]")
        .send_keys("Printer on fire & smoke");
    b.find("[name=body]").send_keys("Grüße, 100%");
    b.find("#send").click();
    b.wait_for("#thanks");
    let posts: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].path, "/submit");
    assert_eq!(
        posts[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        posts[0].body,
        "subject=Printer+on+fire+%26+smoke&body=Gr%C3%BC%C3%9Fe%2C+100%25"
    );
}

#[test]
fn an_httponly_samesite_strict_cookie_is_hidden_from_script() {
    let server = Server::start(|req| match req.path.as_str() {
        "/login" => Some((
            200,
            vec![
                "Set-Cookie: sid=s3cret; Path=/; HttpOnly; SameSite=Strict".into(),
                "Set-Cookie: theme=dark; Path=/".into(),
            ],
            "text/html",
            "<!doctype html><p id=in>logged in</p>".into(),
        )),
        "/page" => html("<!doctype html><p id=page>page</p>"),
        _ => None,
    });
    let b = Browser::start();
    b.goto(&server.url("/login"));
    let mut cookies = b.cookies();
    cookies.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    let (sid, theme) = (&cookies[0], &cookies[1]);
    assert_eq!((sid.name.as_str(), sid.value.as_str()), ("sid", "s3cret"));
    assert!(sid.http_only && !sid.secure, "{sid:?}");
    assert_eq!(sid.same_site.as_deref(), Some("Strict"));
    assert_eq!(sid.path.as_deref(), Some("/"));
    assert!(!theme.http_only, "{theme:?}");
    assert_eq!(
        theme.same_site.as_deref(),
        Some("Lax"),
        "Chromium's default"
    );

    // Page script sees only the other cookie; the server gets both.
    assert_eq!(
        b.exec("return document.cookie", vec![]),
        json!("theme=dark")
    );
    b.goto(&server.url("/page"));
    let sent = server
        .requests()
        .last()
        .unwrap()
        .header("cookie")
        .map(str::to_string);
    let mut sent: Vec<_> = sent
        .as_deref()
        .unwrap_or("")
        .split("; ")
        .map(str::to_string)
        .collect();
    sent.sort();
    assert_eq!(sent, ["sid=s3cret", "theme=dark"]);

    // add_cookie and delete_cookies.
    b.delete_cookies();
    assert!(b.cookies().is_empty());
    b.add_cookie(&Cookie {
        name: "added".into(),
        value: "1".into(),
        http_only: true,
        ..Cookie::default()
    });
    let added = b.cookies();
    assert_eq!(added.len(), 1, "{added:?}");
    assert!(added[0].name == "added" && added[0].http_only, "{added:?}");
    assert_eq!(b.exec("return document.cookie", vec![]), json!(""));
}

/// A parent page with iframe `#a` (`sandbox` as given) showing `/child`, whose inline
/// script and `<img onerror>` post to the parent. After the parent's load (which waits
/// for `#a` to load, so `#a`'s script and error handler have had their turn), the parent
/// adds a second, script-enabled frame that posts "barrier": once "barrier" is listed,
/// any message from `#a` is too.
fn sandbox_server() -> Server {
    Server::start(|req| {
        let parent = |sandbox: &str| {
            html(&format!(
                r#"<!doctype html><p id="got"></p><iframe id="a" {sandbox} src="/child"></iframe>
                <script>
                var got = [];
                addEventListener('message', function (e) {{
                    got.push(String(e.data));
                    document.getElementById('got').textContent = got.join(',');
                }});
                addEventListener('load', function () {{
                    var f = document.createElement('iframe');
                    f.sandbox = 'allow-scripts';
                    f.src = '/barrier';
                    document.body.appendChild(f);
                }});
                </script>"#
            ))
        };
        match req.path.as_str() {
            "/sandboxed" => parent("sandbox"),
            "/scripts-allowed" => parent(r#"sandbox="allow-scripts""#),
            "/child" => html(
                r#"<!doctype html><p id="c">child</p>
                <script>window.ran = 'yes'; parent.postMessage('script', '*');</script>
                <img src="/missing.png" onerror="parent.postMessage('onerror', '*')">"#,
            ),
            "/barrier" => {
                html("<!doctype html><script>parent.postMessage('barrier', '*')</script>")
            }
            _ => None,
        }
    })
}

fn messages_after_barrier(b: &Browser) -> String {
    b.wait_until("the barrier frame's message", |b| {
        b.find("#got").text().contains("barrier")
    });
    b.find("#got").text()
}

#[test]
fn a_sandboxed_iframe_without_allow_scripts_runs_no_script() {
    let server = sandbox_server();
    let b = Browser::start();

    // Control: the same child with scripts allowed posts both messages.
    b.goto(&server.url("/scripts-allowed"));
    let got = messages_after_barrier(&b);
    assert!(got.contains("script") && got.contains("onerror"), "{got}");
    b.switch_to_frame(&b.find("#a"));
    assert_eq!(b.exec("return typeof window.ran", vec![]), json!("string"));
    b.switch_to_parent();

    b.goto(&server.url("/sandboxed"));
    assert_eq!(messages_after_barrier(&b), "barrier");
    // The child did load (its image was even requested); only its script did not run.
    b.switch_to_frame(&b.find("#a"));
    assert_eq!(b.find("#c").text(), "child");
    assert_eq!(
        b.exec("return typeof window.ran", vec![]),
        json!("undefined")
    );
    b.switch_to_parent();
    let child_loads = server.paths().iter().filter(|p| *p == "/child").count();
    assert_eq!(child_loads, 2);
}

#[test]
fn a_csp_of_img_src_data_keeps_the_page_from_fetching_an_image() {
    let server = Server::start(|req| {
        let page = |csp: bool, tag: &str| {
            let extra = if csp {
                vec!["Content-Security-Policy: default-src 'none'; img-src data:".to_string()]
            } else {
                vec![]
            };
            let body =
                format!(r#"<!doctype html><img id="i" src="/img.svg?{tag}"><p id="p">page</p>"#);
            Some((200, extra, "text/html", body))
        };
        match req.path.split('?').next().unwrap() {
            "/csp" => page(true, "csp"),
            "/plain" => page(false, "plain"),
            "/img.svg" => Some((200, vec![], "image/svg+xml", SVG.to_string())),
            _ => None,
        }
    });
    let b = Browser::start();
    let width = |b: &Browser| {
        b.wait_until("the image settles", |b| {
            b.exec("return document.getElementById('i').complete", vec![]) == true
        });
        b.exec("return document.getElementById('i').naturalWidth", vec![])
    };

    b.goto(&server.url("/csp"));
    assert_eq!(width(&b), json!(0), "the image is broken");
    // Control: without the header the same markup fetches and shows the image.
    b.goto(&server.url("/plain"));
    assert_eq!(width(&b), json!(4));

    let paths = server.paths();
    assert!(paths.contains(&"/img.svg?plain".to_string()), "{paths:?}");
    assert!(!paths.contains(&"/img.svg?csp".to_string()), "{paths:?}");
}

#[test]
fn a_self_signed_https_page_loads_and_its_secure_cookie_is_kept() {
    let server = Server::start_tls(|req| match req.path.as_str() {
        "/" => Some((
            200,
            vec!["Set-Cookie: sid=t; Path=/; Secure; HttpOnly; SameSite=Strict".into()],
            "text/html",
            "<!doctype html><title>TLS</title><p id=ok>over TLS</p>".into(),
        )),
        _ => None,
    });
    let b = Browser::start();
    b.goto(&server.url("/"));
    assert!(b.url().starts_with("https://"), "{}", b.url());
    assert_eq!(b.find("#ok").text(), "over TLS");
    let cookies = b.cookies();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert!(cookies[0].secure && cookies[0].http_only, "{cookies:?}");
}

#[test]
fn dropping_the_browser_ends_every_process() {
    let b = Browser::start();
    b.goto("about:blank");
    let pids = b.pids();
    assert!(
        pids.len() >= 3,
        "chromedriver, Chromium and its helpers: {pids:?}"
    );
    drop(b);
    let alive: Vec<_> = pids.iter().filter(|p| browser::alive(**p)).collect();
    assert!(alive.is_empty(), "still running after drop: {alive:?}");
}
