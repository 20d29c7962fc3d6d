//! What a dialect cannot render is refused with a reason, never sent half-made.

use freshet_dialects::{Context, Dialect, RenderError, render};
use freshet_model::{
    EventType,
    events::{EndpointTest, Event, EventData},
};
use time::macros::datetime;

use crate::support::*;

fn any_event(event_type: EventType) -> Event {
    event(
        "0192f0c2-0000-7000-8000-0000000000d1",
        event_type,
        datetime!(2026-11-24 11:31 UTC),
        EventData::EndpointTest(EndpointTest {
            endpoint_id: "e1".into(),
            data: None,
        }),
    )
}

#[test]
fn types_a_dialect_does_not_send_are_refused_by_name() {
    let ctx = Context::new(WEBHOOK_ID, SENT_AT);
    let mut refused = 0;
    for dialect in Dialect::ALL {
        for t in EventType::ALL {
            if dialect.sends(t) {
                continue;
            }
            refused += 1;
            match render(dialect, &any_event(t), &ctx) {
                Err(e @ RenderError::NotSent { .. }) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains(dialect.name()) && msg.contains(t.as_str()),
                        "{msg}"
                    );
                }
                other => panic!("{dialect} {t:?}: {other:?}"),
            }
        }
    }
    // 19 types: bud sends 2, tatra 2, klavi 10, yodlee 2, standard all.
    assert_eq!(refused, 17 + 17 + 9 + 17);
}

#[test]
fn a_payload_of_another_type_is_refused() {
    let ctx = Context::new(WEBHOOK_ID, SENT_AT);
    for (dialect, t) in [
        (Dialect::Bud, EventType::RefreshCompleted),
        (Dialect::Tatra, EventType::AccountsUpdated),
        (Dialect::Klavi, EventType::ConsentRevoked),
        (Dialect::Yodlee, EventType::RefreshProgress),
    ] {
        let ctx = Context {
            partner_app_id: Some("p"),
            klavi_secret: Some("s"),
            ..ctx
        };
        assert!(
            matches!(
                render(dialect, &any_event(t), &ctx),
                Err(RenderError::PayloadMismatch(got)) if got == t
            ),
            "{dialect}"
        );
    }
}

#[test]
fn missing_keys_are_named() {
    let ctx = Context::new(WEBHOOK_ID, SENT_AT);
    let bud = render(Dialect::Bud, &any_event(EventType::ConsentRevoked), &ctx);
    // The payload is checked before the key: a mismatch wins.
    assert!(matches!(bud, Err(RenderError::PayloadMismatch(_))));

    let klavi = render(Dialect::Klavi, &any_event(EventType::LinkCreated), &ctx).unwrap_err();
    assert!(klavi.to_string().contains("partnerAppId"), "{klavi}");
    let ctx = Context {
        partner_app_id: Some("12345678"),
        ..ctx
    };
    let klavi = render(Dialect::Klavi, &any_event(EventType::LinkCreated), &ctx).unwrap_err();
    assert!(klavi.to_string().contains("signing secret"), "{klavi}");
}
