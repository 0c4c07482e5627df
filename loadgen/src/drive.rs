//! The two phases of a run: enroll K simulated hosts (each its own attester principal, as the service
//! expects: a credential that enrolled one TPM cannot enroll another), then request tokens from C concurrent
//! workers for a fixed time. The requests are the real client's (`runtrust::client`), built from the
//! service's wire types; only the transport is async, to hold many keep-alive connections.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use runtrust::api::{
    routes, ActivationAnswer, ChallengeResponse, CreatedPrincipal, EnrollChallenge, EnrollRequest, Enrolled,
    NewPrincipal, TokenRequest, TokenResponse,
};
use runtrust::client::quote_challenge;
use runtrust::model::Role;
use tokio::sync::Semaphore;

use crate::ek_ca::TestCa;
use crate::http::{Api, CallError};
use crate::soft_tpm::SoftTpm;

/// One simulated host: its attester principal and its TPM.
pub struct Host {
    pub principal: String,
    pub credential: String,
    pub host_id: String,
    pub tpm: SoftTpm,
}

pub struct SetupOptions {
    pub hosts: usize,
    /// Enrollments in flight at once.
    pub parallel: usize,
    /// Principal names are PREFIX-N.
    pub prefix: String,
    /// The tag each attester principal confers (the policy selects hosts by it).
    pub tag: String,
}

/// Makes the principals and enrolls their hosts, `parallel` at a time. Any failure fails the setup.
pub async fn enroll_hosts(api: &Api, admin: &str, ca: Arc<TestCa>, opts: &SetupOptions) -> anyhow::Result<Vec<Host>> {
    let permits = Arc::new(Semaphore::new(opts.parallel.max(1)));
    let mut tasks = Vec::with_capacity(opts.hosts);
    for i in 0..opts.hosts {
        let (api, admin, ca, permits) = (api.clone(), admin.to_owned(), ca.clone(), permits.clone());
        let (name, tag) = (format!("{}-{i}", opts.prefix), opts.tag.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await.map_err(|e| anyhow!("{e}"))?;
            enroll_one(&api, &admin, &ca, name.clone(), tag, i as u64).await.with_context(|| format!("host {name}"))
        }));
    }
    let mut hosts = Vec::with_capacity(opts.hosts);
    for t in tasks {
        hosts.push(t.await.map_err(|e| anyhow!("enrollment task: {e}"))??);
    }
    Ok(hosts)
}

/// `runtrust principal add NAME --role attester --tag T`, then `runtrust enroll` on the software TPM.
async fn enroll_one(
    api: &Api,
    admin: &str,
    ca: &TestCa,
    name: String,
    tag: String,
    serial: u64,
) -> anyhow::Result<Host> {
    let new = NewPrincipal { name, role: Role::Attester, tags: vec![tag] };
    let created: CreatedPrincipal = api.post(admin, routes::PRINCIPALS, &new).await?;
    let mut tpm = SoftTpm::new()?;
    tpm.set_ek_certificate(ca.issue_ek_certificate(&tpm.ek_point(), serial)?);
    let cred = created.credential;
    let request = EnrollRequest {
        ek_certificate: runtrust::tpm::Tpm::ek_certificate(&mut tpm)?,
        ek_intermediates: Vec::new(),
        ek_public: tpm.ek().to_tpm2b(),
        ak_public: tpm.ak().to_tpm2b(),
        tags: Vec::new(),
    };
    let challenge: EnrollChallenge = api.post(&cred, routes::ENROLL, &request).await?;
    let secret = tpm.activate(&challenge.credential_blob, &challenge.encrypted_secret).context("ActivateCredential")?;
    let quote = quote_challenge(&mut tpm, &challenge.nonce, &challenge.pcr_selection)?;
    let path = routes::path(routes::ENROLL_ACTIVATE, &[&challenge.enrollment_id]);
    let enrolled: Enrolled = api.post(&cred, &path, &ActivationAnswer { secret, quote }).await?;
    Ok(Host { principal: created.name, credential: cred, host_id: enrolled.host_id, tpm })
}

pub struct LoadOptions {
    pub concurrency: usize,
    pub warmup: Duration,
    pub measure: Duration,
    pub scope: String,
    pub audience: String,
}

/// One issued token's timings.
#[derive(Clone, Copy)]
struct Sample {
    /// Challenge, quote and token request.
    total: Duration,
    challenge: Duration,
    token: Duration,
}

#[derive(Default)]
struct WorkerResult {
    samples: Vec<Sample>,
    errors: BTreeMap<String, u64>,
    warmup_tokens: u64,
    warmup_errors: u64,
    late_tokens: u64,
    first_errors: Vec<String>,
}

/// What the measured window saw.
pub struct LoadReport {
    pub workers: usize,
    pub window: Duration,
    pub tokens: u64,
    pub warmup_tokens: u64,
    pub warmup_errors: u64,
    /// Issued after the window closed (requests in flight at its end).
    pub late_tokens: u64,
    pub errors: BTreeMap<String, u64>,
    pub first_errors: Vec<String>,
    total: Vec<Duration>,
    challenge: Vec<Duration>,
    token: Vec<Duration>,
}

/// The q-quantile (nearest rank) of sorted values.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied().unwrap_or_default()
}

impl LoadReport {
    pub fn tokens_per_sec(&self) -> f64 {
        self.tokens as f64 / self.window.as_secs_f64()
    }

    /// Every token issued during the run: warm-up, window and late.
    pub fn issued(&self) -> u64 {
        self.warmup_tokens + self.tokens + self.late_tokens
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Latency of a whole token (challenge + quote + token request) at quantile q.
    pub fn total(&self, q: f64) -> Duration {
        quantile(&self.total, q)
    }

    pub fn challenge(&self, q: f64) -> Duration {
        quantile(&self.challenge, q)
    }

    pub fn token(&self, q: f64) -> Duration {
        quantile(&self.token, q)
    }

    pub fn max(&self) -> Duration {
        self.total.last().copied().unwrap_or_default()
    }
}

/// Runs `opts.concurrency` workers (at most one per host: a host's quotes must reach the service in clock
/// order), each cycling over its own hosts, for the warm-up and then the measured window. Worker i talks to
/// `apis[i % apis.len()]` (replicas of one store).
pub async fn run_load(apis: &[Api], hosts: Vec<Host>, opts: &LoadOptions) -> anyhow::Result<LoadReport> {
    let workers = opts.concurrency.clamp(1, hosts.len().max(1));
    let mut parts: Vec<Vec<Host>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, h) in hosts.into_iter().enumerate() {
        if let Some(p) = parts.get_mut(i % workers) {
            p.push(h);
        }
    }
    let start = Instant::now();
    let window_start = start + opts.warmup;
    let end = window_start + opts.measure;
    let mut tasks = Vec::with_capacity(workers);
    for (i, part) in parts.into_iter().enumerate() {
        let api = apis.get(i % apis.len().max(1)).cloned().ok_or_else(|| anyhow!("no server to load"))?;
        let (scope, audience) = (opts.scope.clone(), opts.audience.clone());
        tasks.push(tokio::spawn(worker(api, part, scope, audience, window_start, end)));
    }
    let mut all = WorkerResult::default();
    for t in tasks {
        let r = t.await.map_err(|e| anyhow!("worker: {e}"))?;
        all.samples.extend(r.samples);
        for (k, v) in r.errors {
            *all.errors.entry(k).or_default() += v;
        }
        all.warmup_tokens += r.warmup_tokens;
        all.warmup_errors += r.warmup_errors;
        all.late_tokens += r.late_tokens;
        if all.first_errors.len() < 5 {
            all.first_errors.extend(r.first_errors);
        }
    }
    let sorted = |f: fn(&Sample) -> Duration| {
        let mut v: Vec<Duration> = all.samples.iter().map(f).collect();
        v.sort_unstable();
        v
    };
    Ok(LoadReport {
        workers,
        window: opts.measure,
        tokens: all.samples.len() as u64,
        warmup_tokens: all.warmup_tokens,
        warmup_errors: all.warmup_errors,
        late_tokens: all.late_tokens,
        total: sorted(|s| s.total),
        challenge: sorted(|s| s.challenge),
        token: sorted(|s| s.token),
        errors: all.errors,
        first_errors: all.first_errors,
    })
}

async fn worker(
    api: Api,
    mut hosts: Vec<Host>,
    scope: String,
    audience: String,
    window_start: Instant,
    end: Instant,
) -> WorkerResult {
    let mut out = WorkerResult::default();
    let n = hosts.len();
    let mut i = 0usize;
    while Instant::now() < end && n > 0 {
        let Some(host) = hosts.get_mut(i % n) else { break };
        i = i.wrapping_add(1);
        let result = one_token(&api, host, &scope, &audience).await;
        let done = Instant::now();
        // A token counts in the window it completed in; requests still in flight at `end` finish uncounted.
        let in_window = done >= window_start && done <= end;
        match result {
            Ok(s) if in_window => out.samples.push(s),
            Ok(_) if done < window_start => out.warmup_tokens += 1,
            Ok(_) => out.late_tokens += 1,
            Err(e) => {
                if in_window {
                    *out.errors.entry(e.label()).or_default() += 1;
                } else if done < window_start {
                    out.warmup_errors += 1;
                }
                if out.first_errors.len() < 3 {
                    out.first_errors.push(format!("{}: {e}", host.principal));
                }
                // Do not spin on a service that refuses everything.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    out
}

/// `runtrust token request` for one host: challenge, quote, token request.
async fn one_token(api: &Api, host: &mut Host, scope: &str, audience: &str) -> Result<Sample, CallError> {
    let t0 = Instant::now();
    let challenge: ChallengeResponse = api.post(&host.credential, routes::CHALLENGE, &serde_json::json!({})).await?;
    let t1 = Instant::now();
    if challenge.event_log {
        return Err(CallError::Other("the policy wants an event log; simulated hosts have none".into()));
    }
    let quote = quote_challenge(&mut host.tpm, &challenge.nonce, &challenge.pcr_selection)
        .map_err(|e| CallError::Other(format!("quote: {e}")))?;
    let request = TokenRequest {
        nonce: challenge.nonce,
        scope: scope.to_owned(),
        audience: audience.to_owned(),
        ttl_secs: None,
        ak_name: hex::encode(host.tpm.ak_name()),
        quote,
        parent: None,
        for_host: None,
        event_log: None,
    };
    let t2 = Instant::now();
    let issued: TokenResponse = api.post(&host.credential, routes::TOKENS, &request).await?;
    let t3 = Instant::now();
    if issued.host_id != host.host_id {
        return Err(CallError::Other(format!("token for {} issued to {}", host.host_id, issued.host_id)));
    }
    Ok(Sample { total: t3 - t0, challenge: t1 - t0, token: t3 - t2 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<Duration> = (1..=1000).map(Duration::from_millis).collect();
        assert_eq!(quantile(&v, 0.5), Duration::from_millis(500));
        assert_eq!(quantile(&v, 0.99), Duration::from_millis(990));
        assert_eq!(quantile(&v, 0.999), Duration::from_millis(999));
        assert_eq!(quantile(&v, 1.0), Duration::from_millis(1000));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
        assert_eq!(quantile(&v[..1], 0.999), Duration::from_millis(1));
    }
}
