//! The Store trait on PostgreSQL: each mutation one transaction (docs/design.md §15). Linearizable nonce
//! consumption (DELETE … RETURNING), single-use spending (the token row locked FOR UPDATE), revocations that
//! exclude execution starts (an advisory lock), dense audit indices (the audit_next row). Host records and
//! what expires (challenges, pending enrollments, used nonces) are in hosts.rs and transient.rs.

use runtrust_attestation::ClockInfo;

use super::{append, bump, from_json, limit, signed, to_json, unsigned, PgStore, REVOCATION_LOCK};
use crate::store::{
    Admission, AttestedState, AuditEntry, Cap, Challenge, ConsoleLink, Dump, EnrollOutcome, ExecStart, ExecutionEnd,
    ExecutionRecord, HostId, HostRecord, Joined, Nonce, NonceState, PendingEnrollment, Principal, Revocation, Store,
    StoreError, StoredPolicy, Swept, TokenRecord,
};

impl Store for PgStore {
    fn add_principal(&self, p: &Principal, entry: &AuditEntry) -> Result<(), StoreError> {
        let record = to_json(p)?;
        self.write(|tx| {
            let sql = "INSERT INTO principals (id, name, record, tags, created_by) VALUES ($1, $2, $3, $4, $5)
                       ON CONFLICT DO NOTHING";
            match tx.execute(sql, &[&p.id, &p.name, &record, &p.tags, &p.created_by])? {
                0 => Err(StoreError::Conflict(format!("principal {:?} exists", p.name))),
                _ => append(tx, entry).map(drop),
            }
        })
    }

    fn principal(&self, id: &str) -> Result<Option<Principal>, StoreError> {
        self.record("principals", "SELECT record FROM principals WHERE id = $1", &[&id])
    }

    fn principals(&self) -> Result<Vec<Principal>, StoreError> {
        self.records("principals", "SELECT record FROM principals ORDER BY id", &[])
    }

    fn remove_principal(&self, name: &str, entry: &AuditEntry) -> Result<bool, StoreError> {
        self.write(|tx| {
            if tx.execute("DELETE FROM principals WHERE name = $1", &[&name])? == 0 {
                return Ok(false);
            }
            append(tx, entry)?;
            Ok(true)
        })
    }

    fn rotate_principal(
        &self,
        name: &str,
        secret_sha256: &str,
        entry: &AuditEntry,
    ) -> Result<Option<Principal>, StoreError> {
        self.write(|tx| {
            let Some(row) = tx.query_opt("SELECT record FROM principals WHERE name = $1 FOR UPDATE", &[&name])? else {
                return Ok(None);
            };
            let mut p: Principal = from_json("principals", &row.try_get::<_, String>(0)?)?;
            p.secret_sha256 = secret_sha256.to_owned();
            tx.execute("UPDATE principals SET record = $2 WHERE id = $1", &[&p.id, &to_json(&p)?])?;
            append(tx, entry)?;
            Ok(Some(p))
        })
    }

    fn put_enrollment(&self, e: &PendingEnrollment, cap: Cap) -> Result<Admission, StoreError> {
        self.put_enrollment_capped(e, cap)
    }

    fn put_console_link(&self, link: &ConsoleLink, entry: &AuditEntry) -> Result<(), StoreError> {
        let record = to_json(link)?;
        self.write(|tx| {
            let sql = "INSERT INTO console_links (id, principal_id, expires_at, record) VALUES ($1, $2, $3, $4)";
            tx.execute(sql, &[&link.id, &link.principal_id, &signed(link.expires_at)?, &record])?;
            append(tx, entry)?;
            Ok(())
        })
    }

    fn take_console_link(&self, id: &str) -> Result<Option<ConsoleLink>, StoreError> {
        // The row lock makes a concurrent take wait, then find no row.
        let row =
            self.write(|tx| Ok(tx.query_opt("DELETE FROM console_links WHERE id = $1 RETURNING record", &[&id])?))?;
        row.map(|r| from_json("console_links", &r.try_get::<_, String>(0)?)).transpose()
    }

    fn take_enrollment(&self, id: &str) -> Result<Option<PendingEnrollment>, StoreError> {
        let row =
            self.write(|tx| Ok(tx.query_opt("DELETE FROM enrollments WHERE id = $1 RETURNING record", &[&id])?))?;
        row.map(|r| from_json("enrollments", &r.try_get::<_, String>(0)?)).transpose()
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
        let row =
            self.conn()?.query_opt("SELECT host_id FROM principal_hosts WHERE principal_id = $1", &[&principal_id])?;
        let Some(row) = row else { return Ok(None) };
        let text: String = row.try_get(0)?;
        text.parse().map(Some).map_err(|e: crate::model::IdError| StoreError::Corrupt {
            key: format!("principal_hosts/{principal_id}"),
            detail: e.to_string(),
        })
    }

    fn host(&self, host_id: &str) -> Result<Option<HostRecord>, StoreError> {
        self.record("hosts", "SELECT record FROM hosts WHERE host_id = $1", &[&host_id])
    }

    fn host_by_ak(&self, ak_name: &str) -> Result<Option<HostRecord>, StoreError> {
        self.record("hosts", "SELECT record FROM hosts WHERE ak_name = $1", &[&ak_name])
    }

    fn hosts(&self) -> Result<Vec<HostRecord>, StoreError> {
        self.records("hosts", "SELECT record FROM hosts ORDER BY host_id", &[])
    }

    fn set_host_tags(
        &self,
        host_id: &str,
        tags: &[String],
        entry: &AuditEntry,
    ) -> Result<Option<HostRecord>, StoreError> {
        self.update_host(host_id, entry, |h| {
            h.tags = tags.to_vec();
            h.updated_at = entry.time;
        })
        .map(|updated| updated.map(|(_, after)| after))
    }

    fn remove_host(&self, host_id: &str, entry: &AuditEntry) -> Result<Option<HostRecord>, StoreError> {
        self.remove_host_tx(host_id, entry)
    }

    fn rebaseline_host(&self, host_id: &str, entry: &AuditEntry) -> Result<Option<ClockInfo>, StoreError> {
        self.update_host(host_id, entry, |h| h.last_clock = ClockInfo::default())
            .map(|updated| updated.map(|(before, _)| before.last_clock))
    }

    fn put_policy(&self, p: &StoredPolicy, entry: &AuditEntry) -> Result<u64, StoreError> {
        let record = to_json(p)?;
        self.write(|tx| {
            let sql = "INSERT INTO policies (id, record) VALUES ($1, $2)
                       ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record";
            tx.execute(sql, &[&p.id, &record])?;
            bump(tx, "policies_version")?;
            append(tx, entry)
        })
    }

    fn policies(&self) -> Result<Vec<StoredPolicy>, StoreError> {
        self.records("policies", "SELECT record FROM policies ORDER BY id", &[])
    }

    fn policies_version(&self) -> Result<u64, StoreError> {
        self.counter("policies_version")
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
        self.write(|tx| {
            if let Some(row) = tx.query_opt("SELECT record FROM hosts WHERE host_id = $1 FOR UPDATE", &[&host_id])? {
                let mut h: HostRecord = from_json("hosts", &row.try_get::<_, String>(0)?)?;
                // Concurrent requests of one host may be appraised out of TPM order (docs/design.md §14
                // batches): the host keeps its latest clock and the state quoted then, as on sled. The row
                // lock above orders concurrent issuances of one host.
                if runtrust_attestation::clock::not_earlier(clock, &h.last_clock) {
                    h.last_clock = *clock;
                    h.last_attested = Some(attested.clone());
                    tx.execute("UPDATE hosts SET record = $2 WHERE host_id = $1", &[&host_id, &to_json(&h)?])?;
                }
            }
            let index = append(tx, entry)?;
            let record = TokenRecord { audit_index: index, ..token.clone() };
            let sql = "INSERT INTO tokens (cti, host_id, policy_hash, parent_cti, token_sha256, record)
                       VALUES ($1, $2, $3, $4, $5, $6)";
            tx.execute(
                sql,
                &[
                    &record.cti,
                    &record.host_id.as_str(),
                    &record.policy_hash,
                    &record.parent_cti,
                    &record.token_sha256,
                    &to_json(&record)?,
                ],
            )?;
            Ok(index)
        })
    }

    fn token(&self, cti: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.record("tokens", "SELECT record FROM tokens WHERE cti = $1", &[&cti])
    }

    fn children(&self, cti: &str) -> Result<Vec<String>, StoreError> {
        let rows = self.conn()?.query("SELECT cti FROM tokens WHERE parent_cti = $1 ORDER BY cti", &[&cti])?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.records("tokens", "SELECT record FROM tokens ORDER BY cti", &[])
    }

    fn tokens_by_host(&self, host_id: &str, n: usize) -> Result<Vec<String>, StoreError> {
        let sql = "SELECT cti FROM tokens WHERE host_id = $1 ORDER BY cti LIMIT $2";
        self.conn()?.query(sql, &[&host_id, &limit(n)])?.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    fn tokens_by_policy(&self, policy_hash: &str, n: usize) -> Result<Vec<String>, StoreError> {
        let sql = "SELECT cti FROM tokens WHERE policy_hash = $1 ORDER BY cti LIMIT $2";
        self.conn()?.query(sql, &[&policy_hash, &limit(n)])?.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    fn revoke(&self, r: &Revocation, entry: &AuditEntry) -> Result<Revocation, StoreError> {
        self.write(|tx| {
            // Waits for every execution start in flight; none begins until this commits (docs/design.md §15).
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&REVOCATION_LOCK])?;
            let seq = bump(tx, "revocation_next")?;
            let audit_index = append(tx, entry)?;
            let record = Revocation { seq, audit_index, ..r.clone() };
            let lifts = record.lifts.map(signed).transpose()?;
            tx.execute(
                "INSERT INTO revocations (seq, record, lifts) VALUES ($1, $2, $3)",
                &[&signed(seq)?, &to_json(&record)?, &lifts],
            )?;
            // The first revocation of a key stays the one that explains it.
            let sql = "INSERT INTO revoked (key, seq) SELECT DISTINCT k, $2::BIGINT FROM unnest($1::TEXT[]) AS k
                       ON CONFLICT (key) DO NOTHING";
            tx.execute(sql, &[&record.keys(), &signed(seq)?])?;
            Ok(record)
        })
    }

    fn unrevoke_host(&self, lift: &Revocation, entry: &AuditEntry) -> Result<Option<Revocation>, StoreError> {
        self.unrevoke_host_tx(lift, entry)
    }

    fn revoked(&self, key: &str) -> Result<Option<Revocation>, StoreError> {
        let sql = "SELECT r.record FROM revoked k JOIN revocations r ON r.seq = k.seq WHERE k.key = $1";
        self.record("revocations", sql, &[&key])
    }

    fn revocations(&self, since: u64, n: usize) -> Result<Vec<Revocation>, StoreError> {
        let sql = "SELECT record FROM revocations WHERE seq >= $1 ORDER BY seq LIMIT $2";
        self.records("revocations", sql, &[&signed(since)?, &limit(n)])
    }

    fn start_execution(
        &self,
        e: &ExecutionRecord,
        single_use: bool,
        revoked_keys: &[String],
        entry: &AuditEntry,
    ) -> Result<ExecStart, StoreError> {
        self.write(|tx| {
            // Shared: starts run together; a revocation in flight makes this wait for its commit, and the
            // revoked index read below then sees it (READ COMMITTED: a new snapshot per statement).
            tx.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&REVOCATION_LOCK])?;
            let sql = if single_use {
                "SELECT record FROM tokens WHERE cti = $1 FOR UPDATE"
            } else {
                "SELECT record FROM tokens WHERE cti = $1"
            };
            let Some(row) = tx.query_opt(sql, &[&e.cti])? else { return Ok(ExecStart::UnknownToken) };
            let mut token: TokenRecord = from_json("tokens", &row.try_get::<_, String>(0)?)?;
            if !revoked_keys.is_empty() {
                let sql = "SELECT k.key, r.record FROM revoked k JOIN revocations r ON r.seq = k.seq
                           WHERE k.key = ANY($1::TEXT[]) ORDER BY array_position($1::TEXT[], k.key) LIMIT 1";
                if let Some(hit) = tx.query_opt(sql, &[&revoked_keys])? {
                    let revocation = from_json("revocations", &hit.try_get::<_, String>(1)?)?;
                    return Ok(ExecStart::Revoked { key: hit.try_get(0)?, revocation });
                }
            }
            if single_use {
                if let Some(consumed_at) = token.consumed_at {
                    return Ok(ExecStart::Replayed { consumed_at });
                }
                token.consumed_at = Some(e.started_at);
                tx.execute("UPDATE tokens SET record = $2 WHERE cti = $1", &[&e.cti, &to_json(&token)?])?;
            }
            let start_audit_index = append(tx, entry)?;
            let record = ExecutionRecord { start_audit_index, ..e.clone() };
            tx.execute(
                "INSERT INTO executions (cti, id, record) VALUES ($1, $2, $3)",
                &[&e.cti, &e.id, &to_json(&record)?],
            )?;
            Ok(ExecStart::Started(record))
        })
    }

    fn end_execution(
        &self,
        cti: &str,
        id: &str,
        end: &ExecutionEnd,
        entry: &AuditEntry,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        self.write(|tx| {
            let sql = "SELECT record FROM executions WHERE cti = $1 AND id = $2 FOR UPDATE";
            let Some(row) = tx.query_opt(sql, &[&cti, &id])? else { return Ok(None) };
            let mut record: ExecutionRecord = from_json("executions", &row.try_get::<_, String>(0)?)?;
            if record.end.is_some() {
                return Err(StoreError::Conflict(format!("execution {id} has already ended")));
            }
            let audit_index = append(tx, entry)?;
            record.end = Some(ExecutionEnd { audit_index, ..end.clone() });
            let sql = "UPDATE executions SET record = $3 WHERE cti = $1 AND id = $2";
            tx.execute(sql, &[&cti, &id, &to_json(&record)?])?;
            Ok(Some(record))
        })
    }

    fn executions(&self, cti: &str) -> Result<Vec<ExecutionRecord>, StoreError> {
        let mut all: Vec<ExecutionRecord> =
            self.records("executions", "SELECT record FROM executions WHERE cti = $1", &[&cti])?;
        all.sort_by_key(|e| (e.started_at, e.start_audit_index));
        Ok(all)
    }

    fn append_audit(&self, entry: &AuditEntry) -> Result<u64, StoreError> {
        self.write(|tx| append(tx, entry))
    }

    /// Committed entries only: a commit is durable, and the audit_next row lock makes commits follow index
    /// order, so what a reader sees is a dense prefix.
    fn audit(&self, from: u64, n: usize) -> Result<Vec<(u64, AuditEntry)>, StoreError> {
        let sql = "SELECT idx, entry FROM audit WHERE idx >= $1 ORDER BY idx LIMIT $2";
        let rows = self.conn()?.query(sql, &[&signed(from)?, &limit(n)])?;
        rows.iter().map(|r| Ok((unsigned(r.try_get(0)?)?, from_json("audit", &r.try_get::<_, String>(1)?)?))).collect()
    }

    fn audit_len(&self) -> Result<u64, StoreError> {
        self.counter("audit_next")
    }

    fn revocations_len(&self) -> Result<u64, StoreError> {
        self.counter("revocation_next")
    }

    /// Every write is committed (durable) before it returns: nothing to flush.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// A committed write to the probe row, which no record, length or read shows.
    fn probe(&self) -> Result<(), StoreError> {
        self.write(|tx| {
            let sql =
                "INSERT INTO probe (id, value) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET value = probe.value + 1";
            tx.execute(sql, &[])?;
            Ok(())
        })
    }

    /// Commits: each is its own durable write (PostgreSQL groups their WAL flushes).
    fn flushes(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn export(&self) -> Result<Dump, StoreError> {
        self.dump()
    }

    fn import(&self, d: &Dump) -> Result<(), StoreError> {
        self.load(d)
    }
}
