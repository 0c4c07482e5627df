//! What every request shares: configuration, the store, EK anchors, issuer keys, applied policies, the
//! audit tree and the clock; and loading it from the data directory.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use ring::rand::SystemRandom;
use runtrust_attestation::ek::TrustAnchors;

use super::audit_log::AuditTree;
use super::{Fault, ServiceError};
use crate::config::{resolve, ConfigError, IssuerKeyFile, ServiceConfig};
use crate::model::{Clock, SystemClock};
use crate::policy::LoadedPolicy;
use crate::store::{Store, StoreError};
use crate::token::{Claims, IssuerKey, KeySet};

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
    /// Every time the service reads (expiry, token claims, audit entries) comes from here.
    pub clock: Arc<dyn Clock>,
    /// Token signing keys, oldest first; the last one signs.
    pub issuer: RwLock<Vec<(IssuerKeyFile, IssuerKey)>>,
    /// Applied policies, parsed once per store policies version (see [`refresh_policies`]).
    pub policies: RwLock<Vec<Arc<LoadedPolicy>>>,
    /// The store's policies version that `policies` reflects.
    pub policies_version: std::sync::atomic::AtomicU64,
    /// Policy authority public keys.
    pub authorities: KeySet,
    /// The Merkle tree over the audit log.
    pub audit_tree: Arc<AuditTree>,
}

impl Inner {
    /// N random bytes.
    pub fn random<const N: usize>(&self) -> Result<[u8; N], Fault> {
        let mut b = [0u8; N];
        ring::rand::SecureRandom::fill(&self.rng, &mut b).map_err(|_| Fault::Random)?;
        Ok(b)
    }

    pub fn policies(&self) -> Vec<Arc<LoadedPolicy>> {
        self.policies.read().map(|p| p.clone()).unwrap_or_default()
    }

    /// Signs with the newest issuer key.
    pub fn sign(&self, claims: &Claims) -> Result<Vec<u8>, Fault> {
        let keys = self.issuer.read().map_err(|_| Fault::Poisoned("issuer keys"))?;
        let (_, key) = keys.last().ok_or(Fault::NoIssuerKey)?;
        key.sign(claims, &self.rng).map_err(|e| Fault::Signing(e.to_string()))
    }

    /// A detached COSE_Sign1 over `payload` with the newest issuer key (revocation feed).
    pub fn sign_detached(&self, payload: &[u8]) -> Result<Vec<u8>, Fault> {
        let keys = self.issuer.read().map_err(|_| Fault::Poisoned("issuer keys"))?;
        let (_, key) = keys.last().ok_or(Fault::NoIssuerKey)?;
        key.sign_detached(payload, &self.rng).map_err(|e| Fault::Signing(e.to_string()))
    }

    /// Every issuer public key (old ones verify until their tokens expire).
    pub fn verifying_keys(&self) -> Result<KeySet, Fault> {
        let keys = self.issuer.read().map_err(|_| Fault::Poisoned("issuer keys"))?;
        KeySet::new(keys.iter().map(|(_, k)| k.public()).collect()).map_err(|e| Fault::Signing(e.to_string()))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

/// Runs a store operation off the async threads; a panicking or failing store is a fault, never an allow.
pub async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Fault> {
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
        Ok(r) => r.map_err(Fault::from),
        Err(e) => Err(Fault::Task(e.to_string())),
    }
}

impl AppState {
    /// A state over any [`Store`] (tests, benchmarks): no EK anchors, no policy authorities, the system clock.
    pub fn with_store(
        config: ServiceConfig,
        data_dir: PathBuf,
        store: Arc<dyn Store>,
        issuer: Vec<(IssuerKeyFile, IssuerKey)>,
    ) -> Result<Self, ServiceError> {
        Self::with_store_and_clock(config, data_dir, store, issuer, Arc::new(SystemClock))
    }

    /// The same with an injected clock.
    pub fn with_store_and_clock(
        config: ServiceConfig,
        data_dir: PathBuf,
        store: Arc<dyn Store>,
        issuer: Vec<(IssuerKeyFile, IssuerKey)>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ServiceError> {
        let authorities = KeySet::new(Vec::new()).map_err(|e| ServiceError::Authorities(e.to_string()))?;
        let parts = Parts { anchors: TrustAnchors::default(), authorities, policies: Vec::new(), policies_version: 0 };
        Ok(Self::assemble(config, data_dir.to_path_buf(), store, issuer, clock, parts))
    }

    fn assemble(
        config: ServiceConfig,
        data_dir: PathBuf,
        store: Arc<dyn Store>,
        issuer: Vec<(IssuerKeyFile, IssuerKey)>,
        clock: Arc<dyn Clock>,
        parts: Parts,
    ) -> Self {
        AppState {
            inner: Arc::new(Inner {
                config,
                data_dir,
                store,
                anchors: parts.anchors,
                rng: SystemRandom::new(),
                clock,
                issuer: RwLock::new(issuer),
                policies: RwLock::new(parts.policies),
                authorities: parts.authorities,
                audit_tree: Arc::default(),
                policies_version: std::sync::atomic::AtomicU64::new(parts.policies_version),
            }),
        }
    }
}

struct Parts {
    anchors: TrustAnchors,
    authorities: KeySet,
    policies: Vec<Arc<LoadedPolicy>>,
    policies_version: u64,
}

/// Parses stored policies.
fn parse_policies(stored: Vec<crate::model::StoredPolicy>) -> Result<Vec<Arc<LoadedPolicy>>, ServiceError> {
    let mut policies = Vec::new();
    for stored in stored {
        let loaded = crate::policy::parse(&stored.id, &stored.bytes)
            .map_err(|e| ServiceError::Policy { id: stored.id.clone(), detail: e.to_string() })?;
        policies.push(Arc::new(loaded));
    }
    Ok(policies)
}

/// Brings the parsed policies up to the store's policies version: one read per request that uses them, so
/// a policy applied through any replica is in force for every request that starts after its answer
/// (docs/design.md §15).
pub async fn refresh_policies(state: &AppState) -> Result<(), Fault> {
    use std::sync::atomic::Ordering;
    let version = blocking(state, |s| s.policies_version()).await?;
    if version == state.policies_version.load(Ordering::SeqCst) {
        return Ok(());
    }
    let (version, stored) = blocking(state, |s| Ok((s.policies_version()?, s.policies()?))).await?;
    let parsed = parse_policies(stored).map_err(|e| Fault::Corrupt(e.to_string()))?;
    let mut cache = state.policies.write().map_err(|_| Fault::Poisoned("policy cache"))?;
    *cache = parsed;
    state.policies_version.store(version, Ordering::SeqCst);
    Ok(())
}

/// The concatenated contents of `files` (relative to the data directory), one newline after each.
fn read_all(data_dir: &Path, files: &[PathBuf]) -> Result<Vec<u8>, ConfigError> {
    let mut out = Vec::new();
    for f in files {
        let p = resolve(data_dir, f);
        out.extend(std::fs::read(&p).map_err(|source| ConfigError::Io { path: p.clone(), source })?);
        out.push(b'\n');
    }
    Ok(out)
}

/// Loads the data directory: config, store, EK anchors, issuer keys, policy authorities, policies.
pub fn load(data_dir: &Path) -> Result<AppState, ServiceError> {
    let config = ServiceConfig::load(data_dir)?;
    let pem = read_all(data_dir, &config.ek.anchors)?;
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
        let key = IssuerKey::from_pkcs8(k.alg, &pkcs8).map_err(|e| detail(e.to_string()))?;
        issuer.push((k.clone(), key));
    }
    let authority_pem = read_all(data_dir, &config.policy.authority_keys)?;
    let authorities = if authority_pem.is_empty() {
        KeySet::new(Vec::new()).map_err(|e| ServiceError::Authorities(e.to_string()))?
    } else {
        KeySet::from_pem(&String::from_utf8_lossy(&authority_pem))
            .map_err(|e| ServiceError::Authorities(e.to_string()))?
    };
    let store_config = config.store_config(data_dir);
    let store = crate::store::open(&store_config)?;
    // A restart voids every outstanding challenge: no nonce issued before a crash is usable after it. Not on a
    // shared store, whose other replicas still answer their challenges (consumption is atomic there anyway).
    if !store_config.is_shared() {
        let voided = store.void_challenges()?;
        if voided > 0 {
            tracing::info!(voided, "voided the challenges outstanding at the last stop");
        }
    }
    let policies_version = store.policies_version()?;
    let policies = parse_policies(store.policies()?)?;
    let parts = Parts { anchors, authorities, policies, policies_version };
    Ok(AppState::assemble(config, data_dir.to_path_buf(), store, issuer, Arc::new(SystemClock), parts))
}
