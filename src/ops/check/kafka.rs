//! `drc check`'s Kafka finding (`[kafka]`): the brokers answer a metadata request over
//! the configured TLS and SASL, or the finding says what librdkafka met and what to fix.

use super::{Finding, Level};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Keeps librdkafka's first error: metadata requests only time out, the reason (a
/// refused certificate, failed authentication) arrives here.
#[derive(Default, Clone)]
struct FirstError(Arc<Mutex<Option<String>>>);

impl ClientContext for FirstError {
    fn log(&self, _: rdkafka::config::RDKafkaLogLevel, _: &str, _: &str) {}

    fn error(&self, error: KafkaError, reason: &str) {
        let mut e = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if e.is_none() {
            *e = Some(format!("{error}: {reason}"));
        }
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
        c.fetch_metadata(None, Duration::from_secs(10))
            .map(|m| m.brokers().len())
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let finding = match res {
        Ok(n) => Finding::ok("kafka_connect", format!("{brokers}: {n} broker(s) over {protocol}")),
        Err(e) => {
            let reason = seen.0.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or(e);
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
