//! `runtrust revoke token CTI | host HOST_ID | policy ID [--reason R]` (admin), and `revoke list`: the
//! signed revocation feed, verified with the issuer keys.

use anyhow::anyhow;
use clap::Subcommand;
use serde_json::json;

use super::token_cmd::with_issuer_keys;
use super::{print_json, CliError, CliResult, GlobalOpts};
use crate::api::{routes, RevocationFeed, RevocationView, RevokeRequest, SignedFeed};
use crate::model::RevocationKind;
use crate::token::{verify_detached, TokenError};

#[derive(Subcommand, Debug)]
pub enum RevokeCommand {
    /// Revoke a token and every token delegated from it.
    Token {
        /// The token's cti (hex; `runtrust token inspect` shows it).
        cti: String,
        /// Why (kept in the signed revocation feed and the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Revoke a host: its tokens, and any further issuance to it.
    Host {
        /// The host id (`runtrust hosts list`).
        host_id: String,
        /// Why (kept in the signed revocation feed and the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Revoke the applied version of a policy: the tokens issued under its hash, and further issuance
    /// under it (apply a corrected policy to issue again). A policy hash (64 hex digits, as tokens carry
    /// it) revokes that version, applied or superseded.
    Policy {
        /// Policy id, or policy hash.
        id: String,
        /// Why (kept in the signed revocation feed and the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// The revocation feed from SEQ on, its signature verified with the issuer keys.
    List {
        /// First revocation sequence number to list (0: the whole feed).
        #[arg(long, default_value_t = 0, value_name = "SEQ")]
        since: u64,
    },
}

pub fn run(cmd: RevokeCommand, g: &GlobalOpts) -> CliResult {
    let (kind, target, reason) = match cmd {
        RevokeCommand::Token { cti, reason } => (RevocationKind::Token, cti, reason),
        RevokeCommand::Host { host_id, reason } => (RevocationKind::Host, host_id, reason),
        RevokeCommand::Policy { id, reason } => (RevocationKind::Policy, id, reason),
        RevokeCommand::List { since } => return list(g, since),
    };
    let client = g.client()?;
    let req = RevokeRequest { kind, target, reason: reason.unwrap_or_default() };
    let r: RevocationView = client.post(routes::REVOCATIONS, &req)?;
    if g.json {
        print_json(&json!(r));
    } else {
        println!(
            "revoked {} {} (seq {}, audit entry {}): {} token(s) revoked with it",
            r.kind.name(),
            r.target,
            r.seq,
            r.audit_index,
            r.tokens.len()
        );
    }
    Ok(())
}

fn list(g: &GlobalOpts, since: u64) -> CliResult {
    let client = g.client()?;
    let signed: SignedFeed = client.get(&format!("{}?since={since}", routes::REVOCATIONS))?;
    let check = |keys: &_| verify_detached(&signed.signature, &signed.payload, keys);
    with_issuer_keys(g, None, check, |e| matches!(e, TokenError::UnknownKid(_)))?
        .map_err(|e| CliError::denied(e.code(), format!("revocation feed: {e}")))?;
    let feed: RevocationFeed =
        serde_json::from_slice(&signed.payload).map_err(|e| anyhow!("revocation feed payload: {e}"))?;
    if g.json {
        print_json(&json!(feed));
    } else {
        println!("revocation feed of {} (signature verified), next seq {}", feed.issuer, feed.next);
        for r in &feed.revocations {
            // A lift (`hosts unrevoke`) names the revocation it lifted; that host's earlier tokens stay revoked.
            let what = r.lifts.map_or_else(|| format!("{} tokens", r.tokens.len()), |seq| format!("lifts seq {seq}"));
            println!(
                "{:>5} {} {:<8} {} by {}: {} ({what})",
                r.seq,
                super::output::when(r.time),
                r.kind.name(),
                r.target,
                r.by,
                r.reason,
            );
        }
    }
    Ok(())
}
