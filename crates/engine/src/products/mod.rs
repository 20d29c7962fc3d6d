//! Data products (Klavi's product requests): a client asks for reports over a customer's link
//! — a checking-account statement, a credit-card summary — each to be POSTed to its own
//! callback URL.
//!
//! A request is checked, then stored in one transaction with `product.request_received` and
//! with a hidden endpoint per product targeting its callback URL; the caller gets its id at
//! once. A generator ([`worker`]) claims pending requests under a lease, builds each product
//! from what freshet holds ([`build`]), and settles it in one transaction: the product's row,
//! `product.generated_success` or `product.generated_failed`, and — on success — a delivery of
//! the product to its hidden endpoint. From there the product travels like any webhook: the
//! outbox, the dispatcher's leases and retry schedule, Standard Webhooks signatures (with the
//! request's own secret) and the attempt log.

pub mod build;
mod worker;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use freshet_model::{
    ApplicationId, ConsentStatus, CustomerId, EventType, FieldError, Validation,
    events::{EventData, ProductEvent, ProductRequestSnapshot, ProviderSnapshot},
    products::{ProductKind, ProductRequest, ProductRequestId, RequestStatus},
    refresh::{ConsentId, LinkId},
};
use freshet_store::{ProductRequestView, StoreError};
use time::Date;
use tokio::{sync::Notify, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    Engine,
    delivery::target::{Refusal, TargetPolicy},
    refresh::{Refresher, snapshots},
};

/// Days a request covers when it names no period.
pub const DEFAULT_PERIOD_DAYS: i64 = 90;
const MAX_TAX_ID: usize = 32;

/// How the generator behaves.
#[derive(Clone, Debug)]
pub struct ProductsConfig {
    pub node: String,
    /// How long a claimed request stays this node's.
    pub lease: Duration,
    /// How often to look for requests when nothing wakes the generator.
    pub poll: Duration,
    /// Claims of one request before its unsettled products fail.
    pub max_attempts: i64,
}

impl Default for ProductsConfig {
    fn default() -> Self {
        Self {
            node: "freshet".into(),
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            max_attempts: 3,
        }
    }
}

/// A request as the client made it; every field is checked here.
#[derive(Clone, Debug, Default)]
pub struct ProductRequestFields {
    pub link_id: Option<String>,
    pub consent_ids: Option<Vec<String>>,
    pub products: Option<Vec<String>>,
    pub product_callback_urls: Option<BTreeMap<String, String>>,
    pub tax_id: Option<String>,
    pub from: Option<Date>,
    pub to: Option<Date>,
}

/// Why a product request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProductError {
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("invalid product request")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The products engine of one node: cheap to clone.
#[derive(Clone)]
pub struct Products {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    refresher: Refresher,
    policy: Arc<TargetPolicy>,
    config: ProductsConfig,
    wake: Notify,
}

impl Products {
    pub fn new(
        engine: Engine,
        refresher: Refresher,
        policy: Arc<TargetPolicy>,
        config: ProductsConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                engine,
                refresher,
                policy,
                config,
                wake: Notify::new(),
            }),
        }
    }

    fn store(&self) -> &freshet_store::Store {
        &self.inner.engine.store
    }

    /// Starts the generator; it stops when `stop` is cancelled.
    pub fn spawn(&self, stop: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(worker::run(self.clone(), stop))
    }

    /// Claims and generates what is pending, once: the step tests drive. Returns how many
    /// requests it took.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        worker::pass(self).await
    }

    fn provider(&self, id: &str) -> ProviderSnapshot {
        self.inner
            .refresher
            .providers()
            .find(|p| p.id == id)
            .map_or_else(|| snapshots::unknown_provider(id), snapshots::provider)
    }

    /// Checks and stores a request, records `product.request_received`, and leaves the
    /// products to the generator. Returns the request with its callback secret.
    pub async fn request(
        &self,
        app: ApplicationId,
        customer_id: CustomerId,
        f: ProductRequestFields,
    ) -> Result<ProductRequestView, ProductError> {
        let customer = self
            .store()
            .get_customer(app, customer_id)
            .await?
            .ok_or(ProductError::NotFound("customer"))?;
        let mut v = Validation::new();
        let link = self.check_link(&mut v, app, customer_id, &f).await?;
        let consent_ids = match &link {
            Some(l) => self.check_consents(&mut v, app, l.id, &f).await?,
            None => Vec::new(),
        };
        let products = check_products(&mut v, f.products.as_deref());
        let callback_urls = self.check_callbacks(&mut v, &products, &f);
        let (period_from, period_to) = check_period(&mut v, f.from, f.to);
        if f.tax_id
            .as_ref()
            .is_some_and(|t| t.trim().is_empty() || t.len() > MAX_TAX_ID)
        {
            v.add("tax_id", format!("must be 1 to {MAX_TAX_ID} characters"));
        }
        v.finish(|| ()).map_err(ProductError::Invalid)?;
        let link = link.expect("a valid request has a link");

        let now = freshet_model::time::now();
        let request = ProductRequest {
            id: ProductRequestId::new(),
            application_id: app,
            customer_id,
            link_id: link.id,
            consent_ids,
            products,
            callback_urls,
            tax_id: f.tax_id,
            period_from,
            period_to,
            status: RequestStatus::Pending,
            attempts: 0,
            created_at: now,
            updated_at: now,
        };
        let secret = freshet_dialects::new_secret();
        let data = EventData::Product(ProductEvent {
            customer: snapshots::customer(&customer),
            request: self.snapshot(&request, &link.provider_id),
            product: None,
            failure_reason: None,
        });
        let mut tx = self.inner.engine.begin().await?;
        let results = tx.insert_product_request(&request, &secret).await?;
        tx.record(
            app,
            Some(customer_id),
            data,
            EventType::ProductRequestReceived,
        )
        .await?;
        tx.commit().await?;
        self.inner.wake.notify_one();
        Ok(ProductRequestView {
            request,
            products: results,
            callback_secret: secret,
        })
    }

    /// The request as its events carry it.
    fn snapshot(&self, r: &ProductRequest, provider_id: &str) -> ProductRequestSnapshot {
        ProductRequestSnapshot {
            id: r.id.to_string(),
            tax_id: r.tax_id.clone(),
            institution_code: self.provider(provider_id).code,
            link_id: r.link_id.to_string(),
            consent_ids: r.consent_ids.iter().map(|c| c.to_string()).collect(),
            products: r.products.iter().map(|p| p.as_str().to_string()).collect(),
            product_callback_urls: r.callback_urls.clone(),
        }
    }

    async fn check_link(
        &self,
        v: &mut Validation,
        app: ApplicationId,
        customer: CustomerId,
        f: &ProductRequestFields,
    ) -> Result<Option<freshet_model::refresh::Link>, StoreError> {
        let Some(raw) = f.link_id.as_deref() else {
            v.add("link_id", "is required");
            return Ok(None);
        };
        let Ok(id) = raw.parse::<LinkId>() else {
            v.add("link_id", "must be a UUID");
            return Ok(None);
        };
        match self.store().get_link(app, id).await? {
            Some(l) if l.customer_id == customer => Ok(Some(l)),
            _ => {
                v.add("link_id", "names no link of this customer");
                Ok(None)
            }
        }
    }

    async fn check_consents(
        &self,
        v: &mut Validation,
        app: ApplicationId,
        link: LinkId,
        f: &ProductRequestFields,
    ) -> Result<Vec<ConsentId>, StoreError> {
        let ids = f.consent_ids.as_deref().unwrap_or_default();
        if ids.is_empty() {
            v.add(
                "consent_ids",
                "must name at least one authorised consent of the link",
            );
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, raw) in ids.iter().enumerate() {
            let field = format!("consent_ids[{i}]");
            let Ok(id) = raw.parse::<ConsentId>() else {
                v.add(field, "must be a UUID");
                continue;
            };
            if !seen.insert(id) {
                v.add(field, "is named twice");
                continue;
            }
            match self.store().get_consent(app, id).await? {
                Some(c) if c.link_id == link && c.status == ConsentStatus::Authorised => {
                    out.push(id)
                }
                Some(c) if c.link_id == link => v.add(
                    field,
                    format!("the consent is {}, not authorised", c.status.as_str()),
                ),
                _ => v.add(field, "names no consent of the link"),
            }
        }
        Ok(out)
    }

    fn check_callbacks(
        &self,
        v: &mut Validation,
        products: &[ProductKind],
        f: &ProductRequestFields,
    ) -> BTreeMap<String, String> {
        let given = f.product_callback_urls.clone().unwrap_or_default();
        let mut out = BTreeMap::new();
        for p in products {
            let field = format!("product_callback_urls.{}", p.as_str());
            let Some(url) = given.get(p.as_str()).map(|u| u.trim()) else {
                v.add(field, "is required: every product is sent to its own URL");
                continue;
            };
            match self.inner.policy.check_url(url) {
                Ok(_) => {
                    out.insert(p.as_str().to_string(), url.to_string());
                }
                Err(Refusal::Address(ip, kind)) => v.add(
                    field,
                    format!(
                        "points at {ip}, a {kind} address, which this freshet does not deliver to"
                    ),
                ),
                Err(r) => v.add(field, r.to_string()),
            }
        }
        for name in given.keys() {
            if !products.iter().any(|p| p.as_str() == name) {
                v.add(
                    format!("product_callback_urls.{name}"),
                    "names no requested product",
                );
            }
        }
        out
    }
}

fn check_products(v: &mut Validation, given: Option<&[String]>) -> Vec<ProductKind> {
    let given = given.unwrap_or_default();
    if given.is_empty() {
        v.add("products", "must name at least one product");
    }
    let mut out = Vec::new();
    for (i, name) in given.iter().enumerate() {
        match ProductKind::parse(name) {
            None => {
                let known: Vec<_> = ProductKind::ALL.iter().map(|p| p.as_str()).collect();
                v.add(
                    format!("products[{i}]"),
                    format!(
                        "`{name}` is not a product; freshet builds {}",
                        known.join(", ")
                    ),
                );
            }
            Some(p) if out.contains(&p) => v.add(format!("products[{i}]"), "is named twice"),
            Some(p) => out.push(p),
        }
    }
    out
}

fn check_period(v: &mut Validation, from: Option<Date>, to: Option<Date>) -> (Date, Date) {
    let today = freshet_model::time::now().date();
    let to_day = to.unwrap_or(today);
    let from_day = from.unwrap_or(to_day - time::Duration::days(DEFAULT_PERIOD_DAYS));
    if to_day > today {
        v.add("to", "must not be in the future");
    }
    if from_day > to_day {
        v.add("from", "must not be after to");
    }
    (from_day, to_day)
}
