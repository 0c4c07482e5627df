//! Client and service edges against a local `runtrust serve` (no TPM), issue 11 finding 10: a reset
//! connection is exit 4 with a message (not death by SIGPIPE), token files are read capped, `audit tail -n N`
//! downloads only the tail, query and path rejections are problem+json, and `serve` stops on SIGTERM with its
//! stdout and stderr gone.

// A failed assumption here is a failed test (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runtrust::api::{routes, ApplyPolicy};
use runtrust::client::{Client, ClientError, ClientOptions};

const BIN: &str = env!("CARGO_BIN_EXE_runtrust");

/// `runtrust init` + `runtrust serve` in a temp dir, killed on drop.
struct Server {
    dir: tempfile::TempDir,
    child: Child,
    url: String,
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let out =
            Command::new(BIN).args(["init", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&data).output().unwrap();
        assert!(out.status.success(), "init: {}", String::from_utf8_lossy(&out.stderr));
        let (child, url) = serve(&data, Stdio::null());
        Server { dir, child, url }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `runtrust ARGS` as admin, against `url` (the server or a proxy in front of it).
    fn admin(&self, url: &str, args: &[&str]) -> (Option<i32>, String, String) {
        let out = Command::new(BIN)
            .args(args)
            .env("RUNTRUST_SERVER", url)
            .env("RUNTRUST_SERVER_CA", self.data().join("tls/ca.pem"))
            .env("RUNTRUST_CREDENTIAL_FILE", self.data().join("admin.credential"))
            .env("RUNTRUST_STATE_DIR", self.dir.path().join("client-state"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn client(&self) -> Client {
        Client::new(&ClientOptions {
            server: Some(self.url.clone()),
            server_ca: Some(self.data().join("tls/ca.pem")),
            credential: Some(self.data().join("admin.credential")),
        })
        .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `runtrust serve` with stdout piped (to read its address) and `stderr`; returns it and its https URL.
fn serve(data: &Path, stderr: Stdio) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(data)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let url =
        line.trim().strip_prefix("runtrust: serving on ").unwrap_or_else(|| panic!("serve said {line:?}")).to_owned();
    (child, url)
}

/// What the proxy does with each client connection.
#[derive(Clone, Copy)]
enum Mode {
    /// Relays everything, counting the bytes the server sends.
    Count,
    /// Relays the client's first chunk (its TLS ClientHello) and the server's answers, then resets the
    /// connection (RST) when the client writes again.
    Reset,
}

/// A TCP proxy on loopback in front of `upstream` (host:port).
struct Proxy {
    port: u16,
    down: Arc<AtomicUsize>,
}

impl Proxy {
    fn start(upstream: &str, mode: Mode) -> Self {
        let upstream = upstream.trim_start_matches("https://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicUsize::new(0));
        let counter = down.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let (upstream, counter) = (upstream.clone(), counter.clone());
                std::thread::spawn(move || relay(client, &upstream, mode, &counter));
            }
        });
        Proxy { port, down }
    }

    fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    fn bytes_down(&self) -> usize {
        self.down.load(Ordering::SeqCst)
    }
}

fn relay(mut client: TcpStream, upstream: &str, mode: Mode, down: &Arc<AtomicUsize>) {
    let Ok(mut server) = TcpStream::connect(upstream) else { return };
    let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let dc = down.clone();
    let back = std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        while let Ok(n) = s2.read(&mut buf) {
            // Counted before the client can see them.
            dc.fetch_add(n, Ordering::SeqCst);
            if n == 0 || c2.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = c2.shutdown(std::net::Shutdown::Write);
    });
    let mut buf = [0u8; 16384];
    let mut chunks = 0;
    loop {
        if matches!(mode, Mode::Reset) && chunks == 1 {
            // Wait for the client's next write and leave it unread: closing a socket with unread data sends
            // RST (RFC 1122 §4.2.2.13).
            let _ = client.peek(&mut buf);
            let _ = server.shutdown(std::net::Shutdown::Both);
            drop(client);
            let _ = back.join();
            return;
        }
        match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                chunks += 1;
                if server.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = server.shutdown(std::net::Shutdown::Write);
    let _ = back.join();
}

#[test]
fn a_reset_connection_is_exit_4_with_a_message_not_sigpipe() {
    let server = Server::start();
    let proxy = Proxy::start(&server.url, Mode::Reset);
    for args in [&["hosts", "list"][..], &["audit", "tail", "-n", "1"], &["--json", "policy", "list"]] {
        let (code, out, err) = server.admin(&proxy.url(), args);
        assert_eq!(code, Some(4), "{args:?}: exit {code:?} (None: killed by a signal)\nstdout: {out}\nstderr: {err}");
        assert!(err.contains("runtrust: unavailable:"), "{args:?}: {err}");
    }
    // Through no proxy, the same commands work.
    assert_eq!(server.admin(&server.url, &["hosts", "list"]).0, Some(0));
}

/// Runs runtrust under a 1 GiB address-space limit: a command that reads a whole endless file dies.
fn capped(args: &str) -> (Option<i32>, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v 1048576; exec '{BIN}' {args}"))
        .env_remove("RUNTRUST_SERVER")
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn token_files_are_read_no_further_than_the_token_cap() {
    let started = Instant::now();
    let (code, err) = capped("token inspect /dev/zero");
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("16384-byte limit"), "{err}");
    let server = Server::start();
    let keys = server.dir.path().join("keys.cose");
    let (code, _, err) = server.admin(&server.url, &["keys", "export", "--out", keys.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = capped(&format!("token verify /dev/zero --keys '{}' --issuer any", keys.display()));
    assert_eq!(code, Some(3), "{err}");
    let (code, err) = capped("token request --scope s --audience a --parent /dev/zero --out /dev/null");
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("--parent") && err.contains("limit"), "{err}");
    let (code, err) = capped(&format!(
        "exec --token /dev/zero --scope s --audience a --keys '{}' --issuer any -- true",
        keys.display()
    ));
    assert_eq!(code, Some(125), "{err}");
    assert!(err.contains("limit"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30), "reading capped files took {:?}", started.elapsed());
}

#[test]
fn audit_tail_n_downloads_only_the_last_entries() {
    let server = Server::start();
    let policy = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/web.toml")).unwrap();
    let client = server.client();
    for _ in 0..150 {
        let _: serde_json::Value =
            client.post(routes::POLICIES, &ApplyPolicy { policy: policy.clone(), signature: None }).unwrap();
    }
    let whole = Proxy::start(&server.url, Mode::Count);
    let (code, out, err) = server.admin(&whole.url(), &["--json", "audit", "tail", "--all"]);
    assert_eq!(code, Some(0), "{err}");
    let all: Vec<&str> = out.lines().collect();
    assert!(all.len() >= 150, "{} entries", all.len());

    let tail = Proxy::start(&server.url, Mode::Count);
    let (code, out, err) = server.admin(&tail.url(), &["--json", "audit", "tail", "-n", "2"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), all[all.len() - 2..], "the last two entries");
    // Both runs share the TLS handshakes' cost; the whole log is ~150 entries, the tail 2 and a checkpoint.
    assert!(
        tail.bytes_down() * 4 < whole.bytes_down(),
        "tail -n 2 downloaded {} bytes, the whole log {}",
        tail.bytes_down(),
        whole.bytes_down()
    );
}

#[test]
fn query_and_path_rejections_are_problem_json() {
    let server = Server::start();
    let client = server.client();
    for path in ["/v1/audit?from=abc", "/v1/revocations?since=-1", "/v1/audit/consistency", "/v1/lineage/%FF%FE"] {
        match client.get::<serde_json::Value>(path) {
            Err(ClientError::Denied(p)) => {
                assert_eq!((p.code.as_str(), p.status), ("bad_request", 400), "{path}: {p:?}");
            }
            other => panic!("{path}: expected a problem+json bad_request, got {other:?}"),
        }
    }
}

#[test]
fn serve_stops_on_sigterm_with_stdout_and_stderr_gone() {
    let server = Server::start();
    let data = server.dir.path().join("data2");
    let out = Command::new(BIN).args(["init", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&data).output().unwrap();
    assert!(out.status.success());
    let (mut child, url) = serve(&data, Stdio::piped());
    // Both readers go away: every later write to stdout or stderr is EPIPE.
    drop(child.stdout.take());
    drop(child.stderr.take());
    // A request the service logs (info) while its stderr is gone.
    let proxy_free = Command::new(BIN)
        .args(["audit", "checkpoint"])
        .env("RUNTRUST_SERVER", &url)
        .env("RUNTRUST_SERVER_CA", data.join("tls/ca.pem"))
        .output()
        .unwrap();
    assert_eq!(proxy_free.status.code(), Some(3), "{}", String::from_utf8_lossy(&proxy_free.stderr));
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve ignored SIGTERM with its stdout and stderr closed");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0), "serve stopped with {status:?}");
}

/// Issue 14: what an operator meets first — JSON failures, usage exit codes, a TLS trust hint, metrics of a
/// denial, help that fits on a screen, completions and the access log.
#[test]
fn json_failures_usage_codes_and_a_tls_trust_hint() {
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).env_remove("RUNTRUST_SERVER").output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // A missing credential file: a JSON object with `error` on stdout, exit 1.
    let (code, out, err) =
        run(&["--json", "--server", "https://127.0.0.1:1", "--credential", "/nonexistent/cred", "hosts", "list"]);
    assert_eq!(code, Some(1), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"));
    assert_eq!(v["error"], "error", "{v}");
    assert!(v["detail"].as_str().unwrap().contains("/nonexistent/cred"), "{v}");
    // A bad duration is a usage error (2), like any clap error; with --json a JSON object too.
    let (code, out, err) =
        run(&["--json", "token", "request", "--scope", "s", "--audience", "a", "--ttl", "5 parsecs"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(out.contains("\"usage\""), "{out}");
    let (code, out, _) = run(&["--json", "token", "request", "--no-such-flag"]);
    assert_eq!(code, Some(2));
    assert!(out.contains("\"usage\""), "{out}");
    // Help that fits on a screen, global options described once at the top.
    let (code, help, _) = run(&["audit", "tail", "--help"]);
    assert_eq!(code, Some(0));
    assert!(help.lines().count() <= 45, "{} lines:\n{help}", help.lines().count());
    assert!(!help.contains("--credential <FILE>") && help.contains("runtrust --help"), "{help}");
    let (_, top, _) = run(&["--help"]);
    assert!(top.contains("--credential <FILE>") && top.contains("RUNTRUST_CREDENTIAL_FILE"), "{top}");
    let (code, bash, _) = run(&["completions", "bash"]);
    assert_eq!(code, Some(0));
    assert!(bash.contains("_runtrust") && bash.contains("audit"), "{}", &bash[..bash.len().min(300)]);

    // A TLS trust failure (the wrong CA) is permanent: exit 1 with a hint, not 4 "unavailable".
    let server = Server::start();
    let other = tempfile::tempdir().unwrap();
    let out = Command::new(BIN).args(["init", "--data-dir"]).arg(other.path().join("d")).output().unwrap();
    assert!(out.status.success());
    let out = Command::new(BIN)
        .args(["--server", &server.url, "--server-ca"])
        .arg(other.path().join("d/tls/ca.pem"))
        .arg("--credential")
        .arg(server.data().join("admin.credential"))
        .args(["hosts", "list"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not trusted") && err.contains("--server-ca"), "{err}");
}

/// DESIGN §16: a denied request shows in `runtrust_decisions_total` with its code; /readyz is 200 while the
/// store takes writes.
#[test]
fn metrics_count_a_denial_by_code_and_readyz_is_ready() {
    let server = Server::start();
    // An admin may not ask for a challenge (attesters do): a decision, denied with a code.
    let denied = server.client().post::<_, serde_json::Value>(routes::CHALLENGE, &serde_json::json!({}));
    assert!(matches!(denied, Err(ClientError::Denied(_))), "{denied:?}");
    let metrics = server.client().get_text("/metrics").unwrap();
    let denial = metrics
        .lines()
        .find(|l| l.starts_with("runtrust_decisions_total{") && l.contains("outcome=\"deny\""))
        .unwrap_or_else(|| panic!("no denial in /metrics:\n{metrics}"));
    assert!(denial.contains("code=\""), "{denial}");
    let ready: serde_json::Value = server.client().get("/readyz").unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
}

/// The client config file (docs/design.md §9): it fills what no flag or environment variable gives; a flag
/// or the environment wins over it; a malformed file is an error naming the file and the keys.
#[test]
fn the_client_config_file_fills_in_and_flags_and_environment_win() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("client.toml");
    std::fs::copy(server.data().join("tls/ca.pem"), dir.path().join("ca.pem")).unwrap();
    std::fs::write(
        &config,
        format!(
            "server = \"{}\"\nserver_ca = \"ca.pem\"\ncredential = \"{}\"\n",
            server.url,
            server.data().join("admin.credential").display()
        ),
    )
    .unwrap();
    let run = |args: &[&str], envs: &[(&str, &str)]| {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_remove("RUNTRUST_SERVER")
            .env_remove("RUNTRUST_SERVER_CA")
            .env_remove("RUNTRUST_CREDENTIAL_FILE")
            .env("HOME", dir.path())
            .env("RUNTRUST_STATE_DIR", dir.path().join("state"))
            .env("RUNTRUST_CLIENT_CONFIG", &config);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Everything from the file.
    let (code, out, err) = run(&["--json", "principal", "list"], &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("\"admin\""), "{out}");
    // A flag wins, and so does the environment.
    let (code, _, err) = run(&["--server", "https://127.0.0.1:1", "principal", "list"], &[]);
    assert_eq!(code, Some(4), "the flag's unreachable server, not the file's: {err}");
    assert!(err.contains("127.0.0.1:1"), "{err}");
    let (code, _, err) = run(&["principal", "list"], &[("RUNTRUST_SERVER", "https://127.0.0.1:2")]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("127.0.0.1:2"), "{err}");
    // A typo is an error naming the file and the keys, never a silent default.
    std::fs::write(&config, "sever = \"https://x\"\n").unwrap();
    let (code, out, err) = run(&["--json", "principal", "list"], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("client.toml") && err.contains("keys: server"), "{err}");
    assert!(out.contains("\"error\""), "--json failures are a JSON object: {out}");
}

/// `principal rotate` (issue 14): the new credential works, the old one is refused at once, the rotation is
/// audited naming the admin.
#[test]
fn a_rotated_credential_replaces_the_old_one_at_once() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let old = server.data().join("admin.credential");
    let new = dir.path().join("admin.new");
    let run = |cred: &Path, args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env("RUNTRUST_SERVER", &server.url)
            .env("RUNTRUST_SERVER_CA", server.data().join("tls/ca.pem"))
            .env("RUNTRUST_CREDENTIAL_FILE", cred)
            .env("RUNTRUST_STATE_DIR", dir.path().join("state"))
            .env("RUNTRUST_CLIENT_CONFIG", dir.path().join("none.toml"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // RUNTRUST_CLIENT_CONFIG names a file that must exist: make it empty.
    std::fs::write(dir.path().join("none.toml"), "").unwrap();
    let (code, out, err) = run(&old, &["--json", "principal", "rotate", "admin", "--out", new.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("\"credential\": null") || out.contains("\"credential\":null"),
        "the secret only in the file: {out}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&new).unwrap().permissions().mode() & 0o777, 0o600);
    let (code, _, err) = run(&old, &["principal", "list"]);
    assert_eq!(code, Some(3), "the old credential is refused: {err}");
    assert!(err.contains("authorization_missing"), "{err}");
    let (code, out, err) = run(&new, &["--json", "audit", "tail", "-n", "5"]);
    assert_eq!(code, Some(0), "the new one works: {err}");
    assert!(out.lines().any(|l| l.contains("principal.rotate") && l.contains("\"principal\":\"admin\"")), "{out}");
    let (code, _, err) = run(&new, &["principal", "rotate", "nobody"]);
    assert_ne!(code, Some(0), "{err}");
}

/// A vendor EK CA from `shared/testdata` (public certificates).
fn vendor_ca(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/ek-ca").join(name)
}

#[test]
fn ek_anchors_and_issuer_keys_change_while_serving_audited_and_config_comments_stay() {
    let mut server = Server::start();
    let config = server.data().join("config.toml");
    let note = "# operator's note: keep this\n";
    std::fs::write(&config, format!("{note}{}", std::fs::read_to_string(&config).unwrap())).unwrap();
    let json = |out: &str| -> serde_json::Value { serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}")) };

    let (code, out, err) = server.admin(&server.url, &["--json", "ek-ca", "list"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(json(&out), serde_json::json!([]));
    let infineon = vendor_ca("INF_RSA_010RT.pem");
    let (code, out, err) = server.admin(&server.url, &["--json", "ek-ca", "add", infineon.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let added = json(&out);
    let fingerprint = added[0]["fingerprint"].as_str().unwrap().to_owned();
    assert!(added[0]["subject"].as_str().unwrap().contains("Infineon"), "{out}");
    let file = server.data().join(added[0]["file"].as_str().unwrap());
    assert!(file.is_file(), "{} written", file.display());
    let (code, _, err) = server.admin(&server.url, &["ek-ca", "add", infineon.to_str().unwrap()]);
    assert_ne!(code, Some(0), "twice is refused");
    assert!(err.contains("already a trust anchor"), "{err}");
    let (code, _, err) = server.admin(&server.url, &["ek-ca", "add", config.to_str().unwrap()]);
    assert_ne!(code, Some(0), "not a certificate: {err}");

    // Durable: a restarted service trusts it, from config.toml, which kept the operator's comment.
    let _ = server.child.kill();
    let _ = server.child.wait();
    let (child, url) = serve(&server.data(), Stdio::null());
    (server.child, server.url) = (child, url);
    let (code, out, err) = server.admin(&server.url, &["ek-ca", "list"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&fingerprint) && out.contains("expires 20"), "RFC 3339 expiry: {out}");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.starts_with(note), "{text}");

    let (code, _, err) = server.admin(&server.url, &["ek-ca", "remove", "not-hex"]);
    assert_eq!(code, Some(2), "usage: {err}");
    let (code, _, err) = server.admin(&server.url, &["ek-ca", "remove", &fingerprint]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!file.exists(), "our copy is deleted");
    let (_, out, _) = server.admin(&server.url, &["--json", "ek-ca", "list"]);
    assert_eq!(json(&out), serde_json::json!([]));

    // Issuer keys: rotate, list, retire the old one (never the signing one).
    let (code, _, err) = server.admin(&server.url, &["keys", "rotate"]);
    assert_eq!(code, Some(0), "{err}");
    let (_, out, _) = server.admin(&server.url, &["--json", "keys", "list"]);
    let keys = json(&out);
    assert_eq!(keys.as_array().unwrap().len(), 2, "{out}");
    assert_eq!(keys[1]["role"], "signing");
    let (old, signing) = (keys[0]["kid"].as_str().unwrap(), keys[1]["kid"].as_str().unwrap());
    let (code, _, err) = server.admin(&server.url, &["keys", "retire", signing, "--reason", "test"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("is the signing key"), "{err}");
    let (code, _, err) = server.admin(&server.url, &["keys", "retire", old, "--reason", "rotation finished"]);
    assert_eq!(code, Some(0), "{err}");
    let (_, out, _) = server.admin(&server.url, &["--json", "keys", "list"]);
    assert_eq!(json(&out).as_array().unwrap().len(), 1, "{out}");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.starts_with(note), "{text}");
    assert_eq!(text.matches("[[issuer.keys]]").count(), 1, "{text}");

    let (_, out, _) = server.admin(&server.url, &["--json", "audit", "tail", "-n", "10"]);
    for event in ["ek_ca.add", "ek_ca.remove", "keys.rotate", "keys.retire"] {
        assert!(out.contains(&format!("\"event\":\"{event}\"")), "{event} audited: {out}");
    }
}
