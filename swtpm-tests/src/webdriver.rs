//! A headless Chromium driven over W3C WebDriver (https://www.w3.org/TR/webdriver2/) by Debian's chromedriver,
//! for the web console's browser tests. The protocol is JSON over HTTP/1.1 on loopback: a few requests, sent
//! with std's TcpStream (no client crate, nothing fetched at build time).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Where Debian puts them (packages chromium and chromium-driver).
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "chromedriver";

/// W3C WebDriver's element reference key (§12.1).
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser session; the driver and the browser end when it drops.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session that accepts the service's own TLS certificate.
    pub fn start() -> Browser {
        let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
            .into_iter()
            .filter(|t| Command::new(t).arg("--version").output().map_or(true, |o| !o.status.success()))
            .collect();
        assert!(
            missing.is_empty(),
            "the console's browser tests need Chromium and ChromeDriver ({missing:?} missing): \
             apt-get install chromium chromium-driver (or scripts/install-deps.sh --browser)"
        );
        let profile = tempfile::tempdir().expect("browser profile dir");
        for _ in 0..10 {
            let Some(port) = crate::free_port() else { continue };
            let mut driver = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn chromedriver");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && TcpStream::connect(("127.0.0.1", port)).is_err() {
                if let Ok(Some(_)) = driver.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if TcpStream::connect(("127.0.0.1", port)).is_err() {
                let _ = driver.kill();
                let _ = driver.wait();
                continue;
            }
            // The flags this machine kind needs (no sandbox as root, no background connections to Google).
            let args = [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1280,1000",
                &format!("--user-data-dir={}", profile.path().display()),
            ];
            let caps = json!({ "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "acceptInsecureCerts": true,
                "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
            }}});
            let mut b = Browser { driver, port, session: String::new(), _profile: profile };
            let v = b.call("POST", "/session", Some(caps));
            b.session = v["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {v}")).to_owned();
            return b;
        }
        panic!("could not start chromedriver on a free loopback port");
    }

    /// One WebDriver command; its `value`, or a panic with the driver's error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to chromedriver");
        s.set_read_timeout(Some(Duration::from_secs(120))).expect("timeout");
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        );
        s.write_all(req.as_bytes()).expect("send to chromedriver");
        // chromedriver keeps the connection open: read the head, then the body by its framing (RFC 9112 §6).
        let mut raw = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        let split = loop {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let n = s.read(&mut buf).expect("read from chromedriver");
            assert!(n > 0, "chromedriver closed the connection before its answer's head");
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut body = raw[split + 4..].to_vec();
        let lower = head.to_ascii_lowercase();
        let length =
            lower.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok());
        let bytes = match length {
            Some(len) => {
                while body.len() < len {
                    let n = s.read(&mut buf).expect("read from chromedriver");
                    assert!(n > 0, "chromedriver closed the connection mid-answer");
                    body.extend_from_slice(&buf[..n]);
                }
                body.truncate(len);
                body
            }
            None if lower.contains("transfer-encoding: chunked") => {
                while !body.windows(5).any(|w| w == b"0\r\n\r\n") {
                    let n = s.read(&mut buf).expect("read from chromedriver");
                    if n == 0 {
                        break;
                    }
                    body.extend_from_slice(&buf[..n]);
                }
                dechunk(&body)
            }
            None => {
                let _ = s.read_to_end(&mut body);
                body
            }
        };
        let payload = String::from_utf8_lossy(&bytes);
        let v: Value = serde_json::from_str(&payload).unwrap_or_else(|e| panic!("{method} {path}: {e}: {payload}"));
        let status_ok = head.split_whitespace().nth(1) == Some("200");
        assert!(status_ok, "WebDriver {method} {path} failed: {head}\n{v}");
        v["value"].clone()
    }

    fn at(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Navigates to `url` and waits for the page to load.
    pub fn goto(&self, url: &str) {
        self.call("POST", &self.at("/url"), Some(json!({ "url": url })));
    }

    /// The current page's address.
    pub fn url(&self) -> String {
        self.call("GET", &self.at("/url"), None).as_str().unwrap_or_default().to_owned()
    }

    /// The current page's rendered text (what a user reads).
    pub fn text(&self) -> String {
        let body = self.find("body").expect("a body element");
        self.element_text(&body)
    }

    /// The current page's HTML.
    pub fn source(&self) -> String {
        self.call("GET", &self.at("/source"), None).as_str().unwrap_or_default().to_owned()
    }

    /// The first element matching a CSS selector.
    pub fn find(&self, css: &str) -> Option<String> {
        self.find_all(css).into_iter().next()
    }

    /// Every element matching a CSS selector.
    pub fn find_all(&self, css: &str) -> Vec<String> {
        let v = self.call("POST", &self.at("/elements"), Some(json!({ "using": "css selector", "value": css })));
        v.as_array()
            .map(|a| a.iter().filter_map(|e| e[ELEMENT].as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    pub fn element_text(&self, element: &str) -> String {
        self.call("GET", &self.at(&format!("/element/{element}/text")), None).as_str().unwrap_or_default().to_owned()
    }

    pub fn attribute(&self, element: &str, name: &str) -> Option<String> {
        self.call("GET", &self.at(&format!("/element/{element}/attribute/{name}")), None).as_str().map(str::to_owned)
    }

    /// Clicks the first element matching `css` (a link or a button that navigates) and waits until the new
    /// page has loaded: a click returns once the event is dispatched, and on a loaded machine the navigation
    /// it starts may not have begun yet.
    pub fn click(&self, css: &str) {
        let before = self.url();
        let e = self.find(css).unwrap_or_else(|| panic!("nothing matches {css} on {before}"));
        self.call("POST", &self.at(&format!("/element/{e}/click")), Some(json!({})));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = self.call(
                "POST",
                &self.at("/execute/sync"),
                Some(json!({
                    "script": "return document.readyState", "args": []
                })),
            );
            if self.url() != before && state == "complete" {
                return;
            }
            assert!(Instant::now() < deadline, "clicking {css} on {before} loaded no new page within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sets an input's value: clears it, then types `text`.
    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).unwrap_or_else(|| panic!("nothing matches {css}"));
        self.call("POST", &self.at(&format!("/element/{e}/clear")), Some(json!({})));
        self.call("POST", &self.at(&format!("/element/{e}/value")), Some(json!({ "text": text })));
    }

    /// The cookies the browser holds for the current page, as WebDriver reports them (§14.1: name, value,
    /// path, secure, httpOnly, sameSite, expiry).
    pub fn cookies(&self) -> Vec<Value> {
        self.call("GET", &self.at("/cookie"), None).as_array().cloned().unwrap_or_default()
    }

    /// A PNG screenshot of the viewport, written to `path`.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let v = self.call("GET", &self.at("/screenshot"), None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("screenshot base64"))
            .expect("screenshot decodes");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }
}

/// A chunked HTTP/1.1 body (RFC 9112 §7.1), decoded.
fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = s.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&s[..eol]);
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        let rest = &s[eol + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        s = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.call("DELETE", &path, None)));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
