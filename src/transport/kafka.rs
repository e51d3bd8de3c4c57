//! Kafka transport. Every daemon publishes the transactions that *originated* in its
//! zone to the topic `<topic_prefix><zone>` and applies the topics of its peers.
//!
//! # Topic layout
//! One topic per origin zone with **one partition**: the partition order is the
//! origin's commit order, so every row's changes stay in order and a transaction's
//! fragments are contiguous (the applier opens its target transaction on fragment 0
//! and commits on the last). Message key: the GTID; value: `wire` JSON v1; headers
//! `drc-format`, `drc-zone`. Throughput is bounded by one partition per zone; that is
//! the price of exact order without cross-partition reassembly.
//!
//! # Producer: nothing lost
//! The reader's checkpoint (sled, `[reader] state_dir`) advances only to the
//! transaction whose last fragment is the *oldest* not yet acknowledged by the broker
//! (idempotent producer, `acks=all`), never to the parse position. A restart
//! re-publishes what was in flight; the consumer drops the duplicates (GTID already in
//! its applied state, or a fragment 0 that restarts an open transaction).
//! When the broker is down, at most `MAX_IN_FLIGHT` fragments wait in memory and
//! the reader stops reading until they are acknowledged.
//!
//! # Consumer: nothing applied twice
//! The topic/partition/offset of the last fragment is written into `drc.applied` in
//! the same target transaction as the rows; on start the consumer seeks there.
//! Consumer-group offsets are not used as the source of truth.

use super::wire;
use crate::applier::apply::{is_applier_transaction, Applier, ApplierSettings};
use crate::error::Error;
use crate::reader::checkpoint::{CheckpointStore, Saved};
use crate::reader::live::{LiveReader, LiveSettings, StartSpec};
use futures_util::FutureExt;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Fragments published but not yet acknowledged, at most.
const MAX_IN_FLIGHT: usize = 2_000;

/// `[kafka]` in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers: `brokers = "127.0.0.1:9092"`.
    pub brokers: String,
    /// Topic name prefix; zone `a` publishes to `<prefix>a`: `topic_prefix = "drc."`.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// Extra librdkafka settings, e.g. `{ "security.protocol" = "ssl" }`.
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
}

fn default_prefix() -> String {
    "drc.".into()
}

impl KafkaConfig {
    pub fn topic(&self, zone: &str) -> String {
        format!("{}{zone}", self.topic_prefix)
    }

    fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.options {
            c.set(k, v);
        }
        c
    }
}

pub use crate::ops::ratelimit::RateLimitedLog;

impl ClientContext for RateLimitedLog {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, line: &str) {
        let Some(repeats) = self.allow(fac) else { return };
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility = fac, repeats, "{line}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility = fac, repeats, "{line}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility = fac, repeats, "{line}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility = fac, repeats, "{line}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let key = format!("error {:?}", error.rdkafka_error_code());
        if let Some(repeats) = self.allow(&key) {
            tracing::warn!(target: "librdkafka", %error, repeats, "{reason}");
        }
    }
}

impl ConsumerContext for RateLimitedLog {}

fn kerr(brokers: &str, what: &str, e: KafkaError) -> Error {
    Error::Transient {
        addr: brokers.to_string(),
        what: format!("{what}: {e}"),
    }
}

/// Creates the topic with one partition if it does not exist.
pub async fn ensure_topic(k: &KafkaConfig, topic: &str) -> Result<(), Error> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<RateLimitedLog> = k
        .client()
        .create_with_context(RateLimitedLog::default())
        .map_err(|e| kerr(&k.brokers, "admin client", e))?;
    let t = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    let r = admin
        .create_topics(
            [&t],
            // bounded: a producer restarting while the broker is down must reach its
            // reader (and its back-pressure and "waiting" logs) instead of hanging here
            &AdminOptions::new()
                .operation_timeout(Some(Duration::from_secs(10)))
                .request_timeout(Some(Duration::from_secs(5))),
        )
        .await
        .map_err(|e| kerr(&k.brokers, "creating topics", e))?;
    for res in r {
        match res {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(Error::Transient {
                    addr: k.brokers.clone(),
                    what: format!("creating topic {t}: {code}"),
                })
            }
        }
    }
    Ok(())
}

/// The publishing side of a zone.
pub struct ProducerSide {
    pub kafka: KafkaConfig,
    pub reader: LiveSettings,
    pub start: StartSpec,
    pub state_dir: PathBuf,
}

pub async fn run_producer(p: ProducerSide, shutdown: watch::Receiver<bool>) -> Result<(), Error> {
    let store = CheckpointStore::open(&p.state_dir)?;
    let r = super::restart_on_transient("publishing", shutdown, || produce(&p, &store)).await;
    store.flush()?;
    r
}

async fn produce(p: &ProducerSide, store: &CheckpointStore) -> Result<(), Error> {
    let topic = p.kafka.topic(&p.reader.zone);
    if let Err(e) = ensure_topic(&p.kafka, &topic).await {
        tracing::warn!(error = %e, topic, "could not create the topic (it must exist)");
    }
    let producer: FutureProducer<RateLimitedLog> = p
        .kafka
        .client()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "0")
        .set("linger.ms", "5")
        .set("queue.buffering.max.kbytes", "65536")
        .set("message.max.bytes", "10000000")
        .create_with_context(RateLimitedLog::default())
        .map_err(|e| kerr(&p.kafka.brokers, "producer", e))?;
    let saved = store.load()?;
    let mut reader =
        LiveReader::start(p.reader.clone(), saved.as_ref().map(|s| s.checkpoint.clone()), &p.start).await?;
    let info = reader.server_info().clone();
    let save = |cp: crate::position::Checkpoint| -> Result<(), Error> {
        store.save(&Saved {
            checkpoint: cp,
            source_server_id: info.server_id,
            source_uuid: info.server_uuid.clone(),
            output_len: None,
            saved_at_ms: chrono::Utc::now().timestamp_millis(),
        })
    };
    if saved.is_none() {
        save(reader.resume_point().clone())?;
        store.flush()?;
    }
    tracing::info!(topic, resume = %reader.resume_point(), "publishing");
    let zone = p.reader.zone.clone();
    let shipped =
        metrics::counter!(crate::ops::metrics::TXNS_SHIPPED, "from_zone" => zone.clone(), "transport" => "kafka");
    let bytes_shipped = metrics::counter!(crate::ops::metrics::BYTES_SHIPPED, "from_zone" => zone.clone());
    let unacked = metrics::gauge!(crate::ops::metrics::KAFKA_UNACKED, "zone" => zone.clone());
    let loops = metrics::counter!(crate::ops::metrics::LOOPS_SUPPRESSED, "from_zone" => zone, "to_zone" => "kafka");
    let mut inflight: VecDeque<(Option<DeliveryFuture>, Option<crate::position::Checkpoint>)> = VecDeque::new();
    let (mut dirty, mut last_flush) = (false, Instant::now());
    let mut suppressed = 0u64;
    // the transaction being read was written by an applier (see below)
    let mut applier_tx = false;
    // Since when the oldest fragment waits for its acknowledgement; last warning.
    let (mut waiting_since, mut warned) = (None::<Instant>, None::<Instant>);
    loop {
        // Retire acknowledged fragments in order; the checkpoint follows the oldest
        // unacknowledged one.
        loop {
            let full = inflight.len() >= MAX_IN_FLIGHT;
            let unacked = inflight.len();
            let Some((fut, _)) = inflight.front_mut() else {
                break;
            };
            match fut {
                None => {}
                Some(f) => {
                    let done = if full {
                        // Back-pressure: the reader stops until the broker catches up.
                        tokio::time::timeout(Duration::from_secs(1), f).await.ok()
                    } else {
                        futures_util::FutureExt::now_or_never(f)
                    };
                    if done.is_none() {
                        let since = *waiting_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= Duration::from_secs(5)
                            && warned.is_none_or(|w: Instant| w.elapsed() >= Duration::from_secs(10))
                        {
                            tracing::warn!(
                                brokers = %p.kafka.brokers,
                                unacknowledged = unacked,
                                waiting_secs = since.elapsed().as_secs(),
                                reader = if full { "paused (in-flight limit)" } else { "reading" },
                                "waiting for the broker to acknowledge published transactions"
                            );
                            warned = Some(Instant::now());
                        }
                    }
                    match done {
                        None if full => continue,
                        None => break,
                        Some(Ok(Ok(_))) => {}
                        Some(Ok(Err((e, _)))) => return Err(kerr(&p.kafka.brokers, "delivery", e)),
                        Some(Err(_)) => {
                            return Err(Error::Transient {
                                addr: p.kafka.brokers.clone(),
                                what: "producer dropped a delivery".into(),
                            })
                        }
                    }
                }
            }
            let (fut, cp) = inflight.pop_front().expect("front exists");
            if fut.is_some() && cp.is_some() {
                shipped.increment(1);
            }
            if waiting_since
                .take()
                .is_some_and(|t| t.elapsed() >= Duration::from_secs(5))
            {
                tracing::info!(brokers = %p.kafka.brokers, "the broker acknowledges again; publishing resumed");
                warned = None;
            }
            if let Some(cp) = cp {
                save(cp)?;
                dirty = true;
            }
        }
        unacked.set(inflight.len() as f64);
        if dirty && last_flush.elapsed() >= Duration::from_millis(200) {
            crate::ops::status::registry().set_producer(serde_json::json!({
                "topic": topic,
                "unacknowledged_fragments": inflight.len(),
                "read_position": reader.resume_point().to_string(),
            }));
            store.flush()?;
            dirty = false;
            last_flush = Instant::now();
        }
        let next = if let Some((Some(_), _)) = inflight.front() {
            // wait for the reader, or for the oldest delivery, whichever comes first
            tokio::select! {
                b = reader.next() => Some(b?),
                _ = tokio::time::sleep(Duration::from_millis(20)) => None,
            }
        } else {
            Some(reader.next().await?)
        };
        let Some(batch) = next else { continue };
        for tx in batch {
            // An applier transaction is recognised by its marker, which only its first
            // fragment holds: the rest of it is skipped too.
            if tx.fragment == 0 {
                applier_tx = is_applier_transaction(&tx);
            }
            if applier_tx || (tx.changes.is_empty() && tx.last) {
                if applier_tx && tx.last {
                    suppressed += 1;
                    loops.increment(1);
                }
                inflight.push_back((None, tx.checkpoint.clone()));
                continue;
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
                    value: Some(&p.reader.zone),
                });
            bytes_shipped.increment(payload.len() as u64);
            let mut record = FutureRecord::to(&topic).payload(&payload).key(&key).headers(headers);
            let fut = loop {
                match producer.send_result(record) {
                    Ok(f) => break f,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err((e, _)) => return Err(kerr(&p.kafka.brokers, "publishing", e)),
                }
            };
            inflight.push_back((Some(fut), tx.checkpoint.clone()));
        }
        if suppressed > 0 && suppressed % 1000 == 0 {
            tracing::debug!(suppressed, "applier transactions not published (loop suppression)");
        }
    }
}

/// The applying side for one peer zone.
pub struct ConsumerSide {
    pub kafka: KafkaConfig,
    pub origin: String,
    pub applier_opts: mysql_async::Opts,
    pub applier: Arc<ApplierSettings>,
}

pub async fn run_consumer(c: ConsumerSide, shutdown: watch::Receiver<bool>) -> Result<(), Error> {
    let what = format!("applying zone {}'s topic", c.origin);
    super::restart_on_transient(&what, shutdown, || super::tracked(&c.origin, consume(&c))).await
}

/// The definite error for a consumer position the broker no longer has.
fn lost_offset(c: &ConsumerSide, topic: &str, next: i64, why: &str) -> Error {
    Error::Server {
        addr: c.kafka.brokers.clone(),
        what: format!(
            "{topic}: offset {next} (the next after the last transaction applied in zone {zone}) is no longer on the \
             broker ({why}): retention deleted it or the topic was recreated. Transactions of zone {origin} may be \
             missing here; stopped. Re-seed zone {zone} from zone {origin} (docs/OPERATIONS.md), or raise the topic's \
             retention.ms above the longest outage (docs/KAFKA.md)",
            zone = c.applier.zone,
            origin = c.origin,
        ),
    }
}

async fn consume(c: &ConsumerSide) -> Result<(), Error> {
    let topic = c.kafka.topic(&c.origin);
    let mut applier = Applier::connect(c.applier_opts.clone(), c.applier.clone()).await?;
    applier.applied_position(&c.origin).await?;
    let stored = applier.applied_kafka_offset(&c.origin).await?;
    let consumer: StreamConsumer<RateLimitedLog> = c
        .kafka
        .client()
        .set("group.id", format!("drc-{}-from-{}", c.applier.zone, c.origin))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // A stored offset the broker no longer has (retention deleted it, or the
        // topic was recreated) must stop the applier, never jump: see below.
        .set("auto.offset.reset", "error")
        .create_with_context(RateLimitedLog::default())
        .map_err(|e| kerr(&c.kafka.brokers, "consumer", e))?;
    if let Some(o) = stored {
        // The offset after the last applied transaction must still be on the broker:
        // below the low watermark it was deleted (retention), above the high one the
        // topic was recreated. Either way transactions may be missing: stop, never jump.
        let (low, high) = tokio::task::block_in_place(|| consumer.fetch_watermarks(&topic, 0, Duration::from_secs(10)))
            .map_err(|e| kerr(&c.kafka.brokers, "reading the topic's offsets", e))?;
        if o + 1 < low || o + 1 > high {
            return Err(lost_offset(
                c,
                &topic,
                o + 1,
                &format!("the broker has offsets {low}..{high}"),
            ));
        }
    }
    let mut tpl = TopicPartitionList::new();
    let offset = match stored {
        Some(o) => Offset::Offset(o + 1),
        None => Offset::Beginning,
    };
    tpl.add_partition_offset(&topic, 0, offset)
        .map_err(|e| kerr(&c.kafka.brokers, "assign", e))?;
    consumer.assign(&tpl).map_err(|e| kerr(&c.kafka.brokers, "assign", e))?;
    tracing::info!(topic, from = ?offset, to = %c.applier.zone, "applying");
    let dir = crate::ops::status::registry().direction(&c.origin);
    dir.set_state("applying");
    let waiting = RateLimitedLog::default();
    // a message already received while applying the previous one (group commit)
    let mut ready = None;
    loop {
        let received = match ready.take() {
            Some(r) => r,
            None => consumer.recv().await,
        };
        let msg = match received {
            Ok(m) => m,
            Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset,
            )) => {
                let next = stored.map(|o| o + 1).unwrap_or(0);
                return Err(lost_offset(c, &topic, next, "the broker reports it out of range"));
            }
            Err(e) => {
                if let Some(repeats) = waiting.allow("recv") {
                    tracing::warn!(error = %e, topic, repeats, "waiting for the broker");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let format = msg.headers().and_then(|h| {
            h.iter()
                .find(|x| x.key == "drc-format")
                .and_then(|x| x.value.map(|v| v.to_vec()))
        });
        if format.as_deref() != Some(wire::FORMAT.as_bytes()) {
            return Err(Error::Server {
                addr: c.kafka.brokers.clone(),
                what: format!("{topic} offset {}: message format {:?} is not {} (a newer drc, or not a drc message); stopped without applying it", msg.offset(), format.map(|f| String::from_utf8_lossy(&f).into_owned()), wire::FORMAT),
            });
        }
        let tx = wire::decode(msg.payload().unwrap_or_default()).map_err(|e| Error::Server {
            addr: c.kafka.brokers.clone(),
            what: format!("{topic} offset {}: {e}", msg.offset()),
        })?;
        if tx.fragment == 0 {
            super::pause_point(&dir, &mut applier).await?;
        }
        applier.set_transport_position(Some((topic.clone(), msg.partition(), msg.offset())));
        applier.apply_grouped(&c.origin, tx).await?;
        // group commit while behind: commit once no further message is at hand
        ready = consumer.recv().now_or_never();
        if !matches!(ready, Some(Ok(_))) {
            applier.flush().await?;
        }
    }
}
