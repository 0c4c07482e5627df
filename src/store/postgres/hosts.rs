//! Host records on PostgreSQL: enrollment and joins with a join token (the AK index, the principal's binding,
//! tags that a re-enrollment never changes, docs/design.md §5), an admin's tag change and clock re-baseline,
//! and lifting a host's revocation (docs/design.md §11); each with its audit entry in one transaction.

use postgres::Transaction;

use super::{append, bump, from_json, lock_name, signed, to_json, unsigned, PgStore, ENROLL_HOST, REVOCATION_LOCK};
use crate::model::{lift_key, revoked_key, JoinRefusal, Principal, RevocationKind, Role};
use crate::store::{same_tags, AuditEntry, EnrollOutcome, HostRecord, Joined, Revocation, StoreError, TAGS_DIFFER};

/// The host's record, its row locked until the transaction ends.
fn host_for_update(tx: &mut Transaction<'_>, host_id: &str) -> Result<Option<HostRecord>, StoreError> {
    match tx.query_opt("SELECT record FROM hosts WHERE host_id = $1 FOR UPDATE", &[&host_id])? {
        Some(r) => Ok(Some(from_json(&format!("hosts/{host_id}"), &r.try_get::<_, String>(0)?)?)),
        None => Ok(None),
    }
}

impl PgStore {
    pub(super) fn enroll_host_tx(
        &self,
        host: &HostRecord,
        principal_id: &str,
        entry: &AuditEntry,
    ) -> Result<EnrollOutcome, StoreError> {
        self.write(|tx| {
            lock_name(tx, ENROLL_HOST, host.host_id.as_str())?;
            let outcome = enroll_in(tx, host, principal_id)?;
            append(tx, entry)?;
            Ok(outcome)
        })
    }

    /// [`crate::store::Store::join_host`], in one transaction: the host's enrollment lock, then the join
    /// token's row (FOR UPDATE: racing joins on one token spend its uses one after the other), then the
    /// host's own principal, the enrollment and the audit entry. A refusal writes nothing; a Conflict rolls
    /// everything back (the use is not spent).
    pub(super) fn join_host_tx(
        &self,
        join_id: &str,
        now: u64,
        principal: &Principal,
        host: &HostRecord,
        entry: &AuditEntry,
    ) -> Result<Joined, StoreError> {
        self.write(|tx| {
            lock_name(tx, ENROLL_HOST, host.host_id.as_str())?;
            let sql = "SELECT record FROM principals WHERE id = $1 FOR UPDATE";
            let Some(row) = tx.query_opt(sql, &[&join_id])? else {
                return Ok(Joined::Refused(JoinRefusal::Unknown));
            };
            let mut join: Principal = from_json(&format!("principals/{join_id}"), &row.try_get::<_, String>(0)?)?;
            let Some(allowance) = join.join.as_mut().filter(|_| join.role == Role::JoinToken) else {
                return Ok(Joined::Refused(JoinRefusal::Unknown));
            };
            if let Err(refused) = allowance.check(now) {
                return Ok(Joined::Refused(refused));
            }
            allowance.used += 1;
            tx.execute("UPDATE principals SET record = $2 WHERE id = $1", &[&join_id, &to_json(&join)?])?;

            // Read, not locked: only an attester bound to this host is written, and such a row is written
            // only under this host's enrollment lock (no lock on a join token or an admin row is waited for
            // while the token's row is held).
            let sql = "SELECT id, record FROM principals WHERE name = $1";
            let principal_id = match tx.query_opt(sql, &[&principal.name])? {
                None => {
                    let sql = "INSERT INTO principals (id, name, record, tags, created_by) VALUES ($1, $2, $3, $4, $5)";
                    tx.execute(
                        sql,
                        &[&principal.id, &principal.name, &to_json(principal)?, &principal.tags, &principal.created_by],
                    )?;
                    principal.id.clone()
                }
                Some(row) => {
                    let id: String = row.try_get(0)?;
                    let mut own: Principal = from_json(&format!("principals/{id}"), &row.try_get::<_, String>(1)?)?;
                    let sql = "SELECT host_id FROM principal_hosts WHERE principal_id = $1";
                    let bound: Option<String> = tx.query_opt(sql, &[&id])?.map(|r| r.try_get(0)).transpose()?;
                    if own.role != Role::Attester || bound.as_deref() != Some(host.host_id.as_str()) {
                        return Err(StoreError::Conflict(format!("principal {:?} exists", principal.name)));
                    }
                    own.secret_sha256.clone_from(&principal.secret_sha256);
                    let sql = "UPDATE principals SET record = $2 WHERE id = $1";
                    if tx.execute(sql, &[&id, &to_json(&own)?])? == 0 {
                        return Err(StoreError::Conflict(format!("principal {:?} was just removed", principal.name)));
                    }
                    id
                }
            };
            let outcome = enroll_in(tx, host, &principal_id)?;
            append(tx, entry)?;
            Ok(Joined::Enrolled { outcome, principal_id })
        })
    }

    /// Applies `change` to a host's record and appends `entry`, in one transaction; the record before and
    /// after, or None (nothing written) if there is no such host.
    pub(super) fn update_host(
        &self,
        host_id: &str,
        entry: &AuditEntry,
        change: impl Fn(&mut HostRecord),
    ) -> Result<Option<(HostRecord, HostRecord)>, StoreError> {
        self.write(|tx| {
            let Some(before) = host_for_update(tx, host_id)? else { return Ok(None) };
            let mut after = before.clone();
            change(&mut after);
            tx.execute("UPDATE hosts SET record = $2 WHERE host_id = $1", &[&host_id, &to_json(&after)?])?;
            append(tx, entry)?;
            Ok(Some((before, after)))
        })
    }

    /// See [`crate::store::Store::remove_host`].
    pub(super) fn remove_host_tx(&self, host_id: &str, entry: &AuditEntry) -> Result<Option<HostRecord>, StoreError> {
        self.write(|tx| {
            let Some(host) = host_for_update(tx, host_id)? else { return Ok(None) };
            tx.execute("DELETE FROM principal_hosts WHERE host_id = $1", &[&host_id])?;
            tx.execute("DELETE FROM hosts WHERE host_id = $1", &[&host_id])?;
            append(tx, entry)?;
            Ok(Some(host))
        })
    }

    /// See [`crate::store::Store::unrevoke_host`]. Under the revocation lock (exclusive): no revocation or
    /// execution start interleaves, so the revocation read here is the one lifted.
    pub(super) fn unrevoke_host_tx(
        &self,
        lift: &Revocation,
        entry: &AuditEntry,
    ) -> Result<Option<Revocation>, StoreError> {
        let host_key = revoked_key(RevocationKind::Host, &lift.target);
        let lift_key = lift_key(&lift.target);
        self.write(|tx| {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&REVOCATION_LOCK])?;
            let Some(current) = tx.query_opt("SELECT seq FROM revoked WHERE key = $1", &[&host_key])? else {
                return Ok(None);
            };
            let lifts = unsigned(current.try_get(0)?)?;
            let seq = bump(tx, "revocation_next")?;
            let audit_index = append(tx, entry)?;
            let record = Revocation {
                seq,
                kind: RevocationKind::Unrevoke,
                audit_index,
                lifts: Some(lifts),
                tokens: Vec::new(),
                ..lift.clone()
            };
            tx.execute(
                "INSERT INTO revocations (seq, record, lifts) VALUES ($1, $2, $3)",
                &[&signed(seq)?, &to_json(&record)?, &signed(lifts)?],
            )?;
            // The host may be issued tokens again; its earlier tokens stay revoked, by the lift's audit index
            // (the feed stays append-only: nothing in it is rewritten).
            tx.execute("DELETE FROM revoked WHERE key = $1", &[&host_key])?;
            let sql =
                "INSERT INTO revoked (key, seq) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET seq = EXCLUDED.seq";
            tx.execute(sql, &[&lift_key, &signed(seq)?])?;
            Ok(Some(record))
        })
    }
}

/// Stores `host` bound to `principal_id` ([`crate::store::Store::enroll_host`]) inside `tx`, which holds the
/// host's enrollment lock (concurrent enrollments of one host, a new one having no row to lock yet, decide
/// one after the other).
fn enroll_in(tx: &mut Transaction<'_>, host: &HostRecord, principal_id: &str) -> Result<EnrollOutcome, StoreError> {
    let host_id = host.host_id.as_str();
    let sql = "SELECT host_id FROM principal_hosts WHERE principal_id = $1 FOR UPDATE";
    if let Some(bound) = tx.query_opt(sql, &[&principal_id])? {
        let bound: String = bound.try_get(0)?;
        if bound != host_id {
            return Err(StoreError::Conflict(format!(
                "this credential enrolled host {bound}; a different TPM cannot enroll under it"
            )));
        }
    } else {
        tx.execute("INSERT INTO principal_hosts (principal_id, host_id) VALUES ($1, $2)", &[&principal_id, &host_id])?;
    }
    if let Some(owner) = tx.query_opt("SELECT host_id FROM hosts WHERE ak_name = $1", &[&host.ak_name])? {
        let owner: String = owner.try_get(0)?;
        if owner != host_id {
            return Err(StoreError::Conflict(format!("AK {} is enrolled as host {owner}", host.ak_name)));
        }
    }
    let previous = host_for_update(tx, host_id)?;
    if let Some(prev) = &previous {
        // Tags are the operator's: only an admin changes them (docs/design.md §5).
        if !same_tags(&prev.tags, &host.tags) {
            return Err(StoreError::Conflict(format!(
                "{TAGS_DIFFER}: host {} is enrolled with tags [{}]",
                prev.host_id,
                prev.tags.join(", ")
            )));
        }
    }
    let (record, outcome) = match previous {
        None => (host.clone(), EnrollOutcome::New),
        // Idempotent: keep the original enrollment, take the new clock.
        Some(prev) if prev.ak_name == host.ak_name => {
            (HostRecord { updated_at: host.updated_at, last_clock: host.last_clock, ..prev }, EnrollOutcome::Unchanged)
        }
        Some(prev) => {
            (HostRecord { enrolled_at: prev.enrolled_at, tags: prev.tags, ..host.clone() }, EnrollOutcome::AkReplaced)
        }
    };
    let sql = "INSERT INTO hosts (host_id, ak_name, record) VALUES ($1, $2, $3)
               ON CONFLICT (host_id) DO UPDATE SET ak_name = EXCLUDED.ak_name, record = EXCLUDED.record";
    tx.execute(sql, &[&host_id, &record.ak_name, &to_json(&record)?])?;
    Ok(outcome)
}
