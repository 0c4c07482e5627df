//! Records and typed ids shared by every layer (docs/design.md §3), and the clock they are stamped with.
//! Storage keeps these records; wire types (`api`) are separate and convert from them.

pub mod b64;
mod clock;
mod ids;
mod records;

pub use clock::{Clock, ManualClock, SystemClock};
pub use ids::{Cti, HostId, IdError, Nonce, PolicyHash};
pub use records::{
    lift_key, revoked_key, AttestedState, Challenge, ConsoleLink, ExecutionEnd, ExecutionRecord, HostRecord,
    JoinAllowance, JoinRefusal, PendingEnrollment, Principal, Revocation, RevocationKind, Role, StoredPolicy,
    TokenRecord,
};
pub use runtrust_attestation::PcrSelection;

/// PCR selections as their tpm2-tools text (`sha256:0,1,2`), the one serde form they have.
pub mod selection {
    use runtrust_attestation::PcrSelection;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(sel: &PcrSelection, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(sel)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PcrSelection, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
