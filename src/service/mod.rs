//! The runtrust service (DESIGN §1: verifier + issuer): HTTPS (rustls) with axum, the embedded store,
//! graceful shutdown. Every handler either answers or returns a [`Denial`].

mod admin;
mod auth;
mod enroll;
pub mod init;
mod problem;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use ring::rand::SystemRandom;
use runtrust_attestation::ek::TrustAnchors;

pub use problem::Denial;

use crate::config::{resolve, ConfigError, ServiceConfig};
use crate::store::{SledStore, Store, StoreError};

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub inner: Arc<Inner>,
}

pub struct Inner {
    pub config: ServiceConfig,
    pub store: Arc<dyn Store>,
    pub anchors: TrustAnchors,
    pub rng: SystemRandom,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

/// Runs a store operation off the async threads; a panicking or failing store is a denial, never an allow.
pub async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Denial> {
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
        Ok(r) => r.map_err(Denial::from),
        Err(e) => Err(Denial::internal(format!("store task failed: {e}"))),
    }
}

/// JSON bodies whose rejections (syntax, size cap, content type) are problem+json denials too.
pub struct Body<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = Denial;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(JsonRejection::BytesRejection(e)) => {
                Err(Denial::bad_request(format!("request body: {e}")).with_status(e.status()))
            }
            Err(e) => Err(Denial::bad_request(e.body_text()).with_status(e.status())),
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
    #[error("listening on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
}

async fn healthz(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "service_id": state.config.service_id }))
}

async fn not_found() -> Denial {
    Denial::not_found("no such route (the API lives under /v1, see docs/api.md)")
}

pub fn router(state: AppState) -> Router {
    let limit = state.config.limits.max_body_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/enroll", post(enroll::start))
        .route("/v1/enroll/{enrollment_id}", post(enroll::activate))
        .route("/v1/hosts", get(admin::list_hosts))
        .route("/v1/principals", get(admin::list_principals).post(admin::add_principal))
        .route("/v1/principals/{name}", delete(admin::remove_principal))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Loads the data directory: config, store, EK anchors.
pub fn load(data_dir: &Path) -> Result<AppState, ServiceError> {
    let config = ServiceConfig::load(data_dir)?;
    let mut pem = Vec::new();
    for a in &config.ek.anchors {
        let p = resolve(data_dir, a);
        let bytes = std::fs::read(&p).map_err(|source| ConfigError::Io { path: p.clone(), source })?;
        pem.extend_from_slice(&bytes);
        pem.push(b'\n');
    }
    let anchors = if pem.is_empty() {
        TrustAnchors::default()
    } else {
        TrustAnchors::from_pem(&pem).map_err(|e| ServiceError::Anchors(e.to_string()))?
    };
    let store = SledStore::open(&resolve(data_dir, &config.store))?;
    Ok(AppState { inner: Arc::new(Inner { config, store: Arc::new(store), anchors, rng: SystemRandom::new() }) })
}

/// Serves until SIGTERM or SIGINT; in-flight requests get 10 s to finish. `ready` receives the bound address.
pub async fn serve(data_dir: PathBuf, ready: impl FnOnce(SocketAddr)) -> Result<(), ServiceError> {
    let state = load(&data_dir)?;
    let tls = tls::server_config(&data_dir, &state.config.tls)?;
    let addr: SocketAddr = state
        .config
        .listen
        .parse()
        .map_err(|e| ServiceError::Listen { addr: state.config.listen.clone(), source: std::io::Error::other(e) })?;
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| ServiceError::Listen { addr: addr.to_string(), source })?;
    listener.set_nonblocking(true).map_err(|source| ServiceError::Listen { addr: addr.to_string(), source })?;
    let bound = listener.local_addr().map_err(|source| ServiceError::Listen { addr: addr.to_string(), source })?;

    let handle = axum_server::Handle::new();
    let shutdown = handle.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        shutdown.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    tracing::info!(service_id = %state.config.service_id, %bound, "runtrust service listening");
    ready(bound);
    let app = router(state);
    axum_server::from_tcp_rustls(listener, tls)
        .map_err(|source| ServiceError::Listen { addr: bound.to_string(), source })?
        .handle(handle)
        .serve(app.into_make_service())
        .await
        .map_err(|source| ServiceError::Listen { addr: bound.to_string(), source })
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
