//! Export (one consistent snapshot) and import (one transaction, into an empty database) for `runtrust store
//! migrate` (docs/design.md §15).

use postgres::{IsolationLevel, Transaction};

use super::{from_json, signed, to_json, unsigned, PgStore};
use crate::store::{Counters, Dump, StoreError};

/// Every row of `sql`'s first column, decoded.
fn all<T: serde::de::DeserializeOwned>(tx: &mut Transaction<'_>, what: &str, sql: &str) -> Result<Vec<T>, StoreError> {
    tx.query(sql, &[])?.iter().map(|r| from_json(what, &r.try_get::<_, String>(0)?)).collect()
}

fn counter(tx: &mut Transaction<'_>, name: &str) -> Result<u64, StoreError> {
    unsigned(tx.query_one("SELECT value FROM counters WHERE name = $1", &[&name])?.try_get(0)?)
}

impl PgStore {
    pub(super) fn dump(&self) -> Result<Dump, StoreError> {
        let mut conn = self.conn()?;
        let mut tx =
            conn.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start()?;
        let mut principal_hosts = Vec::new();
        for r in tx.query("SELECT principal_id, host_id FROM principal_hosts ORDER BY principal_id", &[])? {
            let host: String = r.try_get(1)?;
            let host = host.parse().map_err(|e: crate::model::IdError| StoreError::Corrupt {
                key: "principal_hosts".into(),
                detail: e.to_string(),
            })?;
            principal_hosts.push((r.try_get(0)?, host));
        }
        let pairs = |tx: &mut Transaction<'_>, sql: &str| -> Result<Vec<(String, u64)>, StoreError> {
            tx.query(sql, &[])?.iter().map(|r| Ok((r.try_get(0)?, unsigned(r.try_get(1)?)?))).collect()
        };
        let used_nonces = pairs(&mut tx, "SELECT nonce, expires_at FROM used_nonces ORDER BY nonce")?;
        let revoked = pairs(&mut tx, "SELECT key, seq FROM revoked ORDER BY key")?;
        let mut audit = Vec::new();
        for r in tx.query("SELECT idx, entry FROM audit ORDER BY idx", &[])? {
            audit.push((unsigned(r.try_get(0)?)?, from_json("audit", &r.try_get::<_, String>(1)?)?));
        }
        let dump = Dump {
            principals: all(&mut tx, "principals", "SELECT record FROM principals ORDER BY id")?,
            hosts: all(&mut tx, "hosts", "SELECT record FROM hosts ORDER BY host_id")?,
            principal_hosts,
            enrollments: all(&mut tx, "enrollments", "SELECT record FROM enrollments ORDER BY id")?,
            policies: all(&mut tx, "policies", "SELECT record FROM policies ORDER BY id")?,
            challenges: all(&mut tx, "challenges", "SELECT record FROM challenges ORDER BY nonce")?,
            used_nonces,
            tokens: all(&mut tx, "tokens", "SELECT record FROM tokens ORDER BY cti")?,
            revocations: all(&mut tx, "revocations", "SELECT record FROM revocations ORDER BY seq")?,
            revoked,
            executions: all(&mut tx, "executions", "SELECT record FROM executions ORDER BY cti, id")?,
            audit,
            counters: Counters {
                audit_next: counter(&mut tx, "audit_next")?,
                revocation_next: counter(&mut tx, "revocation_next")?,
                policies_version: counter(&mut tx, "policies_version")?,
            },
        };
        tx.commit()?;
        Ok(dump)
    }

    pub(super) fn load(&self, d: &Dump) -> Result<(), StoreError> {
        d.check_audit()?;
        self.write(|tx| {
            // The audit counter row, locked first: no other writer interleaves with the import.
            let next: i64 =
                tx.query_one("SELECT value FROM counters WHERE name = 'audit_next' FOR UPDATE", &[])?.try_get(0)?;
            let empty = "SELECT NOT EXISTS (SELECT 1 FROM principals) AND NOT EXISTS (SELECT 1 FROM hosts)
                         AND NOT EXISTS (SELECT 1 FROM principal_hosts) AND NOT EXISTS (SELECT 1 FROM enrollments)
                         AND NOT EXISTS (SELECT 1 FROM policies) AND NOT EXISTS (SELECT 1 FROM challenges)
                         AND NOT EXISTS (SELECT 1 FROM used_nonces) AND NOT EXISTS (SELECT 1 FROM tokens)
                         AND NOT EXISTS (SELECT 1 FROM revocations) AND NOT EXISTS (SELECT 1 FROM revoked)
                         AND NOT EXISTS (SELECT 1 FROM executions) AND NOT EXISTS (SELECT 1 FROM audit)";
            if next != 0 || !tx.query_one(empty, &[])?.try_get::<_, bool>(0)? {
                return Err(StoreError::Conflict("the target store is not empty".into()));
            }
            let st =
                tx.prepare("INSERT INTO principals (id, name, record, tags, created_by) VALUES ($1, $2, $3, $4, $5)")?;
            for p in &d.principals {
                tx.execute(&st, &[&p.id, &p.name, &to_json(p)?, &p.tags, &p.created_by])?;
            }
            let st = tx.prepare("INSERT INTO hosts (host_id, ak_name, record) VALUES ($1, $2, $3)")?;
            for h in &d.hosts {
                tx.execute(&st, &[&h.host_id.as_str(), &h.ak_name, &to_json(h)?])?;
            }
            let st = tx.prepare("INSERT INTO principal_hosts (principal_id, host_id) VALUES ($1, $2)")?;
            for (p, h) in &d.principal_hosts {
                tx.execute(&st, &[p, &h.as_str()])?;
            }
            let st =
                tx.prepare("INSERT INTO enrollments (id, principal_id, expires_at, record) VALUES ($1, $2, $3, $4)")?;
            for e in &d.enrollments {
                tx.execute(&st, &[&e.id, &e.principal_id, &signed(e.expires_at)?, &to_json(e)?])?;
            }
            let st = tx.prepare("INSERT INTO policies (id, record) VALUES ($1, $2)")?;
            for p in &d.policies {
                tx.execute(&st, &[&p.id, &to_json(p)?])?;
            }
            let st =
                tx.prepare("INSERT INTO challenges (nonce, principal_id, expires_at, record) VALUES ($1, $2, $3, $4)")?;
            for c in &d.challenges {
                tx.execute(&st, &[&c.nonce.to_hex(), &c.principal_id, &signed(c.expires_at)?, &to_json(c)?])?;
            }
            let st = tx.prepare("INSERT INTO used_nonces (nonce, expires_at) VALUES ($1, $2)")?;
            for (n, e) in &d.used_nonces {
                tx.execute(&st, &[n, &signed(*e)?])?;
            }
            let st = tx.prepare(
                "INSERT INTO tokens (cti, host_id, policy_hash, parent_cti, token_sha256, record)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )?;
            for t in &d.tokens {
                let values: [&(dyn postgres::types::ToSql + Sync); 6] =
                    [&t.cti, &t.host_id.as_str(), &t.policy_hash, &t.parent_cti, &t.token_sha256, &to_json(t)?];
                tx.execute(&st, &values)?;
            }
            // In seq order: a lift refers to the (earlier) revocation it lifted.
            let st = tx.prepare("INSERT INTO revocations (seq, record, lifts) VALUES ($1, $2, $3)")?;
            for r in &d.revocations {
                let lifts = r.lifts.map(signed).transpose()?;
                tx.execute(&st, &[&signed(r.seq)?, &to_json(r)?, &lifts])?;
            }
            let st = tx.prepare("INSERT INTO revoked (key, seq) VALUES ($1, $2)")?;
            for (k, s) in &d.revoked {
                tx.execute(&st, &[k, &signed(*s)?])?;
            }
            let st = tx.prepare("INSERT INTO executions (cti, id, record) VALUES ($1, $2, $3)")?;
            for e in &d.executions {
                tx.execute(&st, &[&e.cti, &e.id, &to_json(e)?])?;
            }
            let st = tx.prepare("INSERT INTO audit (idx, entry) VALUES ($1, $2)")?;
            for (i, e) in &d.audit {
                tx.execute(&st, &[&signed(*i)?, &to_json(e)?])?;
            }
            let c = d.counters;
            let st = tx.prepare("UPDATE counters SET value = $2 WHERE name = $1")?;
            for (name, value) in [
                ("audit_next", c.audit_next),
                ("revocation_next", c.revocation_next),
                ("policies_version", c.policies_version),
            ] {
                tx.execute(&st, &[&name, &signed(value)?])?;
            }
            Ok(())
        })
    }
}
