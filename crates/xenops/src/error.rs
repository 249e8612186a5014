//! `XenopsError`: everything a hypervisor backend can refuse or fail with.
//!
//! The variants name hypervisor facts (a domain, a device, host memory), never XenAPI
//! error codes: the daemon maps them to API errors in one place (`xapi-daemon/src/errors.rs`).

use uuid::Uuid;

use crate::domain::DomainState;

/// Result of every hypervisor operation.
pub type Result<T, E = XenopsError> = std::result::Result<T, E>;

/// An operation a hypervisor backend refused or could not complete.
#[derive(Debug, thiserror::Error)]
pub enum XenopsError {
    /// No domain runs for this VM uuid.
    #[error("no domain for vm {0}")]
    NoSuchDomain(Uuid),
    /// A domain already runs for this VM uuid.
    #[error("a domain already exists for vm {0}")]
    AlreadyExists(Uuid),
    /// The host lacks the free memory the operation needs.
    #[error("not enough free memory: {needed} bytes needed, {free} free")]
    NotEnoughMemory {
        /// Bytes the operation needs.
        needed: u64,
        /// Bytes the host has free.
        free: u64,
    },
    /// More vCPUs than the host or the domain allows.
    #[error("too many vcpus: {requested} requested, at most {max}")]
    TooManyVcpus {
        /// vCPUs asked for.
        requested: u32,
        /// The limit that applies.
        max: u32,
    },
    /// The domain is not in the state the operation needs.
    #[error("domain of vm {uuid} is {actual}, expected {expected}")]
    BadState {
        /// The VM whose domain it is.
        uuid: Uuid,
        /// The state the operation needs.
        expected: DomainState,
        /// The state the domain is in.
        actual: DomainState,
    },
    /// The control domain (dom0) cannot be the target of this operation.
    #[error("operation not permitted on the control domain")]
    ControlDomain,
    /// The guest still uses the device; only a forced detach would remove it.
    #[error("device {device} is in use by the guest")]
    DeviceBusy {
        /// The device name (`xvdb`, VIF `0`).
        device: String,
    },
    /// The domain has no such device.
    #[error("no device {device}")]
    NoSuchDevice {
        /// The device name asked for.
        device: String,
    },
    /// The domain already has a device of that kind and name.
    #[error("device {device} already exists")]
    DeviceExists {
        /// The device name asked for.
        device: String,
    },
    /// The device is not a CD drive, so it has no media to insert or eject.
    #[error("device {device} is not a cd drive")]
    NotACd {
        /// The device name asked for.
        device: String,
    },
    /// The CD drive already holds a disc.
    #[error("cd drive {device} is not empty")]
    CdNotEmpty {
        /// The device name asked for.
        device: String,
    },
    /// The CD drive holds no disc.
    #[error("cd drive {device} is empty")]
    CdEmpty {
        /// The device name asked for.
        device: String,
    },
    /// The build description or a parameter is inconsistent (memory order, boot order, ...).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The domain could not be built or booted.
    #[error("boot failure: {0}")]
    BootFailure(String),
    /// The guest has no way to hear a cooperative request (no PV control interface, no
    /// ACPI button it reacts to), so it cannot acknowledge it.
    #[error("the guest did not acknowledge the request: {0}")]
    NotAcknowledged(String),
    /// A well-formed request this backend cannot carry out (a device combination the
    /// hypervisor's tools do not support).
    #[error("not supported: {0}")]
    Unsupported(String),
    /// The guest did not do what it was asked within the time allowed.
    #[error("timed out waiting for the guest: {0}")]
    Timeout(String),
    /// A suspend image or migration stream is unreadable or belongs to another VM.
    #[error("invalid domain image: {0}")]
    InvalidImage(String),
    /// The backend's persisted state could not be read or written.
    #[error("backend state: {0}")]
    State(String),
    /// An I/O error on a suspend image or state file.
    #[error("i/o error")]
    Io(#[from] std::io::Error),
}
