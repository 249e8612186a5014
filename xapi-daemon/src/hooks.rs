//! Per-class checks the generic implicit messages run before acting, for the few classes whose
//! constructors or destructors have rules (a running VM cannot be destroyed) or resources (a
//! VDI's storage, created and deleted through `storage`). Other side effects after a write are
//! the keepers' job (`vm::keeper`). Storage work leaves the async worker (`off_runtime`).
use xapi_idl::enums::VmOperations;
use xapi_idl::model::ClassDef;
use xapi_idl::ApiResult;

use crate::app::App;

/// Runs blocking storage work from an implicit message, which the dispatcher runs on an async
/// worker: on a multi-threaded runtime the worker hands its other tasks away first, so driver
/// calls (file I/O, an NBD copy) never stall the server. Elsewhere (tests, no runtime) `f`
/// simply runs.
fn off_runtime<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Refuses `<Class>.destroy` of `r` when the class's rules forbid it.
pub fn before_destroy(app: &App, class: &ClassDef, r: &str) -> ApiResult<()> {
    match class.name.as_str() {
        // Upstream checks the VM's allowed operations: only halted or suspended VMs, never dom0.
        "VM" => crate::vm::power::assert_operation_valid(app, r, VmOperations::Destroy).map(|_| ()),
        // Upstream deletes the VDI's storage first; the record goes with it.
        "VDI" => off_runtime(|| crate::storage::destroy_vdi(app, r)),
        _ => Ok(()),
    }
}

/// Side effects of `<Class>.create` after the generic constructor stored `r` (a VDI's storage).
pub fn after_create(app: &App, class: &ClassDef, r: &str) -> ApiResult<()> {
    match class.name.as_str() {
        "VDI" => off_runtime(|| crate::storage::create_vdi(app, r)),
        _ => Ok(()),
    }
}
