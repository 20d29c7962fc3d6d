//! Bud Connect's webhooks (seed 000): `refresh.completed` as `open_banking.v2.refresh.completed`
//! with one `open_banking.v2.refresh.provider.completed` per sub-task, and `consent.revoked` as
//! `open_banking.consent.revoked`, each signed with an ES256 JWT in `X-Signature` and the key's
//! id in `X-Signing-ID` (see [`signing`]).

use freshet_model::{
    EventType, ResultCode,
    events::{
        ConsentChanged, ConsentDetail, Event, EventData, RefreshCompleted, SubTaskSnapshot,
        TaskStatus,
    },
};
use serde::Serialize;

use crate::{Context, Dialect, RenderError, Rendered, wire};

pub mod signing;

pub use signing::{BudClaims, BudSigningKey, BudVerifyError, KeyError, jwks, verify_bud};

pub(crate) const EVENT_TYPES: &[EventType] =
    &[EventType::RefreshCompleted, EventType::ConsentRevoked];

const REFRESH_COMPLETED: &str = "open_banking.v2.refresh.completed";
const PROVIDER_COMPLETED: &str = "open_banking.v2.refresh.provider.completed";
const CONSENT_REVOKED: &str = "open_banking.consent.revoked";

/// Field order as in the seed's examples.
#[derive(Serialize)]
struct RefreshCompletedBody<'a> {
    customer_id: &'a str,
    event: &'static str,
    has_new_transactions: bool,
    task_id: &'a str,
    result: &'static str,
    status: TaskStatus,
    sub_tasks: Vec<SubTaskBody<'a>>,
}

#[derive(Serialize)]
struct SubTaskBody<'a> {
    account_ids: &'a [String],
    consent_ids: &'a [String],
    /// Left out where the source did not list them, as in the seed's failure example.
    #[serde(skip_serializing_if = "Option::is_none")]
    consent_details: Option<Vec<ConsentDetailBody<'a>>>,
    customer_id: &'a str,
    event: &'static str,
    has_new_transactions: bool,
    provider: &'a str,
    reconnect_required: bool,
    result: &'static str,
    status: TaskStatus,
    task_id: &'a str,
}

#[derive(Serialize)]
struct ConsentDetailBody<'a> {
    id: &'a str,
    expiration_date: Option<String>,
}

/// Bud wraps this one event in `data` (its "Open Banking Consent Revoked" page).
#[derive(Serialize)]
struct ConsentRevokedBody<'a> {
    data: ConsentRevokedData<'a>,
}

#[derive(Serialize)]
struct ConsentRevokedData<'a> {
    consent_id: &'a str,
    customer_id: &'a str,
    provider: &'a str,
    updated_at: String,
    event: &'static str,
}

pub(crate) fn render(event: &Event, ctx: &Context) -> Result<Rendered, RenderError> {
    let body = match (event.event_type, &event.data) {
        (EventType::RefreshCompleted, EventData::RefreshCompleted(e)) => {
            serde_json::to_vec(&refresh_completed(e)?)?
        }
        (EventType::ConsentRevoked, EventData::Consent(e)) => {
            serde_json::to_vec(&consent_revoked(event, e)?)?
        }
        (t, _) => return Err(RenderError::PayloadMismatch(t)),
    };
    let key = ctx.bud_key.ok_or(RenderError::Missing {
        dialect: Dialect::Bud,
        what: "a signing key",
    })?;
    let jwt = key
        .sign(&body, ctx.webhook_id, ctx.sent_at)
        .map_err(|_| RenderError::Missing {
            dialect: Dialect::Bud,
            what: "a working signing key",
        })?;
    Ok(Rendered {
        body,
        headers: vec![
            ("x-signature", jwt),
            ("x-signing-id", key.kid().to_string()),
        ],
    })
}

fn refresh_completed(e: &RefreshCompleted) -> Result<RefreshCompletedBody<'_>, RenderError> {
    let customer_id = e.customer.id.as_str();
    let sub_tasks = e
        .sub_tasks
        .iter()
        .map(|s| sub_task(customer_id, s))
        .collect::<Result<_, _>>()?;
    Ok(RefreshCompletedBody {
        customer_id,
        event: REFRESH_COMPLETED,
        has_new_transactions: e.has_new_transactions,
        task_id: &e.task_id,
        result: result(e.result),
        status: e.status,
        sub_tasks,
    })
}

fn sub_task<'a>(
    customer_id: &'a str,
    s: &'a SubTaskSnapshot,
) -> Result<SubTaskBody<'a>, RenderError> {
    let consent_details = match &s.consent_details {
        None => None,
        Some(details) => Some(
            details
                .iter()
                .map(consent_detail)
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(SubTaskBody {
        account_ids: &s.account_ids,
        consent_ids: &s.consent_ids,
        consent_details,
        customer_id,
        event: PROVIDER_COMPLETED,
        has_new_transactions: s.has_new_transactions,
        provider: &s.provider.name,
        reconnect_required: s.reconnect_required,
        result: result(s.result.ok_or(RenderError::Missing {
            dialect: Dialect::Bud,
            what: "every sub-task's result (refresh.completed lists ended sub-tasks)",
        })?),
        status: s.status,
        task_id: &s.task_id,
    })
}

/// `success` or the nearest code of Bud's published Connect API errors. freshet's result
/// codes are Bud's, but for two that Bud's list does not have: `consent_not_found` (Bud says
/// `connection_not_found`) and `provider_unavailable` (the bank answered that it is
/// temporarily unavailable: Bud's `provider_failure`, "the provider is experiencing issues").
pub fn result(code: ResultCode) -> &'static str {
    match code {
        ResultCode::ConsentNotFound => "connection_not_found",
        ResultCode::ProviderUnavailable => "provider_failure",
        other => other.as_str(),
    }
}

/// Every `result` a Bud message may carry: `success` and Bud's Connect API errors (its list
/// also names request errors — `failed_body_decode`, `failed_validation`, `task_not_found` —
/// that no refresh ends with).
pub const RESULTS: &[&str] = &[
    "success",
    "internal_error",
    "internal_transient_error",
    "internal_timeout",
    "auth_denied",
    "auth_expired",
    "connection_expired",
    "connection_not_found",
    "connection_revoked",
    "provider_failure",
    "provider_request_limit",
    "provider_maintenance",
    "provider_not_found",
    "provider_timeout",
    "connection_reauthenticate",
    "provider_marked_account_invalid",
];

fn consent_detail(d: &ConsentDetail) -> Result<ConsentDetailBody<'_>, RenderError> {
    Ok(ConsentDetailBody {
        id: &d.id,
        expiration_date: d.expiration_date.map(time).transpose()?,
    })
}

fn consent_revoked<'a>(
    event: &Event,
    e: &'a ConsentChanged,
) -> Result<ConsentRevokedBody<'a>, RenderError> {
    Ok(ConsentRevokedBody {
        data: ConsentRevokedData {
            consent_id: &e.consent.id,
            customer_id: &e.customer.id,
            provider: &e.provider.name,
            updated_at: time(event.created_at)?,
            event: CONSENT_REVOKED,
        },
    })
}

fn time(t: time::OffsetDateTime) -> Result<String, RenderError> {
    wire::seconds_z(t).map_err(|_| RenderError::Time(Dialect::Bud))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_result_is_one_of_buds_codes() {
        for code in ResultCode::ALL {
            assert!(RESULTS.contains(&result(code)), "{code:?}");
        }
        assert_eq!(result(ResultCode::ProviderFailure), "provider_failure");
        assert_eq!(result(ResultCode::Success), "success");
    }
}
