//! A real software TPM per test: `swtpm_setup` (EK and platform certificates from a private local CA)
//! into a temp dir, then `swtpm socket` on free loopback ports, shut down (TPM2_Shutdown) and stopped when the
//! fixture drops.
//!
//! Missing tools fail the test with an install hint: these tests never pass by skipping.

// Test support only: a failed assumption is a failed test (workspace lints in Cargo.toml).
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod eventlog;
pub mod proxy;
mod reset_proxy;
pub mod webdriver;

pub use reset_proxy::ResetProxy;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use proxy::TpmProxy;

const INSTALL_HINT: &str = "install it with: sudo apt-get install swtpm swtpm-tools tpm2-tools \
(or run scripts/install-deps.sh)";

/// Checks that `tools` are on `path` (a PATH value); the error says how to install them.
pub fn check_tools(tools: &[&str], path: &str) -> Result<(), String> {
    let missing: Vec<&str> =
        tools.iter().copied().filter(|t| !std::env::split_paths(path).any(|d| d.join(t).is_file())).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("{} not found on PATH: {INSTALL_HINT}", missing.join(", ")))
    }
}

fn require(tools: &[&str]) {
    let path = std::env::var("PATH").unwrap_or_default();
    if let Err(e) = check_tools(tools, &path) {
        panic!("swtpm-tests need a software TPM and tpm2-tools: {e}");
    }
}

/// Options for a new simulated TPM.
#[derive(Clone, Debug)]
pub struct SwTpmBuilder {
    banks: String,
}

impl Default for SwTpmBuilder {
    fn default() -> Self {
        Self { banks: "sha1,sha256".into() }
    }
}

impl SwTpmBuilder {
    /// PCR banks to activate (swtpm_setup --pcr-banks), e.g. "sha256".
    pub fn banks(mut self, banks: &str) -> Self {
        self.banks = banks.into();
        self
    }

    pub fn start(self) -> SwTpm {
        require(&["swtpm", "swtpm_setup", "swtpm_localca"]);
        let dir = tempfile::Builder::new().prefix("runtrust-swtpm-").tempdir().expect("temp dir");
        let root = dir.path().to_path_buf();
        let (state, ca) = (root.join("state"), root.join("localca"));
        std::fs::create_dir_all(&state).expect("state dir");
        std::fs::create_dir_all(&ca).expect("ca dir");
        write(
            &root.join("swtpm-localca.conf"),
            &format!(
                "statedir = {0}\nsigningkey = {0}/signkey.pem\nissuercert = {0}/issuercert.pem\ncertserial = {0}/certserial\n",
                ca.display()
            ),
        );
        write(
            &root.join("swtpm-localca.options"),
            "--platform-manufacturer runtrust\n--platform-version 2.1\n--platform-model swtpm\n",
        );
        write(
            &root.join("swtpm_setup.conf"),
            &format!(
                "create_certs_tool = swtpm_localca\ncreate_certs_tool_config = {0}/swtpm-localca.conf\n\
                 create_certs_tool_options = {0}/swtpm-localca.options\n",
                root.display()
            ),
        );
        let out = Command::new("swtpm_setup")
            .args(["--tpm2", "--create-ek-cert", "--create-platform-cert", "--overwrite"])
            .arg("--tpmstate")
            .arg(&state)
            .arg("--config")
            .arg(root.join("swtpm_setup.conf"))
            .args(["--pcr-banks", &self.banks])
            .output()
            .expect("run swtpm_setup");
        assert!(
            out.status.success(),
            "swtpm_setup failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for _ in 0..20 {
            // The swtpm TCTI reaches the control channel at port + 1.
            let Some(port) = free_port_pair() else { continue };
            if let Some(child) = spawn_swtpm(&state, port) {
                return SwTpm { dir, child, port };
            }
        }
        panic!("could not start swtpm on a free loopback port");
    }
}

/// `swtpm socket` on `state`, TPM port `port` and control port `port + 1`; None if it did not listen (the port
/// was taken in the meantime).
fn spawn_swtpm(state: &Path, port: u16) -> Option<Child> {
    let mut child = Command::new("swtpm")
        .args(["socket", "--tpm2", "--flags", "not-need-init,startup-clear"])
        .arg("--tpmstate")
        .arg(format!("dir={}", state.display()))
        .arg("--server")
        .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
        .arg("--ctrl")
        .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn swtpm");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// A loopback port that is free right now.
pub fn free_port() -> Option<u16> {
    Some(TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port())
}

/// A port P such that P and P + 1 are both free right now.
fn free_port_pair() -> Option<u16> {
    let l = TcpListener::bind("127.0.0.1:0").ok()?;
    let port = l.local_addr().ok()?.port();
    let next = port.checked_add(1)?;
    TcpListener::bind(("127.0.0.1", next)).ok()?;
    Some(port)
}

/// A running swtpm, killed on drop.
pub struct SwTpm {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl SwTpm {
    /// A new TPM with sha1 and sha256 banks and RSA-2048 + ECC P-384 EK certificates.
    pub fn start() -> SwTpm {
        SwTpmBuilder::default().start()
    }

    pub fn builder() -> SwTpmBuilder {
        SwTpmBuilder::default()
    }

    /// The TCTI string for tss-esapi and tpm2-tools.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// swtpm's server port (its control channel is at port + 1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A slow-TPM proxy in front of this TPM: each command in `delays` (TPM_CC, see [`proxy::cc`]) waits that
    /// long before it reaches swtpm, one command at a time like a chip. Its [`TpmProxy::tcti`] is the TCTI
    /// to use; it also counts commands and injects response codes.
    pub fn with_delays(&self, delays: &[(u32, Duration)]) -> TpmProxy {
        TpmProxy::start(self.port, delays).expect("start the TPM proxy")
    }

    /// A proxy without delays, to count commands or inject response codes.
    pub fn proxy(&self) -> TpmProxy {
        self.with_delays(&[])
    }

    /// A host state directory (AK blobs) that belongs to this TPM.
    pub fn host_state_dir(&self) -> PathBuf {
        self.dir.path().join("host-state")
    }

    /// The local CA's self-signed root certificate (PEM).
    pub fn ca_root(&self) -> PathBuf {
        self.dir.path().join("localca/swtpm-localca-rootca-cert.pem")
    }

    /// The local CA's intermediate, which signed the EK certificates (PEM).
    pub fn ca_intermediate(&self) -> PathBuf {
        self.dir.path().join("localca/issuercert.pem")
    }

    /// A scratch directory that lives as long as this TPM.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join("scratch").join(name);
        std::fs::create_dir_all(&p).expect("scratch dir");
        p
    }

    /// Runs a tpm2-tools command against this TPM; panics with its output on failure.
    pub fn tpm2(&self, tool: &str, args: &[&str], cwd: &Path) -> Vec<u8> {
        require(&[tool]);
        let out = Command::new(tool)
            .args(args)
            .current_dir(cwd)
            .env("TPM2TOOLS_TCTI", self.tcti())
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(out.status.success(), "{tool} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }
}

impl SwTpm {
    /// TPM2_Shutdown(TPM_SU_CLEAR) (TPM 2.0 Part 3 §9.4), sent raw: the TPM saves its clock, so it is still
    /// `safe` after the next start. Without it (power loss, SIGKILL) the next start reports safe = NO.
    pub fn tpm_shutdown(&self) -> Result<(), String> {
        use std::io::{Read, Write};
        let mut c = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        c.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
        // tag TPM_ST_NO_SESSIONS, size 12, TPM_CC_Shutdown, TPM_SU_CLEAR
        c.write_all(&[0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x45, 0, 0]).map_err(|e| e.to_string())?;
        let mut answer = [0u8; 10];
        c.read_exact(&mut answer).map_err(|e| e.to_string())?;
        match answer[6..] {
            [0, 0, 0, 0] => Ok(()),
            _ => Err(format!("TPM2_Shutdown answered {}", hex(&answer))),
        }
    }

    /// Stops swtpm and starts it again on the same state and ports (a reboot of the host): `clean` sends
    /// TPM2_Shutdown first, as an orderly OS shutdown does; otherwise it is a power loss (SIGKILL).
    pub fn restart(&mut self, clean: bool) {
        self.restart_with(clean, |_| {});
    }

    /// As [`SwTpm::restart`], running `between` on the TPM's state directory while swtpm is down (to save or
    /// restore a copy of it, as a VM snapshot would).
    pub fn restart_with(&mut self, clean: bool, between: impl FnOnce(&Path)) {
        if clean {
            self.tpm_shutdown().unwrap_or_else(|e| panic!("TPM2_Shutdown: {e}"));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let state = self.dir.path().join("state");
        between(&state);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(child) = spawn_swtpm(&state, self.port) {
                self.child = child;
                return;
            }
            assert!(Instant::now() < deadline, "swtpm did not restart on port {}", self.port);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies the files of directory `from` into `to` (created if missing): a TPM state snapshot.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("snapshot dir");
    for f in std::fs::read_dir(from).expect("state dir").map_while(Result::ok) {
        if f.path().is_file() {
            std::fs::copy(f.path(), to.join(f.file_name())).expect("copy state file");
        }
    }
}

/// A clean shutdown first (as `scripts/swtpm.sh stop` does), then the process goes.
impl Drop for SwTpm {
    fn drop(&mut self) {
        let _ = self.tpm_shutdown();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `runtrust` binary of this workspace, built on first use if a plain `cargo test` has not.
pub fn runtrust_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/<test-exe> → target/<profile>/runtrust
        let exe = std::env::current_exe().expect("current exe");
        let profile_dir = exe.parent().and_then(Path::parent).expect("target dir").to_path_buf();
        let bin = profile_dir.join("runtrust");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--quiet", "-p", "runtrust", "--bin", "runtrust"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo build runtrust");
        assert!(status.success(), "building the runtrust binary failed");
        assert!(bin.is_file(), "{} missing after build", bin.display());
        bin
    })
    .clone()
}

/// Output of a `runtrust` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl SwTpm {
    /// Runs `runtrust ARGS` against this TPM with this TPM's host state dir.
    pub fn runtrust(&self, args: &[&str]) -> Run {
        self.runtrust_via(&self.tcti(), args)
    }

    /// Runs `runtrust ARGS` with this TPM's host state dir, reaching the TPM through `tcti` (a proxy's).
    pub fn runtrust_via(&self, tcti: &str, args: &[&str]) -> Run {
        let out = Command::new(runtrust_bin())
            .args(args)
            .env("RUNTRUST_TCTI", tcti)
            .env("RUNTRUST_STATE_DIR", self.host_state_dir())
            .env("RUNTRUST_AGENT", self.dir.path().join("no-agent.sock"))
            .env_remove("TPM2TOOLS_TCTI")
            .output()
            .expect("run runtrust");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// A runtrust service (`runtrust init` + `runtrust serve`) in a temp dir, stopped on drop.
pub struct Service {
    dir: tempfile::TempDir,
    child: Option<Child>,
    url: String,
    credentials: std::cell::Cell<u32>,
    /// `serve --listen` (replicas); None: the config's address.
    listen: Option<String>,
}

impl Service {
    /// `runtrust init` with these EK trust anchors (PEM files), then `serve`.
    pub fn start(ek_ca: &[PathBuf]) -> Service {
        Self::start_configured(ek_ca, |_| {})
    }

    /// As [`Service::start`], with `edit` applied to config.toml's text before `serve`.
    pub fn start_configured(ek_ca: &[PathBuf], edit: impl FnOnce(&mut String)) -> Service {
        Self::start_init(ek_ca, &[], edit)
    }

    /// As [`Service::start`], on the PostgreSQL database `url` (`init --store URL`).
    pub fn start_on(ek_ca: &[PathBuf], url: &str) -> Service {
        Self::start_init(ek_ca, &["--store", url], |_| {})
    }

    /// Another `serve` on a copy of this service's data directory (config, keys, TLS material: the store
    /// must be shared), listening on its own port (`serve --listen`).
    pub fn replica(&self) -> Service {
        let dir = tempfile::Builder::new().prefix("runtrust-replica-").tempdir().expect("temp dir");
        let status = Command::new("cp").arg("-a").arg(self.data_dir()).arg(dir.path().join("data")).status();
        assert!(status.is_ok_and(|s| s.success()), "copying the data directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let listen = Some(format!("127.0.0.1:{port}"));
        let mut s = Service { dir, child: None, url: String::new(), credentials: std::cell::Cell::new(0), listen };
        s.restart();
        s
    }

    fn start_init(ek_ca: &[PathBuf], extra: &[&str], edit: impl FnOnce(&mut String)) -> Service {
        let dir = tempfile::Builder::new().prefix("runtrust-service-").tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let mut args: Vec<String> = vec!["init".into(), "--data-dir".into(), data.display().to_string()];
        args.extend(["--listen".into(), "127.0.0.1:0".into()]);
        args.extend(extra.iter().map(|a| a.to_string()));
        for ca in ek_ca {
            args.extend(["--ek-ca".into(), ca.display().to_string()]);
        }
        let out = Command::new(runtrust_bin()).args(&args).output().expect("runtrust init");
        assert!(out.status.success(), "runtrust init: {}", String::from_utf8_lossy(&out.stderr));
        let cfg = data.join("config.toml");
        let mut text = std::fs::read_to_string(&cfg).expect("config.toml");
        edit(&mut text);
        std::fs::write(&cfg, text).expect("config.toml");
        let mut s =
            Service { dir, child: None, url: String::new(), credentials: std::cell::Cell::new(0), listen: None };
        s.restart();
        s
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// (Re)starts `runtrust serve`; waits until it listens.
    pub fn restart(&mut self) {
        self.restart_with(&[]);
    }

    /// (Re)starts `runtrust serve ARGS`; waits until it listens.
    pub fn restart_with(&mut self, args: &[&str]) {
        assert!(self.child.is_none(), "already running");
        let mut serve = Command::new(runtrust_bin());
        serve.args(["serve", "--data-dir"]).arg(self.data_dir());
        if let Some(listen) = &self.listen {
            serve.args(["--listen", listen]);
        }
        let mut child = serve
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("runtrust serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("runtrust: serving on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => self.url = url,
            Err(_) => {
                let _ = child.kill();
                panic!("runtrust serve did not start within 30 s");
            }
        }
        self.child = Some(child);
    }

    /// `runtrust serve ARGS` expected to refuse to start: its exit and output (code -1 if it was still
    /// running after 30 s, then killed).
    pub fn serve_refused(&self, args: &[&str]) -> Run {
        assert!(self.child.is_none(), "already running");
        let mut child = Command::new(runtrust_bin())
            .args(["serve", "--data-dir"])
            .arg(self.data_dir())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runtrust serve");
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let out = child.wait_with_output().expect("wait for serve");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// SIGKILL: a crash, no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait: a graceful stop.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        c.wait().expect("wait for serve")
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn ca(&self) -> PathBuf {
        self.data_dir().join("tls/ca.pem")
    }

    pub fn admin_credential(&self) -> PathBuf {
        self.data_dir().join("admin.credential")
    }

    /// `runtrust ARGS` as a client of this service (and, if given, on `tpm`), not started yet.
    pub fn command(&self, tpm: Option<&SwTpm>, credential: Option<&Path>, args: &[&str]) -> Command {
        let mut cmd = Command::new(runtrust_bin());
        cmd.args(args)
            .env("RUNTRUST_SERVER", &self.url)
            .env("RUNTRUST_SERVER_CA", self.ca())
            .env_remove("RUNTRUST_CREDENTIAL_FILE")
            .env_remove("TPM2TOOLS_TCTI")
            // No host agent unless a test starts one (a system agent at the default socket never joins in).
            .env("RUNTRUST_AGENT", self.dir.path().join("no-agent.sock"));
        if let Some(c) = credential {
            cmd.env("RUNTRUST_CREDENTIAL_FILE", c);
        }
        match tpm {
            Some(t) => cmd.env("RUNTRUST_TCTI", t.tcti()).env("RUNTRUST_STATE_DIR", t.host_state_dir()),
            // Clients without a TPM still cache issuer keys: keep them with this service, not in $HOME.
            None => cmd.env("RUNTRUST_STATE_DIR", self.dir.path().join("client-state")),
        };
        cmd
    }

    /// Runs `runtrust ARGS` as a client of this service (and, if given, on `tpm`).
    pub fn client(&self, tpm: Option<&SwTpm>, credential: Option<&Path>, args: &[&str]) -> Run {
        let out = self.command(tpm, credential, args).output().expect("run runtrust");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `runtrust principal add` as admin; returns the new credential's file.
    pub fn add_principal(&self, name: &str, role: &str) -> PathBuf {
        self.add_principal_tagged(name, role, &[])
    }

    /// An attester principal that confers `tags` on the host it enrolls (docs/design.md §5).
    pub fn add_attester(&self, name: &str, tags: &[&str]) -> PathBuf {
        self.add_principal_tagged(name, "attester", tags)
    }

    /// `runtrust principal add NAME --role ROLE --tag T...` as admin; returns the new credential's file.
    pub fn add_principal_tagged(&self, name: &str, role: &str, tags: &[&str]) -> PathBuf {
        let mut args = vec!["principal", "add", name, "--role", role];
        for t in tags {
            args.extend(["--tag", t]);
        }
        let r = self.client(None, Some(&self.admin_credential()), &args);
        assert_eq!(r.code, 0, "principal add: {r:?}");
        let credential = r.stdout.lines().last().expect("credential line").trim().to_owned();
        let n = self.credentials.get() + 1;
        self.credentials.set(n);
        let path = self.dir.path().join(format!("{name}-{n}.credential"));
        std::fs::write(&path, format!("{credential}\n")).expect("write credential");
        path
    }

    /// The audit log as admin (`GET /v1/audit`), via `runtrust audit tail --json`.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        let r = self.client(None, Some(&self.admin_credential()), &["--json", "audit", "tail", "-n", "100000"]);
        assert_eq!(r.code, 0, "audit tail: {r:?}");
        r.stdout.lines().map(|l| serde_json::from_str(l).expect("audit JSON line")).collect()
    }

    /// `runtrust hosts list --json` as admin.
    pub fn hosts(&self) -> Vec<serde_json::Value> {
        let r = self.client(None, Some(&self.admin_credential()), &["--json", "hosts", "list"]);
        assert_eq!(r.code, 0, "hosts list: {r:?}");
        serde_json::from_str(&r.stdout).expect("hosts JSON")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The PostgreSQL server of the tests (scripts/test.sh starts a throwaway one): RUNTRUST_TEST_POSTGRES, else
/// the cluster scripts/pg.sh runs. Without one the test fails, saying how to get one.
pub fn postgres_url() -> String {
    if let Ok(url) = std::env::var("RUNTRUST_TEST_POSTGRES") {
        return url;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg.sh");
    match Command::new(&script).arg("url").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        _ => panic!(
            "these tests need a PostgreSQL server and none is reachable: install it (apt-get install postgresql), \
             then scripts/pg.sh start and export RUNTRUST_TEST_POSTGRES=$(scripts/pg.sh url) — scripts/test.sh does both"
        ),
    }
}

/// A new, empty database on the test server; its URL.
pub fn fresh_database() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let base = postgres_url();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let name = format!("rt_{}_{nanos}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
    let mut client = postgres::Client::connect(&base, postgres::NoTls)
        .unwrap_or_else(|e| panic!("PostgreSQL at {base}: {e} (scripts/pg.sh start; apt-get install postgresql)"));
    client.batch_execute(&format!("CREATE DATABASE {name}")).expect("CREATE DATABASE");
    let (server, _db) = base.split('?').next().and_then(|u| u.rsplit_once('/')).expect("a URL ending in /DB");
    format!("{server}/{name}")
}
