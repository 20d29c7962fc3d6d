-- What a consent's authorisation request must remember until the customer comes back (the
-- ID token's nonce, the PKCE verifier), and when the customer authorised it (OBIE's
-- x-fapi-auth-date).
ALTER TABLE consents ADD COLUMN auth_context TEXT;
ALTER TABLE consents ADD COLUMN authorised_at INTEGER;
