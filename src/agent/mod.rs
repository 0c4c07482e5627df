//! The host agent (docs/design.md §14): a long-running daemon that owns this host's TPM for runtrust. It
//! opens the TPM once and keeps the EK and AK loaded, serves local clients on a Unix socket (peers
//! authorized by SO_PEERCRED, [`peer`]), and answers quote requests in batches: requests within one batch
//! window share one TPM2_Quote whose qualifyingData is the Merkle root of their nonces, each requester
//! getting its inclusion proof ([`batcher`]).
//!
//! Clients use it through [`AgentTpm`], a [`crate::tpm::Tpm`] over the socket, so the host flows (token
//! request, enrollment) and the gateway's runtime binding work unchanged through the agent or without it.

mod batcher;
mod client;
mod peer;
mod protocol;
mod server;
#[cfg(test)]
mod tests;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use batcher::BatchConfig;
pub use client::{status, AgentTpm};
pub use peer::{PeerCred, PeerPolicy, PeerRefused};
pub use protocol::{Answer, Failure, FailureKind, QuoteAnswer, Request, Status};

use crate::tpm::{Tpm, TpmError};

/// Where the agent listens unless told otherwise (docs/design.md §9, §14).
pub const DEFAULT_SOCKET: &str = "/run/runtrust/agent.sock";
/// The default batch window.
pub const DEFAULT_BATCH_WINDOW: Duration = Duration::from_millis(20);

/// How the agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub socket: PathBuf,
    pub batch: BatchConfig,
    /// Extra uids and gids; `own_uid` is set from the socket's owner when the agent binds it.
    pub peers: PeerPolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{path}: {detail}")]
    Socket { path: PathBuf, detail: String },
    #[error("another agent already answers on {0}; stop it first")]
    AlreadyRunning(PathBuf),
    #[error("the agent cannot use the TPM: {0}")]
    Tpm(#[from] TpmError),
}

impl AgentError {
    /// A TPM that cannot be reached is "unavailable" (exit code 4).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AgentError::Tpm(e) if e.is_unavailable())
    }
}

fn socket_error(path: &Path) -> impl Fn(std::io::Error) -> AgentError + '_ {
    move |e| AgentError::Socket { path: path.to_owned(), detail: e.to_string() }
}

/// Binds the socket: its directory is created if missing; a stale socket (nothing answers) is replaced,
/// a live one is refused; the socket is made 0660, so only its owner and group can connect at all.
fn bind(path: &Path) -> Result<tokio::net::UnixListener, AgentError> {
    let err = socket_error(path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(&err)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(AgentError::AlreadyRunning(path.to_owned()));
            }
            std::fs::remove_file(path).map_err(&err)?;
        }
        Ok(_) => return Err(AgentError::Socket { path: path.to_owned(), detail: "exists and is not a socket".into() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(&err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(&err)?;
    Ok(listener)
}

/// Runs the agent until `stop` resolves (the CLI passes SIGTERM/SIGINT): opens the TPM on its own thread
/// (`open`; called again if the TPM loses the agent's keys), binds the socket, calls `ready`, serves. On stop it stops accepting, removes the socket,
/// answers what is pending and closes the TPM (flushing its transient objects).
pub async fn serve(
    config: AgentConfig,
    open: impl FnMut() -> Result<Box<dyn Tpm>, TpmError> + Send + 'static,
    ready: impl FnOnce(&Path),
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    let stats = Arc::new(Mutex::new(batcher::Stats::new(&config.batch)));
    let (jobs, tpm_thread) = batcher::spawn(Box::new(open), config.batch, stats.clone())?;
    let bound = bind(&config.socket).and_then(|l| {
        // The agent's own uid is the socket's owner (the effective uid that created it): no libc call.
        let meta = std::fs::metadata(&config.socket).map_err(socket_error(&config.socket))?;
        Ok((l, meta.uid()))
    });
    let (listener, own_uid) = match bound {
        Ok(b) => b,
        Err(e) => {
            drop(jobs);
            let _ = tokio::task::spawn_blocking(move || tpm_thread.join()).await;
            return Err(e);
        }
    };
    let peers = PeerPolicy { own_uid, ..config.peers.clone() };
    tracing::info!(
        socket = %config.socket.display(),
        window_ms = config.batch.window.as_millis() as u64,
        max_quotes_per_second = ?config.batch.max_quotes_per_second,
        allowed = %peers.describe(),
        "runtrust agent listening"
    );
    ready(&config.socket);
    let shared = Arc::new(server::Shared { jobs: Mutex::new(Some(jobs)), peers, stats });
    server::accept_loop(listener, shared.clone(), stop).await;
    tracing::info!("stopping: answering pending requests, closing the TPM");
    let _ = std::fs::remove_file(&config.socket);
    shared.close();
    let _ = tokio::task::spawn_blocking(move || tpm_thread.join()).await;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
