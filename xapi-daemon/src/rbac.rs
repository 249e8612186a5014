//! RBAC: the role objects (top-level roles and one permission role per message, all derived
//! from the datamodel's per-message role lists) and the role set of a subject.
use std::collections::BTreeSet;

use xapi_db::{DbError, Txn};
use xapi_idl::model::Model;
use xapi_idl::records::RoleRecord;
use xapi_idl::{Record, Ref};

use crate::app::App;

/// Top-level role names as the datamodel uses them, widest first (by how many messages each allows).
pub fn role_names(model: &Model) -> Vec<String> {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for m in &model.messages {
        for r in &m.roles {
            *counts.entry(r.as_str()).or_default() += 1;
        }
    }
    let mut names: Vec<(&str, usize)> = counts.into_iter().collect();
    names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    names.into_iter().map(|(n, _)| n.to_owned()).collect()
}

/// The pool-admin role's static reference. Compatibility: upstream gives pool-admin a fixed
/// ref, and the datamodel names it as the default of `subject.roles` (new subjects are
/// pool-admins), so it is read from there.
fn pool_admin_ref(model: &Model) -> Option<String> {
    let subject = model.class("subject")?;
    let roles = &subject.fields[*subject.field_index.get("roles")?].default;
    match roles {
        xapi_idl::Value::Array(items) => items.first()?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// Creates the role objects on first start: one internal permission role per message and the
/// top-level roles whose subroles are the permissions they hold.
pub fn seed(model: &Model, txn: &mut Txn<'_>, table: usize) -> Result<(), DbError> {
    let mut permission_refs = std::collections::HashMap::new();
    let permissions: BTreeSet<&str> = model
        .messages
        .iter()
        .map(|m| m.permission.as_str())
        .collect();
    for p in permissions {
        let r: Ref<xapi_idl::classes::Role> = Ref::fresh();
        let rec = RoleRecord {
            uuid: uuid::Uuid::new_v4().to_string(),
            name_label: p.to_owned(),
            name_description: format!("Permission to call {p}"),
            is_internal: true,
            ..RoleRecord::default()
        };
        txn.insert(table, r.as_str(), rec.to_row())?;
        permission_refs.insert(p.to_owned(), r);
    }
    for role in role_names(model) {
        let subroles: BTreeSet<Ref<xapi_idl::classes::Role>> = model
            .messages
            .iter()
            .filter(|m| role == "pool-admin" || m.roles.contains(&role))
            .filter_map(|m| permission_refs.get(&m.permission).cloned())
            .collect();
        let static_ref = if role == "pool-admin" {
            pool_admin_ref(model)
        } else {
            None
        };
        let (r, uuid) = match static_ref {
            Some(r) => {
                let uuid = r.trim_start_matches("OpaqueRef:").to_owned();
                (r, uuid)
            }
            None => (
                Ref::<xapi_idl::classes::Role>::fresh().into_string(),
                uuid::Uuid::new_v4().to_string(),
            ),
        };
        let rec = RoleRecord {
            uuid,
            name_label: role.clone(),
            name_description: format!("The {role} role"),
            subroles: subroles.into_iter().collect(),
            is_internal: false,
        };
        txn.insert(table, &r, rec.to_row())?;
    }
    Ok(())
}

/// The subject a user logs in as: matched by `subject_identifier` or `other_config:subject-name`.
pub fn subject_for_user(
    app: &App,
    user: &str,
) -> Option<(String, xapi_idl::records::SubjectRecord)> {
    let t = app.table_of::<xapi_idl::classes::Subject>();
    app.db.rows(t).into_iter().find_map(|(r, row)| {
        let rec = <xapi_idl::records::SubjectRecord as Record>::from_row(&row).ok()?;
        let named = rec
            .other_config
            .get("subject-name")
            .is_some_and(|n| n == user);
        (rec.subject_identifier == user || named).then_some((r, rec))
    })
}

/// Permission names (`vm.start` ...) held by the given top-level roles.
pub fn permissions_of(app: &App, roles: &[String]) -> Vec<String> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    for m in &app.model.messages {
        if roles
            .iter()
            .any(|r| r == "pool-admin" || m.roles.contains(r))
        {
            out.insert(m.permission.clone());
        }
    }
    out.into_iter().collect()
}

/// The top-level role names granted to a subject (empty for a null or unknown subject).
pub fn roles_of_subject(app: &App, subject: &str) -> Vec<String> {
    let Some(subject) = app.get_record::<xapi_idl::records::SubjectRecord>(subject) else {
        return Vec::new();
    };
    subject
        .roles
        .iter()
        .filter_map(|r| app.get_record::<RoleRecord>(r.as_str()))
        .map(|role| role.name_label)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_admin_has_upstreams_static_ref() {
        let r = pool_admin_ref(xapi_idl::model::model()).unwrap();
        assert_eq!(r, "OpaqueRef:0165f154-ba3e-034e-6b27-5d271af109ba");
    }

    #[test]
    fn pool_admin_is_the_widest_role_and_read_only_exists() {
        let names = role_names(xapi_idl::model::model());
        assert_eq!(names.first().map(String::as_str), Some("pool-admin"));
        assert!(names.iter().any(|n| n == "read-only"));
        assert_eq!(names.len(), 7);
    }
}
