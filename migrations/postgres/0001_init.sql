-- The runtrust store on PostgreSQL (docs/design.md §12, §15). Records are JSON text, exactly as the embedded
-- store keeps them; the columns beside them are what queries and constraints need.
-- Applied once, in a transaction, under an advisory lock; recorded in schema_migrations.

-- Dense counters: the audit index, the revocation seq, the policies version. A transaction that appends to the
-- audit log locks the audit_next row until it commits, so indices are dense and follow commit order.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL CHECK (value >= 0)
);
INSERT INTO counters (name, value) VALUES ('audit_next', 0), ('revocation_next', 0), ('policies_version', 0);

CREATE TABLE principals (
    id     TEXT PRIMARY KEY,
    name   TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL
);

CREATE TABLE hosts (
    host_id TEXT PRIMARY KEY,
    ak_name TEXT NOT NULL UNIQUE,
    record  TEXT NOT NULL
);

-- An attester credential enrolls one TPM.
CREATE TABLE principal_hosts (
    principal_id TEXT PRIMARY KEY,
    host_id      TEXT NOT NULL
);

CREATE TABLE enrollments (
    id     TEXT PRIMARY KEY,
    record TEXT NOT NULL
);

CREATE TABLE policies (
    id     TEXT PRIMARY KEY,
    record TEXT NOT NULL
);

CREATE TABLE challenges (
    nonce  TEXT PRIMARY KEY,
    record TEXT NOT NULL
);

CREATE TABLE used_nonces (
    nonce      TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

CREATE TABLE tokens (
    cti         TEXT PRIMARY KEY,
    host_id     TEXT NOT NULL,
    policy_hash TEXT NOT NULL,
    parent_cti  TEXT,
    record      TEXT NOT NULL
);
-- Revocation by host and by policy, and the delegation tree, without a scan.
CREATE INDEX tokens_by_host ON tokens (host_id, cti);
CREATE INDEX tokens_by_policy ON tokens (policy_hash, cti);
CREATE INDEX tokens_by_parent ON tokens (parent_cti, cti) WHERE parent_cti IS NOT NULL;

CREATE TABLE revocations (
    seq    BIGINT PRIMARY KEY,
    record TEXT NOT NULL
);

-- The revoked index: `token:CTI`, `host:ID`, `policy:HASH` → the revocation that explains it.
CREATE TABLE revoked (
    key TEXT PRIMARY KEY,
    seq BIGINT NOT NULL REFERENCES revocations (seq)
);

CREATE TABLE executions (
    cti    TEXT NOT NULL,
    id     TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (cti, id)
);

CREATE TABLE audit (
    idx   BIGINT PRIMARY KEY CHECK (idx >= 0),
    entry TEXT NOT NULL
);
