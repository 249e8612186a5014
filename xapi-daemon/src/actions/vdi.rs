//! `VDI.*` explicit messages: snapshot, clone, copy, resize, introduce, forget and the setters,
//! as thin calls into `storage` (`VDI.create` and `VDI.destroy` are the implicit constructor and
//! destructor, with their storage side in `hooks`).
use std::collections::BTreeMap;

use xapi_idl::enums::{OnBoot, VdiType};
use xapi_idl::records::VdiRecord;
use xapi_idl::traits::VdiActions;
use xapi_idl::{classes, ApiResult, DateTime, Ref, WireEnum};

use crate::app::App;
use crate::dispatch::Ctx;
use crate::storage;
use crate::vm::{delete, read, update};

fn set(ctx: &Ctx, vdi: &Ref<classes::Vdi>, f: impl FnOnce(&mut VdiRecord)) -> ApiResult<()> {
    update::<VdiRecord>(&ctx.app, vdi.as_str(), f).map(|_| ())
}

xapi_idl::actions! {
    impl VdiActions for App {
        fn snapshot(&self, ctx: &Ctx, vdi: Ref<classes::Vdi>, driver_params: BTreeMap<String, String>) -> ApiResult<Ref<classes::Vdi>> {
            storage::snapshot_vdi(&ctx.app, vdi.as_str(), &driver_params, true)
        }

        fn clone(&self, ctx: &Ctx, vdi: Ref<classes::Vdi>, driver_params: BTreeMap<String, String>) -> ApiResult<Ref<classes::Vdi>> {
            storage::snapshot_vdi(&ctx.app, vdi.as_str(), &driver_params, false)
        }

        fn copy(&self, ctx: &Ctx, vdi: Ref<classes::Vdi>, sr: Ref<classes::Sr>, _base_vdi: Ref<classes::Vdi>, into_vdi: Ref<classes::Vdi>) -> ApiResult<Ref<classes::Vdi>> {
            if !into_vdi.is_null() {
                // Upstream copies every block into the given VDI; `base_vdi` only narrows what
                // has to be read, so a full copy is always correct.
                return storage::copy_into_vdi(&ctx.app, vdi.as_str(), into_vdi.as_str());
            }
            let target = if sr.is_null() { read::<VdiRecord>(&ctx.app, vdi.as_str())?.sr } else { sr };
            storage::copy_vdi(&ctx.app, vdi.as_str(), target.as_str())
        }

        fn resize(&self, ctx: &Ctx, vdi: Ref<classes::Vdi>, size: i64) -> ApiResult<()> {
            storage::resize_vdi(&ctx.app, vdi.as_str(), size, false)
        }

        fn resize_online(&self, ctx: &Ctx, vdi: Ref<classes::Vdi>, size: i64) -> ApiResult<()> {
            storage::resize_vdi(&ctx.app, vdi.as_str(), size, true)
        }

        fn introduce(&self, ctx: &Ctx, uuid: String, name_label: String, name_description: String, sr: Ref<classes::Sr>, type_: VdiType, _sharable: bool, _read_only: bool, other_config: BTreeMap<String, String>, location: String, _xenstore_data: BTreeMap<String, String>, sm_config: BTreeMap<String, String>, _managed: bool, _virtual_size: i64, _physical_utilisation: i64, _metadata_of_pool: Ref<classes::Pool>, _is_a_snapshot: bool, _snapshot_time: DateTime, _snapshot_of: Ref<classes::Vdi>) -> ApiResult<Ref<classes::Vdi>> {
            let uuid = if uuid.is_empty() { uuid::Uuid::new_v4().to_string() } else { uuid };
            let request = sm::VdiIntroduce {
                uuid,
                location,
                name_label,
                name_description,
                vdi_type: type_.as_str().to_owned(),
                sm_config,
            };
            let r = storage::introduce_vdi(&ctx.app, sr.as_str(), &request)?;
            set(ctx, &r, |rec| rec.other_config = other_config)?;
            Ok(r)
        }

        fn forget(&self, ctx: &Ctx, vdi: Ref<classes::Vdi>) -> ApiResult<()> {
            read::<VdiRecord>(&ctx.app, vdi.as_str())?;
            delete::<classes::Vdi>(&ctx.app, vdi.as_str())
        }

        fn update(&self, ctx: &Ctx, vdi: Ref<classes::Vdi>) -> ApiResult<()> {
            storage::update_vdi(&ctx.app, vdi.as_str())
        }

        fn set_on_boot(&self, ctx: &Ctx, self_: Ref<classes::Vdi>, value: OnBoot) -> ApiResult<()> {
            set(ctx, &self_, |rec| rec.on_boot = value)
        }

        fn set_allow_caching(&self, ctx: &Ctx, self_: Ref<classes::Vdi>, value: bool) -> ApiResult<()> {
            set(ctx, &self_, |rec| rec.allow_caching = value)
        }

        fn set_name_label(&self, ctx: &Ctx, self_: Ref<classes::Vdi>, value: String) -> ApiResult<()> {
            set(ctx, &self_, |rec| rec.name_label = value)
        }

        fn set_name_description(&self, ctx: &Ctx, self_: Ref<classes::Vdi>, value: String) -> ApiResult<()> {
            set(ctx, &self_, |rec| rec.name_description = value)
        }

        fn set_read_only(&self, ctx: &Ctx, self_: Ref<classes::Vdi>, value: bool) -> ApiResult<()> {
            set(ctx, &self_, |rec| rec.read_only = value)
        }

        fn set_sharable(&self, ctx: &Ctx, self_: Ref<classes::Vdi>, value: bool) -> ApiResult<()> {
            set(ctx, &self_, |rec| rec.sharable = value)
        }
    }
}
