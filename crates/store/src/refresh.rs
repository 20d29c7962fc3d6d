//! Refresh tasks and sub-tasks. Sub-tasks are claimed under a lease like deliveries: a node
//! that dies mid-refresh loses its claims when the lease runs out and another node (or the
//! same one, restarted) takes them over. Every later write of the claimed sub-task names the
//! lease token, so a node that lost its lease cannot finish what another now runs.

use std::time::Duration;

use freshet_model::{
    ApplicationId, CustomerId, ResultCode,
    events::{AccountChange, RefreshStage, RefreshTrigger, TaskStatus},
    refresh::{AccountId, ConsentId, SubTask, SubTaskId, Task, TaskId},
};
use serde_json::{Value, json};
use sqlx::types::Json;
use uuid::Uuid;

use crate::{
    Result, Store, StoreKind, Tx,
    accounts::{parse_ymd, ymd},
    codec::{RowExt, Ts},
    on_pool, on_tx,
};

macro_rules! task_columns {
    () => {
        "id, application_id, customer_id, status, result, has_new_transactions, trigger_kind, \
         created_at, updated_at"
    };
}
pub(crate) use task_columns;

macro_rules! sub_columns {
    () => {
        "id, task_id, application_id, customer_id, consent_id, provider_id, status, result, \
         reconnect_required, has_new_transactions, account_ids, stage, account_changes, \
         new_transactions, attempts, window_from, window_to, customer_ip, trigger_kind, \
         started_at, finished_at, created_at"
    };
}
pub(crate) use sub_columns;

fn decode<T>(what: &str, v: Option<T>) -> Result<T, sqlx::Error> {
    v.ok_or_else(|| sqlx::Error::Decode(format!("stored {what} is unknown").into()))
}

fn result_of(r: &impl RowExt) -> Result<Option<ResultCode>, sqlx::Error> {
    r.opt_text("result")?
        .map(|s| decode("result", ResultCode::parse(&s)))
        .transpose()
}

pub(crate) fn task_from_row(r: &impl RowExt) -> Result<Task, sqlx::Error> {
    Ok(Task {
        id: r.uuid("id")?.into(),
        application_id: r.uuid("application_id")?.into(),
        customer_id: r.uuid("customer_id")?.into(),
        status: decode("status", TaskStatus::parse(&r.text("status")?))?,
        result: result_of(r)?,
        has_new_transactions: r.bool("has_new_transactions")?,
        trigger: decode("trigger", RefreshTrigger::parse(&r.text("trigger_kind")?))?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

pub(crate) fn sub_from_row(r: &impl RowExt) -> Result<SubTask, sqlx::Error> {
    let date = |col: &str| -> Result<_, sqlx::Error> {
        r.opt_text(col)?.map(|d| parse_ymd(col, &d)).transpose()
    };
    Ok(SubTask {
        id: r.uuid("id")?.into(),
        task_id: r.uuid("task_id")?.into(),
        application_id: r.uuid("application_id")?.into(),
        customer_id: r.uuid("customer_id")?.into(),
        consent_id: r.uuid("consent_id")?.into(),
        provider_id: r.text("provider_id")?,
        status: decode("status", TaskStatus::parse(&r.text("status")?))?,
        result: result_of(r)?,
        reconnect_required: r.bool("reconnect_required")?,
        has_new_transactions: r.bool("has_new_transactions")?,
        account_ids: r
            .opt_json::<Vec<Uuid>>("account_ids")?
            .unwrap_or_default()
            .into_iter()
            .map(AccountId)
            .collect(),
        stage: r
            .opt_text("stage")?
            .map(|s| decode("stage", RefreshStage::parse(&s)))
            .transpose()?,
        account_changes: r.opt_json("account_changes")?,
        new_transactions: r.opt_json("new_transactions")?.unwrap_or_else(|| json!({})),
        attempts: r.i64("attempts")?,
        window_from: date("window_from")?,
        window_to: date("window_to")?,
        customer_ip: r.opt_text("customer_ip")?,
        trigger: decode("trigger", RefreshTrigger::parse(&r.text("trigger_kind")?))?,
        started_at: r.opt_ts("started_at")?,
        finished_at: r.opt_ts("finished_at")?,
        created_at: r.ts("created_at")?,
    })
}

/// A task and its sub-tasks.
pub type TaskView = (Task, Vec<SubTask>);

/// The accounts a sub-task found, in the bank's order, and what changed among them.
#[derive(Clone, Copy, Debug)]
pub struct AccountSummary<'a> {
    pub accounts: &'a [AccountId],
    pub changes: &'a [AccountChange],
}

/// How a claimed sub-task ended, for [`Tx::finish_subtask`].
#[derive(Clone, Copy, Debug)]
pub struct SubTaskEnd<'a> {
    pub status: TaskStatus,
    pub result: ResultCode,
    pub reconnect_required: bool,
    /// The transactions added per account, written in the same transaction.
    pub added: &'a [(AccountId, u32)],
    /// The account summary, when the sub-task did not record it on its own before (as
    /// [`Tx::reach_account_summary`] would have).
    pub summary: Option<AccountSummary<'a>>,
}

/// A customer's unfinished tasks, oldest first.
const OPEN_TASK_IDS: &str = "SELECT id FROM refresh_tasks WHERE application_id = $1 \
     AND customer_id = $2 AND status IN ('Pending', 'Running') ORDER BY id";

impl Tx {
    pub async fn insert_task(&mut self, t: &Task) -> Result<()> {
        on_tx!(self, |conn| {
            sqlx::query(concat!(
                "INSERT INTO refresh_tasks (",
                task_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ))
            .bind(t.id.0)
            .bind(t.application_id.0)
            .bind(t.customer_id.0)
            .bind(t.status.as_str())
            .bind(t.result.map(|r| r.as_str()))
            .bind(t.has_new_transactions)
            .bind(t.trigger.as_str())
            .bind(Ts(t.created_at))
            .bind(Ts(t.updated_at))
            .execute(&mut *conn)
            .await?;
        });
        Ok(())
    }

    pub async fn insert_subtask(&mut self, s: &SubTask) -> Result<()> {
        let ids: Vec<Uuid> = s.account_ids.iter().map(|a| a.0).collect();
        on_tx!(self, |conn| {
            sqlx::query(concat!(
                "INSERT INTO refresh_subtasks (",
                sub_columns!(),
                ", updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                 $15, $16, $17, $18, $19, $20, $21, $22, $22)"
            ))
            .bind(s.id.0)
            .bind(s.task_id.0)
            .bind(s.application_id.0)
            .bind(s.customer_id.0)
            .bind(s.consent_id.0)
            .bind(&s.provider_id)
            .bind(s.status.as_str())
            .bind(s.result.map(|r| r.as_str()))
            .bind(s.reconnect_required)
            .bind(s.has_new_transactions)
            .bind(Json(&ids))
            .bind(s.stage.map(|st| st.as_str()))
            .bind(s.account_changes.as_ref().map(Json))
            .bind(Json(&s.new_transactions))
            .bind(s.attempts)
            .bind(s.window_from.map(ymd))
            .bind(s.window_to.map(ymd))
            .bind(&s.customer_ip)
            .bind(s.trigger.as_str())
            .bind(s.started_at.map(Ts))
            .bind(s.finished_at.map(Ts))
            .bind(Ts(s.created_at))
            .execute(&mut *conn)
            .await?;
        });
        Ok(())
    }

    /// Records the accounts a claimed sub-task found and moves it to its last interim stage,
    /// in one statement; false when the claim was lost. Account changes an earlier attempt
    /// fixed stand: the first attempt's view of what was added or removed is the true one.
    pub async fn reach_account_summary(
        &mut self,
        id: SubTaskId,
        token: &str,
        summary: AccountSummary<'_>,
    ) -> Result<bool> {
        let ids: Vec<Uuid> = summary.accounts.iter().map(|a| a.0).collect();
        let n = on_tx!(self, |conn| {
            sqlx::query(
                "UPDATE refresh_subtasks SET account_ids = $3, \
                 account_changes = COALESCE(account_changes, $4), stage = $5, updated_at = $6 \
                 WHERE id = $1 AND lease_token = $2",
            )
            .bind(id.0)
            .bind(token)
            .bind(Json(&ids))
            .bind(Json(summary.changes))
            .bind(RefreshStage::AccountSummaryReceived.as_str())
            .bind(Ts(freshet_model::time::now()))
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Records that the bank let a claimed sub-task in and listed the accounts, unless an
    /// earlier attempt did; true when this call did (the stage is then reported once).
    pub async fn reach_login_success(&mut self, id: SubTaskId, token: &str) -> Result<bool> {
        let n = on_tx!(self, |conn| {
            sqlx::query(
                "UPDATE refresh_subtasks SET stage = $3, updated_at = $4 \
                 WHERE id = $1 AND lease_token = $2 AND stage IS NULL",
            )
            .bind(id.0)
            .bind(token)
            .bind(RefreshStage::LoginSuccess.as_str())
            .bind(Ts(freshet_model::time::now()))
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Ends a claimed sub-task as `end` says; `None` when the claim was lost (another node
    /// now has it).
    pub async fn finish_subtask(
        &mut self,
        id: SubTaskId,
        token: &str,
        end: SubTaskEnd<'_>,
    ) -> Result<Option<SubTask>> {
        let SubTaskEnd {
            status,
            result,
            reconnect_required,
            added,
            summary,
        } = end;
        let now = freshet_model::time::now();
        let counts: serde_json::Map<String, Value> = added
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(account, n)| (account.0.to_string(), json!(n)))
            .collect();
        let ids: Option<Vec<Uuid>> = summary.map(|s| s.accounts.iter().map(|a| a.0).collect());
        on_tx!(self, |conn| {
            let row = sqlx::query(concat!(
                "UPDATE refresh_subtasks SET status = $3, result = $4, reconnect_required = $5, \
                 finished_at = $6, updated_at = $6, lease_token = NULL, lease_until = NULL, \
                 new_transactions = $7, has_new_transactions = $8, \
                 account_ids = COALESCE($9, account_ids), \
                 account_changes = COALESCE(account_changes, $10), stage = COALESCE($11, stage) \
                 WHERE id = $1 AND lease_token = $2 AND status = 'Running' RETURNING ",
                sub_columns!()
            ))
            .bind(id.0)
            .bind(token)
            .bind(status.as_str())
            .bind(result.as_str())
            .bind(reconnect_required)
            .bind(Ts(now))
            .bind(Json(&counts))
            .bind(!counts.is_empty())
            .bind(ids.as_ref().map(Json))
            .bind(summary.map(|s| Json(s.changes)))
            .bind(summary.map(|_| RefreshStage::AccountSummaryReceived.as_str()))
            .fetch_optional(&mut *conn)
            .await?;
            Ok(row.as_ref().map(sub_from_row).transpose()?)
        })
    }

    /// Takes the customer's turn to start tasks, until the transaction ends. On PostgreSQL the
    /// customer's row is locked, so two requests to refresh one customer take turns; on
    /// SQLite the one writer makes them take turns already.
    pub async fn lock_customer_tasks(&mut self, customer: CustomerId) -> Result<()> {
        if let crate::TxInner::Postgres(t) = &mut self.inner {
            // NO KEY UPDATE: rows being inserted that refer to the customer (their key-share
            // locks) are not held up, only another request taking this lock.
            sqlx::query("SELECT 1 FROM customers WHERE id = $1 FOR NO KEY UPDATE")
                .bind(customer.0)
                .execute(&mut **t)
                .await?;
        }
        Ok(())
    }

    /// The ids of a customer's unfinished tasks, read in the transaction that may add one,
    /// after taking the customer's turn ([`Tx::lock_customer_tasks`]).
    pub async fn open_task_ids(
        &mut self,
        app: ApplicationId,
        customer: CustomerId,
    ) -> Result<Vec<TaskId>> {
        self.lock_customer_tasks(customer).await?;
        on_tx!(self, |conn| {
            let rows = sqlx::query(OPEN_TASK_IDS)
                .bind(app.0)
                .bind(customer.0)
                .fetch_all(&mut *conn)
                .await?;
            Ok(rows
                .iter()
                .map(|r| r.uuid("id").map(TaskId))
                .collect::<Result<_, _>>()?)
        })
    }

    /// Ends a task whose sub-tasks have all ended, once: returns it with its sub-tasks the
    /// one time it moves, `None` otherwise. On PostgreSQL the task row is locked first, so
    /// two sub-tasks ending at once on two nodes cannot both miss the other.
    pub async fn finish_task_if_done(&mut self, task: TaskId) -> Result<Option<TaskView>> {
        let lock = match self.kind() {
            StoreKind::Postgres => " FOR UPDATE",
            StoreKind::Sqlite => "",
        };
        let now = freshet_model::time::now();
        on_tx!(self, |conn| {
            let sql = format!(
                "SELECT {} FROM refresh_tasks WHERE id = $1{lock}",
                task_columns!()
            );
            let t = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(task.0)
                .fetch_one(&mut *conn)
                .await?;
            let t = task_from_row(&t)?;
            if t.status.is_final() {
                return Ok(None);
            }
            let subs = sqlx::query(concat!(
                "SELECT ",
                sub_columns!(),
                " FROM refresh_subtasks WHERE task_id = $1 ORDER BY id"
            ))
            .bind(task.0)
            .fetch_all(&mut *conn)
            .await?;
            let subs: Vec<SubTask> = subs.iter().map(sub_from_row).collect::<Result<_, _>>()?;
            if subs.iter().any(|s| !s.status.is_final()) {
                return Ok(None);
            }
            // Seed 000: success only when every sub-task succeeded; else the first failure.
            let failed = subs.iter().find(|s| s.status == TaskStatus::Failed);
            let (status, result) = match failed {
                None => (TaskStatus::Completed, ResultCode::Success),
                Some(f) => (
                    TaskStatus::Failed,
                    f.result.unwrap_or(ResultCode::InternalError),
                ),
            };
            let has_new = subs.iter().any(|s| s.has_new_transactions);
            sqlx::query(
                "UPDATE refresh_tasks SET status = $2, result = $3, has_new_transactions = $4, \
                 updated_at = $5 WHERE id = $1",
            )
            .bind(task.0)
            .bind(status.as_str())
            .bind(result.as_str())
            .bind(has_new)
            .bind(Ts(now))
            .execute(&mut *conn)
            .await?;
            Ok(Some((
                Task {
                    status,
                    result: Some(result),
                    has_new_transactions: has_new,
                    updated_at: now,
                    ..t
                },
                subs,
            )))
        })
    }
}

impl Store {
    /// Claims up to `limit` of one provider's sub-tasks that are waiting, or whose lease ran
    /// out, for `lease`. Each claim counts as an attempt.
    pub async fn claim_subtasks(
        &self,
        provider: &str,
        node: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<(String, Vec<SubTask>)> {
        let now = freshet_model::time::now();
        let token = format!("{node}/{}", Uuid::now_v7().simple());
        let lock = match self.kind() {
            StoreKind::Postgres => " FOR UPDATE SKIP LOCKED",
            StoreKind::Sqlite => "",
        };
        let sql = format!(
            "UPDATE refresh_subtasks SET status = 'Running', lease_token = $1, lease_until = $2, \
             attempts = attempts + 1, started_at = COALESCE(started_at, $3), updated_at = $3 \
             WHERE id IN (SELECT id FROM refresh_subtasks WHERE provider_id = $4 AND \
             (status = 'Pending' OR (status = 'Running' AND lease_until < $3)) \
             ORDER BY created_at LIMIT $5{lock}) RETURNING {}",
            sub_columns!()
        );
        let lease = time::Duration::try_from(lease).unwrap_or(time::Duration::MINUTE);
        let mut tx = self.begin().await?;
        let subs: Vec<SubTask> = on_tx!(&mut tx, |conn| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&token)
                .bind(Ts(now + lease))
                .bind(Ts(now))
                .bind(provider)
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await?;
            rows.iter().map(sub_from_row).collect::<Result<_, _>>()?
        });
        if subs.is_empty() {
            tx.commit().await?;
            return Ok((token, subs));
        }
        // A task runs from its first claimed sub-task on.
        let mut tasks: Vec<TaskId> = subs.iter().map(|s| s.task_id).collect();
        tasks.sort_unstable_by_key(|t| t.0);
        tasks.dedup();
        on_tx!(&mut tx, |conn| {
            let mut q = sqlx::QueryBuilder::new(
                "UPDATE refresh_tasks SET status = 'Running', updated_at = ",
            );
            q.push_bind(Ts(now))
                .push(" WHERE status = 'Pending' AND id IN (");
            let mut list = q.separated(", ");
            for t in &tasks {
                list.push_bind(t.0);
            }
            q.push(")");
            q.build().execute(&mut *conn).await?;
        });
        tx.commit().await?;
        Ok((token, subs))
    }

    /// Lets every running sub-task be claimed again at once: for a single node (SQLite)
    /// starting up, whose earlier run's claims are orphans.
    pub async fn release_subtask_leases(&self) -> Result<u64> {
        on_pool!(self, write, |pool| {
            Ok(
                sqlx::query(
                    "UPDATE refresh_subtasks SET lease_until = $1 WHERE status = 'Running'",
                )
                .bind(Ts(freshet_model::time::now() - time::Duration::SECOND))
                .execute(pool)
                .await?
                .rows_affected(),
            )
        })
    }

    /// Extends a claim; false when it was lost.
    pub async fn extend_subtask_lease(
        &self,
        id: SubTaskId,
        token: &str,
        lease: Duration,
    ) -> Result<bool> {
        let until = freshet_model::time::now()
            + time::Duration::try_from(lease).unwrap_or(time::Duration::MINUTE);
        on_pool!(self, write, |pool| {
            let n = sqlx::query(
                "UPDATE refresh_subtasks SET lease_until = $3 WHERE id = $1 AND lease_token = $2",
            )
            .bind(id.0)
            .bind(token)
            .bind(Ts(until))
            .execute(pool)
            .await?
            .rows_affected();
            Ok(n == 1)
        })
    }

    /// A task by its id or by one of its sub-tasks' ids.
    pub async fn get_task(&self, app: ApplicationId, id: Uuid) -> Result<Option<TaskView>> {
        on_pool!(self, read, |pool| {
            let row = sqlx::query(concat!(
                "SELECT ",
                task_columns!(),
                " FROM refresh_tasks WHERE application_id = $2 AND (id = $1 OR id = \
                 (SELECT task_id FROM refresh_subtasks WHERE id = $1))"
            ))
            .bind(id)
            .bind(app.0)
            .fetch_optional(pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let task = task_from_row(&row)?;
            let subs = sqlx::query(concat!(
                "SELECT ",
                sub_columns!(),
                " FROM refresh_subtasks WHERE task_id = $1 ORDER BY id"
            ))
            .bind(task.id.0)
            .fetch_all(pool)
            .await?;
            let subs = subs.iter().map(sub_from_row).collect::<Result<_, _>>()?;
            Ok(Some((task, subs)))
        })
    }

    /// A customer's unfinished tasks, with their sub-tasks.
    pub async fn open_tasks(
        &self,
        app: ApplicationId,
        customer: CustomerId,
    ) -> Result<Vec<TaskView>> {
        let ids: Vec<Uuid> = on_pool!(self, read, |pool| {
            let rows = sqlx::query(OPEN_TASK_IDS)
                .bind(app.0)
                .bind(customer.0)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| r.uuid("id"))
                .collect::<Result<_, _>>()?
        });
        let mut out = Vec::new();
        for id in ids {
            if let Some(v) = self.get_task(app, id).await? {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Whether a consent has a sub-task waiting or running.
    pub async fn consent_busy(&self, consent: ConsentId) -> Result<bool> {
        on_pool!(self, read, |pool| {
            let row = sqlx::query(
                "SELECT count(*) AS n FROM refresh_subtasks WHERE consent_id = $1 \
                 AND status IN ('Pending', 'Running')",
            )
            .bind(consent.0)
            .fetch_one(pool)
            .await?;
            Ok(row.i64("n")? > 0)
        })
    }
}
