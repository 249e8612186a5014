//! Events: `event.from` and the legacy `event.register` / `next` / `unregister`, driven by the
//! object store's generation counter and the message store's, so no change is missed or
//! reported twice, also across a restart (both counters are persisted).
//!
//! Waiters are futures on the runtime, never blocking threads: each waits on the stores' watch
//! channels and wakes on the next commit, without polling and without a batching delay. A
//! token is `%020d,%020d` (database generation, message generation). A session destroyed
//! while a call waits wakes it (the deletion is a commit) with `SESSION_INVALID`.
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use parking_lot::Mutex;
use xapi_db::{Change, ChangeOp};
use xapi_idl::{classes, errors, ApiError, ApiResult, FromValue, Value};

use crate::actions::message::{self, MessageChange, MessageStore, Stored};
use crate::app::App;
use crate::dispatch::Ctx;

/// Most database changes read per round; a longer backlog is served over several calls.
const BATCH: usize = 10_000;
/// A legacy registration whose unread backlog exceeds this loses its events (`EVENTS_LOST`).
pub const LEGACY_QUEUE_LIMIT: usize = 1024;

/// One `classes` entry of `event.from` / `event.register`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    /// `*`: everything.
    All,
    /// `vm`: every object of a class (lower-cased).
    Class(String),
    /// `vm/OpaqueRef:...`: one object.
    Object(String, String),
}

impl Subscription {
    /// Parses one entry; `a/b/c` is `EVENT_SUBSCRIPTION_PARSE_FAILURE`.
    pub fn parse(text: &str) -> ApiResult<Subscription> {
        if text == "*" {
            return Ok(Subscription::All);
        }
        let mut parts = text.split('/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(class), None, None) => Ok(Subscription::Class(class.to_ascii_lowercase())),
            (Some(class), Some(r), None) => Ok(Subscription::Object(
                class.to_ascii_lowercase(),
                r.to_owned(),
            )),
            _ => Err(errors::event_subscription_parse_failure(text)),
        }
    }

    fn wants_class(&self, lower: &str) -> bool {
        match self {
            Subscription::All => true,
            Subscription::Class(c) | Subscription::Object(c, _) => c == lower,
        }
    }

    fn wants(&self, lower: &str, r: &str) -> bool {
        match self {
            Subscription::All => true,
            Subscription::Class(c) => c == lower,
            Subscription::Object(c, o) => c == lower && o == r,
        }
    }
}

/// A parsed subscription list.
#[derive(Debug, Clone, Default)]
pub struct Subscriptions(pub Vec<Subscription>);

impl Subscriptions {
    /// Parses every entry.
    pub fn parse(classes: &[String]) -> ApiResult<Subscriptions> {
        classes
            .iter()
            .map(|c| Subscription::parse(c))
            .collect::<ApiResult<Vec<_>>>()
            .map(Subscriptions)
    }

    fn wants_class(&self, lower: &str) -> bool {
        self.0.iter().any(|s| s.wants_class(lower))
    }

    fn wants(&self, lower: &str, r: &str) -> bool {
        self.0.iter().any(|s| s.wants(lower, r))
    }
}

/// An `event.from` token: the two generations a client has seen up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// Object-store generation.
    pub db: u64,
    /// Message-store generation.
    pub msg: u64,
}

impl Token {
    /// Parses a token; `""` is `None` (start with a snapshot of every object).
    pub fn parse(text: &str) -> ApiResult<Option<Token>> {
        if text.is_empty() {
            return Ok(None);
        }
        let fail = || errors::event_from_token_parse_failure(text);
        let (a, b) = text.split_once(',').ok_or_else(fail)?;
        let db = a.trim().parse().map_err(|_| fail())?;
        let msg = b.trim().parse().map_err(|_| fail())?;
        Ok(Some(Token { db, msg }))
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:020},{:020}", self.db, self.msg)
    }
}

/// How an event's `id` and `timestamp` are rendered.
#[derive(Debug, Clone, Copy)]
enum Flavour {
    /// `event.from`: id is the generation, timestamp `"0.0"`; message ids are `"0"`.
    From,
    /// `event.next`: id is the generation, timestamp Unix time as OCaml prints a float.
    Legacy,
}

fn event_value(
    flavour: Flavour,
    id: u64,
    class: &str,
    op: &str,
    r: &str,
    snapshot: Value,
) -> Value {
    let timestamp = match flavour {
        Flavour::From => "0.0".to_owned(),
        // Compatibility: OCaml's string_of_float prints whole numbers with a trailing dot.
        Flavour::Legacy => format!("{}.", xapi_idl::DateTime::now().0),
    };
    Value::Struct(vec![
        ("id".into(), Value::String(id.to_string())),
        ("timestamp".into(), Value::String(timestamp)),
        ("class".into(), Value::String(class.to_owned())),
        ("operation".into(), Value::String(op.to_owned())),
        ("ref".into(), Value::String(r.to_owned())),
        ("snapshot".into(), snapshot),
    ])
}

fn op_name(op: ChangeOp) -> &'static str {
    match op {
        ChangeOp::Add => "add",
        ChangeOp::Mod => "mod",
        ChangeOp::Del => "del",
    }
}

fn class_lower(app: &App, t: xapi_db::TableId) -> &str {
    &app.model.classes[app.tables.class(t)].lower
}

fn db_event(app: &App, flavour: Flavour, c: &Change) -> Value {
    let class = &app.model.classes[app.tables.class(c.table)];
    event_value(
        flavour,
        c.gen,
        &class.lower,
        op_name(c.op),
        &c.r#ref,
        crate::implicit::record_value(class, &c.row),
    )
}

fn message_event(flavour: Flavour, change: &MessageChange) -> Value {
    let (op, s): (&str, &Stored) = match change {
        MessageChange::Add(s) => ("add", s),
        MessageChange::Del(s) => ("del", s),
    };
    let id = match flavour {
        Flavour::From => 0,
        Flavour::Legacy => s.gen,
    };
    event_value(
        flavour,
        id,
        "message",
        op,
        &s.r,
        xapi_idl::ToValue::to_value(&s.rec),
    )
}

/// One round's events after a token, grouped as upstream: creations, then modifications,
/// then deletions, messages last.
struct Round {
    events: Vec<Value>,
    next: Token,
    /// Matching changes found (before any cap), for the legacy queue bound.
    matched: usize,
}

fn collect_since(
    app: &App,
    messages: &MessageStore,
    subs: &Subscriptions,
    since: Token,
    flavour: Flavour,
) -> ApiResult<Round> {
    let changes = app.db.changes_since(since.db, BATCH);
    if changes.lost || since.db > changes.upto {
        return Err(errors::events_lost());
    }
    let mut groups: [Vec<Value>; 3] = Default::default();
    let mut matched = 0;
    for c in &changes.items {
        if !subs.wants(class_lower(app, c.table), &c.r#ref) {
            continue;
        }
        matched += 1;
        let slot = match c.op {
            ChangeOp::Add => 0,
            ChangeOp::Mod => 1,
            ChangeOp::Del => 2,
        };
        groups[slot].push(db_event(app, flavour, c));
    }
    let mut next = Token {
        db: changes.upto,
        msg: since.msg,
    };
    let [mut events, mods, dels] = groups;
    events.extend(mods);
    events.extend(dels);
    if subs.wants_class("message") {
        let (changes, upto, lost) = messages.changes_since(since.msg);
        if lost {
            return Err(errors::events_lost());
        }
        for m in changes.iter().filter(|m| {
            let s = match m {
                MessageChange::Add(s) | MessageChange::Del(s) => s,
            };
            subs.wants("message", &s.r)
        }) {
            matched += 1;
            events.push(message_event(flavour, m));
        }
        next.msg = upto;
    } else {
        next.msg = next.msg.max(messages.generation());
    }
    Ok(Round {
        events,
        next,
        matched,
    })
}

/// Every object matching `subs` as an `add`, with the token it is current at.
fn snapshot(app: &App, messages: &MessageStore, subs: &Subscriptions) -> (Vec<Value>, Token) {
    let msg = messages.generation();
    let mut events = Vec::new();
    let db = app.db.read(|view| {
        for (t, ci) in
            (0..app.model.classes.len()).filter_map(|ci| app.tables.table(ci).map(|t| (t, ci)))
        {
            let class = &app.model.classes[ci];
            if !subs.wants_class(&class.lower) {
                continue;
            }
            for (r, row) in view.rows(t) {
                if !subs.wants(&class.lower, &r) {
                    continue;
                }
                let gen = view.generations(t, &r).map(|(_, m)| m).unwrap_or(0);
                events.push(event_value(
                    Flavour::From,
                    gen,
                    &class.lower,
                    "add",
                    &r,
                    crate::implicit::record_value(class, &row),
                ));
            }
        }
        view.generation()
    });
    if subs.wants_class("message") {
        for s in messages.all() {
            if subs.wants("message", &s.r) {
                events.push(message_event(Flavour::From, &MessageChange::Add(s.clone())));
            }
        }
    }
    (events, Token { db, msg })
}

/// Row counts of every table, by lower-cased class name.
fn valid_ref_counts(app: &App) -> Value {
    app.db.read(|view| {
        Value::Struct(
            (0..app.model.classes.len())
                .filter_map(|ci| app.tables.table(ci).map(|t| (t, ci)))
                .map(|(t, ci)| {
                    (
                        app.model.classes[ci].lower.clone(),
                        Value::Int(view.count(t) as i64),
                    )
                })
                .collect(),
        )
    })
}

fn batch_value(app: &App, events: Vec<Value>, token: Token) -> Value {
    Value::Struct(vec![
        ("events".into(), Value::Array(events)),
        ("valid_ref_counts".into(), valid_ref_counts(app)),
        ("token".into(), Value::String(token.to_string())),
    ])
}

fn session_alive(app: &App, session: &str) -> bool {
    let t = app.table_of::<classes::Session>();
    app.db.get(t, session).is_some()
}

fn session_of(ctx: &Ctx) -> ApiResult<String> {
    ctx.session
        .as_ref()
        .map(|s| s.r.clone())
        .ok_or_else(|| ApiError::internal("no session"))
}

/// Waits until either store commits again or `deadline` passes; `false` on the deadline.
async fn wait_change(
    db_rx: &mut tokio::sync::watch::Receiver<u64>,
    msg_rx: &mut tokio::sync::watch::Receiver<u64>,
    deadline: Option<tokio::time::Instant>,
) -> bool {
    let sleep = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = db_rx.changed() => r.is_ok(),
        r = msg_rx.changed() => r.is_ok(),
        () = sleep => false,
    }
}

/// `event.from(classes, token, timeout)`: the batch of changes after `token`, waiting up to
/// `timeout` seconds for the first one.
pub async fn from(ctx: &Ctx, classes: &[String], token: &str, timeout: f64) -> ApiResult<Value> {
    let app = &ctx.app;
    let session = session_of(ctx)?;
    let subs = Subscriptions::parse(classes)?;
    let token = Token::parse(token)?;
    let timeout = if timeout.is_finite() && timeout > 0.0 {
        Duration::from_secs_f64(timeout.min(1e9))
    } else {
        Duration::ZERO
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let messages = message::store(app);
    let mut db_rx = app.db.subscribe();
    let mut msg_rx = messages.subscribe();
    db_rx.borrow_and_update();
    msg_rx.borrow_and_update();
    let mut since = match token {
        Some(t) => t,
        None => {
            let (events, token) = snapshot(app, &messages, &subs);
            if !events.is_empty() {
                return Ok(batch_value(app, events, token));
            }
            token
        }
    };
    loop {
        if !session_alive(app, &session) {
            return Err(errors::session_invalid(&session));
        }
        let round = collect_since(app, &messages, &subs, since, Flavour::From)?;
        if !round.events.is_empty() {
            return Ok(batch_value(app, round.events, round.next));
        }
        // Nothing matched up to here: later rounds start after it.
        since = round.next;
        if tokio::time::Instant::now() >= deadline
            || !wait_change(&mut db_rx, &mut msg_rx, Some(deadline)).await
        {
            // Mark what the final read covers before reading it.
            db_rx.borrow_and_update();
            msg_rx.borrow_and_update();
            let round = collect_since(app, &messages, &subs, since, Flavour::From)?;
            return Ok(batch_value(app, round.events, round.next));
        }
        db_rx.borrow_and_update();
        msg_rx.borrow_and_update();
    }
}

/// `event.get_current_id`: the object store's current generation.
pub fn current_id(app: &App) -> i64 {
    i64::try_from(app.db.generation()).unwrap_or(i64::MAX)
}

/// `event.inject(class, ref)`: touches an object; returns a token preceding that change.
pub fn inject(app: &App, class: &str, r: &str) -> ApiResult<String> {
    let table = app
        .model
        .class_index_ci(class)
        .and_then(|ci| app.tables.table(ci));
    let Some(t) = table else {
        return Err(errors::handle_invalid(class, r));
    };
    let before = app
        .db
        .write(|txn| {
            let before = txn.view().generation();
            txn.touch(t, r)?;
            Ok(before)
        })
        .map_err(|e| match e {
            xapi_db::DbError::NotFound { .. } => errors::handle_invalid(class, r),
            other => crate::errors::db_error(other),
        })?;
    let msg = message::store(app).generation();
    Ok(Token { db: before, msg }.to_string())
}

/// A legacy registration: the session's subscriptions and how far `next` has read.
struct Registration {
    subs: Vec<String>,
    cursor: Token,
}

/// Legacy registrations by session ref (refs are globally unique).
static REGISTRATIONS: LazyLock<Mutex<HashMap<String, Registration>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// `event.register(classes)`: adds subscriptions; events count from the first registration.
pub fn register(ctx: &Ctx, classes: &[String]) -> ApiResult<()> {
    let app = &ctx.app;
    let session = session_of(ctx)?;
    Subscriptions::parse(classes)?;
    let cursor = Token {
        db: app.db.generation(),
        msg: message::store(app).generation(),
    };
    let mut regs = REGISTRATIONS.lock();
    let reg = regs.entry(session).or_insert_with(|| Registration {
        subs: Vec::new(),
        cursor,
    });
    for c in classes {
        if !reg.subs.contains(c) {
            reg.subs.push(c.clone());
        }
    }
    Ok(())
}

/// `event.unregister(classes)`: removes subscriptions (unknown ones are ignored).
pub fn unregister(ctx: &Ctx, classes: &[String]) -> ApiResult<()> {
    let session = session_of(ctx)?;
    Subscriptions::parse(classes)?;
    if let Some(reg) = REGISTRATIONS.lock().get_mut(&session) {
        reg.subs.retain(|s| !classes.contains(s));
    }
    Ok(())
}

/// `event.next`: waits for events matching the session's registration.
pub async fn next(ctx: &Ctx) -> ApiResult<Value> {
    let app = &ctx.app;
    let session = session_of(ctx)?;
    let messages = message::store(app);
    let mut db_rx = app.db.subscribe();
    let mut msg_rx = messages.subscribe();
    loop {
        db_rx.borrow_and_update();
        msg_rx.borrow_and_update();
        if !session_alive(app, &session) {
            REGISTRATIONS.lock().remove(&session);
            return Err(errors::session_invalid(&session));
        }
        let (subs, cursor) = match REGISTRATIONS.lock().get(&session) {
            Some(reg) => (Subscriptions::parse(&reg.subs)?, reg.cursor),
            None => return Err(errors::session_not_registered(&session)),
        };
        let round = collect_since(app, &messages, &subs, cursor, Flavour::Legacy);
        let round = match round {
            Ok(r) if r.matched <= LEGACY_QUEUE_LIMIT => r,
            Ok(_) | Err(_) => {
                // The bounded queue overflowed: the client must re-read and re-register.
                REGISTRATIONS.lock().remove(&session);
                return Err(errors::events_lost());
            }
        };
        if let Some(reg) = REGISTRATIONS.lock().get_mut(&session) {
            reg.cursor = round.next;
        }
        if !round.events.is_empty() {
            return Ok(Value::Array(round.events));
        }
        if !wait_change(&mut db_rx, &mut msg_rx, None).await {
            return Err(ApiError::internal("event source closed"));
        }
    }
}

/// Forgets registrations of sessions that no longer exist.
pub fn forget_dead_registrations(app: &App) {
    REGISTRATIONS
        .lock()
        .retain(|session, _| session_alive(app, session));
}

/// The event calls that wait, and so run as futures rather than on blocking threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitingCall {
    /// `event.from`.
    From,
    /// `event.next`.
    Next,
}

/// Whether `wire` is a waiting event call.
pub fn waiting_call(wire: &str) -> Option<WaitingCall> {
    match wire {
        "event.from" => Some(WaitingCall::From),
        "event.next" => Some(WaitingCall::Next),
        _ => None,
    }
}

/// Runs a waiting event call with its (checked, defaulted) arguments.
pub async fn run_waiting(ctx: Ctx, call: WaitingCall, params: Vec<Value>) -> ApiResult<Value> {
    match call {
        WaitingCall::Next => next(&ctx).await,
        WaitingCall::From => {
            let arg = |i: usize| params.get(i).cloned().unwrap_or(Value::Nil);
            let classes =
                Vec::<String>::from_value(&arg(0)).map_err(|e| ApiError::from(e.at("classes")))?;
            let token = String::from_value(&arg(1)).map_err(|e| ApiError::from(e.at("token")))?;
            let timeout = f64::from_value(&arg(2)).map_err(|e| ApiError::from(e.at("timeout")))?;
            from(&ctx, &classes, &token, timeout).await
        }
    }
}

/// Blocks the current (blocking) thread on a waiting call; used by the trait entry points,
/// which the dispatcher bypasses.
pub fn block_on<T>(f: impl std::future::Future<Output = ApiResult<T>>) -> ApiResult<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.block_on(f),
        Err(_) => Err(ApiError::internal("no runtime")),
    }
}

/// Starts the background housekeeping of the legacy registrations.
pub async fn housekeeping(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        forget_dead_registrations(&app);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_parse_star_class_and_object() {
        assert_eq!(Subscription::parse("*").unwrap(), Subscription::All);
        assert_eq!(
            Subscription::parse("VM").unwrap(),
            Subscription::Class("vm".into())
        );
        assert_eq!(
            Subscription::parse("vm/OpaqueRef:1").unwrap(),
            Subscription::Object("vm".into(), "OpaqueRef:1".into())
        );
        let e = Subscription::parse("vm/a/b").unwrap_err();
        assert_eq!(e.code, errors::EVENT_SUBSCRIPTION_PARSE_FAILURE);
    }

    #[test]
    fn tokens_are_two_zero_padded_generations() {
        let t = Token { db: 12345, msg: 7 };
        assert_eq!(t.to_string(), "00000000000000012345,00000000000000000007");
        assert_eq!(Token::parse(&t.to_string()).unwrap(), Some(t));
        assert_eq!(Token::parse("").unwrap(), None);
        for bad in ["12", "a,b", "1,2,3", "-1,0"] {
            let e = Token::parse(bad).unwrap_err();
            assert_eq!(e.code, errors::EVENT_FROM_TOKEN_PARSE_FAILURE, "{bad}");
        }
    }

    #[test]
    fn object_subscription_matches_only_its_object() {
        let subs = Subscriptions::parse(&["vm/OpaqueRef:1".into(), "host".into()]).unwrap();
        assert!(subs.wants("vm", "OpaqueRef:1"));
        assert!(!subs.wants("vm", "OpaqueRef:2"));
        assert!(subs.wants("host", "OpaqueRef:9"));
        assert!(subs.wants_class("vm"));
        assert!(!subs.wants_class("sr"));
    }

    #[test]
    fn legacy_timestamps_look_like_ocaml_floats() {
        let v = event_value(Flavour::Legacy, 5, "vm", "mod", "r", Value::Nil);
        let ts = v
            .get("timestamp")
            .and_then(Value::as_str)
            .unwrap()
            .to_owned();
        assert!(ts.ends_with('.') && ts.len() > 2, "{ts}");
        let v = event_value(Flavour::From, 5, "vm", "mod", "r", Value::Nil);
        assert_eq!(v.get("timestamp"), Some(&Value::String("0.0".into())));
        assert_eq!(v.get("id"), Some(&Value::String("5".into())));
    }
}
