//! The PostgreSQL store (docs/design.md §15): one database shared by any number of `serve` replicas, with the
//! guarantees of one process. The client is the synchronous `postgres` crate with an r2d2 pool: the Store
//! trait is synchronous and runs inside spawn_blocking, so a blocking client fits without a second runtime
//! handle to block on. Every mutation is one transaction, committed (durable) before it returns.
//!
//! Locks (taken in this order, so transactions cannot deadlock): one advisory lock first — the revocation
//! lock (exclusive in revoke and unrevoke_host, shared in start_execution), a per-principal admission lock
//! (capped puts), a per-host enrollment lock (enroll_host, join_host), or the sweep lock (sweep,
//! void_challenges) — then record rows (in join_host: the join token's, then the host's own principal's),
//! then the revocation_next / policies_version counters, then the audit_next counter row, held to commit
//! (dense indices in commit order, one log for every replica).
//! TLS to PostgreSQL is not supported yet: connect over loopback or a unix socket (docs/design.md §15).

mod dump;
mod hosts;
mod schema;
mod store;
#[cfg(test)]
mod tests;
mod transient;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{NoTls, Transaction};
use r2d2_postgres::{r2d2, PostgresConnectionManager};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{AuditEntry, StoreError};

/// Connections per process unless the config says otherwise.
pub const DEFAULT_POOL_SIZE: u32 = 16;
/// Advisory lock that revocations and lifts take exclusively and execution starts shared (docs/design.md §15).
const REVOCATION_LOCK: i64 = 0x7274_7265_766f_6b65;
/// Advisory lock serializing sweeps and voids (they delete many rows: one at a time, no deadlock).
const SWEEP_LOCK: i64 = 0x7274_7377_6565_7021;
/// Classes of the two-key advisory locks `(class, hashtext(name))` (a key space apart from the one-key locks):
/// a principal's capped challenges, its capped pending enrollments, a host's enrollment.
const CHALLENGE_CAP: i32 = 0x7263_6331;
const ENROLLMENT_CAP: i32 = 0x7263_6532;
const ENROLL_HOST: i32 = 0x7265_6833;

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;

pub struct PgStore {
    /// Always Some until dropped.
    pool: Option<Pool>,
    commits: AtomicU64,
}

impl Drop for PgStore {
    /// A `postgres::Client` closes by blocking on its own runtime, which panics on a thread that drives an
    /// async runtime: the connections are closed on a plain thread.
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                let _ = std::thread::spawn(move || drop(pool)).join();
            }
        }
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) if *db.code() == SqlState::UNIQUE_VIOLATION => StoreError::Conflict(db.message().to_owned()),
            Some(db) => StoreError::Backend(format!("PostgreSQL {}: {}", db.code().code(), db.message())),
            None => StoreError::Backend(format!("PostgreSQL: {e}")),
        }
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        StoreError::Backend(format!("PostgreSQL connection pool: {e}"))
    }
}

/// `url` without its password (for messages and logs).
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "postgres://…".into() };
    match rest.split_once('@') {
        Some((user, host)) => {
            let user = user.split_once(':').map_or(user, |(u, _)| u);
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_owned(),
    }
}

impl PgStore {
    /// Connects (at most `pool_size` connections) and applies the schema migrations this build knows.
    pub fn open(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        let config: postgres::Config =
            url.parse().map_err(|e| StoreError::Backend(format!("store URL {}: {e}", redact(url))))?;
        let pool = r2d2::Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(1))
            // No extra round trip per checkout: a dead connection fails its request (closed) and is dropped.
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(10))
            .build(PostgresConnectionManager::new(config, NoTls))
            .map_err(|e| StoreError::Backend(format!("PostgreSQL at {}: {e}", redact(url))))?;
        let store = PgStore { pool: Some(pool), commits: AtomicU64::new(0) };
        schema::migrate(&mut *store.conn()?)?;
        Ok(store)
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>, StoreError> {
        let pool = self.pool.as_ref().ok_or_else(|| StoreError::Backend("the store is closed".into()))?;
        Ok(pool.get()?)
    }

    /// Runs `f` in one transaction and commits it; an error rolls everything back.
    fn write<T>(&self, f: impl FnOnce(&mut Transaction<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let out = f(&mut tx)?;
        tx.commit()?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }

    /// Every row's first column decoded as a JSON record.
    fn records<T: DeserializeOwned>(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<T>, StoreError> {
        self.conn()?.query(sql, params)?.iter().map(|r| from_json(what, &r.try_get::<_, String>(0)?)).collect()
    }

    /// The first column of at most one row, decoded.
    fn record<T: DeserializeOwned>(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Option<T>, StoreError> {
        match self.conn()?.query_opt(sql, params)? {
            Some(r) => from_json(what, &r.try_get::<_, String>(0)?).map(Some),
            None => Ok(None),
        }
    }

    fn counter(&self, name: &str) -> Result<u64, StoreError> {
        let row = self.conn()?.query_one("SELECT value FROM counters WHERE name = $1", &[&name])?;
        unsigned(row.try_get(0)?)
    }
}

pub(super) fn to_json<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("encoding: {e}")))
}

pub(super) fn from_json<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt { key: what.to_owned(), detail: e.to_string() })
}

/// u64 as PostgreSQL's BIGINT.
pub(super) fn signed(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Backend(format!("{v} does not fit a BIGINT")))
}

pub(super) fn unsigned(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt { key: "bigint".into(), detail: format!("{v} is negative") })
}

/// A LIMIT: usize::MAX means all.
pub(super) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Appends `entry` at the next dense index: locks the audit_next row until the transaction ends. Call it
/// last in a transaction, to hold the lock for as short a time as possible.
pub(super) fn append(tx: &mut Transaction<'_>, entry: &AuditEntry) -> Result<u64, StoreError> {
    let row =
        tx.query_one("UPDATE counters SET value = value + 1 WHERE name = 'audit_next' RETURNING value - 1", &[])?;
    let index: i64 = row.try_get(0)?;
    tx.execute("INSERT INTO audit (idx, entry) VALUES ($1, $2)", &[&index, &to_json(entry)?])?;
    unsigned(index)
}

/// Takes the transaction-scoped advisory lock `(class, hashtext(name))`: held until commit or rollback. Two
/// names that hash alike only share a lock (more waiting, never less exclusion).
pub(super) fn lock_name(tx: &mut Transaction<'_>, class: i32, name: &str) -> Result<(), StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", &[&class, &name])?;
    Ok(())
}

/// A row count as usize.
pub(super) fn count(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Bumps a counter; returns its value before.
pub(super) fn bump(tx: &mut Transaction<'_>, name: &str) -> Result<u64, StoreError> {
    let row = tx.query_one("UPDATE counters SET value = value + 1 WHERE name = $1 RETURNING value - 1", &[&name])?;
    unsigned(row.try_get(0)?)
}
