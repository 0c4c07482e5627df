//! Why a token was not issued or not accepted, and the docs/design.md §8 code each reason maps to.

use runtrust_attestation::DenialCode;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is {len} bytes, more than the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("token is not a well-formed runtrust COSE_Sign1: {0}")]
    Malformed(String),
    #[error("claim {claim}: {reason}")]
    Claim { claim: &'static str, reason: String },
    #[error("unsupported or unexpected COSE algorithm {0}")]
    UnsupportedAlg(String),
    #[error("no issuer key with kid {0}")]
    UnknownKid(String),
    #[error("token algorithm {token} does not match the algorithm {key} of issuer key {kid}")]
    AlgMismatch { token: String, key: String, kid: String },
    #[error("signature does not verify with issuer key {kid}")]
    BadSignature { kid: String },
    #[error("token issuer {actual:?} is not {expected:?}")]
    IssuerMismatch { expected: String, actual: String },
    #[error("token expired at {exp} (now {now}, leeway {leeway} s)")]
    Expired { exp: i64, now: i64, leeway: i64 },
    #[error("token is not valid before {nbf} (now {now}, leeway {leeway} s)")]
    NotYetValid { nbf: i64, now: i64, leeway: i64 },
    #[error("token audience {actual:?} is not {expected:?}")]
    AudienceMismatch { expected: String, actual: String },
    #[error("requested scope {requested:?} is not within the token's scope {granted:?}")]
    ScopeDenied { requested: String, granted: String },
    /// An issuer key, key set or PEM file that cannot be used.
    #[error("issuer key: {0}")]
    Key(String),
    /// The AK cannot be expressed as a COSE_Key for cnf.
    #[error("AK cannot be bound into a token: {0}")]
    AkUnsupported(String),
    /// The issuer was asked to sign claims it would itself refuse.
    #[error("refusing to sign: {0}")]
    Unsignable(String),
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
}

impl TokenError {
    pub fn code(&self) -> DenialCode {
        match self {
            // Anything that stops the signature from being checked is as good as a bad signature.
            TokenError::TooLarge { .. }
            | TokenError::Malformed(_)
            | TokenError::Claim { .. }
            | TokenError::UnsupportedAlg(_)
            | TokenError::UnknownKid(_)
            | TokenError::AlgMismatch { .. }
            | TokenError::BadSignature { .. }
            // Signed by a key we trust, but not as this issuer: not a token this issuer vouches for.
            | TokenError::IssuerMismatch { .. } => DenialCode::SignatureInvalid,
            TokenError::Expired { .. } => DenialCode::TokenExpired,
            TokenError::NotYetValid { .. } => DenialCode::TokenNotYetValid,
            TokenError::AudienceMismatch { .. } => DenialCode::AudienceMismatch,
            TokenError::ScopeDenied { .. } => DenialCode::ScopeDenied,
            TokenError::AkUnsupported(_) => DenialCode::AkInvalid,
            TokenError::Key(_) | TokenError::Unsignable(_) | TokenError::Crypto(_) => DenialCode::InternalError,
        }
    }
}
