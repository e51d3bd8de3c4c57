//! SQL building blocks: identifier quoting and value binding. Row values (the
//! application's data) are always bound as parameters or sent as `LOAD DATA` text,
//! never spliced into SQL; identifiers are quoted with backticks (a backtick inside a
//! name is doubled), so hostile names stay names. drc's own bookkeeping values
//! (zone and channel names, positions) may be written as escaped literals
//! ([`inline`]) where that saves a round trip: a statement and its COMMIT sent as one.

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

/// `sql` with each `?` replaced, in order, by `params` written as literals: NULL,
/// integers, and strings (quotes doubled, backslashes escaped: the applier's session
/// has no NO_BACKSLASH_ESCAPES), bytes that are not UTF-8 as `X'…'`. None when a
/// parameter is of another kind or the counts differ. `sql` must have no `?` other
/// than its placeholders (drc's own statements, not the application's).
pub fn inline(sql: &str, params: &[MyValue]) -> Option<String> {
    let mut out = String::with_capacity(sql.len() + params.len() * 16);
    let mut params = params.iter();
    for (i, part) in sql.split('?').enumerate() {
        if i > 0 {
            match params.next()? {
                MyValue::NULL => out.push_str("NULL"),
                MyValue::Int(i) => out.push_str(&i.to_string()),
                MyValue::UInt(u) => out.push_str(&u.to_string()),
                MyValue::Bytes(b) => match std::str::from_utf8(b) {
                    Ok(s) => out.push_str(&literal(s)),
                    Err(_) => {
                        out.push_str("X'");
                        for x in b {
                            out.push_str(&format!("{x:02X}"));
                        }
                        out.push('\'');
                    }
                },
                _ => return None,
            }
        }
        out.push_str(part);
    }
    params.next().is_none().then_some(out)
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
        Value::DateTime(t) | Value::Date(t) => datetime_version(t),
        Value::Timestamp { secs, micros, .. } => datetime_version(&Value::timestamp_text(*secs, *micros, 6)),
        Value::Decimal(d) => parse_decimal(d),
        // values that crossed Kafka arrive as text: a DATETIME, or a number
        Value::Text(t) if t.len() >= 19 && t.as_bytes()[4] == b'-' => datetime_version(t),
        Value::Text(t) => parse_decimal(t),
        _ => None,
    }
}

/// `YYYY-MM-DD[ HH:MM:SS[.ffffff]]` as `YYYYMMDDhhmmss` * 10^6 + microseconds: the
/// digits of the whole part (padded to 14), then up to 6 of the fraction. No
/// allocation: the applier computes this for every row it writes.
fn datetime_version(t: &str) -> Option<i128> {
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let (mut v, mut digits) = (0i128, 0);
    for b in whole.bytes().filter(u8::is_ascii_digit) {
        v = v * 10 + (b - b'0') as i128;
        digits += 1;
    }
    if digits > 14 {
        return None;
    }
    v *= 10i128.pow(14 - digits);
    let mut micros = 0i128;
    for b in frac.bytes().chain(std::iter::repeat(b'0')).take(6) {
        if !b.is_ascii_digit() {
            return None;
        }
        micros = micros * 10 + (b - b'0') as i128;
    }
    Some(v * 1_000_000 + micros)
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
    fn inline_writes_literals_in_order() {
        let p = [
            MyValue::from("a'b\\c"),
            MyValue::NULL,
            MyValue::Int(-3),
            MyValue::UInt(7),
            MyValue::Bytes(vec![0xff, 0x00]),
        ];
        assert_eq!(
            inline("INSERT INTO t VALUES (?, ?, ?, ?, ?)", &p).unwrap(),
            "INSERT INTO t VALUES ('a''b\\\\c', NULL, -3, 7, X'FF00')"
        );
        assert!(inline("SELECT ?, ?", &p[..1]).is_none(), "too few parameters");
        assert!(inline("SELECT ?", &p[..2]).is_none(), "too many parameters");
        assert!(inline("SELECT ?", &[MyValue::Double(1.0)]).is_none());
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
        assert_eq!(
            version_of(&Value::Date("2026-01-02".into())),
            Some(20_260_102_000_000_000_000)
        );
        assert_eq!(
            version_of(&Value::DateTime("2026-01-02 03:04:05.5".into())),
            Some(20_260_102_030_405_500_000)
        );
        assert_eq!(
            version_of(&Value::Text("2026-01-02 03:04:05".into())),
            Some(20_260_102_030_405_000_000)
        );
    }
}
