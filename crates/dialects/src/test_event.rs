//! `endpoint.test` in each dialect. No vendor sends a test event, so each vendor dialect gets
//! a body in its vendor's shape — the outer structure its receiver parses, with a name no real
//! message has — signed the vendor's way, so "send a test event" checks reachability and the
//! signature without breaking a handler or looking like a real refresh or consent:
//!
//! - `standard`: the envelope `{type: "endpoint.test", timestamp, data}`;
//! - `bud`: `{"event": "freshet.endpoint.test", endpoint_id, data, created_at}` with Bud's
//!   `X-Signature` and `X-Signing-ID`;
//! - `tatra`: a transactionEvent `{"consentId": <endpoint id>, "eventType": "TEST", "accounts": []}`;
//! - `klavi`: a JSON array of one Klavi event, `eventName: "endpoint_test"`, payload
//!   `{endpointId, data}`, with `X-Klavi-Signature` and `X-Klavi-Timestamp`;
//! - `yodlee`: `{"event": {"info": "ENDPOINT.TEST", "data": {endpointId, data}, notificationId}}`.

use freshet_model::events::{EndpointTest, Event, EventData};
use serde_json::{Value, json};

use crate::{Context, Dialect, RenderError, Rendered, klavi::klavi_signature, standard, wire};

/// Renders an `endpoint.test` for an endpoint of `dialect`.
pub fn render_test(
    dialect: Dialect,
    event: &Event,
    ctx: &Context,
) -> Result<Rendered, RenderError> {
    let EventData::EndpointTest(test) = &event.data else {
        return Err(RenderError::PayloadMismatch(event.event_type));
    };
    let missing = |what| RenderError::Missing { dialect, what };
    let time = |d| wire::seconds_z(event.created_at).map_err(|_| RenderError::Time(d));
    let body = match dialect {
        Dialect::Standard => return finish(standard::render(event)?, ctx),
        Dialect::Bud => json!({
            "event": "freshet.endpoint.test",
            "endpoint_id": test.endpoint_id,
            "data": data(test),
            "created_at": time(dialect)?,
        }),
        Dialect::Tatra => json!({
            "consentId": test.endpoint_id,
            "eventType": "TEST",
            "accounts": [],
        }),
        Dialect::Klavi => json!([{
            "partnerAppId": ctx.partner_app_id.ok_or(missing("a partnerAppId"))?,
            "eventId": event.id,
            "eventType": "api",
            "eventName": "endpoint_test",
            "eventTime": wire::millis_z(event.created_at).map_err(|_| RenderError::Time(dialect))?,
            "payload": {"endpointId": test.endpoint_id, "data": data(test)},
            "externalInfo": {},
        }]),
        Dialect::Yodlee => json!({
            "event": {
                "info": "ENDPOINT.TEST",
                "data": {"endpointId": test.endpoint_id, "data": data(test)},
                "notificationId": ctx.webhook_id,
            }
        }),
    };
    let mut rendered = Rendered {
        body: serde_json::to_vec(&body)?,
        headers: Vec::new(),
    };
    match dialect {
        Dialect::Bud => {
            let key = ctx.bud_key.ok_or(missing("a signing key"))?;
            let jwt = key
                .sign(&rendered.body, ctx.webhook_id, ctx.sent_at)
                .map_err(|_| missing("a working signing key"))?;
            rendered.headers.push(("x-signature", jwt));
            rendered
                .headers
                .push(("x-signing-id", key.kid().to_string()));
        }
        Dialect::Klavi => {
            let secret = ctx.klavi_secret.ok_or(missing("a signing secret"))?;
            let signature = klavi_signature(secret, &rendered.body);
            rendered.headers.push(("x-klavi-signature", signature));
            rendered.headers.push((
                "x-klavi-timestamp",
                ctx.sent_at.unix_timestamp().to_string(),
            ));
        }
        Dialect::Standard | Dialect::Tatra | Dialect::Yodlee => {}
    }
    finish(rendered, ctx)
}

/// What the caller of the test passed, `null` when nothing.
fn data(test: &EndpointTest) -> Value {
    test.data.clone().unwrap_or(Value::Null)
}

/// The headers every dialect's rendering carries (see [`crate::render`]).
fn finish(mut rendered: Rendered, ctx: &Context) -> Result<Rendered, RenderError> {
    rendered
        .headers
        .insert(0, ("content-type", "application/json".to_string()));
    if let Some(auth) = ctx.security_header.filter(|h| !h.is_empty()) {
        rendered.headers.push(("authorization", auth.to_string()));
    }
    Ok(rendered)
}
