//! The TPM thread (docs/design.md §14). It owns the TPM (a TSS context is not Send, and a TPM runs one
//! command at a time) and serves jobs in arrival order. Quote jobs for the same PCR selection gather into
//! a batch; one TPM2_Quote answers the whole batch, its qualifyingData the batch's Merkle root
//! (`runtrust_attestation::batch`), each requester getting the quote and its own inclusion proof.
//!
//! When a batch is quoted:
//! - a batch that opens while the agent is idle (nothing pending, no quote within the last window) is
//!   quoted at once, with whatever is already queued: a lone request does not wait;
//! - otherwise it waits `window` from its first request, gathering what arrives meanwhile;
//! - a full batch (64 nonces) does not wait for its window;
//! - never sooner than `1 / max_quotes_per_second` after the previous quote began; requests wait.
//!
//! A batch of one is quoted as a single-nonce quote (extraData == nonce), which every verifier accepts.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use runtrust_attestation::batch::{NonceBatch, MAX_BATCH, MAX_NONCE};
use runtrust_attestation::PcrSelection;
use tokio::sync::oneshot;

use super::protocol::{Failure, FailureKind, QuoteAnswer, Status};
use crate::api::BatchProof;
use crate::tpm::{Tpm, TpmError};

/// How the thread batches.
#[derive(Clone, Copy, Debug)]
pub struct BatchConfig {
    pub window: Duration,
    pub max_quotes_per_second: Option<u32>,
}

impl BatchConfig {
    fn min_interval(&self) -> Duration {
        match self.max_quotes_per_second {
            Some(n) if n > 0 => Duration::from_secs(1) / n,
            _ => Duration::ZERO,
        }
    }
}

/// Where a job's answer goes.
pub type Reply<T> = oneshot::Sender<Result<T, Failure>>;

/// The TPM operations besides quotes.
#[derive(Debug)]
pub enum TpmOp {
    AkPublic,
    EkPublic,
    EkCertificate,
    EkIntermediates,
    ActivateCredential { credential_blob: Vec<u8>, encrypted_secret: Vec<u8> },
}

/// What a [`TpmOp`] returns.
#[derive(Debug, PartialEq, Eq)]
pub enum OpAnswer {
    Public(Vec<u8>),
    Certificate(Option<Vec<u8>>),
    Certificates(Vec<Vec<u8>>),
    Secret(Vec<u8>),
}

/// Work for the TPM thread.
#[derive(Debug)]
pub enum Job {
    Quote { nonce: Vec<u8>, selection: PcrSelection, reply: Reply<QuoteAnswer> },
    Op { op: TpmOp, reply: Reply<OpAnswer> },
}

/// The counters behind `runtrust agent status`, shared with the socket side.
#[derive(Debug)]
pub struct Stats {
    pub status: Status,
    quote_ms_total: f64,
    started: Instant,
}

impl Stats {
    pub fn new(config: &BatchConfig) -> Self {
        let status = Status {
            batch_window_ms: u64::try_from(config.window.as_millis()).unwrap_or(u64::MAX),
            max_quotes_per_second: config.max_quotes_per_second,
            ..Status::default()
        };
        Self { status, quote_ms_total: 0.0, started: Instant::now() }
    }

    /// The status now.
    pub fn snapshot(&self) -> Status {
        Status { uptime_secs: self.started.elapsed().as_secs(), ..self.status.clone() }
    }

    fn quoted(&mut self, batch: usize, took: Duration) {
        let ms = took.as_secs_f64() * 1000.0;
        let s = &mut self.status;
        s.quotes += 1;
        s.largest_batch = s.largest_batch.max(batch as u64);
        s.quote_latency_ms_last = ms;
        s.quote_latency_ms_max = s.quote_latency_ms_max.max(ms);
        self.quote_ms_total += ms;
        s.quote_latency_ms_mean = self.quote_ms_total / s.quotes as f64;
    }
}

/// Counts an answered request (`ok`) or an error answer.
pub fn count(stats: &Mutex<Stats>, ok: bool, quotes: u64) {
    if let Ok(mut s) = stats.lock() {
        if ok {
            s.status.requests += 1;
            s.status.quote_requests += quotes;
        } else {
            s.status.errors += 1;
        }
    }
}

fn tpm_failure(e: &TpmError) -> Failure {
    let kind = if e.is_unavailable() { FailureKind::TpmUnavailable } else { FailureKind::Tpm };
    Failure::new(kind, e.to_string())
}

struct Member {
    nonce: Vec<u8>,
    reply: Reply<QuoteAnswer>,
}

struct Batch {
    selection: PcrSelection,
    opened: Instant,
    immediate: bool,
    members: Vec<Member>,
}

/// Opens the TPM (again, when its objects vanished).
pub type Opener = Box<dyn FnMut() -> Result<Box<dyn Tpm>, TpmError> + Send>;

/// The TPM thread's state.
pub struct Worker {
    tpm: Box<dyn Tpm>,
    reopen: Option<Opener>,
    config: BatchConfig,
    stats: Arc<Mutex<Stats>>,
    pending: Vec<Batch>,
    last_quote_start: Option<Instant>,
    last_quote_end: Option<Instant>,
    ak_public: Option<Vec<u8>>,
}

/// Starts the TPM thread: `open` runs on it (the TSS context stays there) and the AK is loaded, or
/// created, before this returns, so a broken TPM fails the agent's start rather than its first client.
pub fn spawn(
    mut open: Opener,
    config: BatchConfig,
    stats: Arc<Mutex<Stats>>,
) -> Result<(Sender<Job>, JoinHandle<()>), TpmError> {
    let (jobs, rx) = std::sync::mpsc::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let handle = std::thread::Builder::new()
        .name("runtrust-tpm".into())
        .spawn(move || {
            let started = open().and_then(move |mut tpm| {
                let ak = tpm.ak_public()?.to_tpm2b();
                let mut worker = Worker::new(tpm, config, stats, Some(ak));
                worker.set_reopen(open);
                Ok(worker)
            });
            match started {
                Ok(worker) => {
                    let _ = ready_tx.send(Ok(()));
                    worker.run(&rx);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        })
        .map_err(|e| TpmError::Unexpected { what: "TPM thread", detail: e.to_string() })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok((jobs, handle)),
        Ok(Err(e)) => {
            let _ = handle.join();
            Err(e)
        }
        Err(_) => {
            let _ = handle.join();
            Err(TpmError::Unexpected { what: "TPM thread", detail: "ended before it was ready".into() })
        }
    }
}

impl Worker {
    pub fn new(tpm: Box<dyn Tpm>, config: BatchConfig, stats: Arc<Mutex<Stats>>, ak: Option<Vec<u8>>) -> Self {
        Self {
            tpm,
            reopen: None,
            config,
            stats,
            pending: Vec::new(),
            last_quote_start: None,
            last_quote_end: None,
            ak_public: ak,
        }
    }

    /// How to open the TPM again when a quote fails with a TPM error.
    pub fn set_reopen(&mut self, open: Opener) {
        self.reopen = Some(open);
    }

    /// Serves jobs until every sender is gone and no batch is pending; the TPM is dropped (its transient
    /// objects flushed) on return.
    pub fn run(mut self, rx: &Receiver<Job>) {
        let mut open = true;
        loop {
            let due = self.next_due();
            match (due, open) {
                (None, false) => break,
                (None, true) => match rx.recv() {
                    Ok(job) => self.accept(job),
                    Err(_) => open = false,
                },
                (Some(at), true) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(job) => self.accept(job),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => open = false,
                },
                (Some(at), false) => std::thread::sleep(at.saturating_duration_since(Instant::now())),
            }
            // Everything already queued joins its batch before any batch is quoted.
            while open {
                match rx.try_recv() {
                    Ok(job) => self.accept(job),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => open = false,
                }
            }
            self.fire_due();
        }
    }

    /// Takes one job: a quote joins (or opens) its batch; anything else runs now.
    pub fn accept(&mut self, job: Job) {
        match job {
            Job::Op { op, reply } => {
                let answer = self.op(op);
                count(&self.stats, answer.is_ok(), 0);
                let _ = reply.send(answer);
            }
            Job::Quote { nonce, selection, reply } => match self.admit(&nonce) {
                Ok(()) => self.enqueue(Member { nonce, reply }, selection),
                Err(f) => {
                    count(&self.stats, false, 0);
                    let _ = reply.send(Err(f));
                }
            },
        }
    }

    fn op(&mut self, op: TpmOp) -> Result<OpAnswer, Failure> {
        let tpm = &mut self.tpm;
        let answer = match op {
            TpmOp::AkPublic => return self.ak().map(OpAnswer::Public),
            TpmOp::EkPublic => tpm.ek_public().map(|p| OpAnswer::Public(p.tpmt_bytes().to_vec())),
            TpmOp::EkCertificate => tpm.ek_certificate().map(OpAnswer::Certificate),
            TpmOp::EkIntermediates => tpm.ek_intermediates().map(OpAnswer::Certificates),
            TpmOp::ActivateCredential { credential_blob, encrypted_secret } => {
                tpm.activate_credential(&credential_blob, &encrypted_secret).map(OpAnswer::Secret)
            }
        };
        answer.map_err(|e| tpm_failure(&e))
    }

    fn ak(&mut self) -> Result<Vec<u8>, Failure> {
        if let Some(ak) = &self.ak_public {
            return Ok(ak.clone());
        }
        let ak = self.tpm.ak_public().map_err(|e| tpm_failure(&e))?.to_tpm2b();
        self.ak_public = Some(ak.clone());
        Ok(ak)
    }

    /// Whether a nonce may join a batch: 1 to 64 bytes, and not already waiting (docs/design.md §14).
    fn admit(&self, nonce: &[u8]) -> Result<(), Failure> {
        if nonce.is_empty() || nonce.len() > MAX_NONCE {
            let detail = format!("a nonce is 1 to {MAX_NONCE} bytes, not {}", nonce.len());
            return Err(Failure::new(FailureKind::BadRequest, detail));
        }
        if self.pending.iter().any(|b| b.members.iter().any(|m| m.nonce == nonce)) {
            return Err(Failure::new(
                FailureKind::DuplicateNonce,
                "this nonce is already waiting for a quote: a batch never holds the same nonce twice",
            ));
        }
        Ok(())
    }

    fn enqueue(&mut self, member: Member, selection: PcrSelection) {
        let open = self.pending.iter_mut().find(|b| b.selection == selection && b.members.len() < MAX_BATCH);
        match open {
            Some(batch) => batch.members.push(member),
            None => {
                let now = Instant::now();
                let idle = self.pending.is_empty()
                    && self.last_quote_end.is_none_or(|end| now.duration_since(end) >= self.config.window);
                self.pending.push(Batch { selection, opened: now, immediate: idle, members: vec![member] });
            }
        }
    }

    fn due(&self, b: &Batch) -> Instant {
        let ready = if b.immediate || b.members.len() >= MAX_BATCH { b.opened } else { b.opened + self.config.window };
        match self.last_quote_start {
            Some(last) => ready.max(last + self.config.min_interval()),
            None => ready,
        }
    }

    /// When the next batch is due, if any is pending.
    pub fn next_due(&self) -> Option<Instant> {
        self.pending.iter().map(|b| self.due(b)).min()
    }

    /// Quotes every batch that is due, earliest first (each quote pushes the next one's rate limit).
    pub fn fire_due(&mut self) {
        loop {
            let next = self.pending.iter().enumerate().map(|(i, b)| (self.due(b), i)).min_by_key(|(at, _)| *at);
            match next {
                Some((at, i)) if at <= Instant::now() => {
                    let batch = self.pending.remove(i);
                    self.quote(batch);
                }
                _ => break,
            }
        }
    }

    fn quote(&mut self, batch: Batch) {
        let n = batch.members.len();
        // A batch of one quotes its nonce itself; more share the root of their nonces (docs/design.md §14).
        let tree = if n > 1 {
            match NonceBatch::new(&batch.members.iter().map(|m| m.nonce.as_slice()).collect::<Vec<_>>()) {
                Ok(t) => Some(t),
                Err(e) => return self.fail(batch, &Failure::new(FailureKind::BadRequest, e.to_string())),
            }
        } else {
            None
        };
        let data = match (&tree, batch.members.first()) {
            (Some(t), _) => t.root().to_vec(),
            (None, Some(m)) => m.nonce.clone(),
            (None, None) => return,
        };
        let ak = match self.ak() {
            Ok(ak) => ak,
            Err(f) => return self.fail(batch, &f),
        };
        let start = Instant::now();
        let mut result = self.tpm.quote(&data, &batch.selection);
        if let Err(TpmError::Command { .. }) = &result {
            // Without a resource manager (swtpm, a bare /dev/tpm0) another client may have flushed the
            // agent's EK and AK: open the TPM again, which reloads them, and quote once more.
            if self.reopen_tpm() {
                result = self.tpm.quote(&data, &batch.selection);
            }
        }
        let end = Instant::now();
        self.last_quote_start = Some(start);
        self.last_quote_end = Some(end);
        let quote = match result {
            Ok(q) => q,
            Err(e) => return self.fail(batch, &tpm_failure(&e)),
        };
        if let Ok(mut s) = self.stats.lock() {
            s.quoted(n, end.duration_since(start));
        }
        tracing::debug!(batch = n, ms = end.duration_since(start).as_secs_f64() * 1000.0, "quoted");
        for (i, m) in batch.members.into_iter().enumerate() {
            let proof = tree.as_ref().and_then(|t| t.proof(i)).as_ref().map(BatchProof::from);
            let answer = QuoteAnswer {
                attest: quote.attest.clone(),
                signature: quote.signature.clone(),
                pcrs: quote.pcrs.clone(),
                ak_public: ak.clone(),
                batch: proof,
            };
            count(&self.stats, true, 1);
            let _ = m.reply.send(Ok(answer));
        }
    }

    /// Replaces the TPM context with a fresh one; false when there is no opener or it failed.
    fn reopen_tpm(&mut self) -> bool {
        let Some(open) = self.reopen.as_mut() else { return false };
        match open() {
            Ok(tpm) => {
                tracing::warn!("a TPM command failed; reopened the TPM (its EK and AK are loaded again)");
                self.tpm = tpm;
                true
            }
            Err(e) => {
                tracing::warn!("reopening the TPM failed: {e}");
                false
            }
        }
    }

    fn fail(&mut self, batch: Batch, failure: &Failure) {
        tracing::warn!(batch = batch.members.len(), "quote failed: {}", failure.message);
        for m in batch.members {
            count(&self.stats, false, 0);
            let _ = m.reply.send(Err(failure.clone()));
        }
    }
}
