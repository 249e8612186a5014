//! The one place where lower-layer errors become API errors.
use xapi_db::DbError;
use xapi_idl::{errors, ApiError};
use xenops::XenopsError;

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

/// The API error upstream raises for a hypervisor failure on VM `vm`.
pub fn xenops_error(vm: &str, e: XenopsError) -> ApiError {
    match e {
        XenopsError::NotEnoughMemory { needed, free } => {
            errors::host_not_enough_free_memory(needed, free)
        }
        XenopsError::TooManyVcpus { .. } => errors::vm_too_many_vcpus(vm),
        XenopsError::BadState { actual, .. } => ApiError::new(
            errors::VM_BAD_POWER_STATE,
            vec![vm.to_owned(), String::new(), actual.to_string()],
        ),
        XenopsError::ControlDomain => {
            errors::operation_not_allowed("This operation is not allowed on a control domain")
        }
        XenopsError::DeviceBusy { device } => ApiError::new(
            "DEVICE_DETACH_REJECTED",
            vec!["VBD".into(), device, "the guest is using the device".into()],
        ),
        XenopsError::NoSuchDevice { device } => errors::device_already_detached(device),
        XenopsError::DeviceExists { device } => errors::device_already_attached(device),
        XenopsError::InvalidConfig(reason) => errors::memory_constraint_violation(reason),
        XenopsError::BootFailure(reason) => errors::bootloader_failed(vm, reason),
        XenopsError::Unsupported(reason) => errors::operation_not_allowed(&reason),
        XenopsError::NotAcknowledged(_) => errors::vm_failed_shutdown_acknowledgment(vm),
        XenopsError::Timeout(_) => {
            errors::vm_shutdown_timeout(vm, crate::vm::guest_timeout().as_secs_f64())
        }
        XenopsError::NoSuchDomain(_) => errors::vm_bad_power_state(vm, "running", "halted"),
        other => {
            tracing::warn!(vm, error = %other, "hypervisor operation failed");
            ApiError::internal(format!("hypervisor: {other}"))
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
