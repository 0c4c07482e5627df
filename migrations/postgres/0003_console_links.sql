-- 0003: one-time web console sign-in links (docs/design.md §17). The id is the SHA-256 of the link's code;
-- a sign-in deletes the row (single use across replicas), the sweep deletes expired ones.
CREATE TABLE console_links (
    id           TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL,
    expires_at   BIGINT NOT NULL,
    record       TEXT NOT NULL
);
CREATE INDEX console_links_by_expiry ON console_links (expires_at);
