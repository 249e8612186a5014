//! Per-class checks the generic implicit messages run before acting, for the few classes whose
//! constructors or destructors have rules (a running VM cannot be destroyed) or resources (a
//! VDI's storage, created and deleted through `storage`). Other side effects after a write are
//! the keepers' job (`vm::keeper`).
use xapi_idl::enums::VmOperations;
use xapi_idl::model::ClassDef;
use xapi_idl::ApiResult;

use crate::app::App;

/// Refuses `<Class>.destroy` of `r` when the class's rules forbid it.
pub fn before_destroy(app: &App, class: &ClassDef, r: &str) -> ApiResult<()> {
    match class.name.as_str() {
        // Upstream checks the VM's allowed operations: only halted or suspended VMs, never dom0.
        "VM" => crate::vm::power::assert_operation_valid(app, r, VmOperations::Destroy).map(|_| ()),
        // Upstream deletes the VDI's storage first; the record goes with it.
        "VDI" => crate::storage::destroy_vdi(app, r),
        _ => Ok(()),
    }
}

/// Side effects of `<Class>.create` after the generic constructor stored `r` (a VDI's storage).
pub fn after_create(app: &App, class: &ClassDef, r: &str) -> ApiResult<()> {
    match class.name.as_str() {
        "VDI" => crate::storage::create_vdi(app, r),
        _ => Ok(()),
    }
}
