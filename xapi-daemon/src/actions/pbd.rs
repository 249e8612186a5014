//! `PBD.*` explicit messages: plug and unplug attach and detach the SR through its driver.
use std::collections::BTreeMap;

use xapi_idl::records::PbdRecord;
use xapi_idl::traits::PbdActions;
use xapi_idl::{classes, errors, ApiResult, Ref};

use crate::app::App;
use crate::dispatch::Ctx;
use crate::storage;
use crate::vm::{read, update};

xapi_idl::actions! {
    impl PbdActions for App {
        fn plug(&self, ctx: &Ctx, self_: Ref<classes::Pbd>) -> ApiResult<()> {
            storage::plug(&ctx.app, self_.as_str())
        }

        fn unplug(&self, ctx: &Ctx, self_: Ref<classes::Pbd>) -> ApiResult<()> {
            storage::unplug(&ctx.app, self_.as_str())
        }

        fn set_device_config(&self, ctx: &Ctx, self_: Ref<classes::Pbd>, value: BTreeMap<String, String>) -> ApiResult<()> {
            let rec: PbdRecord = read(&ctx.app, self_.as_str())?;
            if rec.currently_attached {
                return Err(errors::operation_not_allowed("the PBD is plugged"));
            }
            update::<PbdRecord>(&ctx.app, self_.as_str(), |r| r.device_config = value).map(|_| ())
        }
    }
}
