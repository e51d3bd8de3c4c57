//! ZooKeeper over Kafka. Each zone publishes what its own ensemble's roots hold and
//! what changes in them ([`crate::zookeeper::source::ZkSource`] on its own ensemble:
//! the same watch, full reads and loop suppression as a direct direction) to
//! `<prefix>zk.<zone>`, consecutive items per message (up to [`BATCH`] or 1 MB;
//! `drc-zk-v1`,
//! [`crate::zookeeper::wire`]); each peer applies that topic through the same
//! [`crate::zookeeper::sink::ZkSink`], which writes the message's offset to
//! `/drc/zk/pos/<origin>` in the multi of the change it causes.
//!
//! The publisher keeps no position: a restart reads every root again (as a direct
//! direction does) and publishes it whole, so what was in flight at a crash is
//! published again; the sink writes nothing that its metadata says it already holds.

use super::publish::Publisher;
use super::source::Message;
use super::KafkaConfig;
use crate::error::Error;
use crate::pipeline::Sink;
use crate::position::KafkaPosition;
use crate::telemetry::metrics as m;
use crate::zookeeper::sink::ZkDelivery;
use crate::zookeeper::source::ZkItem;
use crate::zookeeper::{wire, Root};
use std::time::Duration;

impl Message for ZkDelivery {
    const FORMATS: &'static [&'static str] = &[wire::FORMAT];
    type Identity = ();
    /// The consumer's roots of this origin.
    type Context = Vec<Root>;

    fn decode(payload: &[u8], _: &str, at: KafkaPosition, roots: &Vec<Root>) -> Result<Vec<Self>, String> {
        Ok(vec![ZkDelivery {
            items: wire::decode(payload, roots)?,
            kafka: Some(at.offset),
        }])
    }

    fn identity(&self) -> Option<()> {
        None
    }
}

/// Items per message, at most.
pub const BATCH: usize = 256;
/// A message is closed at about this many bytes of node data and paths.
const MESSAGE_BYTES: usize = 1 << 20;
/// ... or once its first item waited this long: a full read yields items one read at
/// a time, so the source is rarely ahead and a message per flush would be a message
/// per node.
const LINGER: Duration = Duration::from_millis(20);

/// The pipeline sink that publishes a zone's ZooKeeper items.
pub struct ZkPublisher {
    publisher: Publisher<()>,
    zone: String,
    roots: Vec<Root>,
    pending: Vec<ZkItem>,
    pending_bytes: usize,
    pending_since: Option<std::time::Instant>,
}

impl ZkPublisher {
    /// A publisher of `zone`'s roots `roots` to `<prefix>zk.<zone>`.
    pub async fn open(k: &KafkaConfig, zone: &str, roots: Vec<Root>) -> Result<ZkPublisher, Error> {
        let publisher = Publisher::open(
            k,
            k.zk_topic(zone),
            zone,
            metrics::gauge!(m::KAFKA_UNACKED, "zone" => format!("zk.{zone}")),
            metrics::counter!(m::ZK_BYTES_PUBLISHED, "from_zone" => zone.to_string()),
        )
        .await?;
        Ok(ZkPublisher {
            publisher,
            zone: zone.to_string(),
            roots,
            pending: Vec::new(),
            pending_bytes: 0,
            pending_since: None,
        })
    }

    /// Publishes the gathered items as one message.
    async fn publish(&mut self) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let items = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        self.pending_since = None;
        let payload = wire::encode(&items, &self.roots);
        if payload.len() > 9_500_000 {
            return Err(Error::Server {
                addr: self.publisher.brokers.clone(),
                what: format!(
                    "{} ZooKeeper items of zone {} are {} bytes encoded, more than a Kafka message holds: keep fewer nodes under one root, or smaller ones",
                    items.len(),
                    self.zone,
                    payload.len()
                ),
            });
        }
        self.publisher
            .send(&self.zone.clone(), &payload, wire::FORMAT, None, 1)
            .await
    }

    async fn retire(&mut self, drain: Option<Duration>) -> Result<(), Error> {
        match drain {
            Some(within) => self.publisher.drain(within, |_, _| Ok(())).await,
            None => self.publisher.retire(|_, _| Ok(())).await,
        }
    }
}

impl Sink for ZkPublisher {
    type Item = ZkItem;

    async fn write(&mut self, item: ZkItem) -> Result<(), Error> {
        self.retire(None).await?;
        self.pending_bytes += match &item {
            ZkItem::Upsert { path, data, .. } => path.len() + data.len() + 64,
            ZkItem::Delete { path, .. } => path.len() + 16,
            ZkItem::Reconciled { present, .. } => present.iter().map(|p| p.len() + 2).sum(),
        };
        self.pending.push(item);
        let since = *self.pending_since.get_or_insert_with(std::time::Instant::now);
        if self.pending.len() >= BATCH || self.pending_bytes >= MESSAGE_BYTES || since.elapsed() >= LINGER {
            self.publish().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Error> {
        if self.pending_since.is_some_and(|t| t.elapsed() >= LINGER) {
            self.publish().await?;
        }
        self.retire(None).await
    }

    async fn close(&mut self) -> Result<(), Error> {
        self.publish().await?;
        self.retire(Some(super::publish::DRAIN)).await
    }

    fn tick(&self) -> Option<Duration> {
        match self.pending_since {
            Some(t) => Some(LINGER.saturating_sub(t.elapsed()).max(Duration::from_millis(1))),
            None => self.publisher.waiting().then_some(Duration::from_millis(20)),
        }
    }
}
