//! First start: creates a coherent single-host pool (pool, host, metrics, CPUs, the control
//! domain, roles, SM records, the default network, the default templates) in one transaction.
//! Idempotent: a store that already has a pool is left alone. Host memory and the control
//! domain come from the hypervisor, so `host_metrics` and dom0 agree with xenops.
use std::collections::BTreeMap;

use xapi_db::{Db, DbError, Txn};
use xapi_idl::enums::{DomainType, VmPowerState};
use xapi_idl::model::Model;
use xapi_idl::records::{
    HostCpuRecord, HostMetricsRecord, HostRecord, NetworkRecord, PoolRecord, SmRecord,
    VmMetricsRecord, VmRecord,
};
use xapi_idl::{classes, ApiError, ApiResult, Class, DateTime, Record, Ref};

use crate::schema::Tables;
use crate::sysinfo::HostFacts;

/// API version reported by `host.API_version_*`, as upstream's current release.
pub const API_VERSION: (i64, i64) = (2, 21);

/// What the hypervisor says about the host, for seeding.
pub struct HypervisorFacts {
    /// Host memory and CPUs.
    pub physinfo: xenops::PhysInfo,
    /// The control domain (domid 0).
    pub dom0: xenops::DomainInfo,
}

/// Returns `(host ref, pool ref)`, creating the first-start objects when the store has no pool.
pub fn ensure(
    model: &Model,
    db: &Db,
    tables: &Tables,
    hv: &HypervisorFacts,
) -> ApiResult<(String, String)> {
    let pool_t = table::<classes::Pool>(tables);
    if let Some((pool, row)) = db.rows(pool_t).into_iter().next() {
        let rec = PoolRecord::from_row(&row).map_err(ApiError::from)?;
        return Ok((rec.master.into_string(), pool));
    }
    let facts = HostFacts::read();
    db.write(|txn| seed(model, tables, txn, &facts, hv))
        .map_err(crate::errors::db_error)
}

fn table<C: Class>(tables: &Tables) -> usize {
    tables
        .table(C::INDEX)
        .expect("seeded classes are persisted")
}

fn insert<R: Record>(
    txn: &mut Txn<'_>,
    tables: &Tables,
    r: &Ref<R::Class>,
    rec: &R,
) -> Result<(), DbError> {
    txn.insert(table::<R::Class>(tables), r.as_str(), rec.to_row())
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn map(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn seed(
    model: &Model,
    tables: &Tables,
    txn: &mut Txn<'_>,
    facts: &HostFacts,
    hv: &HypervisorFacts,
) -> Result<(String, String), DbError> {
    let host: Ref<classes::Host> = Ref::fresh();
    let pool: Ref<classes::Pool> = Ref::fresh();
    let metrics: Ref<classes::HostMetrics> = Ref::fresh();
    let dom0: Ref<classes::Vm> = Ref::fresh();

    insert(
        txn,
        tables,
        &metrics,
        &HostMetricsRecord {
            uuid: new_uuid(),
            memory_total: hv.physinfo.total_memory as i64,
            memory_free: hv.physinfo.free_memory as i64,
            live: true,
            last_updated: DateTime::now(),
            ..Default::default()
        },
    )?;
    // The hypervisor's CPU count: dom0 sees only its own vCPUs in /proc/cpuinfo.
    let n_cpus = (hv.physinfo.nr_cpus as usize).max(1);
    let cpu_info = map(&[
        ("cpu_count", n_cpus.to_string()),
        ("socket_count", facts.sockets.to_string()),
        ("vendor", facts.vendor.clone()),
        ("modelname", facts.model_name.clone()),
        ("speed", format!("{:.3}", facts.mhz)),
        ("flags", facts.flags.clone()),
        ("features", String::new()),
        ("family", facts.family.to_string()),
        ("model", facts.model.to_string()),
        ("stepping", facts.stepping.clone()),
    ]);
    insert(
        txn,
        tables,
        &host,
        &HostRecord {
            uuid: new_uuid(),
            name_label: facts.hostname.clone(),
            name_description: "Default install".into(),
            hostname: facts.hostname.clone(),
            address: "127.0.0.1".into(),
            api_version_major: API_VERSION.0,
            api_version_minor: API_VERSION.1,
            api_version_vendor: "XenSource".into(),
            enabled: true,
            software_version: map(&[
                ("product_brand", "xapi-rs".into()),
                ("product_version", "8.3.0".into()),
                ("product_version_text", "8.3".into()),
                ("product_version_text_short", "8.3".into()),
                ("platform_name", "XCP".into()),
                ("platform_version", "3.4.0".into()),
                (
                    "xapi",
                    format!("24.12 (xapi-rs {})", env!("CARGO_PKG_VERSION")),
                ),
                ("xapi_build", env!("CARGO_PKG_VERSION").into()),
                ("xen", hv.physinfo.xen_version.clone()),
                ("linux", facts.kernel.clone()),
                ("hostname", facts.hostname.clone()),
                ("date", DateTime::now().to_string()),
                ("dbv", "2024.0101".into()),
            ]),
            capabilities: hv.physinfo.capabilities.clone(),
            cpu_info: cpu_info.clone(),
            sched_policy: "credit".into(),
            supported_bootloaders: vec!["pygrub".into(), "eliloader".into()],
            metrics: metrics.clone(),
            control_domain: dom0.clone(),
            memory_overhead: 0,
            edition: "xcp-ng".into(),
            license_params: map(&[("restrict_vswitch_controller", "false".into())]),
            iscsi_iqn: format!("iqn.2024-01.local.xapi-rs:{}", facts.hostname),
            virtual_hardware_platform_versions: vec![0, 1, 2],
            tls_verification_enabled: false,
            ..Default::default()
        },
    )?;
    for i in 0..n_cpus {
        let speed = facts
            .cpus
            .get(i)
            .copied()
            .unwrap_or(f64::from(hv.physinfo.cpu_mhz));
        insert(
            txn,
            tables,
            &Ref::<classes::HostCpu>::fresh(),
            &HostCpuRecord {
                uuid: new_uuid(),
                host: host.clone(),
                number: i as i64,
                vendor: facts.vendor.clone(),
                speed: speed.round() as i64,
                modelname: facts.model_name.clone(),
                family: facts.family,
                model: facts.model,
                stepping: facts.stepping.clone(),
                flags: facts.flags.clone(),
                ..Default::default()
            },
        )?;
    }
    insert(
        txn,
        tables,
        &pool,
        &PoolRecord {
            uuid: new_uuid(),
            master: host.clone(),
            cpu_info,
            other_config: map(&[
                ("memory-ratio-hvm", "0.25".into()),
                ("memory-ratio-pv", "0.25".into()),
            ]),
            ..Default::default()
        },
    )?;

    // The control domain: dom0 is always running on its host.
    let dom0_metrics: Ref<classes::VmMetrics> = Ref::fresh();
    let dom0_mem = hv.dom0.memory_actual as i64;
    let dom0_vcpus = i64::from(hv.dom0.vcpus_max);
    insert(
        txn,
        tables,
        &dom0_metrics,
        &VmMetricsRecord {
            uuid: new_uuid(),
            memory_actual: dom0_mem,
            vcpus_number: dom0_vcpus,
            start_time: DateTime::now(),
            last_updated: DateTime::now(),
            current_domain_type: DomainType::Pv,
            ..Default::default()
        },
    )?;
    insert(
        txn,
        tables,
        &dom0,
        &VmRecord {
            uuid: hv.dom0.uuid.to_string(),
            name_label: format!("Control domain on host: {}", facts.hostname),
            name_description: "The domain which manages physical devices and manages other domains"
                .into(),
            power_state: VmPowerState::Running,
            is_control_domain: true,
            resident_on: host.clone(),
            domid: 0,
            memory_static_min: dom0_mem,
            memory_static_max: dom0_mem,
            memory_dynamic_min: dom0_mem,
            memory_dynamic_max: dom0_mem,
            memory_target: dom0_mem,
            vcpus_max: dom0_vcpus,
            vcpus_at_startup: dom0_vcpus,
            metrics: dom0_metrics,
            domain_type: DomainType::Pv,
            ..Default::default()
        },
    )?;

    insert(
        txn,
        tables,
        &Ref::<classes::Network>::fresh(),
        &NetworkRecord {
            uuid: new_uuid(),
            name_label: "Pool-wide network associated with eth0".into(),
            bridge: "xenbr0".into(),
            mtu: 1500,
            managed: true,
            other_config: map(&[("automatic", "true".into())]),
            ..Default::default()
        },
    )?;

    for sm in crate::sm_catalog::CATALOG {
        insert(
            txn,
            tables,
            &Ref::<classes::Sm>::fresh(),
            &SmRecord {
                uuid: new_uuid(),
                name_label: sm.name.into(),
                name_description: sm.description.into(),
                type_: sm.kind.into(),
                vendor: "xapi-rs".into(),
                copyright: "xapi-rs contributors".into(),
                version: "1.0".into(),
                required_api_version: "1.0".into(),
                configuration: sm
                    .configuration
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                capabilities: sm.features.iter().map(|(f, _)| f.to_string()).collect(),
                features: sm
                    .features
                    .iter()
                    .map(|(f, v)| (f.to_string(), *v))
                    .collect(),
                driver_filename: format!("/usr/libexec/xapi-rs/sm/{}", sm.kind),
                ..Default::default()
            },
        )?;
    }

    crate::rbac::seed(model, txn, table::<classes::Role>(tables))?;
    crate::templates::seed(txn, table::<classes::Vm>(tables))?;
    Ok((host.into_string(), pool.into_string()))
}
