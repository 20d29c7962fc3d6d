//! The Open Finance Brasil bank (santander-br): consents 2.2 and accounts 2.4.
//!
//! As the standard has it: a consent names the customer's CPF; revocation and expiry show as
//! `REJECTED` with a reason; booked items (`TRANSACAO_EFETIVADA`) keep their ids, others may
//! not; lists page with `page` / `page-size` and `links.next`.

use std::collections::HashMap;

use axum::{
    Extension, Json, Router,
    body::Bytes,
    extract::{OriginalUri, Path, Query, State},
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};

use crate::{
    Sandbox,
    bank::{Consent, ConsentState, Denied},
    catalogue::{Bank, Standard},
    data::{Account, AccountKind, TxnState},
    strict::{self, Peer},
    web::{self, bearer, brasil_millis, brasil_time, error, header, unsigned},
};

const CONSENTS: &str = "/{bank}/open-banking/consents/v2/consents";
const ACCOUNTS: &str = "/{bank}/open-banking/accounts/v2/accounts";

pub fn routes() -> Router<Sandbox> {
    Router::new()
        .route(CONSENTS, axum::routing::post(create_consent))
        .route(
            &format!("{CONSENTS}/{{id}}"),
            get(get_consent).delete(delete_consent),
        )
        .route(ACCOUNTS, get(accounts))
        .route(&format!("{ACCOUNTS}/{{account}}/balances"), get(balances))
        .route(
            &format!("{ACCOUNTS}/{{account}}/transactions"),
            get(transactions),
        )
}

const PERMISSIONS: &[&str] = &[
    "ACCOUNTS_READ",
    "ACCOUNTS_BALANCES_READ",
    "ACCOUNTS_TRANSACTIONS_READ",
    "ACCOUNTS_OVERDRAFT_LIMITS_READ",
    "CREDIT_CARDS_ACCOUNTS_READ",
    "CREDIT_CARDS_ACCOUNTS_BILLS_READ",
    "CREDIT_CARDS_ACCOUNTS_BILLS_TRANSACTIONS_READ",
    "CREDIT_CARDS_ACCOUNTS_LIMITS_READ",
    "CREDIT_CARDS_ACCOUNTS_TRANSACTIONS_READ",
    "CUSTOMERS_PERSONAL_IDENTIFICATIONS_READ",
    "CUSTOMERS_PERSONAL_ADITTIONALINFO_READ",
    "CUSTOMERS_BUSINESS_IDENTIFICATIONS_READ",
    "CUSTOMERS_BUSINESS_ADITTIONALINFO_READ",
    "RESOURCES_READ",
];

/// Whether the Brasil bank offers what `permission` reads: it has accounts, no credit cards,
/// so a consent asking for card data is granted without it.
pub(crate) fn offered(permission: &str) -> bool {
    !permission.starts_with("CREDIT_CARDS_")
}

fn fail(status: StatusCode, code: &str, text: &str) -> Response {
    error(Standard::OpenFinanceBrasil, status, code, text, None)
}

/// A call to this bank: the shared start, seen through [`web::Call`].
struct Call<'a>(web::Call<'a>);

impl<'a> std::ops::Deref for Call<'a> {
    type Target = web::Call<'a>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'a> Call<'a> {
    async fn start(
        sb: &'a Sandbox,
        bank: &str,
        headers: &'a HeaderMap,
        original: &OriginalUri,
        uri: &Uri,
    ) -> Result<Self, Response> {
        web::Call::start(
            sb,
            bank,
            Standard::OpenFinanceBrasil,
            headers,
            (original, uri),
            |_| Ok(()),
        )
        .await
        .map(Self)
    }

    fn reply(&self, status: StatusCode, body: Value) -> Response {
        web::with_interaction((status, Json(body)).into_response(), self.headers)
    }

    fn authorise(&self, budget: Option<&str>) -> Result<(Consent, Vec<Account>), Response> {
        if header(self.headers, "x-fapi-interaction-id").is_none() {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "PARAMETRO_NAO_INFORMADO",
                "x-fapi-interaction-id is required",
            ));
        }
        let present = header(self.headers, "x-customer-ip-address").is_some()
            || header(self.headers, "x-fapi-customer-ip-address").is_some();
        self.sb
            .authorise_call(self.bank, bearer(self.headers), None, budget, present)
            .map_err(|d| match d {
                Denied::Token | Denied::Mismatch => fail(
                    StatusCode::UNAUTHORIZED,
                    "NAO_AUTORIZADO",
                    "the access token is not valid",
                ),
                Denied::Expired => fail(
                    StatusCode::UNAUTHORIZED,
                    "CONSENTIMENTO_EXPIRADO",
                    "the consent has expired",
                ),
                Denied::Consent(_) => fail(
                    StatusCode::FORBIDDEN,
                    "CONSENTIMENTO_EM_STATUS_REJEITADO",
                    "the consent is not authorised",
                ),
                Denied::Budget => fail(
                    StatusCode::TOO_MANY_REQUESTS,
                    "LIMITE_REQUISICOES_EXCEDIDO",
                    "unattended access for today is used up",
                ),
            })
    }
}

fn meta(records: usize, pages: usize) -> Value {
    json!({"totalRecords": records, "totalPages": pages, "requestDateTime": brasil_time(crate::now())})
}

fn consent_body(c: &Consent, self_url: &str) -> Value {
    let now = crate::now();
    let rejection = |by: &str, code: &str| json!({"rejectedBy": by, "reason": {"code": code}});
    let (status, rejection) = match c.state {
        ConsentState::Awaiting => ("AWAITING_AUTHORISATION", None),
        ConsentState::Authorised if c.expired(now) => (
            "REJECTED",
            Some(rejection("ASPSP", "CONSENT_MAX_DATE_REACHED")),
        ),
        ConsentState::Authorised => ("AUTHORISED", None),
        ConsentState::Rejected => (
            "REJECTED",
            Some(rejection("USER", "CUSTOMER_MANUALLY_REJECTED")),
        ),
        ConsentState::Deleted | ConsentState::RevokedByCustomer | ConsentState::Superseded => (
            "REJECTED",
            Some(rejection("USER", "CUSTOMER_MANUALLY_REVOKED")),
        ),
    };
    let mut data = json!({
        "consentId": c.id,
        "creationDateTime": brasil_time(c.created_at),
        "status": status,
        "statusUpdateDateTime": brasil_time(c.updated_at),
        "permissions": c.permissions,
        "expirationDateTime": brasil_time(c.expires_at.unwrap_or(now)),
    });
    if let Some(r) = rejection {
        data["rejection"] = r;
    }
    json!({"data": data, "links": {"self": self_url}, "meta": meta(1, 1)})
}

async fn create_consent(
    State(sb): State<Sandbox>,
    Path(bank): Path<String>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    original: OriginalUri,
    uri: Uri,
    body: Bytes,
) -> Response {
    let call = tri!(Call::start(&sb, &bank, &headers, &original, &uri).await);
    tri!(strict::check_consent_creation(
        &sb,
        call.bank,
        &headers,
        peer.as_deref()
    ));
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "PARAMETRO_INVALIDO",
            "the body is not JSON",
        );
    };
    let data = &req["data"];
    let Some(cpf) = data["loggedUser"]["document"]["identification"].as_str() else {
        return fail(
            StatusCode::BAD_REQUEST,
            "PARAMETRO_NAO_INFORMADO",
            "data.loggedUser.document.identification is required",
        );
    };
    if cpf.len() != 11 || !cpf.bytes().all(|b| b.is_ascii_digit()) {
        return fail(
            StatusCode::BAD_REQUEST,
            "PARAMETRO_INVALIDO",
            "data.loggedUser.document.identification must be a CPF of 11 digits",
        );
    }
    let permissions: Vec<String> = data["permissions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect();
    if permissions.is_empty() {
        return fail(
            StatusCode::BAD_REQUEST,
            "PARAMETRO_NAO_INFORMADO",
            "data.permissions is required",
        );
    }
    if let Some(bad) = permissions
        .iter()
        .find(|p| !PERMISSIONS.contains(&p.as_str()))
    {
        return fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "PERMISSAO_INVALIDA",
            &format!("unknown permission {bad}"),
        );
    }
    let Some(expires) = data["expirationDateTime"]
        .as_str()
        .and_then(web::parse_when)
    else {
        return fail(
            StatusCode::BAD_REQUEST,
            "PARAMETRO_NAO_INFORMADO",
            "data.expirationDateTime is required",
        );
    };
    if expires <= crate::now() || expires > crate::now() + time::Duration::days(366) {
        return fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "DATA_EXPIRACAO_INVALIDA",
            "data.expirationDateTime must be within the next 12 months",
        );
    }
    let consent = sb.create_consent(call.bank, |c| {
        c.permissions = permissions;
        c.expires_at = Some(expires);
        c.logged_user = Some(cpf.to_string());
    });
    let url = format!(
        "{}/open-banking/consents/v2/consents/{}",
        call.api_base(),
        consent.id
    );
    call.reply(StatusCode::CREATED, consent_body(&consent, &url))
}

fn known(sb: &Sandbox, bank: &Bank, id: &str) -> Result<Consent, Response> {
    sb.consent(bank, id).ok_or_else(|| {
        fail(
            StatusCode::NOT_FOUND,
            "RECURSO_NAO_ENCONTRADO",
            "no such consent",
        )
    })
}

async fn get_consent(
    State(sb): State<Sandbox>,
    Path((bank, id)): Path<(String, String)>,
    headers: HeaderMap,
    original: OriginalUri,
    uri: Uri,
) -> Response {
    let call = tri!(Call::start(&sb, &bank, &headers, &original, &uri).await);
    let c = tri!(known(&sb, call.bank, &id));
    call.reply(StatusCode::OK, consent_body(&c, &call.self_url))
}

async fn delete_consent(
    State(sb): State<Sandbox>,
    Path((bank, id)): Path<(String, String)>,
    headers: HeaderMap,
    original: OriginalUri,
    uri: Uri,
) -> Response {
    let call = tri!(Call::start(&sb, &bank, &headers, &original, &uri).await);
    let c = tri!(known(&sb, call.bank, &id));
    if !matches!(c.state, ConsentState::Awaiting | ConsentState::Authorised) {
        return fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "CONSENTIMENTO_EM_STATUS_REJEITADO",
            "the consent is already rejected",
        );
    }
    sb.delete(call.bank, &id);
    web::with_interaction(StatusCode::NO_CONTENT.into_response(), &headers)
}

fn page_params(q: &HashMap<String, String>) -> Result<(usize, usize), Response> {
    let number = |key: &str, default: usize, max: usize| -> Result<usize, Response> {
        match q.get(key).map(|v| v.parse::<usize>()) {
            None => Ok(default),
            Some(Ok(n)) if (1..=max).contains(&n) => Ok(n),
            Some(_) => Err(fail(
                StatusCode::UNPROCESSABLE_ENTITY,
                "PARAMETRO_INVALIDO",
                &format!("{key} must be 1 to {max}"),
            )),
        }
    };
    Ok((
        number("page", 1, usize::MAX)?,
        number("page-size", 25, 1000)?,
    ))
}

fn links(self_url: &str, page: usize, pages: usize) -> Value {
    let mut l = json!({"self": self_url});
    if page > 1 {
        l["first"] = json!(web::with_page(self_url, 1));
        l["prev"] = json!(web::with_page(self_url, page - 1));
    }
    if page < pages {
        l["next"] = json!(web::with_page(self_url, page + 1));
        l["last"] = json!(web::with_page(self_url, pages));
    }
    l
}

async fn accounts(
    State(sb): State<Sandbox>,
    Path(bank): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    original: OriginalUri,
    uri: Uri,
) -> Response {
    let call = tri!(Call::start(&sb, &bank, &headers, &original, &uri).await);
    let (page, size) = tri!(page_params(&q));
    let (_, accounts) = tri!(call.authorise((page == 1).then_some("accounts")));
    let (rows, pages) = web::page(&accounts, page, size, false);
    let list: Vec<Value> = rows
        .iter()
        .map(|a| {
            json!({
                "brandName": call.bank.name,
                "companyCnpj": call.bank.institution,
                "type": if a.kind == AccountKind::Savings { "CONTA_POUPANCA" } else { "CONTA_DEPOSITO_A_VISTA" },
                "compeCode": call.bank.code,
                "branchCode": a.branch,
                "number": a.number,
                "checkDigit": a.check_digit,
                "accountId": a.id,
            })
        })
        .collect();
    call.reply(StatusCode::OK, json!({"data": list, "links": links(&call.self_url, page, pages), "meta": meta(accounts.len(), pages)}))
}

fn find<'a>(accounts: &'a [Account], id: &str) -> Result<&'a Account, Response> {
    web::find_account(accounts, id, || {
        fail(
            StatusCode::NOT_FOUND,
            "RECURSO_NAO_ENCONTRADO",
            "no such account under this consent",
        )
    })
}

async fn balances(
    State(sb): State<Sandbox>,
    Path((bank, id)): Path<(String, String)>,
    headers: HeaderMap,
    original: OriginalUri,
    uri: Uri,
) -> Response {
    let call = tri!(Call::start(&sb, &bank, &headers, &original, &uri).await);
    let (_, accounts) = tri!(call.authorise(Some(&format!("accounts/{id}/balances"))));
    let a = tri!(find(&accounts, &id));
    let (booked, available) = sb.balances(call.bank, a);
    let amount = |v: rust_decimal::Decimal| json!({"amount": web::signed(v), "currency": "BRL"});
    call.reply(
        StatusCode::OK,
        json!({
            "data": {
                "availableAmount": amount(available),
                "blockedAmount": {"amount": unsigned((booked - available).max(rust_decimal::Decimal::ZERO)), "currency": "BRL"},
                "automaticallyInvestedAmount": amount(rust_decimal::Decimal::ZERO),
                "updateDateTime": brasil_time(crate::now()),
            },
            "links": {"self": call.self_url},
            "meta": meta(1, 1),
        }),
    )
}

async fn transactions(
    State(sb): State<Sandbox>,
    Path((bank, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    original: OriginalUri,
    uri: Uri,
) -> Response {
    let call = tri!(Call::start(&sb, &bank, &headers, &original, &uri).await);
    let (page, size) = tri!(page_params(&q));
    let date = |key: &str| {
        web::query_date(&q, key)
            .map_err(|why| fail(StatusCode::UNPROCESSABLE_ENTITY, "PARAMETRO_INVALIDO", &why))
    };
    let from = tri!(date("fromBookingDate"));
    let to = tri!(date("toBookingDate"));
    if from.is_some() != to.is_some() {
        return fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "PARAMETRO_NAO_INFORMADO",
            "fromBookingDate and toBookingDate go together",
        );
    }
    let budget = (page == 1).then(|| format!("accounts/{id}/transactions"));
    let (_, accounts) = tri!(call.authorise(budget.as_deref()));
    let a = tri!(find(&accounts, &id));
    let today = crate::now().date();
    // Without dates, the standard's default window: the last 360 days, which covers all history.
    let (rows, _) = sb.transactions(
        call.bank,
        a,
        from.unwrap_or(today - time::Duration::days(360)),
        to.unwrap_or(today),
        page == 1,
    );
    let mut rows = rows;
    rows.sort_by_key(|t| (t.date, t.seconds));
    let (rows, pages) = web::page(&rows, page, size, false);
    let list: Vec<Value> = rows
        .iter()
        .map(|t| {
            let when = t.date.midnight().assume_utc() + time::Duration::seconds(i64::from(t.seconds));
            json!({
                "transactionId": t.id,
                "completedAuthorisedPaymentType": if t.state == TxnState::Pending { "LANCAMENTO_FUTURO" } else { "TRANSACAO_EFETIVADA" },
                "creditDebitType": if t.amount.is_sign_negative() { "DEBITO" } else { "CREDITO" },
                "transactionName": t.description,
                "type": t.kind,
                "transactionAmount": {"amount": unsigned(t.amount), "currency": "BRL"},
                "transactionDateTime": brasil_millis(when),
            })
        })
        .collect();
    call.reply(StatusCode::OK, json!({"data": list, "links": links(&call.self_url, page, pages), "meta": {"requestDateTime": brasil_time(crate::now())}}))
}
