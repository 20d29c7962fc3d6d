-- The data keys that seal secret columns (bank tokens, authorisation contexts, webhook secrets,
-- security headers, signing keys), each stored only wrapped by the operator's master key,
-- which the database never holds. One row per data key and master key wrapping it: a rotation
-- adds the new master key's rows and removes the old one's in one transaction.
CREATE TABLE keys (
    id TEXT NOT NULL,               -- the data key's id, named in every value it sealed
    master TEXT NOT NULL,           -- fingerprint of the master key that wrapped it
    wrapped TEXT NOT NULL,          -- base64 of nonce, AES-256-GCM ciphertext and tag
    created_at INTEGER NOT NULL,
    PRIMARY KEY (id, master)
);
