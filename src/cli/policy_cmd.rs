//! `runtrust policy check|hash|apply|list|capture|sign|keygen`.

use std::path::PathBuf;

use anyhow::{anyhow, Context as _};
use clap::Subcommand;
use ring::rand::SystemRandom;
use runtrust_attestation::{DenialCode, HashAlg};
use serde_json::json;

use super::args::parse_selection;
use super::args::SigningAlgArg;
use super::{print_json, CliError, CliResult, GlobalOpts};
use crate::api::routes;
use crate::api::{ApplyPolicy, PolicyView};
use crate::fsutil;
use crate::token::IssuerKey;
use crate::tpm::{Tpm, TssTpm};

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate a policy file offline; errors carry file:line:column. Prints its id and hash.
    Check {
        /// The policy file (TOML, policies/README.md).
        file: PathBuf,
    },
    /// The policy hash: SHA-256 of the file's bytes (carried in every token issued under it).
    Hash {
        /// The policy file.
        file: PathBuf,
    },
    /// Apply a policy (admin); it replaces any policy with the same id.
    Apply {
        /// The policy file.
        file: PathBuf,
        /// Detached signature by a policy authority (`runtrust policy sign`).
        #[arg(long, value_name = "FILE")]
        signature: Option<PathBuf>,
    },
    /// List applied policies (admin, auditor).
    List,
    /// Write a policy from this host's current PCRs (run it on the golden host).
    Capture {
        /// The new policy's id (a policy with the same id is replaced when applied).
        #[arg(long)]
        id: String,
        /// Bank for PCR lists that do not name one (sha1, sha256, sha384, sha512).
        #[arg(long, default_value = "sha256")]
        bank: HashAlg,
        /// PCRs to pin: ranges and lists (0-7) or banks (sha1:0-7+sha256:0-7).
        #[arg(long, default_value = "0-7")]
        pcrs: String,
        /// Scope pattern to grant (repeatable), e.g. deploy/web/*.
        #[arg(long = "scope", value_name = "PATTERN", required = true)]
        scopes: Vec<String>,
        /// Principal allowed to request those scopes (repeatable); default: any attester.
        #[arg(long = "principal", value_name = "NAME")]
        principals: Vec<String>,
        /// Select hosts by tag (repeatable; a host needs all of them). Default: this host, by its id.
        #[arg(long = "tag", value_name = "T")]
        tags: Vec<String>,
        /// Write here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Also write [measured_boot] rules from this host's TCG event log (it must replay to the TPM's
        /// sha256 PCRs), e.g. /sys/kernel/security/tpm0/binary_bios_measurements.
        #[arg(long, value_name = "FILE")]
        event_log: Option<PathBuf>,
    },
    /// Sign a policy as a policy authority: a detached COSE_Sign1 over the file's bytes.
    Sign {
        /// The policy file to sign.
        file: PathBuf,
        /// The authority's private key (PKCS#8, from `policy keygen`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The signature algorithm (the key's).
        #[arg(long, value_enum, default_value_t = SigningAlgArg::EdDsa)]
        alg: SigningAlgArg,
        /// Where to write the detached signature (give it to `policy apply --signature`).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Create a policy authority key pair: PREFIX.pk8 (private, 0600) and PREFIX.pem (public, for init
    /// --policy-authority).
    Keygen {
        /// Path prefix of the two files written: PREFIX.pk8 and PREFIX.pem.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
        /// The key's algorithm.
        #[arg(long, value_enum, default_value_t = SigningAlgArg::EdDsa)]
        alg: SigningAlgArg,
    },
}

fn read(p: &PathBuf) -> Result<Vec<u8>, CliError> {
    std::fs::read(p).with_context(|| format!("reading {}", p.display())).map_err(CliError::from)
}

pub fn run(cmd: PolicyCommand, g: &GlobalOpts) -> CliResult {
    match cmd {
        PolicyCommand::Check { file } => {
            let bytes = read(&file)?;
            let name = file.display().to_string();
            let loaded =
                crate::policy::parse(&name, &bytes).map_err(|e| CliError::denied(DenialCode::PolicyMismatch, e))?;
            let p = &loaded.policy;
            if g.json {
                print_json(&json!({ "valid": true, "id": p.id, "hash": hex::encode(loaded.hash),
                    "selection": p.selection().to_string() }));
            } else {
                println!("{name}: ok: policy {}, hash {}", p.id, hex::encode(loaded.hash));
                println!("  pins PCRs {}", p.selection());
            }
        }
        PolicyCommand::Hash { file } => {
            let bytes = read(&file)?;
            println!("{}", hex::encode(HashAlg::Sha256.digest(&bytes)));
        }
        PolicyCommand::Apply { file, signature } => {
            let policy = read(&file)?;
            // Check locally first, for errors with line numbers of this file.
            crate::policy::parse(&file.display().to_string(), &policy)
                .map_err(|e| CliError::denied(DenialCode::PolicyMismatch, e))?;
            let signature = signature.as_ref().map(read).transpose()?;
            let view: PolicyView = g.client()?.post(routes::POLICIES, &ApplyPolicy { policy, signature })?;
            if g.json {
                print_json(&serde_json::to_value(&view).map_err(anyhow::Error::from)?);
            } else {
                println!("applied policy {} (hash {})", view.id, view.hash);
            }
        }
        PolicyCommand::List => {
            let all: Vec<PolicyView> = g.client()?.get(routes::POLICIES)?;
            if g.json {
                print_json(&serde_json::to_value(&all).map_err(anyhow::Error::from)?);
            } else {
                for p in all {
                    println!(
                        "{:<24} {}  applied {} by {}{}",
                        p.id,
                        p.hash,
                        super::output::when(p.applied_at),
                        p.applied_by,
                        if p.signed_by.is_some() { " (signed)" } else { "" }
                    );
                }
            }
        }
        PolicyCommand::Capture { id, bank, pcrs, scopes, principals, tags, out, event_log } => {
            let sel = parse_selection(bank, &pcrs).map_err(|e| anyhow!("--pcrs: {e}"))?;
            let mut tpm = TssTpm::open(g.tpm_options())?;
            let values = tpm.pcr_read(&sel)?;
            let host_ids = if tags.is_empty() {
                let ek = tpm.ek_public()?;
                vec![crate::model::HostId::of_ek(&ek).to_string()]
            } else {
                Vec::new()
            };
            let principals = if principals.is_empty() { vec!["*".to_owned()] } else { principals };
            let mut text = crate::policy::capture(&id, &values, &scopes, &principals, &tags, &host_ids);
            if let Some(path) = event_log {
                text.push_str(&capture_measured_boot(&mut tpm, &path)?);
            }
            // What we write must be what `policy check` accepts.
            crate::policy::parse("captured policy", text.as_bytes()).map_err(|e| anyhow!("captured policy: {e}"))?;
            match out {
                Some(p) => {
                    fsutil::write_atomic(&p, text.as_bytes(), 0o644)
                        .with_context(|| format!("writing {}", p.display()))?;
                    eprintln!("wrote policy {id} ({} PCRs) to {}", values.len(), p.display());
                }
                None => print!("{text}"),
            }
        }
        PolicyCommand::Sign { file, key, alg, out } => {
            let policy = read(&file)?;
            let pkcs8 = read(&key)?;
            let k = IssuerKey::from_pkcs8(alg.into(), &pkcs8).map_err(|e| anyhow!("{}: {e}", key.display()))?;
            let sig = k.sign_detached(&policy, &SystemRandom::new()).map_err(|e| anyhow!("signing: {e}"))?;
            std::fs::write(&out, sig).with_context(|| format!("writing {}", out.display()))?;
            println!("signed {} with key {}", file.display(), hex::encode(k.kid()));
        }
        PolicyCommand::Keygen { out, alg } => {
            let (key, pkcs8) = IssuerKey::generate(alg.into(), &SystemRandom::new()).map_err(|e| anyhow!("{e}"))?;
            let (sk, pk) = (out.with_extension("pk8"), out.with_extension("pem"));
            fsutil::write_private(&sk, &pkcs8).with_context(|| format!("writing {}", sk.display()))?;
            let pem = key.public().to_pem();
            fsutil::write_atomic(&pk, pem.as_bytes(), 0o644).with_context(|| format!("writing {}", pk.display()))?;
            println!(
                "policy authority key {}: private {} (0600), public {}",
                hex::encode(key.kid()),
                sk.display(),
                pk.display()
            );
        }
    }
    Ok(())
}

/// The `[measured_boot]` section for `policy capture --event-log`: the log must first replay to this TPM's
/// sha256 PCRs 0-7 (and 8 when GRUB logged into it), so that the captured facts are this host's.
fn capture_measured_boot(tpm: &mut TssTpm, path: &std::path::Path) -> Result<String, CliError> {
    use crate::policy::MEASURED_BOOT_BANK;
    let log = super::eventlog_cmd::load(path)?;
    let pcr8 = log.events.iter().any(|e| e.pcr == 8 && e.is_extended());
    let pcrs: Vec<u8> = (0..=7).chain(pcr8.then_some(8)).collect();
    let sel = runtrust_attestation::PcrSelection::new(vec![runtrust_attestation::tpm2::PcrBank::new(
        MEASURED_BOOT_BANK,
        pcrs,
    )
    .map_err(|e| anyhow!("{e}"))?])
    .map_err(|e| anyhow!("{e}"))?;
    let values = tpm.pcr_read(&sel)?;
    let verified =
        log.verify(&values).map_err(|e| anyhow!("{}: does not match this host's TPM: {e}", path.display()))?;
    let facts = verified.facts().map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(crate::policy::capture_measured_boot(&facts))
}
