//! The scheduler: expiries, expiry warnings and scheduled refreshes. Every step is a
//! conditional update taken by exactly one node, so it survives restarts and runs on any
//! number of nodes sharing a PostgreSQL database.

use freshet_model::{ConsentStatus, EventType, events::RefreshTrigger};
use freshet_store::StoreError;
use tokio_util::sync::CancellationToken;

use super::{RefreshRequest, Refresher, tasks::insert_task};

/// Consents handled per kind and pass; the rest wait for the next pass.
const BATCH: u32 = 200;

pub async fn run(r: Refresher, stop: CancellationToken) {
    loop {
        if let Err(e) = pass(&r).await {
            tracing::warn!(error = %e, "the refresh scheduler's pass failed");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(r.inner.config.tick) => {}
        }
    }
}

async fn pass(r: &Refresher) -> Result<(), StoreError> {
    let now = freshet_model::time::now();
    for c in r.store().consents_expiring_by(now, false, BATCH).await? {
        if let Err(e) = r
            .move_consent(
                &c,
                &[ConsentStatus::Authorised],
                ConsentStatus::Expired,
                EventType::ConsentExpired,
                Some("the consent reached its expiry".into()),
            )
            .await
        {
            tracing::warn!(consent = %c.id, error = %e, "expiring a consent failed");
        }
    }
    let warn_until = now
        + time::Duration::try_from(r.inner.config.expiring_warning).unwrap_or(time::Duration::WEEK);
    for c in r
        .store()
        .consents_expiring_by(warn_until, true, BATCH)
        .await?
    {
        let data = match r
            .consent_event(&c, Some("the consent expires soon".into()))
            .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(consent = %c.id, error = %e, "building consent.expiring failed");
                continue;
            }
        };
        let mut tx = r.begin().await?;
        if tx.mark_expiring_notified(c.id).await? {
            r.record(
                &mut tx,
                c.application_id,
                c.customer_id,
                EventType::ConsentExpiring,
                data,
            )
            .await?;
            tx.commit().await?;
        }
    }
    let mut started = false;
    for due in r.store().consents_due(now, now.date(), BATCH).await? {
        let c = &due.consent;
        let Some((provider, _)) = r.bank(&c.provider_id) else {
            continue;
        };
        let mut tx = r.store().begin().await?;
        if !tx.take_due_refresh(c.id, now, r.next_refresh(now)).await? {
            continue;
        }
        if due.unattended_used >= provider.unattended_per_day {
            // The bank would refuse it; the slot is taken all the same, and the next may fall
            // on a new day.
            tracing::info!(
                consent = %c.id,
                provider = %c.provider_id,
                used = due.unattended_used,
                "scheduled refresh skipped: the consent's unattended budget for today is spent"
            );
        } else {
            // The customer's turn first, so that a request to refresh them cannot start a
            // task between the look and the insert.
            tx.lock_customer_tasks(c.customer_id).await?;
            // (A refresh already waiting or running covers this one.)
            if !r.store().consent_busy(c.id).await? {
                // Until a refresh of the consent has worked, it is still the import the
                // customer's authorisation asked for.
                let trigger = if c.last_refreshed_at.is_none() {
                    RefreshTrigger::FirstImport
                } else {
                    RefreshTrigger::Scheduled
                };
                insert_task(
                    &mut tx,
                    c.application_id,
                    c.customer_id,
                    &[c],
                    &RefreshRequest::default(),
                    trigger,
                )
                .await?;
                started = true;
            }
        }
        tx.commit().await?;
    }
    if started {
        r.inner.wake.notify_one();
    }
    Ok(())
}
