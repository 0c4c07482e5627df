//! The `Store` (DESIGN §12): everything the service remembers. Every mutating call is durable before it
//! returns, so an answer never promises what a crash could take back.

mod group_commit;
mod sled_store;

use runtrust_attestation::{ClockInfo, DenialCode};
use serde::{Deserialize, Serialize};

pub use group_commit::GroupCommit;
pub use sled_store::SledStore;

/// What a principal may do (every route checks it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages principals, policies, keys, revocations; lists hosts.
    Admin,
    /// A host: enrolls and requests tokens.
    Attester,
    /// An execution gateway: online token checks, execution reports.
    Gateway,
    /// Reads hosts and the audit log.
    Auditor,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Attester => "attester",
            Role::Gateway => "gateway",
            Role::Auditor => "auditor",
        }
    }
}

/// A principal; its bearer secret is stored only as a SHA-256 hash.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Principal {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub secret_sha256: String,
    pub created_at: u64,
}

/// An enrolled host (DESIGN §5).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostRecord {
    /// `sha256:<hex of SHA-256 over the EK's TPMT_PUBLIC>`.
    pub host_id: String,
    #[serde(with = "crate::api::b64")]
    pub ek_public: Vec<u8>,
    pub ek_certificate_sha256: Option<String>,
    /// The AK's TPM2B_PUBLIC.
    #[serde(with = "crate::api::b64")]
    pub ak_public: Vec<u8>,
    pub ak_name: String,
    pub tags: Vec<String>,
    pub enrolled_at: u64,
    pub updated_at: u64,
    /// Clock of the enrollment quote.
    pub first_clock: ClockInfo,
    /// Clock of the last accepted quote (monotonic checks).
    pub last_clock: ClockInfo,
    pub enrolled_by: String,
}

/// A credential challenge waiting for its activation (single use).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingEnrollment {
    pub id: String,
    pub principal_id: String,
    pub host: HostRecord,
    pub secret_sha256: String,
    pub nonce: String,
    pub selection: String,
    pub expires_at: u64,
}

/// What `enroll_host` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnrollOutcome {
    New,
    /// Same TPM, same AK: nothing changed but the tags.
    Unchanged,
    /// Same TPM, a new AK (its state directory was lost): the old AK no longer identifies it.
    AkReplaced,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Backend(String),
    #[error("store record {key} is corrupt: {detail}")]
    Corrupt { key: String, detail: String },
    #[error("{0}")]
    Conflict(String),
}

impl StoreError {
    /// A store that fails is the service's own fault, and still a denial.
    pub fn code(&self) -> DenialCode {
        DenialCode::InternalError
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// The service's persistent state. Implementations make every mutation durable before returning.
pub trait Store: Send + Sync + 'static {
    /// Adds a principal; a taken name is a Conflict.
    fn add_principal(&self, p: &Principal) -> Result<(), StoreError>;
    fn principal(&self, id: &str) -> Result<Option<Principal>, StoreError>;
    fn principals(&self) -> Result<Vec<Principal>, StoreError>;
    /// Removes a principal by name; false if there was none.
    fn remove_principal(&self, name: &str) -> Result<bool, StoreError>;

    fn put_enrollment(&self, e: &PendingEnrollment) -> Result<(), StoreError>;
    /// Removes and returns a pending enrollment atomically: a challenge is answered at most once.
    fn take_enrollment(&self, id: &str) -> Result<Option<PendingEnrollment>, StoreError>;

    /// Stores an enrolled host and binds `principal_id` to it. A Conflict when the AK identifies another
    /// host, or the principal is bound to another host (one attester credential, one TPM).
    fn enroll_host(&self, host: &HostRecord, principal_id: &str) -> Result<EnrollOutcome, StoreError>;
    /// The host an attester principal enrolled, if any.
    fn principal_host(&self, principal_id: &str) -> Result<Option<String>, StoreError>;
    fn host(&self, host_id: &str) -> Result<Option<HostRecord>, StoreError>;
    fn host_by_ak(&self, ak_name: &str) -> Result<Option<HostRecord>, StoreError>;
    fn hosts(&self) -> Result<Vec<HostRecord>, StoreError>;

    /// How many physical flushes have run (group commit makes this lower than the number of writes).
    fn flushes(&self) -> u64;
}
