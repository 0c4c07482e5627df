//! Who is calling: a bearer credential resolved to a principal, and the role each route requires.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use runtrust_attestation::DenialCode;

use super::audited::AuditContext;
use super::{denial_from, quick, AppState, Denial, DenialReason, Fault};
use crate::model::{Principal, Role};
use crate::principal;

/// Why a caller may not do what it asked (`authorization_missing`).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no credential: send Authorization: Bearer <credential>")]
    NoCredential,
    #[error("Authorization is not a Bearer credential")]
    NotBearer,
    #[error("malformed credential")]
    Malformed,
    #[error("unknown credential")]
    Unknown,
    #[error("principal {name:?} has role {role}; this needs {wanted}")]
    Role { name: String, role: Role, wanted: String },
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl DenialReason for AuthError {
    fn code(&self) -> DenialCode {
        match self {
            AuthError::Fault(f) => f.code(),
            _ => DenialCode::AuthorizationMissing,
        }
    }

    /// Authenticated, but not allowed: 403 (the others are 401).
    fn status(&self) -> Option<StatusCode> {
        matches!(self, AuthError::Role { .. }).then_some(StatusCode::FORBIDDEN)
    }
}

denial_from!(AuthError);

/// The authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller(pub Principal);

impl Caller {
    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), AuthError> {
        if roles.contains(&self.0.role) {
            return Ok(());
        }
        let wanted: Vec<&str> = roles.iter().map(|r| r.name()).collect();
        Err(AuthError::Role { name: self.0.name.clone(), role: self.0.role, wanted: wanted.join(" or ") })
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Denial;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = authenticate(parts, state).await?;
        if let Some(ctx) = parts.extensions.get::<AuditContext>() {
            ctx.set_principal(&caller.0.name);
            // docs/design.md §16: a principal over its denial rate is not evaluated on audited routes.
            if state.throttle.over(&caller.0.name, state.clock.now_unix()) {
                ctx.set_throttled();
                return Err(state.throttle.refusal());
            }
        }
        Ok(caller)
    }
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Caller, AuthError> {
    let value = parts.headers.get(header::AUTHORIZATION).ok_or(AuthError::NoCredential)?;
    let bearer = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).ok_or(AuthError::NotBearer)?;
    let (id, secret) = principal::parse(bearer).ok_or(AuthError::Malformed)?;
    let (id, secret) = (id.to_owned(), secret.to_owned());
    let found = quick(state, move |store| store.principal(&id)).await?;
    // Unknown principal and wrong secret answer alike, after the same work.
    let stored = found.as_ref().map_or("0".repeat(64), |p| p.secret_sha256.clone());
    match (principal::matches(&secret, &stored), found) {
        (true, Some(p)) => Ok(Caller(p)),
        _ => Err(AuthError::Unknown),
    }
}
