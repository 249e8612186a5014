//! `role.*` explicit messages: permissions of roles and roles holding a permission.
use xapi_idl::records::RoleRecord;
use xapi_idl::traits::RoleActions;
use xapi_idl::{classes, errors, ApiResult, Ref};

use crate::app::App;
use crate::dispatch::Ctx;

fn role(app: &App, r: &Ref<classes::Role>) -> ApiResult<RoleRecord> {
    app.get_record(r.as_str())
        .ok_or_else(|| errors::handle_invalid("role", r))
}

/// Top-level roles whose subroles include the permission role `permission`.
fn holders(app: &App, permission: &Ref<classes::Role>) -> Vec<Ref<classes::Role>> {
    let t = app.table_of::<classes::Role>();
    app.db
        .rows(t)
        .into_iter()
        .filter_map(|(r, row)| {
            let rec = <RoleRecord as xapi_idl::Record>::from_row(&row).ok()?;
            rec.subroles
                .contains(permission)
                .then(|| Ref::from_string(r))
        })
        .collect()
}

xapi_idl::actions! {
    impl RoleActions for App {
        fn get_permissions(&self, ctx: &Ctx, self_: Ref<classes::Role>) -> ApiResult<Vec<Ref<classes::Role>>> {
            let _ = ctx;
            Ok(role(self, &self_)?.subroles)
        }

        fn get_permissions_name_label(&self, ctx: &Ctx, self_: Ref<classes::Role>) -> ApiResult<Vec<String>> {
            let _ = ctx;
            let rec = role(self, &self_)?;
            Ok(rec.subroles.iter().filter_map(|r| self.get_record::<RoleRecord>(r.as_str())).map(|r| r.name_label).collect())
        }

        fn get_by_permission(&self, ctx: &Ctx, permission: Ref<classes::Role>) -> ApiResult<Vec<Ref<classes::Role>>> {
            let _ = ctx;
            role(self, &permission)?;
            Ok(holders(self, &permission))
        }

        fn get_by_permission_name_label(&self, ctx: &Ctx, label: String) -> ApiResult<Vec<Ref<classes::Role>>> {
            let _ = ctx;
            let t = self.table_of::<classes::Role>();
            let Some(permission) = self.db.refs_by_name_label(t, &label).into_iter().next() else {
                return Ok(Vec::new());
            };
            Ok(holders(self, &Ref::from_string(permission)))
        }
    }
}
