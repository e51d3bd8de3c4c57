//! The durable position: `drc.applied` read at start, pinned on a first start, written with the rows of every (group of) origin transaction(s); the loop marker that opens every target transaction.

use super::*;

/// Key of an origin in `drc.applied` / `drc.marker` / `drc.heartbeat`: the zone, or
/// `zone/channel` when several daemons apply into one server.
pub fn channel_key(channel: &str, zone: &str) -> String {
    if channel.is_empty() {
        zone.to_string()
    } else {
        format!("{zone}/{channel}")
    }
}

/// The loop marker, the first write of every transaction drc writes into a zone
/// (the applier's, and `drc repair`'s and `drc seed`'s): parameters (origin key,
/// this zone, this zone's journal channel). Other zones' readers skip transactions that
/// write it; the row carries the journal's committed position as the transaction sees
/// it (its watermark: deletes the journal has not recorded yet are re-checked by the
/// journal against the transaction's inserts).
pub const LOOP_MARKER: &str = "INSERT INTO `drc`.`marker` (origin_zone, applier_zone, n, journal_file, journal_pos) \
     SELECT ?, ?, 1, w.f, w.p FROM (SELECT MAX(file) AS f, MAX(pos) AS p FROM `drc`.`journal` WHERE channel = ?) AS w \
     ON DUPLICATE KEY UPDATE n = n + 1, journal_file = VALUES(journal_file), journal_pos = VALUES(journal_pos)";

/// The applied position of an origin (this channel), with the count of its
/// transactions applied.
const WRITE_POSITION: &str = "INSERT INTO `drc`.`applied` (origin_zone, gtid, file, pos, kafka_topic, kafka_partition, kafka_offset, last_gtid, commit_ts_us, applied_txns) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
     ON DUPLICATE KEY UPDATE gtid = VALUES(gtid), file = VALUES(file), pos = VALUES(pos), last_gtid = VALUES(last_gtid), \
     commit_ts_us = VALUES(commit_ts_us), applied_txns = applied_txns + ?, \
     kafka_topic = COALESCE(VALUES(kafka_topic), kafka_topic), kafka_partition = COALESCE(VALUES(kafka_partition), kafka_partition), \
     kafka_offset = COALESCE(VALUES(kafka_offset), kafka_offset)";

impl Applier {
    /// Claims the application of `origin`'s transactions (this channel) into this
    /// server for the life of the applier's session ([`crate::mysql::claim`]): a
    /// second daemon doing the same is refused, naming the holder.
    pub async fn claim(&mut self, origin: &str) -> Result<(), Error> {
        let what = format!("applier of zone {}", self.s.channel_key(origin));
        crate::mysql::claim::claim(&mut self.conn, &what, &self.s.addr).await
    }

    /// The local server's current binlog end (what the journal must have read before
    /// this applier decides against its tombstones).
    /// Records that the journal has read this zone's binlog through `p` (the session's
    /// barrier was met).
    pub fn set_journal_through(&mut self, p: FilePos) {
        self.journal_through = Some(p);
    }

    pub async fn local_binlog_end(&mut self) -> Result<Option<FilePos>, Error> {
        crate::mysql::reader::live::master_status(&mut self.conn)
            .await
            .map_err(|e| mysql_err(&self.s, "reading the binlog position", e))
    }

    /// The stored position of `origin`: where its reader resumes.
    pub async fn applied_position(&mut self, origin: &str) -> Result<Option<Checkpoint>, Error> {
        let row: Option<(Option<String>, String, u64)> = self
            .conn
            .exec_first(
                "SELECT gtid, file, pos FROM `drc`.`applied` WHERE origin_zone = ?",
                (self.s.channel_key(origin),),
            )
            .await
            .map_err(|e| mysql_err(&self.s, "reading drc.applied", e))?;
        let cp = row.map(|(gtid, file, pos)| {
            let gtid = gtid.and_then(|g| serde_json::from_str::<GtidState>(&g).ok());
            Checkpoint {
                file: FilePos::new(file, pos),
                gtid,
            }
        });
        self.applied
            .insert(origin.to_string(), cp.as_ref().and_then(|c| c.gtid.clone()));
        Ok(cp)
    }

    /// Sets the Kafka topic/partition/offset of the fragment about to be applied; it is
    /// stored in `drc.applied` with the commit of its transaction.
    pub fn set_transport_position(&mut self, p: Option<crate::position::KafkaPosition>) {
        self.transport_position = p;
    }

    /// The Kafka topic and offset of the last applied message from `origin`.
    pub async fn applied_kafka_position(&mut self, origin: &str) -> Result<Option<(String, i64)>, Error> {
        let r: Option<(Option<String>, Option<i64>)> = self
            .conn
            .exec_first(
                "SELECT kafka_topic, kafka_offset FROM `drc`.`applied` WHERE origin_zone = ?",
                (self.s.channel_key(origin),),
            )
            .await
            .map_err(|e| mysql_err(&self.s, "reading drc.applied", e))?;
        Ok(match r {
            Some((Some(topic), Some(offset))) => Some((topic, offset)),
            _ => None,
        })
    }

    /// Records `cp` as the position of `origin` when none is stored yet, so that a
    /// restart before the first applied transaction resumes from the same place
    /// instead of a new "now".
    pub async fn pin_position(&mut self, origin: &str, cp: &Checkpoint) -> Result<(), Error> {
        let gtid = cp
            .gtid
            .as_ref()
            .map(|g| serde_json::to_string(g).expect("gtid serializes"));
        self.conn
            .exec_drop(
                "INSERT IGNORE INTO `drc`.`applied` (origin_zone, gtid, file, pos, applied_txns) VALUES (?, ?, ?, ?, 0)",
                (self.s.channel_key(origin), gtid, &cp.file.file, cp.file.pos),
            )
            .await
            .map_err(|e| mysql_err(&self.s, "writing drc.applied", e))?;
        self.applied.insert(origin.to_string(), cp.gtid.clone());
        Ok(())
    }

    /// The applied position, kept raw (formatted only when `/status` is read).
    pub(super) fn report_position(d: &Direction, cp: &Checkpoint, transport: &TransportPosition) {
        if let Some(k) = transport {
            d.metrics.applied_kafka_offset.set(k.offset as f64);
        }
        let kafka = transport.clone();
        d.update(|st| {
            st.position = Some(cp.clone());
            if kafka.is_some() {
                st.kafka = kafka;
            }
        });
    }

    /// A transaction without replicated rows: its position is recorded with the next
    /// applied transaction (positions only move forward).
    pub(super) fn note_position_only(&mut self, origin: &str, cp: &Checkpoint) {
        self.applied.insert(origin.to_string(), cp.gtid.clone());
    }

    /// Opens the target transaction for an origin transaction: the loop marker first,
    /// so this zone's reader recognises it as an applier transaction.
    /// Both in one round trip (START TRANSACTION and the marker with its values
    /// inlined, [`super::super::sql::inline`]).
    pub(super) async fn begin(&mut self, origin: &str) -> Result<(), Error> {
        // The marker row carries the journal's committed position as this transaction
        // sees it (its watermark): deletes the journal has not recorded yet are
        // re-checked by the journal against this transaction's inserts.
        let params: [MyValue; 3] = [
            self.s.channel_key(origin).into(),
            self.s.zone.as_str().into(),
            self.s.channel_key(&self.s.zone).into(),
        ];
        let marker = inline(LOOP_MARKER, &params).expect("marker parameters are strings");
        self.open = Some(origin.to_string());
        self.conn
            .query_drop(format!("START TRANSACTION; {marker}"))
            .await
            .map_err(|e| mysql_err(&self.s, "opening a transaction with the loop marker", e))
    }

    /// `origin_zone, gtid, file, pos, kafka_topic, kafka_partition, kafka_offset` of
    /// the position written into `drc.applied`.
    pub(super) fn position_params(&self, origin: &str, cp: &Checkpoint, transport: &TransportPosition) -> Vec<MyValue> {
        let gtid = cp
            .gtid
            .as_ref()
            .map(|g| serde_json::to_string(g).expect("gtid serializes"));
        let (kt, kp, ko) = match transport {
            Some(k) => (Some(k.topic.clone()), Some(k.partition), Some(k.offset)),
            None => (None, None, None),
        };
        vec![
            self.s.channel_key(origin).into(),
            gtid.into(),
            cp.file.file.as_str().into(),
            cp.file.pos.into(),
            kt.into(),
            kp.into(),
            ko.into(),
        ]
    }

    /// Records `last` (the last of `txns` origin transactions) as the position of
    /// `origin` and commits, in one round trip (the values inlined).
    pub(super) async fn write_position_and_commit(
        &mut self,
        origin: &str,
        last: &Pending,
        txns: u64,
    ) -> Result<(), Error> {
        let mut params = self.position_params(origin, &last.cp, &last.transport);
        params.extend([
            last.gtid.clone().into(),
            last.commit_ts_us.into(),
            txns.into(),
            txns.into(),
        ]);
        let Some(position) = inline(WRITE_POSITION, &params) else {
            self.write_position(origin, last, txns).await?;
            return self.commit().await;
        };
        self.conn
            .query_drop(format!("{position}; COMMIT"))
            .await
            .map_err(|e| mysql_err(&self.s, "writing drc.applied and committing", e))?;
        self.open = None;
        Ok(())
    }

    /// Records `last` (the last of `txns` origin transactions) as the position of `origin`.
    pub(super) async fn write_position(&mut self, origin: &str, last: &Pending, txns: u64) -> Result<(), Error> {
        let mut params = self.position_params(origin, &last.cp, &last.transport);
        params.extend([
            last.gtid.clone().into(),
            last.commit_ts_us.into(),
            txns.into(),
            txns.into(),
        ]);
        self.conn
            .exec_drop(WRITE_POSITION, params)
            .await
            .map_err(|e| mysql_err(&self.s, "writing drc.applied", e))
    }
}
