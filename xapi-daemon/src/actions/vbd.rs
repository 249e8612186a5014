//! `VBD.*` explicit messages: hotplug and CD media, as thin calls into `vm::devices`.
use xapi_idl::traits::VbdActions;
use xapi_idl::{classes, ApiResult, Ref};

use crate::app::App;
use crate::dispatch::Ctx;
use crate::vm::devices;

xapi_idl::actions! {
    impl VbdActions for App {
        fn plug(&self, ctx: &Ctx, self_: Ref<classes::Vbd>) -> ApiResult<()> {
            devices::vbd_plug(ctx, self_.as_str())
        }

        fn unplug(&self, ctx: &Ctx, self_: Ref<classes::Vbd>) -> ApiResult<()> {
            devices::vbd_unplug(ctx, self_.as_str(), false)
        }

        fn unplug_force(&self, ctx: &Ctx, self_: Ref<classes::Vbd>) -> ApiResult<()> {
            devices::vbd_unplug(ctx, self_.as_str(), true)
        }

        fn insert(&self, ctx: &Ctx, vbd: Ref<classes::Vbd>, vdi: Ref<classes::Vdi>) -> ApiResult<()> {
            devices::vbd_insert(ctx, vbd.as_str(), &vdi)
        }

        fn eject(&self, ctx: &Ctx, vbd: Ref<classes::Vbd>) -> ApiResult<()> {
            devices::vbd_eject(ctx, vbd.as_str())
        }
    }
}
