//! Event payload parts built from what freshet holds: each event carries a snapshot of the
//! customer, provider, link and consent as they were, so every delivery renders from the
//! event alone.

use freshet_banks::Provider;
use freshet_model::{
    Customer,
    events::{
        ConsentDetail, ConsentSnapshot, CustomerSnapshot, LinkSnapshot, ProviderSnapshot,
        SubTaskSnapshot,
    },
    refresh::{Consent, Link, SubTask},
};

pub fn customer(c: &Customer) -> CustomerSnapshot {
    CustomerSnapshot {
        id: c.id.to_string(),
        external_id: c.external_id.clone(),
        login_name: c.login_name.clone(),
        personal_tax_id: c.personal_tax_id.clone(),
        business_tax_id: c.business_tax_id.clone(),
        external_info: c.external_info.clone(),
    }
}

pub fn provider(p: &Provider) -> ProviderSnapshot {
    ProviderSnapshot {
        id: p.id.clone(),
        name: p.name.clone(),
        code: p.code.clone(),
        numeric_id: p.numeric_id,
    }
}

/// A provider freshet no longer knows (removed from configuration): its id is all there is.
pub fn unknown_provider(id: &str) -> ProviderSnapshot {
    ProviderSnapshot {
        id: id.to_string(),
        name: id.to_string(),
        code: id.to_string(),
        numeric_id: 0,
    }
}

pub fn link(l: &Link) -> LinkSnapshot {
    LinkSnapshot {
        id: l.id.to_string(),
        number: l.number,
        created_at: l.created_at,
    }
}

pub fn consent(c: &Consent) -> ConsentSnapshot {
    ConsentSnapshot {
        id: c.id.to_string(),
        status: c.status,
        permissions_requested: c.permissions_requested.clone(),
        permissions_granted: c.permissions_granted.clone(),
        expires_at: c.expires_at,
        external_track_id: c.external_track_id.clone(),
        reconnect_required: c.reconnect_required,
    }
}

pub fn sub_task(
    s: &SubTask,
    provider: ProviderSnapshot,
    link: LinkSnapshot,
    consent: &Consent,
) -> SubTaskSnapshot {
    SubTaskSnapshot {
        task_id: s.id.to_string(),
        provider,
        link,
        status: s.status,
        result: s.result,
        reconnect_required: s.reconnect_required,
        has_new_transactions: s.has_new_transactions,
        account_ids: s.account_ids.iter().map(|a| a.to_string()).collect(),
        consent_ids: vec![consent.id.to_string()],
        consent_details: Some(vec![ConsentDetail {
            id: consent.id.to_string(),
            expiration_date: consent.expires_at,
        }]),
        request_id: format!("{}-{}", s.id, s.attempts),
        last_updated: consent.last_refreshed_at,
        last_update_attempt: s.finished_at.or(s.started_at),
    }
}
