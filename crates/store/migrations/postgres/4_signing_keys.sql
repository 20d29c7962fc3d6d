-- The keys Bud-dialect deliveries are signed with (ES256), shared by every node of a database.
-- The key with the highest generation signs; older ones stay published in the JWKS until
-- retires_at. Generation 1 is the key made at first start: its UNIQUE slot lets several nodes
-- starting at once race to create it and end with one.

CREATE TABLE signing_keys (
    generation BIGINT PRIMARY KEY,
    kid TEXT NOT NULL UNIQUE,
    algorithm TEXT NOT NULL,        -- ES256
    private_key BYTEA NOT NULL,     -- PKCS#8
    created_at TIMESTAMPTZ NOT NULL,
    retires_at TIMESTAMPTZ          -- NULL while it is the signing key
);
