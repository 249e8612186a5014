//! The engine of the simulated host: the locked domain table, the transition runner that
//! passes each step through the gate, persists and publishes, and every domain operation.
//!
//! Each operation checks its preconditions before waiting at the gate and again after, since
//! another caller may have changed the domain in between. Device operations live in
//! `devices.rs`. Nothing here knows about XenAPI.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};
use uuid::Uuid;

use super::fault::{Fault, Faults};
use super::gate::{Gate, GateMode};
use super::image::Image;
use super::store::{current_boot_id, Store};
use super::table::{PendingTimer, SimDomain, Table, TimerAction};
use super::timer::{instant_of, now_unix_ms, Entry, Timers};
use super::xenstore::Xenstore;
use super::{SimConfig, Timing};
use crate::device::DeviceInfo;
use crate::domain::{
    DomainConfig, DomainInfo, DomainState, PhysInfo, ShutdownKind, ShutdownReason,
};
use crate::error::{Result, XenopsError};
use crate::event::{DomainEvent, EventBus};

/// What one step changed: events to publish and what must be saved.
#[derive(Debug, Default)]
pub struct Changes {
    events: Vec<DomainEvent>,
    dirty: Dirty,
}

impl Changes {
    /// Record an event (and mark its domain changed; a new domain also moves the domid
    /// counter in the host record).
    pub fn emit(&mut self, event: DomainEvent) {
        self.dirty.domains.insert(event.domid());
        if let DomainEvent::Created { .. } = event {
            self.dirty.host = true;
        }
        self.events.push(event);
    }

    /// Mark a domain changed without an event.
    pub fn touch(&mut self, domid: u32) {
        self.dirty.domains.insert(domid);
    }

    /// Mark the host record (domid counter, pending start failures) changed.
    pub fn touch_host(&mut self) {
        self.dirty.host = true;
    }
}

/// What must be written to the state store.
#[derive(Debug, Default)]
struct Dirty {
    host: bool,
    domains: BTreeSet<u32>,
}

/// Whether a multi-step operation goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Run the next step.
    Next,
    /// Stop here (the domain went away or someone else finishes the job).
    Done,
}

/// Everything a `SimHost` shares with its timer thread and step-mode helper threads.
#[derive(Debug)]
pub struct Engine {
    /// The host's configuration.
    pub config: SimConfig,
    table: Mutex<Table>,
    changed: Condvar,
    bus: EventBus,
    /// Where transitions wait.
    pub gate: Gate,
    /// Guest actions to come.
    pub timers: Timers,
    store: Option<Store>,
}

impl Engine {
    /// An engine over the table in `store` (or a fresh one), with its timers re-armed.
    pub fn new(config: SimConfig, store: Option<Store>) -> Result<Self> {
        let boot_id = config.boot_id.clone().or_else(current_boot_id);
        let corrupt = |e: serde_json::Error| XenopsError::State(format!("unreadable state: {e}"));
        let loaded = match store.as_ref().map(Store::load).transpose()?.flatten() {
            Some((host, domains)) => {
                let mut table: Table = serde_json::from_slice(&host).map_err(corrupt)?;
                for bytes in domains {
                    let domain: SimDomain = serde_json::from_slice(&bytes).map_err(corrupt)?;
                    table.domains.insert(domain.domid, domain);
                }
                Some(table)
            }
            None => None,
        };
        let mut table = match loaded {
            Some(old) if old.boot_id.is_some() && boot_id.is_some() && old.boot_id != boot_id => {
                info!(
                    domains = old.domains.len(),
                    "simulated host rebooted: domains are gone"
                );
                Table::new(old.dom0_uuid, boot_id)
            }
            Some(mut old) => {
                let dropped = old.after_load()?;
                if dropped > 0 {
                    info!(dropped, "dropped domains that were being torn down");
                }
                old
            }
            None => Table::new(Uuid::new_v4(), boot_id),
        };
        if let Some(dom0_uuid) = config.dom0_uuid {
            table.dom0_uuid = dom0_uuid;
        }
        let gate = Gate::new(match config.timing {
            Timing::Instant => GateMode::Open,
            Timing::Delayed(delays) => GateMode::Sleep(delays.transition),
            Timing::SingleStep => GateMode::Step,
        });
        let engine = Engine {
            config,
            table: Mutex::new(table),
            changed: Condvar::new(),
            bus: EventBus::new(),
            gate,
            timers: Timers::default(),
            store,
        };
        let table = engine.lock();
        if let Some(store) = &engine.store {
            store.clear_domains()?;
        }
        let everything = Dirty {
            host: true,
            domains: table.domains.keys().copied().collect(),
        };
        engine.persist(&table, &everything)?;
        if let Some(store) = &engine.store {
            store.compact()?;
        }
        for d in table.domains.values() {
            for timer in &d.timers {
                engine.timers.schedule(
                    instant_of(timer.at_unix_ms),
                    d.config.uuid,
                    d.domid,
                    timer.action,
                );
            }
            if d.state == DomainState::Running && d.booted && !d.guest_up {
                engine
                    .timers
                    .schedule(Instant::now(), d.config.uuid, d.domid, TimerAction::Boot);
            }
            if d.memory_actual != d.memory_target && !d.faults.ignore_balloon {
                engine.timers.schedule(
                    Instant::now(),
                    d.config.uuid,
                    d.domid,
                    TimerAction::Balloon,
                );
            }
        }
        drop(table);
        Ok(engine)
    }

    /// The table, locked.
    pub fn lock(&self) -> MutexGuard<'_, Table> {
        // Every change to the table is made whole under the lock before any call that could
        // panic, so a poisoned lock still guards a consistent table.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Write what changed: each changed domain's record (or remove it if the domain is
    /// gone), then the host record.
    fn persist(&self, table: &Table, dirty: &Dirty) -> Result<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let encode = |e: serde_json::Error| XenopsError::State(format!("cannot encode state: {e}"));
        for domid in &dirty.domains {
            match table.domains.get(domid) {
                Some(domain) => {
                    store.save_domain(*domid, &serde_json::to_vec(domain).map_err(encode)?)?
                }
                None => store.remove_domain(*domid)?,
            }
        }
        if dirty.host {
            store.save_host(&serde_json::to_vec(table).map_err(encode)?)?;
        }
        Ok(())
    }

    /// Save (if anything changed), publish the events and wake waiters.
    pub fn commit(&self, table: &Table, changes: Changes) -> Result<()> {
        let saved = self.persist(table, &changes.dirty);
        for event in changes.events {
            self.bus.publish(event);
        }
        self.changed.notify_all();
        if let Err(e) = &saved {
            warn!(error = %e, "cannot save the simulated host state");
        }
        saved
    }

    /// Subscribe to events.
    pub fn events(&self) -> std::sync::mpsc::Receiver<DomainEvent> {
        self.bus.subscribe()
    }

    /// Run the steps of an operation. Gated steps wait at the gate one by one (each then
    /// applied, saved and published on its own); ungated ones, and every step when the gate
    /// is open, run under one lock and are saved once.
    pub fn run_steps(
        &self,
        gated: bool,
        labels: &[&str],
        uuid: &Uuid,
        mut step: impl FnMut(usize, &mut Table, &mut Changes) -> Result<Flow>,
    ) -> Result<()> {
        if !gated || self.gate.mode() == GateMode::Open {
            let mut table = self.lock();
            let mut changes = Changes::default();
            let mut outcome = Ok(());
            for i in 0..labels.len() {
                match step(i, &mut table, &mut changes) {
                    Ok(Flow::Next) => {}
                    Ok(Flow::Done) => break,
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                }
            }
            self.commit(&table, changes)?;
            return outcome;
        }
        for (i, label) in labels.iter().enumerate() {
            let _ticket = self.gate.pass(format!("{label} {uuid}"));
            let mut table = self.lock();
            let mut changes = Changes::default();
            let flow = step(i, &mut table, &mut changes);
            self.commit(&table, changes)?;
            if flow? == Flow::Done {
                break;
            }
        }
        Ok(())
    }

    /// Wait until the domain `domid` of `uuid` is gone; false if `deadline` passed first.
    pub fn wait_gone(&self, uuid: &Uuid, domid: u32, deadline: Option<Instant>) -> bool {
        let mut table = self.lock();
        while table.same(uuid, domid).is_some() {
            match deadline {
                None => table = self.changed.wait(table).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    table = self
                        .changed
                        .wait_timeout(table, deadline - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
        true
    }

    /// `physinfo`.
    pub fn physinfo(&self) -> PhysInfo {
        let free_memory = self.lock().free_memory(&self.config);
        let c = &self.config;
        PhysInfo {
            nr_cpus: c.sockets * c.cores_per_socket * c.threads_per_core,
            sockets: c.sockets,
            cores_per_socket: c.cores_per_socket,
            threads_per_core: c.threads_per_core,
            cpu_mhz: c.cpu_mhz,
            total_memory: c.total_memory,
            free_memory,
            capabilities: [
                "xen-3.0-x86_64",
                "hvm-3.0-x86_32",
                "hvm-3.0-x86_32p",
                "hvm-3.0-x86_64",
            ]
            .map(String::from)
            .to_vec(),
            xen_version: "4.17.0-sim".into(),
            max_vcpus_per_domain: c.max_vcpus,
        }
    }

    /// `list`: dom0 then every domain in domid order.
    pub fn list(&self) -> Vec<DomainInfo> {
        let table = self.lock();
        let mut all = Vec::with_capacity(table.domains.len() + 1);
        all.push(table.dom0_info(&self.config));
        all.extend(table.domains.values().map(SimDomain::info));
        all
    }

    /// `domain`.
    pub fn domain(&self, uuid: &Uuid) -> Result<DomainInfo> {
        let table = self.lock();
        if *uuid == table.dom0_uuid {
            return Ok(table.dom0_info(&self.config));
        }
        table.get(uuid).map(SimDomain::info)
    }

    /// `create` (and, with an image, `resume` / `migrate_receive`).
    pub fn create(
        self: &Arc<Self>,
        config: &DomainConfig,
        image: Option<&Image>,
    ) -> Result<DomainInfo> {
        config.validate()?;
        if config.vcpus.max > self.config.max_vcpus {
            return Err(XenopsError::TooManyVcpus {
                requested: config.vcpus.max,
                max: self.config.max_vcpus,
            });
        }
        let faults = Faults::from_config(config)?;
        let devices = super::devices::initial_devices(config)?;
        let (memory_actual, memory_target, vcpus_online) = match image {
            Some(image) => (image.memory_actual, image.memory_target, image.vcpus_online),
            None => (
                config.memory.target,
                config.memory.target,
                config.vcpus.at_startup,
            ),
        };
        let needed = memory_actual.max(memory_target);
        let check = |table: &Table| -> Result<()> {
            if config.uuid == table.dom0_uuid || table.by_uuid.contains_key(&config.uuid) {
                return Err(XenopsError::AlreadyExists(config.uuid));
            }
            let free = table.free_memory(&self.config);
            if needed > free {
                return Err(XenopsError::NotEnoughMemory { needed, free });
            }
            Ok(())
        };
        check(&self.lock())?;
        let label = if image.is_some() { "restore" } else { "create" };
        let mut created = None;
        self.run_steps(true, &[label], &config.uuid, |_, table, changes| {
            check(table)?;
            if table.fail_next_start.remove(&config.uuid) {
                changes.touch_host();
                return Err(XenopsError::BootFailure("simulated start failure".into()));
            }
            if faults.fail_start {
                return Err(XenopsError::BootFailure("simulated start failure".into()));
            }
            let domid = table.allocate_domid()?;
            let mut domain = SimDomain {
                domid,
                config: config.clone(),
                state: DomainState::Paused,
                memory_actual,
                memory_target,
                vcpus_online,
                booted: image.is_some(),
                guest_up: image.is_some(),
                devices: devices.clone(),
                consoles: Vec::new(),
                xenstore: Xenstore::default(),
                faults: faults.clone(),
                timers: Vec::new(),
            };
            domain.xenstore.write("name", config.name.clone());
            domain.xenstore.write("domid", domid.to_string());
            domain.xenstore.write("vm", format!("/vm/{}", config.uuid));
            domain.write_memory_nodes();
            domain.write_vcpu_nodes();
            for i in 0..domain.devices.len() {
                domain.write_device_state(i);
            }
            if let Some(image) = image {
                for (path, value) in &image.guest_data {
                    domain.xenstore.write(path, value.clone());
                }
            }
            changes.emit(DomainEvent::Created {
                uuid: config.uuid,
                domid,
            });
            changes.emit(state_changed(&domain));
            created = Some(domain.info());
            table.insert(domain);
            Ok(Flow::Next)
        })?;
        let info = created.ok_or_else(|| XenopsError::State("create step did not run".into()))?;
        info!(vm = %config.uuid, domid = info.domid, "domain created");
        Ok(info)
    }

    /// `pause`.
    pub fn pause(&self, uuid: &Uuid) -> Result<()> {
        let check = |table: &mut Table| -> Result<()> {
            let domain = table.get_mut(uuid)?;
            expect_state(domain, DomainState::Running)
        };
        check(&mut self.lock())?;
        self.run_steps(true, &["pause"], uuid, |_, table, changes| {
            check(table)?;
            let domain = table.get_mut(uuid)?;
            domain.state = DomainState::Paused;
            changes.emit(state_changed(domain));
            Ok(Flow::Next)
        })
    }

    /// `unpause`; the first one boots the guest.
    pub fn unpause(self: &Arc<Self>, uuid: &Uuid) -> Result<()> {
        let check = |table: &mut Table| -> Result<u32> {
            let domain = table.get_mut(uuid)?;
            expect_state(domain, DomainState::Paused)?;
            Ok(domain.domid)
        };
        check(&mut self.lock())?;
        let instant = self.gate.mode() == GateMode::Open;
        let mut boot_domid = None;
        let mut marker = None;
        self.run_steps(true, &["unpause"], uuid, |_, table, changes| {
            let domid = check(table)?;
            let domain = table.get_mut(uuid)?;
            domain.state = DomainState::Running;
            changes.emit(state_changed(domain));
            if !domain.booted {
                domain.booted = true;
                self.arm_fault_timers(domain);
                if instant {
                    if apply_boot(domain, changes) {
                        marker = boot_marker(domain);
                    }
                } else {
                    boot_domid = Some(domid);
                }
            } else if domain.guest_up {
                // A restored guest reconnects its frontends as soon as it runs.
                for i in domain.connect_frontends() {
                    changes.emit(device_changed(domain, i));
                }
            }
            Ok(Flow::Next)
        })?;
        if let Some(domid) = boot_domid {
            self.defer(*uuid, domid, TimerAction::Boot);
        }
        write_marker(marker);
        Ok(())
    }

    /// Queue the deadlines of the domain's timed faults (at its first boot).
    fn arm_fault_timers(&self, domain: &mut SimDomain) {
        let faults = &domain.faults;
        let timed = [
            (faults.crash_after, TimerAction::Crash),
            (faults.poweroff_after, TimerAction::Poweroff),
            (faults.reboot_after, TimerAction::Reboot),
        ];
        for (after, action) in timed {
            if let Some(after) = after {
                self.arm(domain, after, action);
            }
        }
    }

    fn arm(&self, domain: &mut SimDomain, after: Duration, action: TimerAction) {
        let at_unix_ms = now_unix_ms() + after.as_millis() as u64;
        domain.timers.push(PendingTimer { action, at_unix_ms });
        self.timers.schedule(
            Instant::now() + after,
            domain.config.uuid,
            domain.domid,
            action,
        );
    }

    /// Run a guest action later: after its delay, or as its own step in single-step mode.
    fn defer(self: &Arc<Self>, uuid: Uuid, domid: u32, action: TimerAction) {
        match self.config.timing {
            Timing::Instant => self.guest_action(uuid, domid, action, false),
            Timing::Delayed(delays) => {
                let delay = match action {
                    TimerAction::Boot => delays.guest_boot,
                    TimerAction::Balloon => delays.balloon,
                    _ => Duration::ZERO,
                };
                self.timers
                    .schedule(Instant::now() + delay, uuid, domid, action);
            }
            Timing::SingleStep => {
                let engine = Arc::clone(self);
                std::thread::spawn(move || engine.guest_action(uuid, domid, action, true));
            }
        }
    }

    /// A timer is due.
    pub fn fire(&self, entry: Entry) {
        self.guest_action(entry.uuid, entry.domid, entry.action, false);
    }

    fn guest_action(&self, uuid: Uuid, domid: u32, action: TimerAction, gated: bool) {
        let mut marker = None;
        let outcome = match action {
            TimerAction::Poweroff | TimerAction::Reboot => {
                let reason = if action == TimerAction::Reboot {
                    ShutdownReason::Reboot
                } else {
                    ShutdownReason::Poweroff
                };
                self.run_steps(gated, &TEARDOWN, &uuid, |i, table, changes| {
                    if i == 0 {
                        match table.same(&uuid, domid) {
                            Some(domain) => forget_timer(domain, action, changes),
                            None => return Ok(Flow::Done),
                        }
                    }
                    teardown_step(table, &uuid, domid, i, reason, false, changes)
                })
            }
            _ => self.run_steps(gated, &[label_of(action)], &uuid, |_, table, changes| {
                let Some(domain) = table.same(&uuid, domid) else {
                    return Ok(Flow::Done);
                };
                match action {
                    TimerAction::Boot => {
                        if apply_boot(domain, changes) {
                            marker = boot_marker(domain);
                        }
                    }
                    TimerAction::Balloon => apply_balloon(domain, changes),
                    _ => {
                        forget_timer(domain, action, changes);
                        apply_crash(domain, changes);
                    }
                }
                Ok(Flow::Next)
            }),
        };
        if let Err(e) = outcome {
            warn!(vm = %uuid, domid, ?action, error = %e, "simulated guest action failed");
        }
        write_marker(marker);
    }

    /// `shutdown`.
    pub fn shutdown(&self, uuid: &Uuid, kind: ShutdownKind, timeout: Duration) -> Result<()> {
        match kind {
            ShutdownKind::Hard => self.destroy(uuid),
            ShutdownKind::Clean => self.request(uuid, ShutdownReason::Halt, timeout, |_| Ok(())),
            ShutdownKind::Reboot => self.request(uuid, ShutdownReason::Reboot, timeout, |_| Ok(())),
        }
    }

    fn destroy(&self, uuid: &Uuid) -> Result<()> {
        let domid = self.lock().get(uuid)?.domid;
        self.run_steps(true, &TEARDOWN[1..], uuid, |i, table, changes| {
            teardown_step(
                table,
                uuid,
                domid,
                i + 1,
                ShutdownReason::Halt,
                false,
                changes,
            )
        })?;
        // Another caller may be finishing the teardown.
        self.wait_gone(uuid, domid, None);
        info!(vm = %uuid, domid, "domain destroyed");
        Ok(())
    }

    /// Ask the guest to shut down for `reason`, wait for it, tear the domain down. `save` is
    /// called with the guest's image once it has stopped (for suspend and migration).
    fn request(
        &self,
        uuid: &Uuid,
        reason: ShutdownReason,
        timeout: Duration,
        mut save: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let (domid, ignored) = {
            let mut table = self.lock();
            let domain = table.get_mut(uuid)?;
            expect_state(domain, DomainState::Running)?;
            domain
                .xenstore
                .write("control/shutdown", request_word(reason));
            (domain.domid, domain.faults.ignore_shutdown)
        };
        if ignored {
            if self.wait_gone(uuid, domid, Some(deadline)) {
                return Ok(());
            }
            return Err(XenopsError::Timeout(format!(
                "vm {uuid} did not {} within {timeout:?}",
                request_word(reason)
            )));
        }
        self.run_steps(true, &TEARDOWN, uuid, |i, table, changes| {
            if i == 0 && reason == ShutdownReason::Suspend {
                if let Some(domain) = table.same(uuid, domid) {
                    expect_state(domain, DomainState::Running)?;
                    let image = Image::of(domain, guest_data(&domain.xenstore));
                    save(&image.to_bytes()?)?;
                }
            }
            teardown_step(table, uuid, domid, i, reason, true, changes)
        })?;
        self.wait_gone(uuid, domid, None);
        info!(vm = %uuid, domid, ?reason, "domain shut down");
        Ok(())
    }

    /// `suspend` / `migrate_send`: the guest's image goes to `save`.
    pub fn suspend(
        &self,
        uuid: &Uuid,
        timeout: Duration,
        save: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        self.request(uuid, ShutdownReason::Suspend, timeout, save)
    }

    /// `set_vcpus`.
    pub fn set_vcpus(&self, uuid: &Uuid, n_vcpus: u32) -> Result<()> {
        let check = |table: &mut Table| -> Result<()> {
            let domain = table.get_mut(uuid)?;
            expect_live(domain)?;
            if n_vcpus == 0 {
                return Err(XenopsError::InvalidConfig(
                    "a domain needs at least one vcpu".into(),
                ));
            }
            if n_vcpus > domain.config.vcpus.max {
                return Err(XenopsError::TooManyVcpus {
                    requested: n_vcpus,
                    max: domain.config.vcpus.max,
                });
            }
            Ok(())
        };
        check(&mut self.lock())?;
        self.run_steps(true, &["vcpus"], uuid, |_, table, changes| {
            check(table)?;
            let domain = table.get_mut(uuid)?;
            domain.vcpus_online = n_vcpus;
            domain.write_vcpu_nodes();
            changes.touch(domain.domid);
            Ok(Flow::Next)
        })
    }

    /// `set_memory_target`.
    pub fn set_memory_target(self: &Arc<Self>, uuid: &Uuid, bytes: u64) -> Result<()> {
        let check = |table: &mut Table| -> Result<u32> {
            let free = table.free_memory(&self.config);
            let domain = table.get_mut(uuid)?;
            expect_live(domain)?;
            let memory = domain.config.memory;
            if bytes < memory.static_min || bytes > memory.static_max {
                return Err(XenopsError::InvalidConfig(format!(
                    "memory target {bytes} outside [{}, {}]",
                    memory.static_min, memory.static_max
                )));
            }
            let needed = bytes.saturating_sub(domain.charged());
            if needed > free {
                return Err(XenopsError::NotEnoughMemory { needed, free });
            }
            Ok(domain.domid)
        };
        check(&mut self.lock())?;
        let instant = self.gate.mode() == GateMode::Open;
        let mut later = None;
        self.run_steps(true, &["memory"], uuid, |_, table, changes| {
            let domid = check(table)?;
            let domain = table.get_mut(uuid)?;
            domain.memory_target = bytes;
            domain.write_memory_nodes();
            changes.touch(domain.domid);
            if instant {
                apply_balloon(domain, changes);
            } else if !domain.faults.ignore_balloon {
                later = Some(domid);
            }
            Ok(Flow::Next)
        })?;
        if let Some(domid) = later {
            self.defer(*uuid, domid, TimerAction::Balloon);
        }
        Ok(())
    }

    /// `guest_data`.
    pub fn guest_data(&self, uuid: &Uuid) -> Result<BTreeMap<String, String>> {
        Ok(guest_data(&self.lock().get(uuid)?.xenstore))
    }

    /// `SimHost::inject`.
    pub fn inject(self: &Arc<Self>, uuid: &Uuid, fault: Fault) -> Result<()> {
        if let Fault::FailNextStart = fault {
            let mut table = self.lock();
            if *uuid == table.dom0_uuid {
                return Err(XenopsError::ControlDomain);
            }
            table.fail_next_start.insert(*uuid);
            let mut changes = Changes::default();
            changes.touch_host();
            return self.commit(&table, changes);
        }
        let domid = self.lock().get(uuid)?.domid;
        match fault {
            Fault::GuestShutdown(reason) => {
                if reason == ShutdownReason::Suspend {
                    return Err(XenopsError::InvalidConfig(
                        "a guest cannot suspend itself".into(),
                    ));
                }
                self.run_steps(false, &TEARDOWN, uuid, |i, table, changes| {
                    teardown_step(table, uuid, domid, i, reason, true, changes)
                })
            }
            fault => self.run_steps(false, &["inject"], uuid, |_, table, changes| {
                let domain = table.get_mut(uuid)?;
                let mut balloon = false;
                match &fault {
                    Fault::Crash => {
                        if !matches!(domain.state, DomainState::Running | DomainState::Paused) {
                            return Err(bad_state(domain, DomainState::Running));
                        }
                        apply_crash(domain, changes);
                    }
                    Fault::CrashAfter(after) => self.arm(domain, *after, TimerAction::Crash),
                    Fault::IgnoreShutdown(on) => domain.faults.ignore_shutdown = *on,
                    Fault::IgnoreBalloon(on) => {
                        domain.faults.ignore_balloon = *on;
                        balloon = !*on;
                    }
                    Fault::HoldDevice(kind, name) => {
                        domain.faults.busy.insert((*kind, name.clone()));
                    }
                    Fault::ReleaseDevice(kind, name) => {
                        domain.faults.busy.remove(&(*kind, name.clone()));
                    }
                    Fault::GuestShutdown(_) | Fault::FailNextStart => {}
                }
                changes.touch(domain.domid);
                if balloon {
                    apply_balloon(domain, changes);
                }
                Ok(Flow::Next)
            }),
        }
    }

    /// `SimHost::xenstore_write`: a write by the guest into its own subtree.
    pub fn guest_write(&self, uuid: &Uuid, path: &str, value: &str) -> Result<()> {
        self.run_steps(false, &["xenstore"], uuid, |_, table, changes| {
            let domain = table.get_mut(uuid)?;
            if domain.xenstore.write(path, value) {
                changes.touch(domain.domid);
                if is_guest_data(path) {
                    changes.emit(DomainEvent::GuestAgentUpdated {
                        uuid: *uuid,
                        domid: domain.domid,
                    });
                }
            }
            Ok(Flow::Next)
        })
    }
}

/// The steps of tearing a domain down after (or without) the guest's consent.
const TEARDOWN: [&str; 3] = ["shutdown", "destroy", "release"];

/// Step `i` of `TEARDOWN` for the domain `domid` of `uuid`: 0 the guest stops with `reason`
/// (`strict`: it must be running), 1 the domain is dying, 2 it is gone.
fn teardown_step(
    table: &mut Table,
    uuid: &Uuid,
    domid: u32,
    i: usize,
    reason: ShutdownReason,
    strict: bool,
    changes: &mut Changes,
) -> Result<Flow> {
    let Some(domain) = table.same(uuid, domid) else {
        return Ok(Flow::Done);
    };
    match i {
        0 => {
            if domain.state != DomainState::Running {
                return if strict {
                    Err(bad_state(domain, DomainState::Running))
                } else {
                    Ok(Flow::Done)
                };
            }
            domain.state = DomainState::Shutdown(reason);
            changes.emit(state_changed(domain));
            changes.emit(DomainEvent::Shutdown {
                uuid: *uuid,
                domid,
                reason,
            });
        }
        1 => {
            if domain.state == DomainState::Dying {
                return Ok(Flow::Done);
            }
            domain.state = DomainState::Dying;
            changes.emit(state_changed(domain));
        }
        _ => {
            table.remove(domid);
            changes.emit(DomainEvent::Destroyed { uuid: *uuid, domid });
        }
    }
    Ok(Flow::Next)
}

/// What a booting guest writes to its boot disk: the export and who it is.
type Marker = (String, Uuid, u32);

/// The boot marker job of `domain`, if it has a writable disk served over NBD.
fn boot_marker(domain: &SimDomain) -> Option<Marker> {
    super::marker::boot_disk(&domain.config.vbds).map(|uri| (uri, domain.config.uuid, domain.domid))
}

/// Writes a boot marker, outside the table lock; a failing data path is logged, the guest
/// still counts as booted (a real guest would retry or carry on read-only).
fn write_marker(marker: Option<Marker>) {
    if let Some((uri, uuid, domid)) = marker {
        if let Err(e) = super::marker::write(&uri, &uuid, domid) {
            warn!(vm = %uuid, domid, %uri, error = %e, "simulated guest cannot write its boot marker");
        }
    }
}

/// The guest finished booting: frontends connect, the agent writes. Returns whether it
/// came up now (false when it already was, or is not running).
fn apply_boot(domain: &mut SimDomain, changes: &mut Changes) -> bool {
    if domain.guest_up || !matches!(domain.state, DomainState::Running | DomainState::Paused) {
        return false;
    }
    domain.guest_up = true;
    changes.touch(domain.domid);
    for i in domain.connect_frontends() {
        changes.emit(device_changed(domain, i));
    }
    if domain.write_agent_data() {
        changes.emit(DomainEvent::GuestAgentUpdated {
            uuid: domain.config.uuid,
            domid: domain.domid,
        });
    }
    debug!(vm = %domain.config.uuid, domid = domain.domid, "simulated guest up");
    true
}

/// The balloon driver reaches the target (unless it ignores targets).
fn apply_balloon(domain: &mut SimDomain, changes: &mut Changes) {
    if domain.faults.ignore_balloon || domain.memory_actual == domain.memory_target {
        return;
    }
    domain.memory_actual = domain.memory_target;
    let (uuid, domid) = (domain.config.uuid, domain.domid);
    changes.emit(DomainEvent::MemoryTargetReached {
        uuid,
        domid,
        bytes: domain.memory_actual,
    });
    if domain.guest_up && domain.write_agent_data() {
        changes.emit(DomainEvent::GuestAgentUpdated { uuid, domid });
    }
}

/// The guest crashes (if it runs or is paused).
fn apply_crash(domain: &mut SimDomain, changes: &mut Changes) {
    if !matches!(domain.state, DomainState::Running | DomainState::Paused) {
        return;
    }
    domain.state = DomainState::Crashed;
    domain.timers.clear();
    changes.emit(state_changed(domain));
    changes.emit(DomainEvent::Crashed {
        uuid: domain.config.uuid,
        domid: domain.domid,
    });
    info!(vm = %domain.config.uuid, domid = domain.domid, "simulated guest crashed");
}

fn forget_timer(domain: &mut SimDomain, action: TimerAction, changes: &mut Changes) {
    if let Some(i) = domain.timers.iter().position(|t| t.action == action) {
        domain.timers.remove(i);
        changes.touch(domain.domid);
    }
}

/// The guest-written part of a domain's xenstore, as `guest_data` returns it.
pub fn guest_data(xenstore: &Xenstore) -> BTreeMap<String, String> {
    xenstore
        .subtree("data")
        .chain(xenstore.subtree("attr"))
        .chain(
            xenstore
                .subtree("control")
                .filter(|(k, _)| is_guest_data(k)),
        )
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn is_guest_data(path: &str) -> bool {
    path.starts_with("data/") || path.starts_with("attr/") || path.starts_with("control/feature-")
}

fn request_word(reason: ShutdownReason) -> &'static str {
    match reason {
        ShutdownReason::Poweroff => "poweroff",
        ShutdownReason::Halt => "halt",
        ShutdownReason::Reboot => "reboot",
        ShutdownReason::Suspend => "suspend",
    }
}

fn label_of(action: TimerAction) -> &'static str {
    match action {
        TimerAction::Boot => "boot",
        TimerAction::Crash => "crash",
        TimerAction::Poweroff => "poweroff",
        TimerAction::Reboot => "reboot",
        TimerAction::Balloon => "balloon",
    }
}

/// `StateChanged` for a domain's current state.
pub fn state_changed(domain: &SimDomain) -> DomainEvent {
    DomainEvent::StateChanged {
        uuid: domain.config.uuid,
        domid: domain.domid,
        state: domain.state,
    }
}

/// `DeviceStateChanged` for the device at `index`.
pub fn device_changed(domain: &SimDomain, index: usize) -> DomainEvent {
    let dev: &DeviceInfo = &domain.devices[index];
    DomainEvent::DeviceStateChanged {
        uuid: domain.config.uuid,
        domid: domain.domid,
        kind: dev.kind(),
        device: dev.device.clone(),
        backend_state: dev.backend_state,
        frontend_state: dev.frontend_state,
    }
}

/// `BadState` for a domain that is not in `expected`.
pub fn bad_state(domain: &SimDomain, expected: DomainState) -> XenopsError {
    XenopsError::BadState {
        uuid: domain.config.uuid,
        expected,
        actual: domain.state,
    }
}

/// The domain must be in `expected`.
pub fn expect_state(domain: &SimDomain, expected: DomainState) -> Result<()> {
    if domain.state == expected {
        Ok(())
    } else {
        Err(bad_state(domain, expected))
    }
}

/// The domain must be running or paused (built and not on its way out).
pub fn expect_live(domain: &SimDomain) -> Result<()> {
    match domain.state {
        DomainState::Running | DomainState::Paused => Ok(()),
        _ => Err(bad_state(domain, DomainState::Running)),
    }
}
