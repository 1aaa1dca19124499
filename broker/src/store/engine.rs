//! The redb engine: one file, copy-on-write B-trees, checksummed commits. Tables:
//!
//! | table | key | value |
//! |---|---|---|
//! | `retained` | topic | [`MessageRecord`] |
//! | `sessions` | client id | [`SessionRecord`] |
//! | `queue` | (client id, seq) | [`QueueRecord`] |
//! | `messages` | message id | [`MessageRecord`] (once per routed message, however many
//! sessions it was queued for; removed with its last queue entry) |
//! | `inflight` | (client id, seq) | (packet id, state byte) |
//! | `qos2_in` | (client id, packet id) | () |
//! | `wills` | client id | ([`MessageRecord`], delay): wills of connected clean sessions |
//! | `meta` | name | u64 (`format`) |

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};

use super::record::{
    self, DecodeError, MessageRecord, QueueRecord, SessionRecord, SubscriptionRecord,
};
use super::{Engine, LoadedSession, Op, OpenError, Snapshot, WriteError};
use crate::config::StorageConfig;
use crate::message::Message;
use crate::types::{ClientId, PacketId};

const RETAINED: TableDefinition<&str, &[u8]> = TableDefinition::new("retained");
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const QUEUE: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("queue");
const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
const INFLIGHT: TableDefinition<(&str, u64), (u16, u8)> = TableDefinition::new("inflight");
const QOS2_IN: TableDefinition<(&str, u16), ()> = TableDefinition::new("qos2_in");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const WILLS: TableDefinition<&str, &[u8]> = TableDefinition::new("wills");

/// The layout version of the tables above.
const LAYOUT: u64 = 2;

/// Opens the database; `true` asks for the full integrity check.
pub type Opener = Box<dyn FnMut(bool) -> Result<Database, redb::DatabaseError> + Send>;

/// The redb engine.
pub struct RedbEngine {
    db: Option<Database>,
    path: PathBuf,
    opener: Opener,
    /// Queue entries per stored message id.
    refs: HashMap<u64, u32>,
    /// `refs` may disagree with the file (a transaction failed): rebuild it first.
    refs_stale: bool,
}

impl RedbEngine {
    /// Opens (or creates) the store file, verifying it when configured.
    pub fn open(path: &Path, config: &StorageConfig) -> Result<RedbEngine, OpenError> {
        let cache_bytes =
            usize::try_from(config.cache_mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
        let file = path.to_owned();
        let opener = move |verify: bool| {
            redb::Builder::new()
                .set_cache_size(cache_bytes)
                .set_check_integrity_on_open(verify)
                .create(&file)
        };
        RedbEngine::with_opener(path, config.verify_on_open, Box::new(opener))
    }

    /// An engine on the database `opener` makes (verified first when `verify`), and
    /// makes again after an I/O error; `path` names it in errors. Tests pass openers
    /// with fault-injecting backends.
    pub fn with_opener(
        path: &Path,
        verify: bool,
        mut opener: Opener,
    ) -> Result<RedbEngine, OpenError> {
        let db = open_db(path, &mut opener, verify)?;
        let mut engine = RedbEngine {
            db: Some(db),
            path: path.to_owned(),
            opener,
            refs: HashMap::new(),
            refs_stale: false,
        };
        engine.check_layout()?;
        Ok(engine)
    }

    fn open_error(&self, reason: impl std::fmt::Display) -> OpenError {
        OpenError::Open {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    fn db(&self) -> Result<&Database, redb::Error> {
        self.db
            .as_ref()
            .ok_or_else(|| redb::Error::Io(std::io::Error::other("store not open")))
    }

    /// Creates the tables and checks the layout version.
    fn check_layout(&mut self) -> Result<(), OpenError> {
        let run = || -> Result<Option<u64>, redb::Error> {
            let txn = self.db()?.begin_write()?;
            let found;
            {
                let mut meta = txn.open_table(META)?;
                found = meta.get("layout")?.map(|v| v.value());
                if found.is_none() {
                    meta.insert("layout", LAYOUT)?;
                }
                txn.open_table(RETAINED)?;
                txn.open_table(SESSIONS)?;
                txn.open_table(QUEUE)?;
                txn.open_table(MESSAGES)?;
                txn.open_table(INFLIGHT)?;
                txn.open_table(QOS2_IN)?;
                txn.open_table(WILLS)?;
            }
            txn.commit()?;
            Ok(found)
        };
        match run() {
            Ok(Some(v)) if v != LAYOUT => Err(self.open_error(format!(
                "layout version {v}, this broker reads version {LAYOUT}"
            ))),
            Ok(_) => Ok(()),
            Err(e) => Err(self.open_error(e)),
        }
    }

    fn record_error(&self, table: &'static str, key: String, e: DecodeError) -> OpenError {
        OpenError::Record {
            path: self.path.clone(),
            table,
            key,
            reason: e.to_string(),
        }
    }

    fn load_inner(&mut self, now: Instant, wall: SystemTime) -> Result<Snapshot, OpenError> {
        let now_ms = record::unix_ms(wall);
        let mut snap = Snapshot::default();
        let mut dead_retained = Vec::new();
        let mut dead_sessions = Vec::new();
        let mut rewrite_sessions = Vec::new();
        let mut dead_queue: Vec<(String, u64)> = Vec::new();
        let mut dead_inflight: Vec<(String, u64)> = Vec::new();
        let mut dead_qos2: Vec<(String, u16)> = Vec::new();
        let mut dead_wills: Vec<String> = Vec::new();
        let mut sessions: HashMap<String, LoadedSession> = HashMap::new();
        let mut messages: HashMap<u64, (bool, Arc<Message>)> = HashMap::new();
        let mut refs: HashMap<u64, u32> = HashMap::new();
        let oe = |e: redb::Error| self.open_error(e);
        {
            let db = self.db().map_err(oe)?;
            let txn = db.begin_read().map_err(|e| oe(e.into()))?;
            let retained = txn.open_table(RETAINED).map_err(|e| oe(e.into()))?;
            for entry in retained.iter().map_err(|e| oe(e.into()))? {
                let (k, v) = entry.map_err(|e| oe(e.into()))?;
                let topic = k.value().to_owned();
                let r: MessageRecord = record::decode(v.value())
                    .map_err(|e| self.record_error("retained", topic.clone(), e))?;
                if r.expired_at(now_ms) {
                    dead_retained.push(topic);
                    continue;
                }
                let m = r
                    .into_message(now, wall)
                    .map_err(|e| self.record_error("retained", topic.clone(), e))?;
                snap.retained.push(m);
            }
            let table = txn.open_table(SESSIONS).map_err(|e| oe(e.into()))?;
            for entry in table.iter().map_err(|e| oe(e.into()))? {
                let (k, v) = entry.map_err(|e| oe(e.into()))?;
                let client = k.value().to_owned();
                let mut r: SessionRecord = record::decode(v.value())
                    .map_err(|e| self.record_error("sessions", client.clone(), e))?;
                snap.last_id = snap.last_id.max(r.generation);
                // A session that was connected when the broker stopped went offline then.
                let was_online = r.offline_since_ms.is_none();
                if was_online {
                    r.offline_since_ms = Some(now_ms);
                    // Its connection ended without DISCONNECT: the will is due after
                    // its delay, counted from the restart [MQTT-3.1.2-8], [MQTT-3.1.3-9].
                    if let Some((will, delay)) = r.will.take() {
                        let delay_ms = u64::from(delay.min(r.expiry_interval_secs)) * 1000;
                        r.delayed_will = Some((will, now_ms.saturating_add(delay_ms)));
                    }
                }
                r.will = None;
                let mut changed = was_online;
                if let Some((will, due)) = r.delayed_will.take() {
                    let expired = r.expires_at_ms().is_some_and(|at| at <= now_ms);
                    if due <= now_ms || expired {
                        if !will.expired_at(now_ms) {
                            let m = will
                                .into_message(now, wall)
                                .map_err(|e| self.record_error("sessions", client.clone(), e))?;
                            snap.due_wills.push(m);
                        }
                        changed = true;
                    } else {
                        r.delayed_will = Some((will, due));
                    }
                }
                if r.expires_at_ms().is_some_and(|at| at <= now_ms) {
                    dead_sessions.push(client);
                    continue;
                }
                // Validate the subscriptions now, so that a bad one stops the start.
                for s in &r.subscriptions {
                    SubscriptionRecord::clone(s)
                        .into_subscription()
                        .map_err(|e| self.record_error("sessions", client.clone(), e))?;
                }
                if changed {
                    rewrite_sessions.push((client.clone(), record::encode(&r)));
                }
                sessions.insert(
                    client.clone(),
                    LoadedSession {
                        client_id: ClientId::new(client),
                        record: r,
                        queue: Vec::new(),
                        inbound_qos2: Vec::new(),
                    },
                );
            }
            let inflight_table = txn.open_table(INFLIGHT).map_err(|e| oe(e.into()))?;
            let mut inflight: HashMap<(String, u64), (u16, u8)> = HashMap::new();
            for entry in inflight_table.iter().map_err(|e| oe(e.into()))? {
                let (k, v) = entry.map_err(|e| oe(e.into()))?;
                let (c, seq) = k.value();
                inflight.insert((c.to_owned(), seq), v.value());
            }
            let table = txn.open_table(MESSAGES).map_err(|e| oe(e.into()))?;
            for entry in table.iter().map_err(|e| oe(e.into()))? {
                let (k, v) = entry.map_err(|e| oe(e.into()))?;
                let id = k.value();
                snap.last_id = snap.last_id.max(id);
                let r: MessageRecord = record::decode(v.value())
                    .map_err(|e| self.record_error("messages", id.to_string(), e))?;
                let expired = r.expired_at(now_ms);
                let m = r
                    .into_message(now, wall)
                    .map_err(|e| self.record_error("messages", id.to_string(), e))?;
                messages.insert(id, (expired, Arc::new(m)));
            }
            let queue = txn.open_table(QUEUE).map_err(|e| oe(e.into()))?;
            for entry in queue.iter().map_err(|e| oe(e.into()))? {
                let (k, v) = entry.map_err(|e| oe(e.into()))?;
                let (c, seq) = k.value();
                snap.last_id = snap.last_id.max(seq);
                let key = (c.to_owned(), seq);
                let state = inflight.remove(&key);
                let q: QueueRecord = record::decode(v.value())
                    .map_err(|e| self.record_error("queue", format!("{c}/{seq}"), e))?;
                let owner = sessions
                    .get_mut(c)
                    .filter(|s| s.record.generation == q.generation);
                let Some(owner) = owner else {
                    dead_queue.push(key.clone());
                    if state.is_some() {
                        dead_inflight.push(key);
                    }
                    continue;
                };
                // An expired message is dropped unless it is already in its QoS 2
                // release phase (the client has it; only PUBREL is left to send).
                let releasing = state.is_some_and(|(_, s)| s == 3);
                let Some((expired, message)) = messages.get(&q.message_id) else {
                    return Err(self.record_error(
                        "queue",
                        format!("{c}/{seq}"),
                        DecodeError::Invalid("message id (no such message)"),
                    ));
                };
                if *expired && !releasing {
                    dead_queue.push(key.clone());
                    if state.is_some() {
                        dead_inflight.push(key);
                    }
                    continue;
                }
                *refs.entry(q.message_id).or_default() += 1;
                let delivery = q
                    .into_delivery(seq, Arc::clone(message))
                    .map_err(|e| self.record_error("queue", format!("{c}/{seq}"), e))?;
                let state = match state {
                    Some((pid, s)) => {
                        let pid = PacketId::new(pid).ok_or_else(|| {
                            self.record_error(
                                "inflight",
                                format!("{c}/{seq}"),
                                DecodeError::Invalid("packet id 0"),
                            )
                        })?;
                        let s = record::state_of(s)
                            .map_err(|e| self.record_error("inflight", format!("{c}/{seq}"), e))?;
                        Some((pid, s))
                    }
                    None => None,
                };
                owner.queue.push((delivery, state));
            }
            // In-flight states whose queue entry is gone.
            dead_inflight.extend(inflight.into_keys());
            // Clean sessions' wills: their connections ended with the broker, and their
            // sessions with them, so the wills are due now [MQTT-3.1.3-9].
            let table = txn.open_table(WILLS).map_err(|e| oe(e.into()))?;
            for entry in table.iter().map_err(|e| oe(e.into()))? {
                let (k, v) = entry.map_err(|e| oe(e.into()))?;
                let client = k.value().to_owned();
                let (will, _delay): (MessageRecord, u32) = record::decode(v.value())
                    .map_err(|e| self.record_error("wills", client.clone(), e))?;
                if !will.expired_at(now_ms) {
                    let m = will
                        .into_message(now, wall)
                        .map_err(|e| self.record_error("wills", client.clone(), e))?;
                    snap.due_wills.push(m);
                }
                dead_wills.push(client);
            }
            let qos2 = txn.open_table(QOS2_IN).map_err(|e| oe(e.into()))?;
            for entry in qos2.iter().map_err(|e| oe(e.into()))? {
                let (k, _) = entry.map_err(|e| oe(e.into()))?;
                let (c, pid) = k.value();
                match (sessions.get_mut(c), PacketId::new(pid)) {
                    (Some(s), Some(id)) => s.inbound_qos2.push(id),
                    _ => dead_qos2.push((c.to_owned(), pid)),
                }
            }
        }
        // Messages no kept queue entry refers to.
        let dead_messages: Vec<u64> = messages
            .keys()
            .filter(|id| !refs.contains_key(id))
            .copied()
            .collect();
        snap.removed = dead_retained.len() + dead_sessions.len() + dead_queue.len();
        let cleanup = |txn: &WriteTransaction| -> Result<(), redb::Error> {
            let mut t = txn.open_table(RETAINED)?;
            for k in &dead_retained {
                t.remove(k.as_str())?;
            }
            let mut s = txn.open_table(SESSIONS)?;
            for (k, v) in &rewrite_sessions {
                s.insert(k.as_str(), v.as_slice())?;
            }
            for k in &dead_sessions {
                s.remove(k.as_str())?;
            }
            let mut q = txn.open_table(QUEUE)?;
            let mut i = txn.open_table(INFLIGHT)?;
            let mut q2 = txn.open_table(QOS2_IN)?;
            for k in &dead_sessions {
                q.retain_in((k.as_str(), 0)..=(k.as_str(), u64::MAX), |_, _| false)?;
                i.retain_in((k.as_str(), 0)..=(k.as_str(), u64::MAX), |_, _| false)?;
                q2.retain_in((k.as_str(), 0)..=(k.as_str(), u16::MAX), |_, _| false)?;
            }
            for (c, seq) in &dead_queue {
                q.remove((c.as_str(), *seq))?;
            }
            for (c, seq) in &dead_inflight {
                i.remove((c.as_str(), *seq))?;
            }
            for (c, pid) in &dead_qos2 {
                q2.remove((c.as_str(), *pid))?;
            }
            let mut m = txn.open_table(MESSAGES)?;
            for id in &dead_messages {
                m.remove(*id)?;
            }
            let mut w = txn.open_table(WILLS)?;
            for k in &dead_wills {
                w.remove(k.as_str())?;
            }
            Ok(())
        };
        self.write(cleanup, true).map_err(|e| self.open_error(e))?;
        self.refs = refs;
        let mut loaded: Vec<LoadedSession> = sessions.into_values().collect();
        loaded.sort_by(|a, b| a.client_id.as_str().cmp(b.client_id.as_str()));
        snap.sessions = loaded;
        Ok(snap)
    }

    fn write(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<(), redb::Error>,
        sync: bool,
    ) -> Result<(), redb::Error> {
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(if sync {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        f(&txn)?;
        txn.commit()?;
        Ok(())
    }

    /// Counts the queue entries of every stored message again, from the file.
    fn rebuild_refs(&mut self) -> Result<(), redb::Error> {
        let mut refs: HashMap<u64, u32> = HashMap::new();
        let txn = self.db()?.begin_read()?;
        let queue = txn.open_table(QUEUE)?;
        for entry in queue.iter()? {
            let (_, v) = entry?;
            if let Ok(q) = record::decode::<QueueRecord>(v.value()) {
                *refs.entry(q.message_id).or_default() += 1;
            }
        }
        self.refs = refs;
        self.refs_stale = false;
        Ok(())
    }

    fn reopen(&mut self) -> Result<(), redb::Error> {
        self.db = None;
        let db = (self.opener)(false)?;
        self.db = Some(db);
        tracing::info!(path = %self.path.display(), "store reopened after a write error");
        Ok(())
    }
}

fn open_db(path: &Path, opener: &mut Opener, verify: bool) -> Result<Database, OpenError> {
    let open = || opener(verify);
    // redb may panic on a damaged file (debug builds assert); a damaged file is an
    // error to report, never a crash.
    match std::panic::catch_unwind(AssertUnwindSafe(open)) {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => Err(OpenError::Open {
            path: path.to_owned(),
            reason: "it is open in another process (another broker on the same data directory?)"
                .to_owned(),
        }),
        Ok(Err(e)) => Err(OpenError::Open {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
        Err(_) => Err(OpenError::Open {
            path: path.to_owned(),
            reason: "the file is damaged (the engine failed reading it)".to_owned(),
        }),
    }
}

impl Engine for RedbEngine {
    fn load(&mut self, now: Instant, wall: SystemTime) -> Result<Snapshot, OpenError> {
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.load_inner(now, wall))) {
            Ok(r) => r,
            Err(_) => Err(self.open_error("the file is damaged (the engine failed reading it)")),
        }
    }

    fn apply(&mut self, ops: &[Op], sync: bool) -> Result<(), WriteError> {
        if self.db.is_none() {
            self.reopen().map_err(write_error)?;
        }
        if self.refs_stale {
            self.rebuild_refs().map_err(write_error)?;
        }
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut refs = std::mem::take(&mut self.refs);
        let result = self.write(|txn| apply_ops(txn, ops, &mut refs, now, wall), sync);
        self.refs = refs;
        if let Err(e) = result {
            // The transaction never became visible; the counts may have moved.
            self.refs_stale = true;
            // After an I/O error redb refuses every later write; start over from the
            // file (the failed transaction never became visible).
            if matches!(e, redb::Error::Io(_) | redb::Error::PreviousIo) {
                self.db = None;
            }
            return Err(write_error(e));
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), WriteError> {
        if self.db.is_none() {
            self.reopen().map_err(write_error)?;
        }
        self.write(|_| Ok(()), true).map_err(write_error)
    }
}

fn apply_ops(
    txn: &WriteTransaction,
    ops: &[Op],
    refs: &mut HashMap<u64, u32>,
    now: Instant,
    wall: SystemTime,
) -> Result<(), redb::Error> {
    let mut retained = txn.open_table(RETAINED)?;
    let mut sessions = txn.open_table(SESSIONS)?;
    let mut queue = txn.open_table(QUEUE)?;
    let mut messages = txn.open_table(MESSAGES)?;
    let mut inflight = txn.open_table(INFLIGHT)?;
    let mut qos2 = txn.open_table(QOS2_IN)?;
    let mut wills = txn.open_table(WILLS)?;
    for op in ops {
        match op {
            Op::RetainPut(m) => {
                let v = record::encode(&MessageRecord::from_message(m, now, wall));
                retained.insert(m.topic.as_str(), v.as_slice())?;
            }
            Op::RetainDelete(topic) => {
                retained.remove(topic.as_str())?;
            }
            Op::SessionPut(client, r) => {
                let v = record::encode(r.as_ref());
                sessions.insert(client.as_str(), v.as_slice())?;
            }
            Op::SessionDelete(client) => {
                let c = client.as_str();
                sessions.remove(c)?;
                let mut ids = Vec::new();
                for entry in queue.range((c, 0)..=(c, u64::MAX))? {
                    let (_, v) = entry?;
                    if let Ok(q) = record::decode::<QueueRecord>(v.value()) {
                        ids.push(q.message_id);
                    }
                }
                queue.retain_in((c, 0)..=(c, u64::MAX), |_, _| false)?;
                for id in ids {
                    release(&mut messages, refs, id)?;
                }
                inflight.retain_in((c, 0)..=(c, u64::MAX), |_, _| false)?;
                qos2.retain_in((c, 0)..=(c, u16::MAX), |_, _| false)?;
            }
            Op::Enqueue {
                client,
                generation,
                seq,
                message_id,
                delivery,
            } => {
                let n = refs.entry(*message_id).or_default();
                if *n == 0 {
                    let v =
                        record::encode(&MessageRecord::from_message(&delivery.message, now, wall));
                    messages.insert(*message_id, v.as_slice())?;
                }
                *n += 1;
                let v = record::encode(&QueueRecord::new(*generation, *message_id, delivery));
                queue.insert((client.as_str(), *seq), v.as_slice())?;
            }
            Op::Inflight {
                client,
                seq,
                packet_id,
                state,
            } => {
                inflight.insert(
                    (client.as_str(), *seq),
                    (packet_id.get(), record::state_byte(*state)),
                )?;
            }
            Op::Dequeue { client, seq } => {
                let removed = queue
                    .remove((client.as_str(), *seq))?
                    .and_then(|v| record::decode::<QueueRecord>(v.value()).ok());
                if let Some(q) = removed {
                    release(&mut messages, refs, q.message_id)?;
                }
                inflight.remove((client.as_str(), *seq))?;
            }
            Op::WillPut(client, will, delay) => {
                let v = record::encode(&(MessageRecord::from_message(will, now, wall), *delay));
                wills.insert(client.as_str(), v.as_slice())?;
            }
            Op::WillDelete(client) => {
                wills.remove(client.as_str())?;
            }
            Op::Qos2In {
                client,
                packet_id,
                present,
            } => {
                if *present {
                    qos2.insert((client.as_str(), packet_id.get()), ())?;
                } else {
                    qos2.remove((client.as_str(), packet_id.get()))?;
                }
            }
        }
    }
    Ok(())
}

/// One queue entry of message `id` is gone; the last one takes the message with it.
fn release(
    messages: &mut redb::Table<u64, &[u8]>,
    refs: &mut HashMap<u64, u32>,
    id: u64,
) -> Result<(), redb::Error> {
    match refs.get_mut(&id) {
        Some(n) if *n > 1 => *n -= 1,
        Some(_) => {
            refs.remove(&id);
            messages.remove(id)?;
        }
        None => {}
    }
    Ok(())
}

pub(super) fn write_error(e: redb::Error) -> WriteError {
    match &e {
        redb::Error::Io(io) if is_no_space(io) => WriteError::NoSpace,
        _ => WriteError::Failed(e.to_string()),
    }
}

fn is_no_space(e: &std::io::Error) -> bool {
    // ENOSPC 28, EDQUOT 122 (Linux)
    e.kind() == std::io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(28 | 122))
}
