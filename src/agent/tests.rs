//! The agent with a fake TPM: batching rules (docs/design.md §14), the socket protocol, and the client.
//! Timing is asserted only as lower bounds (the rate limit), never as speed.

use std::path::Path;
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runtrust_attestation::batch::verify_inclusion;
use runtrust_attestation::{HashAlg, PcrSelection, PcrValues, Public};
use tokio::sync::oneshot;

use super::batcher::{BatchConfig, Job, Stats, Worker};
use super::protocol::{FailureKind, QuoteAnswer};
use super::*;
use crate::tpm::{Quote, TpmInfo};

/// Every TPM2_Quote the fake made: when, and its qualifyingData.
type Log = Arc<Mutex<Vec<(Instant, Vec<u8>)>>>;

/// A TPM whose "attest" is the qualifyingData it was given, so tests can read what was quoted.
struct FakeTpm {
    log: Log,
    fail: bool,
}

fn ak() -> Public {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("attestation/tests/vectors/rsa/ak.pub");
    Public::from_tpm2b(&std::fs::read(p).unwrap()).unwrap()
}

impl Tpm for FakeTpm {
    fn info(&mut self) -> Result<TpmInfo, TpmError> {
        Err(TpmError::Unexpected { what: "fake", detail: "no info".into() })
    }
    fn pcr_read(&mut self, _: &PcrSelection) -> Result<PcrValues, TpmError> {
        Ok(PcrValues::new())
    }
    fn pcr_extend(&mut self, _: HashAlg, _: u8, _: &[u8]) -> Result<(), TpmError> {
        Ok(())
    }
    fn ek_public(&mut self) -> Result<Public, TpmError> {
        Ok(ak())
    }
    fn ek_certificate(&mut self) -> Result<Option<Vec<u8>>, TpmError> {
        Ok(Some(vec![0x30, 0]))
    }
    fn ek_intermediates(&mut self) -> Result<Vec<Vec<u8>>, TpmError> {
        Ok(vec![vec![0x30, 1], vec![0x30, 2]])
    }
    fn ak_public(&mut self) -> Result<Public, TpmError> {
        Ok(ak())
    }
    fn quote(&mut self, nonce: &[u8], _: &PcrSelection) -> Result<Quote, TpmError> {
        if self.fail {
            return Err(TpmError::Unexpected { what: "TPM2_Quote", detail: "fake failure".into() });
        }
        self.log.lock().unwrap().push((Instant::now(), nonce.to_vec()));
        Ok(Quote { attest: nonce.to_vec(), signature: vec![1], pcrs: PcrValues::new() })
    }
    fn activate_credential(&mut self, blob: &[u8], secret: &[u8]) -> Result<Vec<u8>, TpmError> {
        Ok([blob, secret].concat())
    }
}

fn config(window_ms: u64, qps: Option<u32>) -> BatchConfig {
    BatchConfig { window: Duration::from_millis(window_ms), max_quotes_per_second: qps }
}

fn worker(cfg: BatchConfig, fail: bool) -> (Worker, Log, Arc<Mutex<Stats>>) {
    let log: Log = Arc::default();
    let stats = Arc::new(Mutex::new(Stats::new(&cfg)));
    let tpm = Box::new(FakeTpm { log: log.clone(), fail });
    (Worker::new(tpm, cfg, stats.clone(), None), log, stats)
}

fn sel(s: &str) -> PcrSelection {
    s.parse().unwrap()
}

type Answer = oneshot::Receiver<Result<QuoteAnswer, Failure>>;

fn quote_job(nonce: Vec<u8>, selection: &str) -> (Job, Answer) {
    let (reply, rx) = oneshot::channel();
    (Job::Quote { nonce, selection: sel(selection), reply }, rx)
}

/// Queues `jobs` before the worker starts, then runs it to the end.
fn run_queued(w: Worker, jobs: Vec<Job>) {
    let (tx, rx) = channel();
    for j in jobs {
        tx.send(j).unwrap();
    }
    drop(tx);
    w.run(&rx);
}

fn nonce(i: usize) -> Vec<u8> {
    let mut n = vec![0u8; 32];
    n[..8].copy_from_slice(&(i as u64).to_be_bytes());
    n
}

/// Every answer carries the quote and a proof that leads from its nonce to the quoted root.
fn check_proofs(answers: Vec<Answer>, nonces: &[Vec<u8>]) -> Vec<QuoteAnswer> {
    let mut out = Vec::new();
    for (mut rx, n) in answers.into_iter().zip(nonces) {
        let a = rx.try_recv().unwrap().unwrap();
        let proof = a.batch.as_ref().unwrap().to_proof().unwrap();
        verify_inclusion(n, &proof, &a.attest).unwrap();
        assert_eq!(a.ak_public, ak().to_tpm2b());
        out.push(a);
    }
    out
}

#[test]
fn queued_requests_share_one_quote() {
    let (w, log, stats) = worker(config(50, None), false);
    let nonces: Vec<Vec<u8>> = (0..10).map(nonce).collect();
    let (jobs, answers): (Vec<_>, Vec<_>) = nonces.iter().map(|n| quote_job(n.clone(), "sha256:0,1")).unzip();
    run_queued(w, jobs);
    assert_eq!(log.lock().unwrap().len(), 1, "one TPM2_Quote for ten requests");
    let answers = check_proofs(answers, &nonces);
    assert!(answers.iter().all(|a| a.attest == answers[0].attest), "one quote, shared");
    let s = stats.lock().unwrap().snapshot();
    assert_eq!((s.quotes, s.requests, s.quote_requests, s.largest_batch), (1, 10, 10, 10));
}

#[test]
fn a_lone_request_is_a_single_nonce_quote() {
    let (w, log, _) = worker(config(50, None), false);
    let (job, mut rx) = quote_job(nonce(7), "sha256:0");
    run_queued(w, vec![job]);
    let a = rx.try_recv().unwrap().unwrap();
    assert_eq!(a.attest, nonce(7), "extraData is the nonce itself");
    assert!(a.batch.is_none());
    assert_eq!(log.lock().unwrap().len(), 1);
}

#[test]
fn a_batch_holds_at_most_64() {
    let (w, log, stats) = worker(config(10, None), false);
    let nonces: Vec<Vec<u8>> = (0..100).map(nonce).collect();
    let (jobs, answers): (Vec<_>, Vec<_>) = nonces.iter().map(|n| quote_job(n.clone(), "sha256:0")).unzip();
    run_queued(w, jobs);
    assert_eq!(log.lock().unwrap().len(), 2);
    let answers = check_proofs(answers, &nonces);
    let sizes: Vec<u32> = answers.iter().map(|a| a.batch.as_ref().unwrap().size).collect();
    assert!(sizes[..64].iter().all(|&s| s == 64) && sizes[64..].iter().all(|&s| s == 36), "{sizes:?}");
    assert_eq!(stats.lock().unwrap().snapshot().largest_batch, 64);
}

#[test]
fn a_duplicate_nonce_is_refused_and_the_rest_quoted() {
    let (w, log, stats) = worker(config(10, None), false);
    let (a, ra) = quote_job(nonce(1), "sha256:0");
    let (b, rb) = quote_job(nonce(2), "sha256:0");
    let (dup, mut rdup) = quote_job(nonce(1), "sha256:0");
    run_queued(w, vec![a, b, dup]);
    assert_eq!(rdup.try_recv().unwrap().unwrap_err().kind, FailureKind::DuplicateNonce);
    check_proofs(vec![ra, rb], &[nonce(1), nonce(2)]);
    assert_eq!(log.lock().unwrap().len(), 1);
    let s = stats.lock().unwrap().snapshot();
    assert_eq!((s.requests, s.errors), (2, 1));
}

#[test]
fn bad_nonces_are_refused() {
    let (w, log, _) = worker(config(10, None), false);
    let (empty, mut r1) = quote_job(vec![], "sha256:0");
    let (long, mut r2) = quote_job(vec![1; 65], "sha256:0");
    run_queued(w, vec![empty, long]);
    assert_eq!(r1.try_recv().unwrap().unwrap_err().kind, FailureKind::BadRequest);
    assert_eq!(r2.try_recv().unwrap().unwrap_err().kind, FailureKind::BadRequest);
    assert!(log.lock().unwrap().is_empty());
}

#[test]
fn selections_do_not_share_a_quote() {
    let (w, log, _) = worker(config(10, None), false);
    let (a, ra) = quote_job(nonce(1), "sha256:0");
    let (b, rb) = quote_job(nonce(2), "sha256:1");
    let (c, rc) = quote_job(nonce(3), "sha256:0");
    run_queued(w, vec![a, b, c]);
    assert_eq!(log.lock().unwrap().len(), 2);
    check_proofs(vec![ra, rc], &[nonce(1), nonce(3)]);
    let mut rb = rb;
    assert!(rb.try_recv().unwrap().unwrap().batch.is_none(), "alone under its selection");
}

#[test]
fn a_failed_quote_fails_every_member() {
    let (w, _, stats) = worker(config(10, None), true);
    let (a, mut ra) = quote_job(nonce(1), "sha256:0");
    let (b, mut rb) = quote_job(nonce(2), "sha256:0");
    run_queued(w, vec![a, b]);
    assert_eq!(ra.try_recv().unwrap().unwrap_err().kind, FailureKind::Tpm);
    assert_eq!(rb.try_recv().unwrap().unwrap_err().kind, FailureKind::Tpm);
    let s = stats.lock().unwrap().snapshot();
    assert_eq!((s.quotes, s.errors), (0, 2));
}

/// A TPM whose objects were flushed behind the agent's back: every quote fails with a TPM error.
struct FlushedTpm;

impl Tpm for FlushedTpm {
    fn info(&mut self) -> Result<TpmInfo, TpmError> {
        Err(TpmError::Unexpected { what: "fake", detail: "no info".into() })
    }
    fn pcr_read(&mut self, _: &PcrSelection) -> Result<PcrValues, TpmError> {
        Ok(PcrValues::new())
    }
    fn pcr_extend(&mut self, _: HashAlg, _: u8, _: &[u8]) -> Result<(), TpmError> {
        Ok(())
    }
    fn ek_public(&mut self) -> Result<Public, TpmError> {
        Ok(ak())
    }
    fn ek_certificate(&mut self) -> Result<Option<Vec<u8>>, TpmError> {
        Ok(None)
    }
    fn ek_intermediates(&mut self) -> Result<Vec<Vec<u8>>, TpmError> {
        Ok(Vec::new())
    }
    fn ak_public(&mut self) -> Result<Public, TpmError> {
        Ok(ak())
    }
    fn quote(&mut self, _: &[u8], _: &PcrSelection) -> Result<Quote, TpmError> {
        let source = tss_esapi::Error::WrapperError(tss_esapi::WrapperErrorKind::InvalidParam);
        Err(TpmError::Command { command: "TPM2_Quote", source })
    }
    fn activate_credential(&mut self, _: &[u8], _: &[u8]) -> Result<Vec<u8>, TpmError> {
        Ok(vec![])
    }
}

#[test]
fn a_tpm_that_lost_the_agents_keys_is_reopened() {
    let cfg = config(0, None);
    let log: Log = Arc::default();
    let stats = Arc::new(Mutex::new(Stats::new(&cfg)));
    let (tx, rx) = channel();
    let reopened = log.clone();
    let open: super::batcher::Opener = Box::new(move || Ok(Box::new(FakeTpm { log: reopened.clone(), fail: false })));
    let mut w = Worker::new(Box::new(FlushedTpm), cfg, stats, None);
    w.set_reopen(open);
    let (job, mut answer) = quote_job(nonce(1), "sha256:0");
    tx.send(job).unwrap();
    drop(tx);
    w.run(&rx);
    assert_eq!(answer.try_recv().unwrap().unwrap().attest, nonce(1), "quoted by the reopened TPM");
    assert_eq!(log.lock().unwrap().len(), 1);
}

#[test]
fn the_rate_limit_spaces_quotes() {
    // 10 quotes per second: consecutive quotes start at least 100 ms apart, however eager the clients.
    let cfg = config(0, Some(10));
    let log: Log = Arc::default();
    let stats = Arc::new(Mutex::new(Stats::new(&cfg)));
    let (tx, rx) = channel();
    let fake = FakeTpm { log: log.clone(), fail: false };
    let thread = std::thread::spawn(move || Worker::new(Box::new(fake), cfg, stats, None).run(&rx));
    for i in 0..3 {
        let (job, answer) = quote_job(nonce(i), "sha256:0");
        tx.send(job).unwrap();
        answer.blocking_recv().unwrap().unwrap();
    }
    drop(tx);
    thread.join().unwrap();
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 3);
    for pair in log.windows(2) {
        assert!(pair[1].0.duration_since(pair[0].0) >= Duration::from_millis(100), "quotes 100 ms apart at least");
    }
}

#[test]
fn other_operations_run_at_once() {
    let (mut w, _, stats) = worker(config(10, None), false);
    let (reply, mut rx) = oneshot::channel();
    w.accept(Job::Op {
        op: super::batcher::TpmOp::ActivateCredential { credential_blob: vec![1], encrypted_secret: vec![2] },
        reply,
    });
    assert_eq!(rx.try_recv().unwrap().unwrap(), super::batcher::OpAnswer::Secret(vec![1, 2]));
    assert_eq!(stats.lock().unwrap().snapshot().requests, 1);
}

/// The whole agent on a socket in a temp dir, with the fake TPM; `client` runs against it.
fn with_agent(cfg: BatchConfig, client: impl FnOnce(&Path) + Send + 'static) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run/agent.sock");
    let config = AgentConfig { socket: socket.clone(), batch: cfg, peers: PeerPolicy::default() };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = oneshot::channel::<()>();
        let open = || Ok(Box::new(FakeTpm { log: Arc::default(), fail: false }) as Box<dyn Tpm>);
        let stop = async move {
            let _ = stop_rx.await;
        };
        let agent = tokio::spawn(serve(
            config,
            open,
            move |_| {
                let _ = ready_tx.send(());
            },
            stop,
        ));
        ready_rx.await.unwrap();
        let path = socket.clone();
        tokio::task::spawn_blocking(move || client(&path)).await.unwrap();
        stop_tx.send(()).unwrap();
        agent.await.unwrap().unwrap();
        assert!(!socket.exists(), "the socket is removed on stop");
    });
}

#[test]
fn clients_use_the_agent_as_a_tpm() {
    with_agent(config(0, None), |socket| {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(socket).unwrap().permissions().mode() & 0o777, 0o660);
        let mut agent = AgentTpm::connect(socket).unwrap();
        assert_eq!(agent.ak_public().unwrap(), ak());
        assert_eq!(agent.ek_certificate().unwrap(), Some(vec![0x30, 0]));
        assert_eq!(agent.ek_intermediates().unwrap(), vec![vec![0x30, 1], vec![0x30, 2]]);
        assert_eq!(agent.activate_credential(&[1], &[2]).unwrap(), vec![1, 2]);
        let q = agent.quote_nonce(&nonce(5), &sel("sha256:0")).unwrap();
        assert_eq!((q.quote.attest, q.batch), (nonce(5), None));
        assert!(agent.pcr_extend(HashAlg::Sha256, 16, &[0; 32]).is_err(), "not served");
        let s = status(socket).unwrap();
        assert_eq!((s.quotes, s.requests, s.quote_requests), (1, 5, 1));
    });
}

#[test]
fn concurrent_clients_share_quotes() {
    // A window far longer than 16 local connections take to send one line each, however loaded the machine.
    with_agent(config(2000, None), |socket| {
        // Warm up: this quote ends the idle period, so the next requests gather for the window.
        AgentTpm::connect(socket).unwrap().quote_nonce(&nonce(100), &sel("sha256:0")).unwrap();
        let barrier = Arc::new(std::sync::Barrier::new(16));
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let (socket, barrier) = (socket.to_owned(), barrier.clone());
                std::thread::spawn(move || {
                    let mut agent = AgentTpm::connect(&socket).unwrap();
                    barrier.wait();
                    let q = agent.quote_nonce(&nonce(i), &sel("sha256:0")).unwrap();
                    let proof = q.batch.expect("a shared quote");
                    verify_inclusion(&nonce(i), &proof, &q.quote.attest).unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = status(socket).unwrap();
        assert_eq!(s.quote_requests, 17);
        assert!(s.quotes <= 3, "the warm-up quote, then 16 concurrent requests in one or two: {s:?}");
    });
}

#[test]
fn malformed_lines_are_answered_and_the_connection_closed() {
    with_agent(config(0, None), |socket| {
        use std::io::{BufRead, BufReader, Write};
        let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
        s.write_all(b"{\"op\":\"quote\",\"nonce\":\"zz\",\"selection\":\"sha256:0\"}\n").unwrap();
        let mut line = String::new();
        let mut r = BufReader::new(s.try_clone().unwrap());
        r.read_line(&mut line).unwrap();
        assert!(line.contains("bad_request") && line.contains("nonce"), "{line}");
        // Longer than the limit, without a newline: refused, then closed.
        s.write_all(&vec![b'x'; super::protocol::MAX_REQUEST_LINE + 10]).unwrap();
        line.clear();
        r.read_line(&mut line).unwrap();
        assert!(line.contains("longer than"), "{line}");
        line.clear();
        assert_eq!(r.read_line(&mut line).unwrap(), 0, "closed");
    });
}

#[test]
fn a_live_socket_is_not_taken_over() {
    with_agent(config(0, None), |socket| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let e = rt.block_on(async { super::bind(socket) }).unwrap_err();
        assert!(matches!(e, AgentError::AlreadyRunning(_)), "{e}");
    });
}
