//! `runtrust token request|inspect|verify`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};
use clap::Subcommand;
use serde_json::json;

use super::exec_cmd::gateway_error;
use super::{print_json, CliError, CliResult, GlobalOpts};
use crate::client::token::{request_token, Ask};
use crate::fsutil;
use crate::model::{Clock, SystemClock};
use crate::token::{claims_json, decode_unverified, KeySet, TokenError, MAX_TOKEN_BYTES};

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
    Inspect {
        /// The token file (COSE_Sign1, as `token request --out` wrote it).
        file: PathBuf,
    },
    /// Verify a token offline: signature with the issuer keys, issuer (iss), time, audience, scope.
    Verify {
        /// The token file.
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
        /// The service id the token must carry as iss. Default: $RUNTRUST_ISSUER, else the service id cached
        /// with the keys (`GET /v1/keys` names it); required with --keys.
        #[arg(long, env = "RUNTRUST_ISSUER", value_name = "ID", value_parser = clap::builder::NonEmptyStringValueParser::new())]
        issuer: Option<String>,
        /// Clock skew to allow in the nbf/exp checks (0s to 5m), for a verifier whose clock may differ from
        /// the service's. Default 0s: strict.
        #[arg(long, env = "RUNTRUST_LEEWAY", value_name = "DURATION", default_value = "0s", value_parser = super::args::parse_leeway)]
        leeway: u64,
    },
}

pub fn run(cmd: TokenCommand, g: &GlobalOpts) -> CliResult {
    match cmd {
        TokenCommand::Request { scope, audience, ttl, parent, for_host, out, event_log } => {
            let ttl_secs = ttl
                .map(|t| crate::policy::parse_duration(&t).map_err(|e| CliError::Usage(anyhow!("--ttl {t:?}: {e}"))))
                .transpose()?;
            let parent = parent.map(|p| read_token(&p)).transpose()?;
            if let Some(len) = parent.as_ref().map(Vec::len).filter(|l| *l > MAX_TOKEN_BYTES) {
                let e = TokenError::TooLarge { len, max: MAX_TOKEN_BYTES };
                return Err(CliError::denied(e.code(), format!("--parent: {e}")));
            }
            let client = g.client()?;
            let mut tpm = g.open_tpm()?;
            let ask = Ask { scope, audience, ttl_secs, parent, for_host, event_log };
            let issued = request_token(&client, tpm.as_mut(), &ask)?;
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
                    issued.expires_at.saturating_sub(SystemClock.now_unix()),
                    out.display()
                );
            }
            Ok(())
        }
        TokenCommand::Inspect { file } => {
            let bytes = read_token(&file)?;
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
                        let shown = match (k.as_str(), val.as_u64()) {
                            // RFC 8392 §3.1.4-3.1.6 NumericDate: the integer, and the time for people.
                            ("exp" | "nbf" | "iat", Some(t)) => format!("{t} ({})", super::output::when(t)),
                            _ => val.as_str().map(str::to_owned).unwrap_or_else(|| val.to_string()),
                        };
                        println!("{k:<18} {shown}");
                    }
                }
            }
            Ok(())
        }
        TokenCommand::Verify { file, audience, scope, keys, issuer, leeway } => {
            let bytes = read_token(&file)?;
            let connect = || g.client_options().connect();
            let gateway = g.gateway(keys.as_deref(), issuer, leeway, None, &connect);
            let claims =
                gateway.verify_offline(&bytes, audience.as_deref(), scope.as_deref()).map_err(gateway_error)?;
            let now = gateway.clock.now_i64();
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

/// A token file, read no further than one byte past the token size cap (the decoder then refuses it as too
/// large): a huge or endless file costs 16 KiB, not its size.
pub(crate) fn read_token(path: &Path) -> Result<Vec<u8>, CliError> {
    Ok(fsutil::read_at_most(path, MAX_TOKEN_BYTES).with_context(|| format!("reading {}", path.display()))?)
}

/// Runs `check` with the issuer keys: those in `keys` (a file), or else the ones cached in the state
/// directory (fetched from the service when missing, and once more when `retry` says no cached key signed).
pub(crate) fn with_issuer_keys<T, E>(
    g: &GlobalOpts,
    keys: Option<&Path>,
    check: impl Fn(&KeySet) -> Result<T, E>,
    retry: impl Fn(&E) -> bool,
) -> Result<Result<T, E>, CliError> {
    let connect = || g.client_options().connect();
    Ok(g.issuer_keys(keys, &connect).check(check, retry)?)
}
