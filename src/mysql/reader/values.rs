//! Binlog cell → [`Value`]: exact conversions for every column type.
//!
//! The byte-level parsing of a cell is mysql_common's `BinlogValue`; this module turns
//! its loosely typed result into a [`Value`] using the column's real type, metadata,
//! signedness, charset and ENUM/SET labels from [`ColumnInfo`].

use super::schema::ColumnInfo;
use crate::model::{format_date, format_datetime, with_fraction, Value};
use mysql_common::binlog::value::BinlogValue;
use mysql_common::collations::{Collation, CollationId};
use mysql_common::constants::ColumnType as T;
use mysql_common::value::Value as MyValue;

/// Converts one decoded cell. Errors name what was unexpected; the caller adds the
/// table, column and binlog offset.
pub fn convert(col: &ColumnInfo, v: BinlogValue<'_>) -> Result<Value, String> {
    match v {
        BinlogValue::Value(v) => convert_plain(col, v),
        BinlogValue::Jsonb(j) => {
            let dom = j.parse().map_err(|e| format!("binary JSON: {e}"))?;
            let json = serde_json::Value::from(dom);
            Ok(Value::Json(json.to_string()))
        }
        BinlogValue::JsonDiff(diffs) => {
            let mut out = Vec::with_capacity(diffs.len());
            for d in diffs {
                let value = match d.value() {
                    Some(j) => {
                        let dom = j.clone().parse().map_err(|e| format!("partial JSON: {e}"))?;
                        serde_json::Value::from(dom)
                    }
                    None => serde_json::Value::Null,
                };
                out.push(serde_json::json!({
                    "op": format!("{:?}", d.operation()).to_lowercase(),
                    "path": d.path_str().into_owned(),
                    "value": value,
                }));
            }
            Ok(Value::JsonDiff(Box::new(serde_json::Value::Array(out))))
        }
    }
}

fn convert_plain(col: &ColumnInfo, v: MyValue) -> Result<Value, String> {
    let unexpected = |v: &MyValue| format!("unexpected value {v:?} for column type {:?}", col.ty);
    Ok(match (col.ty, v) {
        (_, MyValue::NULL) => Value::Null,
        // mysql_common 0.37 does not sign-extend 3-byte integers: map the 24-bit pattern
        // back to its value for the column's signedness.
        (T::MYSQL_TYPE_INT24, MyValue::Int(i)) => {
            let bits = i & 0xff_ffff;
            if col.unsigned {
                Value::UInt(bits as u64)
            } else if bits & 0x80_0000 != 0 {
                Value::Int(bits - 0x100_0000)
            } else {
                Value::Int(bits)
            }
        }
        (
            T::MYSQL_TYPE_TINY
            | T::MYSQL_TYPE_SHORT
            | T::MYSQL_TYPE_INT24
            | T::MYSQL_TYPE_LONG
            | T::MYSQL_TYPE_LONGLONG,
            v,
        ) => match v {
            MyValue::Int(i) if col.unsigned && i >= 0 => Value::UInt(i as u64),
            MyValue::Int(i) => Value::Int(i),
            MyValue::UInt(u) => Value::UInt(u),
            other => return Err(unexpected(&other)),
        },
        (T::MYSQL_TYPE_FLOAT, MyValue::Float(f)) => Value::Float(f),
        (T::MYSQL_TYPE_DOUBLE, MyValue::Double(d)) => Value::Double(d),
        (T::MYSQL_TYPE_NEWDECIMAL | T::MYSQL_TYPE_DECIMAL, MyValue::Bytes(b)) => Value::Decimal(utf8(b)?),
        (T::MYSQL_TYPE_YEAR, MyValue::Bytes(b)) => {
            let y: u16 = utf8(b)?.parse().map_err(|_| "YEAR is not a number".to_string())?;
            // The binlog stores YEAR as (year - 1900); 0 means the zero year 0000.
            Value::Year(if y == 1900 { 0 } else { y })
        }
        (T::MYSQL_TYPE_NEWDATE | T::MYSQL_TYPE_DATE, MyValue::Date(y, m, d, ..)) => Value::Date(format_date(y, m, d)),
        (T::MYSQL_TYPE_DATETIME | T::MYSQL_TYPE_DATETIME2, MyValue::Date(y, mo, d, h, mi, s, us)) => {
            Value::DateTime(format_datetime(y, mo, d, h, mi, s, us, col.fsp()))
        }
        (T::MYSQL_TYPE_TIME | T::MYSQL_TYPE_TIME2, MyValue::Time(neg, days, h, m, s, us)) => {
            let hours = days * 24 + h as u32;
            let sign = if neg { "-" } else { "" };
            Value::Time(with_fraction(format!("{sign}{hours:02}:{m:02}:{s:02}"), us, col.fsp()))
        }
        (T::MYSQL_TYPE_TIMESTAMP, MyValue::Int(secs)) => Value::Timestamp {
            secs,
            micros: 0,
            fsp: 0,
        },
        (T::MYSQL_TYPE_TIMESTAMP2, MyValue::Bytes(b)) => {
            let text = utf8(b)?;
            let (secs, micros) = match text.split_once('.') {
                Some((s, us)) => (s.parse(), us.parse()),
                None => (text.parse(), Ok(0)),
            };
            match (secs, micros) {
                (Ok(secs), Ok(micros)) => Value::Timestamp {
                    secs,
                    micros,
                    fsp: col.fsp(),
                },
                _ => return Err(format!("bad TIMESTAMP text {text:?}")),
            }
        }
        (T::MYSQL_TYPE_BIT, MyValue::Bytes(b)) => {
            let width =
                col.meta.get(1).copied().unwrap_or(0) as u16 * 8 + col.meta.first().copied().unwrap_or(0) as u16;
            Value::Bit {
                value: b.iter().fold(0u64, |acc, x| (acc << 8) | *x as u64),
                width,
            }
        }
        (T::MYSQL_TYPE_ENUM, MyValue::Int(i)) => {
            let index = i as u16;
            let label = col.enum_labels.as_ref().and_then(|l| {
                if index == 0 {
                    Some(String::new())
                } else {
                    l.get(index as usize - 1).cloned()
                }
            });
            Value::Enum { index, label }
        }
        (T::MYSQL_TYPE_SET, MyValue::Bytes(b)) => {
            let mask = b.iter().rev().fold(0u64, |acc, x| (acc << 8) | *x as u64);
            let labels = col.set_labels.as_ref().map(|l| {
                l.iter()
                    .enumerate()
                    .filter(|(i, _)| *i < 64 && mask & (1u64 << i) != 0)
                    .map(|(_, s)| s.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            });
            Value::Set { mask, labels }
        }
        (T::MYSQL_TYPE_GEOMETRY | T::MYSQL_TYPE_VECTOR, MyValue::Bytes(b)) => Value::Bytes(b),
        (
            T::MYSQL_TYPE_STRING
            | T::MYSQL_TYPE_VARCHAR
            | T::MYSQL_TYPE_VAR_STRING
            | T::MYSQL_TYPE_BLOB
            | T::MYSQL_TYPE_TINY_BLOB
            | T::MYSQL_TYPE_MEDIUM_BLOB
            | T::MYSQL_TYPE_LONG_BLOB,
            MyValue::Bytes(mut b),
        ) => {
            // The server strips BINARY(n)'s trailing 0x00 padding from row events;
            // the stored value has it.
            if let (Some(63), Some(n)) = (col.collation, col.fixed_len()) {
                if b.len() < n {
                    b.resize(n, 0);
                }
            }
            decode_text(col.collation, b)
        }
        (T::MYSQL_TYPE_JSON, MyValue::Bytes(b)) => Value::Json(utf8(b)?),
        (_, other) => return Err(unexpected(&other)),
    })
}

fn utf8(b: Vec<u8>) -> Result<String, String> {
    String::from_utf8(b).map_err(|e| format!("not UTF-8: {e}"))
}

/// How a column's bytes become text, resolved once per column from its collation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Charset {
    /// utf8mb4, utf8mb3, ascii, or no charset known: text when valid UTF-8, else bytes.
    Utf8,
    /// The binary collation: always bytes.
    Binary,
    /// A single- or multi-byte charset: text when the bytes are valid in it, else bytes.
    Other(&'static encoding_rs::Encoding),
    /// A charset drc does not decode: bytes.
    Unknown,
}

impl Charset {
    pub fn of(collation: Option<u16>) -> Charset {
        let Some(id) = collation else {
            return Charset::Utf8;
        };
        let encoding = match Collation::resolve(CollationId::from(id)).charset() {
            "utf8mb4" | "utf8mb3" | "utf8" | "ascii" => return Charset::Utf8,
            "binary" => return Charset::Binary,
            // MySQL's latin1 is Windows-1252 with the undefined bytes mapped to C1 controls,
            // which is exactly the WHATWG windows-1252 decoder.
            "latin1" => encoding_rs::WINDOWS_1252,
            "latin2" => encoding_rs::ISO_8859_2,
            "latin7" => encoding_rs::ISO_8859_13,
            "greek" => encoding_rs::ISO_8859_7,
            "hebrew" => encoding_rs::ISO_8859_8,
            "cp1250" => encoding_rs::WINDOWS_1250,
            "cp1251" => encoding_rs::WINDOWS_1251,
            "cp1256" => encoding_rs::WINDOWS_1256,
            "cp1257" => encoding_rs::WINDOWS_1257,
            "cp866" => encoding_rs::IBM866,
            "koi8r" => encoding_rs::KOI8_R,
            "koi8u" => encoding_rs::KOI8_U,
            "macroman" => encoding_rs::MACINTOSH,
            "tis620" => encoding_rs::WINDOWS_874,
            "gbk" | "gb2312" => encoding_rs::GBK,
            "gb18030" => encoding_rs::GB18030,
            "big5" => encoding_rs::BIG5,
            "sjis" | "cp932" => encoding_rs::SHIFT_JIS,
            "ujis" | "eucjpms" => encoding_rs::EUC_JP,
            "euckr" => encoding_rs::EUC_KR,
            "utf16" | "ucs2" => encoding_rs::UTF_16BE,
            "utf16le" => encoding_rs::UTF_16LE,
            _ => return Charset::Unknown,
        };
        Charset::Other(encoding)
    }
}

/// Decodes character data by collation. Binary collation, unknown charsets and bytes
/// that are not valid in the charset stay [`Value::Bytes`] (never a lossy string).
pub fn decode_text(collation: Option<u16>, b: Vec<u8>) -> Value {
    match Charset::of(collation) {
        Charset::Utf8 => String::from_utf8(b)
            .map(Value::Text)
            .unwrap_or_else(|e| Value::Bytes(e.into_bytes())),
        _ => decode_text_slice(Charset::of(collation), &b),
    }
}

/// [`decode_text`] of borrowed bytes: one allocation, for the result.
pub fn decode_text_slice(charset: Charset, b: &[u8]) -> Value {
    match charset {
        Charset::Utf8 => match std::str::from_utf8(b) {
            Ok(s) => Value::Text(s.to_owned()),
            Err(_) => Value::Bytes(b.to_vec()),
        },
        Charset::Binary | Charset::Unknown => Value::Bytes(b.to_vec()),
        Charset::Other(encoding) => match encoding.decode_without_bom_handling_and_without_replacement(b) {
            Some(s) => Value::Text(s.into_owned()),
            None => Value::Bytes(b.to_vec()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(ty: mysql_common::constants::ColumnType, unsigned: bool) -> ColumnInfo {
        ColumnInfo {
            name: "c".into(),
            ty,
            meta: vec![],
            unsigned,
            collation: None,
            charset: Charset::Utf8,
            enum_labels: None,
            set_labels: None,
        }
    }

    #[test]
    fn mediumint_sign() {
        let signed = col(T::MYSQL_TYPE_INT24, false);
        let unsigned = col(T::MYSQL_TYPE_INT24, true);
        let v = |i: i64| BinlogValue::Value(MyValue::Int(i));
        assert_eq!(convert(&signed, v(8388608)).unwrap(), Value::Int(-8388608));
        assert_eq!(convert(&signed, v(-8388608)).unwrap(), Value::Int(-8388608));
        assert_eq!(convert(&signed, v(16777215)).unwrap(), Value::Int(-1));
        assert_eq!(convert(&signed, v(-1)).unwrap(), Value::Int(-1));
        assert_eq!(convert(&signed, v(8388607)).unwrap(), Value::Int(8388607));
        assert_eq!(convert(&unsigned, v(16777215)).unwrap(), Value::UInt(16777215));
        assert_eq!(convert(&unsigned, v(-1)).unwrap(), Value::UInt(16777215));
    }

    #[test]
    fn text_by_charset() {
        assert_eq!(decode_text(Some(63), b"ab".to_vec()), Value::Bytes(b"ab".to_vec()));
        assert_eq!(decode_text(Some(45), "é".as_bytes().to_vec()), Value::Text("é".into()));
        assert_eq!(decode_text(Some(8), vec![0xe9]), Value::Text("é".into()));
        assert_eq!(decode_text(Some(45), vec![0xff, 0xfe]), Value::Bytes(vec![0xff, 0xfe]));
        assert_eq!(decode_text(Some(28), vec![0xc4, 0xe3]), Value::Text("你".into()));
        assert_eq!(decode_text(None, vec![0xc3]), Value::Bytes(vec![0xc3]));
    }

    #[test]
    fn fractions_and_timestamps() {
        assert_eq!(with_fraction("00:00:01".into(), 120000, 3), "00:00:01.120");
        assert_eq!(Value::timestamp_text(0, 0, 0), "0000-00-00 00:00:00");
        assert_eq!(Value::timestamp_text(1650493084, 5, 6), "2022-04-20 22:18:04.000005");
    }
}
