-- A bank's notification names the consent by the bank's id: find it without a scan.
CREATE INDEX consents_bank_id ON consents (provider_id, bank_consent_id);
