//! ROWS events → [`RowChange`]s. The hot path of the reader.
//!
//! Cells are decoded straight from the event bytes ([`super::cells`]); the table's metadata is resolved once per TABLE_MAP ([`TableSchema`]) instead
//! of once per row, and full images share the table's column-name list.

use super::cells::read_cell;
use super::schema::TableSchema;
use crate::model::{Op, RowChange, RowImage, Value};
use mysql_common::binlog::events::RowsEventData;
use mysql_common::constants::ColumnType;
use mysql_common::io::ParseBuf;
use std::sync::Arc;

/// Column names of an image, and their table positions when the image is partial.
type ImageNames = (Arc<[Arc<str>]>, Option<Arc<[u32]>>);

/// `value_options` bit of a PARTIAL_UPDATE_ROWS after-image: JSON columns may be diffs.
const PARTIAL_JSON_UPDATES: u64 = 1;

/// Decodes every row of `ev` (whose table map is `schema`), appending to `out`.
/// `pos`/`ts` are the event's end offset and header timestamp.
pub fn decode_rows<'a>(
    ev: &'a RowsEventData<'_>,
    schema: &'a TableSchema,
    pos: u64,
    ts: u32,
    out: &mut Vec<RowChange>,
) -> Result<(), String> {
    let (op, partial) = match ev {
        RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => (Op::Insert, false),
        RowsEventData::UpdateRowsEventV1(_) | RowsEventData::UpdateRowsEvent(_) => (Op::Update, false),
        RowsEventData::PartialUpdateRowsEvent(_) => (Op::Update, true),
        RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => (Op::Delete, false),
    };
    let ncols = ev.num_columns() as usize;
    if ncols != schema.columns.len() {
        return Err(format!(
            "rows event has {ncols} columns but the table map of `{}`.`{}` has {}",
            schema.db,
            schema.table,
            schema.columns.len()
        ));
    }
    let before_cols: Option<Vec<usize>> = ev
        .columns_before_image()
        .map(|b| (0..ncols).filter(|&i| b.get(i).map(|x| *x).unwrap_or(false)).collect());
    let after_cols: Option<Vec<usize>> = ev
        .columns_after_image()
        .map(|b| (0..ncols).filter(|&i| b.get(i).map(|x| *x).unwrap_or(false)).collect());
    let names_for = |cols: &[usize]| -> ImageNames {
        if cols.len() == ncols {
            (schema.names.clone(), None)
        } else {
            (
                cols.iter().map(|&i| schema.columns[i].name.clone()).collect(),
                Some(cols.iter().map(|&i| i as u32).collect()),
            )
        }
    };
    let before_names = before_cols.as_deref().map(names_for);
    let after_names = after_cols.as_deref().map(names_for);
    let json_cols: Vec<usize> = (0..ncols)
        .filter(|&i| schema.columns[i].ty == ColumnType::MYSQL_TYPE_JSON)
        .collect();

    let mut buf = ParseBuf(ev.rows_data());
    while !buf.is_empty() {
        // every row takes bytes: an event whose images are empty (no column in either
        // bitmap, or no image at all) would otherwise repeat its first row without end
        let left = buf.len();
        let before = match (&before_cols, &before_names) {
            (Some(cols), Some(names)) => Some(read_image(&mut buf, schema, cols, names, None)?),
            _ => None,
        };
        let after = match (&after_cols, &after_names) {
            (Some(cols), Some(names)) => {
                let partial_json = if partial {
                    read_partial_bits(&mut buf, &json_cols)?
                } else {
                    None
                };
                Some(read_image(&mut buf, schema, cols, names, partial_json.as_deref())?)
            }
            _ => None,
        };
        if buf.len() == left {
            return Err(format!(
                "corrupt rows event of `{}`.`{}`: a row of no bytes ({} bytes left)",
                schema.db, schema.table, left
            ));
        }
        out.push(RowChange {
            db: schema.db.clone(),
            table: schema.table.clone(),
            op,
            pk: schema.pk.clone(),
            before,
            after,
            pos,
            ts,
        });
    }
    Ok(())
}

/// Reads the shared-image header of a partial update: which JSON columns hold diffs.
/// Returns a per-column flag vector (indexed by column) when any may be partial.
fn read_partial_bits(buf: &mut ParseBuf<'_>, json_cols: &[usize]) -> Result<Option<Vec<bool>>, String> {
    let options = buf.checked_eat_lenenc_int().ok_or("truncated row: value options")?;
    if options & PARTIAL_JSON_UPDATES == 0 {
        return Ok(None);
    }
    let bytes = buf
        .checked_eat(json_cols.len().div_ceil(8))
        .ok_or("truncated row: partial JSON bitmap")?;
    let mut flags = vec![false; json_cols.iter().max().map_or(0, |m| m + 1)];
    for (k, &col) in json_cols.iter().enumerate() {
        flags[col] = bytes[k / 8] & (1 << (k % 8)) != 0;
    }
    Ok(Some(flags))
}

fn read_image<'a>(
    buf: &mut ParseBuf<'a>,
    schema: &'a TableSchema,
    cols: &[usize],
    names: &ImageNames,
    partial_json: Option<&[bool]>,
) -> Result<RowImage, String> {
    let null_bitmap = buf
        .checked_eat(cols.len().div_ceil(8))
        .ok_or("truncated row: null bitmap")?;
    let mut values = Vec::with_capacity(cols.len());
    for (k, &i) in cols.iter().enumerate() {
        if null_bitmap[k / 8] & (1 << (k % 8)) != 0 {
            values.push(Value::Null);
            continue;
        }
        let col = &schema.columns[i];
        let is_partial = partial_json.is_some_and(|p| p.get(i).copied().unwrap_or(false));
        values.push(read_cell(buf, col, is_partial).map_err(|e| format!("column `{}`: {e}", col.name))?);
    }
    Ok(RowImage {
        columns: names.0.clone(),
        positions: names.1.clone(),
        values,
    })
}
