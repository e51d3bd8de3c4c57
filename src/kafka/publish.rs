//! The publishing core shared by every producer (MySQL transactions, Redis items):
//! an idempotent producer (`acks=all`) and the queue of messages in flight, each with
//! the source position that becomes durable once it — and every message before it —
//! is acknowledged. Positions of what is not published (a suppressed loop, an empty
//! transaction) pass through the same queue, in order, so a position never runs
//! ahead of an unacknowledged message.
//!
//! At most [`MAX_IN_FLIGHT`] units (a message's weight: the transactions it carries
//! for a binlog producer, 1 for the others) wait for acknowledgement: then [`Publisher::retire`]
//! waits (the source stops reading until the broker catches up), and says so in the
//! log when the broker has not answered for 5 s.

use super::{kerr, KafkaConfig, RateLimitedLog};
use crate::error::Error;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The producer's librdkafka settings unless `[kafka] options` says otherwise
/// (docs/KAFKA.md): drc gathers transactions into messages itself (`[kafka]
/// linger_ms`), so librdkafka sends at once; up to 64 MB queued, 10 MB messages.
pub const PRODUCER_TUNING: &[(&str, &str)] = &[
    ("linger.ms", "0"),
    ("queue.buffering.max.kbytes", "65536"),
    ("message.max.bytes", "10000000"),
];

/// Weight (transactions, or messages) published but not yet acknowledged, at most.
pub const MAX_IN_FLIGHT: usize = 2_000;
/// How long a producer whose source failed waits for the broker's acknowledgements of
/// what it read before (a restarted Redis continues its stream only from its last
/// offset: what is not acknowledged by then is read again in a full sync).
pub const DRAIN: Duration = Duration::from_secs(30);

pub struct Publisher<P> {
    pub brokers: String,
    pub topic: String,
    zone: String,
    producer: FutureProducer<RateLimitedLog>,
    inflight: VecDeque<(Option<DeliveryFuture>, Option<P>, usize)>,
    /// The weight of what is in flight.
    weight: usize,
    /// since when the oldest message waits for its acknowledgement; last warning
    waiting_since: Option<Instant>,
    warned: Option<Instant>,
    unacked: metrics::Gauge,
    bytes: metrics::Counter,
}

impl<P> Publisher<P> {
    /// A producer for `topic` (created with one partition if it does not exist),
    /// publishing what originated in `zone`; `unacked` and `bytes` are its gauges.
    pub async fn open(
        k: &KafkaConfig,
        topic: String,
        zone: &str,
        unacked: metrics::Gauge,
        bytes: metrics::Counter,
    ) -> Result<Self, Error> {
        if let Err(e) = super::ensure_topic(k, &topic).await {
            tracing::warn!(error = %e, topic, "could not create the topic (it must exist)");
        }
        let producer: FutureProducer<RateLimitedLog> = k
            .client_with(PRODUCER_TUNING)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "0")
            .create_with_context(RateLimitedLog::default())
            .map_err(|e| kerr(&k.brokers, "producer", e))?;
        Ok(Publisher {
            brokers: k.brokers.clone(),
            topic,
            zone: zone.to_string(),
            producer,
            inflight: VecDeque::new(),
            weight: 0,
            waiting_since: None,
            warned: None,
            unacked,
            bytes,
        })
    }

    /// Messages (and passing positions) not yet retired.
    pub fn len(&self) -> usize {
        self.inflight.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inflight.is_empty()
    }

    /// The oldest entry is a message waiting for its acknowledgement.
    pub fn waiting(&self) -> bool {
        matches!(self.inflight.front(), Some((Some(_), _, _)))
    }

    /// `pos` passes in order without a message (nothing to publish).
    pub fn pass(&mut self, pos: Option<P>) {
        self.inflight.push_back((None, pos, 0));
    }

    /// Publishes `payload` (headers `drc-format` = `format`, `drc-zone`); `pos`
    /// becomes durable once it is acknowledged. `weight` (at least 1) counts against
    /// [`MAX_IN_FLIGHT`].
    pub async fn send(
        &mut self,
        key: &str,
        payload: &[u8],
        format: &str,
        pos: Option<P>,
        weight: usize,
    ) -> Result<(), Error> {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "drc-format",
                value: Some(format),
            })
            .insert(Header {
                key: "drc-zone",
                value: Some(&self.zone),
            });
        self.bytes.increment(payload.len() as u64);
        let mut record = FutureRecord::to(&self.topic).payload(payload).key(key).headers(headers);
        let fut = loop {
            match self.producer.send_result(record) {
                Ok(f) => break f,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((e, _)) => return Err(kerr(&self.brokers, "publishing", e)),
            }
        };
        let weight = weight.max(1);
        self.weight += weight;
        self.inflight.push_back((Some(fut), pos, weight));
        Ok(())
    }

    /// [`Publisher::retire`] until nothing is in flight, or `within` has passed.
    pub async fn drain(
        &mut self,
        within: Duration,
        mut done: impl FnMut(bool, Option<P>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let deadline = Instant::now() + within;
        loop {
            self.retire(&mut done).await?;
            if self.inflight.is_empty() || Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Retires acknowledged entries in order, calling `done(published, pos)` for each;
    /// stops at the oldest unacknowledged message. Waits while [`MAX_IN_FLIGHT`] is
    /// reached.
    pub async fn retire(&mut self, mut done: impl FnMut(bool, Option<P>) -> Result<(), Error>) -> Result<(), Error> {
        loop {
            let full = self.weight >= MAX_IN_FLIGHT;
            let unacked = self.inflight.len();
            let Some((fut, _, _)) = self.inflight.front_mut() else {
                break;
            };
            if let Some(f) = fut {
                let r = if full {
                    // back-pressure: the source stops until the broker catches up
                    tokio::time::timeout(Duration::from_secs(1), f).await.ok()
                } else {
                    futures_util::FutureExt::now_or_never(f)
                };
                if r.is_none() {
                    let since = *self.waiting_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= Duration::from_secs(5)
                        && self
                            .warned
                            .is_none_or(|w: Instant| w.elapsed() >= Duration::from_secs(10))
                    {
                        tracing::warn!(
                            brokers = %self.brokers,
                            topic = %self.topic,
                            unacknowledged = unacked,
                            waiting_secs = since.elapsed().as_secs(),
                            reader = if full { "paused (in-flight limit)" } else { "reading" },
                            "waiting for the broker to acknowledge published messages"
                        );
                        self.warned = Some(Instant::now());
                    }
                }
                match r {
                    None if full => continue,
                    None => break,
                    Some(Ok(Ok(_))) => {}
                    Some(Ok(Err((e, _)))) => return Err(kerr(&self.brokers, "delivery", e)),
                    Some(Err(_)) => {
                        return Err(Error::Transient {
                            addr: self.brokers.clone(),
                            what: "producer dropped a delivery".into(),
                        })
                    }
                }
            }
            let (fut, pos, weight) = self.inflight.pop_front().expect("front exists");
            self.weight -= weight;
            if self
                .waiting_since
                .take()
                .is_some_and(|t| t.elapsed() >= Duration::from_secs(5))
            {
                tracing::info!(brokers = %self.brokers, topic = %self.topic, "the broker acknowledges again; publishing resumed");
                self.warned = None;
            }
            done(fut.is_some(), pos)?;
        }
        self.unacked.set(self.inflight.len() as f64);
        Ok(())
    }
}
