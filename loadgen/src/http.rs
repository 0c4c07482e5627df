//! Keep-alive HTTPS to the service: one async reqwest client (connection pool) over rustls with ring,
//! trusting only the service's CA (DATA_DIR/tls/ca.pem). Bodies are the service's own wire types.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use reqwest::header::CONTENT_TYPE;
use runtrust::api::Problem;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a call did not succeed; [`CallError::label`] is what the report counts.
#[derive(Debug)]
pub enum CallError {
    /// A problem+json refusal: its denial code (docs/design.md §8).
    Denied { status: u16, code: String, detail: String },
    /// Another non-2xx answer.
    Status { status: u16, body: String },
    /// Connection, TLS or timeout.
    Transport(String),
    /// A 2xx answer that is not the expected JSON, or a local step (quote) that failed.
    Other(String),
}

impl CallError {
    pub fn label(&self) -> String {
        match self {
            CallError::Denied { code, .. } => code.clone(),
            CallError::Status { status, .. } => format!("http_{status}"),
            CallError::Transport(_) => "transport".into(),
            CallError::Other(_) => "client".into(),
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Denied { status, code, detail } => write!(f, "{status} {code}: {detail}"),
            CallError::Status { status, body } => write!(f, "HTTP {status}: {body}"),
            CallError::Transport(e) | CallError::Other(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for CallError {}

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

/// reqwest hides the cause (refused, certificate unknown) in the source chain.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

impl Api {
    pub fn new(server: &str, server_ca: &Path, pool: usize) -> anyhow::Result<Self> {
        let pem = std::fs::read(server_ca).with_context(|| format!("reading {}", server_ca.display()))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(cert.context("CA certificate")?).context("CA certificate")?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .pool_max_idle_per_host(pool)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| anyhow!("HTTP client: {}", chain(&e)))?;
        Ok(Self { http, base: server.trim_end_matches('/').to_owned() })
    }

    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        bearer: &str,
        path: &str,
        body: &B,
    ) -> Result<T, CallError> {
        let req = self.http.post(format!("{}{path}", self.base)).bearer_auth(bearer).json(body);
        let resp = req.send().await.map_err(|e| CallError::Transport(chain(&e)))?;
        let status = resp.status();
        let problem =
            resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("problem+json"));
        let bytes = resp.bytes().await.map_err(|e| CallError::Transport(chain(&e)))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| CallError::Other(format!("{path}: {e}")));
        }
        if problem {
            if let Ok(p) = serde_json::from_slice::<Problem>(&bytes) {
                return Err(CallError::Denied { status: status.as_u16(), code: p.code, detail: p.detail });
            }
        }
        let body = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
        Err(CallError::Status { status: status.as_u16(), body })
    }

    /// GET without a credential: the body and the value of response header `name`, when present and ASCII.
    pub async fn get_bytes_and_header(&self, path: &str, name: &str) -> Result<(Vec<u8>, Option<String>), CallError> {
        let resp =
            self.http.get(format!("{}{path}", self.base)).send().await.map_err(|e| CallError::Transport(chain(&e)))?;
        let status = resp.status();
        let value = resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = resp.bytes().await.map_err(|e| CallError::Transport(chain(&e)))?;
        if !status.is_success() {
            let body = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
            return Err(CallError::Status { status: status.as_u16(), body });
        }
        Ok((bytes.to_vec(), value))
    }

    /// GET without a credential (`/metrics`, `/healthz`): the body as text.
    pub async fn get_text(&self, path: &str) -> Result<String, CallError> {
        self.get_text_as(None, path).await
    }

    /// GET, with a credential when given: the body as text.
    pub async fn get_text_as(&self, bearer: Option<&str>, path: &str) -> Result<String, CallError> {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        let resp = req.send().await.map_err(|e| CallError::Transport(chain(&e)))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| CallError::Transport(chain(&e)))?;
        if status.is_success() {
            Ok(text)
        } else {
            Err(CallError::Status { status: status.as_u16(), body: text })
        }
    }
}

/// A sample of the Prometheus text `/metrics` serves: `name` without labels.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_unlabelled_sample() {
        let text = "# TYPE runtrust_audit_entries gauge\nruntrust_audit_entries 42\nruntrust_audit_entries_x 1\n";
        assert_eq!(metric(text, "runtrust_audit_entries"), Some(42.0));
        assert_eq!(metric(text, "runtrust_store_ready"), None);
    }
}
