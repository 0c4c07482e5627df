-- 0002: the records as they are since per-principal caps, sweeping, lifted host revocations, principal tags
-- and token digests (docs/design.md §5, §11, §12, §16). Records stay JSON text; the columns added here are
-- what queries and constraints need, filled from the records already stored so that a store written by an
-- older runtrust carries on. Applied once, in a transaction, under an advisory lock; recorded in
-- schema_migrations.

-- Principals: the tags an attester confers, and who created it.
ALTER TABLE principals
    ADD COLUMN tags       TEXT[] NOT NULL DEFAULT '{}',
    ADD COLUMN created_by TEXT;
UPDATE principals SET
    tags = ARRAY(SELECT jsonb_array_elements_text(COALESCE(record::jsonb -> 'tags', '[]'::jsonb))),
    created_by = record::jsonb ->> 'created_by';

-- Challenges and pending enrollments by owner and expiry: the per-principal caps count the unexpired ones,
-- and the sweep removes the expired ones, without decoding a record.
ALTER TABLE challenges
    ADD COLUMN principal_id TEXT NOT NULL DEFAULT '',
    ADD COLUMN expires_at   BIGINT NOT NULL DEFAULT 0;
UPDATE challenges SET
    principal_id = record::jsonb ->> 'principal_id',
    expires_at = (record::jsonb ->> 'expires_at')::BIGINT;
ALTER TABLE challenges ALTER COLUMN principal_id DROP DEFAULT, ALTER COLUMN expires_at DROP DEFAULT;
CREATE INDEX challenges_by_owner ON challenges (principal_id, expires_at);
CREATE INDEX challenges_by_expiry ON challenges (expires_at);

ALTER TABLE enrollments
    ADD COLUMN principal_id TEXT NOT NULL DEFAULT '',
    ADD COLUMN expires_at   BIGINT NOT NULL DEFAULT 0;
UPDATE enrollments SET
    principal_id = record::jsonb ->> 'principal_id',
    expires_at = (record::jsonb ->> 'expires_at')::BIGINT;
ALTER TABLE enrollments ALTER COLUMN principal_id DROP DEFAULT, ALTER COLUMN expires_at DROP DEFAULT;
CREATE INDEX enrollments_by_owner ON enrollments (principal_id, expires_at);
CREATE INDEX enrollments_by_expiry ON enrollments (expires_at);

-- Used nonces are swept once their challenge's expiry has passed.
CREATE INDEX used_nonces_by_expiry ON used_nonces (expires_at);

-- Tokens: the SHA-256 of the token's bytes (a token is on record byte for byte; NULL for a record made
-- before it was kept, which refuses that token).
ALTER TABLE tokens ADD COLUMN token_sha256 TEXT;
UPDATE tokens SET token_sha256 = record::jsonb ->> 'token_sha256';

-- Revocations: a lift (kind unrevoke) names the seq of the host revocation it lifted. The revoked index keeps
-- the latest lift per host under `unrevoke:HOST` (see lift_key).
ALTER TABLE revocations ADD COLUMN lifts BIGINT REFERENCES revocations (seq);
UPDATE revocations SET lifts = (record::jsonb ->> 'lifts')::BIGINT WHERE record::jsonb ? 'lifts';

-- The readiness probe's durable write (docs/design.md §16): no record reads it.
CREATE TABLE probe (
    id    INT PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
