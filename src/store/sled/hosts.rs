//! Host record changes an admin makes (docs/design.md §4: the clock re-baseline).

use runtrust_attestation::ClockInfo;
use sled::transaction::Transactional;

use super::codec::{tx_append, tx_decode, tx_encode, tx_error};
use super::SledStore;
use crate::store::{AuditEntry, HostRecord, StoreError};

impl SledStore {
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
}
