//! `runtrust token request|inspect|verify`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};
use clap::Subcommand;
use serde_json::json;

use super::{print_json, CliError, CliResult, GlobalOpts};
use crate::api::now_unix;
use crate::client::token::{request_token, Ask};
use crate::fsutil;
use crate::token::{claims_json, decode_unverified, verify, Claims, Expectations, KeySet, TokenError};
use crate::tpm::{default_state_dir, TssTpm};

/// Where `token verify` caches the issuer keys it fetched.
const KEY_CACHE: &str = "issuer-keys.cose";

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Ask the service for an execution token: challenge, TPM quote, request. Writes the token to --out.
    #[command(after_help = "Exit 3 with the denial code on stderr when the service refuses (e.g. pcr_mismatch);\n\
exit 4 when the service or the TPM cannot be reached.")]
    Request {
        /// What the token authorizes, e.g. deploy/web/api.
        #[arg(long)]
        scope: String,
        /// Who it is for: the gateway or relying party that will check it.
        #[arg(long)]
        audience: String,
        /// Lifetime (30s, 5m, 1h); default: the policy's default_ttl.
        #[arg(long)]
        ttl: Option<String>,
        /// Parent token, to delegate a narrower scope (run on the parent's host: its TPM proves possession
        /// with a fresh quote by the parent's cnf AK). The child expires no later than the parent.
        #[arg(long, value_name = "FILE")]
        parent: Option<PathBuf>,
        /// With --parent: bind the child to this other enrolled host (its AK and the PCR state its policy
        /// last accepted), where the policy sets cross_host_delegation.
        #[arg(long, value_name = "HOST_ID", requires = "parent")]
        for_host: Option<String>,
        /// Where to write the token (mode 0600).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// TCG event log to send when a policy has [measured_boot] rules (reading the default needs root).
        #[arg(long, env = "RUNTRUST_EVENT_LOG", value_name = "FILE", default_value = crate::client::token::DEFAULT_EVENT_LOG)]
        event_log: PathBuf,
    },
    /// Print every claim of a token (not verified; see `token verify`). Byte strings as hex.
    Inspect { file: PathBuf },
    /// Verify a token offline: signature with the issuer keys, time, audience, scope.
    Verify {
        file: PathBuf,
        /// The audience the token must name.
        #[arg(long)]
        audience: Option<String>,
        /// A scope the token must cover.
        #[arg(long)]
        scope: Option<String>,
        /// Issuer keys (`runtrust keys export` output, COSE_KeySet or PEM). Default: fetched from --server
        /// once and cached in the state directory.
        #[arg(long, value_name = "FILE")]
        keys: Option<PathBuf>,
    },
}

pub fn run(cmd: TokenCommand, g: &GlobalOpts) -> CliResult {
    match cmd {
        TokenCommand::Request { scope, audience, ttl, parent, for_host, out, event_log } => {
            let ttl_secs =
                ttl.map(|t| crate::policy::parse_duration(&t).map_err(|e| anyhow!("--ttl {t:?}: {e}"))).transpose()?;
            let parent =
                parent.map(|p| std::fs::read(&p).with_context(|| format!("reading {}", p.display()))).transpose()?;
            let client = g.client()?;
            let mut tpm = TssTpm::open(g.tpm_options())?;
            let ask = Ask { scope, audience, ttl_secs, parent, for_host, event_log };
            let issued = request_token(&client, &mut tpm, &ask)?;
            fsutil::write_private(&out, &issued.token).with_context(|| format!("writing {}", out.display()))?;
            if g.json {
                print_json(&json!({
                    "out": out, "cti": issued.cti, "expires_at": issued.expires_at, "policy_id": issued.policy_id,
                    "host_id": issued.host_id, "audit_index": issued.audit_index,
                }));
            } else {
                println!(
                    "token {} for {:?} → {:?}, policy {}, expires in {} s; written to {}",
                    issued.cti,
                    ask.scope,
                    ask.audience,
                    issued.policy_id,
                    issued.expires_at.saturating_sub(now_unix()),
                    out.display()
                );
            }
            Ok(())
        }
        TokenCommand::Inspect { file } => {
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let (header, claims) = decode_unverified(&bytes).map_err(|e| CliError::denied(e.code(), e))?;
            let mut v = claims_json(&claims);
            if let Some(o) = v.as_object_mut() {
                o.insert("alg".into(), json!(header.alg.name()));
                o.insert("kid".into(), json!(hex::encode(&header.kid)));
            }
            if g.json {
                print_json(&v);
            } else {
                println!("(claims as written; `runtrust token verify` checks the signature)");
                if let Some(o) = v.as_object() {
                    for (k, val) in o {
                        println!("{k:<18} {}", val.as_str().map(str::to_owned).unwrap_or_else(|| val.to_string()));
                    }
                }
            }
            Ok(())
        }
        TokenCommand::Verify { file, audience, scope, keys } => {
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let now = i64::try_from(now_unix()).unwrap_or(i64::MAX);
            let exp = Expectations { now, audience: audience.as_deref(), scope: scope.as_deref(), leeway_secs: 0 };
            let claims = verify_token(g, &bytes, &exp, keys.as_deref())?;
            if g.json {
                let mut v = claims_json(&claims);
                if let Some(o) = v.as_object_mut() {
                    o.insert("valid".into(), json!(true));
                }
                print_json(&v);
            } else {
                println!(
                    "token valid: {} for {:?} → {:?}, host {}, expires in {} s",
                    hex::encode(&claims.cti),
                    claims.scope,
                    claims.aud,
                    claims.sub,
                    claims.exp - now
                );
            }
            Ok(())
        }
    }
}

/// Runs `check` with the issuer keys: those in `keys` (a file), or else the ones cached in the state
/// directory (fetched from the service when missing). With the cache, a check that fails because no cached
/// key signed (`retry` says so) runs once more after a fresh fetch: a key rotated since the cache was filled.
pub(crate) fn with_issuer_keys<T, E>(
    g: &GlobalOpts,
    keys: Option<&Path>,
    check: impl Fn(&KeySet) -> Result<T, E>,
    retry: impl Fn(&E) -> bool,
) -> Result<Result<T, E>, CliError> {
    if let Some(p) = keys {
        return Ok(check(&load_keys(p)?));
    }
    match check(&cached_keys(g, false)?) {
        Err(e) if retry(&e) => Ok(check(&cached_keys(g, true)?)),
        r => Ok(r),
    }
}

/// Verifies a token offline with the issuer keys ([`with_issuer_keys`]).
pub(crate) fn verify_token(
    g: &GlobalOpts,
    bytes: &[u8],
    exp: &Expectations<'_>,
    keys: Option<&Path>,
) -> Result<Claims, CliError> {
    with_issuer_keys(g, keys, |set| verify(bytes, set, exp), |e| matches!(e, TokenError::UnknownKid(_)))?
        .map_err(|e| CliError::denied(e.code(), e))
}

/// A COSE_KeySet or PEM file.
pub(crate) fn load_keys(path: &Path) -> Result<KeySet, CliError> {
    let b = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let set = if b.starts_with(b"-----BEGIN") {
        KeySet::from_pem(&String::from_utf8_lossy(&b))
    } else {
        KeySet::from_cose_keyset(&b)
    };
    set.map_err(|e| CliError::Other(anyhow!("{}: {e}", path.display())))
}

fn cached_keys(g: &GlobalOpts, refresh: bool) -> Result<KeySet, CliError> {
    let dir = g.state_dir.clone().unwrap_or_else(default_state_dir);
    let cache = dir.join(KEY_CACHE);
    if !refresh {
        if let Ok(set) = load_keys(&cache) {
            return Ok(set);
        }
    }
    let client = g.client()?;
    let bytes = client.get_bytes("/v1/keys")?;
    let set = KeySet::from_cose_keyset(&bytes).map_err(|e| anyhow!("the service's key set: {e}"))?;
    if fsutil::create_private_dir(&dir).is_ok() {
        if let Err(e) = fsutil::write_atomic(&cache, &bytes, 0o644) {
            tracing::warn!("could not cache issuer keys in {}: {e}", cache.display());
        }
    }
    Ok(set)
}
