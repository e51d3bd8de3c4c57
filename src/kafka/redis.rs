//! Redis over Kafka. Each zone publishes what its own Redis changed (in scope, not
//! drc's applied transactions: those are the peers' and suppressed here) to
//! `<prefix>redis.<zone>`; each peer reads that topic into its Redis sink.
//!
//! # Publisher: nothing lost
//! The capture is the same as a direct direction's ([`RedisSource`], drc as a replica
//! of the zone's own Redis); [`RedisPublisher`] gathers consecutive transactions into
//! one message (up to [`crate::redis::sink::BATCH`] or 1 MB, or what
//! [`crate::redis::sink::BATCH_WAIT`] brings) and publishes a full sync's steps one
//! message each (`drc-redis-v1`, [`crate::redis::wire`]). Its position (sled in
//! `[reader] state_dir`/redis) follows the oldest unacknowledged message, and the
//! replica acknowledges (`REPLCONF ACK`) that position to Redis. A full sync stores
//! the marker `snapshot` when its start is acknowledged: a crash before its end
//! starts it over. A restart publishes again what was in flight; the consumer skips
//! transactions whose origin offset it has passed.
//!
//! # Consumer: nothing applied twice
//! [`Delivery`] is a topic's [`Message`]: the message's items and its offset, which
//! the sink writes into `drc:pos:<origin>` with the position (docs/REDIS.md). The
//! direction resumes after that offset, after checking that the message there is the
//! one applied last (a recreated topic stops it: never jump).

use super::publish::Publisher;
use super::source::Message;
use super::KafkaConfig;
use crate::error::Error;
use crate::mysql::reader::checkpoint::CheckpointStore;
use crate::pipeline::Sink;
use crate::position::KafkaPosition;
use crate::redis::apply::RedisPos;
use crate::redis::sink::{Delivery, BATCH, BATCH_WAIT};
use crate::redis::source::RedisItem;
use crate::redis::wire;
use crate::telemetry::metrics as m;
use crate::telemetry::status::RedisDirection;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The publisher's position record in its store.
const KEY: &[u8] = b"redis/position";
/// A message of transactions is closed at this many bytes of commands.
const MESSAGE_BYTES: usize = 1 << 20;
/// Larger messages are refused by the producer (`message.max.bytes`).
const MESSAGE_LIMIT: usize = 9_500_000;

impl Message for Delivery {
    const FORMATS: &'static [&'static str] = &[wire::FORMAT];
    /// The origin position (replid, offset) of the message's last transaction or
    /// full sync end.
    type Identity = (String, u64);
    type Context = ();

    fn decode(payload: &[u8], _: &str, at: KafkaPosition, _: &()) -> Result<Vec<Self>, String> {
        Ok(vec![Delivery {
            items: wire::decode(payload)?,
            kafka: Some(at.offset),
        }])
    }

    fn identity(&self) -> Option<(String, u64)> {
        match self.items.last()? {
            RedisItem::Tx { pos, .. } | RedisItem::SyncEnd { pos } => Some((pos.replid.clone(), pos.offset)),
            _ => None,
        }
    }
}

/// What the publisher's store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// Everything up to this origin position is acknowledged by the broker.
    At(RedisPos),
    /// A full sync's start is acknowledged, its end not yet.
    Snapshot,
}

/// The publisher's position in `store`: `None` before its first full sync.
pub fn load(store: &CheckpointStore) -> Result<Option<Published>, Error> {
    let Some(v) = store.record(KEY)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&v);
    if text == "snapshot" {
        return Ok(Some(Published::Snapshot));
    }
    RedisPos::parse(&text)
        .map(|p| Some(Published::At(p)))
        .ok_or_else(|| Error::State {
            dir: store.dir().display().to_string(),
            what: format!(
                "unreadable Redis publisher position {text:?}: remove the directory to publish a full sync again"
            ),
        })
}

fn save(store: &CheckpointStore, p: &Published) -> Result<(), Error> {
    let text = match p {
        Published::At(pos) => pos.text(),
        Published::Snapshot => "snapshot".into(),
    };
    store.set_record(KEY, text.as_bytes())
}

/// The pipeline sink that publishes a zone's Redis items.
pub struct RedisPublisher<'a> {
    publisher: Publisher<Published>,
    store: &'a CheckpointStore,
    zone: String,
    /// Transactions gathered for the next message, their commands' size, since when.
    pending: Vec<RedisItem>,
    pending_bytes: usize,
    pending_since: Option<Instant>,
    /// The origin offset acknowledged by the broker, and the one also on disk (the
    /// replica acknowledges that one to Redis).
    acked: Option<u64>,
    durable: Arc<AtomicU64>,
    status: Arc<RedisDirection>,
    dirty: bool,
    last_flush: Instant,
    txns: metrics::Counter,
    commands: metrics::Counter,
}

impl<'a> RedisPublisher<'a> {
    /// A publisher of `zone`'s Redis items to `<prefix>redis.<zone>`.
    pub async fn open(
        k: &KafkaConfig,
        zone: &str,
        store: &'a CheckpointStore,
        durable: Arc<AtomicU64>,
        status: Arc<RedisDirection>,
    ) -> Result<RedisPublisher<'a>, Error> {
        let labels = [("from_zone", zone.to_string()), ("to_zone", "kafka".to_string())];
        let publisher = Publisher::open(
            k,
            k.redis_topic(zone),
            zone,
            metrics::gauge!(m::KAFKA_UNACKED, "zone" => format!("redis.{zone}")),
            metrics::counter!(m::REDIS_BYTES_PUBLISHED, "from_zone" => zone.to_string()),
        )
        .await?;
        Ok(RedisPublisher {
            publisher,
            store,
            zone: zone.to_string(),
            pending: Vec::new(),
            pending_bytes: 0,
            pending_since: None,
            acked: None,
            durable,
            status,
            dirty: false,
            last_flush: Instant::now(),
            txns: metrics::counter!(m::REDIS_TXNS, &labels),
            commands: metrics::counter!(m::REDIS_COMMANDS, &labels),
        })
    }

    /// Retires acknowledged messages in order (all of them, up to `drain`).
    async fn retire(&mut self, drain: Option<Duration>) -> Result<(), Error> {
        let store = self.store;
        let mut last = None;
        let done = |_, p: Option<Published>| {
            if let Some(p) = p {
                save(store, &p)?;
                last = Some(p);
            }
            Ok(())
        };
        match drain {
            Some(within) => self.publisher.drain(within, done).await?,
            None => self.publisher.retire(done).await?,
        }
        if let Some(p) = last {
            self.dirty = true;
            if let Published::At(pos) = &p {
                self.acked = Some(pos.offset);
            }
            self.status.update(|s| {
                s.state = "publishing".into();
                s.position = match &p {
                    Published::At(pos) => Some(format!("{} {} {}", pos.replid, pos.offset, pos.db)),
                    Published::Snapshot => Some("full sync".into()),
                };
            });
        }
        Ok(())
    }

    /// Writes the position to disk; then the replica may acknowledge it to Redis
    /// (which may drop what is acknowledged from its backlog).
    fn persist(&mut self) -> Result<(), Error> {
        self.store.flush()?;
        self.dirty = false;
        self.last_flush = Instant::now();
        if let Some(o) = self.acked {
            self.durable.store(o, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Publishes `items` as one message; `pos` becomes durable once it is acknowledged.
    async fn send(&mut self, items: &[RedisItem], pos: Option<Published>) -> Result<(), Error> {
        let payload = wire::encode(items);
        if payload.len() > MESSAGE_LIMIT {
            return Err(Error::Server {
                addr: self.publisher.brokers.clone(),
                what: format!(
                    "a Redis item of zone {} is {} bytes encoded, more than a Kafka message holds ({MESSAGE_LIMIT}): drc cannot carry a value this large over Kafka (use the direct transport for it, or keep the key out of [redis] keys)",
                    self.zone,
                    payload.len()
                ),
            });
        }
        let key = match pos.as_ref() {
            Some(Published::At(p)) => format!("{}:{}", p.replid, p.offset),
            _ => self.zone.clone(),
        };
        self.publisher.send(&key, &payload, wire::FORMAT, pos, 1).await
    }

    /// Publishes the gathered transactions as one message.
    async fn publish_pending(&mut self) -> Result<(), Error> {
        let Some(RedisItem::Tx { pos, .. }) = self.pending.last() else {
            return Ok(());
        };
        let pos = Published::At(pos.clone());
        let items = std::mem::take(&mut self.pending);
        let (txns, cmds) = items.iter().fold((0, 0), |(t, c), i| {
            let n = i.commands() as u64;
            (t + u64::from(n > 0), c + n)
        });
        self.send(&items, Some(pos)).await?;
        self.txns.increment(txns);
        self.commands.increment(cmds);
        self.status.update(|s| {
            s.transactions += txns;
            s.commands += cmds;
        });
        self.pending_bytes = 0;
        self.pending_since = None;
        Ok(())
    }
}

impl Sink for RedisPublisher<'_> {
    type Item = RedisItem;

    async fn write(&mut self, item: RedisItem) -> Result<(), Error> {
        self.retire(None).await?;
        if let RedisItem::Tx { tx, .. } = &item {
            self.pending_bytes += tx.bytes();
            // consecutive transactions without commands (skipped ones, keep-alives)
            // only move the position: one entry for all of them
            let bare =
                |i: &RedisItem| matches!(i, RedisItem::Tx { tx, heartbeat_ms: None, .. } if tx.commands.is_empty());
            match self.pending.last_mut() {
                Some(last) if bare(last) && bare(&item) => *last = item,
                _ => self.pending.push(item),
            }
            let since = *self.pending_since.get_or_insert_with(Instant::now);
            if self.pending.len() >= BATCH || self.pending_bytes >= MESSAGE_BYTES || since.elapsed() >= BATCH_WAIT {
                self.publish_pending().await?;
            }
            return Ok(());
        }
        self.publish_pending().await?;
        let pos = match &item {
            RedisItem::SyncStart { .. } => {
                self.status.update(|s| s.state = "syncing".into());
                Some(Published::Snapshot)
            }
            RedisItem::SyncEnd { pos } => Some(Published::At(pos.clone())),
            _ => None,
        };
        self.send(std::slice::from_ref(&item), pos).await
    }

    async fn flush(&mut self) -> Result<(), Error> {
        self.publish_pending().await?;
        self.retire(None).await?;
        if self.dirty && self.last_flush.elapsed() >= super::sink::STORE_FLUSH_EVERY {
            self.persist()?;
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<(), Error> {
        self.publish_pending().await?;
        self.retire(Some(super::publish::DRAIN)).await?;
        self.persist()
    }

    fn tick(&self) -> Option<Duration> {
        (self.publisher.waiting() || self.dirty).then_some(Duration::from_millis(20))
    }
}
