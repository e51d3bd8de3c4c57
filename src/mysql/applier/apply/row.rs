//! The row path: one origin row change decided by last-writer-wins (`lww::decide`) under a row lock and written, or quarantined.

use super::*;

/// The version of `img` in column `vcol` of `t`, as a comparable integer.
pub(super) fn version_in(s: &ApplierSettings, t: &LocalTable, vcol: &str, img: &RowImage) -> Result<i128, Error> {
    img.get(vcol).and_then(version_of).ok_or_else(|| {
        definite(
            s,
            format!(
                "`{}`.`{}`: version column `{vcol}` is NULL or not a DATETIME/TIMESTAMP/integer",
                t.db, t.tbl
            ),
        )
    })
}

pub use crate::mysql::applier::sql::format_decimal;

impl Applier {
    pub(super) fn check_image(&self, t: &LocalTable, img: &RowImage) -> Result<(), Error> {
        let same = img.columns.len() == t.columns.len() && img.columns.iter().zip(&t.columns).all(|(a, b)| **a == **b);
        if !same {
            let theirs: Vec<&str> = img.columns.iter().map(|c| &**c).collect();
            return Err(definite(
                &self.s,
                format!(
                    "table `{}`.`{}` differs between zones: the origin row has columns {:?}, zone {} has {:?}; make the tables identical (nothing of this transaction was applied, the position did not move)",
                    t.db, t.tbl, theirs, self.s.zone, t.columns
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn key_values(&self, t: &LocalTable, img: &RowImage) -> Result<Vec<MyValue>, Error> {
        t.pk.iter()
            .map(|c| {
                img.get(c)
                    .ok_or_else(|| definite(&self.s, format!("row image lacks key column `{c}`")))
                    .and_then(|v| bind(v).map_err(|e| definite(&self.s, e)))
            })
            .collect()
    }

    pub(super) async fn apply_row(&mut self, origin: &str, tx: &Transaction, r: &RowChange) -> Result<(), Error> {
        let t = self.fresh_table(r).await?;
        let r = &*self.conform_change(origin, &t, r).await?;
        if let Some(home) = self.s.global_home(&r.db, &r.table) {
            let home = home.to_string();
            return self.apply_global(origin, &home, tx, &t, r).await;
        }
        let Some(vcol) = t.version.clone() else {
            return self.apply_unversioned(origin, tx, &t, r).await;
        };
        let settings = self.s.clone();
        let version = |img: &RowImage| version_in(&settings, &t, &vcol, img);
        // a delete's version: its time, computed from the event the same way in every zone
        let clock = matches!(t.version_type.as_str(), "datetime" | "timestamp");
        // (a delete of the origin's journal undoes a row its appliers resurrected: it
        // is of that row's version, no time of its own)
        let journal = !self.counting;
        let deleted = |tx: &Transaction, r: &RowChange| {
            if journal {
                return r.before.as_ref().map_or_else(
                    || Err(definite(&settings, "a delete without a before image".into())),
                    version,
                );
            }
            let i = crate::mysql::applier::version::index_of(tx, r);
            crate::mysql::applier::version::delete_version(tx, i, r, &vcol, &t.pk, clock).ok_or_else(|| {
                definite(
                    &settings,
                    format!("`{}`.`{}`: the deleted row has no version `{vcol}`", t.db, t.tbl),
                )
            })
        };
        match r.op {
            Op::Insert => {
                let after = r.after.as_ref().expect("insert has an after image");
                let key = self.key_values(&t, after)?;
                self.write_row(origin, tx, &t, &key, after, version(after)?, None).await
            }
            Op::Update => {
                let (before, after) = (r.before.as_ref().expect("before"), r.after.as_ref().expect("after"));
                let (kb, ka) = (self.key_values(&t, before)?, self.key_values(&t, after)?);
                if kb != ka {
                    // a key change is a delete of the old key and a write of the new one
                    self.delete_row(origin, tx, &t, &kb, before, deleted(tx, r)?).await?;
                    return self.write_row(origin, tx, &t, &ka, after, version(after)?, None).await;
                }
                self.write_row(origin, tx, &t, &ka, after, version(after)?, Some(version(before)?))
                    .await
            }
            Op::Delete => {
                let before = r.before.as_ref().expect("delete has a before image");
                let kb = self.key_values(&t, before)?;
                self.delete_row(origin, tx, &t, &kb, before, deleted(tx, r)?).await
            }
        }
    }

    /// A table listed in `[replication] unversioned`: no version, so no conflict
    /// resolution; the origin's change is written as it is (upsert / delete).
    pub(super) async fn apply_unversioned(
        &mut self,
        origin: &str,
        tx: &Transaction,
        t: &LocalTable,
        r: &RowChange,
    ) -> Result<(), Error> {
        if let (Op::Update, Some(b), Some(a)) = (r.op, &r.before, &r.after) {
            let (kb, ka) = (self.key_values(t, b)?, self.key_values(t, a)?);
            if kb != ka {
                self.exec_plain(format!("DELETE FROM {} WHERE {}", t.qualified(), t.pk_where()), kb, t)
                    .await?;
            }
        }
        match (r.op, &r.after, &r.before) {
            (Op::Insert | Op::Update, Some(after), before) => {
                // the change creates its key here unless it updates a row kept under
                // the same key: then the key must be in the origin's range
                if !self.in_range(origin, t, after) {
                    let same_key = match before {
                        Some(b) => self.key_values(t, b)? == self.key_values(t, after)?,
                        None => false,
                    };
                    let creates = !same_key || !self.row_exists(t, after).await?;
                    // an update of a third zone's row whose insert has not arrived yet
                    let owners_insert_due = same_key && self.owned_by_third_zone(origin, t, after);
                    if creates && !owners_insert_due && !self.range_ok(origin, tx, t, after).await? {
                        return Ok(());
                    }
                }
                let cols: Vec<String> = after.columns.iter().map(|c| ident(c)).collect();
                let upd: Vec<String> = cols.iter().map(|c| format!("{c} = VALUES({c})")).collect();
                let sql = format!(
                    "INSERT INTO {} ({}) VALUES ({}) ON DUPLICATE KEY UPDATE {}",
                    t.qualified(),
                    cols.join(", "),
                    vec!["?"; cols.len()].join(", "),
                    upd.join(", ")
                );
                let vals: Vec<MyValue> = after
                    .values
                    .iter()
                    .map(bind)
                    .collect::<Result<_, _>>()
                    .map_err(|e| definite(&self.s, e))?;
                self.exec_plain(sql, vals, t).await
            }
            (Op::Delete, _, Some(before)) => {
                let key = self.key_values(t, before)?;
                self.exec_plain(format!("DELETE FROM {} WHERE {}", t.qualified(), t.pk_where()), key, t)
                    .await
            }
            _ => Ok(()),
        }
    }

    pub(super) async fn exec_plain(&mut self, sql: String, params: Vec<MyValue>, t: &LocalTable) -> Result<(), Error> {
        self.conn
            .exec_drop(sql, params)
            .await
            .map_err(|e| mysql_err(&self.s, &format!("writing a row of `{}`.`{}`", t.db, t.tbl), e))?;
        self.stats.rows += 1;
        Ok(())
    }

    /// Whether `t` has a row of `img`'s key (locked, as the write that follows).
    pub(super) async fn row_exists(&mut self, t: &LocalTable, img: &RowImage) -> Result<bool, Error> {
        let key = self.key_values(t, img)?;
        let sql = format!("SELECT 1 FROM {} WHERE {} FOR UPDATE", t.qualified(), t.pk_where());
        let row: Option<u8> = self
            .conn
            .exec_first(sql, key)
            .await
            .map_err(|e| mysql_err(&self.s, &format!("locking a row of `{}`.`{}`", t.db, t.tbl), e))?;
        Ok(row.is_some())
    }

    /// Locks the local row and the key's tombstone; returns their versions.
    pub(super) async fn lock_key(
        &mut self,
        t: &LocalTable,
        key: &[MyValue],
    ) -> Result<(Option<i128>, Option<i128>), Error> {
        let vcol = ident(t.version.as_ref().expect("version"));
        let on: Vec<String> = t.pk.iter().map(|c| format!("t.{} = ?", ident(c))).collect();
        // a TRUNCATE here (`drc.truncated`) is a tombstone of every key of a table
        // versioned by time
        let clock = matches!(t.version_type.as_str(), "datetime" | "timestamp");
        let (tomb, truncated) = if clock {
            (
                "CAST(GREATEST(IFNULL(x.version, y.version), IFNULL(y.version, x.version)) AS CHAR)",
                " LEFT JOIN `drc`.`truncated` AS y ON y.db = ? AND y.tbl = ?",
            )
        } else {
            ("CAST(x.version AS CHAR)", "")
        };
        let sql = format!(
            "SELECT CAST(t.{vcol} AS DECIMAL(30,6)), {tomb} FROM (SELECT 1 AS one) AS d \
             LEFT JOIN {tbl} AS t ON {on} \
             LEFT JOIN `drc`.`tombstones` AS x ON x.db = ? AND x.tbl = ? AND x.pk = {pk}{truncated} FOR UPDATE",
            tbl = t.qualified(),
            on = on.join(" AND "),
            pk = t.pk_json_params(),
        );
        let mut params: Vec<MyValue> = key.to_vec();
        params.push(MyValue::from(t.db.as_str()));
        params.push(MyValue::from(t.tbl.as_str()));
        params.extend(key.iter().cloned());
        if clock {
            params.push(MyValue::from(t.db.as_str()));
            params.push(MyValue::from(t.tbl.as_str()));
        }
        let row: Option<(Option<String>, Option<String>)> = self
            .conn
            .exec_first(sql, params)
            .await
            .map_err(|e| mysql_err(&self.s, &format!("locking a row of `{}`.`{}`", t.db, t.tbl), e))?;
        let (lv, tv) = row.unwrap_or((None, None));
        Ok((
            lv.as_deref().and_then(parse_decimal),
            tv.as_deref().and_then(parse_decimal),
        ))
    }

    /// Writes an incoming row image decided by last-writer-wins against the local
    /// row and the key's tombstone (read with a lock). A local insert of the same key
    /// that commits between that read (which locks nothing where no row is, under
    /// READ COMMITTED) and the write makes the write fail on the primary key: the row
    /// is then decided again against the row now there, as the batch path does.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn write_row(
        &mut self,
        origin: &str,
        tx: &Transaction,
        t: &LocalTable,
        key: &[MyValue],
        img: &RowImage,
        v: i128,
        before_version: Option<i128>,
    ) -> Result<(), Error> {
        const TRIES: usize = 5;
        for _ in 0..TRIES {
            if self.write_row_once(origin, tx, t, key, img, v, before_version).await? == Written::Done {
                return Ok(());
            }
        }
        Err(Error::Transient {
            addr: self.s.addr.clone(),
            what: format!(
                "a row of `{}`.`{}` met a local insert of its key {TRIES} times in a row; trying the transaction again",
                t.db, t.tbl
            ),
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_row_once(
        &mut self,
        origin: &str,
        tx: &Transaction,
        t: &LocalTable,
        key: &[MyValue],
        img: &RowImage,
        v: i128,
        before_version: Option<i128>,
    ) -> Result<Written, Error> {
        let (lv, tomb) = self.lock_key(t, key).await?;
        let subj = Subject {
            origin,
            tx,
            t,
            key,
            row: img,
        };
        let (mut lc, mut ic) = (String::new(), String::new());
        if lv == Some(v) {
            lc = self.local_json(t, key).await?.unwrap_or_default();
            ic = self.incoming_json(t, img, key).await?.unwrap_or_default();
        }
        let local = Local {
            row: lv.map(|x| (x, lc)),
            tombstone: tomb,
        };
        let action = decide(&local, &Incoming::Row(v, ic, before_version));
        // a write that creates the key here (an insert, a key change, an update of a
        // row this zone never had, e.g. one whose insert was quarantined): the key
        // must be in the origin's ID range. An update of a row deleted here (its
        // tombstone is older) brings back a row the zones had: not a new key.
        let creates = match action {
            Action::Insert => before_version.is_none() || tomb.is_none(),
            Action::Overwrite => before_version.is_none(),
            _ => false,
        };
        // An update of a row missing here, with no tombstone, whose key is outside the
        // origin's range: a row this zone never had (its insert quarantined), or one
        // deleted here whose tombstone the journal has not written yet (it lags under
        // load). Decided only once the journal has read this zone's binlog past the
        // moment the row was found missing: the session restarts (its barrier waits
        // for the journal), and the same key is then decided for good.
        if creates && before_version.is_some() && tomb.is_none() && !self.in_range(origin, t, img) {
            if let Some(through) = self.journal_through.clone() {
                let k = format!("{} {}.{} {:?}", self.s.channel, t.db, t.tbl, key);
                let due = undecided().lock().unwrap_or_else(|e| e.into_inner()).get(&k).cloned();
                match due {
                    Some(end) if through >= end => {
                        undecided().lock().unwrap_or_else(|e| e.into_inner()).remove(&k);
                    }
                    _ => {
                        if let Some(end) = self.local_binlog_end().await? {
                            let mut m = undecided().lock().unwrap_or_else(|e| e.into_inner());
                            if m.len() > 10_000 {
                                m.clear();
                            }
                            m.insert(k, end);
                            return Err(Error::Transient {
                                addr: self.s.addr.clone(),
                                what: format!(
                                    "an update from zone {origin} of a row of `{}`.`{}` missing here, with no tombstone yet, outside zone {origin}'s ID range: decided again once the journal has read this zone's latest deletes",
                                    t.db, t.tbl
                                ),
                            });
                        }
                    }
                }
            }
        }
        // Past that barrier, an update of a missing row that a third zone owns is its
        // owner's row whose insert has not arrived here yet: applied by last-writer-wins
        // (the owner's insert, older, loses when it comes), never quarantined.
        let owners_insert_due = before_version.is_some() && tomb.is_none() && self.owned_by_third_zone(origin, t, img);
        if creates && !owners_insert_due && !self.range_ok(origin, tx, t, img).await? {
            return Ok(Written::Done);
        }
        let vals: Vec<MyValue> = img
            .values
            .iter()
            .map(bind)
            .collect::<Result<_, _>>()
            .map_err(|e| definite(&self.s, e))?;
        // A concurrent change: the local row was not the one the origin changed.
        let concurrent = match (lv, before_version) {
            (Some(l), Some(b)) => l != b,
            (Some(_), None) => true, // an insert met an existing row
            (None, Some(_)) => true, // an update met a deleted row
            (None, None) => false,
        };
        // the local row a concurrent write overwrites, for the conflict log
        let overwritten = match (&action, concurrent, lv) {
            (Action::Insert | Action::Overwrite, true, Some(_)) => Some(self.local_json(t, key).await?),
            (Action::Insert | Action::Overwrite, true, None) => Some(None),
            _ => None,
        };
        let cols: Vec<String> = img.columns.iter().map(|c| ident(c)).collect();
        let result = match &action {
            Action::Insert => {
                let sql = format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    t.qualified(),
                    cols.join(", "),
                    vec!["?"; cols.len()].join(", ")
                );
                self.conn.exec_drop(sql, vals).await
            }
            Action::Overwrite => {
                let set: Vec<String> = cols.iter().map(|c| format!("{c} = ?")).collect();
                let sql = format!("UPDATE {} SET {} WHERE {}", t.qualified(), set.join(", "), t.pk_where());
                let mut p = vals;
                p.extend(key.iter().cloned());
                self.conn.exec_drop(sql, p).await
            }
            Action::Keep(Some(c)) => {
                self.log_conflict(&subj, (Some(v), lv.or(tomb)), c.as_str(), "kept_local", None, None)
                    .await?;
                return Ok(Written::Done);
            }
            _ => return Ok(Written::Done),
        };
        match result {
            Ok(()) => {
                self.stats.rows += 1;
                if concurrent {
                    let kind = if lv.is_some() {
                        "concurrent_update"
                    } else if owners_insert_due {
                        "update_before_insert"
                    } else {
                        "resurrected_after_delete"
                    };
                    self.log_conflict(
                        &subj,
                        (Some(v), lv.or(tomb)),
                        kind,
                        "applied_incoming",
                        None,
                        overwritten,
                    )
                    .await?;
                }
                Ok(Written::Done)
            }
            // A local insert of this key committed after our read: decide again.
            Err(mysql_async::Error::Server(e))
                if e.code == 1062 && matches!(action, Action::Insert) && on_primary_key(&e.message) =>
            {
                tracing::debug!(table = %format!("{}.{}", t.db, t.tbl), "a local insert of the key raced the applier's; deciding again");
                Ok(Written::Raced)
            }
            // A secondary unique key clashes with another local row, or a foreign key
            // fails: only this statement failed; the row is quarantined and the
            // transaction goes on.
            Err(mysql_async::Error::Server(e)) if quarantined_kind(e.code).is_some() => {
                let kind = quarantined_kind(e.code).expect("checked");
                self.log_conflict(&subj, (Some(v), lv), kind, "quarantined", Some(e.message.clone()), None)
                    .await?;
                Ok(Written::Done)
            }
            Err(e) => Err(mysql_err(
                &self.s,
                &format!("writing a row of `{}`.`{}`", t.db, t.tbl),
                e,
            )),
        }
    }

    pub(super) async fn delete_row(
        &mut self,
        origin: &str,
        tx: &Transaction,
        t: &LocalTable,
        key: &[MyValue],
        before: &RowImage,
        b: i128,
    ) -> Result<(), Error> {
        let (lv, tomb) = self.lock_key(t, key).await?;
        let subj = Subject {
            origin,
            tx,
            t,
            key,
            row: before,
        };
        let local = Local {
            row: lv.map(|x| (x, String::new())),
            tombstone: tomb,
        };
        let action = decide(&local, &Incoming::Delete(b));
        // the version of the row the origin deleted (`b` is the delete's own version,
        // its time): another local row means a concurrent change
        let deleted_version = t
            .version
            .as_ref()
            .and_then(|v| before.get(v))
            .and_then(version_of)
            .or(Some(b));
        let concurrent = lv != deleted_version;
        // the local row a concurrent delete removes, for the conflict log
        let removed = if matches!(action, Action::Delete) && concurrent {
            Some(self.local_json(t, key).await?)
        } else {
            None
        };
        if matches!(action, Action::Delete) {
            let r = self
                .conn
                .exec_drop(
                    format!("DELETE FROM {} WHERE {}", t.qualified(), t.pk_where()),
                    key.to_vec(),
                )
                .await;
            match r {
                // the row still has children here (inserted here while the origin
                // deleted the parent): only this statement failed; the delete is
                // quarantined and the transaction goes on (docs/CONFLICTS.md)
                Err(mysql_async::Error::Server(e)) if quarantined_kind(e.code).is_some() => {
                    let kind = quarantined_kind(e.code).expect("checked");
                    return self
                        .log_conflict(&subj, (Some(b), lv), kind, "quarantined", Some(e.message.clone()), None)
                        .await;
                }
                r => r.map_err(|e| mysql_err(&self.s, &format!("deleting a row of `{}`.`{}`", t.db, t.tbl), e))?,
            }
            self.stats.rows += 1;
            if concurrent {
                self.log_conflict(
                    &subj,
                    (Some(b), lv),
                    "concurrent_delete",
                    "applied_incoming",
                    None,
                    removed,
                )
                .await?;
            }
        }
        if matches!(action, Action::Delete | Action::Tombstone) {
            let sql = format!(
                "INSERT INTO `drc`.`tombstones` (db, tbl, pk, version) VALUES (?, ?, {}, CAST(? AS DECIMAL(30,6))) ON DUPLICATE KEY UPDATE version = GREATEST(version, VALUES(version))",
                t.pk_json_params()
            );
            let mut p: Vec<MyValue> = vec![MyValue::from(t.db.as_str()), MyValue::from(t.tbl.as_str())];
            p.extend(key.iter().cloned());
            p.push(MyValue::from(format_decimal(b)));
            self.conn
                .exec_drop(sql, p)
                .await
                .map_err(|e| mysql_err(&self.s, "recording a tombstone", e))?;
        }
        if let Action::Tombstone | Action::Keep(Some(_)) = action {
            if lv.is_some() {
                self.log_conflict(
                    &subj,
                    (Some(b), lv),
                    Conflict::RowNewerThanDelete.as_str(),
                    "kept_local",
                    None,
                    None,
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// What one attempt of [`Applier::write_row`] did.
/// Keys found missing (no row, no tombstone) by an update from another zone, with the
/// local binlog end when they were: decided for good once the journal has read past it.
fn undecided() -> &'static std::sync::Mutex<HashMap<String, FilePos>> {
    static M: std::sync::OnceLock<std::sync::Mutex<HashMap<String, FilePos>>> = std::sync::OnceLock::new();
    M.get_or_init(Default::default)
}

#[derive(Debug, PartialEq, Eq)]
enum Written {
    Done,
    /// A local insert of the key committed between the read and the write.
    Raced,
}

/// The conflict kind of a server error that fails only its statement and
/// quarantines the row (docs/CONFLICTS.md): a duplicate on a secondary unique key
/// (1062; one on the primary key is decided again first), a missing parent row (1452)
/// or remaining child rows (1451).
fn quarantined_kind(code: u16) -> Option<&'static str> {
    match code {
        1062 => Some("unique_key"),
        1451 | 1452 => Some("foreign_key"),
        _ => None,
    }
}

/// Whether a duplicate-key message (1062) names the primary key: MariaDB says
/// `for key 'PRIMARY'`, MySQL 8 `for key '<table>.PRIMARY'`.
fn on_primary_key(message: &str) -> bool {
    message.ends_with("'PRIMARY'") || message.ends_with(".PRIMARY'")
}

#[cfg(test)]
mod tests {
    #[test]
    fn duplicate_key_messages_of_both_flavors() {
        assert!(super::on_primary_key("Duplicate entry '5' for key 'PRIMARY'"));
        assert!(super::on_primary_key("Duplicate entry '5' for key 'orders.PRIMARY'"));
        assert!(!super::on_primary_key("Duplicate entry 'x' for key 'token'"));
        assert!(!super::on_primary_key("Duplicate entry 'x' for key 'orders.token'"));
    }
}
