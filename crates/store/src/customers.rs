//! Customers, always read and written within one application.
//!
//! Every statement here carries `application_id` in its `WHERE` clause: a customer of another
//! application is indistinguishable from one that does not exist.

use freshet_model::{
    ApplicationId, Customer, CustomerId, CustomerPatch, NewCustomer, Page, PageRequest, Patch,
};
use serde_json::{Map, Value};
use sqlx::types::Json;
use uuid::Uuid;

use crate::{
    Result, Store, StoreError,
    codec::{RowExt, Ts},
    on_pool,
};

/// The columns every customer query returns, in `concat!`-able form: the SQL stays `'static`.
macro_rules! columns {
    () => {
        "id, application_id, external_id, login_name, personal_tax_id, business_tax_id, \
         external_info, created_at, updated_at"
    };
}

fn customer_from_row(r: &impl RowExt) -> Result<Customer, sqlx::Error> {
    Ok(Customer {
        id: r.uuid("id")?.into(),
        application_id: r.uuid("application_id")?.into(),
        external_id: r.opt_text("external_id")?,
        login_name: r.opt_text("login_name")?,
        personal_tax_id: r.opt_text("personal_tax_id")?,
        business_tax_id: r.opt_text("business_tax_id")?,
        external_info: r.opt_json::<Map<String, Value>>("external_info")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

fn external_id_conflict(e: sqlx::Error) -> StoreError {
    StoreError::on_unique(e, "external_id", "external_id")
}

/// A patch as two bind parameters: whether to touch the column, and its new value.
fn patch_binds<T>(p: Patch<T>) -> (bool, Option<T>) {
    match p {
        Patch::Absent => (false, None),
        Patch::Null => (true, None),
        Patch::Value(v) => (true, Some(v)),
    }
}

impl Store {
    /// Creates a customer of `app`.
    pub async fn insert_customer(&self, app: ApplicationId, c: &NewCustomer) -> Result<Customer> {
        let now = freshet_model::time::now();
        on_pool!(self, write, |pool| {
            let row = sqlx::query(concat!(
                "INSERT INTO customers (",
                columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING ",
                columns!()
            ))
            .bind(CustomerId::new().0)
            .bind(app.0)
            .bind(&c.external_id)
            .bind(&c.login_name)
            .bind(&c.personal_tax_id)
            .bind(&c.business_tax_id)
            .bind(c.external_info.as_ref().map(Json))
            .bind(Ts(now))
            .fetch_one(pool)
            .await
            .map_err(external_id_conflict)?;
            Ok(customer_from_row(&row)?)
        })
    }

    /// Reads a customer of `app`.
    pub async fn get_customer(
        &self,
        app: ApplicationId,
        id: CustomerId,
    ) -> Result<Option<Customer>> {
        on_pool!(self, read, |pool| {
            let row = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM customers WHERE application_id = $1 AND id = $2"
            ))
            .bind(app.0)
            .bind(id.0)
            .fetch_optional(pool)
            .await?;
            Ok(row.map(|r| customer_from_row(&r)).transpose()?)
        })
    }

    /// Lists `app`'s customers in creation order.
    pub async fn list_customers(
        &self,
        app: ApplicationId,
        page: PageRequest,
    ) -> Result<Page<Customer>> {
        let after = page.after.map(|c| c.0).unwrap_or(Uuid::nil());
        on_pool!(self, read, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM customers WHERE application_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            ))
            .bind(app.0)
            .bind(after)
            .bind(i64::from(page.limit) + 1)
            .fetch_all(pool)
            .await?;
            let customers = rows
                .iter()
                .map(customer_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Page::from_overfetch(customers, page.limit, |c| c.id.0))
        })
    }

    /// Applies a partial update in one statement; `None` when `app` has no such customer.
    pub async fn update_customer(
        &self,
        app: ApplicationId,
        id: CustomerId,
        patch: CustomerPatch,
    ) -> Result<Option<Customer>> {
        let (set_ext, ext) = patch_binds(patch.external_id);
        let (set_login, login) = patch_binds(patch.login_name);
        let (set_ptax, ptax) = patch_binds(patch.personal_tax_id);
        let (set_btax, btax) = patch_binds(patch.business_tax_id);
        let (set_info, info) = patch_binds(patch.external_info);
        on_pool!(self, write, |pool| {
            let row = sqlx::query(concat!(
                "UPDATE customers SET \
                   external_id = CASE WHEN $3 THEN $4 ELSE external_id END, \
                   login_name = CASE WHEN $5 THEN $6 ELSE login_name END, \
                   personal_tax_id = CASE WHEN $7 THEN $8 ELSE personal_tax_id END, \
                   business_tax_id = CASE WHEN $9 THEN $10 ELSE business_tax_id END, \
                   external_info = CASE WHEN $11 THEN $12 ELSE external_info END, \
                   updated_at = $13 \
                 WHERE application_id = $1 AND id = $2 RETURNING ",
                columns!()
            ))
            .bind(app.0)
            .bind(id.0)
            .bind(set_ext)
            .bind(&ext)
            .bind(set_login)
            .bind(&login)
            .bind(set_ptax)
            .bind(&ptax)
            .bind(set_btax)
            .bind(&btax)
            .bind(set_info)
            .bind(info.as_ref().map(Json))
            .bind(Ts(freshet_model::time::now()))
            .fetch_optional(pool)
            .await
            .map_err(external_id_conflict)?;
            Ok(row.map(|r| customer_from_row(&r)).transpose()?)
        })
    }

    /// Deletes a customer of `app` and everything that hangs off it; `false` if there was none.
    pub async fn delete_customer(&self, app: ApplicationId, id: CustomerId) -> Result<bool> {
        on_pool!(self, write, |pool| {
            let done = sqlx::query("DELETE FROM customers WHERE application_id = $1 AND id = $2")
                .bind(app.0)
                .bind(id.0)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }
}
