//! SQL building blocks: identifier quoting and value binding. Values are always bound
//! as parameters, never spliced into SQL text; identifiers are quoted with backticks
//! (a backtick inside a name is doubled), so hostile names stay names.

use crate::model::Value;
use mysql_async::Value as MyValue;

/// `` `name` `` with inner backticks doubled. NUL cannot appear in a MySQL identifier.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `` `db`.`table` ``.
pub fn table(db: &str, tbl: &str) -> String {
    format!("{}.{}", ident(db), ident(tbl))
}

/// A string literal for DDL text (trigger bodies), where parameters cannot be used:
/// single quotes doubled and backslashes escaped.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// Binds a change-event value for the applier's session (utf8mb4, time_zone +00:00).
pub fn bind(v: &Value) -> Result<MyValue, String> {
    Ok(match v {
        Value::Null => MyValue::NULL,
        Value::Int(i) => MyValue::Int(*i),
        Value::UInt(u) => MyValue::UInt(*u),
        Value::Float(f) => MyValue::Float(*f),
        Value::Double(d) => MyValue::Double(*d),
        Value::Year(y) => MyValue::UInt(*y as u64),
        Value::Bit { value, .. } => MyValue::UInt(*value),
        Value::Enum { label: Some(l), .. } => MyValue::Bytes(l.as_bytes().to_vec()),
        Value::Enum { index, label: None } => MyValue::UInt(*index as u64),
        Value::Set { labels: Some(l), .. } => MyValue::Bytes(l.as_bytes().to_vec()),
        Value::Set { mask, labels: None } => MyValue::UInt(*mask),
        Value::Timestamp { secs, micros, fsp } => MyValue::Bytes(Value::timestamp_text(*secs, *micros, (*fsp).max(6)).into_bytes()),
        Value::Decimal(t) | Value::Date(t) | Value::DateTime(t) | Value::Time(t) | Value::Text(t) | Value::Json(t) => {
            MyValue::Bytes(t.as_bytes().to_vec())
        }
        Value::Bytes(b) => MyValue::Bytes(b.clone()),
        Value::JsonDiff(_) => {
            return Err("a MySQL partial JSON update (binlog_row_value_options=PARTIAL_JSON) cannot be applied; set binlog_row_value_options='' on the origin".into())
        }
    })
}

/// A version as a comparable integer: DATETIME/TIMESTAMP as `YYYYMMDDhhmmss` * 10^6 +
/// microseconds (what `CAST(v AS DECIMAL(30,6))` prints, scaled), integers * 10^6.
pub fn version_of(v: &Value) -> Option<i128> {
    match v {
        Value::Int(i) => Some(*i as i128 * 1_000_000),
        Value::UInt(u) => Some(*u as i128 * 1_000_000),
        Value::DateTime(t) | Value::Date(t) => parse_decimal_digits(&digits_of_datetime(t)),
        Value::Timestamp { secs, micros, .. } => {
            parse_decimal_digits(&digits_of_datetime(&Value::timestamp_text(*secs, *micros, 6)))
        }
        Value::Decimal(d) => parse_decimal(d),
        // values that crossed Kafka arrive as text: a DATETIME, or a number
        Value::Text(t) if t.len() >= 19 && t.as_bytes()[4] == b'-' => parse_decimal_digits(&digits_of_datetime(t)),
        Value::Text(t) => parse_decimal(t),
        _ => None,
    }
}

fn digits_of_datetime(t: &str) -> String {
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let mut d: String = whole.chars().filter(|c| c.is_ascii_digit()).collect();
    while d.len() < 14 {
        d.push('0');
    }
    format!("{d}.{frac}")
}

fn parse_decimal_digits(s: &str) -> Option<i128> {
    parse_decimal(s)
}

/// Units of 10^-6 back to decimal text.
pub fn format_decimal(v: i128) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    format!("{sign}{}.{:06}", a / 1_000_000, a % 1_000_000)
}

/// Parses `-123.45` into units of 10^-6.
pub fn parse_decimal(s: &str) -> Option<i128> {
    let s = s.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let whole: i128 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let mut f = frac.chars().take(6).collect::<String>();
    while f.len() < 6 {
        f.push('0');
    }
    let v = whole * 1_000_000 + f.parse::<i128>().ok()?;
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(ident("a`b"), "`a``b`");
        assert_eq!(table("d", "t`"), "`d`.`t```");
        assert_eq!(literal("it's a \\ test"), "'it''s a \\\\ test'");
    }

    #[test]
    fn versions_compare_like_the_server() {
        let a = version_of(&Value::DateTime("2026-01-02 03:04:05.000007".into())).unwrap();
        assert_eq!(a, 20_260_102_030_405_000_007);
        assert_eq!(parse_decimal("20260102030405.000007"), Some(a));
        let ts = version_of(&Value::Timestamp {
            secs: 1_000_000_000,
            micros: 1,
            fsp: 6,
        })
        .unwrap();
        assert_eq!(ts, 20_010_909_014_640_000_001);
        assert_eq!(version_of(&Value::Int(-3)), Some(-3_000_000));
        assert_eq!(parse_decimal("-1.5"), Some(-1_500_000));
        assert_eq!(version_of(&Value::Text("x".into())), None);
    }
}
