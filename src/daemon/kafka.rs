//! Kafka wiring: the zone's own binlog → `KafkaSink` (publishing, one direction per
//! daemon), and per peer zone `KafkaSource` → `ApplierSink` (applying).

use crate::error::Error;
use crate::kafka::sink::{KafkaSink, Origin};
use crate::kafka::source::KafkaSource;
use crate::kafka::KafkaConfig;
use crate::mysql::applier::apply::{Applier, ApplierSettings};
use crate::mysql::applier::sink::ApplierSink;
use crate::mysql::reader::checkpoint::CheckpointStore;
use crate::mysql::reader::live::{LiveReader, LiveSettings, StartSpec};
use crate::mysql::reader::source::BinlogSource;
use crate::pipeline::{self, Shutdown};
use std::path::PathBuf;
use std::sync::Arc;

/// The publishing side of a zone.
pub struct ProducerSide {
    pub kafka: KafkaConfig,
    pub reader: LiveSettings,
    pub start: StartSpec,
    pub state_dir: PathBuf,
}

pub async fn run_producer(p: ProducerSide, shutdown: Shutdown) -> Result<(), Error> {
    let store = CheckpointStore::open(&p.state_dir)?;
    let r = pipeline::restart_on_transient("publishing", &shutdown, || produce(&p, &store, &shutdown)).await;
    store.flush()?;
    r
}

async fn produce(p: &ProducerSide, store: &CheckpointStore, shutdown: &Shutdown) -> Result<(), Error> {
    let saved = store.load()?;
    let reader = LiveReader::start(p.reader.clone(), saved.as_ref().map(|s| s.checkpoint.clone()), &p.start).await?;
    let info = reader.server_info().clone();
    let origin = Origin {
        zone: p.reader.zone.clone(),
        server_id: info.server_id,
        server_uuid: info.server_uuid.clone(),
    };
    let sink = KafkaSink::open(&p.kafka, store, origin).await?;
    if saved.is_none() {
        sink.save(reader.resume_point().clone())?;
        store.flush()?;
    }
    tracing::info!(topic = p.kafka.topic(&p.reader.zone), resume = %reader.resume_point(), "publishing");
    pipeline::run(BinlogSource::new(reader), sink, None, shutdown).await
}

/// The applying side for one peer zone.
pub struct ConsumerSide {
    pub kafka: KafkaConfig,
    pub origin: String,
    pub applier_opts: mysql_async::Opts,
    pub applier: Arc<ApplierSettings>,
    /// The journal's progress: the session starts once it has read the local binlog.
    pub journal: super::journal::Progress,
}

pub async fn run_consumer(c: ConsumerSide, shutdown: Shutdown) -> Result<(), Error> {
    let what = format!("applying zone {}'s topic", c.origin);
    let dir = crate::telemetry::status::registry().direction(&c.origin);
    pipeline::restart_on_transient(&what, &shutdown, || pipeline::tracked(&dir, consume(&c, &shutdown))).await
}

async fn consume(c: &ConsumerSide, shutdown: &Shutdown) -> Result<(), Error> {
    let mut applier = Applier::connect(c.applier_opts.clone(), c.applier.clone()).await?;
    applier.claim(&c.origin).await?;
    super::journal::barrier(&mut applier, &c.journal, shutdown).await?;
    let applied = applier.applied_position(&c.origin).await?;
    let stored = applier
        .applied_kafka_position(&c.origin)
        .await?
        .map(|(topic, offset)| crate::kafka::source::Stored {
            topic,
            offset,
            checkpoint: applied,
        });
    let mut source: KafkaSource = KafkaSource::open(
        &c.kafka,
        c.kafka.topic(&c.origin),
        &c.applier.zone,
        &c.origin,
        stored,
        (),
    )
    .await?;
    source.verify().await?;
    let dir = crate::telemetry::status::registry().direction(&c.origin);
    dir.set_state("applying");
    pipeline::run(source, ApplierSink::new(applier, &c.origin), Some(&dir), shutdown).await
}
