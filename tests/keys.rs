//! Tombstones match the key they were written for, whatever its type: DECIMAL, BINARY
//! with bytes that are not UTF-8 (two keys that differ only there), a composite key
//! of an integer and a string, and a DATETIME. A delete in zone a races an older
//! update of the same rows in zone b (both made while the daemons are down): the delete
//! wins in both zones, and the other key's update is not mistaken for a deleted one.
//!
//! Run: `testenv/up.sh && cargo nextest run --test keys`.

mod common;

use common::pair::*;
use common::*;
use mysql_async::prelude::Queryable;
use std::time::Duration;

const VERSION: &str = "updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_beats_an_older_update_for_every_key_type() {
    let tables = [
        (
            format!("CREATE TABLE dec_keys (k DECIMAL(10,2) PRIMARY KEY, v VARCHAR(20) NOT NULL, {VERSION})"),
            "dec_keys",
            ["1.50", "2.00", "-3.25"],
        ),
        (
            format!("CREATE TABLE bin_keys (k BINARY(4) PRIMARY KEY, v VARCHAR(20) NOT NULL, {VERSION})"),
            "bin_keys",
            ["UNHEX('ff000001')", "UNHEX('fe000001')", "UNHEX('c3a90000')"],
        ),
        (
            format!(
                "CREATE TABLE pair_keys (a INT NOT NULL, b VARCHAR(10) NOT NULL, v VARCHAR(20) NOT NULL, {VERSION}, PRIMARY KEY (a, b))"
            ),
            "pair_keys",
            ["(1, 'x')", "(1, 'y')", "(2, 'x')"],
        ),
        (
            format!("CREATE TABLE time_keys (k DATETIME(3) PRIMARY KEY, v VARCHAR(20) NOT NULL, {VERSION})"),
            "time_keys",
            ["'2026-01-02 03:04:05.678'", "'2026-01-02 03:04:05.679'", "'1999-12-31 23:59:59.000'"],
        ),
    ];
    let ddl: Vec<&str> = tables.iter().map(|t| t.0.as_str()).collect();
    let mut p = Pair::new("keys", &ddl, 5371).await;
    p.start_both().await;
    let db = p.db.clone();
    let key_cols = |tbl: &str| if tbl == "pair_keys" { "(a, b)" } else { "k" };
    for (_, tbl, keys) in &tables {
        for (i, k) in keys.iter().enumerate() {
            let (cols, vals) = if *tbl == "pair_keys" {
                ("a, b, v", format!("{}, 'v{i}'", &k[1..k.len() - 1]))
            } else {
                ("k, v", format!("{k}, 'v{i}'"))
            };
            exec(ZONE_A, &[&format!("INSERT INTO `{db}`.{tbl} ({cols}) VALUES ({vals})")]).await;
        }
        assert!(wait_converged(&p, tbl, 20).await, "{tbl}: the inserts crossed");
    }
    p.kill9(0);
    p.kill9(1);
    // b updates every key; then a deletes the first two keys of each table
    for (_, tbl, keys) in &tables {
        for k in keys {
            exec(
                ZONE_B,
                &[&format!(
                    "UPDATE `{db}`.{tbl} SET v = 'b updated' WHERE {} = {k}",
                    key_cols(tbl)
                )],
            )
            .await;
        }
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    for (_, tbl, keys) in &tables {
        for k in &keys[..2] {
            exec(
                ZONE_A,
                &[&format!("DELETE FROM `{db}`.{tbl} WHERE {} = {k}", key_cols(tbl))],
            )
            .await;
        }
    }
    p.start(0);
    p.start(1);
    for (_, tbl, _) in &tables {
        assert!(
            wait_converged(&p, tbl, 30).await,
            "{tbl}: zones differ: a {:?} b {:?}\n{}",
            p.rows(0, tbl).await,
            p.rows(1, tbl).await,
            p.logs()
        );
        let rows = p.rows(0, tbl).await;
        assert_eq!(
            rows.len(),
            1,
            "{tbl}: the deletes won, the third key has b's update: {rows:?}"
        );
        assert!(rows[0].contains(&hex("b updated")), "{tbl}: {rows:?}");
    }
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02X}")).collect()
}

/// The DELETE + INSERT of one key in one transaction (sysbench's write, REPLACE) crosses
/// as one change from the deleted row to the inserted one: the zones agree, and neither
/// records a tombstone for a key that was never left deleted (the origin's journal
/// records none; a tombstone in one zone only would decide later writes differently).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_and_insert_of_one_key_in_one_transaction_cross_as_one_change() {
    let mut p = Pair::new("replace", &[ORDERS], 5381).await;
    p.start_both().await;
    let db = p.db.clone();
    let inserts: Vec<String> = (1..=40)
        // zone a's keys are the odd ones ([id_ranges])
        .map(|k| {
            format!(
                "INSERT INTO `{db}`.orders (id, customer) VALUES ({}, 'first {k}')",
                2 * k - 1
            )
        })
        .collect();
    exec(ZONE_A, &inserts.iter().map(|s| s.as_str()).collect::<Vec<_>>()).await;
    assert!(wait_converged(&p, "orders", 20).await);
    let mut c = conn(ZONE_A).await;
    for k in 1..=40 {
        let id = 2 * k - 1;
        c.query_drop("START TRANSACTION").await.unwrap();
        c.query_drop(format!("DELETE FROM `{db}`.orders WHERE id = {id}"))
            .await
            .unwrap();
        c.query_drop(format!(
            "INSERT INTO `{db}`.orders (id, customer) VALUES ({id}, 'again {k}')"
        ))
        .await
        .unwrap();
        c.query_drop("COMMIT").await.unwrap();
    }
    exec(
        ZONE_A,
        &[&format!(
            "REPLACE INTO `{db}`.orders (id, customer) VALUES (7, 'replaced')"
        )],
    )
    .await;
    p.assert_converged("orders", 20, 0).await;
    let b = conn(ZONE_B).await;
    let mut b = b;
    let (tombs, replaced): (u64, u64) = b
        .exec_first(
            format!("SELECT (SELECT COUNT(*) FROM drc.tombstones WHERE db = ?), (SELECT COUNT(*) FROM `{db}`.orders WHERE customer LIKE 'again%' OR customer = 'replaced')"),
            (&db,),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((tombs, replaced), (0, 40), "no tombstone; every key has its second row");
    assert_eq!(
        p.conflicts(1, "concurrent_delete").await + p.conflicts(1, "resurrected_after_delete").await,
        0
    );
}
