//! Running a granted command (docs/design.md §2 stage 7): stdio inherited, signals passed on, the end
//! reported to the service.

use std::ffi::OsString;
use std::time::{Duration, Instant};

use super::Grant;
use crate::api::{routes, ExecEndRequest};
use crate::client::ClientError;

/// How the command ended.
#[derive(Debug)]
pub enum Outcome {
    /// It ran: its exit code, or the signal that ended it.
    Ended { exit_code: Option<i32>, signal: Option<i32>, duration: Duration },
    /// Allowed, but it could not start (not found, not executable).
    NotStarted { error: String, duration: Duration },
}

impl Outcome {
    /// The gateway's own exit status: the command's, 128+N for signal N, 127 when it could not start.
    pub fn exit_status(&self) -> u8 {
        match self {
            Outcome::Ended { exit_code: Some(c), .. } => u8::try_from(c & 0xff).unwrap_or(1),
            Outcome::Ended { exit_code: None, signal: Some(s), .. } => u8::try_from(128 + (s & 0x7f)).unwrap_or(1),
            Outcome::Ended { .. } => 1,
            Outcome::NotStarted { .. } => 127,
        }
    }
}

impl Grant {
    /// Runs `argv` to its end.
    pub fn run(&self, argv: &[OsString]) -> Outcome {
        let started = Instant::now();
        match spawn_and_wait(argv) {
            Ok(status) => {
                use std::os::unix::process::ExitStatusExt;
                Outcome::Ended { exit_code: status.code(), signal: status.signal(), duration: started.elapsed() }
            }
            Err(error) => Outcome::NotStarted { error, duration: started.elapsed() },
        }
    }

    /// Reports the end to the service. The command has run: a failure here changes nothing of its status.
    pub fn finish(&self, outcome: &Outcome) -> Result<(), ClientError> {
        let (exit_code, signal, duration) = match outcome {
            Outcome::Ended { exit_code, signal, duration } => (*exit_code, *signal, *duration),
            Outcome::NotStarted { duration, .. } => (Some(127), None, *duration),
        };
        let duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let body = ExecEndRequest { exit_code, signal, duration_ms };
        let path = routes::path(routes::EXECUTION_END, &[&self.cti, &self.execution_id]);
        // Allowed under the offline grace: the service never saw the start, there is nothing to end.
        let Some(client) = &self.client else { return Ok(()) };
        client.post::<_, serde_json::Value>(&path, &body).map(|_| ())
    }
}

/// Runs the command with inherited stdio and passes signals sent to the gateway on to it: SIGTERM, SIGHUP,
/// SIGUSR1, SIGUSR2 always; SIGINT and SIGQUIT only when the gateway is not in the foreground of a terminal
/// (in the foreground, the terminal already delivers them to the command, which shares its process group,
/// and a second copy would make many programs skip their graceful shutdown).
#[allow(unsafe_code)]
fn spawn_and_wait(argv: &[OsString]) -> Result<std::process::ExitStatus, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let (program, args) = argv.split_first().ok_or("no command given")?;
    // SAFETY: plain queries of this process's terminal state; no memory is passed.
    let foreground = unsafe { libc::isatty(0) == 1 && libc::tcgetpgrp(0) == libc::getpgrp() };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    rt.block_on(async {
        // Handlers first: a signal that arrives while the command starts is passed on, not fatal to us.
        let handler = |k: SignalKind| signal(k).map_err(|e| format!("installing signal handlers: {e}"));
        let mut int = handler(SignalKind::interrupt())?;
        let mut term = handler(SignalKind::terminate())?;
        let mut hup = handler(SignalKind::hangup())?;
        let mut quit = handler(SignalKind::quit())?;
        let mut usr1 = handler(SignalKind::user_defined1())?;
        let mut usr2 = handler(SignalKind::user_defined2())?;
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", program.to_string_lossy()))?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok());
        loop {
            let sig = tokio::select! {
                status = child.wait() => return status.map_err(|e| format!("waiting for the command: {e}")),
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
