//! `runtrust eventlog show|replay FILE` (docs/design.md §9): read a TCG event log offline. Nothing here is checked
//! against a quote, so the facts shown are unverified. A log that does not parse is an error (exit 1) that
//! names the field and byte offset.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};
use clap::Subcommand;
use runtrust_attestation::eventlog::{self, describe::describe, EventLog, MeasuredBootFacts};
use serde_json::{json, Value};

use super::{print_json, CliResult, GlobalOpts};
use crate::client::token::read_event_log;

#[derive(Subcommand, Debug)]
pub enum EventlogCommand {
    /// Print every event (index, PCR, type, digests, decoded data) and the measured-boot facts.
    Show {
        /// The log, e.g. /sys/kernel/security/tpm0/binary_bios_measurements (needs root).
        file: PathBuf,
    },
    /// Replay the log: every PCR it extends, in every bank it carries.
    /// --json prints {"sha256": {"0": "<hex>", ...}, "sha1": {...}}.
    Replay {
        /// The log, e.g. /sys/kernel/security/tpm0/binary_bios_measurements (needs root).
        file: PathBuf,
    },
}

/// Reads and parses `path`; errors name the file, the field and the byte offset.
pub fn load(path: &Path) -> Result<EventLog, anyhow::Error> {
    let bytes = read_event_log(path).map_err(|e| anyhow!("{e}"))?;
    eventlog::parse(&bytes).with_context(|| format!("{}: not a TCG event log", path.display()))
}

pub fn run(cmd: EventlogCommand, g: &GlobalOpts) -> CliResult {
    match cmd {
        EventlogCommand::Show { file } => {
            let log = load(&file)?;
            let facts = eventlog::unverified_facts(&log);
            if g.json {
                let events: Vec<Value> = log
                    .events
                    .iter()
                    .map(|e| {
                        let digests: BTreeMap<String, String> =
                            e.digests.iter().map(|d| (bank_name(d), hex::encode(&d.digest))).collect();
                        json!({
                            "index": e.index, "offset": e.offset, "pcr": e.pcr, "type": e.event_type,
                            "type_name": e.type_name(), "digests": digests, "data_size": e.data.len(),
                            "data": describe(e),
                        })
                    })
                    .collect();
                let banks: Vec<&str> = log.banks().iter().map(|b| b.name()).collect();
                let facts = match &facts {
                    Ok(f) => facts_json(f),
                    Err(e) => json!({ "error": e.to_string() }),
                };
                print_json(&json!({
                    "format": if log.spec.is_some() { "crypto-agile" } else { "sha1" },
                    "banks": banks, "events": events, "facts": facts, "verified": false,
                }));
            } else {
                for e in &log.events {
                    let name = e.type_name().map_or_else(|| format!("{:#010x}", e.event_type), str::to_owned);
                    // "-": an EV_NO_ACTION record logged to no PCR (pcrIndex 0xFFFFFFFF).
                    let pcr = e.pcr_index().map_or_else(|| "-".to_owned(), |p| p.to_string());
                    println!("#{:<4} PCR {:<2} {:<34} {}", e.index, pcr, name, describe(e));
                    for d in &e.digests {
                        println!("      {:<7} {}", bank_name(d), hex::encode(&d.digest));
                    }
                }
                println!();
                println!("Measured-boot facts (unverified: not checked against a quote):");
                match &facts {
                    Ok(f) => print_facts(f),
                    Err(e) => println!("  cannot be drawn: {e}"),
                }
            }
        }
        EventlogCommand::Replay { file } => {
            let log = load(&file)?;
            let replayed = log.replay();
            if g.json {
                print_json(&serde_json::to_value(&replayed.pcrs).map_err(|e| anyhow!("{e}"))?);
            } else {
                for (bank, pcr, value) in replayed.pcrs.iter() {
                    println!("{:<7} {pcr:>2}: {}", bank.name(), hex::encode(value));
                }
            }
        }
    }
    Ok(())
}

/// A digest's bank by name, or its TPM_ALG_ID when runtrust does not know the algorithm.
fn bank_name(d: &runtrust_attestation::eventlog::EventDigest) -> String {
    d.hash().map_or_else(|| format!("{:#06x}", d.alg_id), |h| h.name().to_owned())
}

fn facts_json(f: &MeasuredBootFacts) -> Value {
    let ids = |db: &runtrust_attestation::eventlog::facts::SignatureDb| json!({ "measured": db.measured, "entries": db.entry_ids().iter().map(hex::encode).collect::<Vec<_>>() });
    json!({
        "secure_boot": f.secure_boot,
        "pk": ids(&f.pk), "kek": ids(&f.kek), "db": ids(&f.db), "dbx": ids(&f.dbx),
        "boot_apps": f.boot_apps.iter().map(|a| json!({
            "event": a.index,
            "type_name": runtrust_attestation::eventlog::event_type::name(a.event_type),
            "path": a.path,
            "digests": a.digests.iter().map(|(b, d)| (b.name().to_owned(), hex::encode(d))).collect::<BTreeMap<_, _>>(),
        })).collect::<Vec<_>>(),
        "separators": f.separators.iter().map(|s| json!({ "event": s.index, "pcr": s.pcr, "value": hex::encode(&s.data) })).collect::<Vec<_>>(),
        "kernel_cmdlines": f.kernel_cmdlines.iter().map(|c| json!({ "event": c.index, "text": c.text })).collect::<Vec<_>>(),
        "debug_mode": f.debug_mode,
    })
}

fn print_facts(f: &MeasuredBootFacts) {
    let sb = match f.secure_boot {
        Some(true) => "on",
        Some(false) => "off",
        None => "not measured",
    };
    println!("  secure boot: {sb}");
    println!("  PK {} / KEK {} / db {} / dbx {} entries", f.pk.len(), f.kek.len(), f.db.len(), f.dbx.len());
    for a in &f.boot_apps {
        let digest = a.digest(crate::policy::MEASURED_BOOT_BANK).map(hex::encode).unwrap_or_default();
        println!("  boot app (event {}): sha256:{digest} {}", a.index, a.path.as_deref().unwrap_or(""));
    }
    for c in &f.kernel_cmdlines {
        println!("  kernel command line (event {}): {}", c.index, c.text);
    }
    println!("  debug mode: {}", if f.debug_mode { "ON" } else { "off" });
}
