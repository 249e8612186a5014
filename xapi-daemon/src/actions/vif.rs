//! `VIF.*` explicit messages: hotplug, as thin calls into `vm::devices`.
use xapi_idl::traits::VifActions;
use xapi_idl::{classes, ApiResult, Ref};

use crate::app::App;
use crate::dispatch::Ctx;
use crate::vm::devices;

xapi_idl::actions! {
    impl VifActions for App {
        fn plug(&self, ctx: &Ctx, self_: Ref<classes::Vif>) -> ApiResult<()> {
            devices::vif_plug(ctx, self_.as_str())
        }

        fn unplug(&self, ctx: &Ctx, self_: Ref<classes::Vif>) -> ApiResult<()> {
            devices::vif_unplug(ctx, self_.as_str(), false)
        }

        fn unplug_force(&self, ctx: &Ctx, self_: Ref<classes::Vif>) -> ApiResult<()> {
            devices::vif_unplug(ctx, self_.as_str(), true)
        }
    }
}
