//! `runtrust ek-ca list|add|remove`: the service's EK certificate trust anchors (docs/design.md §5), changed
//! while it runs, without `init --force`.

use std::path::PathBuf;

use anyhow::{anyhow, Context as _};
use clap::Subcommand;

use super::{print_json, CliResult, GlobalOpts};
use crate::api::routes;
use crate::token::rfc3339;

#[derive(Subcommand, Debug)]
pub enum EkCaCommand {
    /// The trusted EK CA certificates: SHA-256 fingerprint, subject, expiry, file (admin, auditor).
    List,
    /// Trust the CA certificates in a PEM file (a TPM vendor's root or intermediate CA; admin). Audited.
    /// Enrollments use them at once; a service replica loads them at its next start.
    Add {
        /// PEM file with one or more CERTIFICATE blocks.
        file: PathBuf,
    },
    /// Stop trusting one CA certificate (admin). Audited. Hosts already enrolled stay enrolled; revoke them
    /// (`runtrust revoke host`) if their EK certificates should no longer count.
    Remove {
        /// The certificate's SHA-256 fingerprint, hex (from `ek-ca list`).
        fingerprint: String,
    },
}

#[derive(serde::Deserialize, serde::Serialize)]
struct Anchor {
    fingerprint: String,
    subject: String,
    not_after: i64,
    file: PathBuf,
}

fn print(anchors: &[Anchor]) {
    for a in anchors {
        println!("{}  {}  expires {}  ({})", a.fingerprint, a.subject, rfc3339(a.not_after), a.file.display());
    }
}

pub fn run(cmd: EkCaCommand, g: &GlobalOpts) -> CliResult {
    let client = g.client()?;
    match cmd {
        EkCaCommand::List => {
            let all: Vec<Anchor> = client.get(routes::EK_ANCHORS)?;
            if g.json {
                print_json(&serde_json::to_value(&all).map_err(anyhow::Error::from)?);
            } else if all.is_empty() {
                println!("no EK trust anchors: enrollment with an EK certificate is refused (runtrust ek-ca add PEM)");
            } else {
                print(&all);
            }
        }
        EkCaCommand::Add { file } => {
            let pem = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let added: Vec<Anchor> = client.post(routes::EK_ANCHORS, &serde_json::json!({ "pem": pem }))?;
            if g.json {
                print_json(&serde_json::to_value(&added).map_err(anyhow::Error::from)?);
            } else {
                println!("now trusted:");
                print(&added);
            }
        }
        EkCaCommand::Remove { fingerprint } => {
            if fingerprint.len() != 64 || !fingerprint.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(super::CliError::Usage(anyhow!(
                    "{fingerprint:?} is not a SHA-256 fingerprint (64 hex digits, from `runtrust ek-ca list`)"
                )));
            }
            client.delete(&routes::path(routes::EK_ANCHOR, &[&fingerprint]))?;
            if g.json {
                print_json(&serde_json::json!({ "removed": fingerprint }));
            } else {
                println!("no longer trusted: {fingerprint}");
            }
        }
    }
    Ok(())
}
