//! runtrust-loadgen: drives a runtrust service with simulated attesters (software TPMs) and reports what
//! issuance sustains. scripts/bench-issuance.sh runs it end to end; docs/performance.md has the numbers.
//!
//!     runtrust-loadgen ek-ca --out DIR                    # test EK CA for `runtrust init --ek-ca DIR/ek-ca.pem`
//!     runtrust-loadgen policy --id ID --tag T --scope S --out FILE   # the simulated hosts' golden policy
//!     runtrust-loadgen run --server URL --server-ca PEM --admin-credential FILE --ek-ca DIR \
//!                          --hosts K --concurrency C --seconds S
//!     runtrust-loadgen floor                              # the crypto floor alone
//!     runtrust-loadgen agent --server URL --server-ca PEM --credential FILE --agent SOCKET \
//!                            --concurrency C --seconds S  # one enrolled host's tokens through its agent
//!
//! `run` prints its report on stderr and one summary line on stdout:
//! `tokens/s: N floor/s: F ratio: R p99_ms: P errors: E`.

mod agent;
mod drive;
mod ek_ca;
mod floor;
mod http;
mod marshal;
mod procstat;
mod soft_tpm;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use clap::{Parser, Subcommand};
use runtrust_attestation::tpm2::PcrSelection;

use drive::{LoadOptions, LoadReport, SetupOptions};
use ek_ca::TestCa;
use floor::Floor;
use http::{metric, Api};

#[derive(Parser, Debug)]
#[command(name = "runtrust-loadgen", version, about = "Load generator for runtrust: simulated attesters")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create the test EK CA: DIR/ek-ca.pem (give it to `runtrust init --ek-ca`) and DIR/ek-ca-key.pem.
    EkCa {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Write the policy that the simulated hosts' golden PCR values satisfy (as `runtrust policy capture`
    /// would on one of them), selecting hosts by --tag.
    Policy {
        #[arg(long, default_value = "loadgen")]
        id: String,
        #[arg(long, default_value = "loadgen=1", value_name = "T")]
        tag: String,
        #[arg(long = "scope", value_name = "PATTERN", default_value = "bench/*")]
        scopes: Vec<String>,
        /// PCRs to pin (sha256 bank).
        #[arg(long, default_value = "0-7")]
        pcrs: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Enroll --hosts simulated hosts, then request tokens from --concurrency workers for --seconds.
    Run(RunArgs),
    /// One enrolled host (its attester credential) requests tokens through its `runtrust agent`, C at once,
    /// and verifies each one; prints `verified tokens/s: N quotes: Q nonces_per_quote: B p99_ms: P errors: E`.
    Agent(AgentArgs),
    /// Measure the crypto floor only.
    Floor {
        #[arg(long, default_value_t = 1000)]
        millis: u64,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The service, https://HOST:PORT; several (comma-separated or repeated) for replicas of one store: setup
    /// goes through the first, the load is spread over all of them (worker i uses server i mod N).
    #[arg(long, required = true, value_delimiter = ',')]
    server: Vec<String>,
    /// The service's CA (DATA_DIR/tls/ca.pem).
    #[arg(long, value_name = "PEM")]
    server_ca: PathBuf,
    /// An admin credential file (DATA_DIR/admin.credential): makes the attester principals.
    #[arg(long, value_name = "FILE")]
    admin_credential: PathBuf,
    /// The directory `ek-ca --out` wrote.
    #[arg(long, value_name = "DIR")]
    ek_ca: PathBuf,
    #[arg(long, default_value_t = 100)]
    hosts: usize,
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Length of the measured window.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Load before the window, not counted.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Enrollments in flight at once.
    #[arg(long, default_value_t = 32)]
    setup_parallel: usize,
    /// Tag each attester principal confers (the policy's host selector).
    #[arg(long, default_value = "loadgen=1")]
    tag: String,
    /// Scope each token is requested for (within the policy's grant).
    #[arg(long, default_value = "bench/issue")]
    scope: String,
    #[arg(long, default_value = "loadgen")]
    audience: String,
    /// Principal names are PREFIX-N (default: lg-<random>).
    #[arg(long)]
    prefix: Option<String>,
    /// Milliseconds per operation for the crypto floor.
    #[arg(long, default_value_t = 1000)]
    floor_millis: u64,
    /// The service's store directory, to report its growth per host and per token.
    #[arg(long, value_name = "DIR")]
    store_dir: Option<PathBuf>,
    /// The service's process id, to report its CPU time and storage writes per token (Linux /proc).
    #[arg(long, value_name = "PID")]
    service_pid: Option<u32>,
}

#[derive(clap::Args, Debug)]
struct AgentArgs {
    /// The service, https://HOST:PORT.
    #[arg(long)]
    server: String,
    /// The service's CA (DATA_DIR/tls/ca.pem).
    #[arg(long, value_name = "PEM")]
    server_ca: PathBuf,
    /// The host's attester credential file (the host enrolled through this agent).
    #[arg(long, value_name = "FILE")]
    credential: PathBuf,
    /// The agent's socket.
    #[arg(long, value_name = "SOCKET")]
    agent: PathBuf,
    #[arg(long, default_value_t = 48)]
    concurrency: usize,
    /// Length of the measured window.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Load before the window, not counted.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Scope each token is requested for and verified against.
    #[arg(long)]
    scope: String,
    #[arg(long)]
    audience: String,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = real_main(cli) {
        eprintln!("runtrust-loadgen: {e:#}");
        std::process::exit(1);
    }
}

fn real_main(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::EkCa { out } => {
            let path = TestCa::generate()?.write(&out)?;
            println!("{}", path.display());
        }
        Cmd::Policy { id, tag, scopes, pcrs, out } => {
            let text = golden_policy(&id, &tag, &scopes, &pcrs)?;
            runtrust::fsutil::write_atomic(&out, text.as_bytes(), 0o644)
                .with_context(|| format!("writing {}", out.display()))?;
            eprintln!("wrote policy {id} (sha256 PCRs {pcrs}, hosts tagged {tag}) to {}", out.display());
        }
        Cmd::Floor { millis } => {
            let f = floor::measure(Duration::from_millis(millis))?;
            print_floor(&f);
            println!("floor/s: {:.0}", f.tokens_per_sec());
        }
        Cmd::Agent(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let line = runtime.block_on(run_agent(args))?;
            println!("{line}");
        }
        Cmd::Run(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let line = runtime.block_on(run(args))?;
            println!("{line}");
        }
    }
    Ok(())
}

async fn run_agent(a: AgentArgs) -> anyhow::Result<String> {
    let api = Api::new(&a.server, &a.server_ca, a.concurrency)?;
    let text = std::fs::read_to_string(&a.credential).with_context(|| format!("reading {}", a.credential.display()))?;
    let socket = a.agent.clone();
    let status = move || {
        let socket = socket.clone();
        async move {
            tokio::task::spawn_blocking(move || runtrust::agent::status(&socket))
                .await
                .map_err(|e| anyhow!("agent status: {e}"))?
                .map_err(|e| anyhow!("agent status: {e}"))
        }
    };
    let before = status().await?;
    let load = agent::AgentLoad {
        socket: a.agent,
        credential: text.trim().to_owned(),
        scope: a.scope,
        audience: a.audience,
        concurrency: a.concurrency,
        warmup: Duration::from_secs(a.warmup),
        measure: Duration::from_secs(a.seconds.max(1)),
    };
    let (warmup, concurrency) = (load.warmup, load.concurrency);
    let r = agent::run(api, load).await?;
    let after = status().await?;
    let quotes = after.quotes.saturating_sub(before.quotes);
    let nonces = after.quote_requests.saturating_sub(before.quote_requests);
    let mean_batch = nonces as f64 / quotes.max(1) as f64;
    eprintln!(
        "{} workers, {:.0} s warm-up + {:.0} s measured: {} verified tokens ({:.1}/s); over the whole run {} \
         nonces in {} TPM quotes (cap {}): {:.1} per quote, the agent's largest batch since it started {}; \
         latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        concurrency,
        warmup.as_secs_f64(),
        r.window.as_secs_f64(),
        r.verified,
        r.per_sec(),
        nonces,
        quotes,
        after.max_quotes_per_second.map_or("none".to_owned(), |q| format!("{q}/s")),
        mean_batch,
        after.largest_batch,
        ms(r.quantile(0.5)),
        ms(r.quantile(0.99)),
        ms(r.quantile(1.0)),
    );
    for (code, n) in &r.errors {
        eprintln!("  error {code}: {n}");
    }
    for e in &r.first_errors {
        eprintln!("  e.g. {e}");
    }
    let errors: u64 = r.errors.values().sum();
    Ok(format!(
        "verified tokens/s: {:.1} quotes: {quotes} nonces_per_quote: {mean_batch:.1} p99_ms: {:.1} errors: {errors}",
        r.per_sec(),
        ms(r.quantile(0.99))
    ))
}

/// `runtrust policy capture` on a golden simulated host: its PCR values, hosts selected by tag, any attester.
fn golden_policy(id: &str, tag: &str, scopes: &[String], pcrs: &str) -> anyhow::Result<String> {
    let sel =
        PcrSelection::parse_spec(runtrust_attestation::HashAlg::Sha256, pcrs).map_err(|e| anyhow!("--pcrs: {e}"))?;
    let values = soft_tpm::golden_pcrs().restrict(&sel).ok_or_else(|| anyhow!("--pcrs: simulated PCRs are 0-23"))?;
    let text = runtrust::policy::capture(id, &values, scopes, &["*".to_owned()], &[tag.to_owned()], &[]);
    runtrust::policy::parse("policy", text.as_bytes()).map_err(|e| anyhow!("generated policy: {e}"))?;
    Ok(text)
}

fn print_floor(f: &Floor) {
    eprintln!(
        "crypto floor (ring, one core): ECDSA P-256 verify {:.0}/s, Ed25519 sign {:.0}/s -> {:.0} tokens/s per core \
         x {} cores = {:.0}/s",
        f.ecdsa_p256_verify_per_sec,
        f.ed25519_sign_per_sec,
        f.per_core(),
        f.cores,
        f.tokens_per_sec()
    );
}

/// Bytes of the files under `dir` (sled's files: its log and snapshots).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The service's durable audit entries and its store's physical flushes (GET /metrics).
async fn store_counts(api: &Api) -> Option<(f64, f64)> {
    let text = api.get_text(runtrust::api::routes::METRICS).await.ok()?;
    Some((metric(&text, "runtrust_audit_entries")?, metric(&text, "runtrust_store_flushes_total")?))
}

/// Mean JSON size of the last 200 audit entries before index `end`, by event.
async fn audit_entry_sizes(api: &Api, admin: &str, end: u64) -> anyhow::Result<BTreeMap<String, (u64, f64)>> {
    let from = end.saturating_sub(200);
    let path = format!("{}?from={from}&limit=200", runtrust::api::routes::AUDIT);
    let text = api.get_text_as(Some(admin), &path).await?;
    let entries: Vec<runtrust::api::IndexedEntry> = serde_json::from_str(&text)?;
    let mut out: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for e in entries {
        // The entry as stored (the store keeps its JSON; the index is the key).
        let bytes = serde_json::to_string(&e.entry)?.len() as f64;
        let slot = out.entry(e.entry.event).or_default();
        slot.0 += 1;
        slot.1 += bytes;
    }
    Ok(out)
}

async fn run(a: RunArgs) -> anyhow::Result<String> {
    if a.hosts == 0 || a.concurrency == 0 || a.seconds == 0 {
        bail!("--hosts, --concurrency and --seconds must be at least 1");
    }
    let admin = std::fs::read_to_string(&a.admin_credential)
        .with_context(|| format!("reading {}", a.admin_credential.display()))?
        .trim()
        .to_owned();
    let ca = Arc::new(TestCa::load(&a.ek_ca)?);
    let pool = a.concurrency.max(a.setup_parallel) + 8;
    let mut apis = Vec::with_capacity(a.server.len());
    for server in &a.server {
        let api = Api::new(server, &a.server_ca, pool)?;
        api.get_text(runtrust::api::routes::HEALTHZ).await.with_context(|| format!("{server} is not answering"))?;
        apis.push(api);
    }
    let api = apis.first().cloned().ok_or_else(|| anyhow!("--server is required"))?;

    // The floor first, while the service is idle: the same machine, the same run.
    let floor_budget = Duration::from_millis(a.floor_millis);
    let floor = tokio::task::spawn_blocking(move || floor::measure(floor_budget)).await??;
    print_floor(&floor);

    let prefix = match a.prefix {
        Some(p) => p,
        None => {
            let nanos =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
            format!("lg-{:08x}", std::process::id() ^ nanos)
        }
    };
    let store_before = a.store_dir.as_deref().map(dir_bytes);
    let setup = SetupOptions { hosts: a.hosts, parallel: a.setup_parallel, prefix, tag: a.tag.clone() };
    let t = Instant::now();
    let hosts = drive::enroll_hosts(&api, &admin, ca, &setup).await?;
    let took = t.elapsed();
    eprintln!(
        "enrolled {} hosts (one attester principal each) in {:.1} s: {:.0} hosts/s with {} in flight",
        hosts.len(),
        took.as_secs_f64(),
        hosts.len() as f64 / took.as_secs_f64(),
        a.setup_parallel
    );
    let store_enrolled = a.store_dir.as_deref().map(dir_bytes);
    let counts_before = store_counts(&api).await;

    let opts = LoadOptions {
        concurrency: a.concurrency,
        warmup: Duration::from_secs(a.warmup),
        measure: Duration::from_secs(a.seconds),
        scope: a.scope,
        audience: a.audience,
    };
    let service_pid = a.service_pid.map(|p| p.to_string());
    let proc_before = (service_pid.as_deref().and_then(procstat::sample), procstat::sample("self"));
    let report = drive::run_load(&apis, hosts, &opts).await?;
    let proc_after = (service_pid.as_deref().and_then(procstat::sample), procstat::sample("self"));
    let counts_after = store_counts(&api).await;
    let audit_after = counts_after.map(|c| c.0);
    print_report(&report, &floor);
    let per_token = |before: Option<procstat::ProcSample>, after: Option<procstat::ProcSample>| {
        let (b, e) = (before?, after?);
        let tokens = report.issued().max(1) as f64;
        let writes = e.write_bytes.zip(b.write_bytes).map(|(e, b)| e.saturating_sub(b) as f64 / tokens);
        Some(((e.cpu_secs - b.cpu_secs) / tokens, writes))
    };
    if let Some((cpu, writes)) = per_token(proc_before.0, proc_after.0) {
        let writes = writes.map_or_else(|| "unknown".to_owned(), |w| format!("{w:.0} bytes"));
        eprintln!(
            "service cost per token (warm-up and window, {} tokens): {:.0} µs CPU, storage writes {writes}",
            report.issued(),
            cpu * 1e6
        );
    }
    if let Some((cpu, _)) = per_token(proc_before.1, proc_after.1) {
        eprintln!("load generator cost per token: {:.0} µs CPU (TLS, JSON, quote signing)", cpu * 1e6);
    }
    if let (Some(b), Some(e)) = (counts_before, counts_after) {
        let attempts = report.issued() + report.error_count() + report.warmup_errors;
        eprintln!(
            "audit: {:.0} entries during the load, {:.2} per token request (challenge.issue + token.issue)",
            e.0 - b.0,
            (e.0 - b.0) / attempts.max(1) as f64
        );
        eprintln!(
            "store flushes (first service): {:.0} during the load, {:.2} per token",
            e.1 - b.1,
            (e.1 - b.1) / report.issued().max(1) as f64
        );
    }
    if let Some(end) = audit_after {
        match audit_entry_sizes(&api, &admin, end as u64).await {
            Ok(sizes) => {
                let by_event: Vec<String> = sizes
                    .iter()
                    .map(|(event, (n, bytes))| format!("{event} {:.0} B (n={n})", bytes / *n as f64))
                    .collect();
                eprintln!("audit entry size (JSON as served, mean of the last 200): {}", by_event.join(", "));
            }
            Err(e) => eprintln!("audit entry sizes: {e:#}"),
        }
    }
    if let (Some(dir), Some(b), Some(m)) = (a.store_dir.as_deref(), store_before, store_enrolled) {
        let end = dir_bytes(dir);
        eprintln!(
            "store files: {} bytes before, {} after enrolling ({:.0} bytes per host), {} after the load ({:.0} bytes \
             per token; sled's log, garbage included)",
            b,
            m,
            m.saturating_sub(b) as f64 / a.hosts as f64,
            end,
            end.saturating_sub(m) as f64 / report.issued().max(1) as f64
        );
    }
    Ok(format!(
        "tokens/s: {:.1} floor/s: {:.0} ratio: {:.4} p99_ms: {:.1} errors: {}",
        report.tokens_per_sec(),
        floor.tokens_per_sec(),
        report.tokens_per_sec() / floor.tokens_per_sec(),
        ms(report.total(0.99)),
        report.error_count()
    ))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn print_report(r: &LoadReport, floor: &Floor) {
    eprintln!(
        "load: {} workers, {} tokens in {:.0} s = {:.1} tokens/s ({} in the warm-up, {} after the window)",
        r.workers,
        r.tokens,
        r.window.as_secs_f64(),
        r.tokens_per_sec(),
        r.warmup_tokens,
        r.late_tokens
    );
    eprintln!(
        "latency per token (challenge + quote + token request): p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms",
        ms(r.total(0.5)),
        ms(r.total(0.99)),
        ms(r.total(0.999)),
        ms(r.max())
    );
    eprintln!(
        "  POST /v1/challenge: p50 {:.1} ms, p99 {:.1} ms; POST /v1/tokens: p50 {:.1} ms, p99 {:.1} ms",
        ms(r.challenge(0.5)),
        ms(r.challenge(0.99)),
        ms(r.token(0.5)),
        ms(r.token(0.99))
    );
    if r.errors.is_empty() {
        eprintln!("errors: none");
    } else {
        let by_code: Vec<String> = r.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        eprintln!("errors by denial code: {}", by_code.join(", "));
    }
    if r.warmup_errors > 0 {
        eprintln!("errors during the warm-up: {}", r.warmup_errors);
    }
    for e in &r.first_errors {
        eprintln!("  e.g. {e}");
    }
    eprintln!(
        "ratio to the crypto floor: {:.1} / {:.0} = {:.4}",
        r.tokens_per_sec(),
        floor.tokens_per_sec(),
        r.tokens_per_sec() / floor.tokens_per_sec()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_golden_policy_pins_what_the_simulated_hosts_report() {
        let text = golden_policy("lg", "loadgen=1", &["bench/*".to_owned()], "0-7").unwrap();
        let loaded = runtrust::policy::parse("p", text.as_bytes()).unwrap();
        let p = &loaded.policy;
        let sel = p.selection();
        p.check_pcrs(&soft_tpm::golden_pcrs().restrict(&sel).unwrap()).unwrap();
        assert!(p.selects("sha256:00", &["loadgen=1".to_owned()]));
        assert!(!p.selects("sha256:00", &["other".to_owned()]));
        assert!(p.grants("lg-1", "bench/issue"));
        assert!(golden_policy("lg", "t", &["x".to_owned()], "sha1:0").is_err());
    }
}
