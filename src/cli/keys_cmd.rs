//! `runtrust keys list|export|rotate|retire`.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;

use super::args::SigningAlgArg;
use super::{print_json, CliResult, GlobalOpts};
use crate::api::routes;
use crate::token::SigningAlg;

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// The service's issuer public keys, for verifying tokens offline (`token verify --keys`).
    Export {
        /// cose: a COSE_KeySet (what `--keys` reads); pem: SubjectPublicKeyInfo PEM blocks.
        #[arg(long, value_enum, default_value = "cose")]
        format: KeyFormat,
        /// Write to FILE instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// The issuer keys: kid, algorithm, and which one signs (the others only verify).
    List,
    /// Stop trusting an older issuer key at once (admin), e.g. after a compromise: tokens it signed no longer
    /// verify once gateways fetch the keys anew. The signing key cannot be retired: rotate first. Audited;
    /// the key file stays in the data directory for you to destroy.
    Retire {
        /// The key's kid, hex (from `keys list`).
        kid: String,
        /// Why, for the audit log (e.g. "rotation finished", "key file leaked").
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Start signing with a new issuer key (admin); tokens signed by old keys verify until they expire.
    Rotate {
        /// Algorithm of the new key (default: the current key's).
        #[arg(long, value_enum)]
        alg: Option<SigningAlgArg>,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum KeyFormat {
    /// COSE_KeySet (CBOR), as GET /v1/keys serves it.
    Cose,
    /// SubjectPublicKeyInfo PEM blocks.
    Pem,
}

pub fn run(cmd: KeysCommand, g: &GlobalOpts) -> CliResult {
    let client = g.client()?;
    match cmd {
        KeysCommand::Export { format, out } => {
            let bytes = match format {
                KeyFormat::Cose => client.get_bytes(routes::KEYS)?,
                KeyFormat::Pem => client.get_bytes(&format!("{}?format=pem", routes::KEYS))?,
            };
            match out {
                Some(p) => std::fs::write(&p, &bytes).with_context(|| format!("writing {}", p.display()))?,
                None => std::io::stdout().write_all(&bytes).context("writing stdout")?,
            }
        }
        KeysCommand::List => {
            let rows: Vec<serde_json::Value> = client.get(&format!("{}?format=json", routes::KEYS))?;
            if g.json {
                print_json(&serde_json::Value::Array(rows));
            } else {
                for r in &rows {
                    println!(
                        "{}  {:<5}  {}",
                        r["kid"].as_str().unwrap_or("?"),
                        r["alg"].as_str().unwrap_or("?"),
                        r["role"].as_str().unwrap_or("?")
                    );
                }
            }
        }
        KeysCommand::Retire { kid, reason } => {
            let path = routes::path(routes::KEY_RETIRE, &[&kid]);
            let v: serde_json::Value = client.post(&path, &serde_json::json!({ "reason": reason }))?;
            if g.json {
                print_json(&v);
            } else {
                println!(
                    "retired issuer key {} (its file {} stays: destroy it when you are sure)",
                    v["kid"].as_str().unwrap_or("?"),
                    v["file"].as_str().unwrap_or("?")
                );
            }
        }
        KeysCommand::Rotate { alg } => {
            let v: serde_json::Value =
                client.post(routes::KEYS_ROTATE, &serde_json::json!({ "alg": alg.map(SigningAlg::from) }))?;
            if g.json {
                print_json(&v);
            } else {
                println!("new issuer key {}", v["kid"].as_str().unwrap_or("?"));
            }
        }
    }
    Ok(())
}
