//! `[measured_boot]`: rules over the facts of a verified TCG event log (docs/design.md §2 stage 4, §10). The format
//! is in policies/README.md; the facts, and when they can be trusted, in
//! `runtrust_attestation::eventlog::facts`.

use std::fmt;
use std::fmt::Write as _;

use runtrust_attestation::eventlog::facts::{FIRMWARE_PCRS, KERNEL_CMDLINE_PCR};
use runtrust_attestation::eventlog::MeasuredBootFacts;
use runtrust_attestation::{DenialCode, HashAlg};
use serde::Serialize;

/// The bank boot application and dbx digests are written in, and the measured-boot PCRs are quoted in.
pub const MEASURED_BOOT_BANK: HashAlg = HashAlg::Sha256;
/// Longest kernel command line pattern.
pub const MAX_PATTERN_CHARS: usize = 1024;

/// Validated `[measured_boot]` rules. An empty table keeps the defaults: the event log is required and must
/// replay, and debug mode is forbidden.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeasuredBoot {
    /// The SecureBoot variable must have been measured as 1.
    pub require_secure_boot: bool,
    /// When given, every boot application (PCR 4) must have one of these SHA-256 digests.
    pub allowed_boot_apps: Option<Vec<Vec<u8>>>,
    /// No boot application may have one of these SHA-256 digests.
    pub forbidden_boot_apps: Vec<Vec<u8>>,
    /// dbx entries (see [`runtrust_attestation::eventlog::facts::SignatureList::entry_ids`]) that must be
    /// present: revocations the platform must have applied.
    pub required_dbx: Vec<Vec<u8>>,
    /// dbx entries that must not be present.
    pub forbidden_dbx: Vec<Vec<u8>>,
    /// When given, every kernel command line must match one of these patterns.
    pub kernel_cmdline_allow: Vec<String>,
    /// No kernel command line may match one of these patterns.
    pub kernel_cmdline_forbid: Vec<String>,
    /// No "UEFI Debug Mode" measurement in PCR 7 (default true).
    pub forbid_debug_mode: bool,
}

impl Default for MeasuredBoot {
    fn default() -> Self {
        Self {
            require_secure_boot: false,
            allowed_boot_apps: None,
            forbidden_boot_apps: Vec::new(),
            required_dbx: Vec::new(),
            forbidden_dbx: Vec::new(),
            kernel_cmdline_allow: Vec::new(),
            kernel_cmdline_forbid: Vec::new(),
            forbid_debug_mode: true,
        }
    }
}

/// One rule that failed: serialized into the denial's diagnostics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleFailure {
    /// The policy key, e.g. `require_secure_boot`.
    pub rule: &'static str,
    pub expected: String,
    pub actual: String,
}

/// Every failed rule, in the order of policies/README.md.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleFailures {
    pub failures: Vec<RuleFailure>,
}

impl RuleFailures {
    pub fn code(&self) -> DenialCode {
        DenialCode::PolicyMismatch
    }
}

impl fmt::Display for RuleFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, r) in self.failures.iter().enumerate() {
            if n > 0 {
                f.write_str("; ")?;
            }
            write!(f, "measured_boot.{}: expected {}, found {}", r.rule, r.expected, r.actual)?;
        }
        Ok(())
    }
}

impl std::error::Error for RuleFailures {}

fn digest_id(d: &[u8]) -> String {
    format!("{MEASURED_BOOT_BANK}:{}", hex::encode(d))
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (also none) and everything
/// else matches itself; the whole text must match. O(len(text) × len(pattern)), no recursion.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

impl MeasuredBoot {
    /// The PCRs the facts these rules read come from, which the quote must cover (in
    /// [`MEASURED_BOOT_BANK`]) and the log must reproduce: the firmware PCRs 0-7, and GRUB's PCR 8 when a
    /// kernel command line rule exists.
    pub fn pcrs(&self) -> Vec<u8> {
        let cmdline = !self.kernel_cmdline_allow.is_empty() || !self.kernel_cmdline_forbid.is_empty();
        FIRMWARE_PCRS.into_iter().chain(cmdline.then_some(KERNEL_CMDLINE_PCR)).collect()
    }

    /// Every rule against `facts` (which must come from a verified log); all failures are reported.
    pub fn check(&self, facts: &MeasuredBootFacts) -> Result<(), RuleFailures> {
        let mut failures = Vec::new();
        let mut fail = |rule, expected: String, actual: String| failures.push(RuleFailure { rule, expected, actual });
        if self.require_secure_boot && facts.secure_boot != Some(true) {
            let actual = match facts.secure_boot {
                Some(_) => "SecureBoot = 0 (secure boot off)",
                None => "no SecureBoot measurement in PCR 7",
            };
            fail("require_secure_boot", "SecureBoot = 1 measured in PCR 7".into(), actual.into());
        }
        let app_name = |a: &runtrust_attestation::eventlog::facts::BootApp| {
            let digest =
                a.digest(MEASURED_BOOT_BANK).map_or_else(|| format!("no {MEASURED_BOOT_BANK} digest"), digest_id);
            match &a.path {
                Some(p) => format!("{digest} (event {}, {p})", a.index),
                None => format!("{digest} (event {})", a.index),
            }
        };
        if let Some(allowed) = &self.allowed_boot_apps {
            for app in &facts.boot_apps {
                if !app.digest(MEASURED_BOOT_BANK).is_some_and(|d| allowed.iter().any(|a| a.as_slice() == d)) {
                    fail("allowed_boot_apps", "a boot application on the allowed list".into(), app_name(app));
                }
            }
        }
        for app in &facts.boot_apps {
            if app
                .digest(MEASURED_BOOT_BANK)
                .is_some_and(|d| self.forbidden_boot_apps.iter().any(|f| f.as_slice() == d))
            {
                fail("forbidden_boot_apps", "no forbidden boot application".into(), app_name(app));
            }
        }
        let dbx = facts.dbx.entry_ids();
        for entry in &self.required_dbx {
            if !dbx.contains(entry) {
                let actual = if facts.dbx.measured { "absent from dbx" } else { "dbx not measured" };
                fail("required_dbx", format!("dbx entry {}", digest_id(entry)), actual.into());
            }
        }
        // An unmeasured dbx proves nothing absent (its event may have been relabelled out of the data check).
        if !self.forbidden_dbx.is_empty() && !facts.dbx.measured {
            fail("forbidden_dbx", "a measured dbx without the forbidden entries".into(), "dbx not measured".into());
        }
        for entry in self.forbidden_dbx.iter().filter(|e| dbx.contains(e)) {
            fail("forbidden_dbx", format!("no dbx entry {}", digest_id(entry)), "present in dbx".into());
        }
        if !self.kernel_cmdline_allow.is_empty() {
            if facts.kernel_cmdlines.is_empty() {
                fail(
                    "kernel_cmdline_allow",
                    "a kernel command line matching an allowed pattern".into(),
                    format!("no kernel command line in PCR {KERNEL_CMDLINE_PCR}"),
                );
            }
            for c in &facts.kernel_cmdlines {
                if !self.kernel_cmdline_allow.iter().any(|p| glob_match(p, &c.text)) {
                    fail("kernel_cmdline_allow", format!("one of {:?}", self.kernel_cmdline_allow), c.text.clone());
                }
            }
        }
        // No measured command line proves nothing forbidden absent (its data may have been blanked).
        if !self.kernel_cmdline_forbid.is_empty() && facts.kernel_cmdlines.is_empty() {
            fail(
                "kernel_cmdline_forbid",
                "a measured kernel command line matching no forbidden pattern".into(),
                format!("no kernel command line in PCR {KERNEL_CMDLINE_PCR}"),
            );
        }
        for c in &facts.kernel_cmdlines {
            if let Some(p) = self.kernel_cmdline_forbid.iter().find(|p| glob_match(p, &c.text)) {
                fail("kernel_cmdline_forbid", format!("no match for {p:?}"), c.text.clone());
            }
        }
        if self.forbid_debug_mode && facts.debug_mode {
            fail("forbid_debug_mode", "no UEFI Debug Mode".into(), "\"UEFI Debug Mode\" measured in PCR 7".into());
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(RuleFailures { failures })
        }
    }
}

/// A `[measured_boot]` table accepting a golden host's `facts` (`policy capture --event-log`): secure boot
/// required if it was on, exactly its boot applications, its kernel command lines, no debug mode.
pub fn capture_section(facts: &MeasuredBootFacts) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_section(&mut out, facts);
    out
}

fn write_section(out: &mut String, facts: &MeasuredBootFacts) -> fmt::Result {
    writeln!(out)?;
    writeln!(out, "# Rules over the TCG event log (captured from the golden host's log). The host sends its log with")?;
    writeln!(out, "# each token request; it must replay to the quoted PCRs 0-7 (and 8 with command line rules).")?;
    writeln!(out, "[measured_boot]")?;
    match facts.secure_boot {
        Some(true) => writeln!(out, "require_secure_boot = true")?,
        _ => writeln!(out, "# Secure boot was off on the golden host.\nrequire_secure_boot = false")?,
    }
    let apps: Vec<_> = facts.boot_apps.iter().filter_map(|a| Some((a.digest(MEASURED_BOOT_BANK)?, a))).collect();
    writeln!(out, "# Boot applications (PCR 4), in load order.")?;
    writeln!(out, "allowed_boot_apps = [")?;
    let mut seen = Vec::new();
    for (digest, app) in apps {
        if seen.contains(&digest) {
            continue;
        }
        seen.push(digest);
        let path = app.path.as_deref().unwrap_or("(no file path)");
        writeln!(out, "    \"{}\",  # {}", digest_id(digest), path.replace(['\n', '\r'], " "))?;
    }
    writeln!(out, "]")?;
    if !facts.kernel_cmdlines.is_empty() {
        writeln!(out, "# Kernel command lines GRUB measured (PCR 8); `*` matches anything.")?;
        let mut cmdlines: Vec<String> = facts.kernel_cmdlines.iter().map(|c| c.text.clone()).collect();
        cmdlines.dedup();
        let quoted: Vec<String> = cmdlines.iter().map(|c| toml::Value::String(c.clone()).to_string()).collect();
        // A `*` in a real command line would be a wildcard: such lines are left for review, commented.
        if cmdlines.iter().any(|c| c.contains('*')) {
            writeln!(out, "# kernel_cmdline_allow = [{}]", quoted.join(", "))?;
        } else {
            writeln!(out, "kernel_cmdline_allow = [{}]", quoted.join(", "))?;
        }
    }
    writeln!(out, "forbid_debug_mode = true")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use runtrust_attestation::eventlog::{self, builder::LogBuilder};

    fn facts(debug: bool) -> MeasuredBootFacts {
        let mut b = LogBuilder::new(&[HashAlg::Sha256]);
        b.secure_boot(false).variable(
            runtrust_attestation::eventlog::facts::EFI_IMAGE_SECURITY_DATABASE_GUID,
            "dbx",
            &eventlog::builder::sha256_list(runtrust_attestation::eventlog::facts::Guid([0; 16]), &[[0xDB; 32]]),
        );
        if debug {
            b.debug_mode();
        }
        b.separators(0..8).boot_app(b"shim", "\\EFI\\shim.efi").kernel_cmdline("/vmlinuz ro init=/bin/sh");
        let log = eventlog::parse(b.bytes()).unwrap();
        log.verify(&log.replay().pcrs).unwrap().facts().unwrap()
    }

    #[test]
    fn every_failed_rule_is_reported() {
        let shim = HashAlg::Sha256.digest(b"shim");
        let pass = MeasuredBoot {
            allowed_boot_apps: Some(vec![shim.clone()]),
            required_dbx: vec![vec![0xDB; 32]],
            forbidden_dbx: vec![vec![0xAA; 32]],
            kernel_cmdline_allow: vec!["/vmlinuz *".into()],
            kernel_cmdline_forbid: vec!["*init=/bin/bash*".into()],
            ..MeasuredBoot::default()
        };
        pass.check(&facts(false)).unwrap();
        let fail = MeasuredBoot {
            require_secure_boot: true,
            allowed_boot_apps: Some(vec![vec![1; 32]]),
            forbidden_boot_apps: vec![shim],
            required_dbx: vec![vec![0xAA; 32]],
            forbidden_dbx: vec![vec![0xDB; 32]],
            kernel_cmdline_allow: vec!["/vmlinuz ro".into()],
            kernel_cmdline_forbid: vec!["*init=*".into()],
            forbid_debug_mode: true,
        };
        let err = fail.check(&facts(true)).unwrap_err();
        let rules: Vec<&str> = err.failures.iter().map(|f| f.rule).collect();
        assert_eq!(
            rules,
            [
                "require_secure_boot",
                "allowed_boot_apps",
                "forbidden_boot_apps",
                "required_dbx",
                "forbidden_dbx",
                "kernel_cmdline_allow",
                "kernel_cmdline_forbid",
                "forbid_debug_mode"
            ]
        );
        assert_eq!(err.code(), DenialCode::PolicyMismatch);
        assert!(err.to_string().starts_with("measured_boot.require_secure_boot: expected SecureBoot = 1"), "{err}");
        assert!(err.failures[1].actual.contains("\\EFI\\shim.efi"), "{err}");
        // No command line at all fails an allow rule.
        let mut no_cmdline = facts(false);
        no_cmdline.kernel_cmdlines.clear();
        let rules: Vec<&str> = pass.check(&no_cmdline).unwrap_err().failures.iter().map(|f| f.rule).collect();
        assert_eq!(rules, ["kernel_cmdline_allow", "kernel_cmdline_forbid"], "a blanked command line proves nothing");
        // An unmeasured dbx fails a forbidden-dbx rule (nothing proves the entry absent).
        let mut no_dbx = facts(false);
        no_dbx.dbx.measured = false;
        no_dbx.dbx.lists.clear();
        let only_forbid = MeasuredBoot { forbidden_dbx: vec![vec![0xAA; 32]], ..MeasuredBoot::default() };
        assert_eq!(only_forbid.check(&no_dbx).unwrap_err().failures[0].actual, "dbx not measured");
    }

    #[test]
    fn glob() {
        assert!(glob_match("*", ""));
        assert!(glob_match("*root=/dev/sda1*", "/vmlinuz root=/dev/sda1 ro"));
        assert!(!glob_match("*root=/dev/sda1*", "/vmlinuz root=/dev/sda2 ro"));
        assert!(glob_match("/vmlinuz *", "/vmlinuz ro"));
        assert!(!glob_match("/vmlinuz", "/vmlinuz ro"), "whole line");
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("**a", "ba"));
        assert!(glob_match("é*", "éte"));
        // Pathological input stays quadratic at worst.
        let text = "a".repeat(4000);
        assert!(!glob_match(&"*a".repeat(500).to_string().replace("*a*a", "*a*b"), &text));
    }
}
