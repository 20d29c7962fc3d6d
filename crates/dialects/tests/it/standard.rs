//! freshet's own dialect: the `{type, timestamp, data}` envelope, signed the Standard Webhooks way.

use freshet_dialects::{Context, Dialect, new_secret, standard_signature, verify_standard};
use freshet_model::{
    EventType,
    events::{EndpointTest, EventData},
};
use serde_json::json;
use time::macros::datetime;

use crate::support::*;

#[test]
fn the_envelope_carries_the_canonical_payload() {
    let data = EventData::EndpointTest(EndpointTest {
        endpoint_id: "e1".into(),
        data: Some(json!({"hello": "world"})),
    });
    let event = event(
        "0192f0c2-0000-7000-8000-0000000000c1",
        EventType::EndpointTest,
        datetime!(2026-11-24 11:31:07.25 UTC),
        data,
    );
    let (body, rendered) = render_json(
        Dialect::Standard,
        &event,
        &Context::new(WEBHOOK_ID, SENT_AT),
    );
    assert_eq!(
        body,
        json!({
            "type": "endpoint.test",
            "timestamp": "2026-11-24T11:31:07.25Z",
            "data": {"endpoint_id": "e1", "data": {"hello": "world"}},
        })
    );

    // What the engine does with any dialect's body: sign it, and a receiver verifies it.
    let secret = new_secret();
    let ts = SENT_AT.unix_timestamp();
    let sig = standard_signature(&secret, WEBHOOK_ID, ts, &rendered.body).unwrap();
    let header = |name: &str| match name {
        "webhook-id" => Some(WEBHOOK_ID.to_string()),
        "webhook-timestamp" => Some(ts.to_string()),
        "webhook-signature" => Some(sig.clone()),
        _ => None,
    };
    let tolerance = time::Duration::minutes(5);
    assert_eq!(
        verify_standard(&[&secret], header, &rendered.body, SENT_AT, tolerance),
        Ok(())
    );
}
