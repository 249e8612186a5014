//! `session.*`: login (password, or the unix socket's local superuser), logout, subjects.
use xapi_idl::traits::SessionActions;
use xapi_idl::{classes, errors, ApiError, ApiResult, Ref};

use crate::app::App;
use crate::dispatch::{Ctx, Origin};
use crate::session::{self, Grant};

/// Authenticates a password login; the unix socket needs no password, as upstream.
/// Non-root users must also be subjects; their roles come from the subject.
fn authenticate(
    app: &App,
    origin: Origin,
    uname: &str,
    pwd: &str,
    originator: &str,
) -> ApiResult<Grant> {
    let superuser = Grant {
        superuser: true,
        roles: Vec::new(),
        user: uname.to_owned(),
        originator: originator.to_owned(),
        subject: xapi_idl::NULL_REF.to_owned(),
        subject_identifier: String::new(),
    };
    if origin == Origin::Unix {
        return Ok(superuser);
    }
    if !app.auth.check(uname, pwd) {
        std::thread::sleep(app.config.auth_failure_delay);
        tracing::info!(user = uname, "authentication failed");
        // Compatibility: documented without parameters, raised with [user, reason] upstream.
        return Err(ApiError::new(
            errors::SESSION_AUTHENTICATION_FAILED,
            vec![uname.to_owned(), "Authentication failure".into()],
        ));
    }
    if uname == "root" {
        return Ok(superuser);
    }
    let Some((subject, rec)) = crate::rbac::subject_for_user(app, uname) else {
        return Err(errors::session_authorization_failed(
            uname,
            "The user is not a subject of this pool",
        ));
    };
    Ok(Grant {
        superuser: false,
        roles: crate::rbac::roles_of_subject(app, &subject),
        user: uname.to_owned(),
        originator: originator.to_owned(),
        subject,
        subject_identifier: rec.subject_identifier,
    })
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
