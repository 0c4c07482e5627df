//! What lives only until it is used or expires (docs/design.md §6, §12, §16), on PostgreSQL: challenges,
//! pending enrollments and used nonces. A capped put counts its principal's unexpired items and stores the
//! new one in one transaction that holds the principal's advisory lock, so concurrent puts (from any
//! replica) never exceed the cap; the sweep deletes what expired.

use super::{append, count, from_json, lock_name, signed, to_json, PgStore, CHALLENGE_CAP, ENROLLMENT_CAP, SWEEP_LOCK};
use crate::store::{Admission, AuditEntry, Cap, Challenge, Nonce, NonceState, PendingEnrollment, StoreError, Swept};

/// How many of the principal's rows in `table` are unexpired at `now` (expired ones wait for the sweep).
fn outstanding(
    tx: &mut postgres::Transaction<'_>,
    table: &str,
    principal: &str,
    now: u64,
) -> Result<usize, StoreError> {
    let sql = format!("SELECT count(*) FROM {table} WHERE principal_id = $1 AND expires_at >= $2");
    let n: i64 = tx.query_one(&sql, &[&principal, &signed(now)?])?.try_get(0)?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

impl PgStore {
    pub(super) fn put_challenge_capped(
        &self,
        c: &Challenge,
        entry: &AuditEntry,
        cap: Cap,
    ) -> Result<Admission, StoreError> {
        let record = to_json(c)?;
        self.write(|tx| {
            // Held to commit: the next put of this principal counts after this one is stored (READ COMMITTED:
            // its count is a new snapshot).
            lock_name(tx, CHALLENGE_CAP, &c.principal_id)?;
            let outstanding = outstanding(tx, "challenges", &c.principal_id, cap.now)?;
            if outstanding >= cap.max {
                return Ok(Admission::Full { outstanding });
            }
            let sql = "INSERT INTO challenges (nonce, principal_id, expires_at, record) VALUES ($1, $2, $3, $4)
                       ON CONFLICT (nonce) DO UPDATE SET principal_id = EXCLUDED.principal_id,
                       expires_at = EXCLUDED.expires_at, record = EXCLUDED.record";
            tx.execute(sql, &[&c.nonce.to_hex(), &c.principal_id, &signed(c.expires_at)?, &record])?;
            append(tx, entry)?;
            Ok(Admission::Stored)
        })
    }

    pub(super) fn put_enrollment_capped(&self, e: &PendingEnrollment, cap: Cap) -> Result<Admission, StoreError> {
        let record = to_json(e)?;
        self.write(|tx| {
            lock_name(tx, ENROLLMENT_CAP, &e.principal_id)?;
            let outstanding = outstanding(tx, "enrollments", &e.principal_id, cap.now)?;
            if outstanding >= cap.max {
                return Ok(Admission::Full { outstanding });
            }
            let sql = "INSERT INTO enrollments (id, principal_id, expires_at, record) VALUES ($1, $2, $3, $4)
                       ON CONFLICT (id) DO UPDATE SET principal_id = EXCLUDED.principal_id,
                       expires_at = EXCLUDED.expires_at, record = EXCLUDED.record";
            tx.execute(sql, &[&e.id, &e.principal_id, &signed(e.expires_at)?, &record])?;
            Ok(Admission::Stored)
        })
    }

    pub(super) fn void_all_challenges(&self) -> Result<usize, StoreError> {
        self.write(|tx| {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SWEEP_LOCK])?;
            Ok(count(tx.execute("DELETE FROM challenges", &[])?))
        })
    }

    pub(super) fn consume_nonce_once(&self, nonce: &Nonce, now: u64) -> Result<NonceState, StoreError> {
        let nonce = nonce.to_hex();
        self.write(|tx| {
            // The row lock makes concurrent consumers wait; the losers then find no row, and the winner's used
            // record (committed with the delete) makes them Replayed.
            let Some(row) = tx.query_opt("DELETE FROM challenges WHERE nonce = $1 RETURNING record", &[&nonce])? else {
                let used = tx.query_opt("SELECT 1 FROM used_nonces WHERE nonce = $1", &[&nonce])?;
                return Ok(if used.is_some() { NonceState::Replayed } else { NonceState::Unknown });
            };
            let c: Challenge = from_json("challenges", &row.try_get::<_, String>(0)?)?;
            let sql = "INSERT INTO used_nonces (nonce, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING";
            tx.execute(sql, &[&nonce, &signed(c.expires_at)?])?;
            Ok(if now > c.expires_at { NonceState::Expired(c) } else { NonceState::Fresh(c) })
        })
    }

    /// Deletes what expired before `now`, in one transaction under the sweep lock (replicas sweep one at a
    /// time). A swept nonce is Unknown from then on: only a challenge on record can be Fresh.
    pub(super) fn sweep_expired(&self, now: u64) -> Result<Swept, StoreError> {
        let now = signed(now)?;
        self.write(|tx| {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SWEEP_LOCK])?;
            Ok(Swept {
                challenges: count(tx.execute("DELETE FROM challenges WHERE expires_at < $1", &[&now])?),
                enrollments: count(tx.execute("DELETE FROM enrollments WHERE expires_at < $1", &[&now])?),
                nonces: count(tx.execute("DELETE FROM used_nonces WHERE expires_at < $1", &[&now])?),
                console_links: count(tx.execute("DELETE FROM console_links WHERE expires_at < $1", &[&now])?),
            })
        })
    }
}
