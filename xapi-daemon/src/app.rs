//! `App`: the daemon's shared state (config, model, object store, sessions, auth, the
//! hypervisor) and the start-up sequence that opens the state directory, the hypervisor
//! and seeds a first-start pool.
use std::sync::Arc;

use xapi_db::{Db, DbError, DbOptions, Durability, TableId, Txn};
use xapi_idl::model::Model;
use xapi_idl::{ApiError, ApiResult, Class, Record};

use crate::auth::{Auth, PasswordSetup};
use crate::config::Config;
use crate::schema::Tables;
use crate::session::Sessions;

/// How long the object store lets writes nobody synced gather before committing them (writes
/// of background work: keepers, the domain monitor, finishing tasks).
const FLUSH_WINDOW: std::time::Duration = std::time::Duration::from_millis(2);

/// Shared daemon state; one per process, behind an `Arc`.
pub struct App {
    pub model: &'static Model,
    pub db: Db,
    pub tables: Tables,
    pub config: Config,
    pub auth: Auth,
    pub sessions: Sessions,
    /// This host's ref.
    pub host: String,
    /// The pool's ref.
    pub pool: String,
    /// The hypervisor every VM, device and host operation goes through.
    pub hypervisor: Arc<dyn xenops::Hypervisor>,
    /// In-memory VM lifecycle state (what the domain event consumer remembers).
    pub vm_runtime: crate::vm::Runtime,
    /// The SR drivers and the storage lock.
    pub storage: crate::storage::Storage,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create state directory {path}: {source}")]
    StateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open the database: {0}")]
    Db(#[from] DbError),
    #[error("cannot set up the root password: {0}")]
    Auth(std::io::Error),
    #[error("first-start setup failed: {0}")]
    Seed(ApiError),
    #[error("cannot open the hypervisor: {0}")]
    Hypervisor(xenops::XenopsError),
}

impl App {
    /// Opens the state directory and database, seeds a first-start pool, loads sessions.
    /// Returns the generated root password when one was made (to print once).
    pub fn open(config: Config) -> Result<(Arc<App>, Option<String>), StartError> {
        std::fs::create_dir_all(&config.state_dir).map_err(|source| StartError::StateDir {
            path: config.state_dir.display().to_string(),
            source,
        })?;
        let model = xapi_idl::model::model();
        let (schema, tables) = crate::schema::derive(model);
        // Group commit: every answer syncs first (dispatch::call, server::handle), so an
        // acknowledged call is durable at one SQLite commit per call rather than per write.
        let options = DbOptions {
            durability: Durability::Deferred {
                flush_window: FLUSH_WINDOW,
            },
            ..DbOptions::default()
        };
        let db = Db::open_with(Some(&config.state_dir.join("xapi.db")), schema, options)?;
        let (auth, setup) = Auth::setup(
            &config.state_dir,
            config.root_password.as_deref(),
            config.auth,
            &config.pam_service,
        )
        .map_err(StartError::Auth)?;
        let generated = match setup {
            PasswordSetup::Generated(pw) => Some(pw),
            _ => None,
        };
        let hypervisor =
            crate::vm::hypervisor::open(&config, &db, &tables).map_err(StartError::Hypervisor)?;
        let facts = crate::vm::hypervisor::facts(&*hypervisor).map_err(StartError::Hypervisor)?;
        let (host, pool) =
            crate::seed::ensure(model, &db, &tables, &facts).map_err(StartError::Seed)?;
        let storage = crate::storage::Storage::new(&config.state_dir);
        let app = Arc::new(App {
            model,
            db,
            tables,
            config,
            auth,
            sessions: Sessions::new(),
            host,
            pool,
            hypervisor,
            vm_runtime: crate::vm::Runtime::default(),
            storage,
        });
        crate::storage::start(&app);
        crate::session::load(&app);
        Ok((app, generated))
    }

    /// The table of a persisted class.
    pub fn table_of<C: Class>(&self) -> TableId {
        self.tables
            .table(C::INDEX)
            .expect("typed access is only used for persisted classes")
    }

    /// Runs one write transaction, mapping store errors to API errors.
    pub fn write<R>(&self, f: impl FnOnce(&mut Txn<'_>) -> Result<R, DbError>) -> ApiResult<R> {
        self.db.write(f).map_err(crate::errors::db_error)
    }

    /// Reads a typed record by ref; `None` when missing or unreadable.
    pub fn get_record<R: Record>(&self, r: &str) -> Option<R> {
        let row = self.db.get(self.table_of::<R::Class>(), r)?;
        R::from_row(&row).ok()
    }
}
