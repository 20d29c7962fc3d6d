//! Yodlee's REFRESH notifications (seed 003): `refresh.progress` as `REFRESH.INTERIM_PROGRESS`
//! (login success, account summary received) and `refresh.provider.completed` as
//! `REFRESH.PROCESS_COMPLETED`, one `providerAccount` (the link) with one `BASIC_AGG_DATA`
//! dataset. Yodlee signs nothing; the Standard Webhooks headers are the only authentication.

use freshet_model::{
    EventType, ResultCode,
    events::{
        CustomerSnapshot, Event, EventData, ProviderCompleted, RefreshProgress, RefreshStage,
        RefreshTrigger, SubTaskSnapshot,
    },
};
use serde::Serialize;
use time::OffsetDateTime;

use crate::{Context, Dialect, RenderError, Rendered, wire};

pub(crate) const EVENT_TYPES: &[EventType] = &[
    EventType::RefreshProgress,
    EventType::RefreshProviderCompleted,
];

#[derive(Serialize)]
struct Body<'a> {
    event: EventBody<'a>,
}

/// The seed's attribute table lists `notificationId` with `info`, `loginName` and `data`,
/// though its examples leave it out.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventBody<'a> {
    info: &'static str,
    login_name: &'a str,
    data: Data<'a>,
    notification_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Data<'a> {
    provider_account: [ProviderAccount<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProviderAccount<'a> {
    id: i64,
    provider_id: i64,
    /// Only once the account summary is in (the seed's account-summary example).
    #[serde(skip_serializing_if = "Option::is_none")]
    last_updated: Option<String>,
    is_manual: bool,
    created_date: String,
    aggregation_source: &'static str,
    status: &'static str,
    request_id: &'a str,
    dataset: [Dataset; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Dataset {
    name: &'static str,
    additional_status: &'static str,
    update_eligibility: &'static str,
    /// Only when the process completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_updated: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_update_attempt: Option<String>,
}

pub(crate) fn render(event: &Event, ctx: &Context) -> Result<Rendered, RenderError> {
    let body = match (event.event_type, &event.data) {
        (EventType::RefreshProgress, EventData::RefreshProgress(e)) => progress(e, ctx)?,
        (EventType::RefreshProviderCompleted, EventData::ProviderCompleted(e)) => {
            completed(e, ctx)?
        }
        (t, _) => return Err(RenderError::PayloadMismatch(t)),
    };
    Ok(Rendered {
        body: serde_json::to_vec(&body)?,
        headers: Vec::new(),
    })
}

fn progress<'a>(e: &'a RefreshProgress, ctx: &Context<'a>) -> Result<Body<'a>, RenderError> {
    let (additional_status, last_updated) = match e.stage {
        RefreshStage::LoginSuccess => ("DATA_RETRIEVAL_IN_PROGRESS", None),
        RefreshStage::AccountSummaryReceived => (
            "ACCT_SUMMARY_RECEIVED",
            e.sub_task.last_updated.map(time).transpose()?,
        ),
    };
    let dataset = Dataset {
        name: "BASIC_AGG_DATA",
        additional_status,
        update_eligibility: "DISALLOW_UPDATE",
        last_updated: None,
        last_update_attempt: None,
    };
    let mut account = provider_account(&e.sub_task, e.trigger, "IN_PROGRESS", dataset)?;
    account.last_updated = last_updated;
    Ok(body(
        "REFRESH.INTERIM_PROGRESS",
        &e.customer,
        account,
        ctx.webhook_id,
    ))
}

fn completed<'a>(e: &'a ProviderCompleted, ctx: &Context<'a>) -> Result<Body<'a>, RenderError> {
    let s = &e.sub_task;
    let result = s.result.ok_or(RenderError::Missing {
        dialect: Dialect::Yodlee,
        what: "the ended sub-task's result",
    })?;
    let (status, additional_status) = outcome(result);
    let dataset = Dataset {
        name: "BASIC_AGG_DATA",
        additional_status,
        update_eligibility: eligibility(additional_status, s.reconnect_required),
        last_updated: s.last_updated.map(time).transpose()?,
        last_update_attempt: s.last_update_attempt.map(time).transpose()?,
    };
    let account = provider_account(s, e.trigger, status, dataset)?;
    Ok(body(
        "REFRESH.PROCESS_COMPLETED",
        &e.customer,
        account,
        ctx.webhook_id,
    ))
}

fn body<'a>(
    info: &'static str,
    customer: &'a CustomerSnapshot,
    account: ProviderAccount<'a>,
    notification_id: &'a str,
) -> Body<'a> {
    // Yodlee always names the user; a customer without a login name goes by its other ids.
    let login_name = customer
        .login_name
        .as_deref()
        .or(customer.external_id.as_deref())
        .unwrap_or(&customer.id);
    Body {
        event: EventBody {
            info,
            login_name,
            data: Data {
                provider_account: [account],
            },
            notification_id,
        },
    }
}

fn provider_account<'a>(
    s: &'a SubTaskSnapshot,
    trigger: RefreshTrigger,
    status: &'static str,
    dataset: Dataset,
) -> Result<ProviderAccount<'a>, RenderError> {
    Ok(ProviderAccount {
        id: s.link.number,
        provider_id: s.provider.numeric_id,
        last_updated: None,
        is_manual: false,
        created_date: time(s.link.created_at)?,
        aggregation_source: match trigger {
            RefreshTrigger::Manual | RefreshTrigger::FirstImport => "USER",
            RefreshTrigger::Scheduled | RefreshTrigger::BankNotification => "SYSTEM",
        },
        status,
        request_id: &s.request_id,
        dataset: [dataset],
    })
}

/// A result in Yodlee's `status` and `additionalStatus` words.
fn outcome(result: ResultCode) -> (&'static str, &'static str) {
    use ResultCode as R;
    let additional = match result {
        R::Success => return ("SUCCESS", "AVAILABLE_DATA_RETRIEVED"),
        R::AuthDenied | R::ConsentNotFound => "CONSENT_REQUIRED",
        R::AuthExpired | R::ConnectionExpired => "CONSENT_EXPIRED",
        R::ConnectionRevoked => "CONSENT_REVOKED",
        R::ConnectionReauthenticate => "NEW_AUTHENTICATION_REQUIRED",
        R::InternalError => "TECH_ERROR",
        R::InternalTimeout | R::ProviderTimeout => "REQUEST_TIME_OUT",
        R::ProviderUnavailable | R::ProviderMaintenance => "SITE_UNAVAILABLE",
        R::ProviderNotFound => "SITE_NOT_SUPPORTED",
        R::ProviderFailure | R::ProviderRequestLimit => "DATA_RETRIEVAL_FAILED",
    };
    ("FAILED", additional)
}

/// Whether and how the user may refresh again, in Yodlee's words: a site Yodlee does not
/// support never (`DISALLOW_UPDATE`), a consent to give again only through the bank
/// (`ALLOW_UPDATE_WITH_CREDENTIALS`), anything else as is (`ALLOW_UPDATE`).
fn eligibility(additional_status: &str, reconnect_required: bool) -> &'static str {
    match additional_status {
        "SITE_NOT_SUPPORTED" => "DISALLOW_UPDATE",
        "CONSENT_REQUIRED"
        | "CONSENT_EXPIRED"
        | "CONSENT_REVOKED"
        | "NEW_AUTHENTICATION_REQUIRED" => "ALLOW_UPDATE_WITH_CREDENTIALS",
        _ if reconnect_required => "ALLOW_UPDATE_WITH_CREDENTIALS",
        _ => "ALLOW_UPDATE",
    }
}

/// Yodlee's enumeration of a dataset's `additionalStatus` (its providerAccount and account
/// data model); freshet sends only these.
pub const ADDITIONAL_STATUSES: &[&str] = &[
    "LOGIN_IN_PROGRESS",
    "DATA_RETRIEVAL_IN_PROGRESS",
    "ACCT_SUMMARY_RECEIVED",
    "AVAILABLE_DATA_RETRIEVED",
    "PARTIAL_DATA_RETRIEVED",
    "DATA_RETRIEVAL_FAILED",
    "DATA_NOT_AVAILABLE",
    "ACCOUNT_LOCKED",
    "ADDL_AUTHENTICATION_REQUIRED",
    "BETA_SITE_DEV_IN_PROGRESS",
    "CREDENTIALS_UPDATE_NEEDED",
    "INCORRECT_CREDENTIALS",
    "PROPERTY_VALUE_NOT_AVAILABLE",
    "INVALID_ADDL_INFO_PROVIDED",
    "REQUEST_TIME_OUT",
    "SITE_BLOCKING_ERROR",
    "UNEXPECTED_SITE_ERROR",
    "SITE_NOT_SUPPORTED",
    "SITE_UNAVAILABLE",
    "TECH_ERROR",
    "USER_ACTION_NEEDED_AT_SITE",
    "SITE_SESSION_INVALIDATED",
    "NEW_AUTHENTICATION_REQUIRED",
    "DATASET_NOT_SUPPORTED",
    "ENROLLMENT_REQUIRED_FOR_DATASET",
    "CONSENT_REQUIRED",
    "CONSENT_EXPIRED",
    "CONSENT_REVOKED",
    "INCORRECT_OAUTH_TOKEN",
    "MIGRATION_IN_PROGRESS",
];

/// Yodlee's enumeration of a dataset's `updateEligibility`.
pub const UPDATE_ELIGIBILITIES: &[&str] = &[
    "ALLOW_UPDATE",
    "ALLOW_UPDATE_WITH_CREDENTIALS",
    "DISALLOW_UPDATE",
];

fn time(t: OffsetDateTime) -> Result<String, RenderError> {
    wire::seconds_z(t).map_err(|_| RenderError::Time(Dialect::Yodlee))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_is_from_yodlees_enumerations() {
        for code in ResultCode::ALL {
            let (_, additional) = outcome(code);
            assert!(ADDITIONAL_STATUSES.contains(&additional), "{code:?}");
            for reconnect in [false, true] {
                let e = eligibility(additional, reconnect);
                assert!(UPDATE_ELIGIBILITIES.contains(&e), "{code:?}");
            }
        }
        for interim in ["DATA_RETRIEVAL_IN_PROGRESS", "ACCT_SUMMARY_RECEIVED"] {
            assert!(ADDITIONAL_STATUSES.contains(&interim));
        }
        // The seed's failure example misspells it; Yodlee's enumeration does not.
        assert!(!ADDITIONAL_STATUSES.contains(&"DATA_RETREIVAL_FAILED"));
        assert_eq!(
            outcome(ResultCode::ProviderFailure).1,
            "DATA_RETRIEVAL_FAILED"
        );
        assert_eq!(eligibility("SITE_NOT_SUPPORTED", false), "DISALLOW_UPDATE");
        assert_eq!(
            eligibility("CONSENT_REQUIRED", false),
            "ALLOW_UPDATE_WITH_CREDENTIALS"
        );
    }

    #[test]
    fn only_success_succeeds() {
        for code in ResultCode::ALL {
            let (status, additional) = outcome(code);
            assert_eq!(status == "SUCCESS", code == ResultCode::Success, "{code:?}");
            assert!(
                additional
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_')
            );
        }
    }
}
