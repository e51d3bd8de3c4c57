//! The producer: a pipeline [`Sink`] of the zone's own binlog transactions.
//!
//! Its durable position is the reader's checkpoint (sled, `[reader] state_dir`),
//! which advances only to the transaction whose last fragment is the *oldest* not yet
//! acknowledged by the broker (idempotent producer, `acks=all`), never to the read
//! position. Applier transactions (loop marker) and empty ones are not published;
//! their positions still pass through the same queue, in order. At most
//! `MAX_IN_FLIGHT` transactions wait for acknowledgement: then writes wait (the reader
//! stops reading until the broker catches up).
//!
//! # Batches
//! Whole (single-fragment) transactions are gathered into one `json/2` message, up
//! to `[kafka] max_message_txns` transactions or [`MESSAGE_BYTES`]; it is sent when
//! full, before a fragment of a larger transaction, and once its first transaction
//! waited `[kafka] linger_ms` (the producer's own `linger.ms` is then 0: a
//! transaction waits once, here). A consumer's throughput is bound by messages per
//! fetch, not by bytes: at a high rate a message carries hundreds of transactions;
//! at a low one, one (`json/1`), after at most `linger_ms`. A batch's position is the
//! one after its last transaction (or after a suppressed one that came after it): it
//! becomes durable once the batch and everything before it is acknowledged. A batch
//! not yet sent when the daemon stops is read and published again after its restart
//! (its position was not durable).

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
/// A batch is sent once it holds this many bytes.
pub const MESSAGE_BYTES: usize = 1 << 20;

/// What becomes durable once a message is acknowledged: the reader position after
/// it, and how many whole transactions it carried (for `drc_txns_shipped_total`).
type Acked = (Option<Checkpoint>, u64);

/// Transactions gathered for one message.
#[derive(Default)]
struct Batch {
    payload: Vec<u8>,
    txns: u64,
    key: String,
    pos: Option<Checkpoint>,
    /// When its first transaction came.
    since: Option<Instant>,
}

/// Whom the checkpoint belongs to (checked on start against the server).
pub struct Origin {
    pub zone: String,
    pub server_id: u32,
    pub server_uuid: String,
}

pub struct KafkaSink<'a> {
    publisher: Publisher<Acked>,
    batch: Batch,
    max_txns: u64,
    linger: Duration,
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
            batch: Batch::default(),
            max_txns: k.max_message_txns.max(1) as u64,
            linger: Duration::from_millis(k.linger_ms),
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
        let done = |published: bool, acked: Option<Acked>| {
            let (cp, txns) = acked.unwrap_or_default();
            if published {
                shipped.increment(txns);
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

impl KafkaSink<'_> {
    /// Publishes the gathered transactions (`json/1` when there is one).
    async fn send_batch(&mut self) -> Result<(), Error> {
        let b = std::mem::take(&mut self.batch);
        if b.txns == 0 {
            return Ok(());
        }
        let format = if b.txns == 1 { wire::FORMAT } else { wire::FORMAT_BATCH };
        self.publisher
            .send(&b.key, &b.payload, format, Some((b.pos, b.txns)), b.txns as usize)
            .await?;
        // (the buffer is reused: batches are alike in size)
        self.batch.payload = b.payload;
        self.batch.payload.clear();
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
            match (self.batch.txns, tx.checkpoint) {
                // after the batch's transactions: durable with them
                (1.., Some(cp)) => self.batch.pos = Some(cp),
                (1.., None) => {}
                (0, cp) => self.publisher.pass(Some((cp, 0))),
            }
            return Ok(());
        }
        let key = || {
            tx.gtid
                .as_ref()
                .map(|g| g.to_string())
                .unwrap_or_else(|| format!("{}:{}", tx.file, tx.start_pos))
        };
        if tx.fragment != 0 || !tx.last || self.max_txns == 1 {
            // a fragment of a larger transaction travels alone
            self.send_batch().await?;
            let payload = wire::encode(&tx);
            return self
                .publisher
                .send(&key(), &payload, wire::FORMAT, Some((tx.checkpoint, tx.last as u64)), 1)
                .await;
        }
        let b = &mut self.batch;
        if b.txns == 0 {
            b.key = key();
            b.since = Some(Instant::now());
        } else {
            b.payload.push(b'\n');
        }
        wire::encode_into(&tx, &mut b.payload);
        b.txns += 1;
        b.pos = tx.checkpoint;
        if b.txns >= self.max_txns || b.payload.len() >= MESSAGE_BYTES {
            self.send_batch().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Error> {
        if self.batch.since.is_some_and(|t| t.elapsed() >= self.linger) {
            self.send_batch().await?;
        }
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
        self.send_batch().await?;
        self.retire(Some(super::publish::DRAIN)).await?;
        self.store.flush()?;
        self.dirty = false;
        Ok(())
    }

    fn tick(&self) -> Option<Duration> {
        // wait for the reader, the batch's linger, or the oldest delivery, whichever
        // comes first
        let batch = self.batch.since.map(|t| self.linger.saturating_sub(t.elapsed()));
        let acks = self.publisher.waiting().then_some(Duration::from_millis(20));
        batch.into_iter().chain(acks).min()
    }
}
