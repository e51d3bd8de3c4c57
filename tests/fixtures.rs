//! Decoder vs the reference: every real MySQL/MariaDB binlog in
//! `tests/fixtures/mysql-binlogs/` (override with DRC_FIXTURES) is decoded by drc
//! and compared, row by row and cell by cell, with what
//! `mariadb-binlog --base64-output=decode-rows -v` prints for it. Files the reference
//! cannot decode (binary JSON, compressed payloads, VECTOR) get explicit expectations;
//! truncated/corrupt files must fail with a clear error naming the offset.
//!
//! Run: `cargo nextest run --test fixtures` (needs the `mariadb-binlog` client:
//! testenv/up.sh installs it).

use base64::Engine;
use drc::model::{Change, Op, RowChange, Value};
use drc::mysql::reader::file::read_file;
use drc::mysql::reader::Limits;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures_dir() -> PathBuf {
    let dir = std::env::var_os("DRC_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mysql-binlogs"));
    assert!(
        dir.is_dir(),
        "fixture directory {} is missing (set DRC_FIXTURES)",
        dir.display()
    );
    dir
}

fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join(name)
}

/// A row as the reference prints it: op, `db`.`table`, and (column number, text) pairs.
#[derive(Debug)]
struct RefRow {
    op: Op,
    table: String,
    before: Vec<(usize, String)>,
    after: Vec<(usize, String)>,
}

fn reference_rows(path: &Path) -> Vec<RefRow> {
    let out = Command::new("mariadb-binlog")
        .args(["--base64-output=decode-rows", "-v"])
        .arg(path)
        .output()
        .expect("mariadb-binlog runs (install mariadb-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows: Vec<RefRow> = Vec::new();
    let mut into_after = true;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("### ") else {
            continue;
        };
        let start = |op, t: &str| RefRow {
            op,
            table: t.to_string(),
            before: vec![],
            after: vec![],
        };
        if let Some(t) = rest.strip_prefix("INSERT INTO ") {
            rows.push(start(Op::Insert, t));
        } else if let Some(t) = rest.strip_prefix("UPDATE ") {
            rows.push(start(Op::Update, t));
        } else if let Some(t) = rest.strip_prefix("DELETE FROM ") {
            rows.push(start(Op::Delete, t));
        } else if rest == "WHERE" {
            into_after = false;
        } else if rest == "SET" {
            into_after = true;
        } else if let Some(cell) = rest.trim_start().strip_prefix('@') {
            let (n, v) = cell.split_once('=').expect("@N=value");
            let row = rows.last_mut().expect("cell after a row header");
            let entry = (n.parse::<usize>().unwrap(), v.to_string());
            if into_after && row.op != Op::Delete {
                row.after.push(entry)
            } else {
                row.before.push(entry)
            }
        }
    }
    rows
}

fn drc_rows(path: &Path) -> Result<Vec<RowChange>, String> {
    let mut rows = Vec::new();
    read_file(path, "", Limits::default(), |tx| {
        for c in tx.changes {
            if let Change::Row(r) = c {
                rows.push(r);
            }
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    Ok(rows)
}

/// Undoes mariadb-binlog's quoting: `'..'` with `\'`, `\\` and `\xNN` escapes.
fn unquote(s: &str) -> Option<Vec<u8>> {
    let s = s.strip_prefix('\'')?.strip_suffix('\'')?;
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            if b[i + 1] == b'x' && i + 3 < b.len() {
                out.push(u8::from_str_radix(std::str::from_utf8(&b[i + 2..i + 4]).ok()?, 16).ok()?);
                i += 4;
                continue;
            }
            out.push(b[i + 1]);
            i += 2;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    Some(out)
}

fn digits(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_digit() || *c == '-').collect()
}

fn bits(s: &str) -> Option<u64> {
    let s = s.strip_prefix("b'")?.strip_suffix('\'')?;
    u64::from_str_radix(s, 2).ok()
}

/// Does drc's value agree with the reference's text for it?
fn agrees(ours: &Value, theirs: &str) -> bool {
    let theirs = theirs.trim();
    if theirs.starts_with("!!") {
        return true; // the reference cannot decode this type (it says so); nothing to compare
    }
    if theirs == "NULL" {
        return *ours == Value::Null;
    }
    // mariadb-binlog prints a negative integer as `-1 (4294967295)`: its signed
    // reading, then in parentheses its unsigned one; a non-negative one once
    let (signed, unsigned) = {
        let (a, b) = theirs.split_once(" (").unwrap_or((theirs, ""));
        let a: Option<i128> = a.parse().ok();
        let b: Option<i128> = b.strip_suffix(')').and_then(|b| b.parse().ok());
        (a, b.or(a))
    };
    match ours {
        Value::Null => false,
        Value::Int(i) => signed == Some(*i as i128),
        Value::UInt(u) => unsigned == Some(*u as i128),
        Value::Float(f) => theirs
            .parse::<f64>()
            .is_ok_and(|t| (t - *f as f64).abs() <= 1e-5 * t.abs().max(1.0)),
        Value::Double(d) => theirs
            .parse::<f64>()
            .is_ok_and(|t| (t - d).abs() <= 1e-9 * t.abs().max(1.0)),
        Value::Decimal(d) => theirs == d,
        Value::Year(y) => theirs.parse::<u16>() == Ok(*y),
        Value::Date(t) | Value::DateTime(t) | Value::Time(t) => digits(theirs) == digits(t),
        Value::Timestamp { secs, micros, .. } => {
            let (s, us) = theirs.split_once('.').unwrap_or((theirs, "0"));
            s.parse::<i64>() == Ok(*secs) && us.parse::<u32>() == Ok(*micros)
        }
        Value::Bit { value, .. } => bits(theirs) == Some(*value),
        Value::Enum { index, .. } => theirs.parse::<u16>() == Ok(*index),
        Value::Set { mask, .. } => bits(theirs).or_else(|| theirs.parse().ok()) == Some(*mask),
        Value::Text(t) => unquote(theirs)
            .is_some_and(|b| b == t.as_bytes() || encoding_rs::WINDOWS_1252.encode(t).0.as_ref() == b.as_slice()),
        Value::Bytes(b) => unquote(theirs).is_some_and(|x| &x == b),
        Value::Json(j) => unquote(theirs).is_some_and(|x| x == j.as_bytes()),
        Value::JsonDiff(_) => true,
    }
}

fn compare_image(file: &str, row: usize, what: &str, ours: Option<&drc::model::RowImage>, theirs: &[(usize, String)]) {
    let Some(img) = ours else {
        assert!(
            theirs.is_empty(),
            "{file} row {row}: reference has a {what} image, drc none"
        );
        return;
    };
    assert_eq!(img.values.len(), theirs.len(), "{file} row {row} {what}: column count");
    for (i, (v, (n, t))) in img.values.iter().zip(theirs).enumerate() {
        assert_eq!(img.position(i) + 1, *n, "{file} row {row} {what}: column position");
        assert!(
            agrees(v, t),
            "{file} row {row} {what} @{n}: drc {v:?} vs mariadb-binlog {t}"
        );
    }
}

/// Files the reference decodes: drc must agree on every row it prints.
#[test]
fn agrees_with_mariadb_binlog_on_every_fixture_row() {
    let skip_unreadable = [
        "binlog_truncated_event.000001",
        "binlog_truncated_prev_gtid_event.000001",
        "corrupt-relay-bin.000624",
        "ver_5_1-wl2325_r.001",
        "bug40482-bin.000001",
    ];
    let mut compared_rows = 0;
    let mut files = 0;
    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".md") || skip_unreadable.contains(&name.as_str()) {
            continue;
        }
        let theirs = reference_rows(&path);
        let ours = drc_rows(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        if theirs.is_empty() {
            continue; // checked by the MySQL-only tests below
        }
        files += 1;
        assert_eq!(ours.len(), theirs.len(), "{name}: row count (drc vs mariadb-binlog)");
        for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(o.op, t.op, "{name} row {i}: op");
            assert_eq!(format!("`{}`.`{}`", o.db, o.table), t.table, "{name} row {i}: table");
            compare_image(&name, i, "before", o.before.as_ref(), &t.before);
            compare_image(&name, i, "after", o.after.as_ref(), &t.after);
            compared_rows += 1;
        }
    }
    // The fixture README lists 10 files with `### ` lines (34 rows in all).
    eprintln!("compared {compared_rows} rows in {files} files");
    assert!(files >= 10, "only {files} fixture files had reference rows");
    assert!(compared_rows >= 34, "only {compared_rows} rows compared");
}

/// Truncated and corrupt files end with an error naming the file and the offset.
#[test]
fn truncated_and_corrupt_files_fail_cleanly() {
    for (name, offset) in [
        ("binlog_truncated_event.000001", 4),
        ("binlog_truncated_prev_gtid_event.000001", 120),
        ("corrupt-relay-bin.000624", 91204),
        ("ver_5_1-wl2325_r.001", 428),
    ] {
        let err = drc_rows(&fixture(name)).expect_err(name);
        assert!(err.contains(name), "{name}: error does not name the file: {err}");
        assert!(
            err.contains(&format!("at offset {offset}")),
            "{name}: error does not name offset {offset}: {err}"
        );
    }
    let err = drc_rows(&fixture("bug40482-bin.000001")).expect_err("incident");
    assert!(err.contains("INCIDENT"), "{err}");
    // Not a binlog at all.
    let err = drc_rows(&fixture("README.md")).expect_err("readme");
    assert!(err.contains("not a binlog file"), "{err}");
}

fn only_row(rows: &[RowChange], i: usize) -> &drc::model::RowImage {
    rows[i].after.as_ref().expect("after image")
}

/// MySQL binary JSON, which the reference cannot decode.
#[test]
fn mysql_binary_json_to_json_text() {
    let rows = drc_rows(&fixture("json-opaque.binlog")).unwrap();
    let docs: Vec<serde_json::Value> = (0..rows.len())
        .map(|i| match &only_row(&rows, i).values[0] {
            Value::Json(t) => serde_json::from_str(t).unwrap(),
            v => panic!("row {i}: {v:?}"),
        })
        .collect();
    let want = [
        serde_json::json!({"a": "base64:type15:VQ=="}),
        serde_json::json!({"b": "2012-03-18"}),
        serde_json::json!({"c": "2012-03-18 11:30:45.000000"}),
        serde_json::json!({"c": "87:31:46.654321"}),
        serde_json::json!({"d": "123.456"}),
        serde_json::json!({"e": "9.00"}),
        serde_json::json!({"e": [0, 1, true, false]}),
        serde_json::json!({"e": null}),
    ];
    assert_eq!(docs, want);
}

/// MySQL 8 compressed transaction payloads (zstd), which the reference cannot decode.
#[test]
fn mysql_compressed_transaction_payload() {
    let rows = drc_rows(&fixture("transaction_compression.000001")).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].op, Op::Insert);
    assert_eq!((&*rows[0].db, &*rows[0].table), ("test", "tb1"));
    assert_eq!(only_row(&rows, 0).values, vec![Value::Int(1)]);
}

/// MySQL 9 VECTOR columns: kept as exact bytes.
#[test]
fn mysql_vector_columns_are_bytes() {
    let rows = drc_rows(&fixture("vector.binlog")).unwrap();
    let first = only_row(&rows, 0);
    assert_eq!(
        first.values[1],
        Value::Bytes(vec![205, 204, 140, 63, 205, 204, 12, 64, 51, 51, 83, 64])
    );
}

/// MySQL 8 GTIDs (plain and tagged) and microsecond commit timestamps.
#[test]
fn mysql_gtids_and_commit_timestamps() {
    let mut txs = Vec::new();
    read_file(
        &fixture("binlog_transaction_with_GTID_TAG.000001"),
        "a",
        Limits::default(),
        |tx| {
            txs.push(tx);
            Ok(())
        },
    )
    .unwrap();
    let last = txs.iter().rev().find(|t| t.last).expect("a transaction");
    let gtid = last.gtid.as_ref().expect("gtid").to_string();
    assert!(gtid.split(':').count() == 3, "tagged GTID expected, got {gtid}");
    assert_eq!(last.ts_source, drc::model::TsSource::OriginalCommit);
    assert!(last.commit_ts_us % 1_000_000 != 0, "microsecond precision expected");
    let cp = last.checkpoint.as_ref().unwrap();
    assert!(cp.gtid.as_ref().unwrap().contains(last.gtid.as_ref().unwrap()));
}

/// MariaDB: GTID 162, annotate 160, checkpoint 161, GTID list 163, full row metadata.
#[test]
fn mariadb_events_and_full_metadata() {
    let mut txs = Vec::new();
    read_file(&fixture("mariadb-bin.000001"), "a", Limits::default(), |tx| {
        txs.push(tx);
        Ok(())
    })
    .unwrap();
    let gtids: Vec<String> = txs.iter().map(|t| t.gtid.as_ref().unwrap().to_string()).collect();
    assert_eq!(gtids, ["0-1-1", "0-1-2"]);
    let Change::Row(r) = &txs[0].changes[0] else { panic!() };
    assert_eq!(&*r.pk, [std::sync::Arc::<str>::from("id")]);
    let after = r.after.as_ref().unwrap();
    let names: Vec<&str> = after.columns.iter().map(|c| &**c).collect();
    assert_eq!(names, ["id", "topic", "event_type", "event", "created"]);
    assert_eq!(after.get("topic"), Some(&Value::Text("foo".into())));
    assert_eq!(
        after.get("event_type"),
        Some(&Value::Enum {
            index: 2,
            label: Some("JSON".into())
        })
    );
    assert_eq!(
        after.get("created"),
        Some(&Value::Timestamp {
            secs: 1650493084,
            micros: 0,
            fsp: 0
        })
    );
    let Some(Value::Bytes(b)) = after.get("event") else {
        panic!()
    };
    assert_eq!(base64::engine::general_purpose::STANDARD.encode(b), "eyJmb28iOjF9");
    let cp = txs[1].checkpoint.as_ref().unwrap();
    assert_eq!(cp.file.to_string(), "mariadb-bin.000001:1074");
    assert_eq!(cp.gtid.as_ref().unwrap().to_string(), "0-1-2");
}

/// A transaction is handed on in bounded fragments, the checkpoint only on the last.
#[test]
fn large_transactions_arrive_in_fragments() {
    let mut txs = Vec::new();
    let limits = Limits {
        max_rows: 2,
        max_bytes: 1 << 20,
        ..Limits::default()
    };
    read_file(&fixture("write-full-row.binlog"), "", limits, |tx| {
        txs.push(tx);
        Ok(())
    })
    .unwrap();
    let mut rows_all = 0;
    for t in &txs {
        assert!(t.changes.len() <= 2);
        assert_eq!(t.last, t.checkpoint.is_some());
        rows_all += t.changes.len();
    }
    assert!(
        txs.iter().any(|t| t.fragment > 0),
        "expected a multi-fragment transaction"
    );
    assert_eq!(rows_all, drc_rows(&fixture("write-full-row.binlog")).unwrap().len());
}
