//! `host.*` explicit messages.
use xapi_idl::traits::HostActions;
use xapi_idl::{classes, ApiResult, Ref};

use crate::app::App;
use crate::dispatch::Ctx;

xapi_idl::actions! {
    impl HostActions for App {
        fn list_methods(&self, ctx: &Ctx) -> ApiResult<Vec<String>> {
            let _ = ctx;
            Ok(self.model.wire_names().map(str::to_owned).collect())
        }

        fn compute_free_memory(&self, ctx: &Ctx, host: Ref<classes::Host>) -> ApiResult<i64> {
            crate::vm::power::assert_this_host(&ctx.app, &host)?;
            crate::vm::memory::host_free_memory(self)
        }

        fn compute_memory_overhead(&self, ctx: &Ctx, host: Ref<classes::Host>) -> ApiResult<i64> {
            crate::vm::power::assert_this_host(&ctx.app, &host)?;
            // The simulated host charges no memory beyond what its domains hold.
            Ok(0)
        }
    }
}
