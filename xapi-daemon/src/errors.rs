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

/// Maps a storage driver failure on `sr` (and `vdi`) to upstream's code: the special backend
/// codes as their own errors, the rest as `SR_BACKEND_FAILURE_<n> ["", reason, ""]`.
pub fn sm_error(e: &sm::SmError, sr: &str, vdi: &str) -> ApiError {
    use sm::XapiMapping;
    match e.xapi_mapping() {
        XapiMapping::UnimplementedInSmBackend => errors::unimplemented_in_sm_backend(&e.reason),
        XapiMapping::SrNotEmpty => errors::sr_not_empty(),
        XapiMapping::VdiInUse => errors::vdi_in_use(vdi, &e.reason),
        XapiMapping::SrDeviceInUse => errors::sr_device_in_use(),
        XapiMapping::VdiMissing => errors::vdi_missing(sr, vdi),
        XapiMapping::BackendFailure(n) => ApiError::new(
            &format!("SR_BACKEND_FAILURE_{n}"),
            vec![String::new(), e.reason.clone(), String::new()],
        ),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use sm::{ErrorCode, SmError};

    #[test]
    fn sm_errors_map_to_backend_failures_and_special_codes() {
        let e = sm_error(&SmError::new(ErrorCode::VdiSize, "too big"), "sr", "vdi");
        assert_eq!(e.code, "SR_BACKEND_FAILURE_79");
        assert_eq!(e.params, vec!["", "too big", ""]);
        let e = sm_error(&SmError::code(ErrorCode::SrNotEmpty), "sr", "vdi");
        assert_eq!(e.code, "SR_NOT_EMPTY");
        let e = sm_error(&SmError::vdi_missing("vdi"), "sr", "vdi");
        assert_eq!(
            (e.code.as_str(), e.params.clone()),
            ("VDI_MISSING", vec!["sr".to_owned(), "vdi".to_owned()])
        );
        let e = sm_error(&SmError::unimplemented("vdi_resize"), "sr", "vdi");
        assert_eq!(e.code, "UNIMPLEMENTED_IN_SM_BACKEND");
    }
}
