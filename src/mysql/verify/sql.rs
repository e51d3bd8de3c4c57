//! The statements `drc verify` runs in both zones: the same text and parameters on
//! each side, valid on MySQL 8 and MariaDB.

use crate::mysql::applier::sql::ident;
use mysql_async::Value;

/// `MD5(CONCAT_WS('#', CAST(`c` AS BINARY), …, CONCAT(ISNULL(`c`), …)))`: a row's
/// hash over every column (NULL told from the empty string by the flags; each value
/// as the server prints it, bytes as they are).
pub fn row_md5(columns: &[String]) -> String {
    let values: Vec<String> = columns
        .iter()
        .map(|c| format!("CAST({} AS BINARY)", ident(c)))
        .collect();
    let nulls: Vec<String> = columns.iter().map(|c| format!("ISNULL({})", ident(c))).collect();
    format!(
        "MD5(CONCAT_WS('#', {}, CONCAT({})))",
        values.join(", "),
        nulls.join(", ")
    )
}

/// The version column read as decimal text (`YYYYMMDDhhmmss.ffffff`, or the integer),
/// as `parse_decimal` reads versions; `None` without a version column.
pub fn version_text(t: &crate::mysql::applier::table::LocalTable) -> Option<String> {
    let v = ident(t.version.as_ref()?);
    Some(match t.version_type.as_str() {
        "datetime" | "timestamp" => format!("DATE_FORMAT({v}, '%Y%m%d%H%i%s.%f')"),
        _ => format!("CAST({v} AS CHAR)"),
    })
}

/// `` `a`, `b` `` of the key.
fn key_list(pk: &[String]) -> String {
    pk.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ")
}

/// `(?, ?)` for a key of `n` columns.
fn tuple(n: usize) -> String {
    format!("({})", vec!["?"; n].join(", "))
}

/// The predicate of the key range (`lo`, `hi`] and its parameters (`1 = 1`: the whole
/// table).
pub fn range(pk: &[String], lo: Option<&Vec<Value>>, hi: Option<&Vec<Value>>) -> (String, Vec<Value>) {
    let (mut parts, mut params) = (Vec::new(), Vec::new());
    let keys = format!("({})", key_list(pk));
    if let Some(lo) = lo {
        parts.push(format!("{keys} > {}", tuple(pk.len())));
        params.extend(lo.iter().cloned());
    }
    if let Some(hi) = hi {
        parts.push(format!("{keys} <= {}", tuple(pk.len())));
        params.extend(hi.iter().cloned());
    }
    if parts.is_empty() {
        parts.push("1 = 1".into());
    }
    (parts.join(" AND "), params)
}

/// The key `n` rows into the range (the chunk's last key), by the primary key's order.
pub fn boundary(table: &str, pk: &[String], range: &str, n: u64) -> String {
    let keys = key_list(pk);
    format!(
        "SELECT {keys} FROM {table} WHERE {range} ORDER BY {keys} LIMIT 1 OFFSET {}",
        n.saturating_sub(1)
    )
}

/// Rows of the range, and the XOR of their MD5s as two 64-bit halves.
pub fn chunk_checksum(table: &str, md5: &str, range: &str) -> String {
    format!(
        "SELECT COUNT(*), \
         COALESCE(BIT_XOR(CAST(CONV(SUBSTRING(h, 1, 16), 16, 10) AS UNSIGNED)), 0), \
         COALESCE(BIT_XOR(CAST(CONV(SUBSTRING(h, 17, 16), 16, 10) AS UNSIGNED)), 0) \
         FROM (SELECT {md5} AS h FROM {table} WHERE {range}) AS chunk"
    )
}

/// Every row of the range: its key and MD5.
pub fn row_hashes(table: &str, pk: &[String], md5: &str, range: &str) -> String {
    format!("SELECT {}, {md5} FROM {table} WHERE {range}", key_list(pk))
}

/// The rows of `keys` (those that exist): key and MD5; with the parameters.
pub fn key_hashes(table: &str, pk: &[String], md5: &str, keys: &[Vec<Value>]) -> (String, Vec<Value>) {
    let list = vec![tuple(pk.len()); keys.len()].join(", ");
    let q = format!("SELECT {0}, {md5} FROM {table} WHERE ({0}) IN ({list})", key_list(pk));
    (q, keys.iter().flatten().cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_for_a_composite_key() {
        let pk = vec!["a".to_string(), "b`c".to_string()];
        let lo = vec![Value::Int(1), Value::Bytes(b"x".to_vec())];
        let (r, p) = range(&pk, Some(&lo), None);
        assert_eq!(r, "(`a`, `b``c`) > (?, ?)");
        assert_eq!(p.len(), 2);
        assert_eq!(range(&pk, None, None).0, "1 = 1");
        assert_eq!(
            boundary("`d`.`t`", &pk, &r, 1000),
            "SELECT `a`, `b``c` FROM `d`.`t` WHERE (`a`, `b``c`) > (?, ?) ORDER BY `a`, `b``c` LIMIT 1 OFFSET 999"
        );
        assert_eq!(
            row_md5(&["x".into(), "y".into()]),
            "MD5(CONCAT_WS('#', CAST(`x` AS BINARY), CAST(`y` AS BINARY), CONCAT(ISNULL(`x`), ISNULL(`y`))))"
        );
        let (q, p) = key_hashes("`d`.`t`", &pk, "h", &[lo.clone(), lo]);
        assert!(q.ends_with("WHERE (`a`, `b``c`) IN ((?, ?), (?, ?))"), "{q}");
        assert_eq!(p.len(), 4);
    }
}
