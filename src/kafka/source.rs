//! The consumer: a pipeline [`Source`] of one origin zone's topic for an applier.
//!
//! The topic/partition/offset of each message travels with it ([`Delivered`]) and is
//! written into `drc.applied` in the same target transaction as the rows; the source
//! is opened after the offset stored there. A stored offset the broker no longer has
//! (retention, a recreated topic) stops the direction: never jump.

use super::{kerr, wire, KafkaConfig, RateLimitedLog};
use crate::error::Error;
use crate::model::Delivered;
use crate::pipeline::Source;
use crate::position::KafkaPosition;
use futures_util::FutureExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::time::Duration;

pub struct KafkaSource {
    consumer: StreamConsumer<RateLimitedLog>,
    brokers: String,
    topic: String,
    zone: String,
    origin: String,
    stored: Option<i64>,
    /// a message already received while the previous one was applied
    ready: Option<Result<Delivered, Error>>,
    waiting: RateLimitedLog,
}

impl KafkaSource {
    /// Opens `origin`'s topic for the applier of `zone`, after `stored` (the offset
    /// in `drc.applied`; `None`: from the beginning).
    pub fn open(k: &KafkaConfig, zone: &str, origin: &str, stored: Option<i64>) -> Result<KafkaSource, Error> {
        let topic = k.topic(origin);
        let consumer: StreamConsumer<RateLimitedLog> = k
            .client()
            .set("group.id", format!("drc-{zone}-from-{origin}"))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // A stored offset the broker no longer has (retention deleted it, or the
            // topic was recreated) must stop the applier, never jump: see below.
            .set("auto.offset.reset", "error")
            .create_with_context(RateLimitedLog::default())
            .map_err(|e| kerr(&k.brokers, "consumer", e))?;
        let s = KafkaSource {
            consumer,
            brokers: k.brokers.clone(),
            topic,
            zone: zone.to_string(),
            origin: origin.to_string(),
            stored,
            ready: None,
            waiting: RateLimitedLog::default(),
        };
        if let Some(o) = stored {
            // The offset after the last applied transaction must still be on the broker:
            // below the low watermark it was deleted (retention), above the high one the
            // topic was recreated. Either way transactions may be missing: stop, never jump.
            let (low, high) =
                tokio::task::block_in_place(|| s.consumer.fetch_watermarks(&s.topic, 0, Duration::from_secs(10)))
                    .map_err(|e| kerr(&s.brokers, "reading the topic's offsets", e))?;
            if o + 1 < low || o + 1 > high {
                return Err(s.lost_offset(o + 1, &format!("the broker has offsets {low}..{high}")));
            }
        }
        let mut tpl = TopicPartitionList::new();
        let offset = match stored {
            Some(o) => Offset::Offset(o + 1),
            None => Offset::Beginning,
        };
        tpl.add_partition_offset(&s.topic, 0, offset)
            .map_err(|e| kerr(&s.brokers, "assign", e))?;
        s.consumer.assign(&tpl).map_err(|e| kerr(&s.brokers, "assign", e))?;
        tracing::info!(topic = s.topic, from = ?offset, to = %zone, "applying");
        Ok(s)
    }

    /// The definite error for a consumer position the broker no longer has.
    fn lost_offset(&self, next: i64, why: &str) -> Error {
        Error::Server {
            addr: self.brokers.clone(),
            what: format!(
                "{topic}: offset {next} (the next after the last transaction applied in zone {zone}) is no longer on the \
                 broker ({why}): retention deleted it or the topic was recreated. Transactions of zone {origin} may be \
                 missing here; stopped. Re-seed zone {zone} from zone {origin} (docs/OPERATIONS.md), or raise the topic's \
                 retention.ms above the longest outage (docs/KAFKA.md)",
                topic = self.topic,
                zone = self.zone,
                origin = self.origin,
            ),
        }
    }

    /// A received message decoded, a definite error, or `None`: the broker is not
    /// reachable now (logged, rate-limited), try again.
    fn received(&self, r: KafkaResult<BorrowedMessage<'_>>) -> Option<Result<Delivered, Error>> {
        let msg = match r {
            Ok(m) => m,
            Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset,
            )) => {
                let next = self.stored.map(|o| o + 1).unwrap_or(0);
                return Some(Err(self.lost_offset(next, "the broker reports it out of range")));
            }
            Err(e) => {
                if let Some(repeats) = self.waiting.allow("recv") {
                    tracing::warn!(error = %e, topic = self.topic, repeats, "waiting for the broker");
                }
                return None;
            }
        };
        Some(self.decode(&msg))
    }

    fn decode(&self, msg: &BorrowedMessage<'_>) -> Result<Delivered, Error> {
        let format = msg.headers().and_then(|h| {
            h.iter()
                .find(|x| x.key == "drc-format")
                .and_then(|x| x.value.map(|v| v.to_vec()))
        });
        if format.as_deref() != Some(wire::FORMAT.as_bytes()) {
            return Err(Error::Server {
                addr: self.brokers.clone(),
                what: format!(
                    "{} offset {}: message format {:?} is not {} (a newer drc, or not a drc message); stopped without applying it",
                    self.topic,
                    msg.offset(),
                    format.map(|f| String::from_utf8_lossy(&f).into_owned()),
                    wire::FORMAT
                ),
            });
        }
        let tx = wire::decode(msg.payload().unwrap_or_default()).map_err(|e| Error::Server {
            addr: self.brokers.clone(),
            what: format!("{} offset {}: {e}", self.topic, msg.offset()),
        })?;
        Ok(Delivered {
            tx,
            transport: Some(KafkaPosition {
                topic: self.topic.clone(),
                partition: msg.partition(),
                offset: msg.offset(),
            }),
        })
    }
}

impl Source for KafkaSource {
    type Item = Delivered;

    async fn next(&mut self) -> Result<Option<Delivered>, Error> {
        if let Some(r) = self.ready.take() {
            return r.map(Some);
        }
        loop {
            let r = self.consumer.recv().await;
            if let Some(d) = self.received(r) {
                return d.map(Some);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn has_ready(&mut self) -> bool {
        if self.ready.is_none() {
            let r = self.consumer.recv().now_or_never();
            self.ready = r.and_then(|r| self.received(r));
        }
        matches!(self.ready, Some(Ok(_)))
    }
}
