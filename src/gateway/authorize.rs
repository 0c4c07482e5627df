//! The three checks before a command starts (docs/design.md §2 stage 7), in order; the last records the
//! start with the service.

use std::ffi::OsString;

use super::offline::{self, OfflineError, OfflineGrace};
use super::{prove_binding, Gateway, GatewayError};
use crate::api::{routes, ExecStartRequest, ExecStartResponse};
use crate::client::{Client, ClientError};
use crate::token::{verify, Claims, Expectations, TokenError};
use crate::tpm::{Tpm, TpmError};

/// What is to run, under which token.
#[derive(Clone, Debug)]
pub struct ExecRequest {
    /// The execution token (COSE_Sign1).
    pub token: Vec<u8>,
    /// The scope the command runs under; within the token's.
    pub scope: String,
    /// This gateway's audience id: the token's aud must equal it (docs/design.md §9, required).
    pub audience: String,
    /// The command and its arguments.
    pub argv: Vec<OsString>,
}

/// What the checks granted: the start is recorded (or, under the offline grace, allowed by the kept
/// feed: `client` is None and nothing is recorded), the command may run.
pub struct Grant {
    pub cti: String,
    pub execution_id: String,
    pub claims: Claims,
    pub(super) client: Option<Client>,
}

impl Grant {
    /// Allowed under the offline grace, unrecorded at the service.
    pub fn offline(&self) -> bool {
        self.client.is_none()
    }
}

impl Gateway<'_> {
    /// Offline verification, then the runtime binding, then the online check (which records the start).
    /// `open_tpm` is called only once the token has verified.
    pub fn authorize(
        &self,
        req: &ExecRequest,
        open_tpm: &mut dyn FnMut() -> Result<Box<dyn Tpm>, TpmError>,
    ) -> Result<Grant, GatewayError> {
        let claims = self.verify_offline(&req.token, Some(&req.audience), Some(&req.scope))?;
        let mut tpm = open_tpm().map_err(GatewayError::Tpm)?;
        prove_binding(tpm.as_mut(), &claims)?;
        drop(tpm);
        let body = ExecStartRequest {
            token: req.token.clone(),
            scope: req.scope.clone(),
            audience: Some(req.audience.clone()),
            argv_sha256: argv_sha256(&req.argv),
        };
        let started = (self.connect)().and_then(|client| {
            let started: ExecStartResponse = client.post(routes::EXECUTIONS, &body)?;
            Ok((client, started))
        });
        match started {
            Ok((client, started)) => {
                tracing::info!(cti = %started.cti, execution = %started.execution_id, "execution allowed");
                if let Some(grace) = &self.offline {
                    self.keep_feed(&client, grace);
                }
                Ok(Grant { cti: started.cti, execution_id: started.execution_id, claims, client: Some(client) })
            }
            Err(e @ ClientError::Unavailable { .. }) => match &self.offline {
                None => Err(GatewayError::ServiceUnreachable(e)),
                Some(grace) => self.allow_offline(e, grace, claims),
            },
            Err(e) => Err(GatewayError::Service(e)),
        }
    }

    /// docs/design.md §15: the service is unreachable; the kept feed decides.
    fn allow_offline(
        &self,
        unreachable: ClientError,
        grace: &OfflineGrace,
        claims: Claims,
    ) -> Result<Grant, GatewayError> {
        let issuer = self.expected_issuer()?;
        let now = self.clock.now_i64();
        let checked = offline::load(&grace.state_dir).and_then(|pages| {
            self.keys
                .check(|keys| offline::appraise(&pages, keys, &issuer, &claims, now, grace.grace_secs), |_| false)
                .map_err(|e| OfflineError::FeedSignature(e.to_string()))?
        });
        match checked {
            Ok(()) => {
                let cti = hex::encode(&claims.cti);
                tracing::warn!(%cti, "the service is unreachable: allowed under the offline grace, not recorded");
                Ok(Grant { cti, execution_id: "offline".into(), claims, client: None })
            }
            Err(why) => Err(GatewayError::Offline { unreachable: Box::new(unreachable), why: Box::new(why) }),
        }
    }

    /// Brings the kept feed up to date (one small request when nothing changed); a failure only warns.
    fn keep_feed(&self, client: &Client, grace: &OfflineGrace) {
        if let Err(e) = offline::refresh(client, &grace.state_dir) {
            tracing::warn!("could not refresh the revocation feed for the offline grace: {e}");
        }
    }

    /// The token verifies with the issuer keys, as the expected issuer's, now (`token verify`, and exec's
    /// first check).
    pub fn verify_offline(
        &self,
        token: &[u8],
        audience: Option<&str>,
        scope: Option<&str>,
    ) -> Result<Claims, GatewayError> {
        let issuer = self.expected_issuer()?;
        let expect =
            Expectations { now: self.clock.now_i64(), issuer: &issuer, audience, scope, leeway_secs: self.leeway_secs };
        let verified =
            self.keys.check(|set| verify(token, set, &expect), |e| matches!(e, TokenError::UnknownKid(_)))?;
        Ok(verified?)
    }
}

impl Gateway<'_> {
    /// The `iss` tokens must carry: the configured issuer, else the service id cached with the keys.
    pub fn expected_issuer(&self) -> Result<String, GatewayError> {
        match &self.issuer {
            Some(issuer) => Ok(issuer.clone()),
            None => Ok(self.keys.service_id()?),
        }
    }
}

/// SHA-256 over the argv, each argument followed by a NUL byte (what execution reports carry).
pub fn argv_sha256(argv: &[OsString]) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for a in argv {
        ctx.update(a.as_bytes());
        ctx.update(&[0]);
    }
    hex::encode(ctx.finish())
}
