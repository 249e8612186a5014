//! Sessions: the in-memory index of live sessions (fast per-call validation and idle
//! tracking) over the persisted `session` rows, login policy, and the idle-session sweeper.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;
use xapi_idl::records::SessionRecord;
use xapi_idl::{ApiResult, DateTime, Record, Ref};

use crate::app::App;

/// A live session as the dispatcher needs it.
#[derive(Debug)]
pub struct SessionInfo {
    /// The session ref.
    pub r: String,
    /// `is_local_superuser`: every permission.
    pub superuser: bool,
    /// RBAC role names granted (empty for the superuser, who needs none).
    pub roles: Vec<String>,
    /// The user name given at login.
    pub user: String,
    /// The client's originator string.
    pub originator: String,
    /// Milliseconds since daemon start of the last call, for idle expiry.
    last_active: AtomicU64,
}

impl SessionInfo {
    /// Whether the session may call a message allowed for `roles` (empty: pool-admin only).
    pub fn may_call(&self, roles: &[String]) -> bool {
        self.superuser
            || self.roles.iter().any(|r| r == "pool-admin")
            || self
                .roles
                .iter()
                .any(|mine| roles.iter().any(|r| r == mine))
    }
}

/// Live sessions by ref.
pub struct Sessions {
    map: RwLock<HashMap<String, Arc<SessionInfo>>>,
    /// The clock idle times are measured on.
    epoch: Instant,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::new()
    }
}

/// At most this many sessions per originator (or per user name) are kept, as upstream.
const MAX_PER_ORIGINATOR: usize = 500;

impl Sessions {
    /// An empty index whose clock starts now.
    pub fn new() -> Sessions {
        Sessions {
            map: RwLock::default(),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Looks a session up and marks it active.
    pub fn validate(&self, r: &str) -> Option<Arc<SessionInfo>> {
        let s = self.map.read().get(r).cloned()?;
        s.last_active.store(self.now_ms(), Ordering::Relaxed);
        Some(s)
    }

    /// Registers a session (at login or when loading persisted ones).
    pub fn insert(&self, info: SessionInfo) -> Arc<SessionInfo> {
        info.last_active.store(self.now_ms(), Ordering::Relaxed);
        let info = Arc::new(info);
        self.map.write().insert(info.r.clone(), info.clone());
        info
    }

    /// Forgets a session.
    pub fn remove(&self, r: &str) -> Option<Arc<SessionInfo>> {
        self.map.write().remove(r)
    }

    /// Refs of sessions idle for longer than `idle_ms`.
    pub fn idle(&self, idle_ms: u64) -> Vec<String> {
        let now = self.now_ms();
        self.map
            .read()
            .values()
            .filter(|s| now.saturating_sub(s.last_active.load(Ordering::Relaxed)) > idle_ms)
            .map(|s| s.r.clone())
            .collect()
    }

    /// The oldest sessions beyond the per-originator limit for this originator/user.
    fn over_limit(&self, originator: &str, user: &str) -> Vec<String> {
        let map = self.map.read();
        let mut same: Vec<&Arc<SessionInfo>> = map
            .values()
            .filter(|s| {
                if originator.is_empty() {
                    s.user == user && s.originator.is_empty()
                } else {
                    s.originator == originator
                }
            })
            .collect();
        if same.len() < MAX_PER_ORIGINATOR {
            return Vec::new();
        }
        same.sort_by_key(|s| s.last_active.load(Ordering::Relaxed));
        same.iter()
            .take(same.len() + 1 - MAX_PER_ORIGINATOR)
            .map(|s| s.r.clone())
            .collect()
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a successful authentication grants.
pub struct Grant {
    pub superuser: bool,
    /// Top-level role names (for non-superusers, from their subject).
    pub roles: Vec<String>,
    pub user: String,
    pub originator: String,
    /// The subject the user logged in as (null for the superuser).
    pub subject: String,
    /// The subject's identifier (empty for the superuser).
    pub subject_identifier: String,
}

/// Creates and persists a session, evicting the oldest beyond upstream's per-originator limit.
pub fn create(app: &App, grant: Grant) -> ApiResult<Ref<xapi_idl::classes::Session>> {
    for old in app.sessions.over_limit(&grant.originator, &grant.user) {
        destroy(app, &old)?;
    }
    let r: Ref<xapi_idl::classes::Session> = Ref::fresh();
    let rec = SessionRecord {
        uuid: uuid::Uuid::new_v4().to_string(),
        this_host: Ref::from_raw(&app.host),
        last_active: DateTime::now(),
        validation_time: DateTime::now(),
        is_local_superuser: grant.superuser,
        auth_user_name: grant.user.clone(),
        auth_user_sid: grant.subject_identifier.clone(),
        subject: Ref::from_raw(&grant.subject),
        originator: grant.originator.clone(),
        rbac_permissions: if grant.superuser {
            Vec::new()
        } else {
            crate::rbac::permissions_of(app, &grant.roles)
        },
        ..SessionRecord::default()
    };
    let t = app.table_of::<xapi_idl::classes::Session>();
    app.write(|txn| txn.insert(t, r.as_str(), rec.to_row()))?;
    app.sessions.insert(SessionInfo {
        r: r.as_str().to_owned(),
        superuser: grant.superuser,
        roles: grant.roles,
        user: grant.user,
        originator: grant.originator,
        last_active: AtomicU64::new(0),
    });
    Ok(r)
}

/// Destroys a session: forgets it and deletes its row (idempotent).
pub fn destroy(app: &App, r: &str) -> ApiResult<()> {
    app.sessions.remove(r);
    let t = app.table_of::<xapi_idl::classes::Session>();
    app.write(|txn| {
        if txn.view().get(t, r).is_some() {
            txn.delete(t, r)?;
        }
        Ok(())
    })
}

/// Loads persisted sessions at start-up, so clients keep their sessions across restarts.
pub fn load(app: &App) {
    let t = app.table_of::<xapi_idl::classes::Session>();
    for (r, row) in app.db.rows(t) {
        let Ok(rec) = SessionRecord::from_row(&row) else {
            continue;
        };
        let roles = if rec.is_local_superuser {
            Vec::new()
        } else {
            crate::rbac::roles_of_subject(app, rec.subject.as_str())
        };
        app.sessions.insert(SessionInfo {
            r,
            superuser: rec.is_local_superuser,
            roles,
            user: rec.auth_user_name,
            originator: rec.originator,
            last_active: AtomicU64::new(0),
        });
    }
}

/// Destroys sessions idle longer than the configured timeout; runs forever.
pub async fn sweep(app: Arc<App>) {
    let timeout = app.config.session_idle_timeout;
    let period = (timeout / 4).clamp(
        std::time::Duration::from_millis(50),
        std::time::Duration::from_secs(60),
    );
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        for r in app.sessions.idle(timeout.as_millis() as u64) {
            if let Err(e) = destroy(&app, &r) {
                tracing::warn!(session = %r, error = %e, "could not destroy idle session");
            } else {
                tracing::info!(session = %r, "idle session expired");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(r: &str, superuser: bool, roles: &[&str]) -> SessionInfo {
        SessionInfo {
            r: r.into(),
            superuser,
            roles: roles.iter().map(|s| s.to_string()).collect(),
            user: "u".into(),
            originator: String::new(),
            last_active: AtomicU64::new(0),
        }
    }

    #[test]
    fn read_only_session_may_not_call_admin_messages() {
        let s = info("a", false, &["read-only"]);
        assert!(s.may_call(&["pool-admin".into(), "read-only".into()]));
        assert!(!s.may_call(&["pool-admin".into(), "vm-admin".into()]));
        assert!(!s.may_call(&[]), "empty role lists mean pool-admin only");
    }

    #[test]
    fn superuser_may_call_anything() {
        assert!(info("a", true, &[]).may_call(&[]));
    }

    #[test]
    fn validate_finds_only_inserted_sessions() {
        let s = Sessions::new();
        s.insert(info("OpaqueRef:x", true, &[]));
        assert!(s.validate("OpaqueRef:x").is_some());
        assert!(s.validate("OpaqueRef:y").is_none());
        s.remove("OpaqueRef:x");
        assert!(s.validate("OpaqueRef:x").is_none());
    }
}
