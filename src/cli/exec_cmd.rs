//! `runtrust exec` (docs/design.md §9): arguments and exit codes around [`crate::gateway`], which makes
//! every check before the command starts, runs it, and reports its end.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::NonEmptyStringValueParser;

use super::{report, CliError, GlobalOpts};
use crate::gateway::{ExecRequest, GatewayError, Outcome, DENIED_EXIT};

#[derive(clap::Args, Debug)]
#[command(after_help = "Checks, in order, before CMD starts (any failure: exit 125, CMD never started):\n\
  1. the token verifies offline: issuer signature (keys cached in the state dir) and\n     \
iss (--issuer, else the service id cached with the keys), nbf/exp, audience,\n     \
and --scope within the token's scope\n\
  2. runtime binding: a fresh quote by this TPM, under a nonce made here, signed by\n     \
the token's cnf AK, with the token's pcrDigest (another TPM:\n     \
runtime_identity_mismatch; PCRs changed since issuance: pcr_mismatch)\n\
  3. online check with the service: the token is the one issued under its cti, byte\n     \
for byte; nothing revoked (token, ancestors, hosts, policy); a single-use token\n     \
is spent here (second use: token_replayed; service unreachable:\n     \
verifier_unavailable, unless --offline-grace D and the revocation feed kept\n     \
here is younger than D and revokes nothing of the token; never single-use)\n\n\
Then CMD runs with stdin, stdout and stderr inherited. SIGTERM, SIGHUP, SIGUSR1 and\n\
SIGUSR2 are passed on (SIGINT and SIGQUIT too, unless exec runs in a terminal's\n\
foreground, where the terminal sends them to CMD itself). exec exits with CMD's status\n\
(128+N if a signal N ended it, 127 if it could not start), and 125 for every failure of\n\
its own, usage errors included. Start and end (status, duration, SHA-256 of the argv)\n\
are recorded in the audit log.\n\n\
Example:\n  runtrust exec --token web.token --scope deploy/web/api --audience gw-1 -- ./deploy.sh --prod")]
pub struct ExecArgs {
    /// The execution token (runtrust token request --out).
    #[arg(long, value_name = "FILE")]
    token: PathBuf,
    /// The scope this command runs under; it must be within the token's scope.
    #[arg(long)]
    scope: String,
    /// This gateway's audience id; the token's aud must equal it. Required: the flag or $RUNTRUST_AUDIENCE.
    #[arg(long, env = "RUNTRUST_AUDIENCE", value_parser = NonEmptyStringValueParser::new())]
    audience: String,
    /// The service id the token must carry as iss. Default: $RUNTRUST_ISSUER, else the service id cached
    /// with the keys (`GET /v1/keys` names it); required with --keys.
    #[arg(long, env = "RUNTRUST_ISSUER", value_name = "ID", value_parser = NonEmptyStringValueParser::new())]
    issuer: Option<String>,
    /// Issuer keys (keys export output) instead of the cached ones.
    #[arg(long, value_name = "FILE")]
    keys: Option<PathBuf>,
    /// Clock skew to allow in the token's nbf/exp checks here (0s to 5m), for a gateway whose clock may
    /// differ from the service's. Default 0s: strict.
    #[arg(long, env = "RUNTRUST_LEEWAY", value_name = "DURATION", default_value = "0s", value_parser = super::args::parse_leeway)]
    leeway: u64,
    /// Let the command run while the service is unreachable, if the revocation feed this gateway keeps (in
    /// its state dir, refreshed while the service answers) was signed less than DURATION ago (1s to 24h) and
    /// revokes nothing of the token. Never for single-use or delegated tokens. Such a run is not recorded at
    /// the service. Default: none, the service must answer.
    #[arg(long, env = "RUNTRUST_OFFLINE_GRACE", value_name = "DURATION", value_parser = super::args::parse_offline_grace)]
    offline_grace: Option<u64>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

pub fn run(a: ExecArgs, g: &GlobalOpts) -> ExitCode {
    let token = match super::token_cmd::read_token(&a.token) {
        Ok(t) => t,
        Err(e) => {
            report(e, g);
            return ExitCode::from(DENIED_EXIT);
        }
    };
    let request = ExecRequest { token, scope: a.scope, audience: a.audience, argv: a.command };
    let connect = || g.client_options().connect();
    let gateway = g.gateway(a.keys.as_deref(), a.issuer, a.leeway, a.offline_grace, &connect);
    let mut open_tpm = || g.open_tpm();
    let grant = match gateway.authorize(&request, &mut open_tpm) {
        Ok(grant) => grant,
        Err(e) => {
            report(gateway_error(e), g);
            return ExitCode::from(DENIED_EXIT);
        }
    };
    if grant.offline() {
        eprintln!(
            "runtrust: warning: the service is unreachable; token {} runs under the offline grace (the kept \
             revocation feed revokes nothing of it); this execution is not recorded at the service",
            grant.cti
        );
    }
    let outcome = grant.run(&request.argv);
    if let Outcome::NotStarted { error, .. } = &outcome {
        eprintln!("runtrust: exec: {error}");
    }
    if let Err(e) = grant.finish(&outcome) {
        eprintln!("runtrust: warning: could not report the end of execution {}: {e}", grant.execution_id);
    }
    ExitCode::from(outcome.exit_status())
}

/// A gateway refusal as the CLI reports it (the exit status is 125 whatever it is).
pub(crate) fn gateway_error(e: GatewayError) -> CliError {
    if let Some((code, diagnostics)) = e.denial() {
        return CliError::Denied { code: code.as_str().to_owned(), detail: e.to_string(), diagnostics };
    }
    match e {
        GatewayError::Service(e) | GatewayError::Keys(crate::gateway::KeysError::Fetch(e)) => CliError::from(e),
        e => CliError::Other(e.into()),
    }
}
