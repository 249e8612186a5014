//! Explicit messages with real semantics, one file per class. Classes without a file answer
//! `NOT_IMPLEMENTED` for their explicit messages (the generated default bodies).
use xapi_idl::traits::*;
use xapi_idl::ActionsBase;

use crate::app::App;
use crate::dispatch::Ctx;

pub(crate) mod blob;
mod event;
mod host;
pub(crate) mod message;
mod pbd;
mod role;
mod session;
mod sr;
mod subject;
mod task;
mod vbd;
mod vdi;
mod vif;
mod vm;

impl ActionsBase for App {
    type Ctx = Ctx;
}

/// Declares that a class has no explicit message implemented yet.
macro_rules! unimplemented_classes {
    ($($tr:ident),* $(,)?) => { $(impl $tr for App {})* };
}

unimplemented_classes!(
    AuthActions,
    PoolActions,
    PoolPatchActions,
    PoolUpdateActions,
    VmMetricsActions,
    VmGuestMetricsActions,
    VmppActions,
    VmssActions,
    VmApplianceActions,
    DrTaskActions,
    HostCrashdumpActions,
    HostPatchActions,
    HostMetricsActions,
    HostCpuActions,
    NetworkActions,
    VifMetricsActions,
    PifActions,
    PifMetricsActions,
    BondActions,
    VlanActions,
    SmActions,
    SrStatActions,
    ProbeResultActions,
    LvhdActions,
    VbdMetricsActions,
    CrashdumpActions,
    VtpmActions,
    ConsoleActions,
    UserActions,
    DataSourceActions,
    SecretActions,
    TunnelActions,
    NetworkSriovActions,
    PciActions,
    PgpuActions,
    GpuGroupActions,
    VgpuActions,
    VgpuTypeActions,
    PvsSiteActions,
    PvsServerActions,
    PvsProxyActions,
    PvsCacheStorageActions,
    FeatureActions,
    SdnControllerActions,
    VdiNbdServerInfoActions,
    PusbActions,
    UsbGroupActions,
    VusbActions,
    ClusterActions,
    ClusterHostActions,
    CertificateActions,
    RepositoryActions,
    ObserverActions,
);
