//! Tombstones (`drc.tombstones`): a delete's version, kept so a late older write cannot resurrect the row.

use super::*;

impl Applier {
    /// A tombstone the triggers of an older drc wrote at the origin for a replicated
    /// table: it carries the origin's delete time, which the applier applies as the
    /// delete's version. (The journal's own tombstone rows are local: every zone
    /// computes a delete's version from the delete event, so they are not applied.)
    pub(super) fn tombstone_of_replicated(&self, r: &RowChange) -> bool {
        self.counting
            && &*r.db == "drc"
            && &*r.table == "tombstones"
            && matches!(r.after.as_ref().and_then(|a| a.get("db")), Some(crate::model::Value::Text(d)) if self.s.databases.iter().any(|x| x == d))
    }

    pub(super) async fn apply_tombstone(&mut self, origin: &str, tx: &Transaction, r: &RowChange) -> Result<(), Error> {
        use crate::model::Value as V;
        let img = r.after.as_ref().expect("tombstone row has an after image");
        let (Some(V::Text(db)), Some(V::Text(tbl)), Some(V::Text(pk)), Some(V::Decimal(v) | V::Text(v))) =
            (img.get("db"), img.get("tbl"), img.get("pk"), img.get("version"))
        else {
            return Err(definite(
                &self.s,
                format!("unexpected drc.tombstones row from zone {origin}: {:?}", img.values),
            ));
        };
        let Ok(t) = self.load_table(db, tbl).await? else {
            return Ok(()); // a table skipped here (see `Unfit`)
        };
        let parts: Vec<serde_json::Value> =
            serde_json::from_str(pk).map_err(|e| definite(&self.s, format!("tombstone key {pk:?}: {e}")))?;
        let key: Vec<MyValue> = parts
            .iter()
            .map(|p| match p {
                serde_json::Value::Number(n) => n
                    .as_i64()
                    .map(MyValue::Int)
                    .or_else(|| n.as_u64().map(MyValue::UInt))
                    .unwrap_or_else(|| MyValue::Double(n.as_f64().unwrap_or_default())),
                serde_json::Value::String(s) => MyValue::Bytes(s.as_bytes().to_vec()),
                other => MyValue::Bytes(other.to_string().into_bytes()),
            })
            .collect();
        if key.len() != t.pk.len() {
            return Err(definite(
                &self.s,
                format!("tombstone key {pk} does not match the key of `{db}`.`{tbl}`"),
            ));
        }
        let version = parse_decimal(v).ok_or_else(|| definite(&self.s, format!("tombstone version {v:?}")))?;
        self.delete_row(origin, tx, &t, &key, img, version).await
    }

    pub(super) async fn lock_tombstones(&mut self, t: &LocalTable, keys: &[&[i128]]) -> Result<KeyVersions, Error> {
        // Most tables have no tombstone at all (no deletes yet): one probe then saves
        // looking up every key. Called after the keys' rows are locked: a delete of
        // one of them (which writes its tombstone) has committed by then, so the
        // probe sees what the per-key locking lookup would.
        // The same probe reads this zone's last TRUNCATE of the table, a tombstone of
        // every key (tables versioned by time): one round trip.
        let clock = matches!(t.version_type.as_str(), "datetime" | "timestamp");
        let (any, truncated): (Option<u8>, Option<String>) = self
            .conn
            .exec_first(
                "SELECT (SELECT 1 FROM `drc`.`tombstones` WHERE db = ? AND tbl = ? LIMIT 1), \
                 (SELECT CAST(version AS CHAR) FROM `drc`.`truncated` WHERE db = ? AND tbl = ?)",
                (t.db.as_str(), t.tbl.as_str(), t.db.as_str(), t.tbl.as_str()),
            )
            .await
            .map_err(|e| mysql_err(&self.s, "reading tombstones", e))?
            .unwrap_or((None, None));
        let floor = truncated.as_deref().and_then(parse_decimal).filter(|_| clock);
        let with_floor = |mut tombs: KeyVersions| {
            if let Some(f) = floor {
                for k in keys {
                    let v = tombs.entry(k.to_vec()).or_insert(f);
                    *v = (*v).max(f);
                }
            }
            tombs
        };
        if any.is_none() {
            return Ok(with_floor(KeyVersions::new()));
        }
        let key_params: Vec<MyValue> = keys.iter().flat_map(|k| k.iter().map(|&x| int_param(x))).collect();
        let sql = format!(
            "SELECT pk, CAST(version AS CHAR) FROM `drc`.`tombstones` WHERE db = ? AND tbl = ? AND ({}) FOR UPDATE",
            // `=` as in the row path (MySQL does not support JSON values in IN())
            vec![format!("pk = {}", t.pk_json_params()); keys.len()].join(" OR ")
        );
        let mut p: Vec<MyValue> = vec![t.db.as_str().into(), t.tbl.as_str().into()];
        p.extend(key_params);
        let found: Vec<(String, String)> = self
            .conn
            .exec(sql, p)
            .await
            .map_err(|e| mysql_err(&self.s, "locking tombstones", e))?;
        let mut tombs = KeyVersions::new();
        for (pk, v) in found {
            let key: Option<Vec<i128>> = serde_json::from_str::<Vec<serde_json::Value>>(&pk)
                .ok()
                .and_then(|parts| {
                    parts
                        .iter()
                        .map(|p| p.as_i64().map(i128::from).or_else(|| p.as_u64().map(i128::from)))
                        .collect()
                });
            if let (Some(key), Some(v)) = (key, parse_decimal(&v)) {
                tombs.insert(key, v);
            }
        }
        Ok(with_floor(tombs))
    }
}
