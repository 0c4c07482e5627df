//! Shared by the service's in-process tests (resilience, console): a principal with a real credential, and a
//! service state over any store with one Ed25519 issuer key and the injected clock.

use std::path::Path;
use std::sync::Arc;

use super::AppState;
use crate::audit::AuditEntry;
use crate::config::{IssuerKeyFile, ServiceConfig};
use crate::model::{ManualClock, Principal, Role};
use crate::store::Store;
use crate::token::{IssuerKey, SigningAlg};

/// Adds principal `name` with `role` to `store`; returns its bearer credential.
pub fn principal(store: &dyn Store, name: &str, role: Role, at: u64) -> String {
    let minted = crate::principal::mint(&ring::rand::SystemRandom::new()).unwrap();
    let p = Principal {
        id: minted.principal_id,
        name: name.into(),
        role,
        secret_sha256: minted.secret_sha256,
        created_at: at,
        tags: Vec::new(),
        created_by: None,
        join: None,
    };
    store.add_principal(&p, &AuditEntry::new(at, "principal.add", "")).unwrap();
    minted.credential
}

/// A service state in `dir` over `store`: a new issuer key (`dir/issuer.pk8`) and `[limits]` lines `limits`.
pub fn state(dir: &Path, store: Arc<dyn Store>, clock: Arc<ManualClock>, limits: &str) -> AppState {
    let (key, pkcs8) = IssuerKey::generate(SigningAlg::EdDsa, &ring::rand::SystemRandom::new()).unwrap();
    std::fs::write(dir.join("issuer.pk8"), pkcs8).unwrap();
    let config: ServiceConfig = toml::from_str(&format!(
        "service_id = \"test\"\nlisten = \"127.0.0.1:0\"\n[tls]\nca = \"x\"\ncert = \"x\"\nkey = \"x\"\n\
         [issuer]\nkeys = [{{ path = \"issuer.pk8\", alg = \"eddsa\" }}]\n[limits]\n{limits}\n"
    ))
    .unwrap();
    let issuer = vec![(IssuerKeyFile { path: "issuer.pk8".into(), alg: SigningAlg::EdDsa }, key)];
    AppState::with_store_and_clock(config, dir.into(), store, issuer, clock).unwrap()
}
