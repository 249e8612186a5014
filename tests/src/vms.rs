//! VMs for tests: made from a default template the way an operator makes them.
use crate::fields::strings;
use crate::{s, Api, Value};

/// Clones template `template`, provisions its disks, turns the copy into a VM named `name`
/// with all four memory limits at `mib` MiB; its ref.
pub fn vm_from_template(api: &mut Api, template: &str, name: &str, mib: i64) -> String {
    let template = strings(api.ok("VM.get_by_name_label", vec![s(template)])).remove(0);
    let vm = api.string("VM.clone", vec![s(&template), s(name)]);
    api.ok("VM.provision", vec![s(&vm)]);
    api.ok("VM.set_is_a_template", vec![s(&vm), Value::Bool(false)]);
    let m = Value::Int(mib << 20);
    api.ok(
        "VM.set_memory_limits",
        vec![s(&vm), m.clone(), m.clone(), m.clone(), m],
    );
    vm
}
