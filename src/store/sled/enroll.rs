//! Enrollment in one sled transaction: the AK index, the principal's binding and the audit entry with the host.

use sled::transaction::Transactional;

use super::codec::{abort, decode, encode, tx_append, tx_error};
use super::{AuditEntry, EnrollOutcome, HostRecord, SledStore, StoreError};

impl SledStore {
    pub(super) fn enroll(
        &self,
        host: &HostRecord,
        principal_id: &str,
        entry: &AuditEntry,
    ) -> Result<EnrollOutcome, StoreError> {
        let outcome = (&self.hosts, &self.ak_index, &self.principal_hosts, &self.audit, &self.meta)
            .transaction(|(hosts, ak_index, principal_hosts, audit, meta)| {
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
                    Some(v) => match decode(host.host_id.as_bytes(), &v) {
                        Ok(h) => Some(h),
                        Err(e) => return abort(e),
                    },
                    None => None,
                };
                let (record, outcome) = match previous {
                    None => (host.clone(), EnrollOutcome::New),
                    Some(prev) if prev.ak_name == host.ak_name => {
                        // Idempotent: keep the original enrollment, take the new tags and clock.
                        let rec = HostRecord {
                            tags: host.tags.clone(),
                            updated_at: host.updated_at,
                            last_clock: host.last_clock,
                            ..prev
                        };
                        (rec, EnrollOutcome::Unchanged)
                    }
                    Some(prev) => {
                        ak_index.remove(prev.ak_name.as_bytes())?;
                        let rec = HostRecord { enrolled_at: prev.enrolled_at, ..host.clone() };
                        (rec, EnrollOutcome::AkReplaced)
                    }
                };
                let value = match encode(&record) {
                    Ok(v) => v,
                    Err(e) => return abort(e),
                };
                hosts.insert(host.host_id.as_bytes(), value)?;
                ak_index.insert(host.ak_name.as_bytes(), host.host_id.as_bytes())?;
                tx_append(audit, meta, entry)?;
                Ok(outcome)
            })
            .map_err(tx_error)?;
        self.durable()?;
        Ok(outcome)
    }
}
