//! Representative canonical events of every type, covering the variants each dialect renders
//! differently: success and every failure result, both refresh stages and triggers, every
//! account change kind, every consent and product event, customers with and without the
//! vendor-facing fields, optional times present and absent. The schema tests render each in
//! every dialect that sends its type.

use std::collections::BTreeMap;

use freshet_model::{
    ConsentStatus, EventType, ResultCode,
    erasure::{CustomerErased, ErasedCounts},
    events::{
        AccountChange, AccountChangeKind, AccountNewTransactions, AccountsUpdated, ConsentChanged,
        ConsentDetail, ConsentSnapshot, CustomerSnapshot, EndpointDisabled, EndpointTest, Event,
        EventData, LinkCreated, LinkSnapshot, Permission, ProductEvent, ProductRequestSnapshot,
        ProviderCompleted, ProviderSnapshot, RefreshCompleted, RefreshProgress, RefreshStage,
        RefreshTrigger, SubTaskSnapshot, TaskStatus, TransactionsNew,
    },
};
use serde_json::json;
use time::{OffsetDateTime, macros::datetime};

use crate::support::{event, provider, strings};

/// One canonical event and what it stands for.
pub struct Case {
    pub name: String,
    pub event: Event,
}

const AT: OffsetDateTime = datetime!(2026-11-24 11:31:07.25 UTC);
const CONSENT: &str = "0192f0c2-0000-7000-8000-00000000c001";
const LINK: &str = "0192f0c2-0000-7000-8000-00000000b001";

/// Every case, in a stable order; ids differ per case.
pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |name: String, event_type: EventType, data: EventData| {
        let id = format!("0192f0c2-0000-7000-8000-{:012}", cases.len() + 1);
        cases.push(Case {
            name,
            event: event(&id, event_type, AT, data),
        });
    };
    for (who, customer) in customers() {
        add(
            format!("link.created, {who}"),
            EventType::LinkCreated,
            EventData::LinkCreated(LinkCreated {
                customer,
                provider: santander(),
                link: link(),
            }),
        );
    }
    for (t, status) in consent_types() {
        for (who, customer) in customers() {
            add(
                format!("{}, {who}", t.as_str()),
                t,
                EventData::Consent(consent(customer, status, who == "full")),
            );
        }
    }
    for trigger in [
        RefreshTrigger::Manual,
        RefreshTrigger::FirstImport,
        RefreshTrigger::Scheduled,
    ] {
        for stage in [
            RefreshStage::LoginSuccess,
            RefreshStage::AccountSummaryReceived,
        ] {
            for first_import in [false, true] {
                let mut s = sub_task(TaskStatus::Running, None);
                if first_import || stage == RefreshStage::LoginSuccess {
                    s.last_updated = None;
                }
                let (who, customer) = &customers()[usize::from(first_import)];
                add(
                    format!(
                        "refresh.progress {stage:?} {trigger:?}, first import {first_import}, {who}"
                    ),
                    EventType::RefreshProgress,
                    EventData::RefreshProgress(RefreshProgress {
                        customer: customer.clone(),
                        task_id: TASK.into(),
                        trigger,
                        stage,
                        sub_task: s,
                    }),
                );
            }
        }
    }
    for (i, result) in ResultCode::ALL.into_iter().enumerate() {
        let mut s = ended(result);
        // A first import that failed has never retrieved anything.
        if i % 2 == 1 {
            s.last_updated = None;
        }
        let trigger = [
            RefreshTrigger::Manual,
            RefreshTrigger::Scheduled,
            RefreshTrigger::FirstImport,
        ][i % 3];
        add(
            format!("refresh.provider.completed {result:?} {trigger:?}"),
            EventType::RefreshProviderCompleted,
            EventData::ProviderCompleted(ProviderCompleted {
                customer: customers()[i % 2].1.clone(),
                task_id: TASK.into(),
                trigger,
                sub_task: s,
            }),
        );
    }
    for results in refresh_outcomes() {
        add(
            format!("refresh.completed {results:?}"),
            EventType::RefreshCompleted,
            EventData::RefreshCompleted(refresh_completed(&results)),
        );
    }
    for (name, task_id, accounts) in [
        ("one account, from a refresh", Some(SUB_TASK), 1),
        ("three accounts, no task", None, 3),
    ] {
        add(
            format!("transactions.new, {name}"),
            EventType::TransactionsNew,
            EventData::TransactionsNew(TransactionsNew {
                customer: customers()[0].1.clone(),
                provider: tatra(),
                consent_id: CONSENT.into(),
                task_id: task_id.map(String::from),
                accounts: (1..=accounts)
                    .map(|n| AccountNewTransactions {
                        account_id: account(n),
                        count: n as u32,
                    })
                    .collect(),
            }),
        );
    }
    for (task_status, changes) in [
        (
            TaskStatus::Completed,
            vec![
                AccountChangeKind::Added,
                AccountChangeKind::Updated,
                AccountChangeKind::Removed,
            ],
        ),
        (TaskStatus::Completed, Vec::new()),
        (TaskStatus::Failed, Vec::new()),
    ] {
        add(
            format!(
                "accounts.updated {task_status:?}, {} changes",
                changes.len()
            ),
            EventType::AccountsUpdated,
            EventData::AccountsUpdated(AccountsUpdated {
                customer: customers()[1].1.clone(),
                provider: slsp(),
                consent_id: CONSENT.into(),
                task_id: SUB_TASK.into(),
                trigger: RefreshTrigger::Manual,
                task_status,
                accounts: changes
                    .into_iter()
                    .enumerate()
                    .map(|(n, change)| AccountChange {
                        account_id: account(n),
                        change,
                    })
                    .collect(),
            }),
        );
    }
    for (name, t, customer, tax_id, product, failure) in product_cases() {
        add(
            format!("{}, {name}", t.as_str()),
            t,
            EventData::Product(product_event(customer, tax_id, product, failure)),
        );
    }
    for data in [Some(json!({"hello": "world"})), None] {
        add(
            format!("endpoint.test, data {}", data.is_some()),
            EventType::EndpointTest,
            EventData::EndpointTest(EndpointTest {
                endpoint_id: "0192f0c2-0000-7000-8000-00000000e001".into(),
                data,
            }),
        );
    }
    for last_success_at in [Some(datetime!(2026-11-19 08:00 UTC)), None] {
        add(
            format!(
                "endpoint.disabled, ever succeeded {}",
                last_success_at.is_some()
            ),
            EventType::EndpointDisabled,
            EventData::EndpointDisabled(EndpointDisabled {
                endpoint_id: "0192f0c2-0000-7000-8000-00000000e001".into(),
                url: "https://receiver.example/hooks".into(),
                reason: "no delivery succeeded for 5 days".into(),
                last_success_at,
            }),
        );
    }
    add(
        "customer.erased".into(),
        EventType::CustomerErased,
        EventData::CustomerErased(CustomerErased {
            customer_id: "0192f0c2-0000-7000-8000-000000000c01".into(),
            removed: ErasedCounts {
                consents: 2,
                consents_revoked_at_bank: 1,
                bank_revocations_failed: 1,
                tokens: 4,
                links: 2,
                accounts: 3,
                transactions: 120,
                refresh_tasks: 1,
                events_scrubbed: 11,
                deliveries_cancelled: 5,
                ..Default::default()
            },
        }),
    );
    cases
}

const TASK: &str = "0192f0c2-0000-7000-8000-0000000000a0";
const SUB_TASK: &str = "0192f0c2-0000-7000-8000-0000000000a1";

/// A customer with every vendor-facing field, and one with none of them.
fn customers() -> [(&'static str, CustomerSnapshot); 2] {
    let full = CustomerSnapshot {
        id: "0192f0c2-0000-7000-8000-000000000c01".into(),
        external_id: Some("crm-8812".into()),
        login_name: Some("fri21".into()),
        personal_tax_id: Some("25872252137".into()),
        business_tax_id: Some("11222333000181".into()),
        external_info: json!({"myTraceId": "yourTraceId-1"}).as_object().cloned(),
    };
    let bare = CustomerSnapshot {
        id: "0192f0c2-0000-7000-8000-000000000c02".into(),
        ..Default::default()
    };
    [("full", full), ("bare", bare)]
}

fn santander() -> ProviderSnapshot {
    provider("santander-br", "Santander Brasil", "033", 30_001)
}

fn tatra() -> ProviderSnapshot {
    provider("tatrabanka", "Tatra banka", "TB", 20_001)
}

fn slsp() -> ProviderSnapshot {
    provider("slsp", "Slovenská sporiteľňa", "SLSP", 20_002)
}

/// A bank without a code, as the OBIE banks are.
fn natwest() -> ProviderSnapshot {
    provider("natwest", "Natwest", "", 10_001)
}

fn link() -> LinkSnapshot {
    crate::support::link(LINK, 4_210_995_860, datetime!(2026-05-02 09:15:00 UTC))
}

fn account(n: usize) -> String {
    format!("0192f0c2-0000-7000-8000-0000000a{n:04}")
}

fn consent_types() -> [(EventType, ConsentStatus); 7] {
    use ConsentStatus as S;
    use EventType as T;
    [
        (T::ConsentAuthorised, S::Authorised),
        (T::ConsentRejected, S::Rejected),
        (T::ConsentError, S::Error),
        (T::ConsentExpired, S::Expired),
        (T::ConsentRevoked, S::Revoked),
        (T::ConsentDeletedByUser, S::DeletedByUser),
        (T::ConsentExpiring, S::Authorised),
    ]
}

/// `full`: an expiry, a tracking id and granted permissions; otherwise none of them.
fn consent(customer: CustomerSnapshot, status: ConsentStatus, full: bool) -> ConsentChanged {
    use Permission::*;
    let granted = status == ConsentStatus::Authorised || full;
    ConsentChanged {
        customer,
        provider: santander(),
        link: link(),
        consent: ConsentSnapshot {
            id: CONSENT.into(),
            status,
            permissions_requested: vec![
                RegistrationAll,
                AccountsAll,
                CreditCardsAll,
                CreditOperationsAll,
                InvestmentsAll,
            ],
            permissions_granted: if granted {
                vec![RegistrationAll, AccountsAll]
            } else {
                Vec::new()
            },
            expires_at: full.then_some(datetime!(2027-05-02 09:15:00.5 UTC)),
            external_track_id: full.then(|| "222121".into()),
            reconnect_required: !full,
        },
        reason: (!full).then(|| "the bank said so".into()),
    }
}

fn sub_task(status: TaskStatus, result: Option<ResultCode>) -> SubTaskSnapshot {
    SubTaskSnapshot {
        task_id: SUB_TASK.into(),
        provider: natwest(),
        link: link(),
        status,
        result,
        reconnect_required: result.is_some_and(ResultCode::requires_reconnect),
        has_new_transactions: false,
        account_ids: vec![account(1), account(2)],
        consent_ids: strings(&[CONSENT]),
        consent_details: Some(vec![ConsentDetail {
            id: CONSENT.into(),
            expiration_date: Some(datetime!(2027-05-02 09:15 UTC)),
        }]),
        request_id: format!("{SUB_TASK}-1"),
        last_updated: Some(datetime!(2026-11-24 05:00 UTC)),
        last_update_attempt: None,
    }
}

fn ended(result: ResultCode) -> SubTaskSnapshot {
    let status = if result == ResultCode::Success {
        TaskStatus::Completed
    } else {
        TaskStatus::Failed
    };
    let mut s = sub_task(status, Some(result));
    s.has_new_transactions = result == ResultCode::Success;
    s.last_update_attempt = Some(AT);
    if result == ResultCode::Success {
        s.last_updated = Some(AT);
    }
    s
}

/// The sub-tasks' results of each refresh.completed case: all succeeded, one of two failed
/// (the seed's second example), every one failed.
fn refresh_outcomes() -> Vec<Vec<ResultCode>> {
    use ResultCode as R;
    let mut outcomes = vec![
        vec![R::Success],
        vec![R::Success, R::Success],
        vec![R::ProviderFailure, R::Success],
    ];
    // Every failure result, each as a task's first failing sub-task.
    for r in ResultCode::ALL.into_iter().filter(|r| *r != R::Success) {
        outcomes.push(vec![R::Success, r, R::InternalError]);
    }
    outcomes
}

fn refresh_completed(results: &[ResultCode]) -> RefreshCompleted {
    let sub_tasks: Vec<SubTaskSnapshot> = results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut s = ended(*r);
            s.task_id = format!("0192f0c2-0000-7000-8000-0000000001{i:02}");
            // The seed's failure example lists no consent details; a consent may not expire.
            match i % 3 {
                1 => s.consent_details = None,
                2 => {
                    s.consent_details = Some(vec![ConsentDetail {
                        id: CONSENT.into(),
                        expiration_date: None,
                    }])
                }
                _ => {}
            }
            s
        })
        .collect();
    let first_failure = results.iter().copied().find(|r| *r != ResultCode::Success);
    RefreshCompleted {
        customer: customers()[0].1.clone(),
        task_id: TASK.into(),
        trigger: RefreshTrigger::Manual,
        status: if first_failure.is_some() {
            TaskStatus::Failed
        } else {
            TaskStatus::Completed
        },
        result: first_failure.unwrap_or(ResultCode::Success),
        has_new_transactions: sub_tasks.iter().any(|s| s.has_new_transactions),
        sub_tasks,
    }
}

type ProductCase = (
    &'static str,
    EventType,
    CustomerSnapshot,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

fn product_cases() -> Vec<ProductCase> {
    use EventType as T;
    let [(_, full), (_, bare)] = customers();
    let business = CustomerSnapshot {
        personal_tax_id: None,
        ..full.clone()
    };
    vec![
        (
            "for a named tax id",
            T::ProductRequestReceived,
            full.clone(),
            Some("12345678901"),
            None,
            None,
        ),
        (
            "for the customer's CNPJ",
            T::ProductRequestReceived,
            business,
            None,
            None,
            None,
        ),
        (
            "for the customer's CPF",
            T::ProductRequestReceived,
            full.clone(),
            None,
            None,
            None,
        ),
        (
            "full customer",
            T::ProductGeneratedSuccess,
            full.clone(),
            None,
            Some("pf_checking_account"),
            None,
        ),
        (
            "bare customer",
            T::ProductGeneratedSuccess,
            bare.clone(),
            Some("12345678901"),
            Some("pf_credit_card"),
            None,
        ),
        (
            "with a reason",
            T::ProductGeneratedFailed,
            full,
            None,
            Some("pf_checking_account"),
            Some("no checking account"),
        ),
        (
            "without a reason",
            T::ProductGeneratedFailed,
            bare,
            Some("12345678901"),
            Some("pf_credit_card"),
            None,
        ),
    ]
}

fn product_event(
    customer: CustomerSnapshot,
    tax_id: Option<&str>,
    product: Option<&str>,
    failure_reason: Option<&str>,
) -> ProductEvent {
    let callbacks = BTreeMap::from([
        (
            "pf_checking_account".to_string(),
            "https://client.example/checking".to_string(),
        ),
        (
            "pf_credit_card".to_string(),
            "https://client.example/cards?ref=1".to_string(),
        ),
    ]);
    ProductEvent {
        customer,
        request: ProductRequestSnapshot {
            id: "0192f0c2-0000-7000-8000-00000000f001".into(),
            tax_id: tax_id.map(String::from),
            institution_code: "033".into(),
            link_id: LINK.into(),
            consent_ids: strings(&[CONSENT]),
            products: strings(&["pf_checking_account", "pf_credit_card"]),
            product_callback_urls: callbacks,
        },
        product: product.map(String::from),
        failure_reason: failure_reason.map(String::from),
    }
}
