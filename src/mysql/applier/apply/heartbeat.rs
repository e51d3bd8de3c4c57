//! Heartbeats from the peers: applied as a position-only applier transaction that records the lag.

use super::*;

impl Applier {
    /// The origin's own heartbeat row in `tx` (seq, write time µs, lags JSON), if any.
    pub(super) fn heartbeat_of(&self, origin: &str, tx: &Transaction) -> Option<(u64, i64, Option<String>)> {
        use crate::model::Value as V;
        let key = self.s.channel_key(origin);
        tx.changes.iter().find_map(|c| match c {
            Change::Row(r) if &*r.db == "drc" && &*r.table == "heartbeat" => {
                let img = r.after.as_ref()?;
                if !matches!(img.get("origin_zone"), Some(V::Text(k)) if *k == key) {
                    return None;
                }
                let seq = match img.get("seq")? {
                    V::UInt(n) => *n,
                    V::Int(n) => *n as u64,
                    _ => return None,
                };
                let ts = match img.get("ts_us")? {
                    V::Int(n) => *n,
                    V::UInt(n) => *n as i64,
                    _ => return None,
                };
                let lags = match img.get("lags") {
                    Some(V::Text(t)) => Some(t.to_string()),
                    _ => None,
                };
                Some((seq, ts, lags))
            }
            _ => None,
        })
    }

    /// Applies the origin's heartbeat: a small applier transaction (marker first, so
    /// it is never shipped onward) that moves the stored position and records the
    /// heartbeat; then the lag and clock-skew samples.
    pub(super) async fn apply_heartbeat(
        &mut self,
        origin: &str,
        tx: &Transaction,
        (seq, ts_us, lags): (u64, i64, Option<String>),
    ) -> Result<(), Error> {
        let cp = tx.checkpoint.as_ref().expect("last fragment has a checkpoint");
        let mut params = self.position_params(origin, cp, &self.transport_position);
        params.extend([seq.into(), ts_us.into(), crate::telemetry::status::now_us().into()]);
        self.begin(origin).await?;
        self.conn
            .exec_drop(
                "INSERT INTO `drc`.`applied` (origin_zone, gtid, file, pos, kafka_topic, kafka_partition, kafka_offset, applied_txns, hb_seq, hb_ts_us, hb_applied_us) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE gtid = VALUES(gtid), file = VALUES(file), pos = VALUES(pos), \
                 kafka_topic = COALESCE(VALUES(kafka_topic), kafka_topic), kafka_partition = COALESCE(VALUES(kafka_partition), kafka_partition), \
                 kafka_offset = COALESCE(VALUES(kafka_offset), kafka_offset), \
                 hb_seq = VALUES(hb_seq), hb_ts_us = VALUES(hb_ts_us), hb_applied_us = VALUES(hb_applied_us)",
                params,
            )
            .await
            .map_err(|e| mysql_err(&self.s, "recording the heartbeat", e))?;
        self.commit().await?;
        // counts held back by the summary period are logged even when no data follows
        self.log_conflicts_if_due();
        self.applied.insert(origin.to_string(), cp.gtid.clone());
        let d = self.direction(origin);
        d.observe_lag(ts_us);
        Self::report_position(&d, cp, &self.transport_position);
        d.update(|st| {
            st.heartbeat_seq = Some(seq);
            if st.state != "paused" {
                st.state = "applying".into();
            }
        });
        // Clock skew (to − from) ≈ (lag from→to − lag to→from) / 2, from the lag the
        // origin measured last in the other direction.
        let back = lags
            .and_then(|l| serde_json::from_str::<BTreeMap<String, f64>>(&l).ok())
            .and_then(|m| m.get(&self.s.zone).copied());
        if let (Some(back), Some(here)) = (back, d.last_lag()) {
            d.metrics.clock_skew.set((here - back) / 2.0);
        }
        Ok(())
    }
}
