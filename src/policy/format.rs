//! The policy file format (reference: policies/README.md). TOML is decoded strictly into raw types that
//! keep the byte spans of the values they carry, then each value is validated into a [`Policy`], so every
//! error can name its line and column. Checks that need no context (banks, PCR indices, empty tables) run
//! inside the decoder, which attaches the span of the key or table itself.

use std::collections::{BTreeMap, BTreeSet};

use runtrust_attestation::tpm2::MAX_PCR_INDEX;
use runtrust_attestation::HashAlg;
use serde::Deserialize;
use toml::Spanned;

use super::duration::{format_duration, parse_duration};
use super::error::{PolicyError, Source};
use super::measured_boot::MAX_PATTERN_CHARS;
use super::{Grant, HostSelector, MeasuredBoot, Policy, TokenRules};
use crate::scope;

/// Longest policy file, in bytes.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;
/// Longest token lifetime a policy may allow.
pub const MAX_TTL_SECS: u64 = 24 * 3600;
/// Deepest delegation chain a policy may allow (tokens carry their ancestry).
pub const MAX_DELEGATION_DEPTH: u32 = 8;
/// Acceptable values per PCR.
pub const MAX_VALUES_PER_PCR: usize = 64;
/// `[[grant]]` tables per policy.
pub const MAX_GRANTS: usize = 64;
/// Entries in `hosts.ids`, `hosts.tags`, and a grant's `principals` and `scopes`.
pub const MAX_LIST_LEN: usize = 256;
/// Characters in `description`.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;

/// Token rules when `[token]` leaves them out.
pub const DEFAULT_MAX_TTL_SECS: u64 = 15 * 60;
pub const DEFAULT_DEFAULT_TTL_SECS: u64 = 5 * 60;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    id: Spanned<String>,
    description: Option<Spanned<String>>,
    hosts: RawHosts,
    pcrs: RawPcrs,
    #[serde(default, rename = "grant")]
    grants: Vec<RawGrant>,
    #[serde(default)]
    token: RawToken,
    measured_boot: Option<RawMeasuredBoot>,
}

type RawList = Spanned<Vec<Spanned<String>>>;

/// `[measured_boot]` (policies/README.md); unknown keys are refused like everywhere else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeasuredBoot {
    require_secure_boot: Option<bool>,
    allowed_boot_apps: Option<RawList>,
    #[serde(default)]
    forbidden_boot_apps: Vec<Spanned<String>>,
    #[serde(default)]
    required_dbx: Vec<Spanned<String>>,
    #[serde(default)]
    forbidden_dbx: Vec<Spanned<String>>,
    kernel_cmdline_allow: Option<RawList>,
    #[serde(default)]
    kernel_cmdline_forbid: Vec<Spanned<String>>,
    forbid_debug_mode: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostsFields {
    #[serde(default)]
    ids: Vec<Spanned<String>>,
    #[serde(default)]
    tags: Vec<Spanned<String>>,
}

/// `[hosts]`: at least one id or tag (a policy that selects nothing is a mistake).
#[derive(Deserialize)]
#[serde(try_from = "HostsFields")]
struct RawHosts(HostsFields);

impl TryFrom<HostsFields> for RawHosts {
    type Error = &'static str;
    fn try_from(h: HostsFields) -> Result<Self, Self::Error> {
        if h.ids.is_empty() && h.tags.is_empty() {
            return Err("hosts: list at least one host id (`ids`) or tag (`tags`)");
        }
        Ok(RawHosts(h))
    }
}

type RawValues = Spanned<Vec<Spanned<String>>>;

/// `[pcrs]`: bank → bank table; at least one bank.
#[derive(Deserialize)]
#[serde(try_from = "BTreeMap<BankKey, RawBank>")]
struct RawPcrs(BTreeMap<BankKey, RawBank>);

impl TryFrom<BTreeMap<BankKey, RawBank>> for RawPcrs {
    type Error = &'static str;
    fn try_from(m: BTreeMap<BankKey, RawBank>) -> Result<Self, Self::Error> {
        if m.is_empty() {
            return Err("pcrs: constrain at least one PCR, e.g. [pcrs.sha256] 7 = [\"<hex>\"]");
        }
        Ok(RawPcrs(m))
    }
}

/// `[pcrs.<bank>]`: PCR index → acceptable values; at least one index.
#[derive(Deserialize)]
#[serde(try_from = "BTreeMap<IndexKey, RawValues>")]
struct RawBank(BTreeMap<IndexKey, RawValues>);

impl TryFrom<BTreeMap<IndexKey, RawValues>> for RawBank {
    type Error = &'static str;
    fn try_from(m: BTreeMap<IndexKey, RawValues>) -> Result<Self, Self::Error> {
        if m.is_empty() {
            return Err("this PCR bank constrains no PCR: list at least one index, or remove the table");
        }
        Ok(RawBank(m))
    }
}

/// A bank name exactly as HashAlg names it (lowercase).
#[derive(Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(try_from = "String")]
struct BankKey(HashAlg);

impl TryFrom<String> for BankKey {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        HashAlg::ALL
            .into_iter()
            .find(|h| h.name() == s)
            .map(BankKey)
            .ok_or_else(|| format!("unknown PCR bank {s:?}: expected sha1, sha256, sha384 or sha512"))
    }
}

/// A PCR index in canonical decimal (so `7` and `07` cannot both appear), 0 to MAX_PCR_INDEX.
#[derive(Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(try_from = "String")]
struct IndexKey(u8);

impl TryFrom<String> for IndexKey {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let canonical = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
        match s.parse::<u8>() {
            Ok(i) if canonical && i <= MAX_PCR_INDEX => Ok(IndexKey(i)),
            _ if canonical => Err(format!("PCR index {s} is out of range: PCR indices are 0-{MAX_PCR_INDEX}")),
            _ => Err(format!("{s:?} is not a PCR index: write it in decimal, 0-{MAX_PCR_INDEX}")),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    principals: Spanned<Vec<Spanned<String>>>,
    scopes: Spanned<Vec<Spanned<String>>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    max_ttl: Option<Spanned<String>>,
    default_ttl: Option<Spanned<String>>,
    single_use: Option<bool>,
    max_delegation_depth: Option<Spanned<u32>>,
    cross_host_delegation: Option<Spanned<bool>>,
}

/// Decodes and validates `text`.
pub(super) fn decode(src: &Source<'_>) -> Result<Policy, PolicyError> {
    let raw: RawPolicy = toml::from_str(src.text).map_err(|e| src.toml(&e))?;
    let id = policy_id(src, &raw.id)?;
    let description = match &raw.description {
        Some(d) => description(src, d)?,
        None => String::new(),
    };
    let hosts = hosts(src, &raw.hosts.0)?;
    let mut pcrs = BTreeMap::new();
    for (bank, table) in &raw.pcrs.0 {
        let mut indices = BTreeMap::new();
        for (index, values) in &table.0 {
            indices.insert(index.0, pcr_values(src, bank.0, index.0, values)?);
        }
        pcrs.insert(bank.0, indices);
    }
    let grants = grants(src, &raw.grants)?;
    let token = token(src, &raw.token)?;
    let measured_boot = raw.measured_boot.as_ref().map(|m| measured_boot(src, m)).transpose()?;
    Ok(Policy { id, description, hosts, pcrs, grants, token, measured_boot })
}

/// `[a-z0-9][a-z0-9._-]{0,63}`: prints, logs and names files safely.
fn policy_id(src: &Source<'_>, id: &Spanned<String>) -> Result<String, PolicyError> {
    let s = id.get_ref();
    let ok = (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if !ok {
        return Err(src.invalid(
            id.span(),
            "id",
            format!("{s:?}: policy ids are 1-64 characters of a-z 0-9 . _ -, starting with a letter or digit"),
        ));
    }
    Ok(s.clone())
}

fn description(src: &Source<'_>, d: &Spanned<String>) -> Result<String, PolicyError> {
    let s = d.get_ref();
    if s.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(src.invalid(d.span(), "description", format!("longer than {MAX_DESCRIPTION_CHARS} characters")));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(src.invalid(d.span(), "description", "control characters other than newline and tab"));
    }
    Ok(s.clone())
}

/// A host tag (set at enrollment, selected by policies): 1-128 printable ASCII characters, no spaces.
pub fn valid_tag(tag: &str) -> bool {
    (1..=128).contains(&tag.len()) && tag.bytes().all(|b| b.is_ascii_graphic())
}

fn hosts(src: &Source<'_>, h: &HostsFields) -> Result<HostSelector, PolicyError> {
    let ids = strings(src, "hosts.ids", "host id", &h.ids, |s| {
        let ok = s.strip_prefix("sha256:").is_some_and(|hex| {
            hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        ok.then_some(()).ok_or("host ids are sha256:<64 lowercase hex digits>, as `runtrust enroll` prints them")
    })?;
    let tags = strings(src, "hosts.tags", "tag", &h.tags, |s| {
        valid_tag(s).then_some(()).ok_or("tags are 1-128 printable ASCII characters without spaces, e.g. role=web")
    })?;
    Ok(HostSelector { ids, tags })
}

fn pcr_values(src: &Source<'_>, bank: HashAlg, index: u8, values: &RawValues) -> Result<Vec<Vec<u8>>, PolicyError> {
    let field = format!("pcrs.{bank}.{index}");
    if values.get_ref().is_empty() {
        return Err(src.invalid(values.span(), field, "list at least one acceptable value"));
    }
    if let Some(extra) = values.get_ref().get(MAX_VALUES_PER_PCR) {
        return Err(src.invalid(extra.span(), field, format!("more than {MAX_VALUES_PER_PCR} acceptable values")));
    }
    let mut out: Vec<Vec<u8>> = Vec::new();
    for v in values.get_ref() {
        let bytes =
            hex::decode(v.get_ref()).map_err(|e| src.invalid(v.span(), &field, format!("not a hex digest ({e})")))?;
        if bytes.len() != bank.digest_len() {
            return Err(src.invalid(
                v.span(),
                &field,
                format!("value is {} bytes, a {bank} digest is {}", bytes.len(), bank.digest_len()),
            ));
        }
        if out.contains(&bytes) {
            return Err(src.invalid(v.span(), &field, "value is listed twice"));
        }
        out.push(bytes);
    }
    Ok(out)
}

fn grants(src: &Source<'_>, raw: &[RawGrant]) -> Result<Vec<Grant>, PolicyError> {
    if let Some(extra) = raw.get(MAX_GRANTS) {
        return Err(src.invalid(extra.principals.span(), "grant", format!("more than {MAX_GRANTS} [[grant]] tables")));
    }
    let mut out = Vec::new();
    for (n, g) in raw.iter().enumerate() {
        let field = format!("grant[{n}].principals");
        if g.principals.get_ref().is_empty() {
            return Err(src.invalid(g.principals.span(), field, "list at least one principal, or \"*\" for any"));
        }
        let principals = strings(src, &field, "principal", g.principals.get_ref(), |s| {
            let ok = s == "*"
                || ((1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
            ok.then_some(()).ok_or("principal names are 1-64 characters of A-Z a-z 0-9 . _ -, or \"*\" for any")
        })?;
        let field = format!("grant[{n}].scopes");
        if g.scopes.get_ref().is_empty() {
            return Err(src.invalid(g.scopes.span(), field, "list at least one scope pattern"));
        }
        let scopes =
            strings(src, &field, "scope", g.scopes.get_ref(), |s| scope::validate(s, true).map_err(|e| e.reason))?;
        out.push(Grant { principals, scopes });
    }
    Ok(out)
}

fn token(src: &Source<'_>, t: &RawToken) -> Result<TokenRules, PolicyError> {
    let ttl = |d: &Spanned<String>, field: &str| -> Result<u64, PolicyError> {
        let secs = parse_duration(d.get_ref()).map_err(|e| src.invalid(d.span(), field, e))?;
        if secs > MAX_TTL_SECS {
            return Err(src.invalid(
                d.span(),
                field,
                format!("{} is longer than the {} a policy may allow", d.get_ref(), format_duration(MAX_TTL_SECS)),
            ));
        }
        Ok(secs)
    };
    let max_ttl_secs = match &t.max_ttl {
        Some(d) => ttl(d, "token.max_ttl")?,
        None => DEFAULT_MAX_TTL_SECS,
    };
    let default_ttl_secs = match &t.default_ttl {
        Some(d) => {
            let secs = ttl(d, "token.default_ttl")?;
            if secs > max_ttl_secs {
                return Err(src.invalid(
                    d.span(),
                    "token.default_ttl",
                    format!("{} exceeds max_ttl ({})", d.get_ref(), format_duration(max_ttl_secs)),
                ));
            }
            secs
        }
        None => DEFAULT_DEFAULT_TTL_SECS.min(max_ttl_secs),
    };
    let max_delegation_depth = match &t.max_delegation_depth {
        Some(d) if *d.get_ref() > MAX_DELEGATION_DEPTH => {
            return Err(src.invalid(
                d.span(),
                "token.max_delegation_depth",
                format!("{} is deeper than the {MAX_DELEGATION_DEPTH} a policy may allow", d.get_ref()),
            ))
        }
        Some(d) => *d.get_ref(),
        None => 0,
    };
    let cross_host_delegation = match &t.cross_host_delegation {
        Some(c) if *c.get_ref() && max_delegation_depth == 0 => {
            return Err(src.invalid(
                c.span(),
                "token.cross_host_delegation",
                "delegation is off (max_delegation_depth = 0): allow it first, or remove this line",
            ))
        }
        Some(c) => *c.get_ref(),
        None => false,
    };
    Ok(TokenRules {
        max_ttl_secs,
        default_ttl_secs,
        single_use: t.single_use.unwrap_or(false),
        max_delegation_depth,
        cross_host_delegation,
    })
}

/// `sha256:<64 lowercase hex>`.
fn digest_entry(s: &str) -> Result<(), &'static str> {
    match s.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => Ok(()),
        _ => Err("expected sha256:<64 lowercase hex digits>"),
    }
}

fn cmdline_pattern(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.chars().count() > MAX_PATTERN_CHARS {
        return Err("a pattern is 1 to 1024 characters");
    }
    if s.chars().any(char::is_control) {
        return Err("a pattern has no control characters");
    }
    Ok(())
}

fn measured_boot(src: &Source<'_>, m: &RawMeasuredBoot) -> Result<MeasuredBoot, PolicyError> {
    let digests = |field: &str, items: &[Spanned<String>]| -> Result<Vec<Vec<u8>>, PolicyError> {
        let list = strings(src, field, "digest", items, digest_entry)?;
        Ok(list.iter().filter_map(|s| hex::decode(s.trim_start_matches("sha256:")).ok()).collect())
    };
    let non_empty = |field: &str, list: &RawList| {
        if list.get_ref().is_empty() {
            return Err(src.invalid(list.span(), field, "an empty list allows nothing: remove the key to allow any"));
        }
        Ok(())
    };
    let allowed_boot_apps = match &m.allowed_boot_apps {
        Some(list) => {
            non_empty("measured_boot.allowed_boot_apps", list)?;
            Some(digests("measured_boot.allowed_boot_apps", list.get_ref())?)
        }
        None => None,
    };
    let kernel_cmdline_allow = match &m.kernel_cmdline_allow {
        Some(list) => {
            non_empty("measured_boot.kernel_cmdline_allow", list)?;
            strings(src, "measured_boot.kernel_cmdline_allow", "pattern", list.get_ref(), cmdline_pattern)?
        }
        None => Vec::new(),
    };
    Ok(MeasuredBoot {
        require_secure_boot: m.require_secure_boot.unwrap_or(false),
        allowed_boot_apps,
        forbidden_boot_apps: digests("measured_boot.forbidden_boot_apps", &m.forbidden_boot_apps)?,
        required_dbx: digests("measured_boot.required_dbx", &m.required_dbx)?,
        forbidden_dbx: digests("measured_boot.forbidden_dbx", &m.forbidden_dbx)?,
        kernel_cmdline_allow,
        kernel_cmdline_forbid: strings(
            src,
            "measured_boot.kernel_cmdline_forbid",
            "pattern",
            &m.kernel_cmdline_forbid,
            cmdline_pattern,
        )?,
        forbid_debug_mode: m.forbid_debug_mode.unwrap_or(true),
    })
}

/// Validates each string of a list with `check`; refuses duplicates and lists longer than MAX_LIST_LEN.
fn strings(
    src: &Source<'_>,
    field: &str,
    what: &str,
    items: &[Spanned<String>],
    check: impl Fn(&str) -> Result<(), &'static str>,
) -> Result<Vec<String>, PolicyError> {
    if let Some(extra) = items.get(MAX_LIST_LEN) {
        return Err(src.invalid(extra.span(), field, format!("more than {MAX_LIST_LEN} entries")));
    }
    let mut seen = BTreeSet::new();
    for item in items {
        let s = item.get_ref();
        check(s).map_err(|reason| src.invalid(item.span(), field, format!("{s:?}: {reason}")))?;
        if !seen.insert(s.as_str()) {
            return Err(src.invalid(item.span(), field, format!("{what} {s:?} is listed twice")));
        }
    }
    Ok(items.iter().map(|i| i.get_ref().clone()).collect())
}
