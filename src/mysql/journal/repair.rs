//! The journal's writes into this zone: tombstones of local deletes, raises of local
//! writes that went back in version, undos of applier inserts a local delete beats.
//! Each is conditional on the row as the binlog showed it (key, content, version), so
//! running it twice, or after the row moved on, changes nothing it should not.

use super::{JournalSink, TableKey};
use crate::error::Error;
use crate::model::{RowImage, Transaction};
use crate::mysql::applier::sql::bind;
use crate::mysql::applier::table::LocalTable;
use crate::mysql::applier::version::{datetime_of_version, datetime_text};
use mysql_async::prelude::Queryable;
use mysql_async::Value as MyValue;

impl JournalSink {
    pub(super) async fn record_tombstone(&mut self, t: &LocalTable, before: &RowImage, x: i128) -> Result<(), Error> {
        self.begin().await?;
        let mut p: Vec<MyValue> = vec![t.db.as_str().into(), t.tbl.as_str().into()];
        p.extend(self.key_params(t, before)?);
        p.push(crate::mysql::applier::apply::format_decimal(x).into());
        self.conn
            .exec_drop(
                format!(
                    "INSERT INTO `drc`.`tombstones` (db, tbl, pk, version) VALUES (?, ?, {}, CAST(? AS DECIMAL(30,6))) \
                     ON DUPLICATE KEY UPDATE version = GREATEST(version, VALUES(version))",
                    t.pk_json_params()
                ),
                p,
            )
            .await
            .map_err(|e| self.err("recording a tombstone", e))?;
        self.counts[0] += 1;
        Ok(())
    }

    /// The key's tombstone, if any.
    pub(super) async fn tombstone(&mut self, t: &LocalTable, img: &RowImage) -> Result<Option<i128>, Error> {
        let mut p: Vec<MyValue> = vec![t.db.as_str().into(), t.tbl.as_str().into()];
        p.extend(self.key_params(t, img)?);
        let v: Option<String> = self
            .conn
            .exec_first(
                format!(
                    "SELECT CAST(version AS CHAR) FROM `drc`.`tombstones` WHERE db = ? AND tbl = ? AND pk = {}",
                    t.pk_json_params()
                ),
                p,
            )
            .await
            .map_err(|e| self.err("reading a tombstone", e))?;
        Ok(v.as_deref().and_then(crate::mysql::applier::sql::parse_decimal))
    }

    /// The row of `img`'s key, if it still is `img`'s content with a version not above
    /// `floor` (this write, or an identical one), gets `floor` plus the column's
    /// smallest step. Returns whether it did.
    pub(super) async fn raise(&mut self, t: &LocalTable, img: &RowImage, floor: i128) -> Result<bool, Error> {
        let vname = t.version.clone().expect("version");
        let (Some(base), Some(to)) = (
            datetime_of_version(floor),
            datetime_of_version(floor).map(|d| d + chrono::Duration::microseconds(t.version_step_us as i64)),
        ) else {
            tracing::warn!(db = %t.db, tbl = %t.tbl, floor, "version out of the DATETIME range: not raised");
            return Ok(true);
        };
        let (same, same_params) = t.same_content(img).map_err(|what| self.bad(what))?;
        self.begin().await?;
        let vcol = crate::mysql::applier::sql::ident(&vname);
        let mut p: Vec<MyValue> = vec![datetime_text(to).into()];
        p.extend(self.key_params(t, img)?);
        p.push(datetime_text(base).into());
        p.extend(same_params);
        self.conn
            .exec_drop(
                format!(
                    "UPDATE {} SET {vcol} = ? WHERE {} AND {vcol} <= ?{same}",
                    t.qualified(),
                    t.pk_where()
                ),
                p,
            )
            .await
            .map_err(|e| self.err(&format!("raising a row of `{}`.`{}`", t.db, t.tbl), e))?;
        let raised = self.conn.affected_rows() > 0;
        if raised {
            self.counts[1] += 1;
        }
        Ok(raised)
    }

    /// Deletes an applier insert (`v`) that the tombstone `x` beats — the row if it
    /// still has the insert's content and a version not above `x` (the journal may
    /// have raised it meanwhile) — and logs it as the conflict the applier would have
    /// logged.
    pub(super) async fn undo(
        &mut self,
        t: &LocalTable,
        img: &RowImage,
        v: i128,
        x: i128,
        origin: &str,
        tx: &Transaction,
    ) -> Result<bool, Error> {
        self.begin().await?;
        let vcol = crate::mysql::applier::sql::ident(t.version.as_ref().expect("version"));
        let key = self.key_params(t, img)?;
        let mut p = key.clone();
        p.push(crate::mysql::applier::apply::format_decimal(x).into());
        let (same, same_params) = t.same_content(img).map_err(|what| self.bad(what))?;
        p.extend(same_params);
        self.conn
            .exec_drop(
                format!(
                    "DELETE FROM {} WHERE {} AND CAST({vcol} AS DECIMAL(30,6)) <= CAST(? AS DECIMAL(30,6)){same}",
                    t.qualified(),
                    t.pk_where()
                ),
                p,
            )
            .await
            .map_err(|e| self.err(&format!("undoing a row of `{}`.`{}`", t.db, t.tbl), e))?;
        if self.conn.affected_rows() == 0 {
            return Ok(false);
        }
        self.counts[2] += 1;
        let mut p: Vec<MyValue> = vec![t.db.as_str().into(), t.tbl.as_str().into()];
        p.extend(key);
        p.extend([
            origin.split('/').next().unwrap_or(origin).into(),
            self.s.zone.as_str().into(),
            tx.gtid.as_ref().map(|g| g.to_string()).into(),
            crate::mysql::applier::apply::format_decimal(v).into(),
            crate::mysql::applier::apply::format_decimal(x).into(),
        ]);
        self.conn
            .exec_drop(
                format!(
                    "INSERT INTO `drc`.`conflicts` (kind, resolution, db, tbl, pk, origin_zone, local_zone, origin_gtid, incoming_version, local_version, detail) \
                     VALUES ('deleted_later', 'kept_local', ?, ?, {}, ?, ?, ?, CAST(? AS DECIMAL(30,6)), CAST(? AS DECIMAL(30,6)), \
                     'applied before the journal had recorded a local delete of the key; deleted again by the journal')",
                    t.pk_json_params()
                ),
                p,
            )
            .await
            .map_err(|e| self.err("logging a conflict", e))?;
        Ok(true)
    }

    /// Records that `k`'s next write must end above `floor` (its raise is pending).
    pub(super) async fn set_owed(&mut self, k: TableKey, floor: i128) -> Result<(), Error> {
        self.owed.insert(k.clone(), floor);
        self.save_pending(&k).await
    }

    /// Records that `k` was resurrected under the tombstone `x` (its undo is pending).
    pub(super) async fn set_resurrected(&mut self, k: TableKey, x: i128) -> Result<(), Error> {
        self.resurrected.insert(k.clone(), x);
        self.save_pending(&k).await
    }

    /// Settles `k`'s pending raise, returning it.
    pub(super) async fn take_owed(&mut self, k: &TableKey) -> Result<Option<i128>, Error> {
        let v = self.owed.remove(k);
        if v.is_some() {
            self.save_pending(k).await?;
        }
        Ok(v)
    }

    /// Settles `k`'s pending undo, returning its tombstone.
    pub(super) async fn take_resurrected(&mut self, k: &TableKey) -> Result<Option<i128>, Error> {
        let v = self.resurrected.remove(k);
        if v.is_some() {
            self.save_pending(k).await?;
        }
        Ok(v)
    }

    /// Writes `k`'s pending state into `drc.journal_pending`, in the open journal
    /// transaction: it commits with the position that covers it.
    async fn save_pending(&mut self, k: &TableKey) -> Result<(), Error> {
        self.publish_pending();
        self.begin().await?;
        let pk = serde_json::to_string(&k.2).expect("strings serialize");
        let dec = |v: Option<&i128>| v.map(|v| crate::mysql::applier::apply::format_decimal(*v));
        let (owed, resurrected) = (dec(self.owed.get(k)), dec(self.resurrected.get(k)));
        let r = if owed.is_none() && resurrected.is_none() {
            self.conn
                .exec_drop(
                    "DELETE FROM `drc`.`journal_pending` WHERE channel = ? AND db = ? AND tbl = ? AND pk = ?",
                    (self.channel.as_str(), &k.0, &k.1, &pk),
                )
                .await
        } else {
            self.conn
                .exec_drop(
                    "INSERT INTO `drc`.`journal_pending` (channel, db, tbl, pk, owed, resurrected) \
                     VALUES (?, ?, ?, ?, CAST(? AS DECIMAL(30,6)), CAST(? AS DECIMAL(30,6))) \
                     ON DUPLICATE KEY UPDATE owed = VALUES(owed), resurrected = VALUES(resurrected)",
                    (self.channel.as_str(), &k.0, &k.1, &pk, owed, resurrected),
                )
                .await
        };
        r.map_err(|e| self.err("writing drc.journal_pending", e))
    }

    /// Reads the pending raises and undos a previous run committed (at start).
    pub async fn load_pending(&mut self) -> Result<(), Error> {
        type Pending = (String, String, String, Option<String>, Option<String>);
        let rows: Vec<Pending> = self
            .conn
            .exec(
                "SELECT db, tbl, pk, CAST(owed AS CHAR), CAST(resurrected AS CHAR) FROM `drc`.`journal_pending` WHERE channel = ?",
                (self.channel.as_str(),),
            )
            .await
            .map_err(|e| self.err("reading drc.journal_pending", e))?;
        let dec = |v: Option<String>| v.as_deref().and_then(crate::mysql::applier::sql::parse_decimal);
        for (db, tbl, pk, owed, resurrected) in rows {
            let Ok(key) = serde_json::from_str::<Vec<String>>(&pk) else {
                tracing::warn!(db, tbl, pk, "unreadable key in drc.journal_pending: ignored");
                continue;
            };
            let k = (db, tbl, key);
            if let Some(v) = dec(owed) {
                self.owed.insert(k.clone(), v);
            }
            if let Some(v) = dec(resurrected) {
                self.resurrected.insert(k, v);
            }
        }
        self.publish_pending();
        if !self.owed.is_empty() || !self.resurrected.is_empty() {
            tracing::info!(
                owed = self.owed.len(),
                resurrected = self.resurrected.len(),
                "journal resumes pending raises and undos"
            );
        }
        Ok(())
    }

    pub(super) fn key_params(&self, t: &LocalTable, img: &RowImage) -> Result<Vec<MyValue>, Error> {
        t.pk.iter()
            .map(|c| {
                img.get(c)
                    .map(bind)
                    .transpose()
                    .map_err(|what| self.bad(what))?
                    .ok_or_else(|| self.bad(format!("a row image of `{}`.`{}` lacks key column `{c}`", t.db, t.tbl)))
            })
            .collect()
    }
}
