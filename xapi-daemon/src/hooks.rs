//! Per-class checks the generic implicit messages run before acting, for the few classes whose
//! constructors or destructors have rules (a running VM cannot be destroyed). Side effects
//! after a write are the keepers' job (`vm::keeper`); this module only refuses.
use xapi_idl::enums::VmOperations;
use xapi_idl::model::ClassDef;
use xapi_idl::ApiResult;

use crate::app::App;

/// Refuses `<Class>.destroy` of `r` when the class's rules forbid it.
pub fn before_destroy(app: &App, class: &ClassDef, r: &str) -> ApiResult<()> {
    match class.name.as_str() {
        // Upstream checks the VM's allowed operations: only halted or suspended VMs, never dom0.
        "VM" => crate::vm::power::assert_operation_valid(app, r, VmOperations::Destroy).map(|_| ()),
        _ => Ok(()),
    }
}
