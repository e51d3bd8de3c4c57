//! The consumer: a pipeline [`Source`] of one origin zone's topic for an applier
//! (MySQL transactions, or Redis items: any [`Message`]).
//!
//! The topic/partition/offset of each message travels with it ([`Delivered`]) and is
//! written into `drc.applied` in the same target transaction as the rows; the source
//! is opened after the offset stored there. A stored offset the broker no longer has
//! (retention, a recreated topic) stops the direction: never jump. Watermarks alone
//! do not tell a recreated topic that already holds more messages than the stored
//! offset: the message at the stored offset is read again first and must be the
//! transaction applied last (its checkpoint equals the one in `drc.applied`).
//!
//! A message may carry several items (`json/2`: whole transactions in commit order).
//! Each is delivered with the message's offset; the applier stores that offset and
//! the checkpoint of the last item it applied, so a restart reads the message again
//! and goes on after that item (the items before it were applied).

use super::{kerr, wire, KafkaConfig, RateLimitedLog};
use crate::error::Error;
use crate::model::Delivered;
use crate::pipeline::Source;
use crate::position::{Checkpoint, KafkaPosition};
use futures_util::FutureExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::VecDeque;
use std::time::Duration;

/// What a topic carries.
pub trait Message: crate::pipeline::Item + Send + Sized + 'static {
    /// The `drc-format` headers a message may have (one of them it must).
    const FORMATS: &'static [&'static str];
    /// What names the message applied last (the origin position applied with it).
    type Identity: PartialEq + std::fmt::Debug + Send + 'static;
    /// What decoding needs to know of the consumer (e.g. its roots).
    type Context: Send + 'static;
    /// The items of the message at `at` in `format` (one of [`Self::FORMATS`]), in
    /// order, or what is wrong with it.
    fn decode(payload: &[u8], format: &str, at: KafkaPosition, ctx: &Self::Context) -> Result<Vec<Self>, String>;
    /// The origin position a consumer stores when it has applied this message.
    fn identity(&self) -> Option<Self::Identity>;
}

impl Message for Delivered {
    const FORMATS: &'static [&'static str] = &[wire::FORMAT, wire::FORMAT_BATCH];
    type Identity = Checkpoint;
    type Context = ();

    fn decode(payload: &[u8], format: &str, at: KafkaPosition, _: &()) -> Result<Vec<Self>, String> {
        let txs = match format {
            wire::FORMAT_BATCH => wire::decode_batch(payload)?,
            _ => vec![wire::decode(payload)?],
        };
        Ok(txs
            .into_iter()
            .map(|tx| Delivered {
                tx,
                transport: Some(at.clone()),
            })
            .collect())
    }

    fn identity(&self) -> Option<Checkpoint> {
        self.tx.checkpoint.clone()
    }
}

/// The consumer's librdkafka settings unless `[kafka] options` says otherwise
/// (docs/KAFKA.md): a fetch is answered after at most 10 ms even when the broker has
/// less than `fetch.min.bytes` (some brokers, tansu among them, hold a fetch for its
/// whole wait even with data at hand: 500 ms, librdkafka's default, made catch-up
/// wait on every fetch), and carries up to 16 MB of a partition.
pub const CONSUMER_TUNING: &[(&str, &str)] = &[
    ("fetch.wait.max.ms", "10"),
    ("fetch.error.backoff.ms", "100"),
    ("max.partition.fetch.bytes", "16777216"),
    ("fetch.max.bytes", "67108864"),
];

/// Where the applier stands in the topic (`drc.applied`).
#[derive(Debug, Clone)]
pub struct Stored<I = Checkpoint> {
    pub topic: String,
    /// Offset of the last applied message.
    pub offset: i64,
    /// The origin position applied with it (`None`: not checked).
    pub checkpoint: Option<I>,
}

pub struct KafkaSource<M: Message = Delivered> {
    consumer: StreamConsumer<RateLimitedLog>,
    brokers: String,
    topic: String,
    zone: String,
    origin: String,
    stored: Option<i64>,
    /// items of messages already received, not yet handed on
    queue: VecDeque<M>,
    /// a definite error met while looking ahead, handed on once the queue is empty
    failed: Option<Error>,
    waiting: RateLimitedLog,
    /// The last applied message's offset and identity, read again by [`Self::verify`].
    check: Option<(i64, Option<M::Identity>)>,
    ctx: M::Context,
}

impl<M: Message> KafkaSource<M> {
    /// Opens `topic` (`origin`'s) for the applier of `zone`, after `stored` (the
    /// offset applied last; `None`: from the beginning).
    pub async fn open(
        k: &KafkaConfig,
        topic: String,
        zone: &str,
        origin: &str,
        stored: Option<Stored<M::Identity>>,
        ctx: M::Context,
    ) -> Result<KafkaSource<M>, Error> {
        if stored.is_none() {
            // a first start: the origin's publisher may not have created its topic
            // yet, and a consumer of a missing topic retries only slowly
            if let Err(e) = super::ensure_topic(k, &topic).await {
                tracing::warn!(error = %e, topic, "could not create the topic (it must exist)");
            }
        }
        let consumer: StreamConsumer<RateLimitedLog> = k
            .client_with(CONSUMER_TUNING)
            .set("group.id", format!("drc-{zone}-reads-{topic}"))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // A stored offset the broker no longer has (retention deleted it, or the
            // topic was recreated) must stop the applier, never jump: see below.
            .set("auto.offset.reset", "error")
            .create_with_context(RateLimitedLog::default())
            .map_err(|e| kerr(&k.brokers, "consumer", e))?;
        let mut s = KafkaSource {
            consumer,
            brokers: k.brokers.clone(),
            topic,
            zone: zone.to_string(),
            origin: origin.to_string(),
            stored: stored.as_ref().map(|st| st.offset),
            queue: VecDeque::new(),
            failed: None,
            waiting: RateLimitedLog::default(),
            check: None,
            ctx,
        };
        let mut offset = Offset::Beginning;
        if let Some(st) = stored {
            if st.topic != s.topic {
                return Err(s.lost_offset(
                    st.offset + 1,
                    &format!(
                        "the position in drc.applied is in topic {:?}, the config names {:?}",
                        st.topic, s.topic
                    ),
                ));
            }
            // The offset after the last applied transaction must still be on the broker:
            // below the low watermark it was deleted (retention), above the high one the
            // topic was recreated. Either way transactions may be missing: stop, never jump.
            let (low, high) =
                tokio::task::block_in_place(|| s.consumer.fetch_watermarks(&s.topic, 0, Duration::from_secs(10)))
                    .map_err(|e| kerr(&s.brokers, "reading the topic's offsets", e))?;
            let o = st.offset;
            if o + 1 < low || o + 1 > high {
                return Err(s.lost_offset(o + 1, &format!("the broker has offsets {low}..{high}")));
            }
            offset = Offset::Offset(o + 1);
            if o < 0 {
                // nothing applied yet: nothing to check
            } else if o >= low {
                // read the last applied message again: it must be the same transaction
                offset = Offset::Offset(o);
                s.check = Some((o, st.checkpoint));
            } else {
                tracing::info!(
                    topic = s.topic,
                    offset = o,
                    "the last applied message is gone (retention): the topic's identity is not checked"
                );
            }
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&s.topic, 0, offset)
            .map_err(|e| kerr(&s.brokers, "assign", e))?;
        s.consumer.assign(&tpl).map_err(|e| kerr(&s.brokers, "assign", e))?;
        tracing::info!(topic = s.topic, from = ?offset, to = %zone, "applying");
        Ok(s)
    }

    /// Reads the last applied message again (when [`Self::open`] could) and checks it
    /// holds the item `drc.applied` says was applied last; a recreated topic holds
    /// another one there. The message's items after that one are handed on next.
    /// Waits for the broker as long as it takes.
    pub async fn verify(&mut self) -> Result<(), Error> {
        let Some((o, expected)) = self.check.take() else {
            return Ok(());
        };
        let (at, items) = loop {
            let r = self.consumer.recv().await;
            let at = r.as_ref().map_or(-1, |m| m.offset());
            if let Some(d) = self.received(r) {
                break (at, d?);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let last = items.last().and_then(|m| m.identity());
        // (no stored identity: the message counts as applied whole)
        let applied = match &expected {
            None => Some(items.len().saturating_sub(1)),
            Some(e) => items.iter().position(|m| m.identity().as_ref() == Some(e)),
        };
        let Some(i) = applied.filter(|_| at == o) else {
            return Err(self.lost_offset(
                o + 1,
                &format!(
                    "the message at offset {at} is not the one applied last (position {}, the stored position is {}): the topic was recreated",
                    last.as_ref().map_or("none".into(), |c| format!("{c:?}")),
                    expected.as_ref().map_or("none".into(), |c| format!("{c:?}")),
                ),
            ));
        };
        self.queue.extend(items.into_iter().skip(i + 1));
        tracing::debug!(
            topic = self.topic,
            offset = o,
            after = self.queue.len(),
            "the last applied message is the one on the broker"
        );
        Ok(())
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

    /// A received message's items, a definite error, or `None`: the broker is not
    /// reachable now (logged, rate-limited), try again.
    fn received(&self, r: KafkaResult<BorrowedMessage<'_>>) -> Option<Result<Vec<M>, Error>> {
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

    fn decode(&self, msg: &BorrowedMessage<'_>) -> Result<Vec<M>, Error> {
        let header = msg.headers().and_then(|h| {
            h.iter()
                .find(|x| x.key == "drc-format")
                .and_then(|x| x.value.map(|v| v.to_vec()))
        });
        let Some(format) = M::FORMATS.iter().find(|f| header.as_deref() == Some(f.as_bytes())) else {
            return Err(Error::Server {
                addr: self.brokers.clone(),
                what: format!(
                    "{} offset {}: message format {:?} is not {} (a newer drc, or not a drc message); stopped without applying it",
                    self.topic,
                    msg.offset(),
                    header.map(|f| String::from_utf8_lossy(&f).into_owned()),
                    M::FORMATS.join(" or ")
                ),
            });
        };
        let at = KafkaPosition {
            topic: self.topic.clone(),
            partition: msg.partition(),
            offset: msg.offset(),
        };
        M::decode(msg.payload().unwrap_or_default(), format, at, &self.ctx).map_err(|e| Error::Server {
            addr: self.brokers.clone(),
            what: format!(
                "{} offset {}: {e}; stopped without applying it (nothing after it is applied either)",
                self.topic,
                msg.offset()
            ),
        })
    }

    /// Takes a received message's items into the queue, or keeps its error.
    fn take(&mut self, r: Result<Vec<M>, Error>) {
        match r {
            Ok(items) => self.queue.extend(items),
            Err(e) => self.failed = Some(e),
        }
    }
}

impl<M: Message> Source for KafkaSource<M> {
    type Item = M;

    async fn next(&mut self) -> Result<Option<M>, Error> {
        loop {
            if let Some(m) = self.queue.pop_front() {
                return Ok(Some(m));
            }
            if let Some(e) = self.failed.take() {
                return Err(e);
            }
            let r = self.consumer.recv().await;
            match self.received(r) {
                Some(d) => self.take(d),
                None => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    fn has_ready(&mut self) -> bool {
        if self.queue.is_empty() && self.failed.is_none() {
            if let Some(d) = self.consumer.recv().now_or_never().and_then(|r| self.received(r)) {
                self.take(d);
            }
        }
        !self.queue.is_empty()
    }
}
