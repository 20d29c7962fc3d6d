//! Erasure: what "delete everything about this customer" removes, and how a stored event
//! payload loses what it knew about a person.
//!
//! Events are never deleted by an erasure: the log and the delivery history of an application
//! must stay whole (ids, types, times, which endpoint got what). Only the personal fields inside
//! their payloads are replaced. The rules live here, in the pure crate, so that they can be
//! tested against every payload type without a database.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What an erasure removed, kind by kind: the answer of `DELETE /v1/customers/{id}` and the
/// payload of `customer.erased`. Counts only: nothing here names the person.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErasedCounts {
    /// Consents deleted (with their links' history).
    pub consents: u64,
    /// Consents the bank confirmed it revoked.
    pub consents_revoked_at_bank: u64,
    /// Consents whose bank could not be reached or refused: deleted here all the same.
    pub bank_revocations_failed: u64,
    /// Bank access and refresh tokens deleted.
    pub tokens: u64,
    pub links: u64,
    pub accounts: u64,
    pub transactions: u64,
    pub refresh_tasks: u64,
    pub product_requests: u64,
    /// Data products (results of product requests) deleted.
    pub products: u64,
    /// Stored events whose payload had personal fields replaced; the events themselves stay.
    pub events_scrubbed: u64,
    /// Deliveries not yet sent that will now never be.
    pub deliveries_cancelled: u64,
    /// Receivers' answers (response excerpts) dropped from the attempt log.
    pub attempt_excerpts: u64,
}

/// `customer.erased`: a customer's data was erased at the client's request. It carries the
/// customer's id (freshet's random UUID, which the client already holds) and counts, nothing
/// else.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomerErased {
    pub customer_id: String,
    pub removed: ErasedCounts,
}

/// Fields of a payload object that hold personal data apart from the customer snapshot, by the
/// object's key in the payload: a consent's `external_track_id` (the client's own reference,
/// often its customer number), a product request's `tax_id` (Klavi's `requestBody.taxId`).
const PERSONAL: &[(&str, &str)] = &[("consent", "external_track_id"), ("request", "tax_id")];

/// Replaces every personal field of a stored event payload with `null`; returns whether it
/// changed anything. The customer snapshot keeps only its `id`: every other field of it is
/// about the person (`external_id`, `login_name`, the tax ids, `external_info`, and whatever
/// a later version adds). Works on the stored JSON rather than the typed payload so that
/// payloads written by older versions, and fields this version does not know, are covered too.
pub fn erase_personal(data: &mut Value) -> bool {
    let mut changed = false;
    if let Some(customer) = data.get_mut("customer").and_then(Value::as_object_mut) {
        for (key, value) in customer.iter_mut() {
            if key != "id" && !value.is_null() {
                *value = Value::Null;
                changed = true;
            }
        }
    }
    for (object, field) in PERSONAL {
        if let Some(value) = data.get_mut(*object).and_then(|o| o.get_mut(*field))
            && !value.is_null()
        {
            *value = Value::Null;
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;
    use time::macros::datetime;

    use super::*;
    use crate::{
        ConsentStatus, EventType,
        events::{
            ConsentChanged, ConsentSnapshot, CustomerSnapshot, EventData, LinkCreated,
            LinkSnapshot, ProductEvent, ProductRequestSnapshot, ProviderSnapshot,
        },
    };

    const SECRETS: [&str; 6] = [
        "ext-7781",
        "fri21",
        "123.456.789-09",
        "12.345.678/0001-95",
        "vip-lounge",
        "track-5521",
    ];

    fn person() -> CustomerSnapshot {
        let info = json!({"segment": "vip-lounge"});
        CustomerSnapshot {
            id: "c1".into(),
            external_id: Some(SECRETS[0].into()),
            login_name: Some(SECRETS[1].into()),
            personal_tax_id: Some(SECRETS[2].into()),
            business_tax_id: Some(SECRETS[3].into()),
            external_info: info.as_object().cloned(),
        }
    }

    fn link() -> LinkSnapshot {
        LinkSnapshot {
            id: "l1".into(),
            number: 7,
            created_at: datetime!(2026-12-01 10:00 UTC),
        }
    }

    /// Every payload type that holds a person, with every personal field set.
    fn payloads() -> Vec<(EventType, EventData)> {
        vec![
            (
                EventType::LinkCreated,
                EventData::LinkCreated(LinkCreated {
                    customer: person(),
                    provider: ProviderSnapshot::default(),
                    link: link(),
                }),
            ),
            (
                EventType::ConsentRevoked,
                EventData::Consent(ConsentChanged {
                    customer: person(),
                    provider: ProviderSnapshot::default(),
                    link: link(),
                    consent: ConsentSnapshot {
                        id: "k1".into(),
                        status: ConsentStatus::Revoked,
                        permissions_requested: vec![],
                        permissions_granted: vec![],
                        expires_at: None,
                        external_track_id: Some(SECRETS[5].into()),
                        reconnect_required: false,
                    },
                    reason: None,
                }),
            ),
            (
                EventType::ProductRequestReceived,
                EventData::Product(ProductEvent {
                    customer: person(),
                    request: ProductRequestSnapshot {
                        id: "r1".into(),
                        tax_id: Some(SECRETS[2].into()),
                        institution_code: "033".into(),
                        link_id: "l1".into(),
                        consent_ids: vec!["k1".into()],
                        products: vec!["income".into()],
                        product_callback_urls: BTreeMap::new(),
                    },
                    product: None,
                    failure_reason: None,
                }),
            ),
        ]
    }

    #[test]
    fn no_personal_value_survives_and_the_payload_still_reads() {
        for (t, data) in payloads() {
            let mut json = serde_json::to_value(&data).unwrap();
            assert!(erase_personal(&mut json), "{t:?}");
            let text = json.to_string();
            for secret in SECRETS {
                assert!(!text.contains(secret), "{t:?} kept {secret}: {text}");
            }
            let read = EventData::from_json(t, json).expect("an erased payload still reads");
            let customer = read.customer().unwrap();
            assert_eq!(customer.id, "c1");
            assert_eq!(
                customer,
                &CustomerSnapshot {
                    id: "c1".into(),
                    ..Default::default()
                }
            );
        }
    }

    #[test]
    fn erasing_twice_changes_nothing_the_second_time() {
        let (_, data) = payloads().remove(0);
        let mut json = serde_json::to_value(&data).unwrap();
        assert!(erase_personal(&mut json));
        let once = json.clone();
        assert!(!erase_personal(&mut json));
        assert_eq!(json, once);
    }

    #[test]
    fn unknown_customer_fields_go_too_and_other_payloads_are_untouched() {
        let mut json = json!({"customer": {"id": "c1", "nickname": "Bo"}, "task_id": "t1"});
        assert!(erase_personal(&mut json));
        assert_eq!(
            json,
            json!({"customer": {"id": "c1", "nickname": null}, "task_id": "t1"})
        );
        let mut test = json!({"endpoint_id": "e1", "data": {"hello": "world"}});
        assert!(!erase_personal(&mut test));
        assert_eq!(
            test,
            json!({"endpoint_id": "e1", "data": {"hello": "world"}})
        );
    }
}
