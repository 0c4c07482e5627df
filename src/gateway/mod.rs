//! The execution gateway as a library (docs/design.md §2 stages 6–7): nothing runs without a valid token,
//! and the token's binding is re-proved at the moment of execution.
//!
//! [`Gateway::authorize`] makes every check, in order, before anything starts: the token verifies offline
//! (issuer signature and `iss`, time, audience, scope); the runtime binding (a fresh quote by the token's cnf AK
//! carrying its pcrDigest); the online check with the service (revocation, single use), which records the
//! start. Any failure is a [`GatewayError`] with a denial code and nothing has run. The [`Grant`] then runs
//! the command ([`Grant::run`], signals passed on) and reports its end ([`Grant::finish`]).
//!
//! ```no_run
//! use std::ffi::OsString;
//! use std::sync::Arc;
//! use runtrust::client::{Client, ClientOptions};
//! use runtrust::gateway::{ExecRequest, Gateway, IssuerKeys};
//! use runtrust::model::SystemClock;
//! use runtrust::tpm::{default_state_dir, KeyAlg, Tpm, TpmOptions, TssTpm, DEFAULT_TCTI};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let options = ClientOptions {
//!     server: Some("https://runtrust.example:8443".into()),
//!     server_ca: Some("/etc/runtrust/ca.pem".into()),
//!     credential: Some("/etc/runtrust/gateway.credential".into()),
//! };
//! let connect = || Client::new(&options);
//! let gateway = Gateway {
//!     keys: IssuerKeys::Cached { state_dir: "/var/lib/runtrust".into(), connect: &connect },
//!     // None: the service id cached with the keys (`GET /v1/keys` names it).
//!     issuer: None,
//!     connect: &connect,
//!     clock: Arc::new(SystemClock),
//!     // Clock skew allowed in the offline nbf/exp checks (`--leeway`).
//!     leeway_secs: 0,
//!     // `--offline-grace`: None, the service must answer (docs/design.md §15).
//!     offline: None,
//! };
//! let request = ExecRequest {
//!     token: std::fs::read("deploy.token")?,
//!     scope: "deploy/web/api".into(),
//!     audience: "gw-1".into(),
//!     argv: vec![OsString::from("./deploy.sh")],
//! };
//! let tpm_options = TpmOptions {
//!     tcti: DEFAULT_TCTI.into(),
//!     state_dir: default_state_dir(),
//!     ek_alg: KeyAlg::Rsa,
//!     ak_alg: KeyAlg::Rsa,
//! };
//! let mut open_tpm = || TssTpm::open(tpm_options.clone()).map(|t| Box::new(t) as Box<dyn Tpm>);
//! // Every check passes before anything runs; a denial carries its code.
//! let grant = gateway.authorize(&request, &mut open_tpm)?;
//! let outcome = grant.run(&request.argv);
//! if let Err(e) = grant.finish(&outcome) {
//!     eprintln!("could not report the end: {e}");
//! }
//! std::process::exit(outcome.exit_status().into());
//! # }
//! ```

mod authorize;
mod binding;
mod keys;
pub mod offline;
mod supervise;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use runtrust_attestation::DenialCode;

pub use authorize::{argv_sha256, ExecRequest, Grant};
pub use binding::{prove_binding, BindingError};
pub use keys::{load_keys, IssuerKeys, KeysError, ISSUER_CACHE, KEY_CACHE};
pub use offline::{OfflineError, OfflineGrace};
pub use supervise::Outcome;

use crate::client::{Client, ClientError};
use crate::model::Clock;
use crate::token::TokenError;
use crate::tpm::TpmError;

/// docs/design.md §9: a denied or unverifiable exec exits 125 without starting the command.
pub const DENIED_EXIT: u8 = 125;

/// A gateway: where it gets issuer keys, whose tokens it accepts, how it reaches the service, and its clock.
pub struct Gateway<'a> {
    pub keys: IssuerKeys<'a>,
    /// The `iss` a token must carry (docs/design.md §9: `--issuer`); None: the service id cached with the
    /// keys ([`IssuerKeys::service_id`]). Keys from a file need it.
    pub issuer: Option<String>,
    pub connect: &'a dyn Fn() -> Result<Client, ClientError>,
    pub clock: Arc<dyn Clock>,
    /// Clock skew allowed in the offline nbf/exp checks (`--leeway`; at most
    /// [`crate::token::MAX_LEEWAY_SECS`]). The service's own check at the execution start uses its clock.
    pub leeway_secs: i64,
    /// The offline grace (`--offline-grace`, docs/design.md §15); None: the service must answer.
    pub offline: Option<OfflineGrace>,
}

/// Why nothing ran. Every variant is a refusal; [`GatewayError::denial`] gives the code where it is one.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("reading {path}: {detail}")]
    Token { path: String, detail: String },
    #[error(transparent)]
    Invalid(#[from] TokenError),
    #[error(transparent)]
    Keys(#[from] KeysError),
    #[error("cannot reach the TPM to prove the binding: {0}")]
    Tpm(TpmError),
    #[error(transparent)]
    Binding(#[from] BindingError),
    #[error("{0}; the online check (revocation, single use) cannot be made, so nothing runs")]
    ServiceUnreachable(ClientError),
    /// The service refused, or answered unusably.
    #[error(transparent)]
    Service(ClientError),
    /// The service did not answer, and the offline grace does not cover this token.
    #[error("{unreachable}; under the offline grace: {why}")]
    Offline { unreachable: Box<ClientError>, why: Box<OfflineError> },
}

impl GatewayError {
    /// The denial code and diagnostics, when the failure is a denial of this token (not a local error).
    pub fn denial(&self) -> Option<(DenialCode, serde_json::Value)> {
        match self {
            GatewayError::Invalid(e) => Some((e.code(), serde_json::Value::Null)),
            GatewayError::Tpm(_) | GatewayError::ServiceUnreachable(_) => {
                Some((DenialCode::VerifierUnavailable, serde_json::Value::Null))
            }
            GatewayError::Binding(e) => Some((e.code(), e.diagnostics())),
            GatewayError::Offline { why, .. } => Some((why.code(), serde_json::Value::Null)),
            _ => None,
        }
    }
}
