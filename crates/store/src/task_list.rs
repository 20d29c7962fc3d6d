//! An application's refresh tasks, newest first, each with its sub-tasks: what an operator
//! watches. A page is two statements whatever its size: the tasks, then all their sub-tasks.

use std::collections::HashMap;

use freshet_model::{
    ApplicationId, CustomerId, Page, PageRequest,
    events::TaskStatus,
    refresh::{SubTask, TaskId},
};
use sqlx::QueryBuilder;
use uuid::Uuid;

use crate::{
    Result, Store, TaskView, on_pool,
    refresh::{sub_columns, sub_from_row, task_columns, task_from_row},
};

/// Which tasks to list.
#[derive(Clone, Debug, Default)]
pub struct TaskFilter {
    pub status: Option<TaskStatus>,
    pub customer: Option<CustomerId>,
}

impl Store {
    /// Lists `app`'s refresh tasks, newest first, with their sub-tasks. The cursor is the last
    /// task of the previous page; later pages hold older tasks.
    pub async fn list_tasks(
        &self,
        app: ApplicationId,
        filter: &TaskFilter,
        page: PageRequest,
    ) -> Result<Page<TaskView>> {
        let before = page.after.map(|c| c.0).unwrap_or(Uuid::max());
        on_pool!(self, read, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                task_columns!(),
                " FROM refresh_tasks WHERE application_id = $1 AND id < $2 \
                  AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR customer_id = $4) \
                  ORDER BY id DESC LIMIT $5"
            ))
            .bind(app.0)
            .bind(before)
            .bind(filter.status.map(|s| s.as_str()))
            .bind(filter.customer.map(|c| c.0))
            .bind(i64::from(page.limit) + 1)
            .fetch_all(pool)
            .await?;
            let tasks = rows
                .iter()
                .map(task_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            let page = Page::from_overfetch(tasks, page.limit, |t| t.id.0);
            if page.data.is_empty() {
                return Ok(page.map(|t| (t, Vec::new())));
            }
            let mut q = QueryBuilder::new(concat!(
                "SELECT ",
                sub_columns!(),
                " FROM refresh_subtasks WHERE task_id IN ("
            ));
            let mut ids = q.separated(", ");
            for t in &page.data {
                ids.push_bind(t.id.0);
            }
            q.push(") ORDER BY id");
            let subs = q.build().fetch_all(pool).await?;
            let mut by_task: HashMap<TaskId, Vec<SubTask>> = HashMap::new();
            for row in &subs {
                let sub = sub_from_row(row)?;
                by_task.entry(sub.task_id).or_default().push(sub);
            }
            Ok(page.map(|t| {
                let subs = by_task.remove(&t.id).unwrap_or_default();
                (t, subs)
            }))
        })
    }
}
