//! Host records: enrollment, the operator's tags (docs/design.md §5) and lifting a host's revocation
//! (docs/design.md §11), the clock re-baseline (docs/design.md §4), each with its audit entry in one
//! transaction.

use runtrust_attestation::ClockInfo;
use sled::transaction::{ConflictableTransactionError, Transactional, TransactionalTree};

use super::codec::{abort, tx_append, tx_counter, tx_decode, tx_encode, tx_error};
use super::{SledStore, REVOCATION_NEXT};
use crate::model::{lift_key, revoked_key, JoinRefusal, Principal, RevocationKind, Role};
use crate::store::{same_tags, AuditEntry, EnrollOutcome, HostRecord, Joined, Revocation, StoreError, TAGS_DIFFER};

impl SledStore {
    pub(super) fn enroll_host_tx(
        &self,
        host: &HostRecord,
        principal_id: &str,
        entry: &AuditEntry,
    ) -> Result<EnrollOutcome, StoreError> {
        let outcome = (&self.hosts, &self.ak_index, &self.principal_hosts, &self.audit, &self.meta)
            .transaction(|(hosts, ak_index, principal_hosts, audit, meta)| {
                let outcome = enroll_in(hosts, ak_index, principal_hosts, host, principal_id)?;
                tx_append(audit, meta, entry)?;
                Ok(outcome)
            })
            .map_err(tx_error)?;
        self.durable()?;
        Ok(outcome)
    }

    /// [`crate::store::Store::join_host`].
    pub(super) fn join_host_tx(
        &self,
        join_id: &str,
        now: u64,
        principal: &Principal,
        host: &HostRecord,
        entry: &AuditEntry,
    ) -> Result<Joined, StoreError> {
        let trees = (
            &self.principals,
            &self.principal_names,
            &self.hosts,
            &self.ak_index,
            &self.principal_hosts,
            &self.audit,
            &self.meta,
        );
        let joined = trees
            .transaction(|(principals, names, hosts, ak_index, principal_hosts, audit, meta)| {
                let Some(v) = principals.get(join_id.as_bytes())? else {
                    return Ok(Joined::Refused(JoinRefusal::Unknown));
                };
                let mut join: Principal = tx_decode(join_id.as_bytes(), &v)?;
                let Some(allowance) = join.join.as_mut().filter(|_| join.role == Role::JoinToken) else {
                    return Ok(Joined::Refused(JoinRefusal::Unknown));
                };
                if let Err(refused) = allowance.check(now) {
                    return Ok(Joined::Refused(refused));
                }
                allowance.used += 1;
                principals.insert(join_id.as_bytes(), tx_encode(&join)?)?;

                let principal_id = match names.get(principal.name.as_bytes())? {
                    None => {
                        names.insert(principal.name.as_bytes(), principal.id.as_bytes())?;
                        principals.insert(principal.id.as_bytes(), tx_encode(principal)?)?;
                        principal.id.clone()
                    }
                    Some(id) => {
                        let id = String::from_utf8_lossy(&id).into_owned();
                        let bound = principal_hosts.get(id.as_bytes())?;
                        let mut own: Principal = match principals.get(id.as_bytes())? {
                            Some(v) => tx_decode(id.as_bytes(), &v)?,
                            None => {
                                return abort(StoreError::Corrupt {
                                    key: format!("principal_names/{}", principal.name),
                                    detail: "names no principal".into(),
                                })
                            }
                        };
                        if own.role != Role::Attester || bound.as_deref() != Some(host.host_id.as_bytes()) {
                            return abort(StoreError::Conflict(format!("principal {:?} exists", principal.name)));
                        }
                        own.secret_sha256.clone_from(&principal.secret_sha256);
                        principals.insert(id.as_bytes(), tx_encode(&own)?)?;
                        id
                    }
                };
                let outcome = enroll_in(hosts, ak_index, principal_hosts, host, &principal_id)?;
                tx_append(audit, meta, entry)?;
                Ok(Joined::Enrolled { outcome, principal_id })
            })
            .map_err(tx_error)?;
        if matches!(joined, Joined::Enrolled { .. }) {
            self.durable()?;
        }
        Ok(joined)
    }

    pub(super) fn set_host_tags_tx(
        &self,
        host_id: &str,
        tags: &[String],
        entry: &AuditEntry,
    ) -> Result<Option<HostRecord>, StoreError> {
        let updated = (&self.hosts, &self.audit, &self.meta)
            .transaction(|(hosts, audit, meta)| {
                let Some(v) = hosts.get(host_id.as_bytes())? else { return Ok(None) };
                let mut h: HostRecord = tx_decode(host_id.as_bytes(), &v)?;
                h.tags = tags.to_vec();
                h.updated_at = entry.time;
                hosts.insert(host_id.as_bytes(), tx_encode(&h)?)?;
                tx_append(audit, meta, entry)?;
                Ok(Some(h))
            })
            .map_err(tx_error)?;
        if updated.is_some() {
            self.durable()?;
        }
        Ok(updated)
    }

    pub(super) fn unrevoke_host_tx(
        &self,
        lift: &Revocation,
        entry: &AuditEntry,
    ) -> Result<Option<Revocation>, StoreError> {
        let host_key = revoked_key(RevocationKind::Host, &lift.target);
        let lifted = (&self.revocations, &self.revoked, &self.audit, &self.meta)
            .transaction(|(revocations, revoked, audit, meta)| {
                let Some(current) = revoked.get(host_key.as_bytes())? else { return Ok(None) };
                let Ok(lifts) = <[u8; 8]>::try_from(current.as_ref()).map(u64::from_be_bytes) else {
                    return abort(StoreError::Corrupt {
                        key: format!("revoked/{host_key}"),
                        detail: "not a seq".into(),
                    });
                };
                let seq = tx_counter(meta, REVOCATION_NEXT)?;
                let audit_index = tx_append(audit, meta, entry)?;
                let record = Revocation {
                    seq,
                    kind: RevocationKind::Unrevoke,
                    audit_index,
                    lifts: Some(lifts),
                    tokens: Vec::new(),
                    ..lift.clone()
                };
                revocations.insert(&seq.to_be_bytes(), tx_encode(&record)?)?;
                // The host may be issued tokens again; its earlier tokens are still revoked, by the lift's
                // audit index (the feed stays append-only: nothing in it is rewritten).
                revoked.remove(host_key.as_bytes())?;
                revoked.insert(lift_key(&lift.target).as_bytes(), &seq.to_be_bytes())?;
                meta.insert(REVOCATION_NEXT, &(seq + 1).to_be_bytes())?;
                Ok(Some(record))
            })
            .map_err(tx_error)?;
        if lifted.is_some() {
            self.durable()?;
        }
        Ok(lifted)
    }

    /// See [`crate::store::Store::rebaseline_host`].
    pub(super) fn rebaseline(&self, host_id: &str, entry: &AuditEntry) -> Result<Option<ClockInfo>, StoreError> {
        let previous = (&self.hosts, &self.audit, &self.meta)
            .transaction(|(hosts, audit, meta)| {
                let Some(v) = hosts.get(host_id.as_bytes())? else { return Ok(None) };
                let mut h: HostRecord = tx_decode(host_id.as_bytes(), &v)?;
                let previous = h.last_clock;
                h.last_clock = ClockInfo::default();
                hosts.insert(host_id.as_bytes(), tx_encode(&h)?)?;
                tx_append(audit, meta, entry)?;
                Ok(Some(previous))
            })
            .map_err(tx_error)?;
        if previous.is_some() {
            self.durable()?;
        }
        Ok(previous)
    }

    /// [`crate::store::Store::remove_host`]. The bindings are found by a scan outside the transaction (sled
    /// transactions cannot iterate) and each is removed inside it only if it still names this host.
    pub(super) fn remove_host_tx(&self, host_id: &str, entry: &AuditEntry) -> Result<Option<HostRecord>, StoreError> {
        let mut bound = Vec::new();
        for kv in self.principal_hosts.iter() {
            let (principal, host) = kv?;
            if host.as_ref() == host_id.as_bytes() {
                bound.push(principal);
            }
        }
        let removed = (&self.hosts, &self.ak_index, &self.principal_hosts, &self.audit, &self.meta)
            .transaction(|(hosts, ak_index, principal_hosts, audit, meta)| {
                let Some(v) = hosts.remove(host_id.as_bytes())? else { return Ok(None) };
                let h: HostRecord = tx_decode(host_id.as_bytes(), &v)?;
                if ak_index.get(h.ak_name.as_bytes())?.is_some_and(|owner| owner.as_ref() == host_id.as_bytes()) {
                    ak_index.remove(h.ak_name.as_bytes())?;
                }
                for principal in &bound {
                    if principal_hosts.get(principal)?.is_some_and(|b| b.as_ref() == host_id.as_bytes()) {
                        principal_hosts.remove(principal.as_ref())?;
                    }
                }
                tx_append(audit, meta, entry)?;
                Ok(Some(h))
            })
            .map_err(tx_error)?;
        if removed.is_some() {
            self.durable()?;
        }
        Ok(removed)
    }
}

/// Stores `host` bound to `principal_id` ([`crate::store::Store::enroll_host`]), inside a transaction.
fn enroll_in(
    hosts: &TransactionalTree,
    ak_index: &TransactionalTree,
    principal_hosts: &TransactionalTree,
    host: &HostRecord,
    principal_id: &str,
) -> Result<EnrollOutcome, ConflictableTransactionError<StoreError>> {
    if let Some(bound) = principal_hosts.get(principal_id.as_bytes())? {
        if bound.as_ref() != host.host_id.as_bytes() {
            return abort(StoreError::Conflict(format!(
                "this credential enrolled host {}; a different TPM cannot enroll under it",
                String::from_utf8_lossy(&bound)
            )));
        }
    }
    principal_hosts.insert(principal_id.as_bytes(), host.host_id.as_bytes())?;
    if let Some(owner) = ak_index.get(host.ak_name.as_bytes())? {
        if owner.as_ref() != host.host_id.as_bytes() {
            return abort(StoreError::Conflict(format!(
                "AK {} is enrolled as host {}",
                host.ak_name,
                String::from_utf8_lossy(&owner)
            )));
        }
    }
    let previous: Option<HostRecord> = match hosts.get(host.host_id.as_bytes())? {
        Some(v) => Some(tx_decode(host.host_id.as_bytes(), &v)?),
        None => None,
    };
    if let Some(prev) = &previous {
        // Tags are the operator's: only an admin changes them (docs/design.md §5).
        if !same_tags(&prev.tags, &host.tags) {
            return abort(StoreError::Conflict(format!(
                "{TAGS_DIFFER}: host {} is enrolled with tags [{}]",
                prev.host_id,
                prev.tags.join(", ")
            )));
        }
    }
    let (record, outcome) = match previous {
        None => (host.clone(), EnrollOutcome::New),
        Some(prev) if prev.ak_name == host.ak_name => {
            // Idempotent: keep the original enrollment, take the new clock.
            let rec = HostRecord { updated_at: host.updated_at, last_clock: host.last_clock, ..prev };
            (rec, EnrollOutcome::Unchanged)
        }
        Some(prev) => {
            ak_index.remove(prev.ak_name.as_bytes())?;
            let rec = HostRecord { enrolled_at: prev.enrolled_at, tags: prev.tags, ..host.clone() };
            (rec, EnrollOutcome::AkReplaced)
        }
    };
    hosts.insert(host.host_id.as_bytes(), tx_encode(&record)?)?;
    ak_index.insert(host.ak_name.as_bytes(), host.host_id.as_bytes())?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    #[test]
    fn same_tags_ignores_order_and_repeats() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(crate::store::same_tags(&t(&["a", "b"]), &t(&["b", "a", "a"])));
        assert!(!crate::store::same_tags(&t(&["a"]), &t(&["a", "b"])));
        assert!(crate::store::same_tags(&[], &[]));
    }
}
