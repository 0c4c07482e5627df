//! The client side of the API: hosts (enroll, token requests) and administrators. Blocking HTTPS over
//! rustls (ring), trusting only the service's CA when `--server-ca` is given.

pub mod enroll;
pub mod token;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::blocking::Response;
use reqwest::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::{BatchProof, Problem, QuoteEvidence};
use crate::tpm::{Tpm, TpmError};

/// System CA bundle (Debian/Ubuntu), used when no --server-ca is given.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// docs/design.md §9 client options (flag > environment > default).
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    pub server: Option<String>,
    pub server_ca: Option<PathBuf>,
    pub credential: Option<PathBuf>,
}

impl ClientOptions {
    /// A client for these options.
    pub fn connect(&self) -> Result<Client, ClientError> {
        Client::new(self)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no service given: pass --server https://HOST:PORT or set RUNTRUST_SERVER")]
    NoServer,
    #[error("{path}: {detail}")]
    File { path: PathBuf, detail: String },
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("the service at {url} is unreachable: {detail}")]
    Unavailable { url: String, detail: String },
    /// Permanent, unlike Unavailable: retrying will not help (docs/design.md §9: exit 1, not 4).
    #[error(
        "the service at {url} is not trusted: {detail}; pass the CA that signed its TLS certificate with \
         --server-ca FILE (or RUNTRUST_SERVER_CA; `runtrust init` wrote it to DATA_DIR/tls/ca.pem)"
    )]
    TlsTrust { url: String, detail: String },
    #[error("{}: {}", .0.code, .0.detail)]
    Denied(Box<Problem>),
    #[error("unexpected answer from {url}: {detail}")]
    Protocol { url: String, detail: String },
}

/// Why a host-side flow (enrollment, token request) failed.
#[derive(Debug, thiserror::Error)]
pub enum HostFlowError {
    #[error(transparent)]
    Tpm(#[from] TpmError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the service sent an unusable challenge: {0}")]
    Challenge(String),
    #[error("the policy requires this host's event log, which could not be read from {path}: {detail}; pass --event-log FILE or set RUNTRUST_EVENT_LOG")]
    EventLog { path: PathBuf, detail: String },
}

/// Quotes what a service challenge asks for: `nonce` (hex) over `selection` (tpm2-tools form).
pub fn quote_challenge(tpm: &mut dyn Tpm, nonce: &str, selection: &str) -> Result<QuoteEvidence, HostFlowError> {
    let nonce = hex::decode(nonce).map_err(|e| HostFlowError::Challenge(format!("nonce: {e}")))?;
    let selection: runtrust_attestation::PcrSelection =
        selection.parse().map_err(|e| HostFlowError::Challenge(format!("PCR selection: {e}")))?;
    // docs/design.md §14: through the host agent the quote may attest a batch, with this nonce's proof.
    let q = tpm.quote_nonce(&nonce, &selection)?;
    let batch = q.batch.as_ref().map(BatchProof::from);
    Ok(QuoteEvidence { attest: q.quote.attest, signature: q.quote.signature, pcrs: q.quote.pcrs, batch })
}

pub struct Client {
    http: reqwest::blocking::Client,
    base: String,
    bearer: Option<String>,
}

fn read(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|e| ClientError::File { path: path.to_owned(), detail: e.to_string() })
}

fn tls_config(server_ca: Option<&Path>) -> Result<rustls::ClientConfig, ClientError> {
    let pem = match server_ca {
        Some(p) => read(p)?,
        None => read(Path::new(SYSTEM_CA_BUNDLE))?,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| ClientError::Tls(format!("CA certificate: {e}")))?;
        roots.add(cert).map_err(|e| ClientError::Tls(format!("CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(ClientError::Tls("no CA certificate in --server-ca".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Client {
    /// A client for `opts.server`; the credential is read now if given.
    pub fn new(opts: &ClientOptions) -> Result<Self, ClientError> {
        let server = opts.server.as_deref().filter(|s| !s.is_empty()).ok_or(ClientError::NoServer)?;
        let base = server.trim_end_matches('/').to_owned();
        if !base.starts_with("https://") {
            return Err(ClientError::Tls(format!("{base}: the service is reached over https:// only")));
        }
        let bearer = match &opts.credential {
            Some(p) => {
                let text = String::from_utf8(read(p)?)
                    .map_err(|_| ClientError::File { path: p.clone(), detail: "not UTF-8".into() })?;
                let c = text.trim().to_owned();
                if c.is_empty() {
                    return Err(ClientError::File { path: p.clone(), detail: "empty credential file".into() });
                }
                Some(c)
            }
            None => None,
        };
        let http = reqwest::blocking::Client::builder()
            .use_preconfigured_tls(tls_config(opts.server_ca.as_deref())?)
            // No idle connection reuse: the service closes a connection after refusing a request (e.g. an
            // oversized body), and a CLI makes only a few requests, so a stale pooled connection would only
            // ever turn into a spurious "unreachable".
            .pool_max_idle_per_host(0)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        Ok(Self { http, base, bearer })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn send(&self, req: reqwest::blocking::RequestBuilder, url: &str) -> Result<Response, ClientError> {
        let req = match &self.bearer {
            Some(b) => req.bearer_auth(b),
            None => req,
        };
        req.send().map_err(|e| transport_error(url, &e))
    }

    fn answer<T: DeserializeOwned>(resp: Response, url: &str) -> Result<T, ClientError> {
        let status = resp.status();
        let is_problem =
            resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("problem+json"));
        let body = resp.bytes().map_err(|e| ClientError::Unavailable { url: url.into(), detail: error_chain(&e) })?;
        if status.is_success() {
            let body = if body.is_empty() { &b"null"[..] } else { &body[..] };
            return serde_json::from_slice(body)
                .map_err(|e| ClientError::Protocol { url: url.into(), detail: format!("{status}: {e}") });
        }
        if is_problem {
            if let Ok(p) = serde_json::from_slice::<Problem>(&body) {
                return Err(ClientError::Denied(Box::new(p)));
            }
        }
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        Err(ClientError::Protocol { url: url.into(), detail: format!("{status}: {text}") })
    }

    /// The service's base URL, as given (`https://host:port`).
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = self.url(path);
        Self::answer(self.send(self.http.get(&url), &url)?, &url)
    }

    pub fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        let url = self.url(path);
        Self::answer(self.send(self.http.post(&url).json(body), &url)?, &url)
    }

    /// GET returning raw bytes (e.g. the COSE_KeySet).
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        self.get_raw(path, None).map(|(body, _)| body)
    }

    /// GET returning raw bytes and the value of response header `name`, when present and ASCII.
    pub fn get_bytes_and_header(&self, path: &str, name: &str) -> Result<(Vec<u8>, Option<String>), ClientError> {
        self.get_raw(path, Some(name))
    }

    fn get_raw(&self, path: &str, header: Option<&str>) -> Result<(Vec<u8>, Option<String>), ClientError> {
        let url = self.url(path);
        let resp = self.send(self.http.get(&url), &url)?;
        if !resp.status().is_success() {
            return Self::answer::<serde_json::Value>(resp, &url).map(|_| (Vec::new(), None));
        }
        let value = header.and_then(|h| resp.headers().get(h)).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body =
            resp.bytes().map(|b| b.to_vec()).map_err(|e| ClientError::Unavailable { url, detail: error_chain(&e) })?;
        Ok((body, value))
    }

    /// A text answer (e.g. a signed checkpoint).
    pub fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let bytes = self.get_bytes(path)?;
        String::from_utf8(bytes)
            .map_err(|_| ClientError::Protocol { url: self.url(path), detail: "answer is not UTF-8".into() })
    }

    pub fn delete(&self, path: &str) -> Result<(), ClientError> {
        let url = self.url(path);
        Self::answer::<serde_json::Value>(self.send(self.http.delete(&url), &url)?, &url).map(|_| ())
    }
}

/// reqwest errors hide their cause (connection refused, certificate unknown) in the source chain.
/// A failed request: a certificate the pinned CA does not vouch for is a TLS trust failure (permanent: a
/// wrong or missing --server-ca); anything else is the service being unreachable (transient).
fn transport_error(url: &str, e: &reqwest::Error) -> ClientError {
    let detail = error_chain(e);
    if detail.contains("invalid peer certificate") {
        return ClientError::TlsTrust { url: url.to_owned(), detail };
    }
    ClientError::Unavailable { url: url.to_owned(), detail }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
