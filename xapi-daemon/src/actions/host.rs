//! `host.*` explicit messages.
use std::collections::BTreeMap;

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

        fn call_plugin(&self, ctx: &Ctx, host: Ref<classes::Host>, plugin: String, fn_: String, args: BTreeMap<String, String>) -> ApiResult<String> {
            crate::vm::power::assert_this_host(&ctx.app, &host)?;
            let session = ctx.session.as_ref().map(|s| s.r.as_str()).unwrap_or_default();
            crate::plugins::call(&self.config, session, &plugin, &fn_, &args)
        }
    }
}
