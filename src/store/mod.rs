//! The `Store` (docs/design.md §12): everything the service remembers. Every mutating call is durable before it
//! returns, so an answer never promises what a crash could take back.

#[cfg(test)]
pub(crate) mod conformance;
mod dump;
mod postgres;
mod sled;

use std::future::Future;
use std::pin::Pin;

use runtrust_attestation::{ClockInfo, DenialCode};

pub use crate::audit::AuditEntry;
pub use crate::model::{
    lift_key, revoked_key, AttestedState, Challenge, ConsoleLink, ExecutionEnd, ExecutionRecord, HostId, HostRecord,
    JoinAllowance, JoinRefusal, Nonce, PendingEnrollment, Principal, Revocation, RevocationKind, Role, StoredPolicy,
    TokenRecord,
};

pub use dump::{migrate, Counters, Dump, MigrateReport};
pub use postgres::{PgStore, DEFAULT_POOL_SIZE};
pub use sled::SledStore;

thread_local! {
    /// Inside [`deferring`]: the highest durability ticket a write handed over instead of waiting for it.
    static DEFERRED: std::cell::Cell<Option<Option<u64>>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with durability deferred: a write in it that would wait for its flush (a store whose
/// [`Store::runs_inline`] is true) returns at once and leaves its ticket here instead. The caller must
/// await [`Store::flushed`] for the returned ticket before it tells anyone the write happened.
pub fn deferring<T>(f: impl FnOnce() -> T) -> (T, Option<u64>) {
    /// Puts the outer state back even if `f` unwinds: a thread must not go on deferring outside a call.
    struct Restore(Option<Option<u64>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            DEFERRED.with(|d| d.set(self.0));
        }
    }
    let restore = Restore(DEFERRED.with(|d| d.replace(Some(None))));
    let out = f();
    let ticket = DEFERRED.with(|d| d.get()).flatten();
    drop(restore);
    (out, ticket)
}

/// For backends: inside [`deferring`], keeps `ticket` for the caller and returns true; else false (wait).
pub(crate) fn defer(ticket: u64) -> bool {
    DEFERRED.with(|d| match d.get() {
        Some(held) => {
            d.set(Some(Some(held.map_or(ticket, |t| t.max(ticket)))));
            true
        }
        None => false,
    })
}

/// Which backend holds the store, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreConfig {
    /// The embedded default: a sled database in this directory.
    Sled { path: std::path::PathBuf },
    /// PostgreSQL (docs/design.md §15), shared by any number of replicas; at most `pool_size` connections.
    Postgres { url: String, pool_size: u32 },
}

impl StoreConfig {
    /// Whether other processes may share this store (replicas): nothing may then rely on being the only
    /// writer (docs/design.md §15).
    pub fn is_shared(&self) -> bool {
        matches!(self, StoreConfig::Postgres { .. })
    }

    /// Where it is, without credentials (for messages).
    pub fn describe(&self) -> String {
        match self {
            StoreConfig::Sled { path } => format!("sled:{}", path.display()),
            StoreConfig::Postgres { url, .. } => postgres::redact(url),
        }
    }
}

/// Whether `setting` (the config's `store`, or `--to`) names a PostgreSQL database.
pub fn is_postgres_url(setting: &str) -> bool {
    setting.starts_with("postgres://") || setting.starts_with("postgresql://")
}

/// Opens the store `config` names.
pub fn open(config: &StoreConfig) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    match config {
        StoreConfig::Sled { path } => Ok(std::sync::Arc::new(SledStore::open(path)?)),
        StoreConfig::Postgres { url, pool_size } => Ok(std::sync::Arc::new(PgStore::open(url, *pool_size)?)),
    }
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

/// What `start_execution` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecStart {
    /// Recorded (and, for a single-use token, the token is now spent).
    Started(ExecutionRecord),
    /// A single-use token that was spent before.
    Replayed { consumed_at: u64 },
    /// No token with this cti.
    UnknownToken,
    /// `key`, one of the keys the start must not hit, is revoked: checked inside the start's transaction,
    /// so no execution starts after a revocation was answered (docs/design.md §15). Nothing is written.
    Revoked { key: String, revocation: Revocation },
}

/// What `enroll_host` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnrollOutcome {
    New,
    /// Same TPM, same AK: nothing changed (a re-enrollment never changes tags, docs/design.md §5).
    Unchanged,
    /// Same TPM, a new AK (its state directory was lost): the old AK no longer identifies it.
    AkReplaced,
}

/// What [`Store::join_host`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Joined {
    /// Enrolled, bound to the attester principal `principal_id`: the one given, or the host's own from an
    /// earlier join (whose secret is now the given one's).
    Enrolled { outcome: EnrollOutcome, principal_id: String },
    /// Nothing was written.
    Refused(JoinRefusal),
}

/// How the detail of [`Store::enroll_host`]'s Conflict starts when the host's recorded tags differ.
pub const TAGS_DIFFER: &str = "tags differ";

/// The same set of tags (order and repeats aside): what [`Store::enroll_host`] compares.
pub(crate) fn same_tags(a: &[String], b: &[String]) -> bool {
    fn sorted(t: &[String]) -> Vec<&str> {
        let mut v: Vec<&str> = t.iter().map(String::as_str).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
    sorted(a) == sorted(b)
}

/// A per-principal bound on outstanding challenges or pending enrollments (docs/design.md §16): at most
/// `max` unexpired at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap {
    pub max: usize,
    pub now: u64,
}

/// What a capped put did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Admission {
    Stored,
    /// The principal already has `outstanding` (at least the cap) unexpired: nothing was written.
    Full {
        outstanding: usize,
    },
}

/// What [`Store::sweep`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub challenges: usize,
    pub enrollments: usize,
    pub nonces: usize,
    pub console_links: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Backend(String),
    /// The store cannot be opened (damaged files, another process holds it).
    #[error("the store at {path} cannot be opened: {detail}")]
    Open { path: String, detail: String },
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

/// The service's persistent state. Implementations make every mutation durable before returning.
pub trait Store: Send + Sync + 'static {
    /// Adds a principal and appends `audit` in one durable step; a taken name is a Conflict.
    fn add_principal(&self, p: &Principal, audit: &AuditEntry) -> Result<(), StoreError>;
    fn principal(&self, id: &str) -> Result<Option<Principal>, StoreError>;
    fn principals(&self) -> Result<Vec<Principal>, StoreError>;
    /// Removes a principal by name and appends `audit` in one durable step; false (and nothing written) if
    /// there was none.
    fn remove_principal(&self, name: &str, audit: &AuditEntry) -> Result<bool, StoreError>;

    /// Gives principal `name` a new secret (its SHA-256) and appends `audit` in one durable step: the old
    /// credential stops working at once. The updated principal, or None (nothing written) if there is none.
    fn rotate_principal(
        &self,
        name: &str,
        secret_sha256: &str,
        audit: &AuditEntry,
    ) -> Result<Option<Principal>, StoreError>;

    /// Stores a pending enrollment, unless its principal already has `cap.max` unexpired ones.
    fn put_enrollment(&self, e: &PendingEnrollment, cap: Cap) -> Result<Admission, StoreError>;
    /// Removes and returns a pending enrollment atomically: a challenge is answered at most once.
    fn take_enrollment(&self, id: &str) -> Result<Option<PendingEnrollment>, StoreError>;
    /// Stores a web console sign-in link with its audit entry, durably (docs/design.md §17).
    fn put_console_link(&self, link: &ConsoleLink, audit: &AuditEntry) -> Result<(), StoreError>;
    /// Removes and returns a console link, durably: of concurrent takes of one id (from any replica) one
    /// finds it; every later take finds nothing. Expired links are the caller's to refuse (and the sweep's).
    fn take_console_link(&self, id: &str) -> Result<Option<ConsoleLink>, StoreError>;

    /// Stores an enrolled host and binds `principal_id` to it. A Conflict when the AK identifies another
    /// host, or the principal is bound to another host (one attester credential, one TPM), or when the host
    /// is enrolled already with other tags than `host.tags` (a re-enrollment never changes tags:
    /// docs/design.md §5; the detail then starts with [`TAGS_DIFFER`]).
    /// `audit` is appended in the same durable step.
    fn enroll_host(
        &self,
        host: &HostRecord,
        principal_id: &str,
        audit: &AuditEntry,
    ) -> Result<EnrollOutcome, StoreError>;
    /// Enrolls `host` through join token `join_id` (docs/design.md §5) in one durable step: spends one of the
    /// token's uses (Refused, and nothing written, when it is unknown, expired at `now` or spent); stores
    /// `principal`, the host's own attester (if a principal of that name is already bound to this host, which
    /// joined before and lost its credential, that one takes `principal`'s secret instead; a same-named
    /// principal of anything else is a Conflict); binds it to the host as [`Store::enroll_host`] does, with the
    /// same Conflicts; appends `audit`.
    fn join_host(
        &self,
        join_id: &str,
        now: u64,
        principal: &Principal,
        host: &HostRecord,
        audit: &AuditEntry,
    ) -> Result<Joined, StoreError>;
    /// The host an attester principal enrolled, if any.
    fn principal_host(&self, principal_id: &str) -> Result<Option<HostId>, StoreError>;
    fn host(&self, host_id: &str) -> Result<Option<HostRecord>, StoreError>;
    fn host_by_ak(&self, ak_name: &str) -> Result<Option<HostRecord>, StoreError>;
    fn hosts(&self) -> Result<Vec<HostRecord>, StoreError>;
    /// Replaces a host's tags (an admin's `hosts tag`) and appends `audit` in one durable step; the updated
    /// record, or None (nothing written) if there is no such host.
    fn set_host_tags(
        &self,
        host_id: &str,
        tags: &[String],
        audit: &AuditEntry,
    ) -> Result<Option<HostRecord>, StoreError>;
    /// Forgets a host's last accepted TPM clock, so that its next quote sets the baseline anew (an admin's
    /// re-baseline, docs/design.md §4), and appends `audit` in the same durable step. Returns the clock it
    /// forgot; None (and nothing written) if there is no such host.
    fn rebaseline_host(&self, host_id: &str, audit: &AuditEntry) -> Result<Option<ClockInfo>, StoreError>;
    /// Removes a host from the inventory (`hosts remove`, docs/design.md §9): its record (tags, clock
    /// baseline), its AK's index entry and every principal's binding to it, with `audit`, in one durable step.
    /// Its revocations and tokens stay. Returns the removed record; None (and nothing written) if there is no
    /// such host.
    fn remove_host(&self, host_id: &str, audit: &AuditEntry) -> Result<Option<HostRecord>, StoreError>;

    /// Applies a policy; a policy with the same id is replaced.
    fn put_policy(&self, p: &StoredPolicy, audit: &AuditEntry) -> Result<u64, StoreError>;
    fn policies(&self) -> Result<Vec<StoredPolicy>, StoreError>;
    /// Changes whenever a policy is applied: replicas reload their parsed policies when it does.
    fn policies_version(&self) -> Result<u64, StoreError>;

    /// Stores a challenge and its audit entry in one durable step, unless its principal already has
    /// `cap.max` unexpired challenges outstanding (then nothing is written).
    fn put_challenge(&self, c: &Challenge, audit: &AuditEntry, cap: Cap) -> Result<Admission, StoreError>;
    /// Voids every outstanding challenge (at startup: no nonce issued before a crash is usable after it);
    /// returns how many.
    fn void_challenges(&self) -> Result<usize, StoreError>;
    /// Consumes a nonce atomically: it is Fresh (or Expired) at most once, Replayed afterwards.
    fn consume_nonce(&self, nonce: &Nonce, now: u64) -> Result<NonceState, StoreError>;
    /// Removes what expired before `now` (docs/design.md §12): challenges and pending enrollments, and the
    /// record of used nonces whose challenge expired. A swept nonce is Unknown from then on: refused as
    /// before, since only a challenge on record can be Fresh, and nonces are never issued twice.
    fn sweep(&self, now: u64) -> Result<Swept, StoreError>;

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
    /// Every token record.
    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;
    /// The ctis of the tokens issued to `host_id`, in cti order, at most `limit` (an index, not a scan).
    fn tokens_by_host(&self, host_id: &str, limit: usize) -> Result<Vec<String>, StoreError>;
    /// The ctis of the tokens issued under policy version `policy_hash`, in cti order, at most `limit`.
    fn tokens_by_policy(&self, policy_hash: &str, limit: usize) -> Result<Vec<String>, StoreError>;

    /// Records a revocation (its seq and audit index assigned here), marks its keys revoked and appends its
    /// audit entry, in one durable step that excludes every `start_execution` step (docs/design.md §15).
    fn revoke(&self, r: &Revocation, audit: &AuditEntry) -> Result<Revocation, StoreError>;
    /// Lifts the revocation of host `lift.target` in one durable step: appends `lift` (kind Unrevoke) to the
    /// feed with its seq, `lifts` and audit index assigned, unmarks the host key and points [`lift_key`] at
    /// it, so that the host's tokens issued before it stay revoked; appends `audit`. None (nothing written)
    /// when the host is not revoked.
    fn unrevoke_host(&self, lift: &Revocation, audit: &AuditEntry) -> Result<Option<Revocation>, StoreError>;
    /// The revocation that revoked `key` (see [`revoked_key`]), or for a [`lift_key`] the latest lift, if any.
    fn revoked(&self, key: &str) -> Result<Option<Revocation>, StoreError>;
    /// Revocations with seq ≥ `since`, at most `limit`.
    fn revocations(&self, since: u64, limit: usize) -> Result<Vec<Revocation>, StoreError>;

    /// Records the start of an execution with its audit entry in one durable step. In that step, the first of
    /// `revoked_keys` (the [`revoked_key`]s of every token, host and policy version on the token's chain)
    /// that is revoked makes it `Revoked`; when `single_use`, the token is spent, and a spent one is
    /// `Replayed`. Either way nothing is written.
    fn start_execution(
        &self,
        e: &ExecutionRecord,
        single_use: bool,
        revoked_keys: &[String],
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
    /// Audit entries with index ≥ `from`, at most `limit`: only durable ones (an entry whose flush has not
    /// completed, or failed, is never served).
    fn audit(&self, from: u64, limit: usize) -> Result<Vec<(u64, AuditEntry)>, StoreError>;
    /// How many durable audit entries there are.
    fn audit_len(&self) -> Result<u64, StoreError>;

    /// How many revocations there are (the next seq); like [`Store::audit_len`], only durable ones count.
    fn revocations_len(&self) -> Result<u64, StoreError>;

    /// Makes every write so far durable (before a checkpoint commits to them); waits even inside
    /// [`deferring`], as do [`Store::probe`] and [`Store::export`].
    fn flush(&self) -> Result<(), StoreError>;

    /// Writes and flushes a marker that no record reads (readiness, docs/design.md §16): Ok when the store
    /// takes durable writes again.
    fn probe(&self) -> Result<(), StoreError>;

    /// How many physical flushes have run (group commit makes this lower than the number of writes).
    fn flushes(&self) -> u64;

    /// Whether a call on a handful of keys may run on an async thread: the backend never waits on the
    /// network or the disk except for durability, which it defers inside [`deferring`] (sled: reads and
    /// transactions are in memory, but for cache misses). False (the default): every call goes to a blocking
    /// thread. Calls whose work grows with the data (scans, exports) stay on blocking threads regardless.
    fn runs_inline(&self) -> bool {
        false
    }

    /// Resolves once the write that handed out `ticket` inside [`deferring`] is durable. A backend that
    /// defers nothing has no tickets: asked anyway, it fails (closed).
    fn flushed(&self, ticket: u64) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>> {
        Box::pin(std::future::ready(Err(StoreError::Backend(format!("this store defers no writes (ticket {ticket})")))))
    }

    /// Everything in the store, counters included (`runtrust store migrate`).
    fn export(&self) -> Result<Dump, StoreError>;
    /// Loads `dump` into this store, which must be empty (else a Conflict), in one durable step.
    fn import(&self, dump: &Dump) -> Result<(), StoreError>;
}
