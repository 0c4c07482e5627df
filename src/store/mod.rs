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
    /// The PCR state of the last quote a policy accepted (a token was issued on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attested: Option<AttestedState>,
}

/// A PCR state a policy accepted: what a token delegated to this host is bound to, and what the gateway
/// re-proves with a fresh quote before it runs anything.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AttestedState {
    /// tpm2-tools style selection, as signed in the quote.
    pub pcr_selection: String,
    /// pcrDigest (hex) of that selection.
    pub pcr_digest: String,
    /// The policy version (hash, hex) that accepted it.
    pub policy_hash: String,
    pub time: u64,
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

/// A policy as applied: its exact bytes (the policy hash is their SHA-256).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredPolicy {
    pub id: String,
    pub hash: String,
    #[serde(with = "crate::api::b64")]
    pub bytes: Vec<u8>,
    /// kid (hex) of the policy authority key that signed it, if signed.
    pub signed_by: Option<String>,
    pub applied_at: u64,
    pub applied_by: String,
}

/// A token-request nonce (DESIGN §6): single use, expiring, bound to a host and a principal.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Challenge {
    pub nonce: String,
    pub host_id: String,
    pub principal_id: String,
    /// The PCR selection the quote must cover.
    pub selection: String,
    pub expires_at: u64,
}

/// What consuming a nonce found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NonceState {
    /// Issued, unexpired, now consumed.
    Fresh(Challenge),
    /// Issued but past its expiry; now consumed.
    Expired(Challenge),
    /// Consumed before.
    Replayed,
    /// Never issued.
    Unknown,
}

/// An issued token, as the service remembers it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenRecord {
    pub cti: String,
    pub host_id: String,
    pub initiator: String,
    pub scope: String,
    pub audience: String,
    pub policy_id: String,
    pub policy_hash: String,
    pub parent_cti: Option<String>,
    pub delegation_depth: u32,
    pub single_use: bool,
    pub issued_at: u64,
    pub expires_at: u64,
    /// Index of the audit entry that records the issuance.
    pub audit_index: u64,
    /// When a single-use token was spent on an execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumed_at: Option<u64>,
}

/// What a revocation names (DESIGN §11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RevocationKind {
    /// One token and all its descendants.
    Token,
    /// A host: its tokens, and any further issuance to it.
    Host,
    /// A policy version (by hash): the tokens issued under it, and any further issuance under it.
    Policy,
}

impl RevocationKind {
    pub fn name(self) -> &'static str {
        match self {
            RevocationKind::Token => "token",
            RevocationKind::Host => "host",
            RevocationKind::Policy => "policy",
        }
    }
}

/// One entry of the revocation feed (`GET /v1/revocations`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Revocation {
    /// Dense, from 0; assigned by the store.
    pub seq: u64,
    pub kind: RevocationKind,
    /// The token's cti (hex), the host id, or the policy id.
    pub target: String,
    /// For a policy: the hash (hex) of the version revoked.
    pub policy_hash: Option<String>,
    pub reason: String,
    pub time: u64,
    pub by: String,
    /// The tokens this revoked when it was made (a token's descendants; a host's or a policy's tokens).
    /// Gateways checking online need not rely on it: the service walks every token's ancestry.
    pub tokens: Vec<String>,
    /// Its audit entry; assigned by the store.
    pub audit_index: u64,
}

impl Revocation {
    /// The keys this revocation marks in the revoked index.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = match self.kind {
            RevocationKind::Token => vec![revoked_key(RevocationKind::Token, &self.target)],
            RevocationKind::Host => vec![revoked_key(RevocationKind::Host, &self.target)],
            RevocationKind::Policy => {
                vec![revoked_key(RevocationKind::Policy, self.policy_hash.as_deref().unwrap_or(&self.target))]
            }
        };
        keys.extend(self.tokens.iter().map(|t| revoked_key(RevocationKind::Token, t)));
        keys
    }
}

/// The revoked-index key of a token (cti), host (id) or policy (hash).
pub fn revoked_key(kind: RevocationKind, id: &str) -> String {
    format!("{}:{id}", kind.name())
}

/// One execution under a token, as the gateway reported it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecutionRecord {
    /// 16 random bytes, hex.
    pub id: String,
    pub cti: String,
    pub host_id: String,
    /// The principal of the gateway that ran it.
    pub gateway: String,
    pub scope: String,
    /// SHA-256 (hex) over the argv, each argument followed by a NUL byte.
    pub argv_sha256: String,
    pub started_at: u64,
    pub start_audit_index: u64,
    pub end: Option<ExecutionEnd>,
}

/// How an execution ended.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecutionEnd {
    pub time: u64,
    /// The exit status, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    pub duration_ms: u64,
    pub audit_index: u64,
}

/// What `start_execution` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecStart {
    /// Recorded (and, for a single-use token, the token is now spent).
    Started(ExecutionRecord),
    /// A single-use token that was spent before.
    Replayed { consumed_at: u64 },
    /// No token with this cti.
    UnknownToken,
}

/// One decision, appended to the audit log before the answer leaves.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEntry {
    pub time: u64,
    /// e.g. `token.issue`, `token.deny`, `enroll.allow`, `enroll.deny`, `policy.apply`.
    pub event: String,
    pub principal: Option<String>,
    pub host_id: Option<String>,
    /// The denial code, for denials.
    pub code: Option<String>,
    pub detail: String,
    pub cti: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub diagnostics: serde_json::Value,
}

impl AuditEntry {
    /// An entry for `event`, now; the builder methods fill in the rest.
    pub fn new(event: &str, detail: impl Into<String>) -> Self {
        AuditEntry {
            time: crate::api::now_unix(),
            event: event.to_owned(),
            principal: None,
            host_id: None,
            code: None,
            detail: detail.into(),
            cti: None,
            diagnostics: serde_json::Value::Null,
        }
    }

    pub fn by(mut self, principal: &str) -> Self {
        self.principal = Some(principal.to_owned());
        self
    }

    pub fn host(mut self, host_id: &str) -> Self {
        self.host_id = Some(host_id.to_owned());
        self
    }

    pub fn cti(mut self, cti: &str) -> Self {
        self.cti = Some(cti.to_owned());
        self
    }

    pub fn code(mut self, code: &str) -> Self {
        self.code = Some(code.to_owned());
        self
    }

    pub fn diagnostics(mut self, diagnostics: serde_json::Value) -> Self {
        self.diagnostics = diagnostics;
        self
    }
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
    /// `audit` is appended in the same durable step.
    fn enroll_host(
        &self,
        host: &HostRecord,
        principal_id: &str,
        audit: &AuditEntry,
    ) -> Result<EnrollOutcome, StoreError>;
    /// The host an attester principal enrolled, if any.
    fn principal_host(&self, principal_id: &str) -> Result<Option<String>, StoreError>;
    fn host(&self, host_id: &str) -> Result<Option<HostRecord>, StoreError>;
    fn host_by_ak(&self, ak_name: &str) -> Result<Option<HostRecord>, StoreError>;
    fn hosts(&self) -> Result<Vec<HostRecord>, StoreError>;

    /// Applies a policy; a policy with the same id is replaced.
    fn put_policy(&self, p: &StoredPolicy, audit: &AuditEntry) -> Result<u64, StoreError>;
    fn policies(&self) -> Result<Vec<StoredPolicy>, StoreError>;

    /// Stores a challenge and its audit entry in one durable step.
    fn put_challenge(&self, c: &Challenge, audit: &AuditEntry) -> Result<(), StoreError>;
    /// Voids every outstanding challenge (at startup: no nonce issued before a crash is usable after it);
    /// returns how many.
    fn void_challenges(&self) -> Result<usize, StoreError>;
    /// Consumes a nonce atomically: it is Fresh (or Expired) at most once, Replayed afterwards.
    fn consume_nonce(&self, nonce: &str, now: u64) -> Result<NonceState, StoreError>;

    /// Records an issued token, its audit entry and the attesting host's new clock and accepted PCR state in
    /// one durable step; returns the audit index. Nothing of the token leaves the service before this
    /// returns Ok.
    fn record_issuance(
        &self,
        token: &TokenRecord,
        audit: &AuditEntry,
        host_id: &str,
        clock: &ClockInfo,
        attested: &AttestedState,
    ) -> Result<u64, StoreError>;
    fn token(&self, cti: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// The ctis of a token's direct children (delegations).
    fn children(&self, cti: &str) -> Result<Vec<String>, StoreError>;
    /// Every token record (revoking a host or a policy lists the tokens it revokes).
    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;

    /// Records a revocation (its seq and audit index assigned here), marks its keys revoked and appends its
    /// audit entry, in one durable step.
    fn revoke(&self, r: &Revocation, audit: &AuditEntry) -> Result<Revocation, StoreError>;
    /// The revocation that revoked `key` (see [`revoked_key`]), if any.
    fn revoked(&self, key: &str) -> Result<Option<Revocation>, StoreError>;
    /// Revocations with seq ≥ `since`, at most `limit`.
    fn revocations(&self, since: u64, limit: usize) -> Result<Vec<Revocation>, StoreError>;

    /// Records the start of an execution with its audit entry in one durable step. When `single_use`, the
    /// token is spent in the same step; a spent token is `Replayed` and nothing is written.
    fn start_execution(
        &self,
        e: &ExecutionRecord,
        single_use: bool,
        audit: &AuditEntry,
    ) -> Result<ExecStart, StoreError>;
    /// Records how an execution ended (once) with its audit entry; None if there is no such execution.
    fn end_execution(
        &self,
        cti: &str,
        id: &str,
        end: &ExecutionEnd,
        audit: &AuditEntry,
    ) -> Result<Option<ExecutionRecord>, StoreError>;
    /// The executions under a token, oldest first.
    fn executions(&self, cti: &str) -> Result<Vec<ExecutionRecord>, StoreError>;

    /// Appends an audit entry durably; returns its index.
    fn append_audit(&self, entry: &AuditEntry) -> Result<u64, StoreError>;
    /// Audit entries with index ≥ `from`, at most `limit`.
    fn audit(&self, from: u64, limit: usize) -> Result<Vec<(u64, AuditEntry)>, StoreError>;
    /// How many audit entries there are (the next index).
    fn audit_len(&self) -> Result<u64, StoreError>;

    /// Makes every write so far durable (before a checkpoint commits to them).
    fn flush(&self) -> Result<(), StoreError>;

    /// How many physical flushes have run (group commit makes this lower than the number of writes).
    fn flushes(&self) -> u64;
}
