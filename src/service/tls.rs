//! rustls server configuration from the data directory's PEM files (ring provider only).

use std::path::Path;
use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;

use super::ServiceError;
use crate::config::{resolve, TlsConfig};

pub fn server_config(data_dir: &Path, tls: &TlsConfig) -> Result<RustlsConfig, ServiceError> {
    let read = |p: &Path| {
        let path = resolve(data_dir, p);
        std::fs::read(&path).map_err(|e| ServiceError::Tls(format!("{}: {e}", path.display())))
    };
    let cert_pem = read(&tls.cert)?;
    let key_pem = read(&tls.key)?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServiceError::Tls(format!("certificate: {e}")))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| ServiceError::Tls(format!("key: {e}")))?
        .ok_or_else(|| ServiceError::Tls("no private key in the key file".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServiceError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServiceError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(config)))
}
