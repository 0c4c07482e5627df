//! Policies (docs/design.md §10): which hosts a policy applies to, which boot states (PCR values) it accepts, which
//! scopes it grants to whom, and the limits of the tokens it allows. The format reference is
//! policies/README.md; [`parse`] implements it. A policy's identity is the SHA-256 of its file's bytes
//! (the policy hash every token carries); its `id` names it, and a new version of an id replaces the old.

mod capture;
mod check;
mod duration;
mod error;
mod format;
mod measured_boot;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use runtrust_attestation::tpm2::PcrBank;
use runtrust_attestation::{HashAlg, PcrSelection, PcrValues};

pub use capture::capture;
pub use check::{PcrDiagnostic, PcrMismatch};
pub use duration::{format_duration, parse_duration};
pub use error::{Location, PolicyError, Position};
pub use format::{
    valid_tag, DEFAULT_DEFAULT_TTL_SECS, DEFAULT_MAX_TTL_SECS, MAX_DELEGATION_DEPTH, MAX_DESCRIPTION_CHARS, MAX_GRANTS,
    MAX_LIST_LEN, MAX_POLICY_BYTES, MAX_TTL_SECS, MAX_VALUES_PER_PCR,
};
pub use measured_boot::{
    capture_section as capture_measured_boot, glob_match, MeasuredBoot, RuleFailure, RuleFailures, MAX_PATTERN_CHARS,
    MEASURED_BOOT_BANK,
};

/// The order banks are selected, checked and written in: sha256 first, SHA-1 last.
const BANK_ORDER: [HashAlg; 4] = [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512, HashAlg::Sha1];

/// A validated policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub id: String,
    pub description: String,
    pub hosts: HostSelector,
    /// bank → PCR index → acceptable values (each of the bank's digest length; at least one PCR).
    pub pcrs: BTreeMap<HashAlg, BTreeMap<u8, Vec<Vec<u8>>>>,
    pub grants: Vec<Grant>,
    pub token: TokenRules,
    /// Rules over the event log; when present, token requests must carry the host's event log.
    pub measured_boot: Option<MeasuredBoot>,
}

/// Which enrolled hosts a policy applies to: any host whose id is listed, or that has every listed tag.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostSelector {
    /// `sha256:<hex>` host ids.
    pub ids: Vec<String>,
    pub tags: Vec<String>,
}

/// Principals (names, or `*` for any) that may request scopes within the patterns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub principals: Vec<String>,
    pub scopes: Vec<String>,
}

/// Limits on the tokens a policy allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenRules {
    pub max_ttl_secs: u64,
    /// The ttl of a request that names none; at most max_ttl_secs.
    pub default_ttl_secs: u64,
    /// Tokens may be used for one execution only.
    pub single_use: bool,
    /// How many delegation steps below a root token (0: no delegation).
    pub max_delegation_depth: u32,
    /// Whether a token may be delegated to another enrolled host.
    pub cross_host_delegation: bool,
}

/// A policy with the bytes it was parsed from and their hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedPolicy {
    pub policy: Policy,
    /// SHA-256 of `bytes`: the policy hash.
    pub hash: [u8; 32],
    pub bytes: Vec<u8>,
}

impl LoadedPolicy {
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }
}

/// The policy hash: SHA-256 of the file's exact bytes, so any change to the file, even to a comment or to
/// whitespace, is a new policy version. This is intended: a token names the very text that allowed it.
pub fn policy_hash(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    for (o, b) in out.iter_mut().zip(digest.as_ref()) {
        *o = *b;
    }
    out
}

/// Parses and validates a policy file; `name_for_errors` is the file name errors start with.
pub fn parse(name_for_errors: &str, bytes: &[u8]) -> Result<LoadedPolicy, PolicyError> {
    if bytes.len() > MAX_POLICY_BYTES {
        return Err(PolicyError::TooLarge {
            file: name_for_errors.to_owned(),
            size: bytes.len() as u64,
            max: MAX_POLICY_BYTES,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let valid = String::from_utf8_lossy(bytes.get(..e.valid_up_to()).unwrap_or_default());
        PolicyError::NotUtf8 {
            at: Location { file: name_for_errors.to_owned(), position: Some(Position::at(&valid, valid.len())) },
        }
    })?;
    let policy = format::decode(&error::Source { file: name_for_errors, text })?;
    Ok(LoadedPolicy { policy, hash: policy_hash(bytes), bytes: bytes.to_vec() })
}

/// Reads (at most MAX_POLICY_BYTES + 1 bytes of) a policy file and parses it; errors name the path.
pub fn load(path: &Path) -> Result<LoadedPolicy, PolicyError> {
    let file = path.display().to_string();
    let io = |source| PolicyError::Io { file: file.clone(), source };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    f.take(MAX_POLICY_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() > MAX_POLICY_BYTES {
        let size = std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len());
        return Err(PolicyError::TooLarge { file, size, max: MAX_POLICY_BYTES });
    }
    parse(&file, &bytes)
}

impl Policy {
    /// Whether the policy applies to this host: its id is listed, or it has every listed tag (and some are).
    pub fn selects(&self, host_id: &str, tags: &[String]) -> bool {
        self.hosts.ids.iter().any(|id| id == host_id)
            || (!self.hosts.tags.is_empty() && self.hosts.tags.iter().all(|t| tags.contains(t)))
    }

    /// Whether `principal` may request `scope` (itself possibly a pattern): it is within a pattern of a grant
    /// that names the principal or `*`. A scope that is not well-formed is never granted.
    pub fn grants(&self, principal: &str, scope: &str) -> bool {
        crate::scope::validate(scope, true).is_ok()
            && self.grants.iter().any(|g| {
                g.principals.iter().any(|p| p == "*" || p == principal)
                    && g.scopes.iter().any(|pattern| crate::scope::within(scope, pattern))
            })
    }

    /// The scope patterns granted to `principal` (for diagnostics), in policy order.
    pub fn granted_scopes<'a>(&'a self, principal: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.grants
            .iter()
            .filter(move |g| g.principals.iter().any(|p| p == "*" || p == principal))
            .flat_map(|g| g.scopes.iter().map(String::as_str))
    }

    /// The PCRs the policy constrains, which a host must quote: sha256 first, then sha384, sha512, sha1.
    pub fn selection(&self) -> PcrSelection {
        let banks = self.banks().filter_map(|(bank, pcrs)| PcrBank::new(bank, pcrs.keys().copied()).ok()).collect();
        // Banks are distinct and indices in range (parse checked both): this cannot fail.
        PcrSelection::new(banks).unwrap_or_default()
    }

    /// Every constrained PCR is in `values` with one of its acceptable values; PCRs the policy does not
    /// constrain are ignored.
    pub fn check_pcrs(&self, values: &PcrValues) -> Result<(), PcrMismatch> {
        let constraints = self
            .banks()
            .flat_map(|(bank, pcrs)| pcrs.iter().map(move |(&index, acceptable)| (bank, index, acceptable.as_slice())));
        check::check(constraints, values)
    }

    fn banks(&self) -> impl Iterator<Item = (HashAlg, &BTreeMap<u8, Vec<Vec<u8>>>)> + '_ {
        BANK_ORDER.into_iter().filter_map(|bank| self.pcrs.get(&bank).map(|pcrs| (bank, pcrs)))
    }
}

#[cfg(test)]
mod tests;
