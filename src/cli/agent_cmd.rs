//! `runtrust agent` (docs/design.md §14): the host daemon, and `runtrust agent status`.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;

use super::{init_tracing, print_json, CliError, CliResult, GlobalOpts};
use crate::agent::{AgentConfig, AgentError, BatchConfig, PeerPolicy};
use crate::tpm::{Tpm, TssTpm};

#[derive(clap::Args, Debug)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Runs until SIGTERM or SIGINT. Clients (token request, exec, enroll) use the agent when its socket \
answers and open the TPM themselves otherwise.\n\n\
Batching: requests that arrive within one batch window share one TPM2_Quote whose qualifyingData is the\n\
Merkle root of their nonces (at most 64); each client gets the quote and its nonce's inclusion proof. A\n\
request that finds the agent idle is quoted at once.\n\n\
Peers are authorized by their kernel-reported uid/gid (SO_PEERCRED): root and the agent's own uid always,\n\
others by --allow-uid / --allow-gid (the client's primary gid). The socket is created 0660.\n\n\
The TPM, state directory and key algorithms are the global --tcti, --state-dir, --ek-alg and --ak-alg.\n\n\
Examples:\n  runtrust agent --allow-gid 990\n  runtrust agent status --json"
)]
pub struct AgentArgs {
    #[command(subcommand)]
    command: Option<AgentCommand>,
    /// The socket to listen on. Default: --agent / $RUNTRUST_AGENT, else /run/runtrust/agent.sock.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// At most N TPM quotes per second; requests wait for the next batch. Default: no cap.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    max_quotes_per_second: Option<u32>,
    /// How long a batch gathers requests before its quote, in milliseconds (0: only what queued while the
    /// TPM was busy).
    #[arg(long, value_name = "MS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    batch_window: u64,
    /// Also allow clients running as this uid (repeatable).
    #[arg(long = "allow-uid", value_name = "UID")]
    allow_uid: Vec<u32>,
    /// Also allow clients whose primary gid is this (repeatable).
    #[arg(long = "allow-gid", value_name = "GID")]
    allow_gid: Vec<u32>,
}

#[derive(Subcommand, Debug)]
enum AgentCommand {
    /// The running agent's counters: quotes (TPM quotes made), requests (served), largest batch, TPM quote
    /// latency.
    Status,
}

pub fn run(a: AgentArgs, g: &GlobalOpts) -> CliResult {
    match a.command {
        Some(AgentCommand::Status) => status(g),
        None => daemon(a, g),
    }
}

fn status(g: &GlobalOpts) -> CliResult {
    let socket = g.agent_socket();
    let s = crate::agent::status(&socket)?;
    if g.json {
        print_json(&s);
        return Ok(());
    }
    let qps = s.max_quotes_per_second.map_or("no cap".to_owned(), |n| format!("{n}/s"));
    println!(
        "agent {} (up {} s; batch window {} ms, quotes {qps})",
        socket.display(),
        s.uptime_secs,
        s.batch_window_ms
    );
    println!("quotes          {}", s.quotes);
    println!("requests        {} ({} quote requests, {} errors)", s.requests, s.quote_requests, s.errors);
    println!("largest batch   {}", s.largest_batch);
    println!(
        "quote latency   last {:.1} ms, mean {:.1} ms, max {:.1} ms",
        s.quote_latency_ms_last, s.quote_latency_ms_mean, s.quote_latency_ms_max
    );
    Ok(())
}

fn daemon(a: AgentArgs, g: &GlobalOpts) -> CliResult {
    init_tracing("info", crate::config::LogFormat::Text);
    let config = AgentConfig {
        socket: a.socket.unwrap_or_else(|| g.agent_socket()),
        batch: BatchConfig {
            window: Duration::from_millis(a.batch_window),
            max_quotes_per_second: a.max_quotes_per_second,
        },
        peers: PeerPolicy { own_uid: 0, uids: a.allow_uid, gids: a.allow_gid },
    };
    let tpm_options = g.tpm_options();
    let open = move || TssTpm::open(tpm_options.clone()).map(|t| Box::new(t) as Box<dyn Tpm>);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("starting tokio")?;
    let ready = |socket: &std::path::Path| {
        let mut out = std::io::stdout();
        let _ = writeln!(out, "runtrust: agent listening on {}", socket.display());
        let _ = out.flush();
    };
    runtime.block_on(crate::agent::serve(config, open, ready, crate::agent::wait_for_signal())).map_err(
        |e| match e {
            AgentError::Tpm(e) => CliError::from(e),
            e => CliError::Other(e.into()),
        },
    )?;
    eprintln!("runtrust: agent stopped");
    Ok(())
}
