//! `subject.*` explicit messages: the roles a subject holds.
use xapi_idl::records::{RoleRecord, SubjectRecord};
use xapi_idl::traits::SubjectActions;
use xapi_idl::{classes, errors, ApiResult, Ref, ToValue};

use crate::app::App;
use crate::dispatch::Ctx;

fn subject(app: &App, r: &Ref<classes::Subject>) -> ApiResult<SubjectRecord> {
    app.get_record(r.as_str())
        .ok_or_else(|| errors::handle_invalid("subject", r))
}

/// Only top-level (non-internal) roles can be granted.
fn top_level_role(app: &App, r: &Ref<classes::Role>) -> ApiResult<RoleRecord> {
    match app.get_record::<RoleRecord>(r.as_str()) {
        Some(rec) if !rec.is_internal => Ok(rec),
        _ => Err(errors::role_not_found()),
    }
}

fn roles_column(app: &App) -> usize {
    app.model.classes[<classes::Subject as xapi_idl::Class>::INDEX].field_index["roles"]
}

xapi_idl::actions! {
    impl SubjectActions for App {
        fn add_to_roles(&self, ctx: &Ctx, self_: Ref<classes::Subject>, role: Ref<classes::Role>) -> ApiResult<()> {
            let _ = ctx;
            let rec = subject(self, &self_)?;
            top_level_role(self, &role)?;
            if rec.roles.contains(&role) {
                return Err(errors::role_already_exists());
            }
            let t = self.table_of::<classes::Subject>();
            self.write(|txn| txn.set_add(t, self_.as_str(), roles_column(self), role.to_value()))
        }

        fn remove_from_roles(&self, ctx: &Ctx, self_: Ref<classes::Subject>, role: Ref<classes::Role>) -> ApiResult<()> {
            let _ = ctx;
            let rec = subject(self, &self_)?;
            if !rec.roles.contains(&role) {
                return Err(errors::role_not_found());
            }
            let t = self.table_of::<classes::Subject>();
            self.write(|txn| txn.set_remove(t, self_.as_str(), roles_column(self), role.to_value()))
        }

        fn get_permissions_name_label(&self, ctx: &Ctx, self_: Ref<classes::Subject>) -> ApiResult<Vec<String>> {
            let _ = ctx;
            let rec = subject(self, &self_)?;
            let names: Vec<String> = rec
                .roles
                .iter()
                .filter_map(|r| self.get_record::<RoleRecord>(r.as_str()))
                .map(|r| r.name_label)
                .collect();
            Ok(crate::rbac::permissions_of(self, &names))
        }
    }
}
