//! What lives only until it is used or expires (docs/design.md §6, §12, §16): challenges, pending
//! enrollments and the record of used nonces. Each principal may have only so many unexpired challenges and
//! pending enrollments at once (an owner index counts them), and [`SledStore::sweep_expired`] removes what
//! expired, so the store does not grow with traffic that issued nothing.

use sled::transaction::Transactional;

use super::codec::{abort, decode, encode, tx_append, tx_decode, tx_encode, tx_error};
use super::{
    Admission, AuditEntry, Cap, Challenge, ConsoleLink, Nonce, NonceState, PendingEnrollment, SledStore, StoreError,
    Swept,
};

/// `principal/item` keys of the owner indices.
pub(super) fn owner_key(principal: &str, item: &str) -> Vec<u8> {
    format!("{principal}/{item}").into_bytes()
}

/// An expiry as stored in the owner indices and the used-nonce tree; None if it is not one.
fn expiry(v: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(v).ok().map(u64::from_be_bytes)
}

/// How many of `principal`'s items in `owners` are unexpired at `now` (expired ones wait for the sweep).
fn outstanding(owners: &sled::Tree, principal: &str, now: u64) -> Result<usize, StoreError> {
    let mut n = 0;
    for kv in owners.scan_prefix(owner_key(principal, "")) {
        let (_, v) = kv?;
        // An unreadable expiry counts: the cap errs on the side of refusing.
        if expiry(&v).is_none_or(|exp| now <= exp) {
            n += 1;
        }
    }
    Ok(n)
}

impl SledStore {
    /// Runs `put` (which inserts the item and its owner entry) unless `principal` is at the cap. Counting
    /// and inserting are one step: capped puts are serialized (the lock guards nothing else).
    fn admit(
        &self,
        owners: &sled::Tree,
        principal: &str,
        cap: Cap,
        put: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<Admission, StoreError> {
        {
            let _one = self.admission.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let outstanding = outstanding(owners, principal, cap.now)?;
            if outstanding >= cap.max {
                return Ok(Admission::Full { outstanding });
            }
            put()?;
        }
        self.durable()?;
        Ok(Admission::Stored)
    }

    pub(super) fn put_enrollment_capped(&self, e: &PendingEnrollment, cap: Cap) -> Result<Admission, StoreError> {
        let value = encode(e)?;
        let owner = owner_key(&e.principal_id, &e.id);
        self.admit(&self.enrollment_owners, &e.principal_id, cap, || {
            (&self.enrollments, &self.enrollment_owners)
                .transaction(|(enrollments, owners)| {
                    enrollments.insert(e.id.as_bytes(), value.as_slice())?;
                    owners.insert(owner.as_slice(), &e.expires_at.to_be_bytes())?;
                    Ok(())
                })
                .map_err(tx_error)
        })
    }

    pub(super) fn take_enrollment_once(&self, id: &str) -> Result<Option<PendingEnrollment>, StoreError> {
        let taken = (&self.enrollments, &self.enrollment_owners)
            .transaction(|(enrollments, owners)| {
                let Some(v) = enrollments.remove(id.as_bytes())? else { return Ok(None) };
                let e: PendingEnrollment = tx_decode(id.as_bytes(), &v)?;
                owners.remove(owner_key(&e.principal_id, id))?;
                Ok(Some(e))
            })
            .map_err(tx_error)?;
        if taken.is_some() {
            self.durable()?;
        }
        Ok(taken)
    }

    pub(super) fn put_console_link_tx(&self, link: &ConsoleLink, entry: &AuditEntry) -> Result<(), StoreError> {
        let value = encode(link)?;
        (&self.console_links, &self.audit, &self.meta)
            .transaction(|(links, audit, meta)| {
                links.insert(link.id.as_bytes(), value.as_slice())?;
                tx_append(audit, meta, entry)
            })
            .map_err(tx_error)?;
        self.durable()
    }

    pub(super) fn take_console_link_once(&self, id: &str) -> Result<Option<ConsoleLink>, StoreError> {
        // A single remove is atomic: of concurrent takes, one gets the value.
        let Some(v) = self.console_links.remove(id.as_bytes())? else { return Ok(None) };
        let link: ConsoleLink = decode(id.as_bytes(), &v)?;
        self.durable()?;
        Ok(Some(link))
    }

    pub(super) fn put_challenge_capped(
        &self,
        c: &Challenge,
        entry: &AuditEntry,
        cap: Cap,
    ) -> Result<Admission, StoreError> {
        let nonce = c.nonce.to_hex();
        let owner = owner_key(&c.principal_id, &nonce);
        self.admit(&self.challenge_owners, &c.principal_id, cap, || {
            (&self.challenges, &self.challenge_owners, &self.audit, &self.meta)
                .transaction(|(challenges, owners, audit, meta)| {
                    challenges.insert(nonce.as_bytes(), tx_encode(c)?)?;
                    owners.insert(owner.as_slice(), &c.expires_at.to_be_bytes())?;
                    tx_append(audit, meta, entry)
                })
                .map(|_| ())
                .map_err(tx_error)
        })
    }

    pub(super) fn void_all_challenges(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for kv in self.challenges.iter() {
            let (k, _) = kv?;
            self.challenges.remove(k)?;
            n += 1;
        }
        self.challenge_owners.clear()?;
        self.durable()?;
        Ok(n)
    }

    pub(super) fn consume_nonce_once(&self, nonce: &Nonce, now: u64) -> Result<NonceState, StoreError> {
        let nonce = nonce.to_hex();
        let state = (&self.challenges, &self.used_nonces, &self.challenge_owners)
            .transaction(|(challenges, used, owners)| {
                if used.get(nonce.as_bytes())?.is_some() {
                    return Ok(NonceState::Replayed);
                }
                let Some(v) = challenges.remove(nonce.as_bytes())? else { return Ok(NonceState::Unknown) };
                let c: Challenge = match decode(nonce.as_bytes(), &v) {
                    Ok(c) => c,
                    Err(e) => return abort(e),
                };
                owners.remove(owner_key(&c.principal_id, &nonce))?;
                used.insert(nonce.as_bytes(), &c.expires_at.to_be_bytes())?;
                Ok(if now > c.expires_at { NonceState::Expired(c) } else { NonceState::Fresh(c) })
            })
            .map_err(tx_error)?;
        if matches!(state, NonceState::Fresh(_) | NonceState::Expired(_)) {
            // Durable before the nonce is acted upon: after a crash it cannot be used again.
            self.durable()?;
        }
        Ok(state)
    }

    /// Each removal is idempotent and leaves nothing usable behind, so a crash halfway through is harmless:
    /// an item is removed only if it is still the expired one read (compare-and-swap).
    pub(super) fn sweep_expired(&self, now: u64) -> Result<Swept, StoreError> {
        let challenges = sweep_records(&self.challenges, now, |c: Challenge| c.expires_at)?;
        let enrollments = sweep_records(&self.enrollments, now, |e: PendingEnrollment| e.expires_at)?;
        for owners in [&self.challenge_owners, &self.enrollment_owners] {
            sweep_expiries(owners, now)?;
        }
        let nonces = sweep_expiries(&self.used_nonces, now)?;
        let console_links = sweep_records(&self.console_links, now, |l: ConsoleLink| l.expires_at)?;
        self.durable()?;
        Ok(Swept { challenges, enrollments, nonces, console_links })
    }
}

/// Removes the records of `tree` whose expiry (`expires_at` of the decoded record) is before `now`. A record
/// that does not decode stays (it is reported where it is read).
fn sweep_records<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    now: u64,
    expires_at: impl Fn(T) -> u64,
) -> Result<usize, StoreError> {
    let mut n = 0;
    for kv in tree.iter() {
        let (k, v) = kv?;
        let Ok(record) = decode::<T>(&k, &v) else { continue };
        if now > expires_at(record) && tree.compare_and_swap(&k, Some(&v), None::<&[u8]>)?.is_ok() {
            n += 1;
        }
    }
    Ok(n)
}

/// Removes the entries of `tree` whose value, an expiry, is before `now`. An unreadable value stays: a
/// used-nonce record is never dropped unless it is known to be past its challenge's expiry.
fn sweep_expiries(tree: &sled::Tree, now: u64) -> Result<usize, StoreError> {
    let mut n = 0;
    for kv in tree.iter() {
        let (k, v) = kv?;
        if expiry(&v).is_some_and(|exp| now > exp) && tree.compare_and_swap(&k, Some(&v), None::<&[u8]>)?.is_ok() {
            n += 1;
        }
    }
    Ok(n)
}
