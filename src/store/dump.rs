//! A whole store as values, and `migrate` from one backend to another (docs/design.md §15: `runtrust store
//! migrate`). The audit log keeps its indices, so its Merkle root is the same before and after.

use crate::audit::{canonical_entry, leaf_hash, Hash, MerkleLog};

use super::{
    AuditEntry, Challenge, ExecutionRecord, HostId, HostRecord, PendingEnrollment, Principal, Revocation, Store,
    StoreError, StoredPolicy, TokenRecord,
};

/// The counters a store keeps beside its records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// The next audit index (the log's length).
    pub audit_next: u64,
    /// The next revocation seq.
    pub revocation_next: u64,
    pub policies_version: u64,
}

/// Everything a store holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dump {
    pub principals: Vec<Principal>,
    pub hosts: Vec<HostRecord>,
    /// Attester principal id → the host it enrolled.
    pub principal_hosts: Vec<(String, HostId)>,
    pub enrollments: Vec<PendingEnrollment>,
    pub policies: Vec<StoredPolicy>,
    pub challenges: Vec<Challenge>,
    /// Consumed nonces (hex) and their challenge's expiry.
    pub used_nonces: Vec<(String, u64)>,
    pub tokens: Vec<TokenRecord>,
    pub revocations: Vec<Revocation>,
    /// The revoked index: key → seq of the revocation that explains it.
    pub revoked: Vec<(String, u64)>,
    pub executions: Vec<ExecutionRecord>,
    /// Every audit entry with its index, in index order (dense from 0).
    pub audit: Vec<(u64, AuditEntry)>,
    pub counters: Counters,
}

impl Dump {
    /// Whether the dump holds nothing at all.
    pub fn is_empty(&self) -> bool {
        *self == Dump::default()
    }

    /// The audit log's entries must be dense from 0 and end at the counter.
    pub fn check_audit(&self) -> Result<(), StoreError> {
        for (expected, (index, _)) in (0u64..).zip(&self.audit) {
            if *index != expected {
                return Err(StoreError::Corrupt {
                    key: format!("audit/{index}"),
                    detail: format!("expected {expected}"),
                });
            }
        }
        if self.audit.len() as u64 != self.counters.audit_next {
            return Err(StoreError::Corrupt {
                key: "counters/audit_next".into(),
                detail: format!("{} entries, counter {}", self.audit.len(), self.counters.audit_next),
            });
        }
        Ok(())
    }
}

/// What a migration copied, and the audit root on both sides.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MigrateReport {
    pub principals: usize,
    pub hosts: usize,
    pub policies: usize,
    pub tokens: usize,
    pub revocations: usize,
    pub executions: usize,
    pub audit_entries: u64,
    /// RFC 9162 root (hex) of the source's audit log, and of the target's after the copy.
    pub root_before: String,
    pub root_after: String,
}

/// The RFC 9162 root over a store's whole audit log.
pub fn audit_root(store: &dyn Store) -> Result<(u64, Hash), StoreError> {
    const BATCH: usize = 10_000;
    let mut log = MerkleLog::new();
    let end = store.audit_len()?;
    while log.size() < end {
        let batch = store.audit(log.size(), BATCH)?;
        if batch.is_empty() {
            break;
        }
        for (index, entry) in batch.into_iter().take_while(|(i, _)| *i < end) {
            if index != log.size() {
                return Err(StoreError::Corrupt { key: format!("audit/{index}"), detail: "a gap in the log".into() });
            }
            log.push(leaf_hash(&canonical_entry(&entry, index)));
        }
    }
    Ok((log.size(), log.root()))
}

/// Copies everything from `from` into the empty store `to`, then checks that both audit logs have the same
/// size and root. A target that already holds data is a Conflict, and nothing is written to it.
pub fn migrate(from: &dyn Store, to: &dyn Store) -> Result<MigrateReport, StoreError> {
    let dump = from.export()?;
    dump.check_audit()?;
    let (size_before, before) = audit_root(from)?;
    to.import(&dump)?;
    let (size_after, after) = audit_root(to)?;
    if (size_before, before) != (size_after, after) {
        return Err(StoreError::Corrupt {
            key: "audit".into(),
            detail: format!(
                "the copy's audit root differs: {size_before} entries {} before, {size_after} entries {} after",
                hex::encode(before),
                hex::encode(after)
            ),
        });
    }
    Ok(MigrateReport {
        principals: dump.principals.len(),
        hosts: dump.hosts.len(),
        policies: dump.policies.len(),
        tokens: dump.tokens.len(),
        revocations: dump.revocations.len(),
        executions: dump.executions.len(),
        audit_entries: size_after,
        root_before: hex::encode(before),
        root_after: hex::encode(after),
    })
}
