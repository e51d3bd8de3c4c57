//! The applier driven by the pipeline from an in-memory source, without a binlog:
//! the run loop, group commit, and the durable position, against zone b's MariaDB.

mod common;

use common::*;
use drc::error::Error;
use drc::model::{Change, Op, RowChange, RowImage, Transaction, TsSource, Value};
use drc::mysql::applier::apply::{Applier, ApplierSettings};
use drc::mysql::applier::sink::ApplierSink;
use drc::pipeline::{self, Shutdown, Source};
use drc::position::{Checkpoint, FilePos};
use mysql_async::prelude::Queryable;
use std::collections::VecDeque;
use std::sync::Arc;

/// Transactions from memory; ends when empty.
struct Memory(VecDeque<Transaction>);

impl Source for Memory {
    type Item = Transaction;
    async fn next(&mut self) -> Result<Option<Transaction>, Error> {
        Ok(self.0.pop_front())
    }
    fn has_ready(&mut self) -> bool {
        !self.0.is_empty()
    }
}

fn tx(db: &str, n: u64, id: i64, v: &str) -> Transaction {
    let columns: Arc<[Arc<str>]> = vec![Arc::from("id"), Arc::from("v"), Arc::from("updated_at")].into();
    let img = RowImage {
        columns,
        positions: None,
        values: vec![
            Value::Int(id),
            Value::Text(v.into()),
            Value::DateTime(format!("2030-01-01 00:00:{:02}.000001", n % 60)),
        ],
    };
    Transaction {
        zone: "x".into(),
        server_id: 77,
        gtid: None,
        xid: Some(n),
        file: "x-bin.000001".into(),
        start_pos: 100 * n,
        commit_ts_us: 1_900_000_000_000_000 + n as i64,
        ts_source: TsSource::HeaderSeconds,
        fragment: 0,
        last: true,
        ddl: false,
        changes: vec![Change::Row(RowChange {
            db: db.into(),
            table: "t".into(),
            op: Op::Insert,
            pk: vec![Arc::from("id")].into(),
            before: None,
            after: Some(img),
            pos: 100 * n + 50,
            ts: 0,
        })],
        checkpoint: Some(Checkpoint {
            file: FilePos {
                file: "x-bin.000001".into(),
                pos: 100 * n + 99,
            },
            gtid: None,
        }),
        skipped_rows: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applier_applies_an_in_memory_source_and_stores_its_position() {
    let db = "drc_pipeline_mem";
    fresh_db_at(
        ZONE_B,
        db,
        "t (id BIGINT PRIMARY KEY, v VARCHAR(20), updated_at DATETIME(6) NOT NULL)",
    )
    .await;
    let s = Arc::new(ApplierSettings {
        zone: "b".into(),
        databases: vec![db.into()],
        version_column: "updated_at".into(),
        id_ranges: Default::default(),
        range_policy: Default::default(),
        addr: format!("127.0.0.1:{ZONE_B}"),
        channel: "pipeline-mem".into(),
        unversioned: vec![],
        missing_table_wait: std::time::Duration::from_secs(5),
        skip_shadow_tables: true,
        tables: Default::default(),
        exclude_tables: Default::default(),
        ddl_home: Default::default(),
        global_tables: Default::default(),
    });
    let mut ap = Applier::connect(opts(ZONE_B), s.clone()).await.unwrap();
    ap.init_schema().await.unwrap();
    conn(ZONE_B)
        .await
        .exec_drop("DELETE FROM drc.applied WHERE origin_zone = ?", ("x/pipeline-mem",))
        .await
        .unwrap();
    // 500 one-row transactions, the last 100 rewriting earlier keys
    let mut txs: VecDeque<Transaction> = (1..=500u64)
        .map(|n| tx(db, n, (if n > 400 { n - 400 } else { n }) as i64, &format!("v{n}")))
        .collect();
    // and, among them, a transaction of two fragments in a database that is not
    // replicated: nothing to apply, not counted
    let mut first = tx("not_replicated_here", 250, 1, "x");
    first.last = false;
    first.checkpoint = None;
    let mut second = tx("not_replicated_here", 250, 2, "y");
    second.fragment = 1;
    txs.insert(250, second);
    txs.insert(250, first);
    let dir = drc::telemetry::status::registry().direction("x");
    pipeline::run(Memory(txs), ApplierSink::new(ap, "x"), Some(&dir), &Shutdown::never())
        .await
        .unwrap();
    let mut c = conn(ZONE_B).await;
    let n: u64 = c
        .query_first(format!("SELECT COUNT(*) FROM `{db}`.t"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 400);
    let v: String = c
        .query_first(format!("SELECT v FROM `{db}`.t WHERE id = 7"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v, "v407", "the later write of key 7 wins");
    let counted: u64 = c
        .query_first("SELECT applied_txns FROM drc.applied WHERE origin_zone = 'x/pipeline-mem'")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(counted, 500, "the other database's transaction is not counted");
    // the position of the last transaction is durable, with the rows
    let mut ap = Applier::connect(opts(ZONE_B), s).await.unwrap();
    let pos = ap.applied_position("x").await.unwrap().expect("position stored");
    assert_eq!(pos.file.file, "x-bin.000001");
    assert_eq!(pos.file.pos, 100 * 500 + 99);
}
