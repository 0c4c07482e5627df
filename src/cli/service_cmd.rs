//! `runtrust init` and `runtrust serve`.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use serde_json::json;

use super::args::{LogFormatArg, SigningAlgArg};
use super::{init_tracing, print_json, CliError, CliResult, GlobalOpts};
use crate::config::{LogFormat, ServiceConfig};
use crate::service::init::{init as init_data_dir, InitOptions, DEFAULT_LISTEN};
use crate::service::{LoadOptions, ServeOptions};

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// The service's data directory (created mode 0700).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// Address the service listens on; port 0 picks a free port at each start.
    #[arg(long, default_value = DEFAULT_LISTEN, value_name = "ADDR")]
    listen: String,
    /// PEM file with EK certificate trust anchors (TPM vendor roots or intermediates); repeatable.
    /// For swtpm: its local CA's swtpm-localca-rootca-cert.pem.
    #[arg(long, value_name = "PEM")]
    ek_ca: Vec<PathBuf>,
    /// The service's name: the `iss` of its tokens.
    #[arg(long, default_value = "runtrust", value_name = "ID")]
    service_id: String,
    /// Extra DNS name or IP address for the TLS certificate (localhost, loopback and the host name are
    /// always included); repeatable.
    #[arg(long, value_name = "NAME")]
    tls_san: Vec<String>,
    /// Replace an existing data directory (its keys, store and credentials are discarded).
    #[arg(long)]
    force: bool,
    /// Token signature algorithm.
    #[arg(long, value_enum, default_value_t = SigningAlgArg::EdDsa)]
    token_alg: SigningAlgArg,
    /// PEM public key of a policy authority (repeatable); with any, unsigned policies are refused.
    #[arg(long, value_name = "PEM")]
    policy_authority: Vec<PathBuf>,
    /// A PostgreSQL database shared by replicas (postgres://USER@HOST:PORT/DB); default: the embedded
    /// store in DIR/store. Initialize once, then copy the data directory to each replica.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
}

pub fn init(a: InitArgs, g: &GlobalOpts) -> CliResult {
    let report = init_data_dir(&InitOptions {
        data_dir: a.data_dir,
        listen: a.listen,
        ek_ca: a.ek_ca,
        service_id: a.service_id,
        tls_san: a.tls_san,
        force: a.force,
        token_alg: a.token_alg.into(),
        policy_authority: a.policy_authority,
        store: a.store,
    })
    .map_err(anyhow::Error::from)?;
    if g.json {
        print_json(&serde_json::to_value(&report).map_err(anyhow::Error::from)?);
        return Ok(());
    }
    let d = report.data_dir.display();
    println!("initialized runtrust service {:?} in {d}", report.service_id);
    println!("  config:            {}", report.config.display());
    println!("  listen:            https://{}", report.listen);
    println!("  issuer key:        {} (Ed25519, 0600)", report.issuer_key.display());
    println!("  TLS CA:            {} (clients: --server-ca)", report.tls_ca.display());
    println!("  TLS names:         {}", report.tls_names.join(", "));
    if report.ek_anchors.is_empty() {
        println!("  EK trust anchors:  none (enrollment will refuse every EK certificate; re-run with --ek-ca)");
    }
    for a in &report.ek_anchors {
        println!("  EK trust anchor:   {}", a.display());
    }
    println!("  admin credential:  {} (0600, keep it secret)", report.admin_credential.display());
    println!("next: runtrust serve --data-dir {d}");
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The data directory made by `runtrust init`.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// Log format on stderr (default: the config's log_format). RUST_LOG filters (default: info).
    #[arg(long, env = "RUNTRUST_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormatArg>,
    /// Start although the store holds less than its high-water mark (it lost its tail: an older backup, a
    /// truncation), accepting the loss; audited. Restoring a recent enough backup is the better way out.
    #[arg(long)]
    accept_store_rollback: bool,
    /// Address to listen on instead of the config's (each replica of a shared store its own).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
}

pub fn serve(a: ServeArgs) -> CliResult {
    let config = ServiceConfig::load(&a.data_dir).map_err(|e| {
        CliError::Other(anyhow::anyhow!("{e}\n  hint: create a data directory with: runtrust init --data-dir DIR"))
    })?;
    init_tracing("info", a.log_format.map(LogFormat::from).unwrap_or(config.log_format));
    let options =
        ServeOptions { load: LoadOptions { accept_store_rollback: a.accept_store_rollback }, listen: a.listen };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    runtime
        .block_on(crate::service::serve(a.data_dir, options, |addr| {
            let mut out = std::io::stdout();
            let _ = writeln!(out, "runtrust: serving on https://{addr}");
            let _ = out.flush();
        }))
        .map_err(anyhow::Error::from)?;
    eprintln!("runtrust: stopped");
    Ok(())
}

/// `{"ok": true}`-style confirmation for commands without output.
pub(crate) fn done(g: &GlobalOpts, text: &str) {
    if g.json {
        print_json(&json!({ "ok": true, "message": text }));
    } else {
        println!("{text}");
    }
}
