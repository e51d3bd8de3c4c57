//! The live reader against the real MariaDB zones of testenv: a type matrix written with
//! SQL in zone a and read back through the replica stream with every value exact, and
//! the `drc binlog tail` / `drc check` commands end to end.
//!
//! Run: `testenv/up.sh && cargo nextest run --test live_reader`.

mod common;

use common::*;
use drc::model::{Change, Op, RowChange, Value};
use drc::mysql::reader::live::{LiveReader, LiveSettings, StartSpec};
use drc::mysql::reader::Limits;
use std::time::Duration;

fn settings(port: u16, replica_id: u32) -> LiveSettings {
    LiveSettings {
        zone: "a".into(),
        addr: format!("127.0.0.1:{port}"),
        opts: opts(port),
        replica_server_id: replica_id,
        limits: Limits::default(),
        heartbeat: Duration::from_secs(1),
        max_backoff: Duration::from_secs(1),
    }
}

/// Reads row changes of `db` until `n` rows arrived (or 30 s pass).
async fn read_rows(reader: &mut LiveReader, db: &str, n: usize) -> Vec<RowChange> {
    let mut rows = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while rows.len() < n {
        let batch = tokio::time::timeout_at(deadline, reader.next())
            .await
            .unwrap_or_else(|_| panic!("timed out with {} of {n} rows", rows.len()))
            .expect("reader");
        for tx in batch {
            assert_eq!(&*tx.zone, "a");
            for c in tx.changes {
                if let Change::Row(r) = c {
                    if &*r.db == db {
                        rows.push(r);
                    }
                }
            }
        }
    }
    rows
}

const MATRIX_DDL: &str = "CREATE TABLE m (
  id INT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT, miu MEDIUMINT UNSIGNED,
  i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  d DECIMAL(20,6), dn DECIMAL(5,2), f FLOAT, dbl DOUBLE,
  dt DATE, dtm DATETIME(6), dtm0 DATETIME, tm TIME(3), tmn TIME, ts TIMESTAMP(6) NULL, y YEAR,
  b BIT(10), e ENUM('a','b','c'), s SET('x','y','z'),
  c CHAR(10), vc VARCHAR(100), l1 VARCHAR(20) CHARACTER SET latin1, gb VARCHAR(20) CHARACTER SET gbk, tx TEXT,
  bn BINARY(4), vb VARBINARY(10), bl BLOB, j JSON, g GEOMETRY NULL, n INT, tm2 TIME(2), tm1 TIME(1)
) CHARACTER SET utf8mb4";

const MATRIX_ROW: &str = "INSERT INTO m VALUES (1,
  -128, 255, -32768, -8388608, 16777215,
  -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,
  -12345678901234.123456, -0.05, 1.5, -2.2250738585072014e-308,
  '1000-01-01', '9999-12-31 23:59:59.999999', '2024-02-29 12:00:00', '-12:34:56.789', '-838:59:59',
  '2038-01-19 03:14:07.999999', 2155,
  b'1010101010', 'c', 'x,z',
  'héllo', '日本語🎉', 'café', '中文', 'line1\\nline2 \\'q\\' \\\\ end',
  x'00FF1000', x'DEADBEEF', x'0001FEFF', '{\"a\": [1, 2.5, \"x\"], \"b\": null}', ST_GeomFromText('POINT(1 2)'), NULL,
  '-12:34:56.78', '-00:00:00.5')";

fn expected_row1() -> Vec<(&'static str, Value)> {
    use Value::*;
    let mut point = vec![0u8, 0, 0, 0, 1, 1, 0, 0, 0];
    point.extend_from_slice(&1f64.to_le_bytes());
    point.extend_from_slice(&2f64.to_le_bytes());
    vec![
        ("id", Int(1)),
        ("ti", Int(-128)),
        ("tiu", UInt(255)),
        ("si", Int(-32768)),
        ("mi", Int(-8388608)),
        ("miu", UInt(16777215)),
        ("i", Int(-2147483648)),
        ("iu", UInt(4294967295)),
        ("bi", Int(i64::MIN)),
        ("biu", UInt(u64::MAX)),
        ("d", Decimal("-12345678901234.123456".into())),
        ("dn", Decimal("-0.05".into())),
        ("f", Float(1.5)),
        ("dbl", Double(-2.2250738585072014e-308)),
        ("dt", Date("1000-01-01".into())),
        ("dtm", DateTime("9999-12-31 23:59:59.999999".into())),
        ("dtm0", DateTime("2024-02-29 12:00:00".into())),
        ("tm", Time("-12:34:56.789".into())),
        ("tmn", Time("-838:59:59".into())),
        (
            "ts",
            Timestamp {
                secs: 2147483647,
                micros: 999999,
                fsp: 6,
            },
        ),
        ("y", Year(2155)),
        (
            "b",
            Bit {
                value: 0b1010101010,
                width: 10,
            },
        ),
        (
            "e",
            Enum {
                index: 3,
                label: Some("c".into()),
            },
        ),
        (
            "s",
            Set {
                mask: 0b101,
                labels: Some("x,z".into()),
            },
        ),
        ("c", Text("héllo".into())),
        ("vc", Text("日本語🎉".into())),
        ("l1", Text("café".into())),
        ("gb", Text("中文".into())),
        ("tx", Text("line1\nline2 'q' \\ end".into())),
        ("bn", Bytes(vec![0x00, 0xff, 0x10, 0x00])),
        ("vb", Bytes(vec![0xde, 0xad, 0xbe, 0xef])),
        ("bl", Bytes(vec![0x00, 0x01, 0xfe, 0xff])),
        ("j", Text("{\"a\": [1, 2.5, \"x\"], \"b\": null}".into())),
        ("g", Bytes(point)),
        ("n", Null),
        // negative times with 1-2 fractional digits (mysql_common 0.37 wraps them)
        ("tm2", Time("-12:34:56.78".into())),
        ("tm1", Time("-00:00:00.5".into())),
    ]
}

/// Every column type, written with SQL in zone a, read back exactly through the stream.
#[tokio::test]
async fn type_matrix_is_exact_through_the_live_stream() {
    let db = format!("drc_matrix_{}", std::process::id());
    exec(
        ZONE_A,
        &[
            &format!("DROP DATABASE IF EXISTS {db}"),
            &format!("CREATE DATABASE {db}"),
        ],
    )
    .await;
    let mut reader = LiveReader::start(settings(ZONE_A, 2101), None, &StartSpec::Now)
        .await
        .unwrap();
    exec(
        ZONE_A,
        &[
            &format!("USE {db}"),
            MATRIX_DDL,
            MATRIX_ROW,
            "INSERT INTO m (id) VALUES (2)",
            "UPDATE m SET ti = 127, vc = NULL WHERE id = 1",
            "DELETE FROM m WHERE id = 2",
        ],
    )
    .await;
    let rows = read_rows(&mut reader, &db, 4).await;
    exec(ZONE_A, &[&format!("DROP DATABASE {db}")]).await;

    let want = expected_row1();
    let names: Vec<&str> = want.iter().map(|(n, _)| *n).collect();
    let ins = &rows[0];
    assert_eq!(ins.op, Op::Insert);
    assert_eq!(&*ins.pk, [std::sync::Arc::<str>::from("id")]);
    let after = ins.after.as_ref().unwrap();
    let got_names: Vec<&str> = after.columns.iter().map(|c| &**c).collect();
    assert_eq!(got_names, names, "column names from binlog_row_metadata=FULL");
    for (name, v) in &want {
        assert_eq!(after.get(name), Some(v), "column {name}");
    }
    // Row 2: everything NULL but the key.
    let nulls = rows[1].after.as_ref().unwrap();
    assert_eq!(nulls.values[0], Value::Int(2));
    assert!(
        nulls.values[1..].iter().all(|v| *v == Value::Null),
        "{:?}",
        nulls.values
    );
    // Update: full before and after images.
    let upd = &rows[2];
    assert_eq!(upd.op, Op::Update);
    assert_eq!(upd.before.as_ref().unwrap().get("ti"), Some(&Value::Int(-128)));
    assert_eq!(upd.after.as_ref().unwrap().get("ti"), Some(&Value::Int(127)));
    assert_eq!(upd.after.as_ref().unwrap().get("vc"), Some(&Value::Null));
    assert_eq!(
        upd.after.as_ref().unwrap().get("d"),
        Some(&Value::Decimal("-12345678901234.123456".into()))
    );
    assert_eq!(rows[3].op, Op::Delete);
    assert_eq!(rows[3].before.as_ref().unwrap().values[0], Value::Int(2));

    // The JSON form of the values (what `drc binlog tail` prints).
    let json = serde_json::to_value(after).unwrap();
    assert_eq!(json["biu"], serde_json::json!(18446744073709551615u64));
    assert_eq!(json["d"], "-12345678901234.123456");
    assert_eq!(json["ts"], "2038-01-19 03:14:07.999999");
    assert_eq!(json["bn"], serde_json::json!({"base64": "AP8QAA=="}));
    assert_eq!(json["s"], "x,z");
    assert_eq!(json["f"], serde_json::json!(1.5));
}

/// Transactions carry the zone, GTID, server id and a commit timestamp with at least
/// millisecond precision; the checkpoint is the server's GTID position after them.
#[tokio::test]
async fn transactions_are_tagged_and_positioned() {
    let db = format!("drc_tag_{}", std::process::id());
    exec(
        ZONE_A,
        &[
            &format!("DROP DATABASE IF EXISTS {db}"),
            &format!("CREATE DATABASE {db}"),
            &format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)"),
        ],
    )
    .await;
    let mut reader = LiveReader::start(settings(ZONE_A, 2102), None, &StartSpec::Now)
        .await
        .unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    exec(ZONE_A, &[&format!("INSERT INTO {db}.t VALUES (1), (2)")]).await;
    let after_write = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let mut found = None;
    while found.is_none() {
        for tx in tokio::time::timeout(Duration::from_secs(30), reader.next())
            .await
            .unwrap()
            .unwrap()
        {
            if tx.changes.iter().any(|c| matches!(c, Change::Row(r) if *r.db == *db)) {
                found = Some(tx);
            }
        }
    }
    let tx = found.unwrap();
    exec(ZONE_A, &[&format!("DROP DATABASE {db}")]).await;
    assert!(tx.last && tx.row_count() == 2);
    assert_eq!(tx.server_id, 1);
    let gtid = tx.gtid.as_ref().unwrap().to_string();
    assert!(gtid.starts_with("1-1-"), "zone a writes in domain 1: {gtid}");
    assert_eq!(tx.ts_source, drc::model::TsSource::ArrivalRefined);
    // Arrival-refined time lies between the write and its arrival (ms precision or better).
    assert!(
        tx.commit_ts_us >= before - 1_000_000 && tx.commit_ts_us <= after_write + 1_000_000,
        "{} not in [{before}, {after_write}]",
        tx.commit_ts_us
    );
    assert!(tx.commit_ts_us % 1000 != 0 || tx.commit_ts_us % 1_000_000 != 0);
    let cp = tx.checkpoint.unwrap();
    let mut c = conn(ZONE_A).await;
    use mysql_async::prelude::Queryable;
    let pos: String = c.query_first("SELECT @@gtid_binlog_pos").await.unwrap().unwrap();
    let server_pos: drc::position::MariaGtidPos = pos.parse().unwrap();
    let ours = match cp.gtid.unwrap() {
        drc::position::GtidState::Mariadb(p) => p,
        other => panic!("{other:?}"),
    };
    assert!(
        ours.is_reached_by(&server_pos),
        "checkpoint {ours} beyond server {server_pos}"
    );
    assert!(ours.contains(&gtid.parse().unwrap()));
}

/// A server setting drc cannot work with is a problem with its fix. Zone c (private to
/// the `zone_c_` tests, which nextest runs one at a time): this changes a global setting.
#[tokio::test]
async fn zone_c_check_catches_a_bad_server_setting() {
    testenv_up("c");
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "c", ZONE_C, 3002, "now");
    exec(
        ZONE_C,
        &[
            "SET GLOBAL binlog_row_image = 'MINIMAL'",
            "SET GLOBAL binlog_format = 'MIXED'",
        ],
    )
    .await;
    let out = std::process::Command::new(drc_bin())
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    exec(
        ZONE_C,
        &[
            "SET GLOBAL binlog_row_image = 'FULL'",
            "SET GLOBAL binlog_format = 'ROW'",
        ],
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains("PROBLEM binlog_row_image") && text.contains("set binlog_row_image=FULL"),
        "{text}"
    );
    assert!(
        text.contains("PROBLEM binlog_format") && text.contains("set binlog_format=ROW"),
        "{text}"
    );
    assert!(text.contains("2 problem(s) to fix"), "{text}");
}

/// `drc check` passes on the testenv zones and names the fix for a problem.
#[tokio::test]
async fn check_reports_ready_and_problems() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "a", ZONE_A, 1001, "now");
    let out = std::process::Command::new(drc_bin())
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("is ready for drc"), "{text}");
    // A reader server id equal to the server's own is a problem with a fix, exit code 3.
    let bad = write_config(dir.path(), "a", ZONE_A, 1, "now");
    let out = std::process::Command::new(drc_bin())
        .args(["check", "--format", "json", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let findings: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let p = findings.iter().find(|f| f["level"] == "problem").expect("a problem");
    assert_eq!(p["check"], "server_id");
    assert!(p["fix"].as_str().unwrap().contains("different [reader] server_id"));
    // Unreachable server: clear error, exit 1.
    let gone = write_config(dir.path(), "x", 1, 1001, "now");
    let out = std::process::Command::new(drc_bin())
        .args(["check", "--config"])
        .arg(&gone)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect to 127.0.0.1:1"));
}

/// `drc binlog drain` reads from a position to the server's end at the call, decodes
/// everything and reports exact counts (zone c: no other writer while it runs).
#[tokio::test]
async fn zone_c_drain_reads_to_the_end_and_counts_exactly() {
    testenv_up("c");
    let db = format!("drc_drain_{}", std::process::id());
    let pos = fresh_db_at(ZONE_C, &db, "t (id INT PRIMARY KEY, v VARCHAR(20), at DATETIME(6))").await;
    let mut stmts = Vec::new();
    for t in 0..10 {
        let values: Vec<String> = (0..100)
            .map(|i| format!("({}, 'row {i}', NOW(6))", t * 100 + i))
            .collect();
        stmts.push(format!("INSERT INTO {db}.t VALUES {}", values.join(",")));
    }
    stmts.push(format!("UPDATE {db}.t SET v = 'changed' WHERE id < 250"));
    let refs: Vec<&str> = stmts.iter().map(|s| s.as_str()).collect();
    exec(ZONE_C, &refs).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "c", ZONE_C, 8101, "now");
    let out = std::process::Command::new(drc_bin())
        .args(["binlog", "drain", "--config"])
        .arg(&cfg)
        .arg("--from")
        .arg(format!("gtid:{pos}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["transactions"], 11, "{v}");
    assert_eq!(v["rows"], 1250, "{v}");
    exec(ZONE_C, &[&format!("DROP DATABASE {db}")]).await;
}

/// The reader's table-map cache is bounded, and emptied only between transactions: a
/// multi-table UPDATE maps all its tables before its first rows event, so emptying the
/// cache while mapping them lost the first table ("unknown table id") and the reader
/// stopped. Here the bound is 1 table, the statement maps 3.
#[tokio::test]
async fn table_map_cache_is_emptied_only_between_transactions() {
    let db = format!("drc_maps_{}", std::process::id());
    let mut ddl = vec![format!("DROP DATABASE IF EXISTS {db}"), format!("CREATE DATABASE {db}")];
    for t in ["t1", "t2", "t3"] {
        ddl.push(format!("CREATE TABLE {db}.{t} (id INT PRIMARY KEY, v INT)"));
        ddl.push(format!("INSERT INTO {db}.{t} VALUES (1, 0), (2, 0)"));
    }
    let ddl: Vec<&str> = ddl.iter().map(|s| s.as_str()).collect();
    exec(ZONE_A, &ddl).await;
    let mut s = settings(ZONE_A, 2104);
    s.limits.max_tables = 1;
    let mut reader = LiveReader::start(s, None, &StartSpec::Now).await.unwrap();
    for round in 1..=3 {
        exec(
            ZONE_A,
            &[&format!(
                "UPDATE {db}.t1 JOIN {db}.t2 USING (id) JOIN {db}.t3 USING (id) SET t1.v = {round}, t2.v = {round}, t3.v = {round}"
            )],
        )
        .await;
    }
    let rows = read_rows(&mut reader, &db, 18).await;
    exec(ZONE_A, &[&format!("DROP DATABASE {db}")]).await;
    let mut tables: Vec<&str> = rows.iter().map(|r| &*r.table).collect();
    tables.sort();
    tables.dedup();
    assert_eq!(tables, ["t1", "t2", "t3"], "every table's rows arrive");
    assert!(rows.iter().all(|r| r.op == Op::Update));
}
