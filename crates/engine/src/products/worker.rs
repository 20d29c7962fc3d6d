//! The generator: claims pending product requests under a lease and settles each product in
//! one transaction — its row, its `product.generated_*` event and, for a built product, the
//! delivery to its callback URL. The settling write is conditional on the claim and on the
//! product still pending, so a request taken over after a crash yields each event once.

use freshet_model::{
    EventType,
    events::{EventData, ProductEvent},
    products::{ProductKind, ProductRequest, ProductResult, ProductStatus},
};
use freshet_store::StoreError;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{
    Products,
    build::{self, AccountData, Header, Period},
};
use crate::refresh::snapshots;

/// Requests claimed per pass.
const BATCH: u32 = 16;

pub async fn run(p: Products, stop: CancellationToken) {
    if p.store().kind() == freshet_store::StoreKind::Sqlite {
        // One node on SQLite: whatever it had claimed before a restart is its own to redo.
        if let Err(e) = p.store().release_product_request_leases().await {
            tracing::warn!(error = %e, "could not release product request leases");
        }
    }
    loop {
        match pass(&p).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "generating products failed; retrying"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = p.inner.wake.notified() => {}
            _ = tokio::time::sleep(p.inner.config.poll) => {}
        }
    }
}

/// Claims what is pending and generates it; returns how many requests it took.
pub async fn pass(p: &Products) -> Result<usize, StoreError> {
    let c = &p.inner.config;
    let (token, requests) = p
        .store()
        .claim_product_requests(&c.node, c.lease, BATCH)
        .await?;
    for r in &requests {
        if let Err(e) = generate(p, r, &token).await {
            tracing::warn!(request = %r.id, error = %e, "a product request stopped; it will be retried when its claim expires");
        }
    }
    Ok(requests.len())
}

async fn generate(p: &Products, r: &ProductRequest, token: &str) -> Result<(), StoreError> {
    let store = p.store();
    let customer = store
        .get_customer(r.application_id, r.customer_id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("request {} lost its customer", r.id)))?;
    let link = store
        .get_link(r.application_id, r.link_id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("request {} lost its link", r.id)))?;
    let snapshot = p.snapshot(r, &link.provider_id);
    let interrupted = r.attempts > p.inner.config.max_attempts;
    let accounts = if interrupted {
        Vec::new()
    } else {
        gather(p, r).await?
    };
    for product in store.request_products(r).await? {
        if product.status != ProductStatus::Pending {
            continue;
        }
        let built = if interrupted {
            Err("generation was interrupted too many times")
        } else {
            let header = Header {
                request_id: r.id.to_string(),
                product: product.product.as_str(),
                tax_id: r
                    .tax_id
                    .clone()
                    .or_else(|| customer.personal_tax_id.clone()),
                institution_code: snapshot.institution_code.clone(),
                link_id: r.link_id.to_string(),
                consent_ids: snapshot.consent_ids.clone(),
                period: Period {
                    from: r.period_from,
                    to: r.period_to,
                },
                generated_at: freshet_model::time::now(),
            };
            build::build(product.product, &header, &accounts)
        };
        let data = EventData::Product(ProductEvent {
            customer: snapshots::customer(&customer),
            request: snapshot.clone(),
            product: Some(product.product.as_str().to_string()),
            failure_reason: built.as_ref().err().map(|e| e.to_string()),
        });
        settle(p, r, token, &product, data, built.ok()).await?;
    }
    let mut tx = store.begin().await?;
    tx.complete_product_request(r.id, token).await?;
    tx.commit().await?;
    Ok(())
}

/// One product's row, event and (when built) callback delivery, in one transaction.
async fn settle(
    p: &Products,
    r: &ProductRequest,
    token: &str,
    product: &ProductResult,
    data: EventData,
    body: Option<Value>,
) -> Result<(), StoreError> {
    let event_type = match body {
        Some(_) => EventType::ProductGeneratedSuccess,
        None => EventType::ProductGeneratedFailed,
    };
    let reason = match &data {
        EventData::Product(e) => e.failure_reason.clone(),
        _ => None,
    };
    let mut tx = p.inner.engine.begin().await?;
    let event = tx
        .record(r.application_id, Some(r.customer_id), data, event_type)
        .await?;
    let delivery = match &body {
        Some(b) => Some(
            tx.insert_fixed_delivery(r.application_id, event.id, product.endpoint_id, b)
                .await?,
        ),
        None => None,
    };
    if !tx
        .settle_product(r.id, token, product.product, reason.as_deref(), delivery)
        .await?
    {
        // The claim was lost or another generator settled it: write nothing.
        return Ok(());
    }
    tx.commit().await?;
    tracing::info!(request = %r.id, product = product.product.as_str(), ok = body.is_some(), "product generated");
    Ok(())
}

/// The live accounts of the request's consents, with their booked transactions in and after
/// the period.
async fn gather(p: &Products, r: &ProductRequest) -> Result<Vec<AccountData>, StoreError> {
    let store = p.store();
    let far = r.period_to + time::Duration::days(3660);
    let mut out = Vec::new();
    for consent in &r.consent_ids {
        for account in store.consent_accounts(*consent).await? {
            if account.removed
                || !ProductKind::ALL
                    .iter()
                    .any(|k| build::serves(*k, account.kind.as_deref()))
            {
                continue;
            }
            let in_period = store
                .transactions_between(account.id, r.period_from, r.period_to)
                .await?;
            let after_period = store
                .transactions_between(account.id, r.period_to.next_day().unwrap_or(far), far)
                .await?;
            out.push(AccountData {
                account,
                in_period,
                after_period,
            });
        }
    }
    Ok(out)
}
