//! `drc check`'s Kafka finding (`[kafka]`): the brokers answer a metadata request over
//! the configured TLS and SASL, or the finding says what librdkafka met and what to fix.

use super::{Finding, Level};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Keeps librdkafka's first error and its first warning-or-worse log line: a metadata
/// request only times out, the reason (a refused certificate, failed authentication)
/// arrives here. Errors come through the consumer's queue (served by `poll`), log
/// lines from librdkafka's own threads.
#[derive(Default, Clone)]
struct FirstError(Arc<Mutex<(Option<String>, Option<String>)>>);

impl FirstError {
    fn reason(&self) -> Option<String> {
        let e = self.0.lock().unwrap_or_else(|p| p.into_inner());
        e.0.clone().or_else(|| e.1.clone())
    }
}

impl ClientContext for FirstError {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, line: &str) {
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            let mut e = self.0.lock().unwrap_or_else(|p| p.into_inner());
            e.1.get_or_insert_with(|| format!("{fac}: {line}"));
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let mut e = self.0.lock().unwrap_or_else(|p| p.into_inner());
        e.0.get_or_insert_with(|| format!("{error}: {reason}"));
    }
}

impl ConsumerContext for FirstError {}

/// The `kafka_connect` finding, when the config has `[kafka]`.
pub async fn kafka_checks(cfg: &crate::config::Config) -> Vec<Finding> {
    let Some(k) = cfg.kafka.clone() else {
        return Vec::new();
    };
    let ctx = FirstError::default();
    let seen = ctx.clone();
    let brokers = k.brokers.clone();
    let protocol = k
        .security
        .settings()
        .find(|(key, _)| *key == "security.protocol")
        .map_or("PLAINTEXT".to_string(), |(_, v)| v.to_string());
    let res = tokio::task::spawn_blocking(move || {
        let c: BaseConsumer<FirstError> = k
            .client_with(&[("group.id", "drc-check")])
            .create_with_context(ctx)
            .map_err(|e| e.to_string())?;
        let r = c.fetch_metadata(None, Duration::from_secs(10));
        if r.is_err() {
            // serve the queued error events, which carry the reason
            for _ in 0..10 {
                let _ = c.poll(Duration::from_millis(100));
            }
        }
        r.map(|m| m.brokers().len()).map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let finding = match res {
        Ok(n) => Finding::ok("kafka_connect", format!("{brokers}: {n} broker(s) over {protocol}")),
        Err(e) => {
            let reason = seen.reason().unwrap_or(e);
            let fix = crate::kafka::security::hint(&reason)
                .unwrap_or("fix [kafka] brokers, or start the brokers")
                .to_string();
            Finding::bad(
                Level::Problem,
                "kafka_connect",
                format!("{brokers} over {protocol}: {reason}"),
                fix,
            )
        }
    };
    vec![finding]
}
