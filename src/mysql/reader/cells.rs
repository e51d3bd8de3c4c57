//! One cell of a row image, decoded straight from the event bytes into a [`Value`].
//!
//! The reader's hot path. Integers, floats, strings, dates, times, timestamps,
//! decimals, ENUM, SET and BIT are read here from the bytes, with the column's type,
//! metadata, signedness and charset, without going through mysql_common's generic
//! `BinlogValue` (which moved a large value per cell and formatted some types to text
//! only to be parsed again). The packed temporal formats and binary DECIMAL use
//! mysql_common's own decoding functions. JSON (binary and partial), GEOMETRY, VECTOR
//! and typed arrays, rare in hot tables, go the generic way ([`super::values::convert`]).
//!
//! Invariants: every read is bounds-checked (a truncated or hostile row is an error
//! naming what was short, never a panic); a cell consumes exactly its bytes, so the
//! next cell starts where the server put it; the result equals what the generic path
//! gives for the same bytes (unit tests below compare both on every type they share).

use super::schema::ColumnInfo;
use super::values::{convert, decode_text_slice};
use crate::model::{format_date, format_datetime, with_fraction, Value};
use mysql_common::binlog::misc::{datetime_from_packed, my_datetime_packed_from_binary, time_from_packed};
use mysql_common::binlog::value::BinlogValue;
use mysql_common::constants::ColumnType as T;
use mysql_common::io::ParseBuf;
use mysql_common::value::Value as MyValue;

/// Decodes the next cell of `buf` (not NULL: the caller checked the null bitmap).
/// `partial_json` is true for a JSON column of a partial-update after-image whose
/// bit says it holds a diff.
pub fn read_cell<'a>(buf: &mut ParseBuf<'a>, col: &'a ColumnInfo, partial_json: bool) -> Result<Value, String> {
    Ok(match col.ty {
        T::MYSQL_TYPE_TINY => int(take(buf, 1)?, col.unsigned),
        T::MYSQL_TYPE_SHORT => int(take(buf, 2)?, col.unsigned),
        T::MYSQL_TYPE_INT24 => int(take(buf, 3)?, col.unsigned),
        T::MYSQL_TYPE_LONG => int(take(buf, 4)?, col.unsigned),
        T::MYSQL_TYPE_LONGLONG => int(take(buf, 8)?, col.unsigned),
        T::MYSQL_TYPE_FLOAT => Value::Float(f32::from_le_bytes(array(take(buf, 4)?))),
        T::MYSQL_TYPE_DOUBLE => Value::Double(f64::from_le_bytes(array(take(buf, 8)?))),
        T::MYSQL_TYPE_YEAR => {
            // stored as (year - 1900); 0 is the zero year 0000
            let y = take(buf, 1)?[0] as u16;
            Value::Year(if y == 0 { 0 } else { 1900 + y })
        }
        T::MYSQL_TYPE_NEWDATE => {
            let v = le(take(buf, 3)?) as u32;
            Value::Date(format_date((v >> 9) as u16, ((v >> 5) & 15) as u8, (v & 31) as u8))
        }
        T::MYSQL_TYPE_DATETIME2 => {
            let packed = read_with(buf, |r| my_datetime_packed_from_binary(r, col.meta[0] as u32))?;
            match datetime_from_packed(packed) {
                MyValue::Date(y, mo, d, h, mi, s, us) => {
                    Value::DateTime(format_datetime(y, mo, d, h, mi, s, us, col.fsp()))
                }
                other => return Err(format!("unexpected DATETIME2 value {other:?}")),
            }
        }
        T::MYSQL_TYPE_TIME2 => {
            let packed = time2_packed(buf, col.meta[0])?;
            match time_from_packed(packed) {
                MyValue::Time(neg, days, h, m, s, us) => time(neg, days, h, m, s, us, col.fsp()),
                other => return Err(format!("unexpected TIME2 value {other:?}")),
            }
        }
        T::MYSQL_TYPE_TIMESTAMP => Value::Timestamp {
            secs: le(take(buf, 4)?) as i64,
            micros: 0,
            fsp: 0,
        },
        T::MYSQL_TYPE_TIMESTAMP2 => {
            let secs = be(take(buf, 4)?) as i64;
            let fsp = col.fsp();
            // the fraction: (fsp + 1) / 2 bytes, big-endian, in units of 10^(6 - 2 * bytes)
            let micros = match fsp {
                1 | 2 => be(take(buf, 1)?) as u32 * 10_000,
                3 | 4 => be(take(buf, 2)?) as u32 * 100,
                5 | 6 => be(take(buf, 3)?) as u32,
                _ => 0,
            };
            if micros > 999_999 {
                return Err(format!("TIMESTAMP fraction {micros} out of range"));
            }
            Value::Timestamp { secs, micros, fsp }
        }
        T::MYSQL_TYPE_NEWDECIMAL => {
            let (precision, scale) = (col.meta[0] as usize, col.meta[1] as usize);
            if scale > precision {
                return Err(format!("DECIMAL({precision},{scale}) in the table map"));
            }
            let d = read_with(buf, |r| {
                mysql_common::binlog::decimal::Decimal::read_bin(r, precision, scale, false)
            })?;
            Value::Decimal(d.to_string())
        }
        T::MYSQL_TYPE_BIT => {
            let n = (col.meta[1] as usize * 8 + col.meta[0] as usize).div_ceil(8);
            let bytes = take(buf, n)?;
            if n > 8 {
                return Err(format!("BIT of {n} bytes"));
            }
            Value::Bit {
                value: bytes.iter().fold(0u64, |acc, x| (acc << 8) | *x as u64),
                width: col.meta[1] as u16 * 8 + col.meta[0] as u16,
            }
        }
        T::MYSQL_TYPE_ENUM => {
            let index = match col.meta[1] {
                1 => take(buf, 1)?[0] as u16,
                2 => le(take(buf, 2)?) as u16,
                n => return Err(format!("ENUM stored in {n} bytes")),
            };
            let label = col.enum_labels.as_ref().and_then(|l| match index {
                0 => Some(String::new()),
                i => l.get(i as usize - 1).cloned(),
            });
            Value::Enum { index, label }
        }
        T::MYSQL_TYPE_SET => {
            let bytes = take(buf, col.meta[1] as usize)?;
            if bytes.len() > 8 {
                return Err(format!("SET stored in {} bytes", bytes.len()));
            }
            let mask = bytes.iter().rev().fold(0u64, |acc, x| (acc << 8) | *x as u64);
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
        T::MYSQL_TYPE_VARCHAR | T::MYSQL_TYPE_VAR_STRING => {
            let max = col.meta[0] as usize | (col.meta[1] as usize) << 8;
            let n = if max < 256 {
                take(buf, 1)?[0] as usize
            } else {
                le(take(buf, 2)?) as usize
            };
            decode_text_slice(col.charset, take(buf, n)?)
        }
        T::MYSQL_TYPE_STRING => {
            let max = col
                .fixed_len()
                .ok_or("CHAR column without its length in the table map")?;
            let n = if max < 256 {
                take(buf, 1)?[0] as usize
            } else {
                le(take(buf, 2)?) as usize
            };
            let bytes = take(buf, n)?;
            // The server strips BINARY(n)'s trailing 0x00 padding from row events; the
            // stored value has it.
            if col.collation == Some(63) && bytes.len() < max {
                let mut padded = bytes.to_vec();
                padded.resize(max, 0);
                Value::Bytes(padded)
            } else {
                decode_text_slice(col.charset, bytes)
            }
        }
        T::MYSQL_TYPE_BLOB | T::MYSQL_TYPE_TINY_BLOB | T::MYSQL_TYPE_MEDIUM_BLOB | T::MYSQL_TYPE_LONG_BLOB => {
            let n = match col.meta[0] {
                w @ 1..=4 => le(take(buf, w as usize)?) as usize,
                w => return Err(format!("BLOB length in {w} bytes")),
            };
            decode_text_slice(col.charset, take(buf, n)?)
        }
        _ => {
            let cell: BinlogValue<'_> = buf
                .parse((col.ty, col.meta.as_slice(), col.unsigned, partial_json))
                .map_err(|e| format!("({:?}): {e}", col.ty))?;
            convert(col, cell)?
        }
    })
}

/// A TIME2 cell as MySQL's packed time (integer part << 24 + microseconds, negative
/// for a negative time). Not mysql_common's `my_time_packed_from_binary`: for 1-2
/// fractional digits it subtracts 0x100 from an unsigned byte, which wraps, so
/// `-12:34:56.78` came out as `612:29:07.99`.
fn time2_packed(buf: &mut ParseBuf<'_>, dec: u8) -> Result<i64, String> {
    const INT_OFS: i64 = 0x80_0000;
    let frac_bytes = (dec.min(6) as usize).div_ceil(2);
    if frac_bytes == 3 {
        return Ok(be(take(buf, 6)?) as i64 - 0x8000_0000_0000);
    }
    let mut int_part = be(take(buf, 3)?) as i64 - INT_OFS;
    let (mut frac, wrap, unit) = match frac_bytes {
        1 => (be(take(buf, 1)?) as i64, 0x100, 10_000),
        2 => (be(take(buf, 2)?) as i64, 0x1_0000, 100),
        _ => (0, 1, 0),
    };
    // a negative time stores its integer part rounded down and the fraction as a
    // negative number in the fraction's bytes
    if int_part < 0 && frac > 0 {
        int_part += 1;
        frac -= wrap;
    }
    Ok((int_part << 24) + frac * unit)
}

/// The next `n` bytes of the row.
fn take<'a>(buf: &mut ParseBuf<'a>, n: usize) -> Result<&'a [u8], String> {
    buf.checked_eat(n)
        .ok_or_else(|| format!("truncated row: {n} bytes expected, {} left", buf.0.len()))
}

/// Runs a mysql_common reader over the rest of the row and advances past what it read.
fn read_with<'a, R>(buf: &mut ParseBuf<'a>, f: impl FnOnce(&mut &'a [u8]) -> std::io::Result<R>) -> Result<R, String> {
    let mut rest: &'a [u8] = buf.0;
    let v = f(&mut rest).map_err(|e| format!("truncated row: {e}"))?;
    buf.0 = rest;
    Ok(v)
}

fn array<const N: usize>(b: &[u8]) -> [u8; N] {
    b.try_into().expect("take returned N bytes")
}

/// Little-endian unsigned integer of 1 to 8 bytes.
fn le(b: &[u8]) -> u64 {
    b.iter().rev().fold(0u64, |acc, x| (acc << 8) | *x as u64)
}

/// Big-endian unsigned integer of 1 to 8 bytes.
fn be(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |acc, x| (acc << 8) | *x as u64)
}

/// A little-endian integer cell of `b.len()` bytes, sign-extended unless unsigned.
fn int(b: &[u8], unsigned: bool) -> Value {
    let raw = le(b);
    if unsigned {
        return Value::UInt(raw);
    }
    let shift = 64 - 8 * b.len() as u32;
    Value::Int(((raw << shift) as i64) >> shift)
}

fn time(neg: bool, days: u32, h: u8, m: u8, s: u8, us: u32, fsp: u8) -> Value {
    let hours = days * 24 + h as u32;
    let sign = if neg { "-" } else { "" };
    Value::Time(with_fraction(format!("{sign}{hours:02}:{m:02}:{s:02}"), us, fsp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::constants::ColumnType;

    fn col(ty: ColumnType, meta: &[u8], unsigned: bool, collation: Option<u16>) -> ColumnInfo {
        ColumnInfo {
            name: "c".into(),
            ty,
            meta: meta.to_vec(),
            unsigned,
            collation,
            charset: super::super::values::Charset::of(collation),
            enum_labels: Some(vec!["a".to_string(), "b".to_string()].into()),
            set_labels: Some(vec!["x".to_string(), "y".to_string(), "z".to_string()].into()),
        }
    }

    /// The generic path's value for the same bytes.
    fn generic(c: &ColumnInfo, bytes: &[u8]) -> Result<(Value, usize), String> {
        let mut buf = ParseBuf(bytes);
        let cell: BinlogValue<'_> = buf
            .parse((c.ty, c.meta.as_slice(), c.unsigned, false))
            .map_err(|e| e.to_string())?;
        Ok((convert(c, cell)?, bytes.len() - buf.0.len()))
    }

    fn fast(c: &ColumnInfo, bytes: &[u8]) -> Result<(Value, usize), String> {
        let mut buf = ParseBuf(bytes);
        let v = read_cell(&mut buf, c, false)?;
        Ok((v, bytes.len() - buf.0.len()))
    }

    /// Both paths agree on `bytes` (value and bytes consumed), and on every
    /// truncation of them (both fail).
    fn agree(c: &ColumnInfo, bytes: &[u8]) -> Value {
        let (g, f) = (generic(c, bytes), fast(c, bytes));
        assert_eq!(f, g, "{:?} {:?} {bytes:?}", c.ty, c.meta);
        for cut in 0..bytes.len() {
            if let Ok((_, used)) = &g {
                if cut >= *used {
                    continue;
                }
            }
            assert!(fast(c, &bytes[..cut]).is_err(), "{:?} cut at {cut}", c.ty);
        }
        f.expect("decodes").0
    }

    #[test]
    fn integers_of_every_width_and_sign() {
        for (ty, w) in [
            (T::MYSQL_TYPE_TINY, 1),
            (T::MYSQL_TYPE_SHORT, 2),
            (T::MYSQL_TYPE_LONG, 4),
            (T::MYSQL_TYPE_LONGLONG, 8),
        ] {
            for unsigned in [false, true] {
                let c = col(ty, &[], unsigned, None);
                for pattern in [0x00u8, 0x01, 0x7f, 0x80, 0xfe, 0xff] {
                    let mut bytes = vec![pattern; w];
                    bytes[0] = pattern.wrapping_add(3);
                    agree(&c, &bytes);
                }
            }
        }
        // 3-byte integers: the generic path does not sign-extend; convert() fixes it
        for unsigned in [false, true] {
            let c = col(T::MYSQL_TYPE_INT24, &[], unsigned, None);
            for bytes in [[0, 0, 0x80], [0xff, 0xff, 0xff], [1, 2, 3], [0xff, 0xff, 0x7f]] {
                agree(&c, &bytes);
            }
        }
        let c = col(T::MYSQL_TYPE_INT24, &[], false, None);
        assert_eq!(fast(&c, &[0xff, 0xff, 0xff]).unwrap().0, Value::Int(-1));
        assert_eq!(fast(&c, &[0, 0, 0x80]).unwrap().0, Value::Int(-8_388_608));
    }

    #[test]
    fn floats_years_dates_and_timestamps() {
        agree(&col(T::MYSQL_TYPE_FLOAT, &[4], false, None), &1.5f32.to_le_bytes());
        agree(&col(T::MYSQL_TYPE_DOUBLE, &[8], false, None), &(-2.25f64).to_le_bytes());
        for y in [0u8, 1, 126, 255] {
            agree(&col(T::MYSQL_TYPE_YEAR, &[], false, None), &[y]);
        }
        // 2026-12-07 as a NEWDATE: day | month << 5 | year << 9
        let d: u32 = 7 | 12 << 5 | 2026 << 9;
        let v = agree(&col(T::MYSQL_TYPE_NEWDATE, &[], false, None), &d.to_le_bytes()[..3]);
        assert_eq!(v, Value::Date("2026-12-07".into()));
        agree(
            &col(T::MYSQL_TYPE_TIMESTAMP, &[], false, None),
            &1_700_000_000u32.to_le_bytes(),
        );
        for fsp in 0..=6u8 {
            let c = col(T::MYSQL_TYPE_TIMESTAMP2, &[fsp], false, None);
            let mut bytes = 1_700_000_000u32.to_be_bytes().to_vec();
            bytes.extend_from_slice(&[0x01, 0x23, 0x45][..(fsp as usize).div_ceil(2)]);
            agree(&c, &bytes);
        }
    }

    #[test]
    fn packed_datetimes_and_times() {
        // 2026-12-07 10:11:12 packed as MySQL's DATETIME2 integer part
        let ym = 2026 * 13 + 12;
        let int_part: i64 = ((ym << 5 | 7) << 17) | (10 << 12 | 11 << 6 | 12);
        for fsp in 0..=6u8 {
            let c = col(T::MYSQL_TYPE_DATETIME2, &[fsp], false, None);
            let mut bytes = ((int_part + 0x80_0000_0000) as u64).to_be_bytes()[3..].to_vec();
            bytes.extend_from_slice(&[0x00, 0x30, 0x39][..(fsp as usize).div_ceil(2)]);
            let v = agree(&c, &bytes);
            assert!(
                matches!(v, Value::DateTime(ref t) if t.starts_with("2026-12-07 10:11:12")),
                "{v:?}"
            );
        }
        // negative times with a fraction, as the server writes them (MySQL's
        // my_time_packed_to_binary): -12:34:56.78 at 2 digits, -12:34:56.7891 at 4
        let hms: i64 = 12 << 12 | 34 << 6 | 56;
        let c = col(T::MYSQL_TYPE_TIME2, &[2], false, None);
        let mut bytes = ((0x80_0000 - hms - 1) as u32).to_be_bytes()[1..].to_vec();
        bytes.push((-78i8) as u8);
        assert_eq!(fast(&c, &bytes).unwrap(), (Value::Time("-12:34:56.78".into()), 4));
        let c = col(T::MYSQL_TYPE_TIME2, &[4], false, None);
        let mut bytes = ((0x80_0000 - hms - 1) as u32).to_be_bytes()[1..].to_vec();
        bytes.extend_from_slice(&(-7891i16).to_be_bytes());
        assert_eq!(fast(&c, &bytes).unwrap(), (Value::Time("-12:34:56.7891".into()), 5));
        let c = col(T::MYSQL_TYPE_TIME2, &[6], false, None);
        let packed = -((hms << 24) + 789_012);
        let bytes = ((packed + 0x8000_0000_0000) as u64).to_be_bytes()[2..].to_vec();
        assert_eq!(fast(&c, &bytes).unwrap(), (Value::Time("-12:34:56.789012".into()), 6));
        for fsp in 0..=6u8 {
            let c = col(T::MYSQL_TYPE_TIME2, &[fsp], false, None);
            // 12:34:56 and -00:00:01 (int part offset 0x800000)
            for int_part in [0x80_0000i64 + (12 << 12 | 34 << 6 | 56), 0x80_0000 - 1] {
                let mut bytes = (int_part as u32).to_be_bytes()[1..].to_vec();
                bytes.extend_from_slice(&[0x00, 0x00, 0x00][..(fsp as usize).div_ceil(2)]);
                agree(&c, &bytes);
            }
        }
    }

    #[test]
    fn decimals_bits_enums_and_sets() {
        // DECIMAL(10,4) 1234.5600: 6 integer digits (3 bytes), 4 fraction digits (2 bytes)
        let c = col(T::MYSQL_TYPE_NEWDECIMAL, &[10, 4], false, None);
        let mut bytes = (1234u32 | 0x80_0000).to_be_bytes()[1..].to_vec();
        bytes.extend_from_slice(&5600u16.to_be_bytes());
        assert_eq!(agree(&c, &bytes), Value::Decimal("1234.5600".into()));
        let neg: Vec<u8> = bytes.iter().map(|b| !b).collect();
        assert_eq!(agree(&c, &neg), Value::Decimal("-1234.5600".into()));
        for (bits, bytes) in [(1u8, 0u8), (0, 1), (3, 1), (0, 8)] {
            let c = col(T::MYSQL_TYPE_BIT, &[bits, bytes], false, None);
            let n = (bytes as usize * 8 + bits as usize).div_ceil(8);
            agree(&c, &vec![0xa5; n]);
        }
        let e = col(T::MYSQL_TYPE_ENUM, &[0xf7, 1], false, Some(45));
        assert_eq!(
            agree(&e, &[2]),
            Value::Enum {
                index: 2,
                label: Some("b".into())
            }
        );
        agree(&e, &[0]);
        agree(&col(T::MYSQL_TYPE_ENUM, &[0xf7, 2], false, Some(45)), &[1, 0]);
        let s = col(T::MYSQL_TYPE_SET, &[0xf8, 1], false, Some(45));
        assert_eq!(
            agree(&s, &[0b101]),
            Value::Set {
                mask: 5,
                labels: Some("x,z".into())
            }
        );
    }

    #[test]
    fn strings_by_length_prefix_and_charset() {
        let short = col(T::MYSQL_TYPE_VARCHAR, &[100, 0], false, Some(45));
        assert_eq!(agree(&short, b"\x03abc"), Value::Text("abc".into()));
        let long = col(T::MYSQL_TYPE_VARCHAR, &[0x2c, 0x01], false, Some(45));
        agree(&long, b"\x02\x00h\xc3");
        agree(&long, "\x02\x00é".as_bytes());
        let latin1 = col(T::MYSQL_TYPE_VARCHAR, &[10, 0], false, Some(8));
        assert_eq!(agree(&latin1, &[1, 0xe9]), Value::Text("é".into()));
        // CHAR(10) utf8mb4: meta 0xfe, 40; BINARY(4): padded back to its length
        agree(&col(T::MYSQL_TYPE_STRING, &[0xfe, 40], false, Some(45)), b"\x02hi");
        let binary = col(T::MYSQL_TYPE_STRING, &[0xfe, 4], false, Some(63));
        assert_eq!(agree(&binary, b"\x02hi"), Value::Bytes(b"hi\0\0".to_vec()));
        for w in 1..=4u8 {
            let blob = col(T::MYSQL_TYPE_BLOB, &[w], false, Some(63));
            let mut bytes = vec![0u8; w as usize];
            bytes[0] = 3;
            bytes.extend_from_slice(b"xyz");
            assert_eq!(agree(&blob, &bytes), Value::Bytes(b"xyz".to_vec()));
        }
        let text = col(T::MYSQL_TYPE_BLOB, &[2], false, Some(224));
        assert_eq!(agree(&text, b"\x02\x00ok"), Value::Text("ok".into()));
        // a hostile length is an error, not an allocation
        assert!(fast(
            &col(T::MYSQL_TYPE_BLOB, &[4], false, None),
            &[0xff, 0xff, 0xff, 0xff, 1]
        )
        .is_err());
    }
}
