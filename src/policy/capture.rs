//! `runtrust policy capture` (docs/design.md §9, §10): a commented policy that accepts exactly the PCR values a
//! golden host reports now, for an operator to review, extend and apply.

use std::fmt::Write as _;

use runtrust_attestation::PcrValues;

use super::duration::format_duration;
use super::format::{DEFAULT_DEFAULT_TTL_SECS, DEFAULT_MAX_TTL_SECS};
use super::BANK_ORDER;

/// A policy text accepting the current `values`, selecting `host_ids` and hosts with all of `tags`, and
/// granting `scopes` to `principals` (`*` when none are given); token rules are the defaults (5m, at most
/// 15m, reusable, no delegation).
///
/// The text parses whenever the inputs are valid policy values and there is at least one PCR value and one
/// host id or tag; callers should run [`super::parse`] on it before writing it, which points at any bad
/// input by line. Without scopes the policy grants nothing, and says so in a comment.
pub fn capture(
    id: &str,
    values: &PcrValues,
    scopes: &[String],
    principals: &[String],
    tags: &[String],
    host_ids: &[String],
) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_policy(&mut out, id, values, scopes, principals, tags, host_ids);
    out
}

fn write_policy(
    out: &mut String,
    id: &str,
    values: &PcrValues,
    scopes: &[String],
    principals: &[String],
    tags: &[String],
    host_ids: &[String],
) -> std::fmt::Result {
    writeln!(out, "# runtrust policy, written by `runtrust policy capture` from a golden host's PCR values.")?;
    writeln!(out, "# Format: policies/README.md. Review it before `runtrust policy apply`: the policy hash is the")?;
    writeln!(out, "# SHA-256 of this file's bytes, comments included, so any edit makes a new policy version.")?;
    writeln!(out)?;
    writeln!(out, "id = {}", quote(id))?;
    writeln!(out, "description = \"Captured from a golden host\"")?;
    writeln!(out)?;
    writeln!(out, "# The hosts this policy applies to: any listed id, or every host that has all the listed tags.")?;
    writeln!(out, "[hosts]")?;
    if !host_ids.is_empty() {
        writeln!(out, "ids = {}", list(host_ids))?;
    }
    if !tags.is_empty() {
        writeln!(out, "tags = {}", list(tags))?;
    }
    writeln!(out)?;
    writeln!(out, "# Acceptable values per bank and PCR index. To accept another boot state as well (a firmware")?;
    writeln!(out, "# or bootloader update), add its value to the list.")?;
    for bank in BANK_ORDER {
        let pcrs: Vec<(u8, &[u8])> = values.iter().filter(|(b, _, _)| *b == bank).map(|(_, i, v)| (i, v)).collect();
        if pcrs.is_empty() {
            continue;
        }
        writeln!(out, "[pcrs.{bank}]")?;
        for (index, value) in pcrs {
            writeln!(out, "{index} = [\"{}\"]  # {}", hex::encode(value), pcr_usage(index))?;
        }
        writeln!(out)?;
    }
    let principals: Vec<String> = if principals.is_empty() { vec!["*".to_owned()] } else { principals.to_vec() };
    writeln!(out, "# Who may request which scopes; a pattern may end in `*` (deploy/web/* covers deploy/web/api).")?;
    if scopes.is_empty() {
        writeln!(out, "# No scope was given at capture: this policy grants nothing until a [[grant]] is added, e.g.")?;
        writeln!(out, "# [[grant]]")?;
        writeln!(out, "# principals = {}", list(&principals))?;
        writeln!(out, "# scopes = [\"deploy/example/*\"]")?;
    } else {
        writeln!(out, "[[grant]]")?;
        writeln!(out, "principals = {}", list(&principals))?;
        writeln!(out, "scopes = {}", list(scopes))?;
    }
    writeln!(out)?;
    writeln!(out, "[token]")?;
    writeln!(out, "default_ttl = \"{}\"", format_duration(DEFAULT_DEFAULT_TTL_SECS))?;
    writeln!(out, "max_ttl = \"{}\"", format_duration(DEFAULT_MAX_TTL_SECS))?;
    writeln!(out, "single_use = false")?;
    writeln!(out, "max_delegation_depth = 0")?;
    writeln!(out, "cross_host_delegation = false")?;
    writeln!(out)?;
    writeln!(
        out,
        "# Rules over the TCG event log go in [measured_boot] (policies/README.md); `runtrust policy capture"
    )?;
    writeln!(out, "# --event-log FILE` writes them from the golden host's log.")?;
    Ok(())
}

/// A TOML basic string (escaped as the toml crate escapes).
fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// What a PCR measures: TCG PC Client Platform Firmware Profile (rev. 1.05) §3.3.4 for 0-7, and the UAPI
/// Group's Linux TPM PCR Registry for the OS PCRs 8-15 (its usual users on Linux).
fn pcr_usage(index: u8) -> &'static str {
    match index {
        0 => "firmware code (SRTM, UEFI)",
        1 => "firmware configuration",
        2 => "option ROMs, UEFI drivers and applications",
        3 => "option ROM and UEFI driver configuration",
        4 => "boot manager code (bootloader), boot attempts",
        5 => "boot manager configuration, GPT",
        6 => "platform manufacturer specific",
        7 => "Secure Boot policy and certificates",
        8 => "bootloader commands, kernel command line (grub)",
        9 => "files loaded by the bootloader, initrd (grub)",
        10 => "IMA",
        11 => "unified kernel image (systemd-stub), boot phases",
        12 => "kernel command line overrides, credentials (systemd-stub)",
        13 => "system extensions (systemd-stub)",
        14 => "shim MOK certificates and hashes",
        15 => "system identity (systemd)",
        16 => "debug",
        23 => "application support",
        _ => "platform or OS defined",
    }
}
