//! Denials as RFC 9457 problem details (`application/problem+json`) carrying the DESIGN §8 code.

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
    /// A DESIGN §8 code, or `bad_request` / `not_found` / `conflict` for malformed administrative requests.
    pub code: String,
    pub detail: String,
    pub diagnostics: Value,
}

impl Denial {
    pub fn new(code: DenialCode, detail: impl Into<String>) -> Self {
        let status = match code {
            DenialCode::AuthorizationMissing => StatusCode::UNAUTHORIZED,
            DenialCode::NonceReplayed | DenialCode::TokenReplayed => StatusCode::CONFLICT,
            DenialCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            DenialCode::VerifierUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::FORBIDDEN,
        };
        Self { status, code: code.as_str().to_owned(), detail: detail.into(), diagnostics: Value::Null }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn with_diagnostics(mut self, diagnostics: Value) -> Self {
        self.diagnostics = diagnostics;
        self
    }

    /// A request the API cannot read at all.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request".into(),
            detail: detail.into(),
            diagnostics: Value::Null,
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not_found".into(),
            detail: detail.into(),
            diagnostics: Value::Null,
        }
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self { status: StatusCode::CONFLICT, code: "conflict".into(), detail: detail.into(), diagnostics: Value::Null }
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

impl IntoResponse for Denial {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        (self.status, [(header::CONTENT_TYPE, "application/problem+json")], body).into_response()
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
