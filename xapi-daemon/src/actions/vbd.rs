//! `VBD.*` explicit messages: hotplug and CD media, as thin calls into `vm::devices`, and
//! `set_mode`, which upstream allows only while the VM is halted.
use xapi_idl::enums::{VbdMode, VmPowerState};
use xapi_idl::records::VbdRecord;
use xapi_idl::traits::VbdActions;
use xapi_idl::{classes, errors, ApiResult, Ref};

use crate::app::App;
use crate::dispatch::Ctx;
use crate::vm::lifecycle::power_state_name;
use crate::vm::{devices, read, read_vm, update};

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

        fn set_mode(&self, ctx: &Ctx, self_: Ref<classes::Vbd>, value: VbdMode) -> ApiResult<()> {
            let app = &ctx.app;
            let vbd = read::<VbdRecord>(app, self_.as_str())?;
            let vm = read_vm(app, vbd.vm.as_str())?;
            if vm.power_state != VmPowerState::Halted {
                return Err(errors::vm_bad_power_state(
                    vbd.vm.as_str(),
                    power_state_name(VmPowerState::Halted),
                    power_state_name(vm.power_state),
                ));
            }
            update::<VbdRecord>(app, self_.as_str(), |v| v.mode = value)?;
            Ok(())
        }
    }
}
