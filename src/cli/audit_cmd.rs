//! `runtrust audit tail | checkpoint | verify | prove` (docs/design.md §11): read the log, save a signed
//! checkpoint, recompute the Merkle tree from the entries (online, or offline from an export) and check it
//! against signed checkpoints, and prove an issued token's entry is in the log.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};
use clap::Subcommand;
use serde_json::json;

use super::token_cmd::with_issuer_keys;
use super::{print_json, CliError, CliResult, GlobalOpts};
use crate::api::{routes, IndexedEntry};
use crate::api::{ConsistencyProof, InclusionProof};
use crate::audit::AuditEntry;
use crate::audit::{
    canonical_entry, export_line, leaf_hash, parse_export_line, verify_consistency, verify_inclusion, verify_log,
    AuditError, Hash, SignedCheckpoint,
};
use crate::client::Client;

/// Entries per request.
const PAGE: usize = 1000;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// The last N audit entries (auditor, admin). With --json: one entry per line in canonical form — the
    /// export `audit verify --log` reads (use --all for the whole log).
    Tail {
        /// How many entries, from the end (only these are downloaded).
        #[arg(short = 'n', default_value_t = 20, value_name = "N")]
        n: usize,
        /// Every entry from the first.
        #[arg(long)]
        all: bool,
        /// Stop at the entries this saved checkpoint covers (an export to verify against it).
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
    /// Print the current signed checkpoint (tree size, root, time; signed by the issuer key). Save it:
    /// `audit verify --checkpoint FILE` later proves the log only grew since.
    Checkpoint {
        /// Also write it to FILE.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Recompute the Merkle tree from the entries and check it against the service's signed checkpoint and,
    /// with --checkpoint, a checkpoint saved earlier (consistency). With --log, offline from an export.
    /// Exit 3 on any mismatch.
    #[command(
        after_help = "Examples:\n  runtrust audit checkpoint --out cp-monday.txt\n  runtrust audit verify --checkpoint cp-monday.txt\n  \
runtrust audit tail --all --json --checkpoint cp-monday.txt > audit.jsonl\n  \
runtrust audit verify --log audit.jsonl --checkpoint cp-monday.txt"
    )]
    Verify {
        /// An export (`audit tail --all --json --checkpoint FILE`), verified offline against --checkpoint; it
        /// must hold exactly the entries the checkpoint covers.
        #[arg(long, value_name = "EXPORT", requires = "checkpoint")]
        log: Option<PathBuf>,
        /// A signed checkpoint saved earlier (`audit checkpoint --out`).
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// Issuer keys (keys export output) instead of the cached ones.
        #[arg(long, value_name = "FILE")]
        keys: Option<PathBuf>,
    },
    /// Prove that the issuance of token CTI is in the log: its entry, an inclusion proof and a signed
    /// checkpoint, all verified here.
    Prove {
        /// The token's cti (hex; `runtrust token inspect` shows it).
        cti: String,
    },
}

pub fn run(cmd: AuditCommand, g: &GlobalOpts) -> CliResult {
    match cmd {
        AuditCommand::Tail { n, all, checkpoint } => tail(g, n, all, checkpoint.as_deref()),
        AuditCommand::Checkpoint { out } => {
            let text = g.client()?.get_text(routes::AUDIT_CHECKPOINT)?;
            let signed = verify_checkpoint(g, &text, None)?;
            if let Some(p) = &out {
                std::fs::write(p, &text).with_context(|| format!("writing {}", p.display()))?;
            }
            if g.json {
                let c = &signed.checkpoint;
                print_json(
                    &json!({ "origin": c.origin, "tree_size": c.tree_size, "root": hex::encode(c.root), "time": c.time, "text": text }),
                );
            } else {
                print!("{text}");
            }
            Ok(())
        }
        AuditCommand::Verify { log, checkpoint, keys: key_file } => {
            verify(g, log.as_deref(), checkpoint.as_deref(), key_file.as_deref())
        }
        AuditCommand::Prove { cti } => prove(g, &cti),
    }
}

fn denied(e: AuditError) -> CliError {
    CliError::denied(e.code(), e)
}

/// Parses a checkpoint and verifies its signature with the issuer keys ([`with_issuer_keys`]).
fn verify_checkpoint(g: &GlobalOpts, text: &str, file: Option<&Path>) -> Result<SignedCheckpoint, CliError> {
    let signed = SignedCheckpoint::from_text(text).map_err(denied)?;
    with_issuer_keys(g, file, |keys| signed.verify(keys), |_| true)?.map_err(denied)?;
    Ok(signed)
}

fn fetch_all(client: &Client) -> Result<Vec<(u64, AuditEntry)>, CliError> {
    fetch(&mut |from, limit| page(client, from, limit), 0, None)
}

fn page(client: &Client, from: u64, limit: usize) -> Result<Vec<IndexedEntry>, CliError> {
    Ok(client.get(&format!("{}?from={from}&limit={limit}", routes::AUDIT))?)
}

/// Entries from index `from` to the end of the log, or to `end` (exclusive), page by page.
fn fetch(
    get: &mut dyn FnMut(u64, usize) -> Result<Vec<IndexedEntry>, CliError>,
    from: u64,
    end: Option<u64>,
) -> Result<Vec<(u64, AuditEntry)>, CliError> {
    let mut all = Vec::new();
    let mut next = from;
    loop {
        let want = end.map_or(PAGE, |e| usize::try_from(e.saturating_sub(next)).unwrap_or(PAGE).min(PAGE));
        if want == 0 {
            return Ok(all);
        }
        let page = get(next, want)?;
        let done = page.len() < want;
        for i in page {
            // Strictly ascending, and within what was asked: a page cannot repeat or reorder the log.
            if i.index < next || end.is_some_and(|e| i.index >= e) {
                return Err(CliError::Other(anyhow!("the service answered entry {} for entries from {next}", i.index)));
            }
            next = i.index + 1;
            all.push((i.index, i.entry));
        }
        if done {
            return Ok(all);
        }
    }
}

/// Where `audit tail -n N` starts: N entries before the log's end, so only those travel (`--all`: 0). The end
/// is the saved checkpoint's size with --checkpoint, else the live checkpoint's (a size hint only: the pages
/// run on to the log's real end, and the last N of them are shown).
fn tail_start(end: u64, n: usize, all: bool) -> u64 {
    if all {
        0
    } else {
        end.saturating_sub(u64::try_from(n).unwrap_or(u64::MAX))
    }
}

fn tail(g: &GlobalOpts, n: usize, all: bool, upto: Option<&Path>) -> CliResult {
    let client = g.client()?;
    let end = match upto {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Some(verify_checkpoint(g, &text, None)?.checkpoint.tree_size)
        }
        None => None,
    };
    let size = match end {
        Some(e) => e,
        None if all => 0,
        None => {
            SignedCheckpoint::from_text(&client.get_text(routes::AUDIT_CHECKPOINT)?)
                .map_err(denied)?
                .checkpoint
                .tree_size
        }
    };
    let entries = fetch(&mut |from, limit| page(&client, from, limit), tail_start(size, n, all), end)?;
    let shown = if all { &entries[..] } else { &entries[entries.len().saturating_sub(n)..] };
    for (index, e) in shown {
        if g.json {
            println!("{}", export_line(e, *index));
        } else {
            println!(
                "{:>6} {} {:<16} {:<26} {}",
                index,
                super::output::when(e.time),
                e.event,
                e.code.as_deref().unwrap_or("-"),
                e.detail
            );
        }
    }
    Ok(())
}

fn read_export(path: &Path) -> Result<Vec<(u64, AuditEntry)>, CliError> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let at = |e: AuditError| CliError::denied(e.code(), format!("{} line {}: {e}", path.display(), n + 1));
        // A byte that breaks UTF-8 is an altered entry like any other (exit 3, not an I/O error).
        let text = std::str::from_utf8(line).map_err(|_| at(AuditError::ExportFormat("not UTF-8".into())))?;
        out.push(parse_export_line(text).map_err(at)?);
    }
    Ok(out)
}

fn verify(g: &GlobalOpts, log: Option<&Path>, earlier: Option<&Path>, key_file: Option<&Path>) -> CliResult {
    let earlier = earlier
        .map(|p| {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            verify_checkpoint(g, &text, key_file)
        })
        .transpose()?;
    let (entries, current, source) = match log {
        // Offline: the export against the saved checkpoint (required with --log).
        Some(path) => {
            let cp = earlier.clone().ok_or_else(|| anyhow!("--log needs --checkpoint"))?;
            (read_export(path)?, cp, format!("export {}", path.display()))
        }
        None => {
            let client = g.client()?;
            let text = client.get_text(routes::AUDIT_CHECKPOINT)?;
            let cp = verify_checkpoint(g, &text, key_file)?;
            let entries = fetch_all(&client)?;
            // The service's own consistency proof from the saved checkpoint must verify too.
            if let Some(old) = &earlier {
                // A saved checkpoint beyond the log: the log lost entries it had signed for (exit 3, not 1).
                if old.checkpoint.tree_size > cp.checkpoint.tree_size {
                    let e =
                        AuditError::SizeOutOfRange { size: old.checkpoint.tree_size, limit: cp.checkpoint.tree_size };
                    return Err(CliError::denied(
                        e.code(),
                        format!(
                            "the saved checkpoint covers {} entries, the log now has {}: the log was rolled back (or \
                             is another log) ({e})",
                            old.checkpoint.tree_size, cp.checkpoint.tree_size
                        ),
                    ));
                }
                let p: ConsistencyProof =
                    client.get(&format!("{}?from={}", routes::AUDIT_CONSISTENCY, old.checkpoint.tree_size))?;
                let proved = verify_checkpoint(g, &p.checkpoint, key_file)?;
                let proof = hashes(&p.proof)?;
                verify_consistency(
                    old.checkpoint.tree_size,
                    proved.checkpoint.tree_size,
                    &old.checkpoint.root,
                    &proved.checkpoint.root,
                    &proof,
                )
                .map_err(denied)?;
            }
            (entries, cp, "the service's log".to_owned())
        }
    };
    let earlier_cp = match (log, &earlier) {
        (None, Some(e)) => Some(&e.checkpoint),
        _ => None,
    };
    // An export must be exactly what the checkpoint covers; the live log may have grown since it was signed.
    let report = verify_log(entries, &current.checkpoint, earlier_cp, log.is_some()).map_err(denied)?;
    if g.json {
        print_json(&json!({
            "valid": true, "source": source, "entries": report.entries, "tree_size": report.verified_size,
            "root": hex::encode(current.checkpoint.root), "consistent_from": report.consistent_from,
        }));
    } else {
        println!(
            "audit log verified: {} entries from {source}; the first {} hash to the signed root {} of {}",
            report.entries,
            report.verified_size,
            hex::encode(current.checkpoint.root),
            current.checkpoint.origin
        );
        if let Some(from) = report.consistent_from {
            println!("consistent with the saved checkpoint of size {from}: the log only grew");
        }
    }
    Ok(())
}

fn hashes(hex_list: &[String]) -> Result<Vec<Hash>, CliError> {
    hex_list
        .iter()
        .map(|h| {
            hex::decode(h).ok().and_then(|b| <Hash>::try_from(b.as_slice()).ok()).ok_or_else(|| {
                CliError::denied(
                    runtrust_attestation::DenialCode::SignatureInvalid,
                    format!("proof hash {h:?} is not 32 bytes of hex"),
                )
            })
        })
        .collect()
}

fn prove(g: &GlobalOpts, cti: &str) -> CliResult {
    let client = g.client()?;
    let p: InclusionProof = client.get(&routes::path(routes::AUDIT_PROVE, &[cti]))?;
    let cp = verify_checkpoint(g, &p.checkpoint, None)?;
    let (index, entry) = parse_export_line(&p.line).map_err(denied)?;
    let bad = |why: String| CliError::denied(runtrust_attestation::DenialCode::SignatureInvalid, why);
    let issuance = entry.event == "token.issue" || entry.event == "token.delegate";
    if index != p.index || !issuance || entry.cti.as_deref() != Some(&cti.to_ascii_lowercase()) {
        return Err(bad(format!("the proven entry {index} is not the issuance of {cti}")));
    }
    if cp.checkpoint.tree_size != p.tree_size {
        return Err(bad("the proof and the checkpoint are of different sizes".into()));
    }
    let leaf = leaf_hash(&canonical_entry(&entry, index));
    verify_inclusion(&leaf, index, p.tree_size, &hashes(&p.proof)?, &cp.checkpoint.root).map_err(denied)?;
    if g.json {
        print_json(
            &json!({ "valid": true, "cti": cti, "index": index, "tree_size": p.tree_size, "entry": serde_json::from_str::<serde_json::Value>(&p.line).unwrap_or_default(), "checkpoint": p.checkpoint }),
        );
    } else {
        println!("token {cti}: {} entry {index} is in the log of {} entries (inclusion proof of {} hashes verified against the signed checkpoint)", entry.event, p.tree_size, p.proof.len());
        println!("{}", p.line);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log of `len` entries served page by page; records every range asked for.
    fn log(
        len: u64,
        asked: &mut Vec<(u64, usize)>,
    ) -> impl FnMut(u64, usize) -> Result<Vec<IndexedEntry>, CliError> + '_ {
        move |from, limit| {
            asked.push((from, limit));
            let to = len.min(from + limit as u64);
            Ok((from..to)
                .map(|index| IndexedEntry { index, entry: AuditEntry::new(index, "test", format!("entry {index}")) })
                .collect())
        }
    }

    #[test]
    fn tail_fetches_only_the_last_n_entries() {
        let mut asked = Vec::new();
        let got = fetch(&mut log(5_000, &mut asked), tail_start(5_000, 3, false), None).unwrap();
        assert_eq!(got.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![4_997, 4_998, 4_999]);
        assert_eq!(asked, vec![(4_997, PAGE)], "only the tail is requested");
        // The log grew past the size hint: the pages run to its real end.
        let mut asked = Vec::new();
        let got = fetch(&mut log(5_010, &mut asked), tail_start(5_000, 3, false), None).unwrap();
        assert_eq!(got.len(), 13);
        // Up to a saved checkpoint: nothing past its size is asked for.
        let mut asked = Vec::new();
        let got = fetch(&mut log(5_010, &mut asked), tail_start(2_500, 1_200, false), Some(2_500)).unwrap();
        assert_eq!((got.len(), got[0].0, got[got.len() - 1].0), (1_200, 1_300, 2_499));
        assert_eq!(asked, vec![(1_300, PAGE), (2_300, 200)]);
        // --all reads everything, page by page.
        let mut asked = Vec::new();
        assert_eq!(fetch(&mut log(2_345, &mut asked), tail_start(0, 20, true), None).unwrap().len(), 2_345);
        assert_eq!(asked.len(), 3);
    }

    #[test]
    fn pages_must_ascend_within_the_range() {
        let mut replay = |from: u64, _| {
            Ok(vec![IndexedEntry { index: from.saturating_sub(1), entry: AuditEntry::new(0, "test", "x") }])
        };
        assert!(fetch(&mut replay, 5, None).is_err());
    }
}
