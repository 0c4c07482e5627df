//! Denials as RFC 9457 problem details (`application/problem+json`) carrying the docs/design.md §8 code,
//! and [`DenialReason`], which every module's error enum implements to become one.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use runtrust_attestation::DenialCode;
use serde_json::Value;

use crate::api::Problem;

/// Where problem types are documented.
const TYPE_BASE: &str = "https://runtrust.dev/problems/";

/// A refusal: every error path of the service ends here, so none of them can allow.
#[derive(Debug, Clone)]
pub struct Denial {
    pub status: StatusCode,
    /// A docs/design.md §8 code, or `bad_request` / `not_found` / `conflict` for malformed administrative requests,
    /// or `limit_exceeded` for a per-principal limit.
    pub code: String,
    pub detail: String,
    pub diagnostics: Value,
    /// The host the refused request was about, when known: for its audit entry, not for the answer.
    pub host_id: Option<String>,
}

/// An error that is a denial: its code (docs/design.md §8), its diagnostics, and its HTTP status when that is
/// not the code's own. Each module's error enum implements it; `?` then turns it into a [`Denial`].
pub trait DenialReason: std::error::Error {
    fn code(&self) -> DenialCode;

    fn diagnostics(&self) -> Value {
        Value::Null
    }

    fn status(&self) -> Option<StatusCode> {
        None
    }

    /// The denial; for the service's own faults the detail goes to the log, not to the caller.
    fn to_denial(&self) -> Denial {
        if self.code() == DenialCode::InternalError {
            return Denial::internal(self);
        }
        let d = Denial::new(self.code(), self.to_string()).with_diagnostics(self.diagnostics());
        match self.status() {
            Some(status) => d.with_status(status),
            None => d,
        }
    }
}

/// `From<E> for Denial` for error enums that implement [`DenialReason`].
macro_rules! denial_from {
    ($($t:ty),* $(,)?) => {
        $(impl From<$t> for $crate::service::Denial {
            fn from(e: $t) -> Self {
                $crate::service::DenialReason::to_denial(&e)
            }
        })*
    };
}
pub(crate) use denial_from;

impl Denial {
    pub fn new(code: DenialCode, detail: impl Into<String>) -> Self {
        let status = match code {
            DenialCode::AuthorizationMissing => StatusCode::UNAUTHORIZED,
            DenialCode::NonceReplayed | DenialCode::TokenReplayed => StatusCode::CONFLICT,
            DenialCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            DenialCode::VerifierUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::FORBIDDEN,
        };
        Self { status, code: code.as_str().to_owned(), detail: detail.into(), diagnostics: Value::Null, host_id: None }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn with_diagnostics(mut self, diagnostics: Value) -> Self {
        self.diagnostics = diagnostics;
        self
    }

    /// Names the host the request was about (for the audit entry), unless a stage already did.
    pub fn about_host(mut self, host_id: Option<&str>) -> Self {
        if self.host_id.is_none() {
            self.host_id = host_id.map(str::to_owned);
        }
        self
    }

    /// A request the API cannot read at all.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request".into(),
            detail: detail.into(),
            diagnostics: Value::Null,
            host_id: None,
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not_found".into(),
            detail: detail.into(),
            diagnostics: Value::Null,
            host_id: None,
        }
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            code: "conflict".into(),
            detail: detail.into(),
            diagnostics: Value::Null,
            host_id: None,
        }
    }

    /// A per-principal limit of `[limits]` reached (docs/design.md §16): 429 `limit_exceeded`, not a denial
    /// of trust; the caller may retry once it has used or let expire what it holds.
    pub fn limit_exceeded(detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "limit_exceeded".into(),
            detail: detail.into(),
            diagnostics: Value::Null,
            host_id: None,
        }
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {detail}");
        Self::new(DenialCode::InternalError, "internal error (see the service log)")
    }

    pub fn problem(&self) -> Problem {
        Problem {
            type_uri: format!("{TYPE_BASE}{}", self.code),
            title: self.status.canonical_reason().unwrap_or("denied").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.clone(),
            diagnostics: self.diagnostics.clone(),
        }
    }
}

/// The denial rides along in the response's extensions, where the audit layer ([`super::audited`]) reads it.
impl IntoResponse for Denial {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (self.status, [(header::CONTENT_TYPE, "application/problem+json")], body).into_response();
        response.extensions_mut().insert(self);
        response
    }
}

impl From<crate::store::StoreError> for Denial {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Conflict(detail) => Denial::conflict(detail),
            e => Denial::internal(e),
        }
    }
}
