//! `runtrust tpm …`: this host's TPM.

use std::fs;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use runtrust_attestation::HashAlg;
use serde_json::json;

use super::args::{parse_hex, parse_selection, Hex};
use super::{print_json, CliError, CliResult, GlobalOpts};
use crate::fsutil;
use crate::tpm::{Tpm, TssTpm};

#[derive(Subcommand, Debug)]
pub enum TpmCommand {
    /// Manufacturer, firmware, active PCR banks, EK certificate and AK status.
    Info,
    /// Read PCR values (prints pcrs.json with --json).
    Pcrs {
        /// Bank for PCR lists that do not name one (sha1, sha256, sha384, sha512).
        #[arg(long, default_value = "sha256")]
        bank: HashAlg,
        /// PCRs: ranges and lists (0-7, 0,2,4-6) or banks (sha1:0-7+sha256:0-7).
        #[arg(long, default_value = "0-23")]
        pcrs: String,
    },
    /// Quote PCRs with this host's AK (created under the EK on first use, then reused).
    ///
    /// Writes DIR/attest (TPMS_ATTEST), DIR/signature (TPMT_SIGNATURE), DIR/ak.pub (TPM2B_PUBLIC) and
    /// DIR/pcrs.json. tpm2_checkquote -u DIR/ak.pub -m DIR/attest -s DIR/signature -q NONCE verifies them.
    Quote {
        /// Qualifying data (the verifier's nonce), 1 to 64 bytes as hex.
        #[arg(long, value_parser = parse_hex)]
        nonce: Hex,
        /// Bank for PCR lists that do not name one (sha1, sha256, sha384, sha512).
        #[arg(long, default_value = "sha256")]
        bank: HashAlg,
        /// PCRs to quote: ranges and lists (0-7) or banks (sha1:0-7+sha256:0-7).
        #[arg(long, default_value = "0-7")]
        pcrs: String,
        /// Output directory (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Extend a PCR (demos and tests: it changes the platform state that quotes report).
    Extend {
        /// Bank for PCR lists that do not name one (sha1, sha256, sha384, sha512).
        #[arg(long, default_value = "sha256")]
        bank: HashAlg,
        /// PCR index. PCRs 0-15 belong to firmware and the boot chain on a real host; 16 and 23 are for tests.
        #[arg(long)]
        pcr: u8,
        /// The digest to extend, as hex (its length must match the bank).
        #[arg(long, value_parser = parse_hex, conflicts_with = "data", required_unless_present = "data")]
        digest: Option<Hex>,
        /// Extend with the bank hash of this string instead.
        #[arg(long)]
        data: Option<String>,
    },
    /// Persist the EK at its TCG handle (0x81010001 RSA, 0x81010002 ECC P-256, 0x81010016 P-384), so that
    /// later runs load it
    /// instead of creating it (seconds on a discrete TPM).
    ///
    /// Uses the owner hierarchy's empty authorization (TPM2_EvictControl). Does nothing if this TPM's EK is
    /// already there; refuses if another object holds the handle. Undo with
    /// `tpm2_evictcontrol -C o -c 0x81010001`.
    PersistEk,
}

pub fn run(cmd: TpmCommand, g: &GlobalOpts) -> CliResult {
    let mut tpm = TssTpm::open(g.tpm_options())?;
    match cmd {
        TpmCommand::Info => {
            let info = tpm.info()?;
            if g.json {
                print_json(&serde_json::to_value(&info).map_err(anyhow::Error::from)?);
            } else {
                println!("TCTI:             {}", info.tcti);
                println!("manufacturer:     {} ({})", info.manufacturer, info.vendor);
                println!("firmware:         {}", info.firmware_version);
                println!("spec revision:    {}", info.spec_revision);
                let banks: Vec<&str> = info.pcr_banks.iter().map(|b| b.name()).collect();
                println!("PCR banks:        {}", banks.join(", "));
                println!(
                    "EK certificate:   {} ({} EK)",
                    if info.ek_certificate_present { "present" } else { "absent" },
                    info.ek_algorithm.name()
                );
                println!(
                    "EK:               {}",
                    match &info.ek_persistent_handle {
                        Some(h) => format!("persisted at {h}"),
                        None =>
                            "created from the TCG template on each run (runtrust tpm persist-ek persists it)".into(),
                    }
                );
                println!(
                    "AK:               {}",
                    info.ak_name.as_deref().unwrap_or("none yet (created on first quote)")
                );
            }
        }
        TpmCommand::Pcrs { bank, pcrs } => {
            let sel = parse_selection(bank, &pcrs).map_err(|e| anyhow::anyhow!("--pcrs: {e}"))?;
            let values = tpm.pcr_read(&sel)?;
            if g.json {
                print_json(&serde_json::to_value(&values).map_err(anyhow::Error::from)?);
            } else {
                for (b, i, v) in values.iter() {
                    println!("{b}:{i:<2} {}", hex::encode(v));
                }
            }
        }
        TpmCommand::Quote { nonce: Hex(nonce), bank, pcrs, out } => {
            let sel = parse_selection(bank, &pcrs).map_err(|e| anyhow::anyhow!("--pcrs: {e}"))?;
            let ak = tpm.ak_public()?;
            let quote = tpm.quote(&nonce, &sel)?;
            fsutil::create_private_dir(&out).with_context(|| format!("creating {}", out.display()))?;
            let pcrs_json = serde_json::to_vec_pretty(&quote.pcrs).map_err(anyhow::Error::from)?;
            for (name, bytes) in [
                ("attest", &quote.attest),
                ("signature", &quote.signature),
                ("ak.pub", &ak.to_tpm2b()),
                ("pcrs.json", &pcrs_json),
            ] {
                let path = out.join(name);
                fsutil::write_atomic(&path, bytes, 0o644).with_context(|| format!("writing {}", path.display()))?;
            }
            if g.json {
                print_json(&json!({
                    "out": out, "ak_name": hex::encode(ak.name()), "selection": sel.to_string(),
                    "nonce": hex::encode(&nonce), "pcrs": quote.pcrs,
                }));
            } else {
                println!("quoted {sel} with AK {}", hex::encode(ak.name()));
                println!("wrote {0}/attest {0}/signature {0}/ak.pub {0}/pcrs.json", out.display());
            }
        }
        TpmCommand::Extend { bank, pcr, digest, data } => {
            let digest = match (digest, data) {
                (Some(Hex(d)), _) => d,
                (None, Some(s)) => bank.digest(s.as_bytes()),
                (None, None) => return Err(CliError::Other(anyhow::anyhow!("give --digest or --data"))),
            };
            if digest.len() != bank.digest_len() {
                return Err(CliError::Other(anyhow::anyhow!(
                    "--digest is {} bytes; a {bank} digest is {}",
                    digest.len(),
                    bank.digest_len()
                )));
            }
            tpm.pcr_extend(bank, pcr, &digest)?;
            let sel = parse_selection(bank, &pcr.to_string()).map_err(|e| anyhow::anyhow!("--pcr: {e}"))?;
            let now = tpm.pcr_read(&sel)?;
            let value = now.get(bank, pcr).map(hex::encode).unwrap_or_default();
            if g.json {
                print_json(&json!({ "bank": bank, "pcr": pcr, "value": value }));
            } else {
                println!("{bank}:{pcr} = {value}");
            }
        }
        TpmCommand::PersistEk => {
            let persisted = tpm.persist_ek()?;
            let handle = format!("{:#010x}", persisted.handle);
            if g.json {
                print_json(&json!({ "handle": handle, "ek_name": persisted.name, "persisted": persisted.newly }));
            } else if persisted.newly {
                println!("persisted the EK at {handle} (Name {})", persisted.name);
            } else {
                println!("the EK is already persisted at {handle} (Name {})", persisted.name);
            }
        }
    }
    Ok(())
}

/// Reads a file with a clear error.
pub(crate) fn read_file(path: &std::path::Path, what: &str) -> anyhow::Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {what} {}", path.display()))
}
