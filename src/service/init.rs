//! `runtrust init`: a new data directory with everything `serve` needs.
//!
//! ```text
//!     D/config.toml            service configuration
//!     D/keys/issuer-1.pk8      token issuer key (Ed25519, PKCS#8), 0600
//!     D/tls/ca.pem             local CA that signed the server certificate (clients: --server-ca)
//!     D/tls/server.pem|.key    server certificate and key (key 0600)
//!     D/ek-ca/*.pem            EK certificate trust anchors, copied from --ek-ca
//!     D/store/                 the sled store
//!     D/store.high-water       what the store has durably held (written by serve; docs/design.md §12)
//!     D/admin.credential       the first admin's bearer credential, 0600
//! ```

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use ring::rand::SystemRandom;
use ring::signature::Ed25519KeyPair;
use runtrust_attestation::ek::TrustAnchors;

use crate::config::{
    EkConfig, IssuerConfig, IssuerKeyFile, Limits, LogFormat, PolicyConfig, ServiceConfig, TlsConfig, CONFIG_FILE,
};
use crate::fsutil;
use crate::model::{Clock, Principal, Role, SystemClock};
use crate::principal;
use crate::token::SigningAlg;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";
pub const ADMIN_CREDENTIAL: &str = "admin.credential";

#[derive(Clone, Debug)]
pub struct InitOptions {
    pub data_dir: PathBuf,
    pub listen: String,
    pub ek_ca: Vec<PathBuf>,
    pub service_id: String,
    /// Extra DNS names or IP addresses for the server certificate.
    pub tls_san: Vec<String>,
    /// Replace an existing data directory.
    pub force: bool,
    /// Token signature algorithm.
    pub token_alg: SigningAlg,
    /// PEM public keys of policy authorities; with any, unsigned policies are refused.
    pub policy_authority: Vec<PathBuf>,
    /// A `postgres://` URL for a shared store (docs/design.md §15); None: the embedded store in D/store.
    pub store: Option<String>,
}

/// Where `init` put things.
#[derive(Debug, serde::Serialize)]
pub struct InitReport {
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub listen: String,
    pub service_id: String,
    pub issuer_key: PathBuf,
    pub tls_ca: PathBuf,
    pub tls_names: Vec<String>,
    pub ek_anchors: Vec<PathBuf>,
    pub admin_credential: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "{0} already holds a runtrust data directory; pass --force to replace it (this discards its keys and store)"
    )]
    Exists(PathBuf),
    #[error("--listen {0:?} is not an address like 127.0.0.1:8443")]
    Listen(String),
    #[error("--ek-ca {path}: {detail}")]
    EkCa { path: PathBuf, detail: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("generating {what}: {detail}")]
    Crypto { what: &'static str, detail: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("--store {0:?} is not a postgres:// URL")]
    StoreUrl(String),
    #[error("the store {0} already holds an admin principal: it was initialized before; give each replica a copy of that data directory instead")]
    StoreInUse(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InitError + '_ {
    move |source| InitError::Io { path: path.to_owned(), source }
}

fn crypto<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> InitError {
    move |e| InitError::Crypto { what, detail: e.to_string() }
}

/// What init creates inside the data directory (and --force removes), with the store's high-water mark.
const OWNED: [&str; 7] = [CONFIG_FILE, "keys", "tls", "ek-ca", "store", ADMIN_CREDENTIAL, super::high_water::FILE];

pub fn init(opts: &InitOptions) -> Result<InitReport, InitError> {
    let d = &opts.data_dir;
    let addr: SocketAddr = opts.listen.parse().map_err(|_| InitError::Listen(opts.listen.clone()))?;
    let store = match &opts.store {
        Some(url) if crate::store::is_postgres_url(url) => PathBuf::from(url),
        Some(other) => return Err(InitError::StoreUrl(other.clone())),
        None => PathBuf::from("store"),
    };
    if OWNED.iter().any(|f| d.join(f).exists()) {
        if !opts.force {
            return Err(InitError::Exists(d.clone()));
        }
        for f in OWNED {
            let p = d.join(f);
            if p.is_dir() {
                fs::remove_dir_all(&p).map_err(io(&p))?;
            } else if p.exists() {
                fs::remove_file(&p).map_err(io(&p))?;
            }
        }
    }
    // Validate the anchors before writing anything.
    let mut anchors = Vec::new();
    for p in &opts.ek_ca {
        let pem = fs::read(p).map_err(|e| InitError::EkCa { path: p.clone(), detail: e.to_string() })?;
        TrustAnchors::from_pem(&pem).map_err(|e| InitError::EkCa { path: p.clone(), detail: e.to_string() })?;
        anchors.push(pem);
    }
    fsutil::create_private_dir(d).map_err(io(d))?;
    for sub in ["keys", "tls", "ek-ca"] {
        let p = d.join(sub);
        fsutil::create_private_dir(&p).map_err(io(&p))?;
    }

    let rng = SystemRandom::new();
    let issuer_key = new_issuer_key(d, 1, opts.token_alg, &rng)?;

    let mut authority_keys = Vec::new();
    for (i, src) in opts.policy_authority.iter().enumerate() {
        let pem = fs::read(src).map_err(io(src))?;
        crate::token::KeySet::from_pem(&String::from_utf8_lossy(&pem))
            .map_err(|e| InitError::EkCa { path: src.clone(), detail: format!("policy authority key: {e}") })?;
        let rel = PathBuf::from(format!("keys/policy-authority-{}.pem", i + 1));
        let p = d.join(&rel);
        fsutil::write_atomic(&p, &pem, 0o644).map_err(io(&p))?;
        authority_keys.push(rel);
    }

    let tls_names = tls_names(addr, &opts.tls_san);
    let (ca_pem, cert_pem, key_pem) = tls_material(&opts.service_id, &tls_names)?;
    for (name, bytes, mode) in
        [("tls/ca.pem", &ca_pem, 0o644), ("tls/server.pem", &cert_pem, 0o644), ("tls/server.key", &key_pem, 0o600)]
    {
        let p = d.join(name);
        fsutil::write_atomic(&p, bytes.as_bytes(), mode).map_err(io(&p))?;
    }

    let mut ek_anchors = Vec::new();
    for (i, pem) in anchors.iter().enumerate() {
        let rel = PathBuf::from(format!("ek-ca/{}.pem", i + 1));
        let p = d.join(&rel);
        fsutil::write_atomic(&p, pem, 0o644).map_err(io(&p))?;
        ek_anchors.push(rel);
    }

    let config = ServiceConfig {
        service_id: opts.service_id.clone(),
        listen: addr.to_string(),
        store,
        store_pool: None,
        tls: TlsConfig {
            ca: PathBuf::from("tls/ca.pem"),
            cert: PathBuf::from("tls/server.pem"),
            key: PathBuf::from("tls/server.key"),
        },
        issuer: IssuerConfig { keys: vec![issuer_key.clone()] },
        ek: EkConfig { anchors: ek_anchors.clone(), trusted_hosts: Vec::new() },
        policy: PolicyConfig { require_signed: !authority_keys.is_empty(), authority_keys },
        limits: Limits::default(),
        log_format: LogFormat::Text,
    };

    let minted = principal::mint(&rng).map_err(crypto("the admin credential"))?;
    {
        let store_config = config.store_config(d);
        let store = crate::store::open(&store_config)?;
        let now = SystemClock.now_unix();
        let admin = Principal {
            id: minted.principal_id,
            name: "admin".into(),
            role: Role::Admin,
            secret_sha256: minted.secret_sha256,
            created_at: now,
            tags: Vec::new(),
            created_by: None,
            join: None,
        };
        // The log starts with the first admin (docs/design.md §11); no principal made it, `runtrust init` did.
        let entry =
            crate::audit::AuditEntry::new(now, "principal.add", "principal \"admin\" with role admin (runtrust init)")
                .diagnostics(serde_json::json!({ "name": "admin", "role": Role::Admin, "tags": [] }));
        match store.add_principal(&admin, &entry) {
            Err(crate::store::StoreError::Conflict(_)) => return Err(InitError::StoreInUse(store_config.describe())),
            other => other?,
        }
    }
    let cred = d.join(ADMIN_CREDENTIAL);
    fsutil::write_private(&cred, format!("{}\n", minted.credential).as_bytes()).map_err(io(&cred))?;
    // Written last: a data directory with a config.toml is complete.
    let cfg_path = d.join(CONFIG_FILE);
    fsutil::write_atomic(&cfg_path, config.to_toml().as_bytes(), 0o644).map_err(io(&cfg_path))?;

    Ok(InitReport {
        data_dir: d.clone(),
        config: cfg_path,
        listen: addr.to_string(),
        service_id: opts.service_id.clone(),
        issuer_key: d.join(&issuer_key.path),
        tls_ca: d.join("tls/ca.pem"),
        tls_names,
        ek_anchors: ek_anchors.iter().map(|a| d.join(a)).collect(),
        admin_credential: cred,
    })
}

/// Generates issuer key number `n` into `d/keys/` (PKCS#8, 0600).
pub fn new_issuer_key(d: &Path, n: usize, alg: SigningAlg, rng: &SystemRandom) -> Result<IssuerKeyFile, InitError> {
    let path = PathBuf::from(format!("keys/issuer-{n}.pk8"));
    let pkcs8 = match alg {
        SigningAlg::EdDsa => Ed25519KeyPair::generate_pkcs8(rng).map_err(crypto("the issuer key"))?.as_ref().to_vec(),
        SigningAlg::Es256 => {
            ring::signature::EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, rng)
                .map_err(crypto("the issuer key"))?
                .as_ref()
                .to_vec()
        }
    };
    let p = d.join(&path);
    fsutil::write_private(&p, &pkcs8).map_err(io(&p))?;
    Ok(IssuerKeyFile { path, alg })
}

/// localhost and loopback always; the listen address when specific; the host name; and --tls-san.
fn tls_names(addr: SocketAddr, extra: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if !addr.ip().is_unspecified() {
        names.push(addr.ip().to_string());
    }
    if let Ok(h) = fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            names.push(h.to_owned());
        }
    }
    names.extend(extra.iter().cloned());
    let mut seen = Vec::new();
    names.retain(|n| {
        let fresh = !seen.contains(n);
        seen.push(n.clone());
        fresh
    });
    names
}

/// A local CA (path length 0) and a server certificate it signs, ECDSA P-256, valid ten years.
fn tls_material(service_id: &str, names: &[String]) -> Result<(String, String, String), InitError> {
    let year = 1970 + i32::try_from(SystemClock.now_unix() / 31_556_952).unwrap_or(2026);
    let (not_before, not_after) = (rcgen::date_time_ymd(year - 1, 1, 1), rcgen::date_time_ymd(year + 10, 1, 1));

    let ca_key = KeyPair::generate().map_err(crypto("the TLS CA key"))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(crypto("the TLS CA"))?;
    ca.distinguished_name.push(DnType::CommonName, format!("runtrust local CA ({service_id})"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_cert = ca.self_signed(&ca_key).map_err(crypto("the TLS CA"))?;

    let key = KeyPair::generate().map_err(crypto("the TLS server key"))?;
    let mut server = CertificateParams::new(names.to_vec()).map_err(crypto("the TLS server certificate"))?;
    server.distinguished_name.push(DnType::CommonName, service_id);
    server.is_ca = IsCa::ExplicitNoCa;
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.not_before = not_before;
    server.not_after = not_after;
    let cert = server.signed_by(&key, &ca_cert, &ca_key).map_err(crypto("the TLS server certificate"))?;
    Ok((ca_cert.pem(), cert.pem(), key.serialize_pem()))
}
