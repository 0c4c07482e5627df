//! The runtrust service (DESIGN §1: verifier + issuer): HTTPS (rustls) with axum, the embedded store,
//! graceful shutdown. Every handler either answers or returns a [`Denial`].

mod admin;
mod audit_log;
mod audit_route;
pub mod auth;
mod challenge;
mod enroll;
mod execution;
pub mod init;
pub mod issue;
mod keys;
mod lineage;
mod policies;
mod problem;
pub mod revocation;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use ring::rand::SystemRandom;
use runtrust_attestation::ek::TrustAnchors;

pub use problem::Denial;

use crate::config::{resolve, ConfigError, IssuerKeyFile, ServiceConfig, TokenAlg};
use crate::policy::LoadedPolicy;
use crate::store::{SledStore, Store, StoreError};
use crate::token::{Claims, IssuerKey, KeySet, SigningAlg};

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub inner: Arc<Inner>,
}

pub struct Inner {
    pub config: ServiceConfig,
    pub data_dir: PathBuf,
    pub store: Arc<dyn Store>,
    pub anchors: TrustAnchors,
    pub rng: SystemRandom,
    /// Token signing keys, oldest first; the last one signs.
    pub issuer: RwLock<Vec<(IssuerKeyFile, IssuerKey)>>,
    /// Applied policies, parsed once.
    pub policies: RwLock<Vec<Arc<LoadedPolicy>>>,
    /// Policy authority public keys.
    pub authorities: KeySet,
    /// The Merkle tree over the audit log.
    pub audit_tree: Arc<audit_log::AuditTree>,
    /// Revocations (write) exclude execution starts (read): an execution either started before a
    /// revocation was answered, or its check sees the revocation.
    pub revocation_gate: tokio::sync::RwLock<()>,
}

pub fn signing_alg(alg: TokenAlg) -> SigningAlg {
    match alg {
        TokenAlg::Eddsa => SigningAlg::EdDsa,
        TokenAlg::Es256 => SigningAlg::Es256,
    }
}

impl Inner {
    /// N random bytes; a failing generator is a denial.
    pub fn random<const N: usize>(&self) -> Result<[u8; N], Denial> {
        let mut b = [0u8; N];
        ring::rand::SecureRandom::fill(&self.rng, &mut b).map_err(|_| Denial::internal("random generator failed"))?;
        Ok(b)
    }

    pub fn policies(&self) -> Vec<Arc<LoadedPolicy>> {
        self.policies.read().map(|p| p.clone()).unwrap_or_default()
    }

    /// Signs with the newest issuer key.
    pub fn sign(&self, claims: &Claims) -> Result<Vec<u8>, Denial> {
        let keys = self.issuer.read().map_err(|_| Denial::internal("issuer keys lock poisoned"))?;
        let (_, key) = keys.last().ok_or_else(|| Denial::internal("no issuer key"))?;
        key.sign(claims, &self.rng).map_err(|e| Denial::internal(format!("signing: {e}")))
    }

    /// A detached COSE_Sign1 over `payload` with the newest issuer key (revocation feed).
    pub fn sign_detached(&self, payload: &[u8]) -> Result<Vec<u8>, Denial> {
        let keys = self.issuer.read().map_err(|_| Denial::internal("issuer keys lock poisoned"))?;
        let (_, key) = keys.last().ok_or_else(|| Denial::internal("no issuer key"))?;
        key.sign_detached(payload, &self.rng).map_err(|e| Denial::internal(format!("signing: {e}")))
    }

    /// Every issuer public key (old ones verify until their tokens expire).
    pub fn verifying_keys(&self) -> Result<KeySet, Denial> {
        let keys = self.issuer.read().map_err(|_| Denial::internal("issuer keys lock poisoned"))?;
        KeySet::new(keys.iter().map(|(_, k)| k.public()).collect()).map_err(Denial::internal)
    }
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
    #[error("issuer key {path}: {detail}")]
    IssuerKey { path: PathBuf, detail: String },
    #[error("stored policy {id}: {detail}")]
    Policy { id: String, detail: String },
    #[error("policy authority keys: {0}")]
    Authorities(String),
    #[error("listening on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
}

async fn healthz(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "service_id": state.config.service_id }))
}

async fn not_found() -> Denial {
    Denial::not_found("no such route (the API lives under /v1, see docs/api.md)")
}

impl AppState {
    /// A state over any [`Store`] (tests, benchmarks): no EK anchors, no policy authorities.
    pub fn with_store(
        config: ServiceConfig,
        data_dir: PathBuf,
        store: Arc<dyn Store>,
        issuer: Vec<(IssuerKeyFile, IssuerKey)>,
    ) -> Result<Self, ServiceError> {
        let authorities = KeySet::new(Vec::new()).map_err(|e| ServiceError::Authorities(e.to_string()))?;
        Ok(AppState {
            inner: Arc::new(Inner {
                config,
                data_dir,
                store,
                anchors: TrustAnchors::default(),
                rng: SystemRandom::new(),
                issuer: RwLock::new(issuer),
                policies: RwLock::new(Vec::new()),
                authorities,
                audit_tree: Arc::default(),
                revocation_gate: tokio::sync::RwLock::new(()),
            }),
        })
    }
}

pub fn router(state: AppState) -> Router {
    let limit = state.config.limits.max_body_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/enroll", post(enroll::start))
        .route("/v1/enroll/{enrollment_id}", post(enroll::activate))
        .route("/v1/hosts", get(admin::list_hosts))
        .route("/v1/challenge", post(challenge::challenge))
        // A token request may carry an event log (base64url: 4/3 of MAX_EVENT_LOG_BYTES) besides the quote.
        .route(
            "/v1/tokens",
            post(issue::token).layer(DefaultBodyLimit::max(limit + crate::api::MAX_EVENT_LOG_BYTES / 3 * 4 + 4)),
        )
        .route("/v1/keys", get(keys::keys))
        .route("/v1/keys/rotate", post(keys::rotate))
        .route("/v1/policies", get(policies::list).post(policies::apply))
        .route("/v1/audit", get(audit_route::audit))
        .route("/v1/audit/checkpoint", get(audit_route::checkpoint))
        .route("/v1/audit/prove/{cti}", get(audit_route::prove))
        .route("/v1/audit/consistency", get(audit_route::consistency))
        .route("/v1/revocations", get(revocation::feed).post(revocation::revoke))
        .route("/v1/executions", post(execution::start))
        .route("/v1/executions/{cti}/{id}/end", post(execution::end))
        .route("/v1/lineage/{cti}", get(lineage::lineage))
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
    let mut issuer = Vec::new();
    for k in &config.issuer.keys {
        let p = resolve(data_dir, &k.path);
        let detail = |d: String| ServiceError::IssuerKey { path: p.clone(), detail: d };
        let pkcs8 = std::fs::read(&p).map_err(|e| detail(e.to_string()))?;
        let key = IssuerKey::from_pkcs8(signing_alg(k.alg), &pkcs8).map_err(|e| detail(e.to_string()))?;
        issuer.push((k.clone(), key));
    }
    let mut authority_pem = Vec::new();
    for a in &config.policy.authority_keys {
        let p = resolve(data_dir, a);
        authority_pem.extend(std::fs::read(&p).map_err(|source| ConfigError::Io { path: p.clone(), source })?);
        authority_pem.push(b'\n');
    }
    let authorities = if authority_pem.is_empty() {
        KeySet::new(Vec::new()).map_err(|e| ServiceError::Authorities(e.to_string()))?
    } else {
        KeySet::from_pem(&String::from_utf8_lossy(&authority_pem))
            .map_err(|e| ServiceError::Authorities(e.to_string()))?
    };
    let store = SledStore::open(&resolve(data_dir, &config.store))?;
    // A restart voids every outstanding challenge: no nonce issued before a crash is usable after it.
    let voided = store.void_challenges()?;
    if voided > 0 {
        tracing::info!(voided, "voided the challenges outstanding at the last stop");
    }
    let mut policies = Vec::new();
    for stored in store.policies()? {
        let loaded = crate::policy::parse(&stored.id, &stored.bytes)
            .map_err(|e| ServiceError::Policy { id: stored.id.clone(), detail: e.to_string() })?;
        policies.push(Arc::new(loaded));
    }
    Ok(AppState {
        inner: Arc::new(Inner {
            config,
            data_dir: data_dir.to_path_buf(),
            store: Arc::new(store),
            anchors,
            rng: SystemRandom::new(),
            issuer: RwLock::new(issuer),
            policies: RwLock::new(policies),
            authorities,
            audit_tree: Arc::default(),
            revocation_gate: tokio::sync::RwLock::new(()),
        }),
    })
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
