//! The records the service keeps (docs/design.md §5, §6, §11): principals, hosts, policies, challenges,
//! tokens, revocations and executions. Stored as they are; the API has its own views of them.

use std::fmt;
use std::str::FromStr;

use runtrust_attestation::ClockInfo;
use serde::{Deserialize, Serialize};

use super::{HostId, Nonce, PcrSelection};

/// What a principal may do (every route checks it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// A join token (docs/design.md §5): may only enroll hosts, each of which becomes an attester of its own.
    #[serde(rename = "join_token")]
    JoinToken,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Attester => "attester",
            Role::Gateway => "gateway",
            Role::Auditor => "auditor",
            Role::JoinToken => "join_token",
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
    /// The tags an attester confers on the host it enrolls (docs/design.md §5 "Host tags are the
    /// operator's"): given by an admin when the principal is made; empty for other roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The admin that made it (absent for the first admin, which `runtrust init` makes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// For a join token only: how many hosts it may still enroll, and until when (docs/design.md §5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<JoinAllowance>,
}

/// A join token's budget: `uses` enrollments in all, `used` of them spent, none after `expires_at`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct JoinAllowance {
    pub uses: u32,
    pub used: u32,
    pub expires_at: u64,
}

/// Why a join token cannot enroll a host now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinRefusal {
    #[error("the join token is unknown or revoked")]
    Unknown,
    #[error("the join token expired")]
    Expired,
    #[error("the join token has no uses left")]
    Spent,
}

impl JoinAllowance {
    /// Whether one more host may join at `now`.
    pub fn check(&self, now: u64) -> Result<(), JoinRefusal> {
        if now > self.expires_at {
            return Err(JoinRefusal::Expired);
        }
        if self.used >= self.uses {
            return Err(JoinRefusal::Spent);
        }
        Ok(())
    }

    /// Uses left (0 when spent).
    pub fn remaining(&self) -> u32 {
        self.uses.saturating_sub(self.used)
    }
}

/// An enrolled host (docs/design.md §5).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostRecord {
    pub host_id: HostId,
    #[serde(with = "super::b64")]
    pub ek_public: Vec<u8>,
    pub ek_certificate_sha256: Option<String>,
    /// The AK's TPM2B_PUBLIC.
    #[serde(with = "super::b64")]
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
    /// The selection as signed in the quote.
    #[serde(with = "super::selection")]
    pub pcr_selection: PcrSelection,
    /// pcrDigest (hex) of that selection.
    pub pcr_digest: String,
    /// The policy version (hash, hex) that accepted it.
    pub policy_hash: String,
    pub time: u64,
}

/// A one-time web console sign-in link (docs/design.md §17): the SHA-256 of its code, never the code.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConsoleLink {
    /// SHA-256 (hex) of the link's code.
    pub id: String,
    /// The admin or auditor it signs in.
    pub principal_id: String,
    /// The principal's credential when the link was made (a digest, `console::session::credential_binding`):
    /// a rotation in between voids the link.
    pub cred: String,
    pub created_at: u64,
    pub expires_at: u64,
}

/// A credential challenge waiting for its activation (single use).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingEnrollment {
    pub id: String,
    pub principal_id: String,
    pub host: HostRecord,
    pub secret_sha256: String,
    pub nonce: Nonce,
    #[serde(with = "super::selection")]
    pub selection: PcrSelection,
    pub expires_at: u64,
}

/// A policy as applied: its exact bytes (the policy hash is their SHA-256).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredPolicy {
    pub id: String,
    pub hash: String,
    #[serde(with = "super::b64")]
    pub bytes: Vec<u8>,
    /// kid (hex) of the policy authority key that signed it, if signed.
    pub signed_by: Option<String>,
    pub applied_at: u64,
    pub applied_by: String,
}

/// A token-request nonce (docs/design.md §6): single use, expiring, bound to a host and a principal.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Challenge {
    pub nonce: Nonce,
    pub host_id: HostId,
    pub principal_id: String,
    /// The PCR selection the quote must cover.
    #[serde(with = "super::selection")]
    pub selection: PcrSelection,
    pub expires_at: u64,
    /// The host's last accepted TPM clock when the challenge was issued: the quote's may not be older.
    /// Absent in challenges stored before it existed (then the host's current last clock applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_clock: Option<ClockInfo>,
}

/// An issued token, as the service remembers it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenRecord {
    pub cti: String,
    pub host_id: HostId,
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
    /// SHA-256 (hex) of the exact token bytes issued: a token presented under this cti is this one only
    /// if its bytes hash to it (docs/design.md §7). Records written before it existed have none, and match
    /// no token (fail closed: such a token is refused until it is requested again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
}

impl TokenRecord {
    /// SHA-256 (hex) of a token's bytes, as [`TokenRecord::token_sha256`] keeps it.
    pub fn digest(token: &[u8]) -> String {
        hex::encode(runtrust_attestation::HashAlg::Sha256.digest(token))
    }

    /// Whether `token` is exactly the token this record was issued as (compared in constant time).
    pub fn is_token(&self, token: &[u8]) -> bool {
        self.token_sha256
            .as_deref()
            .is_some_and(|kept| runtrust_attestation::ct_eq(kept.as_bytes(), Self::digest(token).as_bytes()))
    }
}

/// What a revocation names (docs/design.md §11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RevocationKind {
    /// One token and all its descendants.
    Token,
    /// A host: its tokens, and any further issuance to it.
    Host,
    /// A policy version (by hash): the tokens issued under it, and any further issuance under it.
    Policy,
    /// Lifts a host's revocation (`runtrust hosts unrevoke`): the host may be issued tokens again; the
    /// tokens issued before the lift stay revoked. `target` is the host id, `lifts` the revocation's seq.
    Unrevoke,
}

impl RevocationKind {
    pub fn name(self) -> &'static str {
        match self {
            RevocationKind::Token => "token",
            RevocationKind::Host => "host",
            RevocationKind::Policy => "policy",
            RevocationKind::Unrevoke => "unrevoke",
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
    /// For an [`RevocationKind::Unrevoke`]: the seq of the host revocation it lifted; assigned by the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifts: Option<u64>,
}

impl Revocation {
    /// The keys this revocation marks in the revoked index (a lift marks none: it unmarks its host and
    /// records itself under [`lift_key`]).
    pub fn keys(&self) -> Vec<String> {
        let mut keys = match self.kind {
            RevocationKind::Token => vec![revoked_key(RevocationKind::Token, &self.target)],
            RevocationKind::Host => vec![revoked_key(RevocationKind::Host, &self.target)],
            RevocationKind::Policy => {
                vec![revoked_key(RevocationKind::Policy, self.policy_hash.as_deref().unwrap_or(&self.target))]
            }
            RevocationKind::Unrevoke => return Vec::new(),
        };
        keys.extend(self.tokens.iter().map(|t| revoked_key(RevocationKind::Token, t)));
        keys
    }
}

/// The revoked-index key of a token (cti), host (id) or policy (hash).
pub fn revoked_key(kind: RevocationKind, id: &str) -> String {
    format!("{}:{id}", kind.name())
}

/// The revoked-index key naming a host's latest revocation lift: every token issued to that host before the
/// lift (audit index below the lift's) stays revoked (docs/design.md §11).
pub fn lift_key(host: &str) -> String {
    revoked_key(RevocationKind::Unrevoke, host)
}

/// One execution under a token, as the gateway reported it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecutionRecord {
    /// 16 random bytes, hex.
    pub id: String,
    pub cti: String,
    pub host_id: HostId,
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

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Role::Admin, Role::Attester, Role::Gateway, Role::Auditor, Role::JoinToken]
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| format!("unknown role {s:?}: one of admin, attester, gateway, auditor, join_token"))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RevocationKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [RevocationKind::Token, RevocationKind::Host, RevocationKind::Policy]
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown revocation kind {s:?}: one of token, host, policy"))
    }
}

impl fmt::Display for RevocationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
