//! `runtrust-loadgen agent`: one enrolled host's token requests through its `runtrust agent` (docs/design.md
//! §14), C at once, each token verified as `runtrust token verify` would (issuer signature, iss, aud, scope,
//! time). What `runtrust token request` does, minus its process start: the agent's batching and the service
//! are measured, not the cost of starting a CLI per token.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use runtrust::agent::AgentTpm;
use runtrust::api::{routes, ChallengeResponse, TokenRequest, TokenResponse};
use runtrust::client::quote_challenge;
use runtrust::token::{verify, Expectations, KeySet};
use runtrust::tpm::Tpm;

use crate::http::{Api, CallError};

pub struct AgentLoad {
    pub socket: PathBuf,
    pub credential: String,
    pub scope: String,
    pub audience: String,
    pub concurrency: usize,
    pub warmup: Duration,
    pub measure: Duration,
}

/// What the window saw.
#[derive(Default)]
pub struct AgentReport {
    pub verified: u64,
    pub window: Duration,
    pub latencies: Vec<Duration>,
    pub errors: BTreeMap<String, u64>,
    pub first_errors: Vec<String>,
}

impl AgentReport {
    pub fn per_sec(&self) -> f64 {
        self.verified as f64 / self.window.as_secs_f64().max(1e-9)
    }

    pub fn quantile(&self, q: f64) -> Duration {
        let n = self.latencies.len();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        self.latencies.get(rank - 1).copied().unwrap_or_default()
    }
}

struct Shared {
    api: Api,
    keys: KeySet,
    issuer: String,
    ak_name: String,
    load: AgentLoad,
}

/// Fetches the issuer keys and the AK's name, then runs the workers for the warm-up and the window.
pub async fn run(api: Api, load: AgentLoad) -> anyhow::Result<AgentReport> {
    let (bytes, issuer) = api.get_bytes_and_header(routes::KEYS, routes::SERVICE_ID_HEADER).await?;
    let keys = KeySet::from_cose_keyset(&bytes).map_err(|e| anyhow!("the service's key set: {e}"))?;
    let issuer = issuer.ok_or_else(|| anyhow!("{} named no service id", routes::KEYS))?;
    let socket = load.socket.clone();
    let ak_name = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        let mut agent = AgentTpm::connect(&socket).with_context(|| format!("connecting to {}", socket.display()))?;
        Ok(hex::encode(agent.ak_public()?.name()))
    })
    .await??;
    let shared = Arc::new(Shared { api, keys, issuer, ak_name, load });
    let start = Instant::now();
    let (window_start, end) = (start + shared.load.warmup, start + shared.load.warmup + shared.load.measure);
    let tasks: Vec<_> =
        (0..shared.load.concurrency.max(1)).map(|_| tokio::spawn(worker(shared.clone(), window_start, end))).collect();
    let mut report = AgentReport { window: shared.load.measure, ..AgentReport::default() };
    for t in tasks {
        let r = t.await.map_err(|e| anyhow!("worker: {e}"))?;
        report.verified += r.verified;
        report.latencies.extend(r.latencies);
        for (k, v) in r.errors {
            *report.errors.entry(k).or_default() += v;
        }
        report.first_errors.extend(r.first_errors);
        report.first_errors.truncate(5);
    }
    report.latencies.sort_unstable();
    Ok(report)
}

async fn worker(s: Arc<Shared>, window_start: Instant, end: Instant) -> AgentReport {
    let mut out = AgentReport::default();
    while Instant::now() < end {
        let t0 = Instant::now();
        let result = one_verified_token(&s).await;
        let done = Instant::now();
        let in_window = done >= window_start && done <= end;
        match result {
            Ok(()) if in_window => {
                out.verified += 1;
                out.latencies.push(done - t0);
            }
            Ok(()) => {}
            Err(e) => {
                if in_window {
                    *out.errors.entry(e.label()).or_default() += 1;
                }
                if out.first_errors.len() < 3 {
                    out.first_errors.push(e.to_string());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    out
}

/// `runtrust token request` then `runtrust token verify`: challenge, a quote through the agent (one
/// connection per request, as each CLI process makes), the token request, and the token's verification.
async fn one_verified_token(s: &Shared) -> Result<(), CallError> {
    let challenge: ChallengeResponse =
        s.api.post(&s.load.credential, routes::CHALLENGE, &serde_json::json!({})).await?;
    let socket = s.load.socket.clone();
    let (nonce, selection) = (challenge.nonce.clone(), challenge.pcr_selection.clone());
    let quote = tokio::task::spawn_blocking(move || {
        let mut agent = AgentTpm::connect(&socket).map_err(|e| format!("{}: {e}", socket.display()))?;
        quote_challenge(&mut agent, &nonce, &selection).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| CallError::Other(format!("quote: {e}")))?
    .map_err(|e| CallError::Other(format!("quote: {e}")))?;
    let request = TokenRequest {
        nonce: challenge.nonce,
        scope: s.load.scope.clone(),
        audience: s.load.audience.clone(),
        ttl_secs: None,
        ak_name: s.ak_name.clone(),
        quote,
        parent: None,
        for_host: None,
        event_log: None,
    };
    let issued: TokenResponse = s.api.post(&s.load.credential, routes::TOKENS, &request).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| CallError::Other(format!("clock: {e}")))?;
    let expect = Expectations {
        now: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
        issuer: &s.issuer,
        audience: Some(&s.load.audience),
        scope: Some(&s.load.scope),
        leeway_secs: 0,
    };
    let claims = verify(&issued.token, &s.keys, &expect).map_err(|e| CallError::Denied {
        status: 0,
        code: format!("verify_{}", e.code().as_str()),
        detail: e.to_string(),
    })?;
    if hex::encode(&claims.cti) != issued.cti {
        return Err(CallError::Other(format!(
            "token cti {} is not the issued {}",
            hex::encode(&claims.cti),
            issued.cti
        )));
    }
    Ok(())
}
