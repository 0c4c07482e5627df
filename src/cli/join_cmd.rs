//! `runtrust join-token …` (admin): join tokens for onboarding a batch of hosts (docs/design.md §5).

use anyhow::anyhow;
use clap::Subcommand;

use super::service_cmd::done;
use super::{print_json, CliError, CliResult, GlobalOpts};
use crate::api::{routes, CreatedJoinToken, JoinTokenView, NewJoinToken};
use crate::token::rfc3339;

#[derive(Subcommand, Debug)]
pub enum JoinTokenCommand {
    /// Make a join token: each host that runs `runtrust enroll --join-token FILE` with it becomes an attester
    /// of its own, with exactly these tags. Prints the token once (or writes it to --out, mode 0600).
    Create {
        /// A tag every host it enrolls gets (e.g. role=web); repeatable.
        #[arg(long = "tag", value_name = "T")]
        tags: Vec<String>,
        /// How many hosts it may enroll.
        #[arg(long, default_value_t = 1, value_name = "N")]
        uses: u32,
        /// How long it lasts (30m, 24h, 7d).
        #[arg(long, default_value = "24h", value_name = "DURATION")]
        ttl: String,
        /// Write the token to this file (mode 0600) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
    },
    /// List join tokens: id, tags, uses spent, expiry (their secrets are never shown again).
    List,
    /// Revoke a join token: it enrolls no more hosts (those it enrolled keep their credentials).
    Revoke {
        /// The join token's id (from `join-token list` or `create`).
        id: String,
    },
}

fn line(t: &JoinTokenView) -> String {
    let expires = i64::try_from(t.expires_at).map_or_else(|_| t.expires_at.to_string(), rfc3339);
    format!("{}  tags=[{}]  used {}/{}  expires {expires}", t.id, t.tags.join(","), t.used, t.uses)
}

pub fn run(cmd: JoinTokenCommand, g: &GlobalOpts) -> CliResult {
    let client = g.client()?;
    match cmd {
        JoinTokenCommand::Create { tags, uses, ttl, out } => {
            let ttl_secs =
                crate::policy::parse_duration(&ttl).map_err(|e| CliError::Usage(anyhow!("--ttl {ttl:?}: {e}")))?;
            let created: CreatedJoinToken = client.post(routes::JOIN_TOKENS, &NewJoinToken { tags, uses, ttl_secs })?;
            if let Some(path) = &out {
                crate::fsutil::write_private(path, format!("{}\n", created.token).as_bytes())
                    .map_err(|e| anyhow!("{}: {e}", path.display()))?;
            }
            if g.json {
                let mut v = serde_json::to_value(&created).map_err(anyhow::Error::from)?;
                if out.is_some() {
                    v["token"] = serde_json::Value::Null;
                }
                print_json(&v);
            } else {
                println!("join token {}", line(&created.view));
                match &out {
                    Some(path) => println!("written to {} (mode 0600)", path.display()),
                    None => {
                        println!("the token (shown once; a host runs runtrust enroll --join-token FILE):");
                        println!("{}", created.token);
                    }
                }
            }
        }
        JoinTokenCommand::List => {
            let all: Vec<JoinTokenView> = client.get(routes::JOIN_TOKENS)?;
            if g.json {
                print_json(&serde_json::to_value(&all).map_err(anyhow::Error::from)?);
            } else if all.is_empty() {
                println!("no join tokens");
            } else {
                for t in &all {
                    println!("{}", line(t));
                }
            }
        }
        JoinTokenCommand::Revoke { id } => {
            client.delete(&routes::path(routes::JOIN_TOKEN, &[&id]))?;
            done(g, &format!("revoked join token {id}"));
        }
    }
    Ok(())
}
