//! The `runtrust` command line (docs/design.md §9, a contract). The only place that prints or exits.

// Output that cannot fail the process (docs/design.md §9). std's print macros panic when stdout or stderr is
// gone; these shadow them for every command module below. A reader that goes away (`runtrust audit tail
// --json | head`) ends the output quietly: further lines are dropped, the command finishes (its TPM objects
// flushed) and exits with its own status. SIGPIPE stays ignored (Rust's default), so a reset network
// connection is an error value (exit 4 with a message), never a silent death by signal (exit 141).
macro_rules! println {
    () => { $crate::cli::output::line(&mut std::io::stdout(), format_args!("")) };
    ($($t:tt)*) => { $crate::cli::output::line(&mut std::io::stdout(), format_args!($($t)*)) };
}
macro_rules! print {
    ($($t:tt)*) => { $crate::cli::output::text(&mut std::io::stdout(), format_args!($($t)*)) };
}
macro_rules! eprintln {
    ($($t:tt)*) => { $crate::cli::output::line(&mut std::io::stderr(), format_args!($($t)*)) };
}

pub(crate) mod output;

mod admin_cmd;
mod agent_cmd;
mod args;
mod audit_cmd;
mod client_config;
mod console_cmd;
mod ek_ca_cmd;
mod enroll_cmd;
mod eventlog_cmd;
mod exec_cmd;
mod help;
mod join_cmd;
mod keys_cmd;
mod lineage_cmd;
mod policy_cmd;
mod quote_cmd;
mod revoke_cmd;
mod service_cmd;
mod store_cmd;
mod token_cmd;
mod tpm2_tools;
mod tpm_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use runtrust_attestation::DenialCode;

use crate::tpm::{default_state_dir, resolve_tcti, TpmError, TpmOptions, DEFAULT_TCTI};
use args::KeyAlgArg;

/// Exit codes (docs/design.md §9).
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const DENIED: u8 = 3;
    pub const UNAVAILABLE: u8 = 4;
}

#[derive(Parser, Debug)]
#[command(
    name = "runtrust",
    version,
    about = "Attestation-gated execution: a TPM quote in, a short-lived execution token out",
    long_about = "runtrust establishes trust before execution begins. A host's TPM quotes its PCRs; runtrust \
verifies the quote strictly and fails closed with a precise denial code.\n\n\
Exit codes: 0 success, 1 error, 2 usage, 3 denied or did not verify (the denial code is on stderr, and in \
--json output as \"code\"), 4 unavailable (TPM or service unreachable).",
    after_help = "Examples:\n  runtrust tpm info\n  runtrust tpm quote --nonce $(openssl rand -hex 32) --pcrs 0-7 --out q/\n  \
runtrust quote verify --ak-public q/ak.pub --attest q/attest --signature q/signature --nonce HEX --pcrs q/pcrs.json"
)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    command: Command,
}

/// Options shared by every command (flag > environment > default).
#[derive(clap::Args, Debug, Clone)]
pub struct GlobalOpts {
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// TPM connection. Default: $RUNTRUST_TCTI, then $TPM2TOOLS_TCTI, then $TCTI, then device:/dev/tpmrm0.
    /// Examples: device:/dev/tpmrm0, swtpm:host=127.0.0.1,port=2321
    #[arg(long, global = true, value_name = "CONF")]
    tcti: Option<String>,
    /// Host-side state (AK blobs). Default: /var/lib/runtrust as root, else ~/.local/state/runtrust.
    #[arg(long, global = true, env = "RUNTRUST_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Endorsement key algorithm (rsa: RSA-2048, ecc: P-256, ecc384: P-384).
    #[arg(long, global = true, env = "RUNTRUST_EK_ALG", value_enum, default_value_t = KeyAlgArg::Rsa)]
    ek_alg: KeyAlgArg,
    /// Attestation key algorithm (rsa: RSASSA-SHA256, ecc: ECDSA-P256-SHA256, ecc384: ECDSA-P384-SHA384).
    #[arg(long, global = true, env = "RUNTRUST_AK_ALG", value_enum, default_value_t = KeyAlgArg::Rsa)]
    ak_alg: KeyAlgArg,
    /// The runtrust service, https://HOST:PORT.
    #[arg(long, global = true, env = "RUNTRUST_SERVER", value_name = "URL")]
    server: Option<String>,
    /// CA certificate that signed the service's TLS certificate (init writes it to DATA_DIR/tls/ca.pem).
    #[arg(long, global = true, env = "RUNTRUST_SERVER_CA", value_name = "FILE")]
    server_ca: Option<PathBuf>,
    /// File holding this principal's bearer credential (init writes the first admin's to
    /// DATA_DIR/admin.credential). Default: STATE_DIR/credential if present (written by enroll --join-token).
    #[arg(long, global = true, env = "RUNTRUST_CREDENTIAL_FILE", value_name = "FILE")]
    credential: Option<PathBuf>,
    /// The host agent's socket (docs/design.md §14); token request, exec and enroll use the agent when it
    /// answers there, else the TPM. Default: /run/runtrust/agent.sock.
    #[arg(long, global = true, env = "RUNTRUST_AGENT", value_name = "PATH")]
    agent: Option<PathBuf>,
}

/// The host's own credential in its state directory, after `enroll --join-token` (docs/design.md §5).
pub(crate) const JOINED_CREDENTIAL: &str = "credential";

impl GlobalOpts {
    pub(crate) fn client_options(&self) -> crate::client::ClientOptions {
        crate::client::ClientOptions {
            server: self.server.clone(),
            server_ca: self.server_ca.clone(),
            credential: self.credential.clone().or_else(|| {
                // Written by `enroll --join-token` (docs/design.md §5): the host's own credential.
                let joined = self.state_dir().join(JOINED_CREDENTIAL);
                joined.is_file().then_some(joined)
            }),
        }
    }

    fn client(&self) -> Result<crate::client::Client, CliError> {
        self.client_options().connect().map_err(CliError::from)
    }

    fn state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(default_state_dir)
    }

    /// The issuer keys: `file`, or the state directory's cache filled through `connect`.
    pub(crate) fn issuer_keys<'a>(
        &self,
        file: Option<&std::path::Path>,
        connect: &'a dyn Fn() -> Result<crate::client::Client, crate::client::ClientError>,
    ) -> crate::gateway::IssuerKeys<'a> {
        match file {
            Some(f) => crate::gateway::IssuerKeys::File(f.to_path_buf()),
            None => crate::gateway::IssuerKeys::Cached { state_dir: self.state_dir(), connect },
        }
    }

    /// The execution gateway these options describe; `issuer` is `--issuer` (None: the cached service id).
    pub(crate) fn gateway<'a>(
        &self,
        keys: Option<&std::path::Path>,
        issuer: Option<String>,
        leeway_secs: u64,
        offline_grace_secs: Option<u64>,
        connect: &'a dyn Fn() -> Result<crate::client::Client, crate::client::ClientError>,
    ) -> crate::gateway::Gateway<'a> {
        crate::gateway::Gateway {
            keys: self.issuer_keys(keys, connect),
            issuer,
            connect,
            clock: std::sync::Arc::new(crate::model::SystemClock),
            leeway_secs: i64::try_from(leeway_secs).unwrap_or(0),
            offline: offline_grace_secs.map(|secs| crate::gateway::OfflineGrace {
                grace_secs: i64::try_from(secs).unwrap_or(0),
                state_dir: self.state_dir.clone().unwrap_or_else(crate::tpm::default_state_dir),
            }),
        }
    }

    fn agent_socket(&self) -> PathBuf {
        self.agent.clone().unwrap_or_else(|| PathBuf::from(crate::agent::DEFAULT_SOCKET))
    }

    /// The TPM for host flows: the agent when its socket answers, else this host's TPM directly.
    fn open_tpm(&self) -> Result<Box<dyn crate::tpm::Tpm>, TpmError> {
        let socket = self.agent_socket();
        match crate::agent::AgentTpm::connect(&socket) {
            Ok(agent) => Ok(Box::new(agent)),
            Err(e) => {
                tracing::debug!("no agent at {}: {e}; opening the TPM", socket.display());
                Ok(Box::new(crate::tpm::TssTpm::open(self.tpm_options())?))
            }
        }
    }

    fn tpm_options(&self) -> TpmOptions {
        TpmOptions {
            tcti: resolve_tcti(self.tcti.as_deref(), |k| std::env::var(k).ok()),
            state_dir: self.state_dir.clone().unwrap_or_else(default_state_dir),
            ek_alg: self.ek_alg.into(),
            ak_alg: self.ak_alg.into(),
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Use this host's TPM: information, PCRs, quotes.
    #[command(subcommand)]
    Tpm(tpm_cmd::TpmCommand),
    /// Verify TPM quotes offline.
    #[command(subcommand)]
    Quote(quote_cmd::QuoteCommand),
    /// Create a service data directory: config, issuer key, TLS material, first admin credential.
    Init(service_cmd::InitArgs),
    /// Run the service (HTTPS; SIGTERM or SIGINT stop it gracefully).
    Serve(service_cmd::ServeArgs),
    /// Enroll this host: prove to the service that its AK lives in this genuine TPM. Prints the host id.
    Enroll(enroll_cmd::EnrollArgs),
    /// Manage principals (admin).
    #[command(subcommand)]
    Principal(admin_cmd::PrincipalCommand),
    /// Enrolled hosts: list, show (admin, auditor); tag, unrevoke, rebaseline, remove (admin).
    #[command(subcommand)]
    Hosts(admin_cmd::HostsCommand),
    /// Join tokens for onboarding hosts in batches: create, list, revoke (admin).
    #[command(subcommand)]
    JoinToken(join_cmd::JoinTokenCommand),
    /// Policies: check, hash, apply, list, capture from a golden host, sign.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// Execution tokens: request, inspect, verify.
    #[command(subcommand)]
    Token(token_cmd::TokenCommand),
    /// The service's EK certificate trust anchors (TPM vendor CAs): list, add, remove, while it runs.
    #[command(subcommand)]
    EkCa(ek_ca_cmd::EkCaCommand),
    /// The service's issuer keys: list, export, rotate, retire.
    #[command(subcommand)]
    Keys(keys_cmd::KeysCommand),
    /// Run a command only if an execution token allows it here and now (exit 125 for any failure of exec's own).
    Exec(exec_cmd::ExecArgs),
    /// The host agent: owns the TPM, batches quotes, serves local clients on a Unix socket; `status`.
    Agent(agent_cmd::AgentArgs),
    /// Revoke a token (and its descendants), a host or a policy (admin); list the signed feed.
    #[command(subcommand)]
    Revoke(revoke_cmd::RevokeCommand),
    /// A token's ancestry, descendants and executions, with status.
    Lineage(lineage_cmd::LineageArgs),
    /// Print a one-time sign-in link to the read-only web console (admin, auditor).
    Console(console_cmd::ConsoleArgs),
    /// The tamper-evident audit log: tail, checkpoint, verify, prove.
    #[command(subcommand)]
    Audit(audit_cmd::AuditCommand),
    /// TCG event logs (measured boot), offline: show, replay.
    #[command(subcommand)]
    Eventlog(eventlog_cmd::EventlogCommand),
    /// Print a shell completion script: `runtrust completions bash > /etc/bash_completion.d/runtrust`.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages: runtrust(1) and one per subcommand (runtrust-exec(1), …) into DIR.
    Man {
        /// Directory to write the pages into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// The service's store: migrate from the embedded store to PostgreSQL.
    #[command(subcommand)]
    Store(store_cmd::StoreCommand),
}

/// How a command failed, which decides the exit code.
#[derive(Debug)]
pub enum CliError {
    /// Did not verify / denied: exit 3, code on stderr.
    Denied { code: String, detail: String, diagnostics: serde_json::Value },
    /// TPM or service unreachable: exit 4.
    Unavailable(anyhow::Error),
    /// A bad argument value that clap could not check (a duration, a selection): exit 2.
    Usage(anyhow::Error),
    /// Anything else: exit 1.
    Other(anyhow::Error),
}

impl CliError {
    pub fn denied(code: DenialCode, detail: impl ToString) -> Self {
        CliError::Denied {
            code: code.as_str().to_owned(),
            detail: detail.to_string(),
            diagnostics: serde_json::Value::Null,
        }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        CliError::Other(e)
    }
}

impl From<TpmError> for CliError {
    fn from(e: TpmError) -> Self {
        if e.is_unavailable() {
            CliError::Unavailable(e.into())
        } else {
            CliError::Other(e.into())
        }
    }
}

impl From<crate::client::ClientError> for CliError {
    fn from(e: crate::client::ClientError) -> Self {
        use crate::client::ClientError;
        match e {
            ClientError::Unavailable { .. } => CliError::Unavailable(e.into()),
            ClientError::Denied(p) if p.code.parse::<DenialCode>().is_ok() => {
                let p = *p;
                CliError::Denied { code: p.code, detail: p.detail, diagnostics: p.diagnostics }
            }
            e => CliError::Other(e.into()),
        }
    }
}

impl From<crate::gateway::KeysError> for CliError {
    fn from(e: crate::gateway::KeysError) -> Self {
        match e {
            crate::gateway::KeysError::Fetch(e) => e.into(),
            e => CliError::Other(e.into()),
        }
    }
}

impl From<crate::client::HostFlowError> for CliError {
    fn from(e: crate::client::HostFlowError) -> Self {
        use crate::client::HostFlowError;
        match e {
            HostFlowError::Tpm(e) => e.into(),
            HostFlowError::Client(e) => e.into(),
            e => CliError::Other(e.into()),
        }
    }
}

pub type CliResult = Result<(), CliError>;

/// Prints a value as pretty JSON on stdout.
pub(crate) fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")));
}

/// Logs go to stderr; RUST_LOG filters them (default: `default`).
pub(crate) fn init_tracing(default: &str, format: crate::config::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // A log line that cannot be written is dropped: tracing's own fallback (eprintln!) would panic on a
    // closed stderr, and a panic in the signal task would leave `serve` deaf to SIGTERM.
    // Colours only for a terminal: log files and journald get plain text.
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .log_internal_errors(false);
    let _ = match format {
        crate::config::LogFormat::Json => builder.json().try_init(),
        crate::config::LogFormat::Text => builder.try_init(),
    };
}

/// Fills what neither a flag nor the environment gave from the client config file, if there is one
/// (docs/design.md §9: flag > environment > config > default).
fn apply_client_config(g: &mut GlobalOpts) -> Result<(), CliError> {
    let loaded = client_config::load(|k| std::env::var(k).ok()).map_err(|e| CliError::Other(e.into()))?;
    let Some((path, c)) = loaded else { return Ok(()) };
    tracing::debug!("client config {}", path.display());
    g.server = g.server.take().or(c.server);
    g.server_ca = g.server_ca.take().or(c.server_ca);
    g.credential = g.credential.take().or(c.credential);
    g.state_dir = g.state_dir.take().or(c.state_dir);
    g.agent = g.agent.take().or(c.agent);
    // The TPM's environment variables (resolve_tcti) outrank the file too.
    if g.tcti.is_none() && ["RUNTRUST_TCTI", "TPM2TOOLS_TCTI", "TCTI"].iter().all(|k| std::env::var_os(k).is_none()) {
        g.tcti = c.tcti;
    }
    Ok(())
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let mut cli = match parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    if let Err(e) = apply_client_config(&mut cli.global) {
        return report(e, &cli.global);
    }
    if !matches!(cli.command, Command::Serve(_) | Command::Agent(_)) {
        init_tracing("warn", crate::config::LogFormat::Text);
    }
    // libtss2 logs its own ERROR lines to stderr for every failed TCTI probe; runtrust reports the failure
    // itself, once. TSS2_LOG set by the user (e.g. all+debug) is kept. Before any thread starts.
    if std::env::var_os("TSS2_LOG").is_none() {
        std::env::set_var("TSS2_LOG", "all+none");
    }
    let g = &cli.global;
    let result = match cli.command {
        Command::Tpm(c) => tpm_cmd::run(c, g),
        Command::Quote(c) => quote_cmd::run(c, g),
        Command::Init(a) => service_cmd::init(a, g),
        Command::Serve(a) => service_cmd::serve(a),
        Command::Enroll(a) => enroll_cmd::run(a, g),
        Command::Principal(c) => admin_cmd::principal(c, g),
        Command::Hosts(c) => admin_cmd::hosts(c, g),
        Command::EkCa(c) => ek_ca_cmd::run(c, g),
        Command::JoinToken(c) => join_cmd::run(c, g),
        Command::Policy(c) => policy_cmd::run(c, g),
        Command::Token(c) => token_cmd::run(c, g),
        Command::Keys(c) => keys_cmd::run(c, g),
        Command::Console(a) => console_cmd::run(a, g),
        Command::Audit(c) => audit_cmd::run(c, g),
        Command::Revoke(c) => revoke_cmd::run(c, g),
        Command::Lineage(a) => lineage_cmd::run(a, g),
        Command::Exec(a) => return exec_cmd::run(a, g),
        Command::Eventlog(c) => eventlog_cmd::run(c, g),
        Command::Agent(a) => agent_cmd::run(a, g),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut help::command(), "runtrust", &mut out);
            print!("{}", String::from_utf8_lossy(&out));
            Ok(())
        }
        Command::Man { out } => help::write_man_pages(&out).map_err(CliError::from).map(|n| {
            println!("wrote {n} man pages to {}", out.display());
        }),
        Command::Store(c) => store_cmd::run(c, g),
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => report(e, g),
    }
}

/// Parses the command line. A usage error exits 2, except under `exec`, whose own failures all exit 125
/// (docs/design.md §9) so that they never mix with its command's status; `--help` and `--version` exit 0.
fn parse(args: Vec<std::ffi::OsString>) -> Result<Cli, ExitCode> {
    use clap::FromArgMatches as _;
    let e = match help::command().try_get_matches_from(&args).and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => return Ok(cli),
        Err(e) => e,
    };
    let _ = e.print();
    // With --json a usage error is a JSON object on stdout too (docs/design.md §9); help is not an error.
    if args.iter().any(|a| a == "--json") && e.use_stderr() {
        print_json(&serde_json::json!({ "error": "usage", "detail": e.kind().to_string() }));
    }
    // clap's own code: 0 for --help and --version, 2 for a usage error.
    let code = u8::try_from(e.exit_code()).unwrap_or(exit::USAGE);
    if code == exit::OK {
        return Err(ExitCode::from(code));
    }
    // Which subcommand was meant, read leniently (the strict parse above failed).
    let lenient = help::command().ignore_errors(true).try_get_matches_from(args);
    let is_exec = lenient.ok().is_some_and(|m| m.subcommand_name() == Some("exec"));
    Err(ExitCode::from(if is_exec { crate::gateway::DENIED_EXIT } else { code }))
}

/// With --json, every failure is also a JSON object on stdout: `{"error": KIND, "detail": …}` (docs/design.md §9).
fn failure_json(json: bool, kind: &str, e: &anyhow::Error) {
    if json {
        print_json(&serde_json::json!({ "error": kind, "detail": format!("{e:#}") }));
    }
}

/// Prints a failure (stderr; with --json also as JSON on stdout) and returns its docs/design.md §9 exit code.
pub(crate) fn report(e: CliError, g: &GlobalOpts) -> ExitCode {
    let json = g.json;
    match e {
        CliError::Denied { code, detail, diagnostics } => {
            if json {
                print_json(
                    &serde_json::json!({ "valid": false, "code": code, "detail": detail, "diagnostics": diagnostics }),
                );
            }
            eprintln!("runtrust: denied: {code}: {detail}");
            if !diagnostics.is_null() {
                eprintln!("{}", serde_json::to_string_pretty(&diagnostics).unwrap_or_default());
            }
            if let Some(hint) = diagnostics.get("hint").and_then(|h| h.as_str()) {
                eprintln!("  hint: {hint}");
            }
            if code == DenialCode::AuthorizationMissing.as_str() && g.credential.is_none() {
                eprintln!("  hint: pass --credential FILE or set RUNTRUST_CREDENTIAL_FILE");
            }
            ExitCode::from(exit::DENIED)
        }
        CliError::Unavailable(e) => {
            failure_json(json, "unavailable", &e);
            eprintln!("runtrust: unavailable: {e:#}");
            ExitCode::from(exit::UNAVAILABLE)
        }
        CliError::Usage(e) => {
            failure_json(json, "usage", &e);
            eprintln!("runtrust: usage: {e:#}");
            ExitCode::from(exit::USAGE)
        }
        CliError::Other(e) => {
            failure_json(json, "error", &e);
            eprintln!("runtrust: error: {e:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}

/// The TCTI a command will use when none is configured, for help texts.
pub const TCTI_DEFAULT_HELP: &str = DEFAULT_TCTI;

#[cfg(test)]
mod tests {
    use super::*;

    /// What `parse` makes of a command line: "parsed", or the exit code it would end with.
    fn outcome(args: &[&str]) -> String {
        match parse(std::iter::once("runtrust").chain(args.iter().copied()).map(Into::into).collect()) {
            Ok(_) => "parsed".into(),
            Err(code) => format!("{code:?}"),
        }
    }

    fn exit(n: u8) -> String {
        format!("{:?}", ExitCode::from(n))
    }

    /// Issue 11 finding 11: exec's usage errors exit 125 like its other failures; help exits 0.
    #[test]
    fn exec_usage_errors_exit_125_and_others_2() {
        let run = ["exec", "--token", "t", "--scope", "s", "--audience", "gw-1", "--", "true"];
        assert_eq!(outcome(&run), "parsed");
        for bad in [
            &["exec"][..],
            &["exec", "--token", "t", "--scope", "s", "--audience", "gw-1"],
            &["exec", "--token", "t", "--scope", "s", "--audience", "", "--", "true"],
            &["exec", "--bogus"],
            &["--json", "exec", "--token"],
            &["--tcti", "swtpm:port=1", "exec", "--scope", "s", "--", "true"],
        ] {
            assert_eq!(outcome(bad), exit(crate::gateway::DENIED_EXIT), "{bad:?}");
        }
        assert_eq!(outcome(&["exec", "--help"]), exit(exit::OK));
        assert_eq!(outcome(&["--help"]), exit(exit::OK));
        assert_eq!(outcome(&["tpm", "bogus"]), exit(exit::USAGE));
        assert_eq!(outcome(&["token", "verify"]), exit(exit::USAGE));
        assert_eq!(outcome(&["bogus", "exec"]), exit(exit::USAGE), "exec as an argument, not the command");
    }
}
