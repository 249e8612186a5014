#!/usr/bin/env python3
"""Derive xe-cli/data/xe.json from the upstream interface extracts.

Inputs (read only when regenerating; the build never needs them):
  ../shared/spec/xe-commands.json  explicit command table (names, params, flags)
  ../shared/spec/xe-params.json    per-class CLI field lists and generation rules
  ../shared/spec/errors.json       error codes, parameter names and the one-line
                                   message xe prints for each code
  crates/xapi-idl/spec/datamodel.json  to resolve CLI field names to datamodel paths

Output: xe-cli/data/xe.json, interface facts only: command names, required and
optional parameters, flags, CLI field names with their display qualifiers and
the datamodel path each one reads. Command descriptions are our own words
(DESCRIPTIONS below) or left empty; upstream's prose help is not copied.

Usage: python3 xe-cli/scripts/derive-xe-data.py [--spec DIR]
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CRATE = os.path.dirname(HERE)
REPO = os.path.dirname(CRATE)

# Flags the client acts on; the rest (Neverforward, ...) only matter server side.
KEPT_FLAGS = {"Standard", "Hidden", "Deprecated", "Vm_selectors", "Host_selectors", "Sr_selectors"}

# Our own one-line descriptions for the commands operators use most.
DESCRIPTIONS = {
    "vm-install": "Create a new VM from a template and provision its disks.",
    "vm-start": "Boot the selected VMs.",
    "vm-shutdown": "Halt the selected VMs, cleanly unless --force is given.",
    "vm-reboot": "Restart the selected VMs, cleanly unless --force is given.",
    "vm-suspend": "Save the selected VMs' memory to disk and stop them.",
    "vm-resume": "Restore suspended VMs.",
    "vm-snapshot": "Take a disk snapshot of the selected VM.",
    "vm-clone": "Make a fast copy of a halted VM sharing its disks copy-on-write.",
    "vm-copy": "Make a full copy of a halted VM.",
    "vm-uninstall": "Destroy the selected VMs and the disks they own.",
    "vm-destroy": "Remove a VM record, leaving its disks.",
    "vm-disk-add": "Create a new disk and attach it to the selected VM.",
    "vm-disk-list": "List the disks of the selected VMs.",
    "vm-cd-insert": "Put a CD image into the selected VM's empty CD drive.",
    "vm-cd-eject": "Empty the selected VM's CD drive.",
    "vm-vif-list": "List the network interfaces of the selected VMs.",
    "vm-reset-powerstate": "Force the recorded power state of a VM to halted.",
    "network-create": "Create a new network.",
    "network-destroy": "Destroy a network.",
    "vif-create": "Create a network interface for a VM.",
    "vif-destroy": "Destroy a network interface.",
    "vif-plug": "Hot-plug a network interface.",
    "vif-unplug": "Hot-unplug a network interface.",
    "vbd-create": "Create a virtual block device connecting a VM to a disk.",
    "vbd-destroy": "Destroy a virtual block device.",
    "vbd-plug": "Hot-plug a virtual block device.",
    "vbd-unplug": "Hot-unplug a virtual block device.",
    "vdi-create": "Create a new virtual disk in a storage repository.",
    "vdi-destroy": "Destroy a virtual disk and its data.",
    "vdi-clone": "Clone a virtual disk.",
    "vdi-snapshot": "Snapshot a virtual disk.",
    "vdi-resize": "Change the size of a virtual disk.",
    "sr-create": "Create a storage repository.",
    "sr-destroy": "Destroy a storage repository and its contents.",
    "sr-forget": "Forget a storage repository, leaving its contents.",
    "sr-scan": "Rescan a storage repository for disks.",
    "pbd-create": "Create a physical block device record.",
    "pbd-destroy": "Destroy a physical block device record.",
    "pbd-plug": "Attach a storage repository to its host.",
    "pbd-unplug": "Detach a storage repository from its host.",
    "pif-plug": "Bring a physical interface up.",
    "pif-unplug": "Bring a physical interface down.",
    "pif-reconfigure-ip": "Set the IP configuration of a physical interface.",
    "pif-scan": "Look for new physical interfaces on a host.",
    "host-evacuate": "Migrate all VMs off a host.",
    "host-disable": "Stop new VMs from starting on a host.",
    "host-enable": "Allow VMs to start on a host again.",
    "host-reboot": "Restart a disabled host.",
    "host-shutdown": "Power off a disabled host.",
    "pool-designate-new-master": "Hand the master role to another host.",
    "pool-sync-database": "Copy the pool database to every member.",
    "snapshot-revert": "Return a VM to the state of one of its snapshots.",
    "snapshot-uninstall": "Destroy a snapshot and the disks it owns.",
    "template-uninstall": "Destroy a custom template and the disks it owns.",
    "task-cancel": "Ask a running task to stop.",
    "event-wait": "Block until an object of the given class matches the conditions.",
    "message-create": "Create a message attached to an object.",
    "message-destroy": "Destroy messages.",
    "user-password-change": "Change the current user's password.",
}

# CLI fields whose value is not a same-named datamodel field. A path is a dot
# separated walk over the datamodel: a ref field is followed to the object it
# names, a ref set maps the rest of the path over its members.
PATHS = {
    "VM": {
        "memory-actual": "metrics.memory_actual",
        "dom-id": "domid",
        "start-time": "metrics.start_time",
        "install-time": "metrics.install_time",
        "VCPUs-number": "metrics.VCPUs_number",
        "VCPUs-utilisation": "metrics.VCPUs_utilisation",
        "current-domain-type": "metrics.current_domain_type",
        "os-version": "guest_metrics.os_version",
        "netbios-name": "guest_metrics.netbios_name",
        "PV-drivers-version": "guest_metrics.PV_drivers_version",
        "PV-drivers-up-to-date": "guest_metrics.PV_drivers_up_to_date",
        "PV-drivers-detected": "guest_metrics.PV_drivers_detected",
        "memory": "guest_metrics.memory",
        "disks": "guest_metrics.disks",
        "networks": "guest_metrics.networks",
        "services": "guest_metrics.services",
        "other": "guest_metrics.other",
        "live": "guest_metrics.live",
        "guest-metrics-last-updated": "guest_metrics.last_updated",
        "can-use-hotplug-vbd": "guest_metrics.can_use_hotplug_vbd",
        "can-use-hotplug-vif": "guest_metrics.can_use_hotplug_vif",
        "console-uuids": "consoles.uuid",
        "suspend-VDI-uuid": "suspend_VDI.uuid",
        "suspend-SR-uuid": "suspend_SR.uuid",
    },
    "host": {
        "memory-total": "metrics.memory_total",
        "memory-free": "metrics.memory_free",
        "host-metrics-live": "metrics.live",
        "control-domain-uuid": "control_domain.uuid",
        "suspend-image-sr-uuid": "suspend_image_sr.uuid",
        "crash-dump-sr-uuid": "crash_dump_sr.uuid",
    },
    "PIF": {
        "io_read_kbs": None,
        "io_write_kbs": None,
        "carrier": "metrics.carrier",
        "vendor-id": "metrics.vendor_id",
        "vendor-name": "metrics.vendor_name",
        "device-id": "metrics.device_id",
        "device-name": "metrics.device_name",
        "speed": "metrics.speed",
        "duplex": "metrics.duplex",
        "pci-bus-path": "metrics.pci_bus_path",
    },
    "VDI": {"vbd-uuids": "VBDs.uuid", "crashdump-uuids": "crash_dumps.uuid"},
    "role": {"name": "name_label", "description": "name_description"},
    "message": {"class": "cls"},
}

# How enum values print where they differ from the wire spelling.
ENUM_DISPLAY = {
    "vm_power_state": {"style": "lower"},
    "on_normal_exit": {"style": "capitalise"},
    "vdi_type": {"style": "capitalise"},
    "on_crash_behaviour": {
        "values": {
            "destroy": "Destroy",
            "coredump_and_destroy": "Core dump and destroy",
            "restart": "Restart",
            "coredump_and_restart": "Core dump and restart",
            "preserve": "Preserve",
            "rename_restart": "Rename restart",
        }
    },
}


def resolve(dm_classes, cls, cli_name):
    """The datamodel path a CLI field reads, or None when it has none."""
    fields = {f["name"].lower(): f for f in dm_classes[cls]["fields"]}
    override = PATHS.get(cls, {})
    if cli_name in override:
        return override[cli_name]
    key = cli_name.replace("-", "_").lower()
    if key in fields:
        return fields[key]["name"]
    for suffix, leaf in (("_uuid", "uuid"), ("_name_label", "name_label")):
        if key.endswith(suffix):
            stem = key[: -len(suffix)]
            f = fields.get(stem)
            if f and f["type"].endswith(" ref"):
                return f["name"] + "." + leaf
    if key.endswith("_uuids"):
        stem = key[: -len("_uuids")]
        for cand in (stem, stem + "s"):
            f = fields.get(cand)
            if f and f["type"].endswith(" ref set"):
                return f["name"] + ".uuid"
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default=os.path.join(REPO, "..", "shared", "spec"))
    args = ap.parse_args()

    with open(os.path.join(args.spec, "xe-commands.json")) as f:
        commands = json.load(f)
    with open(os.path.join(args.spec, "xe-params.json")) as f:
        params = json.load(f)
    with open(os.path.join(args.spec, "errors.json")) as f:
        errors = json.load(f)
    with open(os.path.join(REPO, "crates", "xapi-idl", "spec", "datamodel.json")) as f:
        dm = json.load(f)
    dm_classes = {c["name"]: c for c in dm["classes"]}

    out_commands = []
    for c in commands:
        out_commands.append(
            {
                "name": c["name"],
                "reqd": c["reqd"],
                "optn": c["optn"],
                "flags": [x for x in c["flags"] if x in KEPT_FLAGS],
                "help": DESCRIPTIONS.get(c["name"], ""),
            }
        )

    out_classes = []
    for c in params["classes"]:
        dmc = c["datamodel_class"]
        if dmc not in dm_classes:
            continue
        fields = []
        for f in c["fields"]:
            path = resolve(dm_classes, dmc, f["name"])
            if path is None:
                continue
            fields.append(
                {
                    "name": f["name"],
                    "path": path,
                    "kind": f["kind"],
                    "caps": f["caps"],
                    "hidden": f["hidden"],
                    "expensive": f["expensive"],
                    "deprecated": f["deprecated"],
                    "case_insensitive": f["case_insensitive"],
                }
            )
        out_classes.append(
            {
                "name": c["class_name"],
                "datamodel": dmc,
                "default_filters": c["default_filters"],
                "default_params": c["default_list_params"],
                "list_expr": "subroles<>[]" if c["class_name"] == "role" else "true",
                "fields": fields,
            }
        )

    out_errors = {
        e["code"]: {"params": e["params"], "message": e["doc"]}
        for e in errors
        if e.get("documented")
    }

    out = {
        "stdparams": params["common_parameters"]["stdparams"],
        "commands": out_commands,
        "classes": out_classes,
        "errors": out_errors,
        "enum_display": ENUM_DISPLAY,
    }
    path = os.path.join(CRATE, "data", "xe.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1, sort_keys=False)
        f.write("\n")
    print(f"wrote {path}: {len(out_commands)} commands, {len(out_classes)} classes, "
          f"{len(out_errors)} errors", file=sys.stderr)


if __name__ == "__main__":
    main()
