//! The embedded default: sled under the data directory. Records are JSON; secondary indices live in their
//! own trees and are updated in the same transaction as the record.

use std::path::Path;

use runtrust_attestation::ClockInfo;
use sled::transaction::Transactional;

mod codec;
mod dump;
mod durable;
mod group_commit;
mod hosts;
mod transient;

use codec::{abort, child_key, decode, encode, tx_append, tx_counter, tx_decode, tx_encode, tx_error};
use group_commit::GroupCommit;

use super::{
    Admission, AttestedState, AuditEntry, Cap, Challenge, ConsoleLink, Dump, EnrollOutcome, ExecStart, ExecutionEnd,
    ExecutionRecord, HostId, HostRecord, Joined, Nonce, NonceState, PendingEnrollment, Principal, Revocation, Store,
    StoreError, StoredPolicy, Swept, TokenRecord,
};

/// Key of the next audit index in the meta tree.
pub(super) const AUDIT_NEXT: &[u8] = b"audit_next";
/// Key of the next revocation seq in the meta tree.
pub(super) const REVOCATION_NEXT: &[u8] = b"revocation_next";
/// Key of the policies version in the meta tree (bumped by every put_policy).
pub(super) const POLICIES_VERSION: &[u8] = b"policies_version";

pub struct SledStore {
    principals: sled::Tree,
    principal_names: sled::Tree,
    hosts: sled::Tree,
    ak_index: sled::Tree,
    principal_hosts: sled::Tree,
    enrollments: sled::Tree,
    /// link id → ConsoleLink (docs/design.md §17).
    console_links: sled::Tree,
    /// `principal/enrollment id` → expires_at (u64 BE): outstanding enrollments by principal (caps).
    enrollment_owners: sled::Tree,
    policies: sled::Tree,
    challenges: sled::Tree,
    /// `principal/nonce` → expires_at (u64 BE): outstanding challenges by principal (caps).
    challenge_owners: sled::Tree,
    /// nonce → its challenge's expires_at (u64 BE).
    used_nonces: sled::Tree,
    tokens: sled::Tree,
    /// `parent/child` → ().
    children: sled::Tree,
    /// seq (u64 BE) → Revocation.
    revocations: sled::Tree,
    /// revoked_key → seq (u64 BE).
    revoked: sled::Tree,
    /// `cti/id` → ExecutionRecord.
    executions: sled::Tree,
    /// `host/cti` → () and `policy_hash/cti` → (): revocation by host or policy without a scan.
    host_tokens: sled::Tree,
    policy_tokens: sled::Tree,
    audit: sled::Tree,
    meta: sled::Tree,
    commit: GroupCommit,
    /// Serializes capped puts, so that a principal's count and its new item are one step.
    admission: std::sync::Mutex<()>,
    watermark: std::sync::Arc<durable::Watermark>,
}

impl SledStore {
    /// Opens (or creates) the store in `dir`. sled recovers from a crash on open; damaged files are an error.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = durable::open_db(dir)?;
        let meta = db.open_tree("meta")?;
        let watermark = std::sync::Arc::new(durable::Watermark::default());
        let commit = durable::group_commit(&db, &meta, &watermark)?;
        let store = Self {
            principals: db.open_tree("principals")?,
            principal_names: db.open_tree("principal_names")?,
            hosts: db.open_tree("hosts")?,
            ak_index: db.open_tree("ak_index")?,
            principal_hosts: db.open_tree("principal_hosts")?,
            enrollments: db.open_tree("enrollments")?,
            console_links: db.open_tree("console_links")?,
            enrollment_owners: db.open_tree("enrollment_owners")?,
            policies: db.open_tree("policies")?,
            challenges: db.open_tree("challenges")?,
            challenge_owners: db.open_tree("challenge_owners")?,
            used_nonces: db.open_tree("used_nonces")?,
            tokens: db.open_tree("tokens")?,
            children: db.open_tree("children")?,
            revocations: db.open_tree("revocations")?,
            revoked: db.open_tree("revoked")?,
            executions: db.open_tree("executions")?,
            host_tokens: db.open_tree("host_tokens")?,
            policy_tokens: db.open_tree("policy_tokens")?,
            audit: db.open_tree("audit")?,
            meta,
            commit,
            admission: std::sync::Mutex::new(()),
            watermark,
        };
        store.init_watermark()?;
        store.index_tokens()?;
        Ok(store)
    }

    fn durable(&self) -> Result<(), StoreError> {
        self.commit.durable()
    }
}

impl Store for SledStore {
    fn add_principal(&self, p: &Principal, entry: &AuditEntry) -> Result<(), StoreError> {
        let value = encode(p)?;
        (&self.principals, &self.principal_names, &self.audit, &self.meta)
            .transaction(|(principals, names, audit, meta)| {
                if names.get(p.name.as_bytes())?.is_some() {
                    return abort(StoreError::Conflict(format!("principal {:?} exists", p.name)));
                }
                names.insert(p.name.as_bytes(), p.id.as_bytes())?;
                principals.insert(p.id.as_bytes(), value.as_slice())?;
                tx_append(audit, meta, entry).map(drop)
            })
            .map_err(tx_error)?;
        self.durable()
    }

    fn principal(&self, id: &str) -> Result<Option<Principal>, StoreError> {
        Self::get(&self.principals, id)
    }

    fn principals(&self) -> Result<Vec<Principal>, StoreError> {
        Self::all(&self.principals)
    }

    fn remove_principal(&self, name: &str, entry: &AuditEntry) -> Result<bool, StoreError> {
        let removed = (&self.principals, &self.principal_names, &self.audit, &self.meta)
            .transaction(|(principals, names, audit, meta)| {
                let Some(id) = names.remove(name.as_bytes())? else { return Ok(false) };
                principals.remove(id)?;
                tx_append(audit, meta, entry)?;
                Ok(true)
            })
            .map_err(tx_error)?;
        self.durable()?;
        Ok(removed)
    }

    fn rotate_principal(
        &self,
        name: &str,
        secret_sha256: &str,
        entry: &AuditEntry,
    ) -> Result<Option<Principal>, StoreError> {
        let rotated = (&self.principals, &self.principal_names, &self.audit, &self.meta)
            .transaction(|(principals, names, audit, meta)| {
                let Some(id) = names.get(name.as_bytes())? else { return Ok(None) };
                let Some(v) = principals.get(&id)? else { return Ok(None) };
                let mut p: Principal = tx_decode(&id, &v)?;
                p.secret_sha256 = secret_sha256.to_owned();
                principals.insert(&id, tx_encode(&p)?)?;
                tx_append(audit, meta, entry)?;
                Ok(Some(p))
            })
            .map_err(tx_error)?;
        if rotated.is_some() {
            self.durable()?;
        }
        Ok(rotated)
    }

    fn put_enrollment(&self, e: &PendingEnrollment, cap: Cap) -> Result<Admission, StoreError> {
        self.put_enrollment_capped(e, cap)
    }

    fn take_enrollment(&self, id: &str) -> Result<Option<PendingEnrollment>, StoreError> {
        self.take_enrollment_once(id)
    }

    fn put_console_link(&self, link: &ConsoleLink, entry: &AuditEntry) -> Result<(), StoreError> {
        self.put_console_link_tx(link, entry)
    }

    fn take_console_link(&self, id: &str) -> Result<Option<ConsoleLink>, StoreError> {
        self.take_console_link_once(id)
    }

    fn enroll_host(
        &self,
        host: &HostRecord,
        principal_id: &str,
        entry: &AuditEntry,
    ) -> Result<EnrollOutcome, StoreError> {
        self.enroll_host_tx(host, principal_id, entry)
    }

    fn join_host(
        &self,
        join_id: &str,
        now: u64,
        principal: &Principal,
        host: &HostRecord,
        entry: &AuditEntry,
    ) -> Result<Joined, StoreError> {
        self.join_host_tx(join_id, now, principal, host, entry)
    }

    fn principal_host(&self, principal_id: &str) -> Result<Option<HostId>, StoreError> {
        let Some(v) = self.principal_hosts.get(principal_id.as_bytes())? else { return Ok(None) };
        let corrupt = |detail: String| StoreError::Corrupt { key: format!("principal_hosts/{principal_id}"), detail };
        let text = std::str::from_utf8(&v).map_err(|e| corrupt(e.to_string()))?;
        text.parse().map(Some).map_err(|e: crate::model::IdError| corrupt(e.to_string()))
    }

    fn host(&self, host_id: &str) -> Result<Option<HostRecord>, StoreError> {
        Self::get(&self.hosts, host_id)
    }

    fn host_by_ak(&self, ak_name: &str) -> Result<Option<HostRecord>, StoreError> {
        match self.ak_index.get(ak_name.as_bytes())? {
            Some(id) => self.host(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    fn hosts(&self) -> Result<Vec<HostRecord>, StoreError> {
        Self::all(&self.hosts)
    }

    fn set_host_tags(
        &self,
        host_id: &str,
        tags: &[String],
        entry: &AuditEntry,
    ) -> Result<Option<HostRecord>, StoreError> {
        self.set_host_tags_tx(host_id, tags, entry)
    }

    fn rebaseline_host(&self, host_id: &str, entry: &AuditEntry) -> Result<Option<ClockInfo>, StoreError> {
        self.rebaseline(host_id, entry)
    }

    fn remove_host(&self, host_id: &str, entry: &AuditEntry) -> Result<Option<HostRecord>, StoreError> {
        self.remove_host_tx(host_id, entry)
    }

    fn put_policy(&self, p: &StoredPolicy, entry: &AuditEntry) -> Result<u64, StoreError> {
        let value = encode(p)?;
        let index = (&self.policies, &self.audit, &self.meta)
            .transaction(|(policies, audit, meta)| {
                policies.insert(p.id.as_bytes(), value.as_slice())?;
                let version = tx_counter(meta, POLICIES_VERSION)?;
                meta.insert(POLICIES_VERSION, &(version + 1).to_be_bytes())?;
                tx_append(audit, meta, entry)
            })
            .map_err(tx_error)?;
        self.durable()?;
        Ok(index)
    }

    fn policies(&self) -> Result<Vec<StoredPolicy>, StoreError> {
        Self::all(&self.policies)
    }

    fn policies_version(&self) -> Result<u64, StoreError> {
        self.counter(POLICIES_VERSION)
    }

    fn put_challenge(&self, c: &Challenge, entry: &AuditEntry, cap: Cap) -> Result<Admission, StoreError> {
        self.put_challenge_capped(c, entry, cap)
    }

    fn void_challenges(&self) -> Result<usize, StoreError> {
        self.void_all_challenges()
    }

    fn consume_nonce(&self, nonce: &Nonce, now: u64) -> Result<NonceState, StoreError> {
        self.consume_nonce_once(nonce, now)
    }

    fn sweep(&self, now: u64) -> Result<Swept, StoreError> {
        self.sweep_expired(now)
    }

    fn record_issuance(
        &self,
        token: &TokenRecord,
        entry: &AuditEntry,
        host_id: &str,
        clock: &ClockInfo,
        attested: &AttestedState,
    ) -> Result<u64, StoreError> {
        let trees = (&self.tokens, &self.audit, &self.meta, &self.hosts, &self.children);
        let index = (trees.0, trees.1, trees.2, trees.3, trees.4, &self.host_tokens, &self.policy_tokens)
            .transaction(|(tokens, audit, meta, hosts, children, host_tokens, policy_tokens)| {
                if let Some(parent) = &token.parent_cti {
                    children.insert(child_key(parent, &token.cti), &[])?;
                }
                host_tokens.insert(child_key(&token.host_id, &token.cti), &[])?;
                policy_tokens.insert(child_key(&token.policy_hash, &token.cti), &[])?;
                let index = tx_append(audit, meta, entry)?;
                let record = TokenRecord { audit_index: index, ..token.clone() };
                tokens.insert(token.cti.as_bytes(), tx_encode(&record)?)?;
                if let Some(v) = hosts.get(host_id.as_bytes())? {
                    let mut h: HostRecord = match decode(host_id.as_bytes(), &v) {
                        Ok(h) => h,
                        Err(e) => return abort(e),
                    };
                    // Concurrent requests of one host may be appraised out of TPM order (docs/design.md
                    // §14 batches): the host keeps its latest clock and the state quoted then.
                    if runtrust_attestation::clock::not_earlier(clock, &h.last_clock) {
                        h.last_clock = *clock;
                        h.last_attested = Some(attested.clone());
                    }
                    match encode(&h) {
                        Ok(v) => hosts.insert(host_id.as_bytes(), v)?,
                        Err(e) => return abort(e),
                    };
                }
                Ok(index)
            })
            .map_err(tx_error)?;
        self.durable()?;
        Ok(index)
    }

    fn token(&self, cti: &str) -> Result<Option<TokenRecord>, StoreError> {
        Self::get(&self.tokens, cti)
    }

    fn children(&self, cti: &str) -> Result<Vec<String>, StoreError> {
        Self::suffixes(&self.children, cti, usize::MAX)
    }

    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        Self::all(&self.tokens)
    }

    fn tokens_by_host(&self, host_id: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        Self::suffixes(&self.host_tokens, host_id, limit)
    }

    fn tokens_by_policy(&self, policy_hash: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        Self::suffixes(&self.policy_tokens, policy_hash, limit)
    }

    fn revoke(&self, r: &Revocation, entry: &AuditEntry) -> Result<Revocation, StoreError> {
        let done = (&self.revocations, &self.revoked, &self.audit, &self.meta)
            .transaction(|(revocations, revoked, audit, meta)| {
                let seq = tx_counter(meta, REVOCATION_NEXT)?;
                let audit_index = tx_append(audit, meta, entry)?;
                let record = Revocation { seq, audit_index, ..r.clone() };
                revocations.insert(&seq.to_be_bytes(), tx_encode(&record)?)?;
                for key in record.keys() {
                    // The first revocation of a key stays the one that explains it.
                    if revoked.get(key.as_bytes())?.is_none() {
                        revoked.insert(key.as_bytes(), &seq.to_be_bytes())?;
                    }
                }
                meta.insert(REVOCATION_NEXT, &(seq + 1).to_be_bytes())?;
                Ok(record)
            })
            .map_err(tx_error)?;
        self.durable()?;
        Ok(done)
    }

    fn unrevoke_host(&self, lift: &Revocation, entry: &AuditEntry) -> Result<Option<Revocation>, StoreError> {
        self.unrevoke_host_tx(lift, entry)
    }

    fn revoked(&self, key: &str) -> Result<Option<Revocation>, StoreError> {
        let Some(seq) = self.revoked.get(key.as_bytes())? else { return Ok(None) };
        let Some(v) = self.revocations.get(&seq)? else {
            return Err(StoreError::Corrupt { key: format!("revoked/{key}"), detail: "names no revocation".into() });
        };
        decode(key.as_bytes(), &v).map(Some)
    }

    fn revocations(&self, since: u64, limit: usize) -> Result<Vec<Revocation>, StoreError> {
        self.revocations
            .range(since.to_be_bytes()..)
            .take(limit)
            .map(|kv| kv.map_err(StoreError::from).and_then(|(k, v)| decode(&k, &v)))
            .collect()
    }

    fn start_execution(
        &self,
        e: &ExecutionRecord,
        single_use: bool,
        revoked_keys: &[String],
        entry: &AuditEntry,
    ) -> Result<ExecStart, StoreError> {
        let key = format!("{}/{}", e.cti, e.id);
        // The revoked index is read inside the transaction: revoke() writes it in one, so they serialize.
        let trees = (&self.tokens, &self.executions, &self.audit, &self.meta);
        let outcome = (trees.0, trees.1, trees.2, trees.3, &self.revoked, &self.revocations)
            .transaction(|(tokens, executions, audit, meta, revoked, revocations)| {
                let Some(v) = tokens.get(e.cti.as_bytes())? else { return Ok(ExecStart::UnknownToken) };
                let mut token: TokenRecord = tx_decode(e.cti.as_bytes(), &v)?;
                for k in revoked_keys {
                    let Some(seq) = revoked.get(k.as_bytes())? else { continue };
                    let Some(r) = revocations.get(&seq)? else {
                        return abort(StoreError::Corrupt {
                            key: format!("revoked/{k}"),
                            detail: "no revocation".into(),
                        });
                    };
                    return Ok(ExecStart::Revoked { key: k.clone(), revocation: tx_decode(k.as_bytes(), &r)? });
                }
                if single_use {
                    if let Some(consumed_at) = token.consumed_at {
                        return Ok(ExecStart::Replayed { consumed_at });
                    }
                    token.consumed_at = Some(e.started_at);
                    tokens.insert(e.cti.as_bytes(), tx_encode(&token)?)?;
                }
                let start_audit_index = tx_append(audit, meta, entry)?;
                let record = ExecutionRecord { start_audit_index, ..e.clone() };
                executions.insert(key.as_bytes(), tx_encode(&record)?)?;
                Ok(ExecStart::Started(record))
            })
            .map_err(tx_error)?;
        if matches!(outcome, ExecStart::Started(_)) {
            self.durable()?;
        }
        Ok(outcome)
    }

    fn end_execution(
        &self,
        cti: &str,
        id: &str,
        end: &ExecutionEnd,
        entry: &AuditEntry,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        let key = format!("{cti}/{id}");
        let done = (&self.executions, &self.audit, &self.meta)
            .transaction(|(executions, audit, meta)| {
                let Some(v) = executions.get(key.as_bytes())? else { return Ok(None) };
                let mut record: ExecutionRecord = tx_decode(key.as_bytes(), &v)?;
                if record.end.is_some() {
                    return abort(StoreError::Conflict(format!("execution {id} has already ended")));
                }
                let audit_index = tx_append(audit, meta, entry)?;
                record.end = Some(ExecutionEnd { audit_index, ..end.clone() });
                executions.insert(key.as_bytes(), tx_encode(&record)?)?;
                Ok(Some(record))
            })
            .map_err(tx_error)?;
        if done.is_some() {
            self.durable()?;
        }
        Ok(done)
    }

    fn executions(&self, cti: &str) -> Result<Vec<ExecutionRecord>, StoreError> {
        let mut all: Vec<ExecutionRecord> = self
            .executions
            .scan_prefix(format!("{cti}/").as_bytes())
            .map(|kv| kv.map_err(StoreError::from).and_then(|(k, v)| decode(&k, &v)))
            .collect::<Result<_, _>>()?;
        all.sort_by_key(|e| (e.started_at, e.start_audit_index));
        Ok(all)
    }

    fn append_audit(&self, entry: &AuditEntry) -> Result<u64, StoreError> {
        let index =
            (&self.audit, &self.meta).transaction(|(audit, meta)| tx_append(audit, meta, entry)).map_err(tx_error)?;
        self.durable()?;
        Ok(index)
    }

    fn audit(&self, from: u64, limit: usize) -> Result<Vec<(u64, AuditEntry)>, StoreError> {
        self.durable_audit(from, limit)
    }

    fn audit_len(&self) -> Result<u64, StoreError> {
        Ok(self.durable_audit_len())
    }

    fn revocations_len(&self) -> Result<u64, StoreError> {
        Ok(self.durable_revocations_len())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.commit.durable_now()
    }

    fn probe(&self) -> Result<(), StoreError> {
        self.write_probe()
    }

    fn flushes(&self) -> u64 {
        self.commit.flushes()
    }

    /// sled reads and transactions run in memory; only the flush waits on the disk, and it is deferred.
    fn runs_inline(&self) -> bool {
        true
    }

    fn flushed(
        &self,
        ticket: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send>> {
        self.commit.flushed(ticket)
    }

    fn export(&self) -> Result<Dump, StoreError> {
        self.dump()
    }

    fn import(&self, d: &Dump) -> Result<(), StoreError> {
        self.load(d)
    }
}

#[cfg(test)]
mod tests;
