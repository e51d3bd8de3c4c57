//! Kafka transport. Every daemon publishes the transactions that *originated* in its
//! zone to the topic `<topic_prefix><zone>` and applies the topics of its peers.
//!
//! # Topic layout
//! One topic per origin zone with **one partition**: the partition order is the
//! origin's commit order, so every row's changes stay in order and a transaction's
//! fragments are contiguous (the applier opens its target transaction on fragment 0
//! and commits on the last). Message key: the (first) transaction's GTID; value:
//! `wire` JSON, one fragment (`json/1`) or, while the publisher is behind, up to
//! `max_message_txns` whole transactions (`json/2`); headers `drc-format`, `drc-zone`. Throughput is bounded by one partition per zone; that is
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
//!
//! | file | role |
//! |---|---|
//! | this file | `[kafka]` config, client settings, librdkafka logging, topic creation |
//! | [`publish`] | the producers' core: messages in flight, positions durable once acknowledged |
//! | [`redis`] | Redis over Kafka: the zone's Redis items published (`<prefix>redis.<zone>`), and read back for a Redis sink |
//! | [`zk`] | ZooKeeper over Kafka: the zone's roots published (`<prefix>zk.<zone>`), and read back for a ZooKeeper sink |
//! | [`sink`] | the producer: a pipeline sink of binlog transactions; its durable position is the reader checkpoint |
//! | [`source`] | the consumer: a pipeline source for an applier, positioned by `drc.applied` |
//! | [`wire`] | the versioned message format (`schemas/kafka_message.v1.json`) |

pub mod publish;
pub mod redis;
pub mod security;
pub mod sink;
pub mod source;
pub mod zk;
/// The message format lives with the model (`drc.parked` stores transactions in it too).
pub use crate::model::wire;

use crate::error::Error;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use serde::Deserialize;
use std::time::Duration;

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
    /// Whole transactions one message may carry while the publisher is behind
    /// (`json/2`, docs/KAFKA.md): `max_message_txns = 500`. `1` publishes every
    /// transaction alone (`json/1`): for a rolling upgrade while some consumers are
    /// drc versions that read only `json/1`.
    #[serde(default = "default_max_message_txns")]
    pub max_message_txns: usize,
    /// How long a message waits for more transactions after its first:
    /// `linger_ms = 5` (the latency it adds at a low rate; librdkafka's own
    /// `linger.ms` is set to 0 for drc's producers).
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// TLS to the brokers (`[kafka.tls]`): the same table as `[mysql.tls]`
    /// (`server_name` aside); docs/KAFKA.md.
    #[serde(default)]
    pub tls: Option<crate::tls::TlsConfig>,
    /// SASL to the brokers (`[kafka.sasl]`): SCRAM-SHA-512 by default.
    #[serde(default)]
    pub sasl: Option<security::KafkaSasl>,
    /// What `tls` and `sasl` make, built by [`Self::prepare`] at config load.
    #[serde(skip)]
    pub security: security::Security,
}

fn default_linger_ms() -> u64 {
    5
}

fn default_prefix() -> String {
    "drc.".into()
}

fn default_max_message_txns() -> usize {
    500
}

impl KafkaConfig {
    pub fn topic(&self, zone: &str) -> String {
        format!("{}{zone}", self.topic_prefix)
    }

    /// The topic of `zone`'s ZooKeeper items: `<prefix>zk.<zone>`.
    pub fn zk_topic(&self, zone: &str) -> String {
        format!("{}zk.{zone}", self.topic_prefix)
    }

    /// The topic of `zone`'s Redis items: `<prefix>redis.<zone>`.
    pub fn redis_topic(&self, zone: &str) -> String {
        format!("{}redis.{zone}", self.topic_prefix)
    }

    pub(crate) fn client(&self) -> ClientConfig {
        self.client_with(&[])
    }

    /// A client with drc's tuning `defaults`, which the config's `options` override
    /// (what correctness needs is set by the caller after this, and wins).
    pub(crate) fn client_with(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in defaults {
            c.set(*k, *v);
        }
        for (k, v) in &self.options {
            c.set(k, v);
        }
        for (k, v) in self.security.settings() {
            c.set(k, v);
        }
        c
    }

    /// Validates `[kafka.tls]` / `[kafka.sasl]` against `options`, reads the files and
    /// the password, and keeps the settings (config load).
    pub fn prepare(
        &mut self,
        resolve: impl Fn(&std::path::Path) -> std::path::PathBuf,
        password: impl FnOnce(&security::KafkaSasl) -> Result<Option<String>, String>,
    ) -> Result<(), String> {
        self.security =
            security::Security::build(self.tls.as_ref(), self.sasl.as_ref(), &self.options, resolve, password)?;
        Ok(())
    }
}

pub use crate::telemetry::ratelimit::RateLimitedLog;

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
            match security::hint(reason) {
                // a TLS or SASL refusal does not heal by retrying: say what to fix
                Some(fix) => tracing::error!(target: "librdkafka", %error, repeats, fix, "{reason}"),
                None => tracing::warn!(target: "librdkafka", %error, repeats, "{reason}"),
            }
        }
    }
}

impl ConsumerContext for RateLimitedLog {}

pub(crate) fn kerr(brokers: &str, what: &str, e: KafkaError) -> Error {
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
