//! The producer: a pipeline [`Sink`] of the zone's own binlog transactions.
//!
//! Its durable position is the reader's checkpoint (sled, `[reader] state_dir`),
//! which advances only to the transaction whose last fragment is the *oldest* not yet
//! acknowledged by the broker (idempotent producer, `acks=all`), never to the read
//! position. Applier transactions (loop marker) and empty ones are not published;
//! their positions still pass through the same queue, in order. At most
//! `MAX_IN_FLIGHT` fragments wait for acknowledgement: then writes wait (the reader
//! stops reading until the broker catches up).

use super::{kerr, wire, KafkaConfig, RateLimitedLog};
use crate::error::Error;
use crate::model::Transaction;
use crate::mysql::reader::checkpoint::{CheckpointStore, Saved};
use crate::pipeline::Sink;
use crate::position::Checkpoint;
use crate::telemetry::metrics as m;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Fragments published but not yet acknowledged, at most.
const MAX_IN_FLIGHT: usize = 2_000;
/// The checkpoint store is flushed to disk at most this often.
const STORE_FLUSH_EVERY: Duration = Duration::from_millis(200);

/// Whom the checkpoint belongs to (checked on start against the server).
pub struct Origin {
    pub zone: String,
    pub server_id: u32,
    pub server_uuid: String,
}

pub struct KafkaSink<'a> {
    brokers: String,
    topic: String,
    zone: String,
    producer: FutureProducer<RateLimitedLog>,
    store: &'a CheckpointStore,
    origin: Origin,
    inflight: VecDeque<(Option<DeliveryFuture>, Option<Checkpoint>)>,
    dirty: bool,
    last_flush: Instant,
    read_position: String,
    suppressed: u64,
    /// the transaction being written was written by an applier
    applier_tx: bool,
    /// since when the oldest fragment waits for its acknowledgement; last warning
    waiting_since: Option<Instant>,
    warned: Option<Instant>,
    shipped: metrics::Counter,
    bytes_shipped: metrics::Counter,
    unacked: metrics::Gauge,
    loops: metrics::Counter,
}

impl<'a> KafkaSink<'a> {
    /// A producer for the topic of `origin.zone`; creates the topic if it can.
    pub async fn open(k: &KafkaConfig, store: &'a CheckpointStore, origin: Origin) -> Result<KafkaSink<'a>, Error> {
        let topic = k.topic(&origin.zone);
        if let Err(e) = super::ensure_topic(k, &topic).await {
            tracing::warn!(error = %e, topic, "could not create the topic (it must exist)");
        }
        let producer: FutureProducer<RateLimitedLog> = k
            .client()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "0")
            .set("linger.ms", "5")
            .set("queue.buffering.max.kbytes", "65536")
            .set("message.max.bytes", "10000000")
            .create_with_context(RateLimitedLog::default())
            .map_err(|e| kerr(&k.brokers, "producer", e))?;
        let zone = origin.zone.clone();
        Ok(KafkaSink {
            brokers: k.brokers.clone(),
            topic,
            producer,
            store,
            inflight: VecDeque::new(),
            dirty: false,
            last_flush: Instant::now(),
            read_position: String::new(),
            suppressed: 0,
            applier_tx: false,
            waiting_since: None,
            warned: None,
            shipped: metrics::counter!(m::TXNS_SHIPPED, "from_zone" => zone.clone(), "transport" => "kafka"),
            bytes_shipped: metrics::counter!(m::BYTES_SHIPPED, "from_zone" => zone.clone()),
            unacked: metrics::gauge!(m::KAFKA_UNACKED, "zone" => zone.clone()),
            loops: metrics::counter!(m::LOOPS_SUPPRESSED, "from_zone" => zone.clone(), "to_zone" => "kafka"),
            zone,
            origin,
        })
    }

    /// Records `cp` as the reader's durable position (flushed by [`Sink::flush`]).
    pub fn save(&self, cp: Checkpoint) -> Result<(), Error> {
        self.store.save(&Saved {
            checkpoint: cp,
            source_server_id: self.origin.server_id,
            source_uuid: self.origin.server_uuid.clone(),
            output_len: None,
            saved_at_ms: chrono::Utc::now().timestamp_millis(),
        })
    }

    /// Retires acknowledged fragments in order; the checkpoint follows the oldest
    /// unacknowledged one. Waits while the in-flight limit is reached.
    async fn retire(&mut self) -> Result<(), Error> {
        loop {
            let full = self.inflight.len() >= MAX_IN_FLIGHT;
            let unacked = self.inflight.len();
            let Some((fut, _)) = self.inflight.front_mut() else {
                break;
            };
            if let Some(f) = fut {
                let done = if full {
                    // back-pressure: the reader stops until the broker catches up
                    tokio::time::timeout(Duration::from_secs(1), f).await.ok()
                } else {
                    futures_util::FutureExt::now_or_never(f)
                };
                if done.is_none() {
                    let since = *self.waiting_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= Duration::from_secs(5)
                        && self
                            .warned
                            .is_none_or(|w: Instant| w.elapsed() >= Duration::from_secs(10))
                    {
                        tracing::warn!(
                            brokers = %self.brokers,
                            unacknowledged = unacked,
                            waiting_secs = since.elapsed().as_secs(),
                            reader = if full { "paused (in-flight limit)" } else { "reading" },
                            "waiting for the broker to acknowledge published transactions"
                        );
                        self.warned = Some(Instant::now());
                    }
                }
                match done {
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
            let (fut, cp) = self.inflight.pop_front().expect("front exists");
            if fut.is_some() && cp.is_some() {
                self.shipped.increment(1);
            }
            if self
                .waiting_since
                .take()
                .is_some_and(|t| t.elapsed() >= Duration::from_secs(5))
            {
                tracing::info!(brokers = %self.brokers, "the broker acknowledges again; publishing resumed");
                self.warned = None;
            }
            if let Some(cp) = cp {
                self.save(cp)?;
                self.dirty = true;
            }
        }
        self.unacked.set(self.inflight.len() as f64);
        Ok(())
    }
}

impl Sink for KafkaSink<'_> {
    type Item = Transaction;

    async fn write(&mut self, tx: Transaction) -> Result<(), Error> {
        self.retire().await?;
        if let Some(cp) = &tx.checkpoint {
            self.read_position = cp.to_string();
        }
        // An applier transaction is recognised by its marker, which only its first
        // fragment holds: the rest of it is skipped too.
        if tx.fragment == 0 {
            self.applier_tx = crate::mysql::is_applier_transaction(&tx);
        }
        if self.applier_tx || (tx.changes.is_empty() && tx.last) {
            if self.applier_tx && tx.last {
                self.suppressed += 1;
                self.loops.increment(1);
                if self.suppressed % 1000 == 0 {
                    tracing::debug!(
                        suppressed = self.suppressed,
                        "applier transactions not published (loop suppression)"
                    );
                }
            }
            self.inflight.push_back((None, tx.checkpoint));
            return Ok(());
        }
        let payload = wire::encode(&tx);
        let key = tx
            .gtid
            .as_ref()
            .map(|g| g.to_string())
            .unwrap_or_else(|| format!("{}:{}", tx.file, tx.start_pos));
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "drc-format",
                value: Some(wire::FORMAT),
            })
            .insert(Header {
                key: "drc-zone",
                value: Some(&self.zone),
            });
        self.bytes_shipped.increment(payload.len() as u64);
        let mut record = FutureRecord::to(&self.topic)
            .payload(&payload)
            .key(&key)
            .headers(headers);
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
        self.inflight.push_back((Some(fut), tx.checkpoint));
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Error> {
        self.retire().await?;
        if self.dirty && self.last_flush.elapsed() >= STORE_FLUSH_EVERY {
            crate::telemetry::status::registry().set_producer(serde_json::json!({
                "topic": self.topic,
                "unacknowledged_fragments": self.inflight.len(),
                "read_position": self.read_position,
            }));
            self.store.flush()?;
            self.dirty = false;
            self.last_flush = Instant::now();
        }
        Ok(())
    }

    fn tick(&self) -> Option<Duration> {
        // wait for the reader, or for the oldest delivery, whichever comes first
        matches!(self.inflight.front(), Some((Some(_), _))).then_some(Duration::from_millis(20))
    }
}
