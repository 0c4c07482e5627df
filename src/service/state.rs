//! What every request shares: configuration, the store, EK anchors, issuer keys, applied policies, the
//! audit tree and the clock; and loading it from the data directory.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::ek_anchors::AnchorFiles;
use ring::rand::SystemRandom;

use super::audit_log::AuditTree;
use super::high_water::{self, HighWater, Mark};
use super::metrics::Metrics;
use super::storage::Storage;
use super::throttle::Throttle;
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
    /// The store, reached through [`blocking`]; taken out of service and recovered when it fails.
    pub store: Storage,
    /// EK certificate trust anchors, swapped whole by `ek-ca add|remove` (ek_anchors.rs).
    pub anchors: RwLock<Arc<AnchorFiles>>,
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
    /// Counters for `GET /metrics`.
    pub metrics: Metrics,
    /// Audited denials per principal (docs/design.md §16).
    pub throttle: Throttle,
    /// The store's high-water mark in the data directory (a service loaded from one; not in-process tests).
    pub high_water: Option<HighWater>,
    /// The web console's last re-read of the audit log (docs/design.md §17).
    pub console_reread: super::console::timeline::Reread,
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
    state.store.run(f).await
}

/// A store call on a handful of keys, on the async thread where the backend allows it
/// ([`Storage::quick`]): the per-request calls of the issuance and execution paths.
pub async fn quick<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Fault> {
    state.store.quick(f).await
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
        let parts = Parts {
            anchors: AnchorFiles::default(),
            authorities,
            policies: Vec::new(),
            policies_version: 0,
            storage: Storage::new(store, None),
            high_water: None,
        };
        Ok(Self::assemble(config, data_dir.to_path_buf(), issuer, clock, parts))
    }

    fn assemble(
        config: ServiceConfig,
        data_dir: PathBuf,
        issuer: Vec<(IssuerKeyFile, IssuerKey)>,
        clock: Arc<dyn Clock>,
        parts: Parts,
    ) -> Self {
        let throttle = Throttle::new(config.limits.audited_denials_per_minute);
        AppState {
            inner: Arc::new(Inner {
                config,
                data_dir,
                store: parts.storage,
                anchors: RwLock::new(Arc::new(parts.anchors)),
                rng: SystemRandom::new(),
                clock,
                issuer: RwLock::new(issuer),
                policies: RwLock::new(parts.policies),
                authorities: parts.authorities,
                audit_tree: Arc::default(),
                policies_version: std::sync::atomic::AtomicU64::new(parts.policies_version),
                metrics: Metrics::default(),
                throttle,
                high_water: parts.high_water,
                console_reread: Default::default(),
            }),
        }
    }
}

struct Parts {
    anchors: AnchorFiles,
    authorities: KeySet,
    policies: Vec<Arc<LoadedPolicy>>,
    policies_version: u64,
    storage: Storage,
    high_water: Option<HighWater>,
}

/// How `serve` loads the data directory.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadOptions {
    /// Start on a store below its high-water mark, knowingly (`serve --accept-store-rollback`); audited.
    pub accept_store_rollback: bool,
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
    let version = quick(state, |s| s.policies_version()).await?;
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
    load_with(data_dir, LoadOptions::default())
}

/// [`load`], and a store below its high-water mark refused unless `options` accept it.
pub fn load_with(data_dir: &Path, options: LoadOptions) -> Result<AppState, ServiceError> {
    let config = ServiceConfig::load(data_dir)?;
    let anchors = AnchorFiles::load(data_dir, &config.ek.anchors).map_err(|e| ServiceError::Anchors(e.to_string()))?;
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
    let high_water = check_high_water(data_dir, store.as_ref(), options)?;
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
    let storage = Storage::new(store, Some(store_config));
    let parts = Parts { anchors, authorities, policies, policies_version, storage, high_water: Some(high_water) };
    Ok(AppState::assemble(config, data_dir.to_path_buf(), issuer, Arc::new(SystemClock), parts))
}

/// docs/design.md §12: a store below the data directory's high-water mark lost its tail; refused unless
/// accepted knowingly, and the acceptance is an audit entry. Returns the mark, raised to the store's state.
fn check_high_water(data_dir: &Path, store: &dyn Store, options: LoadOptions) -> Result<HighWater, ServiceError> {
    let found = Mark::of(store)?;
    match high_water::read(data_dir)? {
        Some(recorded) if !found.covers(&recorded) => {
            let path = data_dir.join(high_water::FILE);
            if !options.accept_store_rollback {
                return Err(ServiceError::RolledBack { path, recorded, found });
            }
            let detail = format!(
                "started on a store holding {found}, below its high-water mark of {recorded}: the lost tail was \
                 accepted with --accept-store-rollback"
            );
            tracing::warn!("{detail}");
            let now = crate::model::SystemClock.now_unix();
            store.append_audit(&crate::audit::AuditEntry::new(now, "store.rollback_accepted", detail))?;
            HighWater::start(data_dir, Mark::of(store)?)
        }
        Some(_) | None => HighWater::start(data_dir, found),
    }
}
