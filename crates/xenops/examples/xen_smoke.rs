//! Smoke test of the Xen backend on a real dom0 (the nested lab): opens `XenHost`, prints
//! physinfo, then with the lab's PV guest (kernel + initrd, 128 MiB) checks create (paused),
//! unpause, pause/unpause, clean shutdown, a second boot ended by hard shutdown, and that
//! `xl list` agrees at each step. Prints `PASS`/`FAIL` lines and exits non-zero on a failure.
//!
//! `xen_smoke [kernel] [initrd]` (defaults: the lab's `/lab/guest/vmlinux.gz`, `initrd.cpio`).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use uuid::Uuid;
use xenops::xen::{XenConfig, XenHost};
use xenops::{BootConfig, DomainConfig, DomainState, Hypervisor, PvBoot, ShutdownKind};

const MIB: u64 = 1 << 20;

struct Checks {
    failed: u32,
    started: Instant,
}

impl Checks {
    fn check(&mut self, what: &str, ok: bool, detail: impl std::fmt::Display) {
        let t = self.started.elapsed().as_secs_f64();
        if ok {
            println!("PASS [{t:6.2}s] {what}");
        } else {
            self.failed += 1;
            println!("FAIL [{t:6.2}s] {what}: {detail}");
        }
    }
}

/// `xl list`'s state column for a domain name, if it is listed.
fn xl_state(name: &str) -> Option<String> {
    let out = Command::new("xl").arg("list").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(4).map(String::from))
}

fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let kernel = args
        .next()
        .unwrap_or_else(|| "/lab/guest/vmlinux.gz".into());
    let initrd = args
        .next()
        .unwrap_or_else(|| "/lab/guest/initrd.cpio".into());
    let mut c = Checks {
        failed: 0,
        started: Instant::now(),
    };
    if let Err(err) = xenops::xen::check_dom0() {
        eprintln!("{err}");
        std::process::exit(2);
    }
    let host = match XenHost::open(XenConfig::new("/tmp/xenops-smoke")) {
        Ok(host) => host,
        Err(err) => {
            eprintln!("cannot open the xen backend: {err}");
            std::process::exit(1);
        }
    };
    c.check("open", true, "");
    let events = host.events();
    match host.physinfo() {
        Ok(phys) => {
            println!("physinfo: {phys:?}");
            c.check(
                "physinfo has cpus and memory",
                phys.nr_cpus > 0 && phys.total_memory > 0,
                "",
            );
        }
        Err(err) => c.check("physinfo", false, err),
    }
    let list = host.list().unwrap_or_default();
    c.check(
        "dom0 listed first",
        list.first().map(|d| d.domid) == Some(0),
        format!("{list:?}"),
    );
    if let Some(dom0) = list.first() {
        let refused = host.pause(&dom0.uuid);
        c.check(
            "dom0 refuses pause",
            matches!(refused, Err(xenops::XenopsError::ControlDomain)),
            format!("{refused:?}"),
        );
    }

    let mut config = DomainConfig::new_pv(Uuid::new_v4(), "smoke-pv", 128 * MIB);
    config.boot = BootConfig::Pv(PvBoot::Direct {
        kernel: PathBuf::from(&kernel),
        ramdisk: Some(PathBuf::from(&initrd)),
        // The lab guest's init powers off by itself unless told to wait.
        cmdline: "console=hvc0 quiet lab.wait=1".into(),
    });
    match host.libxl_config(&config) {
        Ok(json) => println!("libxl config: {}", json.replace('\n', " ")),
        Err(err) => c.check("libxl parses our config", false, err),
    }
    let t = Instant::now();
    let created = host.create(&config);
    println!("create took {:?}", t.elapsed());
    match &created {
        Ok(info) => c.check(
            "create leaves it paused",
            info.state == DomainState::Paused,
            format!("{info:?}"),
        ),
        Err(err) => {
            c.check("create", false, err);
            std::process::exit(1);
        }
    }
    c.check(
        "xl list shows it paused",
        xl_state("smoke-pv").is_some_and(|s| s.contains('p')),
        format!("{:?}", xl_state("smoke-pv")),
    );
    let uuid = config.uuid;
    let r = host.unpause(&uuid);
    c.check("unpause", r.is_ok(), format!("{r:?}"));
    let running = host.domain(&uuid).map(|d| d.state);
    c.check(
        "running after unpause",
        matches!(running, Ok(DomainState::Running)),
        format!("{running:?}"),
    );
    c.check(
        "xl list agrees (not paused)",
        xl_state("smoke-pv").is_some_and(|s| !s.contains('p')),
        format!("{:?}", xl_state("smoke-pv")),
    );
    let listed = host
        .list()
        .map(|l| l.iter().any(|d| d.uuid == uuid))
        .unwrap_or(false);
    c.check("list includes it", listed, "");
    let r = host.pause(&uuid);
    c.check(
        "pause",
        r.is_ok() && host.domain(&uuid).map(|d| d.state).ok() == Some(DomainState::Paused),
        format!("{r:?}"),
    );
    c.check(
        "xl list shows paused",
        xl_state("smoke-pv").is_some_and(|s| s.contains('p')),
        "",
    );
    let r = host.unpause(&uuid);
    c.check("unpause again", r.is_ok(), format!("{r:?}"));
    // Let the guest's kernel come up far enough to answer the PV shutdown request.
    let data_seen = wait_for(Duration::from_secs(60), || {
        host.guest_data(&uuid)
            .map(|d| d.keys().any(|k| k.starts_with("control/feature-")))
            .unwrap_or(false)
    });
    c.check(
        "guest advertises control/feature-*",
        data_seen,
        format!("{:?}", host.guest_data(&uuid)),
    );
    match host.attach_console(&uuid, xenops::ConsoleProtocol::Vt100) {
        Ok(console) => c.check("pv console pty", true, format!("{console:?}")),
        Err(err) => c.check("pv console pty", false, err),
    }
    let t = Instant::now();
    let r = host.shutdown(&uuid, ShutdownKind::Clean, Duration::from_secs(60));
    println!("clean shutdown took {:?}", t.elapsed());
    c.check("clean shutdown", r.is_ok(), format!("{r:?}"));
    c.check("gone from list", host.domain(&uuid).is_err(), "");
    c.check(
        "xl list agrees (gone)",
        xl_state("smoke-pv").is_none(),
        format!("{:?}", xl_state("smoke-pv")),
    );
    let seen: Vec<_> = events.try_iter().filter(|e| e.uuid() == uuid).collect();
    c.check(
        "events: created, shutdown(halt), destroyed",
        seen.iter()
            .any(|e| matches!(e, xenops::DomainEvent::Created { .. }))
            && seen.iter().any(|e| {
                matches!(
                    e,
                    xenops::DomainEvent::Shutdown {
                        reason: xenops::ShutdownReason::Halt,
                        ..
                    }
                )
            })
            && seen
                .iter()
                .any(|e| matches!(e, xenops::DomainEvent::Destroyed { .. })),
        format!("{seen:?}"),
    );

    let r = host.create(&config).and_then(|_| host.unpause(&uuid));
    c.check("second boot", r.is_ok(), format!("{r:?}"));
    let t = Instant::now();
    let r = host.shutdown(&uuid, ShutdownKind::Hard, Duration::from_secs(10));
    println!("hard shutdown took {:?}", t.elapsed());
    c.check(
        "hard shutdown",
        r.is_ok() && host.domain(&uuid).is_err(),
        format!("{r:?}"),
    );
    c.check(
        "xl list agrees (gone again)",
        xl_state("smoke-pv").is_none(),
        "",
    );

    // PVH, with a blkback disk on a file and a netback VIF on a bridge (the lab's
    // /lab/bin/mkdevs makes /tmp/disk.img and xenbr0).
    let mut pvh = config.clone();
    pvh.uuid = Uuid::new_v4();
    pvh.name = "smoke-pvh".into();
    pvh.domain_type = xenops::DomainType::Pvh;
    // TCG cannot emulate an intercepted TSC for PVH (the lab's pvh.cfg says the same).
    pvh.platform.insert("tsc_mode".into(), "native".into());
    let has_devs = std::path::Path::new("/tmp/disk.img").exists();
    if has_devs {
        pvh.vbds.push(xenops::VbdConfig {
            device: "xvda".into(),
            kind: xenops::VbdKind::Disk,
            mode: xenops::VbdMode::Rw,
            backend: Some(xenops::VbdBackend::Path("/tmp/disk.img".into())),
        });
        pvh.vifs.push(xenops::VifConfig {
            device: "0".into(),
            bridge: "xenbr0".into(),
            mac: "00:16:3e:00:00:02".into(),
            mtu: 1500,
        });
    }
    let t = Instant::now();
    let r = host.create(&pvh).and_then(|_| host.unpause(&pvh.uuid));
    println!("pvh create+unpause took {:?}", t.elapsed());
    c.check("pvh boots", r.is_ok(), format!("{r:?}"));
    if r.is_ok() {
        let up = wait_for(Duration::from_secs(60), || {
            host.guest_data(&pvh.uuid)
                .map(|d| d.keys().any(|k| k.starts_with("control/feature-")))
                .unwrap_or(false)
        });
        c.check("pvh guest kernel up", up, "");
        let devices = host
            .domain(&pvh.uuid)
            .map(|d| d.devices)
            .unwrap_or_default();
        println!("pvh devices: {devices:?}");
        if has_devs {
            c.check(
                "pvh has a vbd and a vif",
                devices.len() == 2,
                format!("{devices:?}"),
            );
        }
        let r = host.shutdown(&pvh.uuid, ShutdownKind::Clean, Duration::from_secs(60));
        c.check("pvh clean shutdown", r.is_ok(), format!("{r:?}"));
        c.check(
            "xl list agrees (pvh gone)",
            xl_state("smoke-pvh").is_none(),
            "",
        );
    }

    println!("{} failed, total {:?}", c.failed, c.started.elapsed());
    std::process::exit(i32::from(c.failed > 0));
}
