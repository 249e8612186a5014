//! `VDI.*` explicit messages: snapshot, clone, copy, resize, introduce, forget and the setters,
//! as thin calls into `storage` (`VDI.create` and `VDI.destroy` are the implicit constructor and
//! destructor, with their storage side in `hooks`), and the hidden database-only pair
//! `db_introduce` / `db_forget`, which never call the SR driver.
use std::collections::BTreeMap;

use xapi_idl::enums::{OnBoot, VdiType};
use xapi_idl::records::{SrRecord, VdiRecord};
use xapi_idl::traits::VdiActions;
use xapi_idl::{classes, errors, ApiResult, DateTime, Record, Ref, WireEnum};

use crate::app::App;
use crate::dispatch::Ctx;
use crate::storage;
use crate::vm::{delete, insert, read, update};

/// Whether `uuid` is in the hyphenated 8-4-4-4-12 hex form upstream's `db_introduce` accepts.
fn is_hyphenated_uuid(uuid: &str) -> bool {
    uuid.len() == 36
        && uuid.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

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

        /// `VDI.db_introduce`: a VDI record with exactly these fields on `sr`, without asking the
        /// driver; the location must be new to the SR and the uuid well formed and unused.
        fn db_introduce(&self, ctx: &Ctx, uuid: String, name_label: String, name_description: String, sr: Ref<classes::Sr>, type_: VdiType, sharable: bool, read_only: bool, other_config: BTreeMap<String, String>, location: String, xenstore_data: BTreeMap<String, String>, sm_config: BTreeMap<String, String>, managed: bool, virtual_size: i64, physical_utilisation: i64, metadata_of_pool: Ref<classes::Pool>, is_a_snapshot: bool, snapshot_time: DateTime, snapshot_of: Ref<classes::Vdi>, cbt_enabled: bool) -> ApiResult<Ref<classes::Vdi>> {
            let app = &ctx.app;
            read::<SrRecord>(app, sr.as_str())?;
            let t = app.table_of::<classes::Vdi>();
            let taken = app
                .db
                .rows(t)
                .into_iter()
                .filter_map(|(_, row)| VdiRecord::from_row(&row).ok())
                .any(|rec| rec.sr == sr && rec.location == location);
            if taken {
                return Err(errors::location_not_unique(sr.as_str(), &location));
            }
            if !is_hyphenated_uuid(&uuid) || app.db.ref_by_uuid(t, &uuid).is_some() {
                return Err(errors::uuid_invalid("VDI", &uuid));
            }
            let r: Ref<classes::Vdi> = Ref::fresh();
            insert(app, r.as_str(), &VdiRecord {
                uuid,
                name_label,
                name_description,
                sr,
                type_,
                sharable,
                read_only,
                other_config,
                location,
                xenstore_data,
                sm_config,
                managed,
                virtual_size,
                physical_utilisation,
                metadata_of_pool,
                is_a_snapshot,
                snapshot_time,
                snapshot_of,
                cbt_enabled,
                ..VdiRecord::default()
            })?;
            Ok(r)
        }

        /// `VDI.db_forget`: drops the record only, as upstream does (its VBDs and the data on
        /// the SR stay; an `SR.scan` finds the data again).
        fn db_forget(&self, ctx: &Ctx, vdi: Ref<classes::Vdi>) -> ApiResult<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hyphenated_hex_form_is_a_uuid() {
        assert!(is_hyphenated_uuid("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"));
        assert!(is_hyphenated_uuid("0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0"));
        assert!(!is_hyphenated_uuid("0f1e2d3c4b5a69788796a5b4c3d2e1f0"));
        assert!(!is_hyphenated_uuid("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fg"));
        assert!(!is_hyphenated_uuid("0f1e2d3c-4b5a-6978-8796a-5b4c3d2e1f0"));
        assert!(!is_hyphenated_uuid(""));
    }
}
