//! The socket side (docs/design.md §14): accept local clients, authorize each by its kernel-reported
//! credentials, read bounded request lines, hand TPM work to the TPM thread and write the answers.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runtrust_attestation::PcrSelection;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{oneshot, Semaphore};

use super::batcher::{count, Job, OpAnswer, Stats, TpmOp};
use super::peer::{PeerCred, PeerPolicy};
use super::protocol::{parse_line, to_line, Answer, Failure, FailureKind, Request, MAX_REQUEST_LINE};

/// Clients served at once; more are answered `busy`.
pub const MAX_CONNECTIONS: usize = 512;
/// A client that sends nothing for this long is disconnected.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What every connection shares.
pub struct Shared {
    pub jobs: Mutex<Option<Sender<Job>>>,
    pub peers: PeerPolicy,
    pub stats: Arc<Mutex<Stats>>,
}

impl Shared {
    fn submit(&self, job: Job) -> Result<(), Failure> {
        let stopping = || Failure::new(FailureKind::ShuttingDown, "the agent is stopping");
        let jobs = self.jobs.lock().map_err(|_| stopping())?;
        jobs.as_ref().ok_or_else(stopping)?.send(job).map_err(|_| stopping())
    }

    /// Closes the TPM thread's queue: it finishes what is pending and ends.
    pub fn close(&self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
    }
}

/// Accepts clients until `stop` resolves.
pub async fn accept_loop(listener: UnixListener, shared: Arc<Shared>, stop: impl std::future::Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("accepting a client: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let shared = shared.clone();
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(async move {
                    serve_client(stream, &shared).await;
                    drop(permit);
                });
            }
            Err(_) => {
                tokio::spawn(async move {
                    let f = Failure::new(FailureKind::Busy, format!("more than {MAX_CONNECTIONS} clients at once"));
                    count(&shared.stats, false, 0);
                    let _ = write_answer(&mut { stream }, &Answer::Error(f)).await;
                });
            }
        }
    }
}

async fn write_answer(stream: &mut UnixStream, answer: &Answer) -> std::io::Result<()> {
    stream.write_all(&to_line(answer)).await
}

/// Reads one line of at most `MAX_REQUEST_LINE` bytes; None at a clean end of stream.
async fn read_line(reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>) -> Result<Option<Vec<u8>>, String> {
    let mut buf = Vec::new();
    let limit = MAX_REQUEST_LINE as u64 + 1;
    let n = tokio::time::timeout(IDLE_TIMEOUT, (&mut *reader).take(limit).read_until(b'\n', &mut buf))
        .await
        .map_err(|_| "idle for too long".to_owned())?
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Ok(None);
    }
    match buf.pop() {
        Some(b'\n') => Ok(Some(buf)),
        _ if buf.len() >= MAX_REQUEST_LINE => Err(format!("request line longer than {MAX_REQUEST_LINE} bytes")),
        _ => Err("the request line does not end with a newline".into()),
    }
}

async fn serve_client(stream: UnixStream, shared: &Shared) {
    let peer = match stream.peer_cred() {
        Ok(c) => PeerCred { uid: c.uid(), gid: c.gid(), pid: c.pid() },
        Err(e) => {
            tracing::warn!("a client's credentials are unreadable: {e}");
            return;
        }
    };
    let (read, mut write) = stream.into_split();
    if let Err(refused) = shared.peers.authorize(&peer) {
        tracing::warn!(uid = peer.uid, gid = peer.gid, pid = peer.pid, "refused a client");
        count(&shared.stats, false, 0);
        let _ =
            write.write_all(&to_line(&Answer::Error(Failure::new(FailureKind::Refused, refused.to_string())))).await;
        return;
    }
    let mut reader = BufReader::new(read);
    loop {
        let line = match read_line(&mut reader).await {
            Ok(Some(line)) => line,
            Ok(None) => return,
            Err(e) => {
                // The stream is out of step after a bad line: answer, then close.
                count(&shared.stats, false, 0);
                let _ = write.write_all(&to_line(&Answer::Error(Failure::new(FailureKind::BadRequest, e)))).await;
                return;
            }
        };
        let answer = match parse_line::<Request>(&line, MAX_REQUEST_LINE) {
            Ok(request) => answer(request, shared).await,
            Err(e) => {
                count(&shared.stats, false, 0);
                Answer::Error(Failure::new(FailureKind::BadRequest, e))
            }
        };
        if write.write_all(&to_line(&answer)).await.is_err() {
            return;
        }
    }
}

async fn answer(request: Request, shared: &Shared) -> Answer {
    let result = match request {
        Request::Status {} => {
            return match shared.stats.lock() {
                Ok(s) => Answer::Status(s.snapshot()),
                Err(_) => Answer::Error(Failure::new(FailureKind::ShuttingDown, "statistics unavailable")),
            };
        }
        Request::Quote { nonce, selection } => quote(&nonce, &selection, shared).await,
        Request::AkPublic {} => op(TpmOp::AkPublic, shared).await,
        Request::EkPublic {} => op(TpmOp::EkPublic, shared).await,
        Request::EkCertificate {} => op(TpmOp::EkCertificate, shared).await,
        Request::EkIntermediates {} => op(TpmOp::EkIntermediates, shared).await,
        Request::ActivateCredential { credential_blob, encrypted_secret } => {
            op(TpmOp::ActivateCredential { credential_blob, encrypted_secret }, shared).await
        }
    };
    result.unwrap_or_else(Answer::Error)
}

async fn quote(nonce: &str, selection: &str, shared: &Shared) -> Result<Answer, Failure> {
    let bad = |what: &str, e: String| {
        count(&shared.stats, false, 0);
        Failure::new(FailureKind::BadRequest, format!("{what}: {e}"))
    };
    let nonce = hex::decode(nonce).map_err(|e| bad("nonce", e.to_string()))?;
    let selection = selection.parse::<PcrSelection>().map_err(|e| bad("PCR selection", e.to_string()))?;
    let (reply, answer) = oneshot::channel();
    shared.submit(Job::Quote { nonce, selection, reply })?;
    let q = answer.await.map_err(|_| Failure::new(FailureKind::ShuttingDown, "the TPM thread ended"))??;
    Ok(Answer::Quote(Box::new(q)))
}

async fn op(op: TpmOp, shared: &Shared) -> Result<Answer, Failure> {
    let (reply, answer) = oneshot::channel();
    shared.submit(Job::Op { op, reply })?;
    let a = answer.await.map_err(|_| Failure::new(FailureKind::ShuttingDown, "the TPM thread ended"))??;
    Ok(match a {
        OpAnswer::Public(p) => Answer::Public(p),
        OpAnswer::Certificate(c) => Answer::Certificate(c),
        OpAnswer::Certificates(c) => Answer::Certificates(c),
        OpAnswer::Secret(s) => Answer::Secret(s),
    })
}
