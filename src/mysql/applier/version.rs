//! Versions as DATETIME values, and the version of a delete.
//!
//! A delete's version is its time, never less than the version of the row it removed,
//! and it must be the same number in every zone: each zone computes it from the delete
//! event itself (no zone's clock involved). The time is the origin's exact commit time
//! when the binlog has one (MySQL 8 `original_commit_timestamp`), else the end of the
//! event's header second (MariaDB logs whole seconds): an upper bound, so a delete
//! always beats an update older than it. A write of the same key later in the same
//! transaction happened after the delete: the delete's version stays below it
//! (delete-then-insert, REPLACE, remain an insert that wins).

use crate::model::{Change, RowChange, RowImage, Transaction, TsSource, Value};
use crate::mysql::applier::sql::version_of;
use chrono::{NaiveDate, NaiveDateTime};

/// The version of the delete `r` (the `i`-th change of `tx`) of a row whose version
/// column is `vcol` and key columns `pk`; `clock`: the column is a DATETIME/TIMESTAMP
/// (an integer version is the application's: the deleted row's version as it is).
pub fn delete_version(
    tx: &Transaction,
    i: usize,
    r: &RowChange,
    vcol: &str,
    pk: &[String],
    clock: bool,
) -> Option<i128> {
    let before = r.before.as_ref()?;
    let removed = before.get(vcol).and_then(version_of)?;
    if !clock {
        return Some(removed);
    }
    let us = match tx.ts_source {
        TsSource::OriginalCommit => tx.commit_ts_us,
        TsSource::ArrivalRefined | TsSource::HeaderSeconds => r.ts as i64 * 1_000_000 + 999_999,
    };
    let at = version_of(&Value::Timestamp {
        secs: us.div_euclid(1_000_000),
        micros: us.rem_euclid(1_000_000) as u32,
        fsp: 6,
    })?;
    let same_key = |a: &RowImage| pk.iter().all(|c| a.get(c).is_some() && a.get(c) == before.get(c));
    let later = tx.changes.iter().skip(i + 1).filter_map(|c| match c {
        Change::Row(w) if w.db == r.db && w.table == r.table => w.after.as_ref().filter(|a| same_key(a)),
        _ => None,
    });
    let cap = later
        .filter_map(|a| a.get(vcol).and_then(version_of))
        .filter(|v| *v > removed)
        .min()
        .and_then(previous_instant);
    Some(removed.max(cap.map_or(at, |c| at.min(c))))
}

/// A DATETIME version (`YYYYMMDDhhmmss.ffffff` in units of 10^-6) as a date and time.
pub fn datetime_of_version(v: i128) -> Option<NaiveDateTime> {
    let (whole, micros) = (v.div_euclid(1_000_000), v.rem_euclid(1_000_000) as u32);
    let n = |div: i128, m: i128| ((whole / div) % m) as u32;
    NaiveDate::from_ymd_opt((whole / 10_000_000_000) as i32, n(100_000_000, 100), n(1_000_000, 100))?.and_hms_micro_opt(
        n(10_000, 100),
        n(100, 100),
        n(1, 100),
        micros,
    )
}

/// `YYYY-MM-DD hh:mm:ss.ffffff`.
pub fn datetime_text(d: NaiveDateTime) -> String {
    d.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// The DATETIME version one microsecond before `v`.
pub fn previous_instant(v: i128) -> Option<i128> {
    let d = datetime_of_version(v)? - chrono::Duration::microseconds(1);
    version_of(&Value::DateTime(datetime_text(d)))
}

/// Index of the change `r` in `tx` (by address).
pub fn index_of(tx: &Transaction, r: &RowChange) -> usize {
    tx.changes
        .iter()
        .position(|c| matches!(c, Change::Row(x) if std::ptr::eq(x, r)))
        .unwrap_or(tx.changes.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Op;
    use std::sync::Arc;

    fn image(id: i64, at: &str) -> RowImage {
        RowImage {
            columns: Arc::from(vec![Arc::<str>::from("id"), Arc::from("updated_at")]),
            positions: None,
            values: vec![Value::Int(id), Value::DateTime(at.into())],
        }
    }

    fn tx(ts_source: TsSource, commit_ts_us: i64, changes: Vec<Change>) -> Transaction {
        Transaction::sample(ts_source, commit_ts_us, changes)
    }

    fn row(op: Op, before: Option<RowImage>, after: Option<RowImage>) -> Change {
        Change::Row(RowChange {
            db: "shop".into(),
            table: "orders".into(),
            op,
            pk: Arc::from(Vec::<Arc<str>>::new()),
            before,
            after,
            pos: 0,
            ts: 1_700_000_000, // 2023-11-14 22:13:20
        })
    }

    fn at(v: i128) -> String {
        datetime_text(datetime_of_version(v).unwrap())
    }

    #[test]
    fn a_delete_is_its_time_never_below_the_row_and_below_a_later_write() {
        let pk = ["id".to_string()];
        let del = row(Op::Delete, Some(image(1, "2023-11-14 22:13:19.5")), None);
        let Change::Row(r) = &del else { unreachable!() };
        let t = tx(TsSource::HeaderSeconds, 0, vec![del.clone()]);
        assert_eq!(
            at(delete_version(&t, 0, r, "updated_at", &pk, true).unwrap()),
            "2023-11-14 22:13:20.999999",
            "end of the second"
        );
        let t = tx(TsSource::OriginalCommit, 1_700_000_000_250_000, vec![del.clone()]);
        assert_eq!(
            at(delete_version(&t, 0, r, "updated_at", &pk, true).unwrap()),
            "2023-11-14 22:13:20.250000",
            "exact"
        );
        let future = row(Op::Delete, Some(image(1, "2030-01-01 00:00:00")), None);
        let Change::Row(f) = &future else { unreachable!() };
        let t = tx(TsSource::HeaderSeconds, 0, vec![future.clone()]);
        assert_eq!(
            at(delete_version(&t, 0, f, "updated_at", &pk, true).unwrap()),
            "2030-01-01 00:00:00.000000",
            "never below the row"
        );
        // delete then insert of the key in one transaction: the insert stays greater
        let ins = row(Op::Insert, None, Some(image(1, "2023-11-14 22:13:20.4")));
        let t = tx(TsSource::HeaderSeconds, 0, vec![del.clone(), ins]);
        assert_eq!(
            at(delete_version(&t, 0, r, "updated_at", &pk, true).unwrap()),
            "2023-11-14 22:13:20.399999"
        );
        // an integer version: the row's
        assert_eq!(
            delete_version(&t, 0, r, "id", &pk, false),
            Some(1_000_000),
            "BIGINT versions are the application's"
        );
        assert_eq!(
            at(previous_instant(version_of(&Value::DateTime("2026-12-06 03:45:00".into())).unwrap()).unwrap()),
            "2026-12-06 03:44:59.999999"
        );
        assert_eq!(datetime_of_version(20_261_306_000_000_000_000), None, "month 13");
    }
}
