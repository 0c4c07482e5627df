//! Issue 11, finding 4, over real sockets: a service (a data directory from `init`, short configured timeouts)
//! closes silent, idle, dripping-header and dripping-body connections within its timeouts, closes
//! connections over its cap on arrival, and keeps serving a legitimate client meanwhile.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::init::{init, InitOptions};
use super::{load, run, tls, AppState};
use crate::token::SigningAlg;

struct Served {
    addr: SocketAddr,
    state: AppState,
    ca: std::path::PathBuf,
    admin: String,
    handle: axum_server::Handle<SocketAddr>,
    _dir: tempfile::TempDir,
}

async fn serve(limits: &str) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    init(&InitOptions {
        data_dir: data.clone(),
        listen: "127.0.0.1:0".into(),
        ek_ca: vec![],
        service_id: "conn-test".into(),
        tls_san: vec![],
        force: false,
        token_alg: SigningAlg::EdDsa,
        policy_authority: vec![],
        store: None,
    })
    .unwrap();
    let cfg = data.join("config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        if !limits.lines().any(|l| l.split('=').next().unwrap_or("").trim() == key) {
            out.push_str(line);
            out.push('\n');
        }
        if line.trim() == "[limits]" {
            out.push_str(limits);
            out.push('\n');
        }
    }
    std::fs::write(&cfg, out).unwrap();
    let state = load(&data).unwrap();
    let tls = tls::server_config(&data, &state.config.tls).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = axum_server::Handle::new();
    tokio::spawn(run(state.clone(), tls, listener, handle.clone()));
    let admin = std::fs::read_to_string(data.join("admin.credential")).unwrap().trim().to_owned();
    Served { addr, state, ca: data.join("tls/ca.pem"), admin, handle, _dir: dir }
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

impl Served {
    fn tcp(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    }

    fn tls(&self) -> Tls {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(&self.ca).unwrap();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let conn = rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
        let mut s = rustls::StreamOwned::new(conn, self.tcp());
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock).unwrap();
        }
        s
    }

    /// A whole GET on a fresh connection: the status line.
    fn get(&self, path: &str) -> String {
        let mut s = self.tls();
        write!(s, "GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.lines().next().unwrap_or("").to_owned()
    }
}

/// Reads until the peer closes (or errors); returns what arrived and when the connection ended.
fn until_closed(mut s: impl Read) -> (String, Instant) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return (String::from_utf8_lossy(&out).into_owned(), Instant::now()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> tokio::task::JoinHandle<T> {
    tokio::task::spawn_blocking(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_connections_are_closed_within_their_timeouts() {
    let limits =
        "tls_handshake_timeout_secs = 1\nheader_timeout_secs = 2\nbody_timeout_secs = 2\nidle_timeout_secs = 3";
    let served = Arc::new(serve(limits).await);
    let slack = Duration::from_secs(3);

    // A TCP connection that never starts TLS.
    let s = served.clone();
    let silent = blocking(move || {
        let start = Instant::now();
        (until_closed(s.tcp()).1 - start, start)
    });
    // TLS, then nothing.
    let s = served.clone();
    let idle = blocking(move || {
        let conn = s.tls();
        let start = Instant::now();
        until_closed(conn).1 - start
    });
    // Headers one byte every 300 ms: bytes keep coming, so only the header deadline can end it.
    let s = served.clone();
    let drip_headers = blocking(move || {
        let mut conn = s.tls();
        let start = Instant::now();
        for b in b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n" {
            if conn.write_all(&[*b]).and_then(|()| conn.flush()).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        Instant::now() - start
    });
    // An authenticated POST whose body drips: 408 at the body deadline, then the connection closes.
    let s = served.clone();
    let drip_body = blocking(move || {
        let mut conn = s.tls();
        let head = format!(
            "POST /v1/policies HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\n\
             content-type: application/json\r\ncontent-length: 1000\r\n\r\n",
            s.admin
        );
        conn.write_all(head.as_bytes()).unwrap();
        let start = Instant::now();
        for _ in 0..10 {
            conn.write_all(b" ").unwrap();
            conn.flush().unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
        let (answer, closed) = until_closed(conn);
        (answer, closed - start)
    });
    // Meanwhile a legitimate client is served, keeping one connection alive across the idle timeout.
    let s = served.clone();
    let legit = blocking(move || {
        let mut conn = s.tls();
        let mut answers = Vec::new();
        for _ in 0..5 {
            write!(conn, "GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n").unwrap();
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).unwrap();
            answers.push(String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or("").to_owned());
            std::thread::sleep(Duration::from_millis(1000));
        }
        answers
    });

    let (silent, _) = silent.await.unwrap();
    assert!(silent < Duration::from_secs(1) + slack, "no TLS handshake: closed after {silent:?}");
    let idle = idle.await.unwrap();
    assert!(idle >= Duration::from_secs(2) && idle < Duration::from_secs(3) + slack, "idle: closed after {idle:?}");
    let drip = drip_headers.await.unwrap();
    assert!(drip < Duration::from_secs(2) + slack, "dripping headers: closed after {drip:?}");
    let (answer, body) = drip_body.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "dripping body: {answer:?}");
    assert!(body < Duration::from_secs(2) + slack, "dripping body: closed after {body:?}");
    for answer in legit.await.unwrap() {
        assert_eq!(answer, "HTTP/1.1 200 OK", "a kept-alive legitimate client is served throughout");
    }
    assert_eq!(served.get("/healthz"), "HTTP/1.1 200 OK");
    let c = &served.state.metrics.connections;
    use std::sync::atomic::Ordering::Relaxed;
    let counts =
        [&c.handshake_timeouts, &c.idle_timeouts, &c.header_timeouts, &c.body_timeouts].map(|n| n.load(Relaxed));
    assert!(counts.iter().all(|n| *n >= 1), "handshake, idle, headers, body timeouts counted: {counts:?}");
    served.handle.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed_on_arrival() {
    let served = Arc::new(serve("max_connections = 2\ntls_handshake_timeout_secs = 2").await);
    let s = served.clone();
    let outcome = blocking(move || {
        let held = [s.tcp(), s.tcp()];
        std::thread::sleep(Duration::from_millis(300));
        let start = Instant::now();
        let (_, closed) = until_closed(s.tcp());
        let refused_after = closed - start;
        drop(held);
        std::thread::sleep(Duration::from_millis(300));
        (refused_after, s.get("/healthz"))
    });
    let (refused_after, answer) = outcome.await.unwrap();
    assert!(refused_after < Duration::from_secs(1), "over the cap: closed after {refused_after:?}, not served");
    assert_eq!(answer, "HTTP/1.1 200 OK", "a slot freed: served again");
    assert!(served.state.metrics.connections.refused.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    served.handle.shutdown();
}
