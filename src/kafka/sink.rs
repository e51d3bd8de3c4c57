//! The producer: a pipeline [`Sink`] of the zone's own binlog transactions.
//!
//! Its durable position is the reader's checkpoint (sled, `[reader] state_dir`),
//! which advances only to the transaction whose last fragment is the *oldest* not yet
//! acknowledged by the broker (idempotent producer, `acks=all`), never to the read
//! position. Applier transactions (loop marker) and empty ones are not published;
//! their positions still pass through the same queue, in order. At most
//! `MAX_IN_FLIGHT` fragments wait for acknowledgement: then writes wait (the reader
//! stops reading until the broker catches up).

use super::publish::Publisher;
use super::{wire, KafkaConfig};
use crate::error::Error;
use crate::model::Transaction;
use crate::mysql::reader::checkpoint::{CheckpointStore, Saved};
use crate::pipeline::Sink;
use crate::position::Checkpoint;
use crate::telemetry::metrics as m;
use std::time::{Duration, Instant};

/// The checkpoint store is flushed to disk at most this often.
pub const STORE_FLUSH_EVERY: Duration = Duration::from_millis(200);

/// Whom the checkpoint belongs to (checked on start against the server).
pub struct Origin {
    pub zone: String,
    pub server_id: u32,
    pub server_uuid: String,
}

pub struct KafkaSink<'a> {
    publisher: Publisher<Checkpoint>,
    store: &'a CheckpointStore,
    origin: Origin,
    dirty: bool,
    last_flush: Instant,
    read_position: String,
    suppressed: u64,
    /// the transaction being written was written by an applier
    applier_tx: bool,
    shipped: metrics::Counter,
    loops: metrics::Counter,
}

impl<'a> KafkaSink<'a> {
    /// A producer for the topic of `origin.zone`; creates the topic if it can.
    pub async fn open(k: &KafkaConfig, store: &'a CheckpointStore, origin: Origin) -> Result<KafkaSink<'a>, Error> {
        let zone = origin.zone.clone();
        let publisher = Publisher::open(
            k,
            k.topic(&zone),
            &zone,
            metrics::gauge!(m::KAFKA_UNACKED, "zone" => zone.clone()),
            metrics::counter!(m::BYTES_SHIPPED, "from_zone" => zone.clone()),
        )
        .await?;
        Ok(KafkaSink {
            publisher,
            store,
            dirty: false,
            last_flush: Instant::now(),
            read_position: String::new(),
            suppressed: 0,
            applier_tx: false,
            shipped: metrics::counter!(m::TXNS_SHIPPED, "from_zone" => zone.clone(), "transport" => "kafka"),
            loops: metrics::counter!(m::LOOPS_SUPPRESSED, "from_zone" => zone.clone(), "to_zone" => "kafka"),
            origin,
        })
    }

    /// Records `cp` as the reader's durable position (flushed by [`Sink::flush`]).
    pub fn save(&self, cp: Checkpoint) -> Result<(), Error> {
        save(self.store, &self.origin, cp)
    }

    /// Retires acknowledged fragments in order; the checkpoint follows the oldest
    /// unacknowledged one. Waits while the in-flight limit is reached, or for all of
    /// them up to `drain`.
    async fn retire(&mut self, drain: Option<Duration>) -> Result<(), Error> {
        let (store, origin, shipped) = (self.store, &self.origin, &self.shipped);
        let mut dirty = false;
        let done = |published: bool, cp: Option<Checkpoint>| {
            if published && cp.is_some() {
                shipped.increment(1);
            }
            if let Some(cp) = cp {
                save(store, origin, cp)?;
                dirty = true;
            }
            Ok(())
        };
        match drain {
            Some(within) => self.publisher.drain(within, done).await?,
            None => self.publisher.retire(done).await?,
        }
        self.dirty |= dirty;
        Ok(())
    }
}

fn save(store: &CheckpointStore, origin: &Origin, cp: Checkpoint) -> Result<(), Error> {
    store.save(&Saved {
        checkpoint: cp,
        source_server_id: origin.server_id,
        source_uuid: origin.server_uuid.clone(),
        output_len: None,
        saved_at_ms: chrono::Utc::now().timestamp_millis(),
    })
}

impl Sink for KafkaSink<'_> {
    type Item = Transaction;

    async fn write(&mut self, tx: Transaction) -> Result<(), Error> {
        self.retire(None).await?;
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
            self.publisher.pass(tx.checkpoint);
            return Ok(());
        }
        let payload = wire::encode(&tx);
        let key = tx
            .gtid
            .as_ref()
            .map(|g| g.to_string())
            .unwrap_or_else(|| format!("{}:{}", tx.file, tx.start_pos));
        self.publisher.send(&key, &payload, wire::FORMAT, tx.checkpoint).await
    }

    async fn flush(&mut self) -> Result<(), Error> {
        self.retire(None).await?;
        if self.dirty && self.last_flush.elapsed() >= STORE_FLUSH_EVERY {
            crate::telemetry::status::registry().set_producer(serde_json::json!({
                "topic": self.publisher.topic,
                "unacknowledged_fragments": self.publisher.len(),
                "read_position": self.read_position,
            }));
            self.store.flush()?;
            self.dirty = false;
            self.last_flush = Instant::now();
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<(), Error> {
        self.retire(Some(super::publish::DRAIN)).await?;
        self.store.flush()?;
        self.dirty = false;
        Ok(())
    }

    fn tick(&self) -> Option<Duration> {
        // wait for the reader, or for the oldest delivery, whichever comes first
        self.publisher.waiting().then_some(Duration::from_millis(20))
    }
}
