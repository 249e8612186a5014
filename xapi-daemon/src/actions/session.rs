//! `session.*`: login (password, or the unix socket's local superuser), logout, subjects.
use xapi_idl::traits::SessionActions;
use xapi_idl::{classes, errors, ApiError, ApiResult, Ref};

use crate::app::App;
use crate::dispatch::{Ctx, Origin};
use crate::session::{self, Grant};

/// Authenticates a password login; the unix socket needs no password, as upstream.
fn authenticate(
    app: &App,
    origin: Origin,
    uname: &str,
    pwd: &str,
    originator: &str,
) -> ApiResult<Grant> {
    let grant = |superuser| Grant {
        superuser,
        roles: Vec::new(),
        user: uname.to_owned(),
        originator: originator.to_owned(),
    };
    if origin == Origin::Unix {
        return Ok(grant(true));
    }
    if uname == "root" && app.auth.check_root(pwd) {
        return Ok(grant(true));
    }
    std::thread::sleep(app.config.auth_failure_delay);
    tracing::info!(user = uname, "authentication failed");
    // Compatibility: documented without parameters, raised with [user, reason] upstream.
    Err(ApiError::new(
        errors::SESSION_AUTHENTICATION_FAILED,
        vec![uname.to_owned(), "Authentication failure".into()],
    ))
}

fn current(ctx: &Ctx) -> ApiResult<&str> {
    ctx.session
        .as_ref()
        .map(|s| s.r.as_str())
        .ok_or_else(|| ApiError::internal("no session"))
}

xapi_idl::actions! {
    impl SessionActions for App {
        fn login_with_password(&self, ctx: &Ctx, uname: String, pwd: String, version: String, originator: String) -> ApiResult<Ref<classes::Session>> {
            let _ = version;
            let grant = authenticate(self, ctx.origin, &uname, &pwd, &originator)?;
            session::create(self, grant)
        }

        fn slave_local_login_with_password(&self, ctx: &Ctx, uname: String, pwd: String) -> ApiResult<Ref<classes::Session>> {
            let grant = authenticate(self, ctx.origin, &uname, &pwd, "")?;
            session::create(self, grant)
        }

        fn logout(&self, ctx: &Ctx) -> ApiResult<()> {
            session::destroy(self, current(ctx)?)
        }

        fn local_logout(&self, ctx: &Ctx) -> ApiResult<()> {
            session::destroy(self, current(ctx)?)
        }

        fn get_all_subject_identifiers(&self, ctx: &Ctx) -> ApiResult<Vec<String>> {
            let _ = ctx;
            let t = self.table_of::<classes::Session>();
            let f = self.model.classes[<classes::Session as xapi_idl::Class>::INDEX].field_index.get("auth_user_sid").copied();
            let mut sids: Vec<String> = match f {
                Some(f) => self.db.rows(t).iter().filter_map(|(_, row)| row.get(f).and_then(|v| v.as_str()).map(str::to_owned)).filter(|s| !s.is_empty()).collect(),
                None => Vec::new(),
            };
            sids.sort();
            sids.dedup();
            Ok(sids)
        }

        fn logout_subject_identifier(&self, ctx: &Ctx, subject_identifier: String) -> ApiResult<()> {
            let me = current(ctx)?.to_owned();
            let t = self.table_of::<classes::Session>();
            let class = &self.model.classes[<classes::Session as xapi_idl::Class>::INDEX];
            let Some(&f) = class.field_index.get("auth_user_sid") else { return Ok(()) };
            for (r, row) in self.db.rows(t) {
                if r != me && row.get(f).and_then(|v| v.as_str()) == Some(subject_identifier.as_str()) {
                    session::destroy(self, &r)?;
                }
            }
            Ok(())
        }
    }
}
