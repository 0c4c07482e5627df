//! The service's own faults (docs/design.md §8: `internal_error`, still a denial): a failing store, task,
//! random generator, lock or key. Their detail goes to the log, never to the caller.

use runtrust_attestation::DenialCode;

use super::{Denial, DenialReason};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Fault {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("store task failed: {0}")]
    Task(String),
    #[error("random generator failed")]
    Random,
    #[error("{0} lock poisoned")]
    Poisoned(&'static str),
    #[error("no issuer key")]
    NoIssuerKey,
    #[error("signing: {0}")]
    Signing(String),
    #[error("{0}")]
    Corrupt(String),
    /// The store failed and has not recovered yet (docs/design.md §16: /readyz is 503 meanwhile).
    #[error("the service's store is not available; try again later")]
    StoreUnavailable(String),
}

impl DenialReason for Fault {
    fn code(&self) -> DenialCode {
        match self {
            Fault::StoreUnavailable(_) => DenialCode::VerifierUnavailable,
            _ => DenialCode::InternalError,
        }
    }
}

impl From<Fault> for Denial {
    fn from(f: Fault) -> Self {
        match f {
            // A conflict is the caller's (a taken name): answered as such.
            Fault::Store(StoreError::Conflict(detail)) => Denial::conflict(detail),
            Fault::StoreUnavailable(ref detail) => {
                tracing::warn!("refused while the store recovers: {detail}");
                f.to_denial()
            }
            f => f.to_denial(),
        }
    }
}
