//! An endpoint failing for too long is disabled, once, with an event saying so.

use freshet_engine::Engine;
use freshet_model::{EventType, PageRequest, ids::ApiKeyId};
use freshet_store::{EventFilter, NewApiKey, NewEndpoint};

use crate::on_both_stores;

fn endpoint(url: &str) -> NewEndpoint {
    NewEndpoint {
        url: url.into(),
        dialect: "standard".into(),
        event_types: None,
        description: None,
        ordered: false,
        security_header: None,
        partner_app_id: None,
        active_from: freshet_model::time::now() - time::Duration::seconds(1),
        secret: "whsec_dGVzdA==".into(),
        retry_schedule: None,
        scheduled_refreshes: false,
        activation: "immediate".into(),
        rate_limit: None,
        max_in_flight: None,
    }
}

on_both_stores! {
    async fn failing_endpoints_are_disabled_once_with_an_event(db) {
        let key = NewApiKey { id: ApiKeyId::new(), lookup: uuid::Uuid::now_v7().simple().to_string(), secret_hash: vec![0; 32] };
        let app = db.store.create_application("disable", &key).await.unwrap().id;
        let failing = db.store.insert_endpoint(app, &endpoint("http://127.0.0.1:9/broken")).await.unwrap();
        let healthy = db.store.insert_endpoint(app, &endpoint("http://127.0.0.1:9/ok")).await.unwrap();
        let engine = Engine::new(db.store.clone());
        let since = freshet_model::time::now() - time::Duration::days(5);

        engine.disable_failing(app, failing.id, since).await.unwrap();
        let e = db.store.get_endpoint(app, failing.id).await.unwrap().unwrap();
        assert!(!e.enabled);
        assert!(e.disabled_reason.as_deref().unwrap().contains("no successful delivery"), "{e:?}");

        let filter = EventFilter { event_type: Some(EventType::EndpointDisabled), ..Default::default() };
        let events = db.store.list_events(app, &filter, PageRequest::first()).await.unwrap().data;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data["endpoint_id"], failing.id.to_string());
        let deliveries = db.store.list_event_deliveries(app, events[0].id).await.unwrap();
        assert_eq!(deliveries.iter().map(|d| d.endpoint_id).collect::<Vec<_>>(), vec![healthy.id],
                   "the disabled endpoint is not told, the others are");

        // Already disabled: nothing more happens.
        engine.disable_failing(app, failing.id, since).await.unwrap();
        let again = db.store.list_events(app, &filter, PageRequest::first()).await.unwrap().data;
        assert_eq!(again.len(), 1);
    }
}
