//! The short summary `freshet events tail` prints after each event's type and ids: what
//! happened, in the words of the event's own payload.

use freshet_model::{
    EventType,
    events::{AccountChangeKind, EventData},
};
use serde::Serialize;
use serde_json::Value;

/// An enum's name as the API writes it.
fn name(v: impl Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => "?".into(),
    }
}

/// A few words on an event; empty for a type or payload this build does not know.
pub fn summary(event_type: &str, data: &Value) -> String {
    let Some(t) = EventType::parse(event_type) else {
        return String::new();
    };
    let Ok(data) = EventData::from_json(t, data.clone()) else {
        return String::new();
    };
    match data {
        EventData::LinkCreated(e) => format!("{} link {}", e.provider.id, e.link.id),
        EventData::Consent(e) => {
            let mut s = format!(
                "{} consent {} {}",
                e.provider.id,
                e.consent.id,
                e.consent.status.as_str()
            );
            if let Some(reason) = e.reason {
                s.push_str(&format!(": {reason}"));
            }
            s
        }
        EventData::RefreshProgress(e) => format!(
            "{} {} (task {})",
            e.sub_task.provider.id,
            name(e.stage),
            e.task_id
        ),
        EventData::ProviderCompleted(e) => format!(
            "{} {} {} (task {})",
            e.sub_task.provider.id,
            name(e.sub_task.status),
            e.sub_task.result.map_or("-", |r| r.as_str()),
            e.task_id
        ),
        EventData::RefreshCompleted(e) => format!(
            "{} {} over {} bank(s) (task {})",
            name(e.status),
            e.result.as_str(),
            e.sub_tasks.len(),
            e.task_id
        ),
        EventData::TransactionsNew(e) => format!(
            "{} {} new transaction(s) in {} account(s)",
            e.provider.id,
            e.accounts.iter().map(|a| u64::from(a.count)).sum::<u64>(),
            e.accounts.len()
        ),
        EventData::AccountsUpdated(e) => {
            let count = |k| e.accounts.iter().filter(|a| a.change == k).count();
            format!(
                "{} {} added, {} updated, {} removed",
                e.provider.id,
                count(AccountChangeKind::Added),
                count(AccountChangeKind::Updated),
                count(AccountChangeKind::Removed)
            )
        }
        EventData::Product(e) => {
            let mut s = format!("request {}", e.request.id);
            if let Some(product) = e.product {
                s.push_str(&format!(" {product}"));
            }
            if let Some(why) = e.failure_reason {
                s.push_str(&format!(": {why}"));
            }
            s
        }
        EventData::EndpointTest(e) => format!("endpoint {}", e.endpoint_id),
        EventData::EndpointDisabled(e) => format!("endpoint {}: {}", e.endpoint_id, e.reason),
        EventData::CustomerErased(e) => format!(
            "customer {}: {} consent(s), {} account(s), {} transaction(s), {} event(s) scrubbed",
            e.customer_id,
            e.removed.consents,
            e.removed.accounts,
            e.removed.transactions,
            e.removed.events_scrubbed
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn events_read_as_a_few_words_and_unknown_ones_as_none() {
        assert_eq!(
            summary("endpoint.test", &json!({"endpoint_id": "e1", "data": null})),
            "endpoint e1"
        );
        assert_eq!(
            summary(
                "endpoint.disabled",
                &json!({"endpoint_id": "e1", "url": "http://x", "reason": "failing for 5 days",
                        "last_success_at": null})
            ),
            "endpoint e1: failing for 5 days"
        );
        assert_eq!(summary("no.such.type", &json!({})), "");
        assert_eq!(summary("endpoint.test", &json!({"unexpected": 1})), "");
    }
}
