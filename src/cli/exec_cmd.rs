//! `runtrust exec`: the execution gateway (DESIGN §2 stage 7, §9). Every check passes before the command
//! starts, in this order: the token verifies offline; the runtime binding (a fresh quote by the token's
//! cnf AK carrying its pcrDigest); the online check with the service (revocation, single use), which also
//! records the start. Any failure exits 125 and the command never starts. Then the command runs with
//! stdio and signals passed through; its end is reported and its exit status returned.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use runtrust_attestation::DenialCode;

use super::token_cmd::verify_token;
use super::{report, CliError, GlobalOpts};
use crate::api::{now_unix, ExecEndRequest, ExecStartRequest, ExecStartResponse};
use crate::client::gateway::{argv_sha256, prove_binding};
use crate::client::ClientError;
use crate::token::Expectations;
use crate::tpm::TssTpm;

/// DESIGN §9: a denied or unverifiable exec exits 125 without starting the command.
pub const DENIED: u8 = 125;

#[derive(clap::Args, Debug)]
#[command(after_help = "Checks, in order, before CMD starts (any failure: exit 125, CMD never started):\n\
  1. the token verifies offline: issuer signature (keys cached in the state dir),\n     \
nbf/exp, audience, and --scope within the token's scope\n\
  2. runtime binding: a fresh quote by this TPM, under a nonce made here, signed by\n     \
the token's cnf AK, with the token's pcrDigest (another TPM:\n     \
runtime_identity_mismatch; PCRs changed since issuance: pcr_mismatch)\n\
  3. online check with the service: nothing revoked (token, ancestors, hosts,\n     \
policy); a single-use token is spent here (second use: token_replayed;\n     \
service unreachable: verifier_unavailable; there is no offline grace)\n\n\
Then CMD runs with stdin, stdout and stderr inherited. SIGTERM, SIGHUP, SIGUSR1 and\n\
SIGUSR2 are passed on (SIGINT and SIGQUIT too, unless exec runs in a terminal's\n\
foreground, where the terminal sends them to CMD itself). exec exits with CMD's status\n\
(128+N if a signal N ended it, 127 if it could not start). Start and end (status,\n\
duration, SHA-256 of the argv) are recorded in the audit log.\n\n\
Example:\n  runtrust exec --token web.token --scope deploy/web/api --audience gw-1 -- ./deploy.sh --prod")]
pub struct ExecArgs {
    /// The execution token (runtrust token request --out).
    #[arg(long, value_name = "FILE")]
    token: PathBuf,
    /// The scope this command runs under; it must be within the token's scope.
    #[arg(long)]
    scope: String,
    /// This gateway's audience id; the token's aud must equal it. Default: $RUNTRUST_AUDIENCE; when neither
    /// is given the audience is not checked (a warning says so).
    #[arg(long, env = "RUNTRUST_AUDIENCE")]
    audience: Option<String>,
    /// Issuer keys (keys export output) instead of the cached ones.
    #[arg(long, value_name = "FILE")]
    keys: Option<PathBuf>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// What the checks granted.
struct Grant {
    cti: String,
    execution_id: String,
    client: crate::client::Client,
}

pub fn run(a: ExecArgs, g: &GlobalOpts) -> ExitCode {
    let grant = match authorize(&a, g) {
        Ok(grant) => grant,
        Err(e) => {
            report(e, g);
            return ExitCode::from(DENIED);
        }
    };
    let started = Instant::now();
    let status = match spawn_and_wait(&a.command) {
        Ok(s) => s,
        Err(e) => {
            // Allowed, but it could not start (not found, not executable): report it as ended, exit 127.
            eprintln!("runtrust: exec: {e:#}");
            end(&grant, Some(127), None, started);
            return ExitCode::from(127);
        }
    };
    use std::os::unix::process::ExitStatusExt;
    let (code, signal) = (status.code(), status.signal());
    end(&grant, code, signal, started);
    let exit = match (code, signal) {
        (Some(c), _) => u8::try_from(c & 0xff).unwrap_or(1),
        (None, Some(s)) => u8::try_from(128 + (s & 0x7f)).unwrap_or(1),
        (None, None) => 1,
    };
    ExitCode::from(exit)
}

/// The three checks; the start is recorded by the last.
fn authorize(a: &ExecArgs, g: &GlobalOpts) -> Result<Grant, CliError> {
    let bytes = std::fs::read(&a.token).with_context(|| format!("reading {}", a.token.display()))?;
    if a.audience.is_none() {
        eprintln!("runtrust: warning: no --audience (or RUNTRUST_AUDIENCE): the token's audience is not checked");
    }
    // 1. Offline verification.
    let now = i64::try_from(now_unix()).unwrap_or(i64::MAX);
    let expect = Expectations { now, audience: a.audience.as_deref(), scope: Some(&a.scope), leeway_secs: 0 };
    let claims = verify_token(g, &bytes, &expect, a.keys.as_deref())?;
    // 2. Runtime binding.
    let mut tpm = TssTpm::open(g.tpm_options()).map_err(|e| {
        CliError::denied(DenialCode::VerifierUnavailable, format!("cannot reach the TPM to prove the binding: {e}"))
    })?;
    prove_binding(&mut tpm, &claims).map_err(|e| CliError::Denied {
        code: e.code().as_str().to_owned(),
        detail: e.to_string(),
        diagnostics: e.diagnostics(),
    })?;
    drop(tpm);
    // 3. Online check (records the start).
    let client = g.client()?;
    let req = ExecStartRequest {
        token: bytes,
        scope: a.scope.clone(),
        audience: a.audience.clone(),
        argv_sha256: argv_sha256(&a.command),
    };
    let started: ExecStartResponse = client.post("/v1/executions", &req).map_err(|e| match e {
        ClientError::Unavailable { .. } => CliError::denied(
            DenialCode::VerifierUnavailable,
            format!("{e}; the online check (revocation, single use) cannot be made, so nothing runs"),
        ),
        e => CliError::from(e),
    })?;
    tracing::info!(cti = %started.cti, execution = %started.execution_id, "execution allowed");
    Ok(Grant { cti: started.cti, execution_id: started.execution_id, client })
}

/// Runs the command with inherited stdio and passes signals sent to the gateway on to it: SIGTERM, SIGHUP,
/// SIGUSR1, SIGUSR2 always; SIGINT and SIGQUIT only when the gateway is not in the foreground of a terminal
/// (in the foreground, the terminal already delivers them to the command, which shares its process group,
/// and a second copy would make many programs skip their graceful shutdown).
fn spawn_and_wait(argv: &[OsString]) -> anyhow::Result<std::process::ExitStatus> {
    use tokio::signal::unix::{signal, SignalKind};
    let (program, args) = argv.split_first().context("no command given")?;
    // SAFETY: plain queries of this process's terminal state; no memory is passed.
    let foreground = unsafe { libc::isatty(0) == 1 && libc::tcgetpgrp(0) == libc::getpgrp() };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(async {
        // Handlers first: a signal that arrives while the command starts is passed on, not fatal to us.
        let handler = |k: SignalKind| signal(k).context("installing signal handlers");
        let mut int = handler(SignalKind::interrupt())?;
        let mut term = handler(SignalKind::terminate())?;
        let mut hup = handler(SignalKind::hangup())?;
        let mut quit = handler(SignalKind::quit())?;
        let mut usr1 = handler(SignalKind::user_defined1())?;
        let mut usr2 = handler(SignalKind::user_defined2())?;
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .spawn()
            .with_context(|| format!("starting {}", program.to_string_lossy()))?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok());
        loop {
            let sig = tokio::select! {
                status = child.wait() => return status.context("waiting for the command"),
                _ = int.recv() => libc::SIGINT,
                _ = term.recv() => libc::SIGTERM,
                _ = hup.recv() => libc::SIGHUP,
                _ = quit.recv() => libc::SIGQUIT,
                _ = usr1.recv() => libc::SIGUSR1,
                _ = usr2.recv() => libc::SIGUSR2,
            };
            if foreground && (sig == libc::SIGINT || sig == libc::SIGQUIT) {
                continue;
            }
            if let Some(pid) = pid {
                // SAFETY: kill(2) on the pid of the child we spawned; no memory is touched.
                unsafe { libc::kill(pid, sig) };
            }
        }
    })
}

/// Reports the end; the command has run, so a failure here is a warning, not a change of exit status.
fn end(grant: &Grant, exit_code: Option<i32>, signal: Option<i32>, started: Instant) {
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let body = ExecEndRequest { exit_code, signal, duration_ms };
    let path = format!("/v1/executions/{}/{}/end", grant.cti, grant.execution_id);
    if let Err(e) = grant.client.post::<_, serde_json::Value>(&path, &body) {
        eprintln!("runtrust: warning: could not report the end of execution {}: {e}", grant.execution_id);
    }
}
