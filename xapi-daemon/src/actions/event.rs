//! `event.*`: thin entry points over `crate::events`. The dispatcher runs `event.from` and
//! `event.next` as futures itself; their trait bodies here only serve direct callers.
use xapi_idl::records::EventRecord;
use xapi_idl::traits::EventActions;
use xapi_idl::{ApiResult, FromValue, Value};

use crate::app::App;
use crate::dispatch::Ctx;
use crate::events;

xapi_idl::actions! {
    impl EventActions for App {
        fn from(&self, ctx: &Ctx, classes: Vec<String>, token: String, timeout: f64) -> ApiResult<Value> {
            events::block_on(events::from(ctx, &classes, &token, timeout))
        }

        fn next(&self, ctx: &Ctx) -> ApiResult<Vec<EventRecord>> {
            let v = events::block_on(events::next(ctx))?;
            Vec::<EventRecord>::from_value(&v).map_err(Into::into)
        }

        fn register(&self, ctx: &Ctx, classes: Vec<String>) -> ApiResult<()> {
            events::register(ctx, &classes)
        }

        fn unregister(&self, ctx: &Ctx, classes: Vec<String>) -> ApiResult<()> {
            events::unregister(ctx, &classes)
        }

        fn get_current_id(&self, ctx: &Ctx) -> ApiResult<i64> {
            Ok(events::current_id(&ctx.app))
        }

        fn inject(&self, ctx: &Ctx, class: String, ref_: String) -> ApiResult<String> {
            events::inject(&ctx.app, &class, &ref_)
        }
    }
}
