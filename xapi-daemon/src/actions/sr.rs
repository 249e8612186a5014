//! `SR.*` explicit messages: thin calls into `storage`, which talks to the SR drivers.
use std::collections::BTreeMap;

use xapi_idl::records::SrRecord;
use xapi_idl::traits::SrActions;
use xapi_idl::{classes, ApiResult, Ref};

use crate::app::App;
use crate::dispatch::Ctx;
use crate::storage;
use crate::vm::{insert, update};

xapi_idl::actions! {
    impl SrActions for App {
        fn create(&self, ctx: &Ctx, host: Ref<classes::Host>, device_config: BTreeMap<String, String>, physical_size: i64, name_label: String, name_description: String, type_: String, content_type: String, shared: bool, sm_config: BTreeMap<String, String>) -> ApiResult<Ref<classes::Sr>> {
            if host.as_str() != ctx.app.host {
                return Err(xapi_idl::errors::handle_invalid("host", host.as_str()));
            }
            storage::create_sr(&ctx.app, device_config, physical_size, &name_label, &name_description, &type_, &content_type, shared, sm_config)
        }

        fn introduce(&self, ctx: &Ctx, uuid: String, name_label: String, name_description: String, type_: String, content_type: String, shared: bool, sm_config: BTreeMap<String, String>) -> ApiResult<Ref<classes::Sr>> {
            let app = &ctx.app;
            let uuid = if uuid.is_empty() {
                uuid::Uuid::new_v4().to_string()
            } else {
                uuid::Uuid::parse_str(&uuid)
                    .map_err(|_| xapi_idl::errors::invalid_value("uuid", &uuid))?
                    .to_string()
            };
            if app.db.ref_by_uuid(app.table_of::<classes::Sr>(), &uuid).is_some() {
                return Err(xapi_idl::errors::sr_uuid_exists(&uuid));
            }
            let sr: Ref<classes::Sr> = Ref::fresh();
            insert(app, sr.as_str(), &SrRecord {
                uuid,
                name_label,
                name_description,
                type_,
                content_type,
                shared,
                sm_config,
                ..SrRecord::default()
            })?;
            Ok(sr)
        }

        fn forget(&self, ctx: &Ctx, sr: Ref<classes::Sr>) -> ApiResult<()> {
            storage::forget_sr(&ctx.app, sr.as_str())
        }

        fn destroy(&self, ctx: &Ctx, sr: Ref<classes::Sr>) -> ApiResult<()> {
            storage::destroy_sr(&ctx.app, sr.as_str())
        }

        fn scan(&self, ctx: &Ctx, sr: Ref<classes::Sr>) -> ApiResult<()> {
            storage::scan(&ctx.app, sr.as_str())
        }

        fn update(&self, ctx: &Ctx, sr: Ref<classes::Sr>) -> ApiResult<()> {
            storage::update_sr(&ctx.app, sr.as_str())
        }

        fn get_supported_types(&self, ctx: &Ctx) -> ApiResult<Vec<String>> {
            Ok(ctx.app.storage.types())
        }

        fn probe(&self, ctx: &Ctx, _host: Ref<classes::Host>, device_config: BTreeMap<String, String>, type_: String, sm_config: BTreeMap<String, String>) -> ApiResult<String> {
            storage::probe(&ctx.app, &device_config, &type_, &sm_config)
        }

        fn probe_ext(&self, ctx: &Ctx, _host: Ref<classes::Host>, device_config: BTreeMap<String, String>, type_: String, sm_config: BTreeMap<String, String>) -> ApiResult<Vec<xapi_idl::records::ProbeResultRecord>> {
            storage::probe_ext(&ctx.app, &device_config, &type_, &sm_config)
        }

        fn set_name_label(&self, ctx: &Ctx, sr: Ref<classes::Sr>, value: String) -> ApiResult<()> {
            update::<SrRecord>(&ctx.app, sr.as_str(), |rec| rec.name_label = value).map(|_| ())
        }

        fn set_name_description(&self, ctx: &Ctx, sr: Ref<classes::Sr>, value: String) -> ApiResult<()> {
            update::<SrRecord>(&ctx.app, sr.as_str(), |rec| rec.name_description = value).map(|_| ())
        }

        fn set_shared(&self, ctx: &Ctx, sr: Ref<classes::Sr>, value: bool) -> ApiResult<()> {
            update::<SrRecord>(&ctx.app, sr.as_str(), |rec| rec.shared = value).map(|_| ())
        }
    }
}
