//! `message.*`: alerts. Messages are not rows of the object store (as upstream, they live
//! beside the database): [`MessageStore`] keeps them in memory, one JSON file each under
//! `<state dir>/messages/`, with their own generation counter that feeds the second half of
//! `event.from` tokens. Writes are atomic (temporary file, fsync, rename).
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use xapi_idl::records::MessageRecord;
use xapi_idl::traits::MessageActions;
use xapi_idl::{classes, enums, errors, ApiError, ApiResult, DateTime, Ref, WireEnum};

use crate::app::App;
use crate::dispatch::Ctx;

/// At most this many messages are kept; the oldest go first (`xapi_globs.ml` `message_limit`).
pub const MESSAGE_LIMIT: usize = 10_000;
/// Deletions remembered for `event.from`; older tokens get `EVENTS_LOST`.
const TOMBSTONE_LIMIT: usize = 4096;

/// One stored message.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its ref.
    pub r: String,
    /// Generation of its creation.
    pub gen: u64,
    /// The record.
    pub rec: MessageRecord,
}

/// A message change after some generation.
#[derive(Debug, Clone)]
pub enum MessageChange {
    /// Created after the token.
    Add(Stored),
    /// Deleted after the token (last state).
    Del(Stored),
}

#[derive(Default)]
struct Inner {
    by_ref: HashMap<String, Stored>,
    /// Live messages by creation generation.
    by_gen: BTreeMap<u64, String>,
    /// Deleted messages by deletion generation.
    deleted: VecDeque<(u64, Stored)>,
    /// Deletions at or below this generation may have been forgotten.
    floor: u64,
    generation: u64,
}

/// The message store of one daemon.
pub struct MessageStore {
    dir: PathBuf,
    inner: RwLock<Inner>,
    /// Serialises writers so files and generations advance together.
    writer: Mutex<()>,
    generation: watch::Sender<u64>,
}

/// Stores by state directory (one per daemon; the registry keeps `App` untouched).
static STORES: LazyLock<Mutex<HashMap<PathBuf, Arc<MessageStore>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The message store of `app`, loaded from disk on first use.
pub fn store(app: &App) -> Arc<MessageStore> {
    let dir = app.config.state_dir.join("messages");
    let mut stores = STORES.lock();
    stores
        .entry(dir.clone())
        .or_insert_with(|| Arc::new(MessageStore::open(dir)))
        .clone()
}

fn json_of(s: &Stored) -> serde_json::Value {
    serde_json::json!({
        "ref": s.r,
        "gen": s.gen,
        "uuid": s.rec.uuid,
        "name": s.rec.name,
        "priority": s.rec.priority,
        "cls": s.rec.cls.as_str(),
        "obj_uuid": s.rec.obj_uuid,
        "timestamp": s.rec.timestamp.0,
        "body": s.rec.body,
    })
}

fn stored_of(v: &serde_json::Value) -> Option<Stored> {
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    Some(Stored {
        r: text("ref")?,
        gen: v.get("gen")?.as_u64()?,
        rec: MessageRecord {
            uuid: text("uuid")?,
            name: text("name")?,
            priority: v.get("priority")?.as_i64()?,
            cls: enums::Cls::from_wire(&text("cls")?)?,
            obj_uuid: text("obj_uuid")?,
            timestamp: DateTime(v.get("timestamp")?.as_i64()?),
            body: text("body")?,
        },
    })
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("path without a directory"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

impl MessageStore {
    /// Loads every message file in `dir` (unreadable ones are logged and skipped).
    pub fn open(dir: PathBuf) -> MessageStore {
        let mut inner = Inner::default();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().and_then(|e| e.to_str()) != Some("json") {
                    continue;
                }
                let parsed = std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .and_then(|v| stored_of(&v));
                match parsed {
                    Some(s) => {
                        inner.by_gen.insert(s.gen, s.r.clone());
                        inner.generation = inner.generation.max(s.gen);
                        inner.by_ref.insert(s.r.clone(), s);
                    }
                    None => tracing::warn!(path = %path.display(), "unreadable message skipped"),
                }
            }
        }
        let saved = std::fs::read_to_string(dir.join("generation"))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0);
        inner.generation = inner.generation.max(saved);
        // Deletions before this start are not remembered.
        inner.floor = inner.generation;
        let (generation, _) = watch::channel(inner.generation);
        MessageStore {
            dir,
            inner: RwLock::new(inner),
            writer: Mutex::new(()),
            generation,
        }
    }

    /// The generation of the last change.
    pub fn generation(&self) -> u64 {
        self.inner.read().generation
    }

    /// A receiver woken after each change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn path_of(&self, uuid: &str) -> PathBuf {
        self.dir.join(format!("{uuid}.json"))
    }

    fn save_generation(&self, generation: u64) -> std::io::Result<()> {
        write_atomic(
            &self.dir.join("generation"),
            generation.to_string().as_bytes(),
        )
    }

    /// Adds a message; drops the oldest beyond [`MESSAGE_LIMIT`].
    pub fn create(&self, rec: MessageRecord) -> ApiResult<String> {
        let _w = self.writer.lock();
        let gen = self.generation() + 1;
        let stored = Stored {
            r: format!("OpaqueRef:{}", uuid::Uuid::new_v4()),
            gen,
            rec,
        };
        let bytes = serde_json::to_vec(&json_of(&stored))
            .map_err(|e| ApiError::internal(format!("message encoding: {e}")))?;
        write_atomic(&self.path_of(&stored.rec.uuid), &bytes)
            .and_then(|()| self.save_generation(gen))
            .map_err(|e| ApiError::internal(format!("cannot store message: {e}")))?;
        let r = stored.r.clone();
        let oldest = {
            let mut inner = self.inner.write();
            inner.by_gen.insert(gen, r.clone());
            inner.by_ref.insert(r.clone(), stored);
            inner.generation = gen;
            if inner.by_ref.len() > MESSAGE_LIMIT {
                inner.by_gen.values().next().cloned()
            } else {
                None
            }
        };
        self.generation.send_replace(gen);
        drop(_w);
        if let Some(old) = oldest {
            self.destroy(&old)?;
        }
        Ok(r)
    }

    /// Deletes a message; `HANDLE_INVALID` when there is none.
    pub fn destroy(&self, r: &str) -> ApiResult<()> {
        let _w = self.writer.lock();
        let Some(stored) = self.get(r) else {
            return Err(errors::handle_invalid("message", r));
        };
        let gen = self.generation() + 1;
        match std::fs::remove_file(self.path_of(&stored.rec.uuid)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ApiError::internal(format!("cannot delete message: {e}"))),
        }
        self.save_generation(gen)
            .map_err(|e| ApiError::internal(format!("cannot store message: {e}")))?;
        {
            let mut inner = self.inner.write();
            inner.by_ref.remove(r);
            inner.by_gen.remove(&stored.gen);
            inner.deleted.push_back((gen, stored));
            while inner.deleted.len() > TOMBSTONE_LIMIT {
                if let Some((g, _)) = inner.deleted.pop_front() {
                    inner.floor = inner.floor.max(g);
                }
            }
            inner.generation = gen;
        }
        self.generation.send_replace(gen);
        Ok(())
    }

    /// One message.
    pub fn get(&self, r: &str) -> Option<Stored> {
        self.inner.read().by_ref.get(r).cloned()
    }

    /// Every message, oldest first.
    pub fn all(&self) -> Vec<Stored> {
        let inner = self.inner.read();
        inner
            .by_gen
            .values()
            .filter_map(|r| inner.by_ref.get(r).cloned())
            .collect()
    }

    /// Changes after generation `since`: (changes, upto, lost).
    pub fn changes_since(&self, since: u64) -> (Vec<MessageChange>, u64, bool) {
        let inner = self.inner.read();
        let lost = since < inner.floor || since > inner.generation;
        let mut out: Vec<MessageChange> = inner
            .by_gen
            .range(since.saturating_add(1)..)
            .filter_map(|(_, r)| inner.by_ref.get(r).cloned().map(MessageChange::Add))
            .collect();
        out.extend(
            inner
                .deleted
                .iter()
                .filter(|(g, s)| *g > since && s.gen <= since)
                .map(|(_, s)| MessageChange::Del(s.clone())),
        );
        (out, inner.generation, lost)
    }
}

type MessageMap = BTreeMap<Ref<classes::Message>, MessageRecord>;

fn map_of(items: impl IntoIterator<Item = Stored>) -> MessageMap {
    items
        .into_iter()
        .map(|s| (Ref::from_string(s.r), s.rec))
        .collect()
}

/// Evaluates a `get_all_records_where` expression against a message record.
fn matches(expr: &xapi_db::Expr, rec: &MessageRecord) -> bool {
    use xapi_db::{Expr, Operand};
    let field = |name: &str| -> Option<String> {
        Some(match name {
            "uuid" => rec.uuid.clone(),
            "name" => rec.name.clone(),
            "priority" => rec.priority.to_string(),
            "cls" => rec.cls.as_str().to_owned(),
            "obj_uuid" => rec.obj_uuid.clone(),
            "timestamp" => rec.timestamp.to_string(),
            "body" => rec.body.clone(),
            _ => return None,
        })
    };
    let operand = |o: &Operand| -> Option<String> {
        match o {
            Operand::Literal(s) => Some(s.clone()),
            Operand::Field(f) => field(f),
        }
    };
    match expr {
        Expr::True => true,
        Expr::False => false,
        Expr::Not(e) => !matches(e, rec),
        Expr::And(a, b) => matches(a, rec) && matches(b, rec),
        Expr::Or(a, b) => matches(a, rec) || matches(b, rec),
        Expr::Eq(a, b) => match (operand(a), operand(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        Expr::Neq(a, b) => match (operand(a), operand(b)) {
            (Some(x), Some(y)) => x != y,
            _ => false,
        },
    }
}

xapi_idl::actions! {
    impl MessageActions for App {
        fn create(&self, ctx: &Ctx, name: String, priority: i64, cls: enums::Cls, obj_uuid: String, body: String) -> ApiResult<Ref<classes::Message>> {
            let rec = MessageRecord {
                uuid: uuid::Uuid::new_v4().to_string(),
                name,
                priority,
                cls,
                obj_uuid,
                timestamp: DateTime::now(),
                body,
            };
            store(&ctx.app).create(rec).map(Ref::from_string)
        }

        fn destroy(&self, ctx: &Ctx, self_: Ref<classes::Message>) -> ApiResult<()> {
            store(&ctx.app).destroy(self_.as_str())
        }

        fn destroy_many(&self, ctx: &Ctx, messages: Vec<Ref<classes::Message>>) -> ApiResult<()> {
            let store = store(&ctx.app);
            for m in &messages {
                match store.destroy(m.as_str()) {
                    Err(e) if e.code == errors::HANDLE_INVALID => {}
                    other => other?,
                }
            }
            Ok(())
        }

        fn get_record(&self, ctx: &Ctx, self_: Ref<classes::Message>) -> ApiResult<MessageRecord> {
            store(&ctx.app)
                .get(self_.as_str())
                .map(|s| s.rec)
                .ok_or_else(|| errors::handle_invalid("message", self_.as_str()))
        }

        fn get_by_uuid(&self, ctx: &Ctx, uuid: String) -> ApiResult<Ref<classes::Message>> {
            store(&ctx.app)
                .all()
                .into_iter()
                .find(|s| s.rec.uuid == uuid)
                .map(|s| Ref::from_string(s.r))
                .ok_or_else(|| errors::uuid_invalid("message", &uuid))
        }

        fn get_all(&self, ctx: &Ctx) -> ApiResult<Vec<Ref<classes::Message>>> {
            Ok(store(&ctx.app).all().into_iter().map(|s| Ref::from_string(s.r)).collect())
        }

        fn get_all_records(&self, ctx: &Ctx) -> ApiResult<MessageMap> {
            Ok(map_of(store(&ctx.app).all()))
        }

        fn get_all_records_where(&self, ctx: &Ctx, expr: String) -> ApiResult<MessageMap> {
            let parsed = xapi_db::Expr::parse(&expr).map_err(|e| errors::invalid_value(&expr, e))?;
            Ok(map_of(store(&ctx.app).all().into_iter().filter(|s| matches(&parsed, &s.rec))))
        }

        fn get_since(&self, ctx: &Ctx, since: DateTime) -> ApiResult<MessageMap> {
            Ok(map_of(store(&ctx.app).all().into_iter().filter(|s| s.rec.timestamp > since)))
        }

        fn get(&self, ctx: &Ctx, cls: enums::Cls, obj_uuid: String, since: DateTime) -> ApiResult<MessageMap> {
            Ok(map_of(store(&ctx.app).all().into_iter().filter(|s| {
                s.rec.cls == cls && s.rec.obj_uuid == obj_uuid && s.rec.timestamp > since
            })))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str) -> MessageRecord {
        MessageRecord {
            uuid: uuid::Uuid::new_v4().to_string(),
            name: name.into(),
            priority: 3,
            cls: enums::Cls::Vm,
            obj_uuid: "u".into(),
            timestamp: DateTime(1_700_000_000),
            body: "b".into(),
        }
    }

    #[test]
    fn messages_and_generation_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = MessageStore::open(dir.path().join("m"));
        let a = store.create(rec("A")).unwrap();
        let b = store.create(rec("B")).unwrap();
        store.destroy(&a).unwrap();
        assert_eq!(store.generation(), 3);
        let again = MessageStore::open(dir.path().join("m"));
        assert_eq!(again.generation(), 3);
        let all = again.all();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].r, b);
        assert_eq!(all[0].rec.name, "B");
    }

    #[test]
    fn changes_since_reports_adds_and_deletions_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = MessageStore::open(dir.path().to_owned());
        let a = store.create(rec("A")).unwrap();
        let (changes, upto, lost) = store.changes_since(0);
        assert!(!lost);
        assert_eq!(upto, 1);
        assert!(matches!(&changes[..], [MessageChange::Add(s)] if s.r == a));
        store.destroy(&a).unwrap();
        let (changes, _, _) = store.changes_since(1);
        assert!(matches!(&changes[..], [MessageChange::Del(s)] if s.r == a));
        // Created and deleted after the token: nothing to report.
        assert!(store.changes_since(0).0.is_empty());
        assert!(store.changes_since(99).2, "a token from the future is lost");
    }

    #[test]
    fn filter_expressions_match_message_fields() {
        let e = xapi_db::Expr::parse(r#"field "name"="A" and field "priority"="3""#).unwrap();
        assert!(matches(&e, &rec("A")));
        assert!(!matches(&e, &rec("B")));
    }
}
