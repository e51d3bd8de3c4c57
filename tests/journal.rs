//! The journal (`src/mysql/journal`) against a real server, one transaction at a time,
//! with a restart placed exactly where a kill of the daemon can fall: between the
//! journal's commit of one local transaction and its reading of the next.
//!
//! * A pending raise survives the restart. Zone b's local update went back in version
//!   (statement time older than the row it replaced) and the row moved on before the
//!   journal could raise it, so the key's next write owes the raise. The journal
//!   commits, the daemon dies, a new journal reads that next write: it must still
//!   raise it (the owed floor is a row of `drc.journal_pending`, committed with the
//!   position). Forgetting it left a row in one zone below a version the other zone
//!   holds: a divergence the ten-thousand-writes kill test found in CI.
//!
//! * A pending undo survives the restart. An applier inserted a key under a local
//!   delete's tombstone the journal had not recorded when the applier began (a late
//!   older write from another zone); the row moved on (a local update, still below the
//!   tombstone) before the journal could delete it again. After a restart between the
//!   two, the local update is still raised above the tombstone.
//!
//! Run: `testenv/up.sh && cargo nextest run --test journal`.

mod common;

use common::*;
use drc::model::{Change, Op, RowChange, RowImage, Transaction, TsSource, Value};
use drc::mysql::applier::apply::{meta_statements, session_opts, ApplierSettings};
use drc::mysql::journal::JournalSink;
use drc::pipeline::Sink;
use drc::position::{Checkpoint, FilePos};
use mysql_async::prelude::Queryable;
use std::sync::Arc;
use std::time::Duration;

const TABLE: &str = "t (id INT PRIMARY KEY, customer VARCHAR(32) NOT NULL, \
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";

fn settings(db: &str) -> Arc<ApplierSettings> {
    Arc::new(ApplierSettings {
        zone: "b".into(),
        databases: vec![db.to_string()],
        version_column: "updated_at".into(),
        id_ranges: Default::default(),
        range_policy: Default::default(),
        addr: format!("127.0.0.1:{ZONE_B}"),
        channel: db.to_string(),
        unversioned: vec![],
        missing_table_wait: Duration::from_secs(1),
        skip_shadow_tables: true,
        tables: Default::default(),
        exclude_tables: Default::default(),
        ddl_home: Default::default(),
        global_tables: Default::default(),
    })
}

fn row(id: i64, customer: &str, updated_at: &str) -> RowImage {
    RowImage {
        columns: ["id", "customer", "updated_at"].map(Arc::from).into(),
        positions: None,
        values: vec![
            Value::Int(id),
            Value::Text(customer.into()),
            Value::DateTime(updated_at.into()),
        ],
    }
}

fn change(db: &str, table: &str, op: Op, before: Option<RowImage>, after: Option<RowImage>) -> Change {
    Change::Row(RowChange {
        db: db.into(),
        table: table.into(),
        op,
        pk: [Arc::from("id")].into(),
        before,
        after,
        pos: 0,
        ts: 0,
    })
}

/// A transaction of zone b's binlog from `start` to `end`.
fn tx(changes: Vec<Change>, start: u64, end: u64) -> Transaction {
    Transaction {
        zone: "b".into(),
        server_id: 2,
        gtid: None,
        xid: Some(start),
        file: "zone-b-bin.000001".into(),
        start_pos: start,
        commit_ts_us: 0,
        ts_source: TsSource::HeaderSeconds,
        fragment: 0,
        last: true,
        ddl: false,
        changes,
        checkpoint: Some(Checkpoint {
            file: FilePos::new("zone-b-bin.000001", end),
            gtid: None,
        }),
        skipped_rows: 0,
    }
}

/// A local transaction of zone b updating `before` into `after`.
fn local_update(db: &str, before: RowImage, after: RowImage, start: u64, end: u64) -> Transaction {
    tx(vec![change(db, "t", Op::Update, Some(before), Some(after))], start, end)
}

/// A journal of zone b on a fresh session, its pending decisions read back as at start.
async fn journal(db: &str, floor: u64) -> JournalSink {
    let conn = mysql_async::Conn::new(session_opts(opts(ZONE_B))).await.unwrap();
    let (progress, _) = tokio::sync::watch::channel(None);
    let mut sink = JournalSink::new(conn, settings(db), FilePos::new("zone-b-bin.000001", floor), progress);
    sink.load_pending().await.unwrap();
    sink
}

/// Commits what the journal holds (its group closes after 50 ms).
async fn commit(sink: &mut JournalSink) {
    tokio::time::sleep(Duration::from_millis(120)).await;
    sink.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_raise_survives_a_restart_between_two_local_writes() {
    let db = format!("drc_journal_{}", std::process::id());
    fresh_db_at(ZONE_B, &db, TABLE).await;
    let mut c = conn(ZONE_B).await;
    for st in meta_statements() {
        c.query_drop(st).await.unwrap();
    }
    // What zone b's binlog holds: v0 (version 10 s), then v1 whose statement time went
    // back (1 s), then v2 (5 s): still below v0 the other zone may hold. The table
    // already shows v2 when the journal reads v1.
    let (t0, t1, t2) = (
        "2030-01-01 00:00:10.000000",
        "2030-01-01 00:00:01.000000",
        "2030-01-01 00:00:05.000000",
    );
    c.query_drop(format!(
        "INSERT INTO `{db}`.t (id, customer, updated_at) VALUES (1, 'v2', '{t2}')"
    ))
    .await
    .unwrap();

    let mut first = journal(&db, 100).await;
    first
        .write(local_update(&db, row(1, "v0", t0), row(1, "v1", t1), 100, 200))
        .await
        .unwrap();
    commit(&mut first).await;
    let pending: Vec<(String, Option<String>)> = c
        .exec(
            "SELECT pk, CAST(owed AS CHAR) FROM drc.journal_pending WHERE channel = ?",
            (format!("b/{db}"),),
        )
        .await
        .unwrap();
    assert_eq!(
        pending.len(),
        1,
        "the owed raise is committed with the position: {pending:?}"
    );
    assert_eq!(pending[0].1.as_deref(), Some("20300101000010.000000"));
    let at: Option<(String, u64)> = c
        .exec_first(
            "SELECT file, pos FROM drc.journal WHERE channel = ?",
            (format!("b/{db}"),),
        )
        .await
        .unwrap();
    assert_eq!(at, Some(("zone-b-bin.000001".to_string(), 200)));
    // the daemon is killed here: the journal's memory is gone
    drop(first);

    let mut second = journal(&db, 200).await;
    second
        .write(local_update(&db, row(1, "v1", t1), row(1, "v2", t2), 200, 300))
        .await
        .unwrap();
    commit(&mut second).await;
    let now: (String, String) = c
        .query_first(format!(
            "SELECT customer, CAST(updated_at AS CHAR) FROM `{db}`.t WHERE id = 1"
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        now,
        ("v2".to_string(), "2030-01-01 00:00:10.000001".to_string()),
        "the next write is raised above the version v1 went back from, after the restart too"
    );
    let left: u64 = c
        .exec_first(
            "SELECT COUNT(*) FROM drc.journal_pending WHERE channel = ?",
            (format!("b/{db}"),),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(left, 0, "the settled raise is no longer pending");
    c.query_drop(format!("DROP DATABASE `{db}`")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_undo_survives_a_restart_and_the_next_local_write_is_raised() {
    let db = format!("drc_journal_undo_{}", std::process::id());
    fresh_db_at(ZONE_B, &db, TABLE).await;
    let mut c = conn(ZONE_B).await;
    for st in meta_statements() {
        c.query_drop(st).await.unwrap();
    }
    let (tomb, ins, upd) = (
        "20300101000010.000000",
        "2030-01-01 00:00:03.000000",
        "2030-01-01 00:00:04.000000",
    );
    // the local delete's tombstone (10 s), and the row as it is now: the local update
    // (4 s) of what the applier inserted (3 s)
    c.exec_drop(
        "INSERT INTO drc.tombstones (db, tbl, pk, version) VALUES (?, 't', JSON_ARRAY(2), ?)",
        (&db, tomb),
    )
    .await
    .unwrap();
    c.query_drop(format!(
        "INSERT INTO `{db}`.t (id, customer, updated_at) VALUES (2, 'b moved', '{upd}')"
    ))
    .await
    .unwrap();
    let marker = RowImage {
        columns: ["origin_zone", "journal_file", "journal_pos"].map(Arc::from).into(),
        positions: None,
        values: vec![
            Value::Text("a".into()),
            Value::Text("zone-b-bin.000001".into()),
            Value::UInt(50),
        ],
    };
    let applier_insert = tx(
        vec![
            change("drc", "marker", Op::Update, Some(marker.clone()), Some(marker)),
            change(&db, "t", Op::Insert, None, Some(row(2, "from a", ins))),
        ],
        100,
        200,
    );
    let mut first = journal(&db, 100).await;
    first.write(applier_insert).await.unwrap();
    commit(&mut first).await;
    let pending: Option<String> = c
        .exec_first(
            "SELECT CAST(resurrected AS CHAR) FROM drc.journal_pending WHERE channel = ?",
            (format!("b/{db}"),),
        )
        .await
        .unwrap();
    assert_eq!(
        pending.as_deref(),
        Some(tomb),
        "the pending undo is committed with the position"
    );
    drop(first);

    let mut second = journal(&db, 200).await;
    second
        .write(local_update(
            &db,
            row(2, "from a", ins),
            row(2, "b moved", upd),
            200,
            300,
        ))
        .await
        .unwrap();
    commit(&mut second).await;
    let now: (String, String) = c
        .query_first(format!(
            "SELECT customer, CAST(updated_at AS CHAR) FROM `{db}`.t WHERE id = 2"
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        now,
        ("b moved".to_string(), "2030-01-01 00:00:10.000001".to_string()),
        "the local write over the resurrected row ends above the tombstone"
    );
    c.query_drop(format!("DROP DATABASE `{db}`")).await.unwrap();
}
