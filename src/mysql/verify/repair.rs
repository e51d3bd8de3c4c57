//! `drc repair`: settles the keys `drc verify` found different with the applier's own
//! last-writer-wins rule (docs/CONFLICTS.md), so the zones end as if replication had
//! carried every write.
//!
//! # The decision, per key
//! From both zones: the row (its version and `JSON_OBJECT` text) and the tombstone of
//! the key (`drc.tombstones`). The greatest (version, content) row is the candidate;
//! a tombstone at or above its version (the greatest of both zones') makes the key a
//! delete (rules 1, 3 and 4). A row missing in a zone without a tombstone there is a
//! missing insert, not a delete. Tables without the version column are not repaired
//! (their rows have no version to compare): reported.
//!
//! # The writes
//! Each zone that differs from the winner gets one transaction: the loop marker first
//! (`drc.marker`, origin `repair`, with the journal's watermark, exactly as an applier
//! transaction: the peer's reader never ships it back, this zone's journal treats it
//! as drc's), the row re-read `FOR UPDATE` and written only if it is still what was
//! decided on (else left for the next verify), the upsert or the delete (and its
//! tombstone), and a `drc.conflicts` row (`kind = 'repair'`).
//! Without `apply` nothing is written: the statements are returned for printing. A fix
//! that deadlocks with the applier is rolled back and reported as not applied (exit 3:
//! run the repair again).

use super::{Key, KeyDiff, Side};
use crate::mysql::applier::apply::LOOP_MARKER;
use crate::mysql::applier::sql::{format_decimal, ident, parse_decimal};
use crate::mysql::applier::table::LocalTable;
use mysql_async::prelude::Queryable;
use mysql_async::{Params, Row, Value};

/// One zone's state of a key.
#[derive(Debug, Clone)]
struct State {
    /// (column values, version, JSON_OBJECT text) of the row.
    row: Option<(Vec<Value>, i128, String)>,
    tombstone: Option<i128>,
}

/// What repairing one key did (or would do, in a dry run).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Fix {
    /// The zone written.
    pub zone: String,
    /// `upsert` (the winner's row) or `delete`.
    pub action: String,
    /// The zone whose write wins (for a delete: the zone holding the tombstone).
    pub winner: String,
    /// The statement, values inline (for reading; the real one binds them).
    pub statement: String,
    /// Written (false in a dry run, or when the row changed meanwhile).
    pub applied: bool,
    /// Why it was not applied, if it was not.
    pub note: Option<String>,
}

fn err(side: &Side, what: &str, e: mysql_async::Error) -> crate::error::Error {
    crate::mysql::error::classify(&side.addr, what, e)
}

async fn state(
    side: &mut Side,
    t: &LocalTable,
    vsql: &str,
    key: &Key,
    lock: bool,
) -> Result<State, crate::error::Error> {
    let cols: Vec<String> = t.columns.iter().map(|c| ident(c)).collect();
    let q = format!(
        "SELECT {}, {vsql}, {} FROM {} WHERE {}{}",
        cols.join(", "),
        t.json_object(),
        t.qualified(),
        t.pk_where(),
        if lock { " FOR UPDATE" } else { "" }
    );
    let row: Option<Row> = side
        .conn
        .exec_first(&q, Params::Positional(key.clone()))
        .await
        .map_err(|e| err(side, "reading a differing row", e))?;
    let row = match row {
        None => None,
        Some(r) => {
            let mut v = r.unwrap();
            let json = match v.pop() {
                Some(Value::Bytes(b)) => String::from_utf8_lossy(&b).into_owned(),
                other => format!("{other:?}"),
            };
            let version = match v.pop() {
                Some(Value::Bytes(b)) => parse_decimal(&String::from_utf8_lossy(&b)),
                _ => None,
            }
            .ok_or_else(|| crate::error::Error::Server {
                addr: side.addr.clone(),
                what: format!("{}: a row's version column is NULL or not a version", t.qualified()),
            })?;
            Some((v, version, json))
        }
    };
    let q = format!(
        "SELECT CAST(version AS CHAR) FROM `drc`.`tombstones` WHERE db = ? AND tbl = ? AND pk = {}{}",
        t.pk_json_params(),
        if lock { " FOR UPDATE" } else { "" }
    );
    let mut params = vec![Value::from(&t.db), Value::from(&t.tbl)];
    params.extend(key.iter().cloned());
    let tomb: Option<String> = side
        .conn
        .exec_first(&q, Params::Positional(params))
        .await
        .map_err(|e| err(side, "reading a tombstone", e))?;
    Ok(State {
        row,
        tombstone: tomb.as_deref().and_then(parse_decimal),
    })
}

/// What the key should be: `Some(zone index)` of the winning row, or `None`: deleted
/// (with the tombstone version).
fn decide(states: &[State; 2]) -> (Option<usize>, Option<i128>) {
    let best = states
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.row.as_ref().map(|(_, v, j)| (*v, j.clone(), i)))
        .max();
    let tomb = states.iter().filter_map(|s| s.tombstone).max();
    match (best, tomb) {
        (Some((v, _, _)), Some(t)) if t >= v => (None, Some(t)),
        (None, t) => (None, t),
        (Some((_, _, i)), t) => (Some(i), t),
    }
}

/// Repairs the differing `keys` of table `t` between `sides` (`apply`: write; else a
/// dry run).
pub async fn repair_keys(
    sides: &mut [Side; 2],
    t: &LocalTable,
    keys: &[KeyDiff],
    apply: bool,
) -> Result<Vec<Fix>, crate::error::Error> {
    let Some(vsql) = super::sql::version_text(t) else {
        return Ok(Vec::new());
    };
    let mut fixes = Vec::new();
    for d in keys {
        let states = [
            state(&mut sides[0], t, &vsql, &d.key, false).await?,
            state(&mut sides[1], t, &vsql, &d.key, false).await?,
        ];
        let (winner, tomb) = decide(&states);
        let winner_zone = match winner {
            Some(w) => sides[w].zone.clone(),
            None => {
                // the zone holding the greatest tombstone
                let i = if states[0].tombstone >= states[1].tombstone {
                    0
                } else {
                    1
                };
                sides[i].zone.clone()
            }
        };
        for z in 0..2 {
            let target = &states[z];
            let wanted_json = winner.and_then(|w| states[w].row.as_ref().map(|r| r.2.clone()));
            let current_json = target.row.as_ref().map(|r| r.2.clone());
            if wanted_json == current_json {
                continue;
            }
            let fix = write(
                &mut sides[z],
                t,
                &vsql,
                &d.key,
                winner.map(|w| &states[w]),
                tomb,
                target,
                &winner_zone,
                apply,
            )
            .await?;
            fixes.push(fix);
        }
    }
    Ok(fixes)
}

/// Writes the winner (`row`, or a delete with tombstone `tomb`) into `side`, whose
/// state was `was`, in one marked transaction.
#[allow(clippy::too_many_arguments)]
async fn write(
    side: &mut Side,
    t: &LocalTable,
    vsql: &str,
    key: &Key,
    row: Option<&State>,
    tomb: Option<i128>,
    was: &State,
    winner: &str,
    apply: bool,
) -> Result<Fix, crate::error::Error> {
    let table = t.qualified();
    let cols: Vec<String> = t.columns.iter().map(|c| ident(c)).collect();
    let (statement, params, action, incoming) = match row.and_then(|s| s.row.as_ref()) {
        Some((values, version, json)) => {
            let set: Vec<String> = cols.iter().map(|c| format!("{c} = VALUES({c})")).collect();
            let q = format!(
                "INSERT INTO {table} ({}) VALUES ({}) ON DUPLICATE KEY UPDATE {}",
                cols.join(", "),
                vec!["?"; cols.len()].join(", "),
                set.join(", ")
            );
            (q, values.clone(), "upsert", (Some(*version), Some(json.clone())))
        }
        None => (
            format!("DELETE FROM {table} WHERE {}", t.pk_where()),
            key.clone(),
            "delete",
            (tomb, None),
        ),
    };
    let shown = inline(&statement, &params);
    let mut fix = Fix {
        zone: side.zone.clone(),
        action: action.into(),
        winner: winner.into(),
        statement: shown,
        applied: false,
        note: None,
    };
    if !apply {
        return Ok(fix);
    }
    let addr = side.addr.clone();
    let m = |e| crate::mysql::error::classify(&addr, "repairing a row", e);
    let c = &mut side.conn;
    c.query_drop("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'")
        .await
        .map_err(m)?;
    c.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .await
        .map_err(m)?;
    c.query_drop("START TRANSACTION").await.map_err(m)?;
    let channel = side.key.clone();
    let r = async {
        side.conn
            .exec_drop(LOOP_MARKER, ("repair", &side.zone, &channel))
            .await?;
        // still what was decided on?
        let now = state(side, t, vsql, key, true).await.map_err(|e| mysql_async::Error::Other(e.to_string().into()))?;
        if now.row.as_ref().map(|r| &r.2) != was.row.as_ref().map(|r| &r.2) {
            return Ok(Some("the row changed since it was compared: left for the next verify".to_string()));
        }
        side.conn.exec_drop(&statement, Params::Positional(params)).await?;
        if let (None, Some(v)) = (row, tomb) {
            let q = format!(
                "INSERT INTO `drc`.`tombstones` (db, tbl, pk, version) VALUES (?, ?, {}, CAST(? AS DECIMAL(30,6))) \
                 ON DUPLICATE KEY UPDATE version = GREATEST(version, VALUES(version))",
                t.pk_json_params()
            );
            let mut p = vec![Value::from(&t.db), Value::from(&t.tbl)];
            p.extend(key.iter().cloned());
            p.push(Value::from(format_decimal(v)));
            side.conn.exec_drop(&q, Params::Positional(p)).await?;
        }
        let pk_json = format!("JSON_ARRAY({})", vec!["?"; key.len()].join(", "));
        let q = format!(
            "INSERT INTO `drc`.`conflicts` (kind, resolution, db, tbl, pk, origin_zone, local_zone, incoming_version, local_version, incoming_row, local_row, detail) \
             VALUES ('repair', 'repaired', ?, ?, {pk_json}, ?, ?, CAST(? AS DECIMAL(30,6)), CAST(? AS DECIMAL(30,6)), ?, ?, ?)"
        );
        let mut p = vec![Value::from(&t.db), Value::from(&t.tbl)];
        p.extend(key.iter().cloned());
        p.extend([
            Value::from(winner),
            Value::from(&side.zone),
            incoming.0.map(|v| Value::from(format_decimal(v))).unwrap_or(Value::NULL),
            was.row.as_ref().map(|r| Value::from(format_decimal(r.1))).unwrap_or(Value::NULL),
            incoming.1.map(Value::from).unwrap_or(Value::NULL),
            was.row.as_ref().map(|r| Value::from(r.2.clone())).unwrap_or(Value::NULL),
            Value::from(format!("drc repair: {action} with zone {winner}'s write (last writer wins)")),
        ]);
        side.conn.exec_drop(&q, Params::Positional(p)).await?;
        Ok::<Option<String>, mysql_async::Error>(None)
    }
    .await;
    match r {
        Ok(None) => {
            side.conn
                .query_drop("COMMIT")
                .await
                .map_err(|e| err(side, "committing a repair", e))?;
            fix.applied = true;
        }
        Ok(Some(note)) => {
            side.conn
                .query_drop("ROLLBACK")
                .await
                .map_err(|e| err(side, "rolling back", e))?;
            fix.note = Some(note);
        }
        // a deadlock or lock wait with the applier: this key is left for the next run
        Err(mysql_async::Error::Server(e)) if matches!(e.code, 1213 | 1205) => {
            let _ = side.conn.query_drop("ROLLBACK").await;
            fix.note = Some(format!(
                "{} (the applier holds the row): run drc repair again",
                e.message
            ));
        }
        Err(e) => {
            let _ = side.conn.query_drop("ROLLBACK").await;
            return Err(err(side, "repairing a row", e));
        }
    }
    Ok(fix)
}

/// `statement` with its `?` replaced by the values as SQL literals (for reading).
fn inline(statement: &str, params: &[Value]) -> String {
    let mut out = String::new();
    let mut it = params.iter();
    for (i, part) in statement.split('?').enumerate() {
        if i > 0 {
            out += &it.next().map_or("?".into(), |v| v.as_sql(false));
        }
        out += part;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(row: Option<(i128, &str)>, tomb: Option<i128>) -> State {
        State {
            row: row.map(|(v, j)| (Vec::new(), v, j.to_string())),
            tombstone: tomb,
        }
    }

    #[test]
    fn the_greatest_write_wins_deletes_included() {
        // the later row
        assert_eq!(
            decide(&[st(Some((5, "x")), None), st(Some((7, "y")), None)]),
            (Some(1), None)
        );
        // equal versions: the greater content, the same in every zone
        assert_eq!(
            decide(&[st(Some((5, "b")), None), st(Some((5, "a")), None)]),
            (Some(0), None)
        );
        // a missing row without a tombstone is a missing insert
        assert_eq!(decide(&[st(Some((5, "x")), None), st(None, None)]), (Some(0), None));
        // a tombstone at or above the row's version: deleted (a tie goes to the delete)
        assert_eq!(decide(&[st(Some((5, "x")), None), st(None, Some(5))]), (None, Some(5)));
        // a row newer than the delete stands
        assert_eq!(
            decide(&[st(Some((6, "x")), None), st(None, Some(5))]),
            (Some(0), Some(5))
        );
    }

    #[test]
    fn statements_print_with_their_values() {
        assert_eq!(
            inline(
                "DELETE FROM t WHERE `id` = ? AND `k` = ?",
                &[Value::Int(3), Value::from("o'k")]
            ),
            "DELETE FROM t WHERE `id` = 3 AND `k` = 'o\\'k'"
        );
    }
}
