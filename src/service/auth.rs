//! Who is calling: a bearer credential resolved to a principal, and the role each route requires.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use runtrust_attestation::DenialCode;

use super::problem::Denial;
use super::{blocking, AppState};
use crate::principal;
use crate::store::{Principal, Role};

/// The authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller(pub Principal);

impl Caller {
    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), Denial> {
        if roles.contains(&self.0.role) {
            return Ok(());
        }
        let wanted: Vec<&str> = roles.iter().map(|r| r.name()).collect();
        Err(Denial::new(
            DenialCode::AuthorizationMissing,
            format!("principal {:?} has role {}; this needs {}", self.0.name, self.0.role.name(), wanted.join(" or ")),
        )
        .with_status(StatusCode::FORBIDDEN))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Denial;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let missing = |detail: &str| Denial::new(DenialCode::AuthorizationMissing, detail);
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| missing("no credential: send Authorization: Bearer <credential>"))?;
        let bearer = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| missing("Authorization is not a Bearer credential"))?;
        let (id, secret) = principal::parse(bearer).ok_or_else(|| missing("malformed credential"))?;
        let (id, secret) = (id.to_owned(), secret.to_owned());
        let found = blocking(state, move |store| store.principal(&id)).await?;
        // Unknown principal and wrong secret answer alike, after the same work.
        let stored = found.as_ref().map_or("0".repeat(64), |p| p.secret_sha256.clone());
        match (principal::matches(&secret, &stored), found) {
            (true, Some(p)) => Ok(Caller(p)),
            _ => Err(missing("unknown credential")),
        }
    }
}
