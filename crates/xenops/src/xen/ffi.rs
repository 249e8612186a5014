//! The one module of the Xen backend with `unsafe` code: a safe face over a libxl context,
//! a libxenctrl handle and the logger they share. Everything libxl needs is passed in as
//! JSON (libxl's own `*_from_json` parsers fill the C structs), so this module handles only
//! strings, integers and a few plain C structs.
//!
//! A `Xen` is not `Send`: it is created and used on the libxl thread only (`worker`), which
//! also keeps libxl's single-threaded assumptions about its synchronous calls simple.
//! It never interprets results beyond copying them into plain Rust values.

#![allow(unsafe_code)] // The FFI boundary of the backend; every block carries a SAFETY note.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::marker::PhantomData;
use std::os::fd::RawFd;
use std::ptr;

use xen_sys as sys;

/// A libxl error code (`libxl_error`, negative) or a libxenctrl failure (-1 with errno).
pub type Rc = i32;

/// Returned when a string for C contains a NUL byte.
const RC_INVAL: Rc = sys::ERROR_INVAL;

/// How many domains one `xc_domain_getinfolist` call may report.
const MAX_DOMAINS: usize = 1024;

/// The SIGCHLD arrangement: libxl installs its handler but reaps only the children it forked
/// itself (hotplug scripts, bootloader, device model), leaving every other child to whoever
/// spawned it. libxl keeps a pointer to this, hence a static.
static CHILD_HOOKS: sys::libxl_childproc_hooks = sys::libxl_childproc_hooks {
    chldowner: sys::libxl_sigchld_owner_libxl_always_selective_reap,
    fork_replacement: None,
    reaped_callback: None,
};

/// One domain as `xc_domain_getinfolist` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawDomain {
    /// The domid.
    pub domid: u32,
    /// The domain handle: the VM uuid's bytes.
    pub handle: [u8; 16],
    /// `XEN_DOMINF_*` flags with the shutdown code in bits 16..24.
    pub flags: u32,
    /// Pages held now.
    pub tot_pages: u64,
    /// The maximum reservation, in pages.
    pub max_pages: u64,
    /// vCPUs online.
    pub online_vcpus: u32,
    /// The highest vCPU id (vCPUs are 0..=max_vcpu_id).
    pub max_vcpu_id: u32,
}

/// The host as `xc_physinfo` and `xc_version` report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPhysInfo {
    /// Threads per core.
    pub threads_per_core: u32,
    /// Cores per socket.
    pub cores_per_socket: u32,
    /// Logical CPUs.
    pub nr_cpus: u32,
    /// CPU clock in kHz.
    pub cpu_khz: u32,
    /// Host memory in pages.
    pub total_pages: u64,
    /// Free memory in pages.
    pub free_pages: u64,
    /// Space-separated guest ABIs.
    pub capabilities: String,
    /// `major.minor` plus the extra version.
    pub version: String,
}

/// An open libxl context and libxenctrl handle (see the module doc).
pub struct Xen {
    ctx: *mut sys::libxl_ctx,
    xch: *mut sys::xc_interface,
    logger: *mut sys::xentoollog_logger_stdiostream,
    /// Keeps `Xen` off other threads: raw pointers are already `!Send`, this says it plainly.
    _not_send: PhantomData<*mut ()>,
}

impl Xen {
    /// Open the logger (stderr, at `debug` or warning level), the libxl context and the
    /// libxenctrl handle, and hand SIGCHLD to libxl in selective-reap mode.
    pub fn open(debug: bool) -> Result<Xen, String> {
        let level = if debug { sys::XTL_DEBUG } else { sys::XTL_WARN };
        // SAFETY: `stderr` is the C library's stream, valid for the whole process; the
        // logger only writes to it.
        let logger = unsafe { sys::xtl_createlogger_stdiostream(sys::stderr, level, 0) };
        if logger.is_null() {
            return Err("cannot create the xentoollog logger".into());
        }
        let mut xen = Xen {
            ctx: ptr::null_mut(),
            xch: ptr::null_mut(),
            logger,
            _not_send: PhantomData,
        };
        let lg = logger.cast::<sys::xentoollog_logger>();
        // SAFETY: `xen.ctx` is a valid out-pointer; the logger outlives the context because
        // `Drop` frees the context first.
        let rc = unsafe { sys::libxl_ctx_alloc(&mut xen.ctx, sys::LIBXL_VERSION as c_int, 0, lg) };
        if rc != 0 || xen.ctx.is_null() {
            return Err(format!(
                "libxl_ctx_alloc failed ({rc}): is this a Xen dom0 run as root?"
            ));
        }
        // SAFETY: the context is live and the hooks are a static, so they outlive it.
        unsafe { sys::libxl_childproc_setmode(xen.ctx, &CHILD_HOOKS, ptr::null_mut()) };
        // SAFETY: the logger is live; a null result is handled below.
        xen.xch = unsafe { sys::xc_interface_open(lg, lg, 0) };
        if xen.xch.is_null() {
            return Err("xc_interface_open failed: cannot open /dev/xen/privcmd".into());
        }
        Ok(xen)
    }

    /// Every domain, in domid order (`xc_domain_getinfolist`).
    pub fn domains(&self) -> Result<Vec<RawDomain>, Rc> {
        // SAFETY: the struct is plain old data (integers and byte arrays); all-zero is valid.
        let zero: sys::xc_domaininfo_t = unsafe { std::mem::zeroed() };
        let mut infos = vec![zero; MAX_DOMAINS];
        // SAFETY: `infos` has room for MAX_DOMAINS entries, the count we pass.
        let n = unsafe {
            sys::xc_domain_getinfolist(self.xch, 0, MAX_DOMAINS as u32, infos.as_mut_ptr())
        };
        if n < 0 {
            return Err(n);
        }
        let n = usize::try_from(n).unwrap_or(0).min(MAX_DOMAINS);
        Ok(infos[..n]
            .iter()
            .map(|info| RawDomain {
                domid: u32::from(info.domain),
                handle: info.handle,
                flags: info.flags,
                tot_pages: info.tot_pages,
                max_pages: info.max_pages,
                online_vcpus: info.nr_online_vcpus,
                max_vcpu_id: info.max_vcpu_id,
            })
            .collect())
    }

    /// Host CPUs, memory, capabilities and version.
    pub fn physinfo(&self) -> Result<RawPhysInfo, Rc> {
        let mut info = sys::xc_physinfo_t::default();
        // SAFETY: `info` is a valid out-pointer of the right type.
        let rc = unsafe { sys::xc_physinfo(self.xch, &mut info) };
        if rc != 0 {
            return Err(rc);
        }
        let mut caps = [0u8; 1024];
        // SAFETY: XENVER_capabilities writes a 1024-byte NUL-terminated string.
        let rc = unsafe {
            sys::xc_version(
                self.xch,
                sys::XENVER_capabilities as c_int,
                caps.as_mut_ptr().cast::<c_void>(),
            )
        };
        if rc != 0 {
            return Err(rc);
        }
        let mut extra = [0u8; 16];
        // SAFETY: XENVER_version takes no argument and returns major << 16 | minor;
        // XENVER_extraversion writes a 16-byte NUL-terminated string.
        let (version, rc) = unsafe {
            let version = sys::xc_version(self.xch, sys::XENVER_version as c_int, ptr::null_mut());
            let rc = sys::xc_version(
                self.xch,
                sys::XENVER_extraversion as c_int,
                extra.as_mut_ptr().cast::<c_void>(),
            );
            (version, rc)
        };
        if version < 0 || rc != 0 {
            return Err(if version < 0 { version } else { rc });
        }
        Ok(RawPhysInfo {
            threads_per_core: info.threads_per_core,
            cores_per_socket: info.cores_per_socket,
            nr_cpus: info.nr_cpus,
            cpu_khz: info.cpu_khz,
            total_pages: info.total_pages,
            free_pages: info.free_pages,
            capabilities: c_bytes(&caps),
            version: format!("{}.{}{}", version >> 16, version & 0xffff, c_bytes(&extra)),
        })
    }

    /// Build a domain from a `libxl_domain_config` JSON document; it is left paused.
    pub fn create(&self, config_json: &str) -> Result<u32, Rc> {
        let mut config = DomainConfig::from_json(self, config_json)?;
        let mut domid = u32::MAX;
        // SAFETY: the config was initialised and parsed; null ao_how makes the call synchronous.
        let rc = unsafe {
            sys::libxl_domain_create_new(
                self.ctx,
                &mut config.0,
                &mut domid,
                ptr::null(),
                ptr::null(),
            )
        };
        check(rc).map(|()| domid)
    }

    /// Rebuild a domain from a libxl v2 save stream read from `fd`; it is left paused.
    pub fn restore(&self, config_json: &str, fd: RawFd) -> Result<u32, Rc> {
        let mut config = DomainConfig::from_json(self, config_json)?;
        let mut params = sys::libxl_domain_restore_params::default();
        // SAFETY: `params` is a valid struct to initialise; it owns no memory we set.
        unsafe { sys::libxl_domain_restore_params_init(&mut params) };
        // `libxl_domain_suspend` writes stream version 2 (xl marks that in its own header).
        params.stream_version = 2;
        let mut domid = u32::MAX;
        // SAFETY: config and params are initialised; the fd stays open for the call.
        let rc = unsafe {
            sys::libxl_domain_create_restore(
                self.ctx,
                &mut config.0,
                &mut domid,
                fd,
                -1,
                &params,
                ptr::null(),
                ptr::null(),
            )
        };
        // SAFETY: disposing an initialised params struct.
        unsafe { sys::libxl_domain_restore_params_dispose(&mut params) };
        check(rc).map(|()| domid)
    }

    /// The JSON libxl makes of a config document after parsing it (a check of the translation).
    pub fn config_round_trip(&self, config_json: &str) -> Result<String, Rc> {
        let mut config = DomainConfig::from_json(self, config_json)?;
        // SAFETY: the config is parsed; the result is a malloc'd string we free.
        let json = unsafe { sys::libxl_domain_config_to_json(self.ctx, &mut config.0) };
        take_string(json).ok_or(sys::ERROR_FAIL)
    }

    /// Suspend the guest and write its image to `fd` (the domain is then shut down).
    pub fn suspend(&self, domid: u32, fd: RawFd) -> Result<(), Rc> {
        // SAFETY: plain call; the fd stays open for the call.
        check(unsafe { sys::libxl_domain_suspend(self.ctx, domid, fd, 0, ptr::null()) })
    }

    /// Ask the guest to power off through its PV control node.
    pub fn shutdown(&self, domid: u32) -> Result<(), Rc> {
        // SAFETY: plain call with a null ao_how.
        check(unsafe { sys::libxl_domain_shutdown(self.ctx, domid, ptr::null()) })
    }

    /// Ask the guest to reboot through its PV control node.
    pub fn reboot(&self, domid: u32) -> Result<(), Rc> {
        // SAFETY: plain call with a null ao_how.
        check(unsafe { sys::libxl_domain_reboot(self.ctx, domid, ptr::null()) })
    }

    /// Destroy the domain and its devices now.
    pub fn destroy(&self, domid: u32) -> Result<(), Rc> {
        // SAFETY: plain call with a null ao_how.
        check(unsafe { sys::libxl_domain_destroy(self.ctx, domid, ptr::null()) })
    }

    /// Stop scheduling the domain.
    pub fn pause(&self, domid: u32) -> Result<(), Rc> {
        // SAFETY: plain call with a null ao_how.
        check(unsafe { sys::libxl_domain_pause(self.ctx, domid, ptr::null()) })
    }

    /// Schedule the domain again.
    pub fn unpause(&self, domid: u32) -> Result<(), Rc> {
        // SAFETY: plain call with a null ao_how.
        check(unsafe { sys::libxl_domain_unpause(self.ctx, domid, ptr::null()) })
    }

    /// Bring vCPUs `0..online` on line and the rest (up to `max`) off.
    pub fn set_vcpus_online(&self, domid: u32, max: u32, online: u32) -> Result<(), Rc> {
        let mut map = sys::libxl_bitmap::default();
        let max = c_int::try_from(max).map_err(|_| RC_INVAL)?;
        let online = c_int::try_from(online).map_err(|_| RC_INVAL)?;
        // SAFETY: the bitmap is initialised, allocated for `max` bits, only bits below `max`
        // are set, and it is disposed on every path.
        unsafe {
            sys::libxl_bitmap_init(&mut map);
            let rc = sys::libxl_cpu_bitmap_alloc(self.ctx, &mut map, max);
            if rc != 0 {
                sys::libxl_bitmap_dispose(&mut map);
                return Err(rc);
            }
            for vcpu in 0..online.min(max) {
                sys::libxl_bitmap_set(&mut map, vcpu);
            }
            let rc = sys::libxl_set_vcpuonline(self.ctx, domid, &mut map, ptr::null());
            sys::libxl_bitmap_dispose(&mut map);
            check(rc)
        }
    }

    /// Set the balloon target (KiB, absolute) and enforce it as the new maximum.
    pub fn set_memory_target(&self, domid: u32, target_kib: u64) -> Result<(), Rc> {
        let kib = i64::try_from(target_kib).map_err(|_| RC_INVAL)?;
        // SAFETY: plain call.
        check(unsafe { sys::libxl_set_memory_target(self.ctx, domid, kib, 0, 1) })
    }

    /// Hot-plug a disk described by `libxl_device_disk` JSON.
    pub fn disk_add(&self, domid: u32, disk_json: &str) -> Result<(), Rc> {
        let mut disk = Disk::from_json(self, disk_json)?;
        // SAFETY: the disk is parsed; synchronous call.
        check(unsafe { sys::libxl_device_disk_add(self.ctx, domid, &mut disk.0, ptr::null()) })
    }

    /// Unplug the disk `vdev` (politely, or at once with `force`).
    pub fn disk_remove(&self, domid: u32, vdev: &str, force: bool) -> Result<(), Rc> {
        let mut disk = Disk::of_vdev(self, domid, vdev)?;
        // SAFETY: the disk was filled from xenstore by libxl; synchronous calls.
        check(unsafe {
            if force {
                sys::libxl_device_disk_destroy(self.ctx, domid, &mut disk.0, ptr::null())
            } else {
                sys::libxl_device_disk_remove(self.ctx, domid, &mut disk.0, ptr::null())
            }
        })
    }

    /// Change the media of a CD drive (an empty `format` ejects).
    pub fn cdrom_insert(&self, domid: u32, disk_json: &str) -> Result<(), Rc> {
        let mut disk = Disk::from_json(self, disk_json)?;
        // SAFETY: the disk is parsed; synchronous call.
        check(unsafe { sys::libxl_cdrom_insert(self.ctx, domid, &mut disk.0, ptr::null()) })
    }

    /// Hot-plug a network interface described by `libxl_device_nic` JSON.
    pub fn nic_add(&self, domid: u32, nic_json: &str) -> Result<(), Rc> {
        let mut nic = Nic::from_json(self, nic_json)?;
        // SAFETY: the nic is parsed; synchronous call.
        check(unsafe { sys::libxl_device_nic_add(self.ctx, domid, &mut nic.0, ptr::null()) })
    }

    /// Unplug network interface `devid` (politely, or at once with `force`).
    pub fn nic_remove(&self, domid: u32, devid: u32, force: bool) -> Result<(), Rc> {
        let mut nic = Nic::new();
        let devid = c_int::try_from(devid).map_err(|_| RC_INVAL)?;
        // SAFETY: the nic is initialised and filled by libxl from xenstore; synchronous calls.
        check(unsafe {
            let rc = sys::libxl_devid_to_device_nic(self.ctx, domid, devid, &mut nic.0);
            if rc != 0 {
                return Err(rc);
            }
            if force {
                sys::libxl_device_nic_destroy(self.ctx, domid, &mut nic.0, ptr::null())
            } else {
                sys::libxl_device_nic_remove(self.ctx, domid, &mut nic.0, ptr::null())
            }
        })
    }

    /// The pty of console 0 (the PV console, or the emulated serial port with `serial`).
    pub fn console_tty(&self, domid: u32, serial: bool) -> Result<String, Rc> {
        let kind = if serial {
            sys::LIBXL_CONSOLE_TYPE_SERIAL
        } else {
            sys::LIBXL_CONSOLE_TYPE_PV
        };
        let mut path: *mut c_char = ptr::null_mut();
        // SAFETY: `path` is a valid out-pointer; libxl mallocs the result, which we free.
        let rc = unsafe { sys::libxl_console_get_tty(self.ctx, domid, 0, kind, &mut path) };
        check(rc)?;
        take_string(path).ok_or(sys::ERROR_FAIL)
    }
}

impl Drop for Xen {
    fn drop(&mut self) {
        // SAFETY: each handle was opened by `open` and is freed once, context before logger.
        unsafe {
            if !self.xch.is_null() {
                sys::xc_interface_close(self.xch);
            }
            if !self.ctx.is_null() {
                sys::libxl_ctx_free(self.ctx);
            }
            sys::xtl_logger_destroy(self.logger.cast::<sys::xentoollog_logger>());
        }
    }
}

/// A `libxl_domain_config`, disposed on drop.
struct DomainConfig(sys::libxl_domain_config);

impl DomainConfig {
    fn from_json(xen: &Xen, json: &str) -> Result<DomainConfig, Rc> {
        let json = CString::new(json).map_err(|_| RC_INVAL)?;
        // SAFETY: all-zero is the state `_init` expects to overwrite.
        let mut config = DomainConfig(unsafe { std::mem::zeroed() });
        // SAFETY: init before parse, as the generated parsers require; `Drop` disposes.
        check(unsafe {
            sys::libxl_domain_config_init(&mut config.0);
            sys::libxl_domain_config_from_json(xen.ctx, &mut config.0, json.as_ptr())
        })?;
        Ok(config)
    }
}

impl Drop for DomainConfig {
    fn drop(&mut self) {
        // SAFETY: the struct was initialised; dispose frees what libxl allocated in it.
        unsafe { sys::libxl_domain_config_dispose(&mut self.0) };
    }
}

/// A `libxl_device_disk`, disposed on drop.
struct Disk(sys::libxl_device_disk);

impl Disk {
    fn new() -> Disk {
        // SAFETY: all-zero is the state `_init` expects; `Drop` disposes.
        let mut disk = Disk(unsafe { std::mem::zeroed() });
        // SAFETY: initialising a zeroed struct.
        unsafe { sys::libxl_device_disk_init(&mut disk.0) };
        disk
    }

    fn from_json(xen: &Xen, json: &str) -> Result<Disk, Rc> {
        let json = CString::new(json).map_err(|_| RC_INVAL)?;
        let mut disk = Disk::new();
        // SAFETY: an initialised struct and a NUL-terminated string.
        check(unsafe { sys::libxl_device_disk_from_json(xen.ctx, &mut disk.0, json.as_ptr()) })?;
        Ok(disk)
    }

    fn of_vdev(xen: &Xen, domid: u32, vdev: &str) -> Result<Disk, Rc> {
        let vdev = CString::new(vdev).map_err(|_| RC_INVAL)?;
        let mut disk = Disk::new();
        // SAFETY: an initialised struct and a NUL-terminated string.
        check(unsafe {
            sys::libxl_vdev_to_device_disk(xen.ctx, domid, vdev.as_ptr(), &mut disk.0)
        })?;
        Ok(disk)
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        // SAFETY: the struct was initialised.
        unsafe { sys::libxl_device_disk_dispose(&mut self.0) };
    }
}

/// A `libxl_device_nic`, disposed on drop.
struct Nic(sys::libxl_device_nic);

impl Nic {
    fn new() -> Nic {
        // SAFETY: all-zero is the state `_init` expects; `Drop` disposes.
        let mut nic = Nic(unsafe { std::mem::zeroed() });
        // SAFETY: initialising a zeroed struct.
        unsafe { sys::libxl_device_nic_init(&mut nic.0) };
        nic
    }

    fn from_json(xen: &Xen, json: &str) -> Result<Nic, Rc> {
        let json = CString::new(json).map_err(|_| RC_INVAL)?;
        let mut nic = Nic::new();
        // SAFETY: an initialised struct and a NUL-terminated string.
        check(unsafe { sys::libxl_device_nic_from_json(xen.ctx, &mut nic.0, json.as_ptr()) })?;
        Ok(nic)
    }
}

impl Drop for Nic {
    fn drop(&mut self) {
        // SAFETY: the struct was initialised.
        unsafe { sys::libxl_device_nic_dispose(&mut self.0) };
    }
}

/// 0 is success, anything else the libxl error code.
fn check(rc: c_int) -> Result<(), Rc> {
    if rc == 0 {
        Ok(())
    } else {
        Err(rc)
    }
}

/// Copy a malloc'd C string into Rust and free it; `None` for a null pointer.
fn take_string(ptr: *mut c_char) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: libxl returned a NUL-terminated string it malloc'd; we copy, then free it once.
    unsafe {
        let value = CStr::from_ptr(ptr).to_string_lossy().into_owned();
        sys::free(ptr.cast::<c_void>());
        Some(value)
    }
}

/// A NUL-terminated byte buffer as a string.
fn c_bytes(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_buffers_stop_at_the_first_nul() {
        assert_eq!(
            c_bytes(b"xen-3.0-x86_64 hvm-3.0-x86_64\0junk"),
            "xen-3.0-x86_64 hvm-3.0-x86_64"
        );
        assert_eq!(c_bytes(b"-4.17\0"), "-4.17");
    }

    #[test]
    fn only_zero_is_success() {
        assert_eq!(check(0), Ok(()));
        assert_eq!(check(sys::ERROR_FAIL), Err(-3));
    }
}
