//! Versioned schema migrations (docs/design.md §15), kept in the repository under migrations/postgres/ and
//! compiled in. Each is applied once, in one transaction, under an advisory lock (replicas starting together
//! apply it once), and recorded in schema_migrations.

use postgres::Client;

use crate::store::StoreError;

/// Advisory lock serializing migrations across processes.
const MIGRATION_LOCK: i64 = 0x7274_6d69_6772_6174;

/// (version, name, SQL), in version order.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../../migrations/postgres/0001_init.sql")),
    (2, "caps_sweep_lifts", include_str!("../../../migrations/postgres/0002_caps_sweep_lifts.sql")),
    (3, "console_links", include_str!("../../../migrations/postgres/0003_console_links.sql")),
];

pub(super) fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    BIGINT PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )?;
    let applied = tx
        .query("SELECT version FROM schema_migrations", &[])?
        .iter()
        .map(|r| r.try_get::<_, i64>(0))
        .collect::<Result<Vec<_>, _>>()?;
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if let Some(newer) = applied.iter().find(|v| **v > known) {
        return Err(StoreError::Backend(format!(
            "the database has schema version {newer}; this runtrust knows up to {known}: upgrade runtrust"
        )));
    }
    for (version, name, sql) in MIGRATIONS {
        if !applied.contains(version) {
            tx.batch_execute(sql)?;
            tx.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &[version, name])?;
            tracing::info!(version, name, "applied a store schema migration");
        }
    }
    tx.commit()?;
    Ok(())
}
