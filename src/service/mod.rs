//! The runtrust service (docs/design.md §1: verifier + issuer): HTTPS (rustls) with axum over the store,
//! graceful shutdown. Every handler either answers or returns a [`Denial`]; routes whose denials are
//! decisions record them through one layer ([`audited`]).

mod admin;
#[cfg(test)]
mod admin_tests;
mod audit_log;
mod audit_route;
pub mod audited;
pub mod auth;
mod challenge;
mod conn;
#[cfg(test)]
mod conn_tests;
pub mod console;
mod ek_anchors;
mod enroll;
mod execution;
mod fault;
pub mod high_water;
mod hosts;
pub mod init;
pub mod issue;
mod join_tokens;
mod keys;
mod lineage;
pub mod metrics;
mod policies;
mod problem;
mod rebaseline;
#[cfg(test)]
mod resilience_tests;
pub mod revocation;
mod routes;
mod selection;
mod state;
pub mod storage;
mod sweep;
mod tags;
#[cfg(test)]
mod test_support;
mod throttle;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;

pub use fault::Fault;
pub(crate) use problem::denial_from;
pub use problem::{Denial, DenialReason};
pub use routes::router;
pub use state::{blocking, load, load_with, quick, refresh_policies, AppState, Inner, LoadOptions};

use crate::config::ConfigError;
use crate::store::StoreError;

/// JSON bodies whose rejections (syntax, size cap, content type) are problem+json denials too.
pub struct Body<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = Denial;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(JsonRejection::BytesRejection(e)) => {
                let status = if conn::is_body_timeout(&e) { StatusCode::REQUEST_TIMEOUT } else { e.status() };
                Err(Denial::bad_request(format!("request body: {e}")).with_status(status))
            }
            Err(e) => Err(Denial::bad_request(e.body_text()).with_status(e.status())),
        }
    }
}

/// Query strings whose rejections (a missing or malformed parameter) are problem+json `bad_request` too
/// (docs/design.md §8), not axum's text/plain.
pub struct Query<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Denial;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => Err(Denial::bad_request(format!("query: {}", e.body_text())).with_status(e.status())),
        }
    }
}

/// Path parameters whose rejections are problem+json `bad_request` too, like [`Query`].
pub struct Path<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Denial;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(e) => Err(Denial::bad_request(format!("path: {}", e.body_text())).with_status(e.status())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("EK trust anchors: {0}")]
    Anchors(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("issuer key {path}: {detail}")]
    IssuerKey { path: PathBuf, detail: String },
    #[error("stored policy {id}: {detail}")]
    Policy { id: String, detail: String },
    #[error("policy authority keys: {0}")]
    Authorities(String),
    #[error("listening on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("the store's high-water mark {path}: {detail}")]
    HighWater { path: PathBuf, detail: String },
    #[error(
        "refusing to start: the store holds {found}, but it has durably held at least {recorded} (high-water mark \
         in {path}, written after durable writes). The store lost its tail: restored from an older backup, \
         truncated or partially copied. Serving it would forget revocations (revoked tokens usable again) and \
         give audit indices out a second time.\n  recover: restore the store directory from a backup at least \
         that recent and start again;\n  or, accepting the loss knowingly: runtrust serve --accept-store-rollback \
         (once; the acceptance is an audit entry, and audit checkpoints saved since no longer verify)"
    )]
    RolledBack { path: PathBuf, recorded: high_water::Mark, found: high_water::Mark },
}

/// How `serve` runs.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    pub load: LoadOptions,
    /// Address to listen on instead of the config's (`serve --listen`).
    pub listen: Option<String>,
}

/// Serves until SIGTERM or SIGINT; in-flight requests get 10 s to finish. `ready` receives the bound address.
/// `options.listen` overrides the config's address (replicas sharing one data directory's config,
/// docs/design.md §15).
pub async fn serve(
    data_dir: PathBuf,
    options: ServeOptions,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServiceError> {
    // The store is synchronous (a PostgreSQL store blocks on its own client): opened off the async threads.
    let dir = data_dir.clone();
    let state = tokio::task::spawn_blocking(move || load_with(&dir, options.load))
        .await
        .map_err(|e| ServiceError::Store(StoreError::Backend(format!("loading the data directory: {e}"))))??;
    let tls = tls::server_config(&data_dir, &state.config.tls)?;
    let listen = options.listen.unwrap_or_else(|| state.config.listen.clone());
    let addr: SocketAddr =
        listen.parse().map_err(|e| ServiceError::Listen { addr: listen.clone(), source: std::io::Error::other(e) })?;
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| ServiceError::Listen { addr: addr.to_string(), source })?;
    listener.set_nonblocking(true).map_err(|source| ServiceError::Listen { addr: addr.to_string(), source })?;
    let bound = listener.local_addr().map_err(|source| ServiceError::Listen { addr: addr.to_string(), source })?;

    let handle = axum_server::Handle::new();
    let shutdown = handle.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        // Shut down first, log second: nothing a log write does (stderr gone) can stop the shutdown.
        shutdown.graceful_shutdown(Some(Duration::from_secs(10)));
        tracing::info!("shutting down: finishing in-flight requests");
    });
    // docs/design.md §12: expired challenges, pending enrollments and used nonces are swept.
    tokio::spawn(sweep::run(state.clone()));
    tracing::info!(service_id = %state.config.service_id, %bound, "runtrust service listening");
    ready(bound);
    run(state, tls, listener, handle).await
}

/// Serves `state` on `listener` until `handle` shuts it down; the high-water mark follows the store.
pub(crate) async fn run(
    state: AppState,
    tls: axum_server::tls_rustls::RustlsConfig,
    listener: std::net::TcpListener,
    handle: axum_server::Handle<SocketAddr>,
) -> Result<(), ServiceError> {
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let upkeep = tokio::spawn(upkeep(state.clone()));
    let guard = conn::Guard::new(tls, &state.config.limits, state.metrics.connections.clone());
    let app = router(state.clone());
    let served = match axum_server::from_tcp(listener) {
        Ok(server) => server.acceptor(guard).handle(handle).serve(app.into_make_service()).await,
        Err(e) => Err(e),
    };
    upkeep.abort();
    high_water::advance(&state).await;
    served.map_err(|source| ServiceError::Listen { addr, source })
}

/// Every second: a failed store is brought back (docs/design.md §12), and the high-water mark follows the
/// store's durable state.
async fn upkeep(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if !state.store.is_ready() {
            if let Err(e) = state.store.recover().await {
                tracing::debug!("the store has not recovered yet: {e}");
                continue;
            }
        }
        high_water::advance(&state).await;
    }
}

async fn wait_for_signal() {
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
