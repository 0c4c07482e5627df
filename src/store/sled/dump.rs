//! Export and import of a whole sled store (`runtrust store migrate`, docs/design.md §15), and the token
//! indices by host and by policy built once for stores made before they existed.

use super::codec::{child_key, encode};
use super::{
    Challenge, Dump, ExecutionRecord, HostRecord, PendingEnrollment, Principal, Revocation, SledStore, Store,
    StoreError, StoredPolicy, TokenRecord, AUDIT_NEXT, POLICIES_VERSION, REVOCATION_NEXT,
};
use crate::store::Counters;

/// Key-value pairs for one tree's batch.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Set in the meta tree once host_tokens and policy_tokens cover every token.
const TOKEN_INDEX: &[u8] = b"token_index_v1";

fn u64_of(key: &[u8], v: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(v)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt { key: String::from_utf8_lossy(key).into_owned(), detail: "not a u64".into() })
}

fn text(key: &[u8], v: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(v.to_vec())
        .map_err(|e| StoreError::Corrupt { key: String::from_utf8_lossy(key).into_owned(), detail: e.to_string() })
}

impl SledStore {
    /// Builds the token indices by host and by policy if this store predates them.
    pub(super) fn index_tokens(&self) -> Result<(), StoreError> {
        if self.meta.get(TOKEN_INDEX)?.is_some() {
            return Ok(());
        }
        let (mut by_host, mut by_policy) = (sled::Batch::default(), sled::Batch::default());
        for t in Self::all::<TokenRecord>(&self.tokens)? {
            by_host.insert(child_key(&t.host_id, &t.cti), &[]);
            by_policy.insert(child_key(&t.policy_hash, &t.cti), &[]);
        }
        self.host_tokens.apply_batch(by_host)?;
        self.policy_tokens.apply_batch(by_policy)?;
        self.meta.insert(TOKEN_INDEX, &[])?;
        self.durable()
    }

    pub(super) fn dump(&self) -> Result<Dump, StoreError> {
        // Everything written so far durable, so that the audit read below (durable entries only) reaches the
        // counter.
        self.commit.durable_now()?;
        let pairs = |tree: &sled::Tree| -> Result<Vec<(sled::IVec, sled::IVec)>, StoreError> {
            tree.iter().map(|kv| kv.map_err(StoreError::from)).collect()
        };
        let mut principal_hosts = Vec::new();
        for (k, v) in pairs(&self.principal_hosts)? {
            let host = text(&k, &v)?.parse().map_err(|e: crate::model::IdError| StoreError::Corrupt {
                key: format!("principal_hosts/{}", String::from_utf8_lossy(&k)),
                detail: e.to_string(),
            })?;
            principal_hosts.push((text(&k, &k)?, host));
        }
        let mut used_nonces = Vec::new();
        for (k, v) in pairs(&self.used_nonces)? {
            used_nonces.push((text(&k, &k)?, u64_of(&k, &v)?));
        }
        let mut revoked = Vec::new();
        for (k, v) in pairs(&self.revoked)? {
            revoked.push((text(&k, &k)?, u64_of(&k, &v)?));
        }
        Ok(Dump {
            principals: Self::all::<Principal>(&self.principals)?,
            hosts: Self::all::<HostRecord>(&self.hosts)?,
            principal_hosts,
            enrollments: Self::all::<PendingEnrollment>(&self.enrollments)?,
            policies: Self::all::<StoredPolicy>(&self.policies)?,
            challenges: Self::all::<Challenge>(&self.challenges)?,
            used_nonces,
            tokens: Self::all::<TokenRecord>(&self.tokens)?,
            revocations: Self::all::<Revocation>(&self.revocations)?,
            revoked,
            executions: Self::all::<ExecutionRecord>(&self.executions)?,
            audit: self.audit(0, usize::MAX)?,
            counters: Counters {
                audit_next: self.counter(AUDIT_NEXT)?,
                revocation_next: self.counter(REVOCATION_NEXT)?,
                policies_version: self.counter(POLICIES_VERSION)?,
            },
        })
    }

    /// Writes `d` into this empty store, tree by tree, and flushes. Not one transaction: an import that
    /// fails half-way leaves a store that is not empty, which a second import refuses.
    pub(super) fn load(&self, d: &Dump) -> Result<(), StoreError> {
        d.check_audit()?;
        let trees = [
            &self.principals,
            &self.hosts,
            &self.principal_hosts,
            &self.enrollments,
            &self.policies,
            &self.challenges,
            &self.used_nonces,
            &self.tokens,
            &self.revocations,
            &self.revoked,
            &self.executions,
            &self.audit,
        ];
        if trees.iter().any(|t| !t.is_empty()) || self.counter(AUDIT_NEXT)? > 0 {
            return Err(StoreError::Conflict("the target store is not empty".into()));
        }
        let batch = |pairs: Pairs| {
            let mut b = sled::Batch::default();
            for (k, v) in pairs {
                b.insert(k, v);
            }
            b
        };
        let json = |k: &str, v: Result<Vec<u8>, StoreError>| v.map(|v| (k.as_bytes().to_vec(), v));
        let records = |tree: &sled::Tree, pairs: Result<Pairs, StoreError>| {
            tree.apply_batch(batch(pairs?)).map_err(StoreError::from)
        };
        records(&self.principals, d.principals.iter().map(|p| json(&p.id, encode(p))).collect())?;
        records(
            &self.principal_names,
            Ok(d.principals.iter().map(|p| (p.name.clone().into(), p.id.clone().into())).collect()),
        )?;
        records(&self.hosts, d.hosts.iter().map(|h| json(&h.host_id, encode(h))).collect())?;
        records(
            &self.ak_index,
            Ok(d.hosts.iter().map(|h| (h.ak_name.clone().into(), h.host_id.to_string().into())).collect()),
        )?;
        records(
            &self.principal_hosts,
            Ok(d.principal_hosts.iter().map(|(p, h)| (p.clone().into(), h.to_string().into())).collect()),
        )?;
        records(&self.enrollments, d.enrollments.iter().map(|e| json(&e.id, encode(e))).collect())?;
        records(&self.policies, d.policies.iter().map(|p| json(&p.id, encode(p))).collect())?;
        records(&self.challenges, d.challenges.iter().map(|c| json(&c.nonce.to_hex(), encode(c))).collect())?;
        // The owner indices behind the per-principal caps (docs/design.md §16).
        let owner = |principal: &str, item: &str, expires_at: u64| {
            (super::transient::owner_key(principal, item), expires_at.to_be_bytes().to_vec())
        };
        records(
            &self.challenge_owners,
            Ok(d.challenges.iter().map(|c| owner(&c.principal_id, &c.nonce.to_hex(), c.expires_at)).collect()),
        )?;
        records(
            &self.enrollment_owners,
            Ok(d.enrollments.iter().map(|e| owner(&e.principal_id, &e.id, e.expires_at)).collect()),
        )?;
        records(
            &self.used_nonces,
            Ok(d.used_nonces.iter().map(|(n, e)| (n.clone().into(), e.to_be_bytes().to_vec())).collect()),
        )?;
        records(&self.tokens, d.tokens.iter().map(|t| json(&t.cti, encode(t))).collect())?;
        let parented =
            d.tokens.iter().filter_map(|t| t.parent_cti.as_ref().map(|p| (child_key(p, &t.cti), Vec::new())));
        records(&self.children, Ok(parented.collect()))?;
        records(&self.host_tokens, Ok(d.tokens.iter().map(|t| (child_key(&t.host_id, &t.cti), Vec::new())).collect()))?;
        records(
            &self.policy_tokens,
            Ok(d.tokens.iter().map(|t| (child_key(&t.policy_hash, &t.cti), Vec::new())).collect()),
        )?;
        let seq = |r: &Revocation| encode(r).map(|v| (r.seq.to_be_bytes().to_vec(), v));
        records(&self.revocations, d.revocations.iter().map(seq).collect())?;
        records(
            &self.revoked,
            Ok(d.revoked.iter().map(|(k, s)| (k.clone().into(), s.to_be_bytes().to_vec())).collect()),
        )?;
        let exec = |e: &ExecutionRecord| encode(e).map(|v| (format!("{}/{}", e.cti, e.id).into_bytes(), v));
        records(&self.executions, d.executions.iter().map(exec).collect())?;
        records(&self.audit, d.audit.iter().map(|(i, e)| encode(e).map(|v| (i.to_be_bytes().to_vec(), v))).collect())?;
        let c = d.counters;
        let counters =
            [(AUDIT_NEXT, c.audit_next), (REVOCATION_NEXT, c.revocation_next), (POLICIES_VERSION, c.policies_version)];
        let mut meta: Pairs = counters.iter().map(|(k, v)| (k.to_vec(), v.to_be_bytes().to_vec())).collect();
        meta.push((TOKEN_INDEX.to_vec(), Vec::new()));
        records(&self.meta, Ok(meta))?;
        self.durable()?;
        // Decoding what was written checks the round trip before anyone relies on it.
        let back = self.dump()?;
        if back.audit.len() != d.audit.len() || back.tokens.len() != d.tokens.len() {
            let detail = "the imported store does not read back as written".into();
            return Err(StoreError::Corrupt { key: "import".into(), detail });
        }
        Ok(())
    }
}
