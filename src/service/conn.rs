//! What a connection may hold (docs/design.md §16), so that slow or silent clients cannot keep sockets (and
//! file descriptors) from the others:
//!
//! - a cap: at `limits.max_connections` connections, new ones are closed as they arrive;
//! - the TLS handshake must finish within `tls_handshake_timeout_secs` of the TCP accept;
//! - a connection may sit without a request (after the handshake, between keep-alive requests) or make no
//!   progress writing an answer for `idle_timeout_secs`;
//! - once a request's first byte has arrived, its headers must be complete within `header_timeout_secs`
//!   (however slowly the bytes drip);
//! - once the headers are in, the body must arrive whole within `body_timeout_secs` (an absolute deadline,
//!   not a per-read one); the answer is then 408 and the connection closes.
//!
//! The connection's I/O ([`Timed`]) enforces the first three phases; it learns when a request is being
//! handled from the per-connection service ([`Tracked`]), which also puts the body deadline on the request.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, Request, Response};
use axum::BoxError;
use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use super::metrics::Connections;
use crate::config::Limits;

/// The request body did not arrive within `limits.body_timeout_secs`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(pub Duration);

#[derive(Clone, Copy, Debug)]
struct Timeouts {
    headers: Duration,
    body: Duration,
    idle: Duration,
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s.max(1))
}

/// The acceptor: cap, handshake timeout, then TLS over the timed stream.
#[derive(Clone)]
pub struct Guard {
    tls: RustlsAcceptor<Admit>,
    counters: Arc<Connections>,
}

impl Guard {
    pub fn new(tls: RustlsConfig, limits: &Limits, counters: Arc<Connections>) -> Self {
        let timeouts = Timeouts {
            headers: secs(limits.header_timeout_secs),
            body: secs(limits.body_timeout_secs),
            idle: secs(limits.idle_timeout_secs),
        };
        let admit = Admit {
            slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            timeouts,
            counters: counters.clone(),
        };
        let tls = RustlsAcceptor::new(tls).handshake_timeout(secs(limits.tls_handshake_timeout_secs)).acceptor(admit);
        Self { tls, counters }
    }
}

impl<S> Accept<TcpStream, S> for Guard
where
    S: Send + 'static,
    RustlsAcceptor<Admit>: Accept<TcpStream, S, Service = Tracked<S>>,
    <RustlsAcceptor<Admit> as Accept<TcpStream, S>>::Future: Send + 'static,
{
    type Stream = <RustlsAcceptor<Admit> as Accept<TcpStream, S>>::Stream;
    type Service = Tracked<S>;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Tracked<S>)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let handshake = self.tls.accept(stream, service);
        let counters = self.counters.clone();
        Box::pin(async move {
            match handshake.await {
                Ok((stream, service)) => {
                    service.conn.handshake_done();
                    Ok((stream, service))
                }
                Err(e) => {
                    if e.kind() == io::ErrorKind::TimedOut {
                        counters.handshake_timeouts.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e)
                }
            }
        })
    }
}

/// Admits a TCP connection under the cap and wraps its stream and service.
#[derive(Clone)]
pub struct Admit {
    slots: Arc<Semaphore>,
    timeouts: Timeouts,
    counters: Arc<Connections>,
}

impl<S> Accept<TcpStream, S> for Admit {
    type Stream = Timed<TcpStream>;
    type Service = Tracked<S>;
    type Future = std::future::Ready<io::Result<(Timed<TcpStream>, Tracked<S>)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            return std::future::ready(Err(io::Error::other("connection cap reached")));
        };
        // Answers go out as soon as they are written: with Nagle's algorithm on, a response written in two
        // segments waits for the client's delayed ACK (40 ms on Linux) before its second one.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("closing a connection whose socket refused TCP_NODELAY: {e}");
            return std::future::ready(Err(e));
        }
        let conn = Arc::new(ConnState::default());
        let timed = Timed::new(stream, conn.clone(), self.timeouts, self.counters.clone(), permit);
        let tracked = Tracked { inner: service, conn, body: self.timeouts.body, counters: self.counters.clone() };
        std::future::ready(Ok((timed, tracked)))
    }
}

/// Shared by a connection's stream and its service.
#[derive(Default)]
struct ConnState {
    /// The TLS handshake is done (before that, the handshake timeout governs).
    open: AtomicBool,
    /// Requests being handled.
    in_flight: AtomicUsize,
    /// Moves when the handshake ends and when a request starts or ends.
    epoch: AtomicU64,
}

impl ConnState {
    fn handshake_done(&self) {
        self.open.store(true, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }
}

/// A request being handled; dropping it ends the request for the connection's clock.
struct Busy(Arc<ConnState>);

impl Busy {
    fn start(conn: Arc<ConnState>) -> Self {
        conn.in_flight.fetch_add(1, Ordering::SeqCst);
        conn.epoch.fetch_add(1, Ordering::SeqCst);
        Busy(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.epoch.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    Idle,
    Headers,
}

/// A connection's byte stream with the idle and header deadlines; it holds the connection's slot.
pub struct Timed<IO> {
    io: IO,
    conn: Arc<ConnState>,
    timeouts: Timeouts,
    counters: Arc<Connections>,
    _slot: OwnedSemaphorePermit,
    epoch: u64,
    /// Last progress (a byte read or written), or the last request's end.
    last: Instant,
    /// When the first byte of a request not yet handed to the service arrived.
    head: Option<Instant>,
    sleep: Pin<Box<Sleep>>,
    expired: Option<Phase>,
    /// Closing: the write side is shut down; input is read and dropped until the client closes, [`LINGER`]
    /// passes or [`LINGER_BYTES`] have come.
    linger: Option<usize>,
}

/// RFC 9112 §9.6: a server that closes while the client may still be sending (an answer before the whole
/// request body, e.g. 413) reads and discards what follows for a while, so that its close does not reset the
/// connection and destroy the answer before the client has read it.
const LINGER: Duration = Duration::from_millis(500);
const LINGER_BYTES: usize = 8 << 20;

impl<IO> Timed<IO> {
    fn new(
        io: IO,
        conn: Arc<ConnState>,
        timeouts: Timeouts,
        counters: Arc<Connections>,
        slot: OwnedSemaphorePermit,
    ) -> Self {
        counters.open.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        Self {
            io,
            conn,
            timeouts,
            counters,
            _slot: slot,
            epoch: 0,
            last: now,
            head: None,
            sleep: Box::pin(tokio::time::sleep_until(now + timeouts.idle)),
            expired: None,
            linger: None,
        }
    }

    /// A request started or ended since last looked: its head is no longer pending, the idle clock restarts.
    fn sync(&mut self) {
        let epoch = self.conn.epoch.load(Ordering::SeqCst);
        if epoch != self.epoch {
            self.epoch = epoch;
            self.head = None;
            self.last = Instant::now();
        }
    }

    fn idle_between_requests(&self) -> bool {
        self.conn.open.load(Ordering::SeqCst) && self.conn.in_flight.load(Ordering::SeqCst) == 0
    }

    fn progressed(&mut self, read: bool) {
        self.sync();
        let now = Instant::now();
        self.last = now;
        if read && self.head.is_none() && self.idle_between_requests() {
            self.head = Some(now);
        }
    }

    /// Pending, or the error that closes the connection once its deadline has passed.
    fn check(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if let Some(phase) = self.expired {
            return Poll::Ready(timed_out(phase));
        }
        self.sync();
        if !self.idle_between_requests() {
            return Poll::Pending;
        }
        let (at, phase) = match self.head {
            Some(t) => (t + self.timeouts.headers, Phase::Headers),
            None => (self.last + self.timeouts.idle, Phase::Idle),
        };
        if Instant::now() < at {
            self.sleep.as_mut().reset(at);
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        self.expired = Some(phase);
        let counter = match phase {
            Phase::Idle => &self.counters.idle_timeouts,
            Phase::Headers => &self.counters.header_timeouts,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Poll::Ready(timed_out(phase))
    }
}

fn timed_out(phase: Phase) -> io::Error {
    let what = match phase {
        Phase::Idle => "idle timeout",
        Phase::Headers => "request header timeout",
    };
    io::Error::new(io::ErrorKind::TimedOut, what)
}

impl<IO> Drop for Timed<IO> {
    fn drop(&mut self) {
        self.counters.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Timed<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.progressed(true);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.check(cx).map(Err),
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Timed<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.progressed(false);
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.check(cx).map(Err),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.linger.is_none() {
            std::task::ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
            // A connection closed for a timeout has had its time.
            if this.expired.is_some() {
                return Poll::Ready(Ok(()));
            }
            this.linger = Some(0);
            this.sleep.as_mut().reset(Instant::now() + LINGER);
        }
        let mut scratch = [0u8; 4096];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    let drained = this.linger.unwrap_or(0).saturating_add(buf.filled().len());
                    this.linger = Some(drained);
                    if drained >= LINGER_BYTES {
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return this.sleep.as_mut().poll(cx).map(Ok),
            }
        }
    }
}

/// A connection's service: marks requests in flight for [`Timed`] and puts the body deadline on each.
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    conn: Arc<ConnState>,
    body: Duration,
    counters: Arc<Connections>,
}

impl<S, B, R> tower_service::Service<Request<B>> for Tracked<S>
where
    S: tower_service::Service<Request<Body>, Response = Response<R>>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let busy = Busy::start(self.conn.clone());
        let expired = Arc::new(AtomicBool::new(false));
        let deadline = Deadline {
            sleep: Box::pin(tokio::time::sleep(self.body)),
            timeout: self.body,
            expired: expired.clone(),
            counters: self.counters.clone(),
        };
        let future = self.inner.call(req.map(|inner| Body::new(DeadlineBody { inner, deadline })));
        Box::pin(async move {
            let mut answer = future.await;
            if let (Ok(response), true) = (&mut answer, expired.load(Ordering::SeqCst)) {
                // The rest of the body may still be on its way: this connection carries nothing more.
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            drop(busy);
            answer
        })
    }
}

struct Deadline {
    sleep: Pin<Box<Sleep>>,
    timeout: Duration,
    expired: Arc<AtomicBool>,
    counters: Arc<Connections>,
}

/// A request body that must arrive whole before its deadline.
struct DeadlineBody<B> {
    inner: B,
    deadline: Deadline,
}

impl<B> http_body::Body for DeadlineBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let d = &mut this.deadline;
        if d.sleep.as_mut().poll(cx).is_ready() {
            if !d.expired.swap(true, Ordering::SeqCst) {
                d.counters.body_timeouts.fetch_add(1, Ordering::Relaxed);
            }
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(d.timeout)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `e` (or what caused it) is a [`BodyTimeout`].
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.is::<BodyTimeout>() {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response hyper writes in two segments must not wait for the client's delayed ACK (40 ms) before its
    /// second one: accepted connections have Nagle's algorithm off.
    #[tokio::test]
    async fn accepted_connections_send_without_delay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        assert!(!stream.nodelay().unwrap(), "an accepted socket starts with Nagle's algorithm on");
        let admit = Admit {
            slots: Arc::new(Semaphore::new(1)),
            timeouts: Timeouts { headers: secs(1), body: secs(1), idle: secs(1) },
            counters: Arc::new(Connections::default()),
        };
        let (timed, _) = Accept::<TcpStream, ()>::accept(&admit, stream, ()).await.unwrap();
        assert!(timed.io.nodelay().unwrap(), "the guard turns Nagle's algorithm off");
    }
}
