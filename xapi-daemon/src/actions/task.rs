//! `task.*`: client-created tasks, cancellation and the setters upstream exposes; the
//! machinery (Async calls, progress, cancel points, garbage collection) is `crate::tasks`.
use xapi_idl::traits::TaskActions;
use xapi_idl::{classes, enums, errors, ApiResult, Ref};

use crate::app::App;
use crate::dispatch::Ctx;
use crate::tasks;

xapi_idl::actions! {
    impl TaskActions for App {
        fn create(&self, ctx: &Ctx, label: String, description: String) -> ApiResult<Ref<classes::Task>> {
            tasks::create(&ctx.app, &label, &description, None)
        }

        fn destroy(&self, ctx: &Ctx, self_: Ref<classes::Task>) -> ApiResult<()> {
            let t = ctx.app.table_of::<classes::Task>();
            ctx.app
                .db
                .write(|txn| txn.delete(t, self_.as_str()).map(|_| ()))
                .map_err(|e| match e {
                    xapi_db::DbError::NotFound { .. } => errors::handle_invalid("task", self_.as_str()),
                    other => crate::errors::db_error(other),
                })
        }

        fn cancel(&self, ctx: &Ctx, task: Ref<classes::Task>) -> ApiResult<()> {
            tasks::cancel(&ctx.app, task.as_str())
        }

        fn set_status(&self, ctx: &Ctx, self_: Ref<classes::Task>, value: enums::TaskStatusType) -> ApiResult<()> {
            tasks::update(&ctx.app, self_.as_str(), |rec| {
                rec.status = value;
                if !matches!(value, enums::TaskStatusType::Pending | enums::TaskStatusType::Cancelling) {
                    rec.finished = xapi_idl::DateTime::now();
                }
            })
        }

        fn set_progress(&self, ctx: &Ctx, self_: Ref<classes::Task>, value: f64) -> ApiResult<()> {
            tasks::update(&ctx.app, self_.as_str(), |rec| rec.progress = value)
        }

        fn set_result(&self, ctx: &Ctx, self_: Ref<classes::Task>, value: String) -> ApiResult<()> {
            tasks::update(&ctx.app, self_.as_str(), |rec| rec.result = value)
        }

        fn set_error_info(&self, ctx: &Ctx, self_: Ref<classes::Task>, value: Vec<String>) -> ApiResult<()> {
            tasks::update(&ctx.app, self_.as_str(), |rec| rec.error_info = value)
        }
    }
}
