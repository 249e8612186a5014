//! The one place where lower-layer errors become API errors.
use xapi_db::DbError;
use xapi_idl::{errors, ApiError};

impl From<DbErrorWrap> for ApiError {
    fn from(e: DbErrorWrap) -> ApiError {
        db_error(e.0)
    }
}

/// Carries a `DbError` into `ApiError` conversion (both types are foreign to this crate).
pub struct DbErrorWrap(pub DbError);

/// Maps an object-store error to upstream's code.
pub fn db_error(e: DbError) -> ApiError {
    match e {
        DbError::NotFound { table, r#ref } => errors::handle_invalid(table, r#ref),
        DbError::UuidExists { table, uuid } => errors::uuid_invalid(table, uuid),
        DbError::DuplicateKey { key } => ApiError::new(errors::MAP_DUPLICATE_KEY, vec![key]),
        other => {
            tracing::error!(error = %other, "object store failure");
            ApiError::internal(format!("object store: {other}"))
        }
    }
}
