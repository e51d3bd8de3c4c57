//! The conflict log (`drc.conflicts`) and the per-zone ID-range check.

use super::*;

/// The incoming row a conflict-log entry is about.
#[derive(Clone, Copy)]
pub(super) struct Subject<'a> {
    pub(super) origin: &'a str,
    pub(super) tx: &'a Transaction,
    pub(super) t: &'a LocalTable,
    pub(super) key: &'a [MyValue],
    pub(super) row: &'a RowImage,
}

impl Applier {
    /// `JSON_OBJECT` of the local row: the canonical content for ties and the log.
    pub(super) async fn local_json(&mut self, t: &LocalTable, key: &[MyValue]) -> Result<Option<String>, Error> {
        let sql = format!(
            "SELECT {} FROM {} WHERE {}",
            t.json_object(),
            t.qualified(),
            t.pk_where()
        );
        let row: Option<Vec<u8>> = self
            .conn
            .exec_first(sql, key.to_vec())
            .await
            .map_err(|e| mysql_err(&self.s, "reading a local row", e))?;
        Ok(row.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// The canonical content of an incoming row, computed by the server exactly as for
    /// a stored row: the row is written to a temporary copy of the table and read back.
    pub(super) async fn incoming_json(
        &mut self,
        t: &LocalTable,
        img: &RowImage,
        key: &[MyValue],
    ) -> Result<Option<String>, Error> {
        // in the drc schema: the applier's session has no default database
        let tmp = format!(
            "`drc`.`drc_tie_{:08x}`",
            crc32fast::hash(format!("{}.{}", t.db, t.tbl).as_bytes())
        );
        let m = |e| mysql_err(&self.s, "computing a tie-break", e);
        self.conn
            .query_drop(format!(
                "CREATE TEMPORARY TABLE IF NOT EXISTS {tmp} LIKE {}",
                t.qualified()
            ))
            .await
            .map_err(m)?;
        self.conn
            .query_drop(format!("DELETE FROM {tmp}"))
            .await
            .map_err(|e| mysql_err(&self.s, "computing a tie-break", e))?;
        let cols: Vec<String> = img.columns.iter().map(|c| ident(c)).collect();
        let vals: Vec<MyValue> = img
            .values
            .iter()
            .map(bind)
            .collect::<Result<_, _>>()
            .map_err(|e| definite(&self.s, e))?;
        self.conn
            .exec_drop(
                format!(
                    "INSERT INTO {tmp} ({}) VALUES ({})",
                    cols.join(", "),
                    vec!["?"; cols.len()].join(", ")
                ),
                vals,
            )
            .await
            .map_err(|e| mysql_err(&self.s, "computing a tie-break", e))?;
        let sql = format!("SELECT {} FROM {tmp} WHERE {}", t.json_object(), t.pk_where());
        let row: Option<Vec<u8>> = self
            .conn
            .exec_first(sql, key.to_vec())
            .await
            .map_err(|e| mysql_err(&self.s, "computing a tie-break", e))?;
        Ok(row.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Whether `after`'s key lies in the ID range of zone `origin` (or the table or
    /// zone has no range).
    pub(super) fn in_range(&self, origin: &str, t: &LocalTable, after: &RowImage) -> bool {
        let Some(ranges) = self.s.id_ranges.get(origin) else {
            return true;
        };
        integer_key(t, after).is_none_or(|id| ranges.contains(id))
    }

    /// Whether the integer key of `after` lies in the ID range of a zone that is neither
    /// `origin` nor this one. With three zones or more, an update from `origin` of such a
    /// row can arrive here before its owner's insert (each zone reads each peer on its
    /// own): it is decided by last-writer-wins, and the owner's older insert loses to
    /// it when it comes.
    pub(super) fn owned_by_third_zone(&self, origin: &str, t: &LocalTable, after: &RowImage) -> bool {
        let Some(id) = integer_key(t, after) else {
            return false;
        };
        self.s
            .id_ranges
            .iter()
            .any(|(zone, r)| zone != origin && *zone != self.s.zone && r.contains(id))
    }

    /// For a change that creates key `after` here (an insert, a key-changing update, an
    /// update of a row this zone does not have): whether it may be written. A key
    /// outside the origin's ID range is logged, and quarantined unless the policy is
    /// `apply_and_log`.
    pub(super) async fn range_ok(
        &mut self,
        origin: &str,
        tx: &Transaction,
        t: &LocalTable,
        after: &RowImage,
    ) -> Result<bool, Error> {
        if self.in_range(origin, t, after) {
            return Ok(true);
        }
        let id = match after.get(&t.pk[0]) {
            Some(crate::model::Value::Int(i)) => i.to_string(),
            Some(crate::model::Value::UInt(u)) => u.to_string(),
            _ => String::new(),
        };
        let key = self.key_values(t, after)?;
        let reject = self.s.range_policy == RangePolicy::Reject;
        let detail = format!("key {id} is outside the ID range of zone {origin}");
        self.log_conflict(
            &Subject {
                origin,
                tx,
                t,
                key: &key,
                row: after,
            },
            (None, None),
            "id_out_of_range",
            if reject { "quarantined" } else { "applied_incoming" },
            Some(detail),
            None,
        )
        .await?;
        if reject {
            self.stats.quarantined += 1;
        }
        Ok(!reject)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn log_conflict(
        &mut self,
        subject: &Subject<'_>,
        (incoming_version, local_version): (Option<i128>, Option<i128>),
        kind: &str,
        resolution: &str,
        detail: Option<String>,
        fetched: Option<Option<String>>,
    ) -> Result<(), Error> {
        let Subject {
            origin,
            tx,
            t,
            key,
            row: incoming,
        } = *subject;
        self.stats.conflicts += 1;
        self.uncommitted
            .conflicts
            .push((format!("{}.{}", t.db, t.tbl), kind.to_string(), resolution.to_string()));
        if kind == "id_out_of_range" {
            self.uncommitted.id_range_violations += 1;
        }
        // the local row as it was before an applied write (fetched by the caller), or
        // as it is (kept)
        let local_row = match fetched {
            Some(row) => row,
            None if local_version.is_some() => self.local_json(t, key).await?,
            None => None,
        };
        let sql = format!(
            "INSERT INTO `drc`.`conflicts` (kind, resolution, db, tbl, pk, origin_zone, local_zone, origin_gtid, incoming_version, local_version, incoming_row, local_row, detail) \
             VALUES (?, ?, ?, ?, {}, ?, ?, ?, CAST(? AS DECIMAL(30,6)), CAST(? AS DECIMAL(30,6)), ?, ?, ?)",
            t.pk_json_params()
        );
        let mut p: Vec<MyValue> = vec![
            kind.into(),
            resolution.into(),
            t.db.as_str().into(),
            t.tbl.as_str().into(),
        ];
        p.extend(key.iter().cloned());
        p.push(origin.into());
        p.push(self.s.zone.as_str().into());
        p.push(tx.gtid.as_ref().map(|g| g.to_string()).into());
        p.push(incoming_version.map(format_decimal).into());
        p.push(local_version.map(format_decimal).into());
        p.push(serde_json::to_string(incoming).expect("row serializes").into());
        p.push(local_row.into());
        p.push(detail.into());
        self.conn
            .exec_drop(sql, p)
            .await
            .map_err(|e| mysql_err(&self.s, "writing drc.conflicts", e))
    }
}

/// The integer primary key of `row`, when the table has one.
fn integer_key(t: &LocalTable, row: &RowImage) -> Option<i128> {
    if !t.integer_pk() {
        return None;
    }
    match row.get(&t.pk[0]) {
        Some(crate::model::Value::Int(i)) => Some(*i as i128),
        Some(crate::model::Value::UInt(u)) => Some(*u as i128),
        _ => None,
    }
}
