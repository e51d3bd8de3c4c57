//! Table schemas as the binlog describes them: built from each TABLE_MAP event, never
//! from the server's current catalog (a schema read "now" would mislabel events written
//! before an ALTER; ANCHORS.md, hurt #3).
//!
//! With `binlog_row_metadata=FULL` (MariaDB 10.5+, MySQL 8.0.1+) the table map carries
//! column names, signedness, charsets, ENUM/SET labels and the primary key. Without it,
//! columns are named `@1`, `@2`, ... (1-based, as `mariadb-binlog -v` prints them),
//! integers are read as signed and text whose charset is unknown is kept as UTF-8 if it
//! is valid UTF-8, else as bytes.

use mysql_common::binlog::events::{OptionalMetaExtractor, OptionalMetadataField, TableMapEvent};
use mysql_common::constants::ColumnType;
use std::sync::Arc;

/// What the decoder needs to know about one column.
#[derive(Debug, Clone)]
pub struct ColumnInfo {
    pub name: Arc<str>,
    /// Real type (ENUM/SET resolved from a STRING's metadata).
    pub ty: ColumnType,
    /// Type metadata bytes from the table map.
    pub meta: Vec<u8>,
    pub unsigned: bool,
    /// Collation id for character, ENUM and SET columns, when known.
    pub collation: Option<u16>,
    /// How its bytes become text (from `collation`, resolved once per table map).
    pub charset: super::values::Charset,
    pub enum_labels: Option<Arc<[String]>>,
    pub set_labels: Option<Arc<[String]>>,
}

impl ColumnInfo {
    /// Declared byte length of a CHAR/BINARY column (`MYSQL_TYPE_STRING`).
    pub fn fixed_len(&self) -> Option<usize> {
        if self.ty != ColumnType::MYSQL_TYPE_STRING || self.meta.len() < 2 {
            return None;
        }
        let (b0, b1) = (self.meta[0] as usize, self.meta[1] as usize);
        Some(if b0 & 0x30 != 0x30 {
            b1 | (((b0 & 0x30) ^ 0x30) << 4)
        } else {
            b1
        })
    }

    /// Fractional-second digits of TIME2/DATETIME2/TIMESTAMP2 columns.
    pub fn fsp(&self) -> u8 {
        match self.ty {
            ColumnType::MYSQL_TYPE_TIME2 | ColumnType::MYSQL_TYPE_DATETIME2 | ColumnType::MYSQL_TYPE_TIMESTAMP2 => {
                self.meta.first().copied().unwrap_or(0).min(6)
            }
            _ => 0,
        }
    }
}

/// Metadata bytes the cell decoder indexes for each type (guards against corrupt maps).
fn min_meta_len(ty: ColumnType) -> usize {
    use ColumnType::*;
    match ty {
        MYSQL_TYPE_STRING
        | MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_VAR_STRING
        | MYSQL_TYPE_NEWDECIMAL
        | MYSQL_TYPE_BIT
        | MYSQL_TYPE_ENUM
        | MYSQL_TYPE_SET => 2,
        MYSQL_TYPE_BLOB
        | MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
        | MYSQL_TYPE_GEOMETRY
        | MYSQL_TYPE_VECTOR
        | MYSQL_TYPE_TIME2
        | MYSQL_TYPE_DATETIME2
        | MYSQL_TYPE_TIMESTAMP2
        | MYSQL_TYPE_JSON
        | MYSQL_TYPE_TYPED_ARRAY => 1,
        _ => 0,
    }
}

/// A table as of one TABLE_MAP event.
#[derive(Debug)]
pub struct TableSchema {
    pub db: Arc<str>,
    pub table: Arc<str>,
    pub columns: Vec<ColumnInfo>,
    /// All column names, shared by every full row image of this table.
    pub names: Arc<[Arc<str>]>,
    pub pk: Arc<[Arc<str>]>,
    /// True when the table map carried column names.
    pub has_names: bool,
    pub tme: TableMapEvent<'static>,
}

impl TableSchema {
    pub fn from_table_map(tme: TableMapEvent<'static>) -> std::io::Result<Self> {
        let (columns, pk, has_names) = Self::columns(&tme)?;
        let all_names: Arc<[Arc<str>]> = columns.iter().map(|c| c.name.clone()).collect();
        Ok(TableSchema {
            db: Arc::from(tme.database_name().as_ref()),
            table: Arc::from(tme.table_name().as_ref()),
            columns,
            names: all_names,
            pk,
            has_names,
            tme,
        })
    }

    #[allow(clippy::type_complexity)]
    fn columns(tme: &TableMapEvent<'_>) -> std::io::Result<(Vec<ColumnInfo>, Arc<[Arc<str>]>, bool)> {
        let n = tme.columns_count() as usize;
        let extractor = OptionalMetaExtractor::new(tme.iter_optional_meta())?;
        let mut signedness = extractor.iter_signedness();
        let mut charsets = extractor.iter_charset();
        let mut enum_set_charsets = extractor.iter_enum_and_set_charset();
        let mut names = extractor.iter_column_name();
        let mut enum_values: Vec<Arc<[String]>> = Vec::new();
        let mut set_values: Vec<Arc<[String]>> = Vec::new();
        for field in tme.iter_optional_meta() {
            match field? {
                OptionalMetadataField::EnumStrValue(v) => {
                    for e in v.iter_values() {
                        let e = e?;
                        enum_values.push(e.values().iter().map(|x| x.value().into_owned()).collect());
                    }
                }
                OptionalMetadataField::SetStrValue(v) => {
                    for e in v.iter_values() {
                        let e = e?;
                        set_values.push(e.values().iter().map(|x| x.value().into_owned()).collect());
                    }
                }
                _ => {}
            }
        }
        let (mut enum_values, mut set_values) = (enum_values.into_iter(), set_values.into_iter());
        let mut columns = Vec::with_capacity(n);
        let mut has_names = n > 0;
        for i in 0..n {
            let ty = tme
                .get_column_type(i)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
                .ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "table map: missing column type")
                })?;
            let meta = tme
                .get_column_metadata(i)
                .ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "table map: truncated column metadata")
                })?
                .to_vec();
            if meta.len() < min_meta_len(ty) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "table map: short column metadata",
                ));
            }
            let unsigned = if ty.is_numeric_type() {
                signedness.next().unwrap_or(false)
            } else {
                false
            };
            let collation = if ty.is_character_type() {
                charsets.next().transpose()?
            } else if ty.is_enum_or_set_type() {
                enum_set_charsets.next().transpose()?
            } else {
                None
            };
            let name: Arc<str> = match names.next().transpose()? {
                Some(cn) => Arc::from(cn.name().as_ref()),
                None => {
                    has_names = false;
                    Arc::from(format!("@{}", i + 1).as_str())
                }
            };
            let enum_labels = if ty.is_enum_type() { enum_values.next() } else { None };
            let set_labels = if ty.is_set_type() { set_values.next() } else { None };
            columns.push(ColumnInfo {
                name,
                ty,
                meta,
                unsigned,
                collation,
                charset: super::values::Charset::of(collation),
                enum_labels,
                set_labels,
            });
        }
        let pk: Arc<[Arc<str>]> = extractor
            .iter_primary_key()
            .filter_map(|r| r.ok())
            .filter_map(|i| columns.get(i as usize).map(|c| c.name.clone()))
            .collect();
        Ok((columns, pk, has_names))
    }
}
