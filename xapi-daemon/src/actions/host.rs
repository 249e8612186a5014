//! `host.*` explicit messages.
use xapi_idl::traits::HostActions;
use xapi_idl::ApiResult;

use crate::app::App;
use crate::dispatch::Ctx;

xapi_idl::actions! {
    impl HostActions for App {
        fn list_methods(&self, ctx: &Ctx) -> ApiResult<Vec<String>> {
            let _ = ctx;
            Ok(self.model.wire_names().map(str::to_owned).collect())
        }
    }
}
