//! `runtrust audit tail`: the latest decisions.

use clap::Subcommand;

use super::{CliResult, GlobalOpts};

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// The last N audit entries (auditor, admin); with --json one entry per line.
    Tail {
        #[arg(short = 'n', default_value_t = 20)]
        n: usize,
    },
}

pub fn run(cmd: AuditCommand, g: &GlobalOpts) -> CliResult {
    let AuditCommand::Tail { n } = cmd;
    let client = g.client()?;
    let mut all: Vec<serde_json::Value> = Vec::new();
    let mut from = 0u64;
    loop {
        let page: Vec<serde_json::Value> = client.get(&format!("/v1/audit?from={from}&limit=1000"))?;
        let Some(last) = page.last().and_then(|e| e["index"].as_u64()) else { break };
        from = last + 1;
        let done = page.len() < 1000;
        all.extend(page);
        if done {
            break;
        }
    }
    let tail = &all[all.len().saturating_sub(n)..];
    for e in tail {
        if g.json {
            println!("{}", serde_json::to_string(e).unwrap_or_default());
        } else {
            println!(
                "{:>6} {} {:<12} {:<24} {}",
                e["index"],
                e["time"],
                e["event"].as_str().unwrap_or(""),
                e["code"].as_str().unwrap_or("allow"),
                e["detail"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}
