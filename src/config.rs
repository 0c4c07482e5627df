//! `D/config.toml`: the service's configuration, written by `runtrust init`. Relative paths are relative to
//! the data directory.

pub mod edit;

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const CONFIG_FILE: &str = "config.toml";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// `iss` of every token; names this service in logs and health checks.
    pub service_id: String,
    /// Address to listen on (port 0: any free port, reported at start).
    pub listen: String,
    /// The store: a directory for the embedded sled store (the default, `store`), or a `postgres://` URL
    /// (docs/design.md §15).
    #[serde(default = "default_store")]
    pub store: PathBuf,
    /// Connections to a PostgreSQL store per process (default 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_pool: Option<u32>,
    pub tls: TlsConfig,
    pub issuer: IssuerConfig,
    #[serde(default)]
    pub ek: EkConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub log_format: LogFormat,
}

fn default_store() -> PathBuf {
    PathBuf::from("store")
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA that signed the server certificate; clients pin it with --server-ca.
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Token signing keys (PKCS#8), oldest first. The last signs new tokens; the others still verify
    /// until the tokens they signed expire.
    pub keys: Vec<IssuerKeyFile>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IssuerKeyFile {
    pub path: PathBuf,
    pub alg: crate::token::SigningAlg,
}

/// Policy authority (docs/design.md §10).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Refuse policies without a valid policy-authority signature.
    #[serde(default)]
    pub require_signed: bool,
    /// PEM public keys (Ed25519 or P-256) of policy authorities.
    #[serde(default)]
    pub authority_keys: Vec<PathBuf>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EkConfig {
    /// PEM files of EK certificate trust anchors (TPM manufacturer roots or intermediates).
    #[serde(default)]
    pub anchors: Vec<PathBuf>,
    /// Host ids (`sha256:…`) whose EK is trusted without a certificate (platforms whose TPM has none).
    #[serde(default)]
    pub trusted_hosts: Vec<String>,
}

/// `[limits]`: what one request or connection may cost (docs/design.md §16). Every field has a default, so
/// a config written by an older `init` loads unchanged.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Lifetime of an enrollment challenge or nonce, in seconds.
    pub challenge_ttl_secs: u64,

    // What one authenticated principal can make the store hold (docs/design.md §12, §16).
    /// Unexpired challenges one principal may have outstanding; beyond: `limit_exceeded` (429). At least 1.
    #[serde(default = "default_outstanding")]
    pub max_challenges_per_principal: usize,
    /// Unexpired pending enrollments one principal may have outstanding; beyond: `limit_exceeded` (429).
    /// At least 1.
    #[serde(default = "default_outstanding")]
    pub max_enrollments_per_principal: usize,
    /// How often `serve` sweeps challenges, pending enrollments and used nonces that expired at least this
    /// long ago, in seconds (≥ 1).
    #[serde(default = "default_sweep_interval")]
    pub sweep_interval_secs: u64,

    // What one connection may hold (docs/design.md §16).
    /// From TCP accept to a finished TLS handshake, in seconds.
    pub tls_handshake_timeout_secs: u64,
    /// From a request's first byte to the end of its headers, in seconds.
    pub header_timeout_secs: u64,
    /// From the end of a request's headers to the end of its body, in seconds.
    pub body_timeout_secs: u64,
    /// How long a connection may sit with no request (after the handshake, between keep-alive requests) or
    /// without progress writing an answer, in seconds.
    pub idle_timeout_secs: u64,
    /// Connections held at once; more are closed as they arrive. Keep it below the process's open-file limit.
    pub max_connections: usize,
    /// Audited denials one principal may cause per minute before its requests to audited routes are refused
    /// unevaluated (429, counted in /metrics, not recorded); 0: no limit.
    pub audited_denials_per_minute: u32,
}

fn default_outstanding() -> usize {
    16
}

fn default_sweep_interval() -> u64 {
    60
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            challenge_ttl_secs: 60,
            max_challenges_per_principal: default_outstanding(),
            max_enrollments_per_principal: default_outstanding(),
            sweep_interval_secs: default_sweep_interval(),
            tls_handshake_timeout_secs: 10,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            idle_timeout_secs: 60,
            max_connections: 1024,
            audited_denials_per_minute: 60,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {detail}")]
    Invalid { path: PathBuf, detail: String },
}

impl ServiceConfig {
    pub fn load(data_dir: &Path) -> Result<Self, ConfigError> {
        let path = data_dir.join(CONFIG_FILE);
        let text = fs::read_to_string(&path).map_err(|source| ConfigError::Io { path: path.clone(), source })?;
        let cfg: ServiceConfig =
            toml::from_str(&text).map_err(|e| ConfigError::Invalid { path: path.clone(), detail: e.to_string() })?;
        if cfg.issuer.keys.is_empty() {
            return Err(ConfigError::Invalid { path, detail: "issuer.keys is empty".into() });
        }
        let l = &cfg.limits;
        if l.max_challenges_per_principal == 0 || l.max_enrollments_per_principal == 0 || l.sweep_interval_secs == 0 {
            let detail = "limits.max_challenges_per_principal, max_enrollments_per_principal and sweep_interval_secs \
                          must be at least 1";
            return Err(ConfigError::Invalid { path, detail: detail.into() });
        }
        Ok(cfg)
    }

    /// Where the store is: the `store` setting, a PostgreSQL URL or a directory relative to the data directory.
    pub fn store_config(&self, data_dir: &Path) -> crate::store::StoreConfig {
        match self.store.to_str() {
            Some(url) if crate::store::is_postgres_url(url) => crate::store::StoreConfig::Postgres {
                url: url.to_owned(),
                pool_size: self.store_pool.unwrap_or(crate::store::DEFAULT_POOL_SIZE),
            },
            _ => crate::store::StoreConfig::Sled { path: resolve(data_dir, &self.store) },
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

/// `p` relative to `data_dir` unless absolute.
pub fn resolve(data_dir: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        data_dir.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_of_an_older_config_take_the_defaults() {
        let text = "service_id = \"s\"\nlisten = \"127.0.0.1:0\"\n[tls]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n\
                    [issuer]\nkeys = [{ path = \"k\", alg = \"eddsa\" }]\n\
                    [limits]\nmax_body_bytes = 2048\nchallenge_ttl_secs = 30\n";
        let cfg: ServiceConfig = toml::from_str(text).unwrap();
        let want = Limits { max_body_bytes: 2048, challenge_ttl_secs: 30, ..Limits::default() };
        assert_eq!(cfg.limits, want);
        assert_eq!((want.header_timeout_secs, want.idle_timeout_secs, want.max_connections), (10, 60, 1024));
        let round: ServiceConfig = toml::from_str(&cfg.to_toml()).unwrap();
        assert_eq!(round, cfg);
    }
}
