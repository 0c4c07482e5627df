//! `runtrust lineage CTI`: a token's ancestry, its descendants as a tree, and the executions under each.

use clap::Args;

use crate::api::{routes, Lineage, LineageNode};

use super::{print_json, CliResult, GlobalOpts};

#[derive(Args, Debug)]
#[command(
    after_help = "Status is one of: active, spent (single use, used), expired, revoked (with what was revoked and why)."
)]
pub struct LineageArgs {
    /// The token's cti (hex).
    cti: String,
}

pub fn run(a: LineageArgs, g: &GlobalOpts) -> CliResult {
    let client = g.client()?;
    let lineage: Lineage = client.get(&routes::path(routes::LINEAGE, &[&a.cti]))?;
    if g.json {
        print_json(&lineage);
        return Ok(());
    }
    if !lineage.ancestors.is_empty() {
        println!("ancestry (root first):");
        for (i, n) in lineage.ancestors.iter().enumerate() {
            println!("{}{}", "  ".repeat(i + 1), line(n));
        }
    }
    println!("token and descendants:");
    print_tree(&lineage.token, 1);
    if lineage.truncated {
        println!("(truncated: more descendants than shown)");
    }
    Ok(())
}

fn line(n: &LineageNode) -> String {
    let mut out = format!("{} {} [{}] host {} depth {}", n.cti, n.scope, n.status.name(), n.host_id, n.depth);
    if let Some(r) = &n.revoked {
        out.push_str(&format!(" — revoked via {} by {}: {}", r.via, r.by, r.reason));
    }
    out
}

fn print_tree(n: &LineageNode, depth: usize) {
    let pad = "  ".repeat(depth);
    println!("{pad}{}", line(n));
    for e in &n.executions {
        let end = match &e.end {
            None => "running or not reported".to_owned(),
            Some(end) => match (end.exit_code, end.signal) {
                (Some(c), _) => format!("exit {c} after {} ms", end.duration_ms),
                (None, Some(sig)) => format!("signal {sig}"),
                _ => "ended".to_owned(),
            },
        };
        println!(
            "{pad}  ▸ execution {} at {} by {} scope {} argv {}: {end}",
            e.id,
            super::output::when(e.started_at),
            e.gateway,
            e.scope,
            e.argv_sha256.get(..16).unwrap_or("")
        );
    }
    for c in n.children.iter().flatten() {
        print_tree(c, depth + 1);
    }
}
