//! The rows of the mapped command table, grouped by class as upstream's command list is;
//! see the parent module for the argument spec syntax.
use super::{On, Row, Step};

const VM: On = On::Vm {
    control: false,
    templates: false,
    multiple: true,
};
const VM_CONTROL: On = On::Vm {
    control: true,
    templates: false,
    multiple: true,
};
const VM_ANY: On = On::Vm {
    control: true,
    templates: true,
    multiple: true,
};
const VM_ONE: On = On::Vm {
    control: true,
    templates: false,
    multiple: false,
};
const HOST: On = On::Host { multiple: true };
const HOST_ONE: On = On::Host { multiple: false };
const SR_ONE: On = On::Sr { multiple: false };
const NONE: On = On::Nothing;

const fn row(name: &'static str, on: On, steps: &'static [Step]) -> Row {
    Row { name, on, steps }
}

/// Every mapped command, grouped by class as upstream's command list is.
pub const ROWS: &[Row] = &[
    // host
    row("host-disable", HOST, &[("host.disable", &["@"])]),
    row(
        "host-enable",
        HOST,
        &[
            // As upstream: the GUI's maintenance-mode marker goes, so the host stays enabled.
            ("host.remove_from_other_config", &["@", "=MAINTENANCE_MODE"]),
            ("host.enable", &["@"]),
        ],
    ),
    row("host-sync-data", HOST, &[("host.sync_data", &["@"])]),
    row("host-shutdown", HOST, &[("host.shutdown", &["@"])]),
    row("host-reboot", HOST, &[("host.reboot", &["@"])]),
    row("host-power-on", HOST, &[("host.power_on", &["@"])]),
    row(
        "host-prepare-for-poweroff",
        NONE,
        &[("host.prepare_for_poweroff", &["%this"])],
    ),
    row("host-dmesg", HOST, &[("host.dmesg", &["@"])]),
    row(
        "host-enable-local-storage-caching",
        HOST,
        &[("host.enable_local_storage_caching", &["@", "sr-uuid"])],
    ),
    row(
        "host-disable-local-storage-caching",
        HOST,
        &[("host.disable_local_storage_caching", &["@"])],
    ),
    row(
        "host-set-power-on-mode",
        HOST,
        &[(
            "host.set_power_on_mode",
            &["@", "power-on-mode", "power-on-config:"],
        )],
    ),
    row(
        "host-crashdump-upload",
        NONE,
        &[("host_crashdump.upload", &["uuid", "url?", "&http_proxy"])],
    ),
    row(
        "host-crashdump-destroy",
        NONE,
        &[("host_crashdump.destroy", &["uuid"])],
    ),
    row(
        "host-bugreport-upload",
        HOST,
        &[("host.bugreport_upload", &["@", "url?", "&http_proxy"])],
    ),
    row(
        "host-signal-networking-change",
        NONE,
        &[("host.signal_networking_change", &[])],
    ),
    row(
        "host-notify",
        NONE,
        &[("host.notify", &["type", "params?"])],
    ),
    row(
        "host-syslog-reconfigure",
        NONE,
        &[("host.syslog_reconfigure", &["host-uuid"])],
    ),
    row(
        "host-send-debug-keys",
        NONE,
        &[("host.send_debug_keys", &["host-uuid", "keys"])],
    ),
    row(
        "host-emergency-management-reconfigure",
        NONE,
        &[("host.local_management_reconfigure", &["interface"])],
    ),
    row(
        "host-emergency-reset-server-certificate",
        NONE,
        &[("host.emergency_reset_server_certificate", &[])],
    ),
    row(
        "host-emergency-disable-tls-verification",
        NONE,
        &[("host.emergency_disable_tls_verification", &[])],
    ),
    row(
        "host-emergency-reenable-tls-verification",
        NONE,
        &[("host.emergency_reenable_tls_verification", &[])],
    ),
    row(
        "host-emergency-clear-mandatory-guidance",
        NONE,
        &[("host.emergency_clear_mandatory_guidance", &[])],
    ),
    row(
        "host-reset-server-certificate",
        HOST_ONE,
        &[("host.reset_server_certificate", &["@"])],
    ),
    row(
        "host-management-reconfigure",
        NONE,
        &[("host.management_reconfigure", &["pif-uuid"])],
    ),
    row(
        "host-management-disable",
        NONE,
        &[("host.management_disable", &[])],
    ),
    row(
        "host-compute-free-memory",
        HOST_ONE,
        &[("host.compute_free_memory", &["@"])],
    ),
    row(
        "host-compute-memory-overhead",
        HOST_ONE,
        &[("host.compute_memory_overhead", &["@"])],
    ),
    row(
        "host-get-system-status-capabilities",
        HOST,
        &[("host.get_system_status_capabilities", &["@"])],
    ),
    row(
        "host-set-hostname-live",
        NONE,
        &[("host.set_hostname_live", &["host-uuid", "host-name"])],
    ),
    row(
        "host-call-plugin",
        NONE,
        &[("host.call_plugin", &["host-uuid", "plugin", "fn", "args:"])],
    ),
    row(
        "host-external-auth-set-ldaps",
        NONE,
        &[(
            "host.external_auth_set_ldaps",
            &["host-uuid", "ldaps/bool", "force?false/bool"],
        )],
    ),
    row(
        "host-refresh-pack-info",
        NONE,
        &[("host.refresh_pack_info", &["host-uuid"])],
    ),
    row(
        "host-cpu-info",
        NONE,
        &[("host.get_cpu_info", &["uuid?%this"])],
    ),
    row(
        "host-enable-display",
        NONE,
        &[("host.enable_display", &["uuid"])],
    ),
    row(
        "host-disable-display",
        NONE,
        &[("host.disable_display", &["uuid"])],
    ),
    row(
        "host-is-in-emergency-mode",
        NONE,
        &[("host.is_in_emergency_mode", &[])],
    ),
    row(
        "host-emergency-ha-disable",
        NONE,
        &[("host.emergency_ha_disable", &["soft?false"])],
    ),
    row(
        "host-license-remove",
        NONE,
        &[("host.license_remove", &["host-uuid?%this"])],
    ),
    row(
        "host-license-view",
        NONE,
        &[("host.get_license_params", &["host-uuid?%this"])],
    ),
    row(
        "host-apply-edition",
        NONE,
        &[(
            "host.apply_edition",
            &["host-uuid?%this", "edition", "=false"],
        )],
    ),
    row(
        "host-all-editions",
        NONE,
        &[("host.get_editions", &["%this"])],
    ),
    row(
        "host-evacuate",
        HOST_ONE,
        &[("host.evacuate", &["@", "network-uuid?", "batch-size?0"])],
    ),
    row("host-shutdown-agent", NONE, &[("host.shutdown_agent", &[])]),
    row(
        "host-update-firewalld-service-status",
        NONE,
        &[("host.update_firewalld_service_status", &[])],
    ),
    row(
        "host-data-source-list",
        HOST_ONE,
        &[("host.get_data_sources", &["@"])],
    ),
    row(
        "host-data-source-record",
        HOST_ONE,
        &[("host.record_data_source", &["@", "data-source"])],
    ),
    row(
        "host-data-source-query",
        HOST_ONE,
        &[("host.query_data_source", &["@", "data-source"])],
    ),
    row(
        "host-data-source-forget",
        HOST_ONE,
        &[("host.forget_data_source_archives", &["@", "data-source"])],
    ),
    row(
        "host-get-server-certificate",
        HOST_ONE,
        &[("host.get_server_certificate", &["@"])],
    ),
    row(
        "host-refresh-server-certificate",
        HOST_ONE,
        &[("host.refresh_server_certificate", &["@"])],
    ),
    row(
        "host-server-certificate-install",
        HOST_ONE,
        &[(
            "host.install_server_certificate",
            &["@", "<certificate", "<private-key", "<certificate-chain?"],
        )],
    ),
    row(
        "host-get-sm-diagnostics",
        HOST_ONE,
        &[("host.get_sm_diagnostics", &["@"])],
    ),
    row(
        "host-get-thread-diagnostics",
        HOST_ONE,
        &[("host.get_thread_diagnostics", &["@"])],
    ),
    row(
        "host-sm-dp-destroy",
        HOST_ONE,
        &[("host.sm_dp_destroy", &["@", "dp", "allow-leak?false/bool"])],
    ),
    row("host-enable-ssh", HOST, &[("host.enable_ssh", &["@"])]),
    row("host-disable-ssh", HOST, &[("host.disable_ssh", &["@"])]),
    row(
        "host-apply-updates",
        HOST_ONE,
        &[("host.apply_updates", &["@", "hash"])],
    ),
    row(
        "host-ha-xapi-healthcheck",
        NONE,
        &[("host.ha_xapi_healthcheck", &[])],
    ),
    // pool
    row(
        "pool-enable-binary-storage",
        NONE,
        &[("pool.enable_binary_storage", &[])],
    ),
    row(
        "pool-disable-binary-storage",
        NONE,
        &[("pool.disable_binary_storage", &[])],
    ),
    row(
        "pool-ha-enable",
        NONE,
        &[("pool.enable_ha", &["heartbeat-sr-uuids?", "ha-config:"])],
    ),
    row("pool-ha-disable", NONE, &[("pool.disable_ha", &[])]),
    row(
        "pool-initialize-wlb",
        NONE,
        &[(
            "pool.initialize_wlb",
            &[
                "wlb_url",
                "wlb_username",
                "wlb_password",
                "xenserver_username",
                "xenserver_password",
            ],
        )],
    ),
    row(
        "pool-send-test-post",
        NONE,
        &[("pool.send_test_post", &["dest-host", "dest-port", "body"])],
    ),
    row(
        "pool-ha-prevent-restarts-for",
        NONE,
        &[("pool.ha_prevent_restarts_for", &["seconds"])],
    ),
    row(
        "pool-ha-compute-max-host-failures-to-tolerate",
        NONE,
        &[("pool.ha_compute_max_host_failures_to_tolerate", &[])],
    ),
    row("pool-sync-database", NONE, &[("pool.sync_database", &[])]),
    row(
        "pool-designate-new-master",
        NONE,
        &[("pool.designate_new_master", &["host-uuid"])],
    ),
    row(
        "pool-management-reconfigure",
        NONE,
        &[("pool.management_reconfigure", &["network-uuid"])],
    ),
    row(
        "pool-emergency-reset-master",
        NONE,
        &[("pool.emergency_reset_master", &["master-address"])],
    ),
    row("pool-recover-slaves", NONE, &[("pool.recover_slaves", &[])]),
    row(
        "pool-install-ca-certificate",
        NONE,
        &[("pool.install_ca_certificate", &["^filename", "<filename"])],
    ),
    row(
        "pool-certificate-install",
        NONE,
        &[("pool.install_ca_certificate", &["^filename", "<filename"])],
    ),
    row(
        "pool-uninstall-ca-certificate",
        NONE,
        &[("pool.uninstall_ca_certificate", &["name"])],
    ),
    row(
        "pool-certificate-uninstall",
        NONE,
        &[("pool.uninstall_ca_certificate", &["name"])],
    ),
    row(
        "pool-certificate-list",
        NONE,
        &[("pool.certificate_list", &[])],
    ),
    row(
        "pool-crl-install",
        NONE,
        &[("pool.crl_install", &["^filename", "<filename"])],
    ),
    row(
        "pool-crl-uninstall",
        NONE,
        &[("pool.crl_uninstall", &["name"])],
    ),
    row("pool-crl-list", NONE, &[("pool.crl_list", &[])]),
    row(
        "pool-certificate-sync",
        NONE,
        &[("pool.certificate_sync", &[])],
    ),
    row(
        "pool-enable-redo-log",
        NONE,
        &[("pool.enable_redo_log", &["sr-uuid"])],
    ),
    row(
        "pool-disable-redo-log",
        NONE,
        &[("pool.disable_redo_log", &[])],
    ),
    row(
        "pool-set-vswitch-controller",
        NONE,
        &[("pool.set_vswitch_controller", &["address"])],
    ),
    row("pool-secret-rotate", NONE, &[("pool.rotate_secret", &[])]),
    row(
        "pool-enable-tls-verification",
        NONE,
        &[("pool.enable_tls_verification", &[])],
    ),
    row(
        "pool-enable-client-certificate-auth",
        NONE,
        &[("pool.enable_client_certificate_auth", &["%pool", "name"])],
    ),
    row(
        "pool-disable-client-certificate-auth",
        NONE,
        &[("pool.disable_client_certificate_auth", &["%pool"])],
    ),
    row(
        "pool-sync-updates",
        NONE,
        &[(
            "pool.sync_updates",
            &["%pool", "force?false", "token?", "token-id?"],
        )],
    ),
    row(
        "pool-reset-telemetry-uuid",
        NONE,
        &[("pool.reset_telemetry_uuid", &["%pool"])],
    ),
    row(
        "pool-configure-repository-proxy",
        NONE,
        &[(
            "pool.configure_repository_proxy",
            &["%pool", "proxy-url", "proxy-username?", "proxy-password?"],
        )],
    ),
    row(
        "pool-disable-repository-proxy",
        NONE,
        &[("pool.disable_repository_proxy", &["%pool"])],
    ),
    row(
        "pool-configure-update-sync",
        NONE,
        &[(
            "pool.configure_update_sync",
            &["%pool", "update-sync-frequency", "update-sync-day?0"],
        )],
    ),
    row(
        "pool-set-update-sync-enabled",
        NONE,
        &[("pool.set_update_sync_enabled", &["%pool", "value"])],
    ),
    row(
        "pool-install-trusted-certificate",
        NONE,
        &[(
            "pool.install_trusted_certificate",
            &["%pool", "ca?true/bool", "<filename", "purpose?"],
        )],
    ),
    row(
        "pool-uninstall-trusted-certificate",
        NONE,
        &[(
            "pool.uninstall_trusted_certificate",
            &["%pool", "certificate-uuid"],
        )],
    ),
    row(
        "pool-enable-local-storage-caching",
        NONE,
        &[("pool.enable_local_storage_caching", &["%pool"])],
    ),
    row(
        "pool-disable-local-storage-caching",
        NONE,
        &[("pool.disable_local_storage_caching", &["%pool"])],
    ),
    row(
        "pool-apply-edition",
        NONE,
        &[("pool.apply_edition", &["%pool", "edition"])],
    ),
    row(
        "pool-enable-external-auth",
        NONE,
        &[(
            "pool.enable_external_auth",
            &["%pool", "config:", "service-name", "auth-type"],
        )],
    ),
    row(
        "pool-disable-external-auth",
        NONE,
        &[("pool.disable_external_auth", &["%pool", "config:"])],
    ),
    row(
        "pool-external-auth-set-ldaps",
        NONE,
        &[(
            "pool.external_auth_set_ldaps",
            &["%pool", "ldaps/bool", "force?false/bool"],
        )],
    ),
    row(
        "pool-get-guest-secureboot-readiness",
        NONE,
        &[("pool.get_guest_secureboot_readiness", &["%pool"])],
    ),
    row(
        "pool-get-cpu-features",
        NONE,
        &[("pool.get_cpu_info", &["%pool"])],
    ),
    row("pool-enable-ssh", NONE, &[("pool.enable_ssh", &["%pool"])]),
    row(
        "pool-disable-ssh",
        NONE,
        &[("pool.disable_ssh", &["%pool"])],
    ),
    row(
        "pool-vlan-create",
        NONE,
        &[(
            "pool.create_VLAN_from_PIF",
            &["pif-uuid", "network-uuid", "vlan"],
        )],
    ),
    // VM
    row(
        "vm-memory-dynamic-range-set",
        VM_ANY,
        &[("VM.set_memory_dynamic_range", &["@", "#min", "#max"])],
    ),
    row(
        "vm-memory-static-range-set",
        VM_ANY,
        &[("VM.set_memory_static_range", &["@", "#min", "#max"])],
    ),
    row(
        "vm-memory-limits-set",
        VM_ANY,
        &[(
            "VM.set_memory_limits",
            &[
                "@",
                "#static-min",
                "#static-max",
                "#dynamic-min",
                "#dynamic-max",
            ],
        )],
    ),
    row(
        "vm-memory-set",
        VM_ANY,
        &[("VM.set_memory", &["@", "#memory"])],
    ),
    row(
        "vm-memory-target-set",
        VM_CONTROL,
        &[("VM.set_memory_dynamic_range", &["@", "#target", "#target"])],
    ),
    row(
        "vm-memory-balloon",
        VM_CONTROL,
        &[("VM.set_memory_dynamic_range", &["@", "#target", "#target"])],
    ),
    row(
        "vm-memory-target-wait",
        VM_CONTROL,
        &[("VM.wait_memory_target_live", &["@"])],
    ),
    row(
        "vm-memory-shadow-multiplier-set",
        VM,
        &[("VM.set_shadow_multiplier_live", &["@", "multiplier"])],
    ),
    row(
        "vm-vcpu-hotplug",
        VM,
        &[("VM.set_VCPUs_number_live", &["@", "new-vcpus"])],
    ),
    row(
        "vm-data-source-list",
        VM_ONE,
        &[("VM.get_data_sources", &["@"])],
    ),
    row(
        "vm-data-source-record",
        VM_ONE,
        &[("VM.record_data_source", &["@", "data-source"])],
    ),
    row(
        "vm-data-source-query",
        VM_ONE,
        &[("VM.query_data_source", &["@", "data-source"])],
    ),
    row(
        "vm-data-source-forget",
        VM_ONE,
        &[("VM.forget_data_source_archives", &["@", "data-source"])],
    ),
    row(
        "vm-compute-maximum-memory",
        VM,
        &[("VM.maximise_memory", &["@", "#total", "approximate?false"])],
    ),
    row(
        "vm-snapshot-with-quiesce",
        VM,
        &[("VM.snapshot_with_quiesce", &["@", "new-name-label"])],
    ),
    row(
        "vm-compute-memory-overhead",
        VM_CONTROL,
        &[("VM.compute_memory_overhead", &["@"])],
    ),
    row(
        "vm-copy-bios-strings",
        VM,
        &[("VM.copy_bios_strings", &["@", "host-uuid"])],
    ),
    row(
        "vm-restart-device-models",
        VM,
        &[("VM.restart_device_models", &["@"])],
    ),
    row("vm-query-services", VM, &[("VM.query_services", &["@"])]),
    row(
        "vm-call-plugin",
        NONE,
        &[("VM.call_plugin", &["vm-uuid", "plugin", "fn", "args:"])],
    ),
    row(
        "vm-call-host-plugin",
        NONE,
        &[("VM.call_host_plugin", &["vm-uuid", "plugin", "fn", "args:"])],
    ),
    row(
        "vm-set-uefi-mode",
        NONE,
        &[("VM.set_uefi_mode", &["uuid", "mode"])],
    ),
    row(
        "vm-get-secureboot-readiness",
        NONE,
        &[("VM.get_secureboot_readiness", &["uuid"])],
    ),
    row(
        "vm-update-secureboot-certificates-on-boot",
        VM,
        &[(
            "VM.update_secureboot_certificates_on_boot",
            &["@", "mark/bool"],
        )],
    ),
    row(
        "vm-sysprep",
        VM,
        &[("VM.sysprep", &["@", "<filename", "timeout?180.0/float"])],
    ),
    row(
        "vm-retrieve-wlb-recommendations",
        VM,
        &[("VM.retrieve_wlb_recommendations", &["@"])],
    ),
    row(
        "vm-assert-can-be-recovered",
        NONE,
        &[("VM.assert_can_be_recovered", &["uuid", "%session"])],
    ),
    row(
        "vm-recover",
        NONE,
        &[("VM.recover", &["uuid", "%session", "force?false"])],
    ),
    row(
        "vm-group-create",
        NONE,
        &[(
            "VM_group.create",
            &["name-label", "name-description?", "placement"],
        )],
    ),
    row("vm-group-destroy", NONE, &[("VM_group.destroy", &["uuid"])]),
    // snapshot
    row(
        "snapshot-revert",
        NONE,
        &[("VM.revert", &["snapshot-uuid|uuid"])],
    ),
    // SR
    row(
        "sr-probe",
        NONE,
        &[(
            "SR.probe",
            &["host-uuid?%this", "device-config:", "type", "sm-config:"],
        )],
    ),
    row(
        "sr-probe-ext",
        NONE,
        &[(
            "SR.probe_ext",
            &["host-uuid?%this", "device-config:", "type", "sm-config:"],
        )],
    ),
    row("sr-scan", NONE, &[("SR.scan", &["uuid"])]),
    row(
        "sr-introduce",
        NONE,
        &[(
            "SR.introduce",
            &[
                "uuid",
                "name-label",
                "name-description?",
                "type",
                "content-type?",
                "shared?false",
                "=",
            ],
        )],
    ),
    row("sr-destroy", NONE, &[("SR.destroy", &["uuid"])]),
    row("sr-forget", NONE, &[("SR.forget", &["uuid"])]),
    row("sr-update", NONE, &[("SR.update", &["uuid"])]),
    row(
        "sr-enable-database-replication",
        NONE,
        &[("SR.enable_database_replication", &["uuid"])],
    ),
    row(
        "sr-disable-database-replication",
        NONE,
        &[("SR.disable_database_replication", &["uuid"])],
    ),
    row(
        "sr-data-source-list",
        SR_ONE,
        &[("SR.get_data_sources", &["@"])],
    ),
    row(
        "sr-data-source-record",
        SR_ONE,
        &[("SR.record_data_source", &["@", "data-source"])],
    ),
    row(
        "sr-data-source-query",
        SR_ONE,
        &[("SR.query_data_source", &["@", "data-source"])],
    ),
    row(
        "sr-data-source-forget",
        SR_ONE,
        &[("SR.forget_data_source_archives", &["@", "data-source"])],
    ),
    // PBD
    row("pbd-destroy", NONE, &[("PBD.destroy", &["uuid"])]),
    row("pbd-plug", NONE, &[("PBD.plug", &["uuid"])]),
    row("pbd-unplug", NONE, &[("PBD.unplug", &["uuid"])]),
    // VDI
    row("vdi-destroy", NONE, &[("VDI.destroy", &["uuid"])]),
    row("vdi-forget", NONE, &[("VDI.forget", &["uuid"])]),
    row("vdi-update", NONE, &[("VDI.update", &["uuid"])]),
    row(
        "vdi-snapshot",
        NONE,
        &[("VDI.snapshot", &["uuid", "driver-params:"])],
    ),
    row(
        "vdi-pool-migrate",
        NONE,
        &[("VDI.pool_migrate", &["uuid", "sr-uuid", "&dest-img-format"])],
    ),
    row("vdi-enable-cbt", NONE, &[("VDI.enable_cbt", &["uuid"])]),
    row("vdi-disable-cbt", NONE, &[("VDI.disable_cbt", &["uuid"])]),
    row("vdi-data-destroy", NONE, &[("VDI.data_destroy", &["uuid"])]),
    row(
        "vdi-list-changed-blocks",
        NONE,
        &[("VDI.list_changed_blocks", &["vdi-from-uuid", "vdi-to-uuid"])],
    ),
    row(
        "vdi-generate-config",
        NONE,
        &[("VDI.generate_config", &["host-uuid", "uuid"])],
    ),
    row(
        "vdi-introduce",
        NONE,
        &[(
            "VDI.introduce",
            &[
                "uuid/string",
                "name-label?",
                "name-description?",
                "sr-uuid",
                "type",
                "sharable?false",
                "read-only?false",
                "other-config:",
                "location",
                "xenstore-data:",
                "sm-config:",
                "managed?false",
                "=0",
                "=0",
                "=",
                "=false",
                "=",
                "=",
            ],
        )],
    ),
    // VBD
    row("vbd-destroy", NONE, &[("VBD.destroy", &["uuid"])]),
    row("vbd-insert", NONE, &[("VBD.insert", &["uuid", "vdi-uuid"])]),
    row("vbd-eject", NONE, &[("VBD.eject", &["uuid"])]),
    row("vbd-plug", NONE, &[("VBD.plug", &["uuid"])]),
    row("vbd-pause", NONE, &[("VBD.pause", &["uuid"])]),
    row("vbd-unpause", NONE, &[("VBD.unpause", &["uuid", "token"])]),
    // VIF
    row("vif-destroy", NONE, &[("VIF.destroy", &["uuid"])]),
    row("vif-plug", NONE, &[("VIF.plug", &["uuid"])]),
    row(
        "vif-configure-ipv4",
        NONE,
        &[(
            "VIF.configure_ipv4",
            &["uuid", "mode", "address?", "gateway?"],
        )],
    ),
    row(
        "vif-configure-ipv6",
        NONE,
        &[(
            "VIF.configure_ipv6",
            &["uuid", "mode", "address?", "gateway?"],
        )],
    ),
    row("vif-move", NONE, &[("VIF.move", &["uuid", "network-uuid"])]),
    // network
    row("network-destroy", NONE, &[("network.destroy", &["uuid"])]),
    row(
        "network-attach",
        NONE,
        &[("network.attach", &["uuid", "host-uuid"])],
    ),
    // PIF
    row("pif-unplug", NONE, &[("PIF.unplug", &["uuid"])]),
    row("pif-plug", NONE, &[("PIF.plug", &["uuid"])]),
    row(
        "pif-reconfigure-ip",
        NONE,
        &[(
            "PIF.reconfigure_ip",
            &["uuid", "mode", "IP|ip?", "netmask?", "gateway?", "DNS|dns?"],
        )],
    ),
    row(
        "pif-reconfigure-ipv6",
        NONE,
        &[(
            "PIF.reconfigure_ipv6",
            &["uuid", "mode", "IPv6|ipv6?", "gateway?", "DNS|dns?"],
        )],
    ),
    row(
        "pif-set-primary-address-type",
        NONE,
        &[(
            "PIF.set_primary_address_type",
            &["uuid", "primary_address_type"],
        )],
    ),
    row("pif-scan", NONE, &[("PIF.scan", &["host-uuid"])]),
    row(
        "pif-introduce",
        NONE,
        &[(
            "PIF.introduce",
            &["host-uuid", "mac?", "device", "managed?true"],
        )],
    ),
    row("pif-forget", NONE, &[("PIF.forget", &["uuid"])]),
    row("pif-db-forget", NONE, &[("PIF.db_forget", &["uuid"])]),
    // task
    row("task-cancel", NONE, &[("task.cancel", &["uuid"])]),
];
