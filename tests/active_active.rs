//! Active-active between the two real MariaDB zones of testenv, through `drc run`
//! (direct transport), one daemon per zone:
//! * rows written in either zone appear in the other; concurrent writes to the same
//!   row converge; nothing loops back;
//! * 10,000 random inserts/updates/deletes in both zones on overlapping keys, with 20
//!   `kill -9`s of the daemons during the load: both zones identical row by row, every
//!   origin transaction applied exactly once (drc.applied counts = committed
//!   transactions; an echo or a repeat would raise them, a loss lower them), and the
//!   conflict log consistent with the winners;
//! * rows outside their origin zone's ID range are quarantined in both directions;
//! * the type matrix crosses zones with every cell identical (HEX);
//! * hostile identifiers replicate; a table missing in the target stops the daemon
//!   with a clear error and the position unchanged.
//!
//! Each test uses its own database and reader server ids, so tests can run at once.
//! Run: `testenv/up.sh && cargo nextest run --test active_active`.

mod common;

use common::pair::*;
use common::*;
use mysql_async::prelude::Queryable;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_cross_both_ways_and_conflicts_resolve_the_same_everywhere() {
    let mut p = Pair::new("basic", &[ORDERS], 4101).await;
    p.start_both().await;
    let db = p.db.clone();
    exec(
        ZONE_A,
        &[&format!("INSERT INTO `{db}`.orders (customer) VALUES ('from a')")],
    )
    .await;
    exec(
        ZONE_B,
        &[&format!("INSERT INTO `{db}`.orders (customer) VALUES ('from b')")],
    )
    .await;
    assert!(
        wait_converged(&p, "orders", 20).await,
        "rows did not cross: a={:?} b={:?}\n{}\n{}",
        p.rows(0, "orders").await,
        p.rows(1, "orders").await,
        p.log(0),
        p.log(1)
    );
    assert_eq!(p.rows(0, "orders").await.len(), 2);

    // Concurrent updates of the same row while the daemons are down: the later one wins in both zones;
    // and a delete in a racing an older update in b of another row.
    p.conflicting_writes_while_down(1, 2).await;
    p.start(0);
    p.start(1);
    assert!(
        wait_converged(&p, "orders", 20).await,
        "not converged: a={:?} b={:?}",
        p.rows(0, "orders").await,
        p.rows(1, "orders").await
    );
    let mut c = conn(ZONE_A).await;
    let rows: Vec<(u64, String)> = c
        .query(format!("SELECT id, customer FROM `{db}`.orders"))
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![(1, "b wrote last".to_string())],
        "later update wins, later delete wins"
    );
    assert!(p.conflicts(0, "local_row_newer").await + p.conflicts(1, "local_row_newer").await >= 1);
    // No echo: each zone applied exactly the other's transactions (2 inserts... + 1/2 updates).
    assert_eq!(p.applied_txns(1).await, 3, "zone b applied a's insert, update, delete");
    assert_eq!(p.applied_txns(0).await, 3, "zone a applied b's insert and two updates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_writes_with_kills_converge_exactly_once() {
    let mut p = Pair::new("load", &[ORDERS], 4201).await;
    p.start_both().await;
    let db = p.db.clone();
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let done = Arc::new(AtomicBool::new(false));
    let load = Load::spawn(&p, 4, 1250, seed); // 2 zones x 4 workers x 1250 = 10,000
    let killer = {
        let done = done.clone();
        tokio::spawn(async move {
            p.kill_randomly(20, seed).await;
            while !done.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            p
        })
    };
    let committed = load.finish().await;
    let (ca, cb) = (committed[0], committed[1]);
    done.store(true, Ordering::SeqCst);
    let p = killer.await.unwrap();
    eprintln!("committed transactions: zone a {ca}, zone b {cb}; 20 daemon kills");
    // Exactly once and no echo: the counts are exact.
    p.assert_applied_exactly(&[ca, cb]).await;
    p.assert_converged("orders", 30, seed).await;
    let (ra, rb) = (p.rows(0, "orders").await, p.rows(1, "orders").await);
    assert_eq!(ra, rb, "every row identical");
    // The conflict log agrees with the winners: no key ended older than a version the log says won.
    for zone in 0..2 {
        let mut c = conn(PORTS[zone]).await;
        for (resolution, why) in [
            (
                "applied_incoming",
                "a row is older than a write the conflict log says won",
            ),
            ("kept_local", "a losing write is newer than the surviving row"),
        ] {
            let bad: u64 = c
                .exec_first(
                    format!(
                        "SELECT COUNT(*) FROM drc.conflicts k JOIN `{db}`.orders o ON k.pk = JSON_ARRAY(o.id) \
                         WHERE k.db = ? AND k.resolution = ? AND k.incoming_version > CAST(o.updated_at AS DECIMAL(30,6))"
                    ),
                    (&db, resolution),
                )
                .await
                .unwrap()
                .unwrap();
            assert_eq!(bad, 0, "zone {}: {why}", ZONES[zone]);
        }
    }
    let conflicts: u64 = {
        let mut c = conn(ZONE_A).await;
        c.exec_first("SELECT COUNT(*) FROM drc.conflicts WHERE db = ?", (&db,))
            .await
            .unwrap()
            .unwrap()
    };
    eprintln!("rows at the end: {}, conflicts logged in zone a: {conflicts}", ra.len());
}

/// A local write whose statement time is older than the row it replaces: a zone whose
/// clock is behind, or an UPDATE that started, waited for a row lock the applier held
/// (a group holds its rows up to 200 ms) and then overwrote the newer row the applier
/// wrote. Its own zone keeps it (local writes do not compare versions), so unless its
/// version is raised above the replaced row (or tombstone) the other zone drops it as
/// older and the zones diverge for good: the intermittent failure of the kill tests.
/// The journal of its zone raises it after the fact; the applier's own writes are left
/// as they come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_write_older_than_the_row_it_replaces_still_wins_everywhere() {
    let mut p = Pair::new("clock", &[ORDERS, COARSE], 4831).await;
    p.start_both().await;
    let db = p.db.clone();
    let seen_in_b = |expect: &'static [(u64, &'static str)]| {
        let db = db.clone();
        async move {
            let mut c = conn(ZONE_B).await;
            let rows: Vec<(u64, String)> = c
                .query(format!("SELECT id, customer FROM `{db}`.orders ORDER BY id"))
                .await
                .unwrap();
            rows.iter().map(|(i, s)| (*i, s.as_str())).eq(expect.iter().copied())
        }
    };
    exec(
        ZONE_A,
        &[&format!("INSERT INTO `{db}`.orders (id, customer) VALUES (1, 'a')")],
    )
    .await;
    exec(
        ZONE_B,
        &[&format!("INSERT INTO `{db}`.orders (id, customer) VALUES (2, 'b')")],
    )
    .await;
    assert!(wait_converged(&p, "orders", 20).await);
    exec(
        ZONE_A,
        &[
            &format!("UPDATE `{db}`.orders SET customer = 'a again' WHERE id = 1"),
            &format!("DELETE FROM `{db}`.orders WHERE id = 2"),
        ],
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(20), || seen_in_b(&[(1, "a again")])).await,
        "b applied a's update and delete"
    );
    // zone b, its clock a minute behind, updates the row a wrote and re-inserts the key
    // a deleted: both after (and because of) what it saw
    exec(
        ZONE_B,
        &[
            "SET TIMESTAMP = UNIX_TIMESTAMP(NOW(6)) - 60",
            &format!("UPDATE `{db}`.orders SET customer = 'b after a' WHERE id = 1"),
            &format!("INSERT INTO `{db}`.orders (id, customer) VALUES (2, 'b again')"),
            // an update that changes nothing stays a no-op (no new version)
            "SET TIMESTAMP = DEFAULT",
            &format!("UPDATE `{db}`.orders SET customer = 'b again' WHERE id = 2"),
            // REPLACE deletes and inserts in one statement, at one statement time: the
            // tombstone and the new row have the same version unless the insert is raised
            &format!("REPLACE INTO `{db}`.orders (id, customer) VALUES (4, 'b replaced')"),
            &format!("REPLACE INTO `{db}`.orders (id, customer) VALUES (4, 'b replaced again')"),
        ],
    )
    .await;
    p.assert_converged("orders", 20, 0).await;
    let mut c = conn(ZONE_A).await;
    let rows: Vec<(u64, String)> = c
        .query(format!("SELECT id, customer FROM `{db}`.orders ORDER BY id"))
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            (1, "b after a".to_string()),
            (2, "b again".to_string()),
            (4, "b replaced again".to_string())
        ],
        "b's later writes win in a too"
    );
    // a's writes crossed as they were: a's insert, update, delete; b's: insert, update,
    // insert, two REPLACEs
    p.assert_applied_exactly(&[3, 5]).await;
    // b's update crossed as a successor of a's row (its before image), so a logged no
    // conflict for it; b's re-insert reached a below a's tombstone (logged once as
    // deleted_later) and then as b's journal raised it, which won
    assert_eq!(p.conflicts(0, "local_row_newer").await, 0);
    assert!(p.conflicts(0, "deleted_later").await <= 1);
    // The applier's writes keep their version: a tie (equal versions, the greater
    // content wins) is written with the version it has, not raised by the trigger.
    exec(
        ZONE_A,
        &[&format!("INSERT INTO `{db}`.orders (id, customer) VALUES (3, 'a')")],
    )
    .await;
    p.assert_converged("orders", 20, 0).await;
    p.kill9(0);
    p.kill9(1);
    for (port, who) in [(ZONE_A, "tie a"), (ZONE_B, "tie b")] {
        exec(
            port,
            &[&format!(
                "UPDATE `{db}`.orders SET customer = '{who}', updated_at = '2030-01-01 00:00:00.000001' WHERE id = 3"
            )],
        )
        .await;
    }
    p.start(0);
    p.start(1);
    p.assert_converged("orders", 20, 0).await;
    let tie: (String, String) = c
        .query_first(format!(
            "SELECT customer, CAST(updated_at AS CHAR) FROM `{db}`.orders WHERE id = 3"
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tie, ("tie b".to_string(), "2030-01-01 00:00:00.000001".to_string()));
    // A version column in whole seconds: the raise is a second, not a microsecond
    // rounded back to the same value (which would be a tie that b's smaller content
    // loses in a while b keeps it).
    exec(
        ZONE_A,
        &[&format!("INSERT INTO `{db}`.coarse (id, note) VALUES (1, 'a')")],
    )
    .await;
    p.assert_converged("coarse", 20, 0).await;
    // (in a later second than the insert: an update within the insert's second would be
    // a tie the journal raises by a second, after the fact, and b's stale update below
    // could then tie with that raise instead of following it)
    tokio::time::sleep(Duration::from_millis(1100)).await;
    exec(
        ZONE_A,
        &[&format!("UPDATE `{db}`.coarse SET note = 'a again' WHERE id = 1")],
    )
    .await;
    let b_has = || async {
        let mut c = conn(ZONE_B).await;
        let note: Option<String> = c
            .query_first(format!("SELECT note FROM `{db}`.coarse WHERE id = 1"))
            .await
            .unwrap();
        note.as_deref() == Some("a again")
    };
    assert!(wait_until(Duration::from_secs(20), b_has).await);
    exec(
        ZONE_B,
        &[
            "SET TIMESTAMP = UNIX_TIMESTAMP(NOW(6)) - 60",
            &format!("UPDATE `{db}`.coarse SET note = '0 from b' WHERE id = 1"),
        ],
    )
    .await;
    p.assert_converged("coarse", 20, 0).await;
    let note: String = c
        .query_first(format!("SELECT note FROM `{db}`.coarse WHERE id = 1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(note, "0 from b");
}

/// drc keeps nothing in the application's schemas. An older drc's triggers are
/// removed when the daemon starts (an upgrade), a table created while the daemons
/// run replicates without anything installed on it, and the application's writes
/// (deletes included) work with the drc user and schema gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_of_drc_in_the_application_tables_and_an_older_drcs_triggers_are_removed() {
    let mut p = Pair::new("keeper", &[ORDERS], 4841).await;
    let db = p.db.clone();
    // what an older drc left on the table: its tombstone and version-guard triggers
    for port in [ZONE_A, ZONE_B] {
        exec(
            port,
            &[
                &format!(
                    "CREATE TRIGGER `{db}`.drc_tombstone_orders AFTER DELETE ON `{db}`.orders FOR EACH ROW \
                     INSERT INTO drc.tombstones (db, tbl, pk, version) VALUES ('{db}', 'orders', JSON_ARRAY(OLD.id), 0) \
                     ON DUPLICATE KEY UPDATE version = version"
                ),
                &format!(
                    "CREATE TRIGGER `{db}`.drc_update_orders BEFORE UPDATE ON `{db}`.orders FOR EACH ROW SET @drc_seen = 1"
                ),
                &format!(
                    "CREATE TRIGGER `{db}`.drc_insert_orders BEFORE INSERT ON `{db}`.orders FOR EACH ROW SET @drc_seen = 1"
                ),
            ],
        )
        .await;
    }
    p.start_both().await;
    let triggers = |port: u16| {
        let db = db.clone();
        async move {
            let mut c = conn(port).await;
            let names: Vec<String> = c
                .exec(
                    "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY 1",
                    (&db,),
                )
                .await
                .unwrap();
            names
        }
    };
    assert!(triggers(ZONE_A).await.is_empty(), "{:?}", triggers(ZONE_A).await);
    assert!(triggers(ZONE_B).await.is_empty(), "{:?}", triggers(ZONE_B).await);
    let ddl = format!(
        "CREATE TABLE `{db}`.later (id BIGINT PRIMARY KEY, note VARCHAR(32) NOT NULL, \
         updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))"
    );
    for port in [ZONE_A, ZONE_B] {
        exec(port, &[&ddl]).await;
    }
    exec(
        ZONE_A,
        &[
            &format!("INSERT INTO `{db}`.later (id, note) VALUES (1, 'made in a'), (2, 'gone')"),
            &format!("DELETE FROM `{db}`.later WHERE id = 2"),
        ],
    )
    .await;
    p.assert_converged("later", 20, 0).await;
    assert_eq!(p.rows(1, "later").await.len(), 1);
    // nothing of drc in the application's schema: no trigger, no extra column or table
    for port in [ZONE_A, ZONE_B] {
        assert!(triggers(port).await.is_empty());
        let mut c = conn(port).await;
        let objects: Vec<String> = c
            .exec(
                "SELECT CONCAT(TABLE_NAME, '.', COLUMN_NAME) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY 1",
                (&db,),
            )
            .await
            .unwrap();
        assert!(
            objects.iter().all(|o| !o.to_ascii_lowercase().contains("drc")),
            "{objects:?}"
        );
    }
    // the journal recorded the local delete's tombstone (in drc's schema), and zone b
    // applied it
    for port in [ZONE_A, ZONE_B] {
        let ok = wait_until(Duration::from_secs(20), || {
            let db = db.clone();
            async move {
                let mut c = conn(port).await;
                let n: Option<u64> = c
                    .exec_first(
                        "SELECT COUNT(*) FROM drc.tombstones WHERE db = ? AND tbl = 'later' AND pk = '[2]'",
                        (&db,),
                    )
                    .await
                    .unwrap();
                n == Some(1)
            }
        })
        .await;
        assert!(ok, "tombstone of the local delete in zone port {port}\n{}", p.logs());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_outside_the_origin_range_are_quarantined_both_ways() {
    let mut p = Pair::new("ranges", &[ORDERS], 4301).await;
    p.start_both().await;
    let db = p.db.clone();
    // zone a owns odd ids, zone b even ones
    exec(
        ZONE_A,
        &[
            &format!("INSERT INTO `{db}`.orders (id, customer) VALUES (5000, 'even id written in a')"),
            &format!("INSERT INTO `{db}`.orders (customer) VALUES ('ok a')"),
        ],
    )
    .await;
    exec(
        ZONE_B,
        &[
            &format!("INSERT INTO `{db}`.orders (id, customer) VALUES (7001, 'odd id written in b')"),
            &format!("INSERT INTO `{db}`.orders (customer) VALUES ('ok b')"),
        ],
    )
    .await;
    let ok = wait_until(Duration::from_secs(20), || async {
        p.conflicts(0, "id_out_of_range").await == 1
            && p.conflicts(1, "id_out_of_range").await == 1
            && p.rows(0, "orders").await.len() == 3
            && p.rows(1, "orders").await.len() == 3
    })
    .await;
    assert!(
        ok,
        "quarantine: a={} b={}",
        p.conflicts(0, "id_out_of_range").await,
        p.conflicts(1, "id_out_of_range").await
    );
    let mut c = conn(ZONE_B).await;
    let (resolution, row): (String, String) = c
        .exec_first(
            "SELECT resolution, incoming_row FROM drc.conflicts WHERE db = ? AND kind = 'id_out_of_range'",
            (&db,),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resolution, "quarantined");
    assert!(row.contains("even id written in a"), "full row kept: {row}");
    let in_b: Vec<String> = c
        .query(format!("SELECT customer FROM `{db}`.orders ORDER BY id"))
        .await
        .unwrap();
    assert!(
        !in_b.contains(&"even id written in a".to_string()),
        "quarantined row not applied: {in_b:?}"
    );
    assert!(in_b.contains(&"ok a".to_string()));

    // A key is created by more than inserts: zone a updates the quarantined row (zone b
    // does not have it: the update would create it) and moves its own row 'ok a' to
    // an even key (a key change creates the new key). Both are quarantined in b; an
    // update of a row b has, under an even key, is an ordinary update.
    exec(
        ZONE_A,
        &[
            &format!("UPDATE `{db}`.orders SET customer = 'even id updated in a' WHERE id = 5000"),
            &format!("UPDATE `{db}`.orders SET id = 6000 WHERE customer = 'ok a'"),
            &format!("UPDATE `{db}`.orders SET customer = 'ok b, updated in a' WHERE customer = 'ok b'"),
        ],
    )
    .await;
    let ok = wait_until(Duration::from_secs(20), || async {
        p.conflicts(1, "id_out_of_range").await == 3
    })
    .await;
    let in_b: Vec<(u64, String)> = c
        .query(format!("SELECT id, customer FROM `{db}`.orders ORDER BY id"))
        .await
        .unwrap();
    assert!(
        ok,
        "zone b quarantined {} rows: {in_b:?}",
        p.conflicts(1, "id_out_of_range").await
    );
    let ok = wait_until(Duration::from_secs(20), || async {
        let rows: Vec<String> = conn(ZONE_B)
            .await
            .query(format!("SELECT customer FROM `{db}`.orders"))
            .await
            .unwrap();
        rows.contains(&"ok b, updated in a".to_string())
    })
    .await;
    assert!(ok, "the update of b's row crossed");
    let in_b: Vec<(u64, String)> = c
        .query(format!("SELECT id, customer FROM `{db}`.orders ORDER BY id"))
        .await
        .unwrap();
    assert!(
        in_b.iter().all(|(id, _)| *id != 5000 && *id != 6000),
        "no key outside zone a's range was created in b: {in_b:?}"
    );
}

/// Three zones read each other on their own: zone a's update of a row that zone c owns
/// can reach zone b before c's insert of it. Zone b applies it by last-writer-wins (c's
/// insert, older, loses when it comes), never quarantines it: a quarantine would leave
/// b without the row for good once c's insert lands under a's newer version elsewhere.
/// A key no zone owns stays quarantined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_of_a_third_zones_row_arriving_before_its_insert_is_applied() {
    let mut p = Pair::new("third_zone", &[ORDERS], 4331).await;
    // zones a and b own 1, 4, 7, … and 2, 5, 8, …; zone c owns 3, 6 and 9
    for cfg in &p.cfg {
        let text = std::fs::read_to_string(cfg).unwrap();
        let at = text.find("[id_ranges.").unwrap();
        let ranges = "[id_ranges.a]\nincrement = 3\noffset = 1\n\
                      [id_ranges.b]\nincrement = 3\noffset = 2\n\
                      [id_ranges.c]\nintervals = [[3, 3], [6, 6], [9, 9]]\n";
        let rest = &text[at..];
        let end = rest.find("\n[[peers]]").unwrap_or(rest.len());
        std::fs::write(cfg, format!("{}{ranges}{}", &text[..at], &rest[end..])).unwrap();
    }
    p.start_both().await;
    let db = p.db.clone();
    // zone a has zone c's row 9 (c's insert reached a, not yet b: written here without
    // a binlog), then updates it; and updates row 12, which no zone owns
    exec(
        ZONE_A,
        &[
            "SET sql_log_bin = 0",
            &format!("INSERT INTO `{db}`.orders (id, customer) VALUES (9, 'inserted in c'), (12, 'nobody owns it')"),
            "SET sql_log_bin = 1",
            &format!("UPDATE `{db}`.orders SET customer = 'updated in a' WHERE id IN (9, 12)"),
            &format!("INSERT INTO `{db}`.orders (id, customer) VALUES (1, 'marker')"),
        ],
    )
    .await;
    let in_b = || async {
        let rows: Vec<(u64, String)> = conn(ZONE_B)
            .await
            .query(format!("SELECT id, customer FROM `{db}`.orders ORDER BY id"))
            .await
            .unwrap();
        rows
    };
    let ok = wait_until(Duration::from_secs(30), || async {
        in_b().await.iter().any(|(id, _)| *id == 1)
    })
    .await;
    assert!(ok, "zone a's changes did not reach b\n{}", p.logs());
    let in_b = in_b().await;
    assert_eq!(
        in_b,
        vec![(1, "marker".to_string()), (9, "updated in a".to_string())],
        "zone c's row applied by last-writer-wins, the unowned key quarantined\n{}",
        p.logs()
    );
    assert_eq!(p.conflicts(1, "id_out_of_range").await, 1, "only key 12 quarantined");
    assert_eq!(p.conflicts(1, "update_before_insert").await, 1, "key 9 logged");
}

const MATRIX: &str = "CREATE TABLE m (
  id INT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, mi MEDIUMINT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  d DECIMAL(20,6), f FLOAT, dbl DOUBLE, dt DATE, dtm DATETIME(6), tm TIME(3), tmn TIME, ts TIMESTAMP(6) NULL, y YEAR,
  b BIT(10), e ENUM('a','b','c'), s SET('x','y','z'), c CHAR(10), vc VARCHAR(100), l1 VARCHAR(20) CHARACTER SET latin1,
  gb VARCHAR(20) CHARACTER SET gbk, tx TEXT, bn BINARY(4), vb VARBINARY(10), bl BLOB, j JSON, g GEOMETRY NULL, n INT,
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) CHARACTER SET utf8mb4";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_matrix_crosses_zones_cell_for_cell() {
    let mut p = Pair::new("matrix", &[MATRIX], 4401).await;
    p.start_both().await;
    let db = p.db.clone();
    exec(
        ZONE_A,
        &[&format!(
            "INSERT INTO `{db}`.m (id, ti, tiu, mi, iu, bi, biu, d, f, dbl, dt, dtm, tm, tmn, ts, y, b, e, s, c, vc, l1, gb, tx, bn, vb, bl, j, g, n) VALUES
             (1, -128, 255, -8388608, 4294967295, -9223372036854775808, 18446744073709551615, -12345678901234.123456, 1.5, -2.2250738585072014e-308,
              '1000-01-01', '9999-12-31 23:59:59.999999', '-12:34:56.789', '-838:59:59', '2038-01-19 03:14:07.999999', 2155,
              b'1010101010', 'c', 'x,z', 'héllo', '日本語🎉', 'café', '中文', 'a\\nb \\'q\\' \\\\', x'00FF1000', x'DEADBEEF', x'0001FEFF',
              '{{\"a\": [1, 2.5]}}', ST_GeomFromText('POINT(1 2)'), NULL),
             (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
        )],
    )
    .await;
    assert!(
        wait_converged(&p, "m", 20).await,
        "matrix differs:\na={:?}\nb={:?}\n{}",
        p.rows(0, "m").await,
        p.rows(1, "m").await,
        p.log(1)
    );
    assert_eq!(p.rows(1, "m").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_identifiers_replicate_and_a_missing_table_is_skipped_after_its_wait() {
    let weird = "CREATE TABLE `we``ird 表 \"x\"` (`i``d` INT PRIMARY KEY, `na'me` VARCHAR(60), updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";
    let mut p = Pair::new("hostile", &[weird], 4501).await;
    p.start_both().await;
    let db = p.db.clone();
    exec(
        ZONE_A,
        &[&format!(
            "INSERT INTO `{db}`.`we``ird 表 \"x\"` (`i``d`, `na'me`) VALUES (1, 'Robert''); DROP TABLE x;--')"
        )],
    )
    .await;
    assert!(wait_converged(&p, "we`ird 表 \"x\"", 20).await, "{}", p.log(1));
    assert_eq!(p.rows(1, "we`ird 表 \"x\"").await.len(), 1);

    // A table that exists only in zone a: zone b's daemon waits for it (8 s here),
    // then skips its changes and goes on; the other tables keep replicating.
    exec(ZONE_A, &[&format!("CREATE TABLE `{db}`.only_a (id INT PRIMARY KEY, updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))"), &format!("INSERT INTO `{db}`.only_a (id) VALUES (1)")]).await;
    let waited = wait_until(Duration::from_secs(20), || {
        let log = p.log(1);
        async move { log.contains("does not exist in zone b: waiting for it") }
    })
    .await;
    assert!(waited, "{}", p.log(1));
    exec(
        ZONE_A,
        &[&format!(
            "INSERT INTO `{db}`.`we``ird 表 \"x\"` (`i``d`, `na'me`) VALUES (3, 'after the missing table')"
        )],
    )
    .await;
    let skipped = wait_until(Duration::from_secs(30), || async {
        p.log(1).contains("reason=\"missing_here\"") && p.rows(1, "we`ird 表 \"x\"").await.len() == 2
    })
    .await;
    assert!(skipped, "{}", p.log(1));
    assert!(p.running(1), "zone b's daemon runs");
}

/// A clash on a secondary unique key is a logged conflict; the daemons keep running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_key_clash_is_a_logged_conflict_not_a_crash_loop() {
    let users = "CREATE TABLE users (id BIGINT PRIMARY KEY AUTO_INCREMENT, email VARCHAR(64) NOT NULL UNIQUE, \
        updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";
    let mut p = Pair::new("unique", &[users], 4601).await;
    let db = p.db.clone();
    // Written while the daemons are down: each zone takes the same e-mail for its own new user.
    p.start_both().await;
    p.kill9(0);
    p.kill9(1);
    exec(
        ZONE_A,
        &[&format!("INSERT INTO `{db}`.users (email) VALUES ('same@example.com')")],
    )
    .await;
    exec(
        ZONE_B,
        &[&format!("INSERT INTO `{db}`.users (email) VALUES ('same@example.com')")],
    )
    .await;
    p.start_both().await;
    let ok = wait_until(Duration::from_secs(20), || async {
        p.conflicts(0, "unique_key").await == 1 && p.conflicts(1, "unique_key").await == 1
    })
    .await;
    assert!(
        ok,
        "unique-key conflicts: a={} b={}",
        p.conflicts(0, "unique_key").await,
        p.conflicts(1, "unique_key").await
    );
    // Still replicating afterwards.
    exec(
        ZONE_A,
        &[&format!(
            "INSERT INTO `{db}`.users (email) VALUES ('later@example.com')"
        )],
    )
    .await;
    let ok = wait_until(Duration::from_secs(20), || async {
        p.rows(1, "users").await.len() == 2
    })
    .await;
    assert!(ok, "replication stopped after the conflict:\n{}", p.log(1));
    for z in 0..2 {
        assert!(p.running(z), "daemon {z} exited");
    }
}

/// `drc check` with a [replication] section refuses tables without the version column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_warns_of_a_table_without_version_column() {
    let p = Pair::new(
        "check",
        &[ORDERS, "CREATE TABLE legacy (id INT PRIMARY KEY, x INT)"],
        4701,
    )
    .await;
    let (code, text) = drc(&["check", "--config", p.cfg[0].to_str().unwrap()]);
    assert_eq!(code, 0, "a table the daemon skips is a warning: {text}");
    assert!(
        text.contains("WARN    replicated_table")
            && text.contains("`legacy` has no version column `updated_at`: its changes are skipped")
            && text.contains("ALTER TABLE"),
        "{text}"
    );
    // a table the config says must replicate is a problem
    let cfg = std::fs::read_to_string(&p.cfg[0]).unwrap();
    let listed = p.dir.path().join("listed.toml");
    let db = &p.db;
    std::fs::write(
        &listed,
        cfg.replacen(
            "[replication]\n",
            &format!("[replication]\ntables = [\"{db}.legacy\", \"{db}.orders\"]\n"),
            1,
        ),
    )
    .unwrap();
    let (code, text) = drc(&["check", "--config", listed.to_str().unwrap()]);
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("PROBLEM replicated_table"), "{text}");
    assert!(
        text.contains("ok      id_range")
            && text.contains("ok      time_zone")
            && text.contains("ok      fence_privilege"),
        "{text}"
    );
}

/// A table without version column replicates when listed in `unversioned` (origin
/// wins), and `drc check` then warns instead of refusing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unversioned_tables_replicate_when_listed() {
    let mut p = Pair::new(
        "unversioned",
        &["CREATE TABLE legacy (id INT PRIMARY KEY, x INT)"],
        4801,
    )
    .await;
    let db = p.db.clone();
    for cfg in &p.cfg {
        let text = std::fs::read_to_string(cfg).unwrap().replace(
            &format!("channel = \"{db}\""),
            &format!("channel = \"{db}\"\nunversioned = [\"{db}.legacy\"]"),
        );
        std::fs::write(cfg, text).unwrap();
    }
    let (code, text) = drc(&["check", "--config", p.cfg[0].to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("WARN    replicated_table") && text.contains("origin wins"),
        "{text}"
    );
    p.start_both().await;
    exec(
        ZONE_A,
        &[
            &format!("INSERT INTO `{db}`.legacy VALUES (1, 10), (3, 30)"),
            &format!("UPDATE `{db}`.legacy SET x = 11 WHERE id = 1"),
            &format!("DELETE FROM `{db}`.legacy WHERE id = 3"),
        ],
    )
    .await;
    exec(ZONE_B, &[&format!("INSERT INTO `{db}`.legacy VALUES (2, 20)")]).await;
    assert!(
        wait_converged(&p, "legacy", 20).await,
        "a={:?} b={:?}\n{}",
        p.rows(0, "legacy").await,
        p.rows(1, "legacy").await,
        p.log(1)
    );
    assert_eq!(p.rows(1, "legacy").await, vec!["1|B".to_string(), "2|14".to_string()]);
}

/// The applier's batch path (multi-row statements, one locking read per batch) must
/// decide exactly like the row path. One origin transaction meets every kind of local
/// state at once in two identical tables; `slow` has an extra unique key, so it is
/// applied row by row, `fast` in batches. Both must end identical in zone b, with the
/// same conflicts logged, and the batch path must have been taken. (Zone b's local
/// inserts of zone a's keys are quarantined in zone a, so the zones do not converge
/// on those two rows by design.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_rows_decide_like_row_by_row() {
    const FAST: &str =
        "CREATE TABLE fast (id BIGINT PRIMARY KEY, customer VARCHAR(64) NOT NULL, n INT NOT NULL DEFAULT 0, \
        updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";
    const SLOW: &str = "CREATE TABLE slow (id BIGINT PRIMARY KEY, customer VARCHAR(64) NOT NULL, n INT NOT NULL DEFAULT 0, \
        updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), u BIGINT NOT NULL UNIQUE)";
    let mut p = Pair::new("batch", &[FAST, SLOW], 4811).await;
    let admin = p.with_admin(9481, "batch-token");
    p.start_both().await;
    let db = p.db.clone();
    let seed: Vec<String> = (1..40)
        .step_by(2)
        .map(|id| format!("({id}, 'seed', 0, '2026-01-01 00:00:00', {id})"))
        .collect();
    for t in ["fast", "slow"] {
        let values = if t == "fast" {
            seed.iter()
                .map(|v| v.rsplit_once(',').unwrap().0.to_string() + ")")
                .collect::<Vec<_>>()
        } else {
            seed.clone()
        };
        exec(
            ZONE_A,
            &[&format!("INSERT INTO `{db}`.{t} VALUES {}", values.join(", "))],
        )
        .await;
    }
    let seeded = wait_until(Duration::from_secs(20), || async {
        p.rows(1, "fast").await.len() == 20 && p.rows(1, "slow").await.len() == 20
    })
    .await;
    assert!(seeded, "seed rows did not reach zone b\n{}", p.logs());
    p.kill9(0);
    p.kill9(1);

    // Local state in zone b, the same in both tables.
    for t in ["fast", "slow"] {
        let u = |id: u32| if t == "slow" { format!(", {id}") } else { String::new() };
        let ucol = if t == "slow" { ", u" } else { "" };
        exec(
            ZONE_B,
            &[
                // 3: newer here (the incoming update loses)
                &format!("UPDATE `{db}`.{t} SET customer = 'b newer', updated_at = '2026-06-01' WHERE id = 3"),
                // 5: older here, but not the row the origin updated (concurrent, incoming wins)
                &format!("UPDATE `{db}`.{t} SET customer = 'b older', updated_at = '2026-02-01' WHERE id = 5"),
                // 7: deleted here now (later than the incoming update)
                &format!("DELETE FROM `{db}`.{t} WHERE id = 7"),
                // 9: deleted here now, the incoming update is from the future
                &format!("DELETE FROM `{db}`.{t} WHERE id = 9"),
                // 13: the same version as the incoming update, other content (tie-break)
                &format!("UPDATE `{db}`.{t} SET customer = 'b tie', updated_at = '2026-03-01' WHERE id = 13"),
                // 41, 43: inserted here too, older and newer than the incoming inserts
                &format!("INSERT INTO `{db}`.{t} (id, customer, updated_at{ucol}) VALUES (41, 'b 41', '2026-03-01'{}), (43, 'b 43', '2026-05-01'{})", u(41), u(43)),
            ],
        )
        .await;
    }
    // One origin transaction in zone a over both tables.
    let mut c = conn(ZONE_A).await;
    c.query_drop("START TRANSACTION").await.unwrap();
    for t in ["fast", "slow"] {
        let u = |id: u32| if t == "slow" { format!(", {id}") } else { String::new() };
        let ucol = if t == "slow" { ", u" } else { "" };
        let updated: Vec<String> = [3, 5, 7, 13]
            .into_iter()
            .chain((15..40).step_by(2))
            .map(|i| i.to_string())
            .collect();
        c.query_drop(format!(
            "UPDATE `{db}`.{t} SET customer = CONCAT('a', id), n = n + 1, updated_at = '2026-03-01' WHERE id IN ({})",
            updated.join(", ")
        ))
        .await
        .unwrap();
        c.query_drop(format!(
            "UPDATE `{db}`.{t} SET customer = 'a future', updated_at = '2027-01-01' WHERE id = 9"
        ))
        .await
        .unwrap();
        // 100 is in zone b's ID range: quarantined
        let inserted: Vec<String> = (41..100)
            .step_by(2)
            .chain([100])
            .map(|id| format!("({id}, 'a{id}', '2026-04-01'{})", u(id)))
            .collect();
        c.query_drop(format!(
            "INSERT INTO `{db}`.{t} (id, customer, updated_at{ucol}) VALUES {}",
            inserted.join(", ")
        ))
        .await
        .unwrap();
    }
    c.query_drop("COMMIT").await.unwrap();
    // Then small transactions, each on one table, first those on `fast` (so that they
    // are grouped and batched across transactions): chains of updates of one key, clean (15, 17)
    // or starting with a conflict (3), and an insert followed by updates (201).
    for t in ["fast", "slow"] {
        for r in 0..5u32 {
            let u = |id: u32| if t == "slow" { format!(", {id}") } else { String::new() };
            let ucol = if t == "slow" { ", u" } else { "" };
            let day = format!("2026-03-{:02} 00:00:00", r + 2);
            c.query_drop(format!(
                "START TRANSACTION; \
                 UPDATE `{db}`.{t} SET n = n + 1, updated_at = '{day}' WHERE id IN (3, 15, 17); \
                 INSERT INTO `{db}`.{t} (id, customer, updated_at{ucol}) VALUES ({id}, 'small {r}', '{day}'{}); \
                 {chain}; COMMIT",
                u(101 + 2 * r),
                id = 101 + 2 * r,
                chain = if r == 0 {
                    format!(
                        "INSERT INTO `{db}`.{t} (id, customer, updated_at{ucol}) VALUES (201, 'chain 0', '{day}'{})",
                        u(201)
                    )
                } else {
                    format!("UPDATE `{db}`.{t} SET customer = 'chain {r}', updated_at = '{day}' WHERE id = 201")
                },
            ))
            .await
            .unwrap();
        }
    }
    drop(c);
    p.start(0);
    p.start(1);
    // two seed transactions, the big one and ten small ones
    let applied = wait_until(Duration::from_secs(30), || async { p.applied_from(1, 0).await >= 13 }).await;
    assert!(applied, "zone b did not apply zone a's transaction\n{}", p.logs());
    let rows = |z: usize, t: &'static str| {
        let db = db.clone();
        async move {
            let mut c = conn(PORTS[z]).await;
            let r: Vec<(u64, String, i32, String)> = c
                .query(format!(
                    "SELECT id, customer, n, CAST(updated_at AS CHAR) FROM `{db}`.{t} ORDER BY id"
                ))
                .await
                .unwrap();
            r
        }
    };
    let (fast_b, slow_b) = (rows(1, "fast").await, rows(1, "slow").await);
    assert_eq!(fast_b, slow_b, "the batch path decided differently from the row path");
    let get_row = |id: u64| fast_b.iter().find(|r| r.0 == id).cloned();
    assert_eq!(get_row(3).unwrap().1, "b newer");
    assert_eq!(get_row(5).unwrap().1, "a5");
    assert_eq!(get_row(7), None);
    assert_eq!(get_row(9).unwrap().1, "a future");
    assert_eq!(get_row(13).unwrap().1, "b tie", "the greater content wins a tie");
    assert_eq!(get_row(15).unwrap().1, "a15");
    assert_eq!(get_row(41).unwrap().1, "a41");
    assert_eq!(get_row(43).unwrap().1, "b 43");
    assert_eq!(get_row(99).unwrap().1, "a99");
    assert_eq!(get_row(100), None, "out of zone a's range");
    assert_eq!(get_row(15).unwrap().2, 6, "every update of a chain counts");
    assert_eq!(get_row(201).unwrap().1, "chain 4");
    assert_eq!(get_row(109).unwrap().1, "small 4");
    let mut bc = conn(ZONE_B).await;
    for t in ["fast", "slow"] {
        let kinds: Vec<(String, String, u64)> = bc
            .exec(
                "SELECT kind, resolution, COUNT(*) FROM `drc`.`conflicts` WHERE db = ? AND tbl = ? AND origin_zone = 'a' GROUP BY kind, resolution ORDER BY kind, resolution",
                (&db, t),
            )
            .await
            .unwrap();
        let expected: Vec<(String, String, u64)> = [
            ("concurrent_update", "applied_incoming", 2),
            ("deleted_later", "kept_local", 1),
            ("id_out_of_range", "quarantined", 1),
            // 3, 43, the tie on 13, and the five later updates of 3
            ("local_row_newer", "kept_local", 8),
            ("resurrected_after_delete", "applied_incoming", 1),
        ]
        .iter()
        .map(|(k, r, n)| (k.to_string(), r.to_string(), *n))
        .collect();
        assert_eq!(kinds, expected, "conflicts logged for {t}");
        // the conflict log keeps what a concurrent write overwrote, for recovery
        let overwritten: Option<Option<String>> = bc
            .exec_first(
                "SELECT local_row FROM `drc`.`conflicts` WHERE db = ? AND tbl = ? AND kind = 'concurrent_update' AND pk = '[5]'",
                (&db, t),
            )
            .await
            .unwrap();
        let overwritten = overwritten.flatten().unwrap_or_default();
        assert!(
            overwritten.contains("b older"),
            "{t}: the log should hold the overwritten local row, has {overwritten:?}"
        );
    }
    let text = get(&format!("{}/metrics", admin[1]));
    let batched = sample(&text, "drc_applied_rows_batched_total", &["from_zone=\"a\""]).unwrap_or(0.0);
    // The big transaction's 13 clean updates (its inserts meet 41 and 43, which exist
    // here: the multi-row INSERT fails and they go row by row), and the small
    // transactions' rows: the chains of 15, 17 and 201 (15 changes) and 5 inserts.
    assert!(batched >= 30.0, "only {batched} rows took the batch path:\n{text}");
}

/// A unique key added in one zone while its daemon runs: the applier still believes
/// the table batchable, so a multi-row upsert meets the new key. The clashing row is
/// quarantined as row by row would (`unique_key`), the others apply, and the daemon
/// keeps replicating instead of stopping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_key_added_at_runtime_is_quarantined_not_fatal() {
    let t = "CREATE TABLE people (id BIGINT PRIMARY KEY, email VARCHAR(64) NOT NULL, \
        updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";
    let mut p = Pair::new("uniqlate", &[t], 4821).await;
    p.start_both().await;
    let db = p.db.clone();
    exec(
        ZONE_A,
        &[&format!(
            "INSERT INTO `{db}`.people (id, email) VALUES (1, 'one'), (3, 'three'), (5, 'five')"
        )],
    )
    .await;
    let seeded = wait_until(Duration::from_secs(20), || async {
        p.rows(1, "people").await.len() == 3
    })
    .await;
    assert!(seeded, "rows did not reach zone b\n{}", p.logs());
    // zone b only: a unique e-mail, and a local row holding 'taken'
    exec(
        ZONE_B,
        &[
            &format!("ALTER TABLE `{db}`.people ADD UNIQUE KEY (email)"),
            &format!("INSERT INTO `{db}`.people (id, email) VALUES (2, 'taken')"),
        ],
    )
    .await;
    // one statement, two rows: a batch; row 1 takes the e-mail zone b now refuses
    exec(
        ZONE_A,
        &[&format!(
            "UPDATE `{db}`.people SET email = IF(id = 1, 'taken', 'third') WHERE id IN (1, 3)"
        )],
    )
    .await;
    let decided = wait_until(Duration::from_secs(20), || async {
        p.conflicts(1, "unique_key").await == 1
    })
    .await;
    assert!(decided, "no unique_key conflict in zone b\n{}", p.logs());
    let emails = |z: usize| {
        let db = db.clone();
        async move {
            let mut c = conn(PORTS[z]).await;
            let e: Vec<String> = c
                .query(format!("SELECT email FROM `{db}`.people ORDER BY id"))
                .await
                .unwrap();
            e.join(" ")
        }
    };
    let rows = emails(1).await;
    assert!(
        rows.contains("third"),
        "the other row of the batch was not applied: {rows}"
    );
    assert!(
        rows.contains("one"),
        "the clashing row must stay as it was here: {rows}"
    );
    assert!(p.running(1), "zone b's daemon stopped\n{}", p.log(1));
    // and it still replicates
    exec(
        ZONE_A,
        &[&format!("UPDATE `{db}`.people SET email = 'five!' WHERE id = 5")],
    )
    .await;
    let on = wait_until(Duration::from_secs(20), || async { emails(1).await.contains("five!") }).await;
    assert!(on, "replication stopped after the clash\n{}", p.log(1));
}

/// One applier per origin, channel and server: a second daemon started with the same
/// zone and channel (another config file, another reader id) while the first runs is
/// refused at start, naming the connection that holds the claim, instead of sharing
/// `drc.applied` and later resuming past transactions it never applied. The first
/// daemon keeps replicating.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_for_the_same_origin_and_channel_is_refused() {
    let mut p = Pair::new("claim", &[ORDERS], 5321).await;
    p.start_both().await;
    let db = p.db.clone();
    exec(
        ZONE_A,
        &[&format!("INSERT INTO `{db}`.orders (customer) VALUES ('before')")],
    )
    .await;
    p.assert_converged("orders", 20, 0).await;
    let before = p.applied_txns(1).await;
    let text = std::fs::read_to_string(&p.cfg[1]).unwrap();
    let second = p.cfg[1].with_file_name("zone-b-second.toml");
    std::fs::write(
        &second,
        text.replace("server_id = 5322", "server_id = 5392")
            .replace("state_dir = ", "state_dir = \"second\"\n#"),
    )
    .unwrap();
    let out = std::process::Command::new(drc_bin())
        .args(["run", "--config"])
        .arg(&second)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("another drc daemon already runs"), "{err}");
    assert!(err.contains("holds the claim"), "{err}");
    exec(
        ZONE_A,
        &[&format!(
            "INSERT INTO `{db}`.orders (customer) VALUES ('after the refusal')"
        )],
    )
    .await;
    p.assert_converged("orders", 20, 0).await;
    assert!(p.applied_txns(1).await > before, "the first daemon goes on applying");
}

/// Both zones update the same 300 rows while the daemons are down: 300 conflicts in
/// each zone. The log summarises them (one line per origin, table, kind and
/// resolution, at most every 10 s) instead of one line per row, and the counts in the
/// summaries add up to the rows of `drc.conflicts`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_are_summarised_in_the_log_not_one_line_each() {
    let mut p = Pair::new("conflog", &[ORDERS], 5911).await;
    let db = p.db.clone();
    p.start_both().await;
    p.insert_rows_in_a(300).await;
    assert!(wait_converged(&p, "orders", 30).await, "inserts did not cross");
    p.kill9(0);
    p.kill9(1);
    exec(ZONE_A, &[&format!("UPDATE `{db}`.orders SET customer = 'a'")]).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    exec(ZONE_B, &[&format!("UPDATE `{db}`.orders SET customer = 'b'")]).await;
    p.start(0);
    p.start(1);
    assert!(wait_converged(&p, "orders", 30).await, "not converged");
    let logged = |z: usize| {
        let log = p.log(z);
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("conflicts (detail in drc.conflicts)"))
            .collect();
        let count: u64 = lines
            .iter()
            .map(|l| {
                let n = l.split("count=").nth(1).expect("a count field");
                n.split_whitespace().next().unwrap().parse::<u64>().unwrap()
            })
            .sum();
        (
            lines.len(),
            count,
            log.lines().filter(|l| l.contains("conflict")).count(),
        )
    };
    // a summary is written at the first conflicts, then at most every 10 s while
    // groups (heartbeats included) commit
    for z in 0..2 {
        // (the zones agree as soon as the newer updates are applied; the older ones
        // may still be on their way to the zone that keeps its rows)
        let count_rows = || async {
            conn(PORTS[z])
                .await
                .exec_first::<u64, _, _>("SELECT COUNT(*) FROM drc.conflicts WHERE db = ?", (&db,))
                .await
                .unwrap()
                .unwrap()
        };
        let all = wait_until(Duration::from_secs(20), || async { count_rows().await == 300 }).await;
        let rows = count_rows().await;
        assert!(
            all,
            "zone {}: every row of the other zone was a conflict: {rows}",
            ZONES[z]
        );
        let ok = wait_until(Duration::from_secs(15), || {
            let (_, count, _) = logged(z);
            async move { count == rows }
        })
        .await;
        let (lines, count, any) = logged(z);
        assert!(
            ok,
            "zone {}: summaries count {count} of {rows} conflicts:\n{}",
            ZONES[z],
            p.log(z)
        );
        assert!(
            lines <= 4 && any <= 6,
            "zone {}: {lines} summary lines, {any} lines about conflicts:\n{}",
            ZONES[z],
            p.log(z)
        );
    }
}

/// Tables of a replicated database that cannot replicate (no primary key, no version
/// column) and tables the config excludes are skipped, with a warning and
/// `drc_skipped_rows_total`; the daemon never stops for them, and rows of the other
/// tables in the same transactions replicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_that_do_not_fit_are_skipped_not_fatal() {
    let mut p = Pair::new(
        "unfit",
        &[
            ORDERS,
            "CREATE TABLE nopk (x INT, updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))",
            "CREATE TABLE nover (id INT PRIMARY KEY, x INT)",
            "CREATE TABLE scratch (id INT PRIMARY KEY, updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))",
            "CREATE TABLE `_orders_gho` (id INT PRIMARY KEY, updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))",
        ],
        5921,
    )
    .await;
    let db = p.db.clone();
    p.configure(&format!("exclude_tables = [\"{db}.scr*\"]\n"), "");
    let admin = p.with_admin(9601, "t");
    p.start_both().await;
    for round in 1..=2 {
        exec(
            ZONE_A,
            &[&format!(
                "BEGIN; INSERT INTO `{db}`.nopk (x) VALUES ({round}); INSERT INTO `{db}`.nover VALUES ({round}, 1); \
                 INSERT INTO `{db}`.scratch (id) VALUES ({round}); INSERT INTO `{db}`.`_orders_gho` (id) VALUES ({round}); \
                 INSERT INTO `{db}`.orders (customer) VALUES ('round {round}'); COMMIT"
            )],
        )
        .await;
    }
    assert!(wait_converged(&p, "orders", 20).await, "{}", p.log(1));
    assert_eq!(p.rows(1, "orders").await.len(), 2);
    for t in ["nopk", "nover", "scratch", "_orders_gho"] {
        assert!(p.rows(1, t).await.is_empty(), "{t} is not replicated");
    }
    let metrics = get(&format!("{}/metrics", admin[1]));
    for (table, reason) in [("nopk", "no_primary_key"), ("nover", "no_version_column")] {
        let n = sample(
            &metrics,
            "drc_skipped_rows_total",
            &[&format!("table=\"{db}.{table}\""), &format!("reason=\"{reason}\"")],
        );
        assert_eq!(n, Some(2.0), "{table}: {metrics}");
        assert!(
            p.log(1).contains(&format!("table={db}.{table}")),
            "a warning names {table}"
        );
    }
    assert!(
        !metrics.contains(&format!("table=\"{db}.scratch\"")),
        "an excluded table is not even looked at"
    );
    assert!(p.running(1), "zone b's daemon runs");
}

/// Zone a deletes a parent row while zone b inserts a child of it (daemons down).
/// Zone a cannot insert the child (1452, no parent): the row is quarantined as a
/// `foreign_key` conflict and the daemon goes on (it used to stop, and stop again on
/// every restart); zone b's cascade removes its child with the parent. Both zones end
/// without the parent and the child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_key_failure_is_quarantined_not_a_stop() {
    let mut p = Pair::new(
        "fk",
        &[
            "CREATE TABLE parent (id INT PRIMARY KEY, updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))",
            "CREATE TABLE child (id INT PRIMARY KEY, parent_id INT NOT NULL, \
             updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), \
             FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE)",
        ],
        5931,
    )
    .await;
    let db = p.db.clone();
    p.start_both().await;
    exec(ZONE_A, &[&format!("INSERT INTO `{db}`.parent (id) VALUES (1)")]).await;
    assert!(wait_converged(&p, "parent", 20).await);
    p.kill9(0);
    p.kill9(1);
    exec(ZONE_A, &[&format!("DELETE FROM `{db}`.parent WHERE id = 1")]).await;
    exec(
        ZONE_B,
        &[&format!("INSERT INTO `{db}`.child (id, parent_id) VALUES (2, 1)")],
    )
    .await;
    p.start(0);
    p.start(1);
    let ok = wait_until(Duration::from_secs(20), || async {
        p.conflicts(0, "foreign_key").await == 1
    })
    .await;
    assert!(ok, "zone a quarantines the orphan:\n{}", p.log(0));
    assert!(wait_converged(&p, "parent", 20).await && wait_converged(&p, "child", 20).await);
    assert!(p.rows(0, "child").await.is_empty() && p.rows(0, "parent").await.is_empty());
    // the daemon lives on and replicates what follows
    exec(ZONE_B, &[&format!("INSERT INTO `{db}`.parent (id) VALUES (4)")]).await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            p.rows(0, "parent").await.len() == 1
        })
        .await,
        "{}",
        p.log(0)
    );
    assert!(p.running(0));
}

/// A local insert of a key that commits between the applier's locking read (which
/// locks nothing where there is no row) and its INSERT of the same key: the applier
/// decides again against the row now there, as its batch path does. Here the
/// origin's row is newer and must win in both zones; it used to be quarantined as a
/// `unique_key` conflict, leaving the zones different. A BEFORE INSERT trigger in zone
/// b (the application's, not drc's) holds the applier's INSERT for 2 s to open the
/// window; the origin transaction also deletes a row, so it takes the row path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_insert_racing_the_applier_is_decided_again() {
    let mut p = Pair::new("race", &[ORDERS], 5941).await;
    let db = p.db.clone();
    p.start_both().await;
    exec(
        ZONE_A,
        &[&format!(
            "INSERT INTO `{db}`.orders (id, customer) VALUES (1, 'to delete')"
        )],
    )
    .await;
    assert!(wait_converged(&p, "orders", 20).await);
    exec(
        ZONE_B,
        &[&format!(
            "CREATE TRIGGER `{db}`.slow_apply BEFORE INSERT ON `{db}`.orders FOR EACH ROW \
             DO IF(USER() LIKE 'drc@%', SLEEP(2), 0)"
        )],
    )
    .await;
    exec(
        ZONE_A,
        &[&format!(
            "BEGIN; DELETE FROM `{db}`.orders WHERE id = 1; \
             INSERT INTO `{db}`.orders (id, customer, updated_at) VALUES (1001, 'from a, newer', NOW(6) + INTERVAL 1 HOUR); COMMIT"
        )],
    )
    .await;
    let sleeping = wait_until(Duration::from_secs(10), || async {
        let n: Option<u64> = conn(ZONE_B)
            .await
            // (inside the trigger the session shows its definer and the trigger's statement)
            .query_first("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE = 'User sleep' AND INFO LIKE 'DO IF(USER()%'")
            .await
            .unwrap();
        n == Some(1)
    })
    .await;
    let procs: Vec<(String, Option<String>, Option<String>)> = conn(ZONE_B)
        .await
        .query("SELECT USER, STATE, INFO FROM information_schema.PROCESSLIST")
        .await
        .unwrap();
    let rows_b = p.rows(1, "orders").await;
    assert!(
        sleeping,
        "the applier's INSERT is held by the trigger: {procs:?} {rows_b:?}\n{}",
        p.log(1)
    );
    exec(
        ZONE_B,
        &[&format!(
            "INSERT INTO `{db}`.orders (id, customer) VALUES (1001, 'from b, older')"
        )],
    )
    .await;
    let ok = wait_until(Duration::from_secs(20), || async {
        let rows: Vec<String> = conn(ZONE_B)
            .await
            .query(format!("SELECT customer FROM `{db}`.orders"))
            .await
            .unwrap();
        rows == ["from a, newer"]
    })
    .await;
    exec(ZONE_B, &[&format!("DROP TRIGGER `{db}`.slow_apply")]).await;
    assert!(ok, "the newer row of zone a wins in b:\n{}", p.log(1));
    assert!(wait_converged(&p, "orders", 20).await, "zones differ");
    assert_eq!(p.conflicts(1, "unique_key").await, 0, "not a unique-key quarantine");
    assert_eq!(
        p.conflicts(1, "concurrent_update").await,
        1,
        "decided as a concurrent write"
    );
}

/// TRUNCATE writes no row events, so it leaves no tombstones: zone b's updates, made
/// before the DBA truncated the table in both zones, arrived in zone a after its
/// TRUNCATE and were inserted again there (a refilled table). The journal records a
/// zone's TRUNCATE (`drc.truncated`), and an older incoming row is dropped as if its
/// key had a tombstone; rows written after the truncate replicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_table_is_not_refilled_by_older_changes_of_the_other_zone() {
    let mut p = Pair::new("truncate", &[ORDERS], 5961).await;
    let db = p.db.clone();
    p.start_both().await;
    p.insert_rows_in_a(10).await;
    assert!(wait_converged(&p, "orders", 20).await);
    p.kill9(0);
    p.kill9(1);
    exec(
        ZONE_B,
        &[&format!(
            "UPDATE `{db}`.orders SET customer = 'late update' WHERE id IN (1, 3, 5)"
        )],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    exec(ZONE_A, &[&format!("TRUNCATE TABLE `{db}`.orders")]).await;
    exec(ZONE_B, &[&format!("TRUNCATE TABLE `{db}`.orders")]).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    exec(
        ZONE_A,
        &[&format!(
            "INSERT INTO `{db}`.orders (id, customer) VALUES (201, 'after the truncate')"
        )],
    )
    .await;
    p.start(0);
    p.start(1);
    let ok = wait_until(Duration::from_secs(20), || async {
        p.applied_txns(0).await >= 1 && p.rows(1, "orders").await.len() == 1
    })
    .await;
    assert!(
        ok,
        "b's update and a's insert were applied:\n{}\n{}",
        p.log(0),
        p.log(1)
    );
    assert!(wait_converged(&p, "orders", 20).await);
    let rows: Vec<(u64, String)> = conn(ZONE_A)
        .await
        .query(format!("SELECT id, customer FROM `{db}`.orders"))
        .await
        .unwrap();
    assert_eq!(
        rows,
        [(201, "after the truncate".to_string())],
        "zone a is not refilled"
    );
    assert!(
        p.conflicts(0, "deleted_later").await >= 3,
        "the late updates are logged as lost to the truncate"
    );
}

/// `[replication.ddl_home]`: the schema changes run in the database's home zone (a)
/// reach zone b once and never come back; a DDL run in zone b is reported in zone a
/// and not applied; a destructive DDL of the home zone is never replicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_of_the_home_zone_replicates_once_and_never_back() {
    let mut p = Pair::new("ddlhome", &[ORDERS], 5971).await;
    let db = p.db.clone();
    p.configure("", &format!("[replication.ddl_home]\n{db} = \"a\"\n"));
    p.start_both().await;
    let columns = |port: u16| {
        let db = db.clone();
        async move {
            conn(port)
                .await
                .exec::<String, _, _>(
                    "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'orders' ORDER BY ORDINAL_POSITION",
                    (&db,),
                )
                .await
                .unwrap()
        }
    };
    exec(
        ZONE_A,
        &[
            &format!("ALTER TABLE `{db}`.orders ADD COLUMN note VARCHAR(20) NULL"),
            &format!("INSERT INTO `{db}`.orders (customer, note) VALUES ('with a note', 'x')"),
        ],
    )
    .await;
    assert!(wait_converged(&p, "orders", 20).await, "{}\n{}", p.log(0), p.log(1));
    assert!(
        columns(ZONE_B).await.contains(&"note".to_string()),
        "the home zone's ALTER reached zone b"
    );
    // b's applied ALTER is in b's binlog, marked: zone a never runs it again
    exec(
        ZONE_B,
        &[&format!(
            "INSERT INTO `{db}`.orders (customer) VALUES ('after the alter')"
        )],
    )
    .await;
    assert!(wait_converged(&p, "orders", 20).await);
    let applied_in = |z: usize| {
        p.log(z)
            .lines()
            .filter(|l| l.contains("DDL of the home zone") && l.contains("action=\"applied\""))
            .count()
    };
    assert_eq!(applied_in(1), 1, "once in zone b:\n{}", p.log(1));
    assert_eq!(applied_in(0), 0, "never back in zone a:\n{}", p.log(0));

    // a DDL in zone b (not the home zone): reported in zone a, not applied there
    exec(
        ZONE_B,
        &[&format!("ALTER TABLE `{db}`.orders ADD COLUMN other INT NULL")],
    )
    .await;
    let reported = wait_until(Duration::from_secs(20), || async {
        p.log(0).contains("which is not the home zone")
    })
    .await;
    assert!(reported, "{}", p.log(0));
    assert!(!columns(ZONE_A).await.contains(&"other".to_string()));

    // destructive DDL of the home zone is not replicated
    exec(ZONE_A, &[&format!("ALTER TABLE `{db}`.orders DROP COLUMN note")]).await;
    let warned = wait_until(Duration::from_secs(20), || async {
        p.log(1).contains("destructive DDL")
    })
    .await;
    assert!(warned, "{}", p.log(1));
    assert!(
        columns(ZONE_B).await.contains(&"note".to_string()),
        "zone b keeps the column"
    );
    for z in 0..2 {
        assert!(p.running(z), "daemon {z} runs");
    }
}

/// An application session in another time zone than UTC writes DATETIME versions
/// hours off (last-writer-wins then compares wrong times), which `drc check` cannot
/// see: it reads the global time zone. The journal compares local versions with their
/// commit times and warns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_writing_versions_in_another_time_zone_is_reported() {
    let mut p = Pair::new("sessiontz", &[ORDERS], 5981).await;
    let db = p.db.clone();
    p.start_both().await;
    exec(
        ZONE_A,
        &[&format!("INSERT INTO `{db}`.orders (customer) VALUES ('utc session')")],
    )
    .await;
    assert!(wait_converged(&p, "orders", 20).await);
    assert!(
        !p.log(0).contains("s off its commit time"),
        "a UTC session is fine:\n{}",
        p.log(0)
    );
    exec(
        ZONE_A,
        &[
            "SET time_zone = '+08:00'",
            &format!("INSERT INTO `{db}`.orders (customer) VALUES ('session in +08:00')"),
        ],
    )
    .await;
    let warned = wait_until(Duration::from_secs(20), || async {
        p.log(0).contains("s off its commit time") && p.log(0).contains("offset_secs=28")
    })
    .await;
    assert!(warned, "{}", p.log(0));
}

/// A global-zone table (`[replication.global_tables]`, home zone a): zone a's writes
/// reach zone b as they are (no version column needed: one writer); a write in zone b
/// is a misrouted write: reported in zone a's `drc.conflicts` and not applied there,
/// and undone in zone b by b's journal (an update or a delete goes back to the row the
/// home zone last wrote, an insert of a key the home lacks is deleted), reported in
/// zone b too; the undo is not reported again by zone a. Zone a's next write of the
/// row reaches b as always.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_zone_table_replicates_from_its_home_only() {
    let mut p = Pair::new(
        "global",
        &[
            ORDERS,
            "CREATE TABLE countries (code CHAR(2) PRIMARY KEY, name VARCHAR(40) NOT NULL)",
        ],
        5991,
    )
    .await;
    let db = p.db.clone();
    p.configure(
        "",
        &format!("[replication.global_tables]\n\"{db}.countries\" = \"a\"\n"),
    );
    p.start_both().await;
    let names = |port: u16| {
        let db = db.clone();
        async move {
            conn(port)
                .await
                .query::<(String, String), _>(format!("SELECT code, name FROM `{db}`.countries ORDER BY code"))
                .await
                .unwrap()
        }
    };
    let row = |c: &str, n: &str| (c.to_string(), n.to_string());
    exec(
        ZONE_A,
        &[&format!("INSERT INTO `{db}`.countries VALUES ('fr', 'France')")],
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            names(ZONE_B).await == [row("fr", "France")]
        })
        .await,
        "the home zone's row reaches b:\n{}",
        p.log(1)
    );
    // misrouted: written in b
    exec(
        ZONE_B,
        &[
            &format!("UPDATE `{db}`.countries SET name = 'Frankreich' WHERE code = 'fr'"),
            &format!("INSERT INTO `{db}`.countries VALUES ('de', 'Germany')"),
        ],
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            p.conflicts(0, "misrouted_write").await == 2
        })
        .await,
        "zone a reports both misrouted writes:\n{}",
        p.log(0)
    );
    assert_eq!(names(ZONE_A).await, [row("fr", "France")], "zone a applies neither");
    assert!(
        wait_until(Duration::from_secs(20), || async {
            names(ZONE_B).await == [row("fr", "France")] && p.conflicts(1, "misrouted_write").await == 2
        })
        .await,
        "zone b undoes and reports both misrouted writes: {:?}\n{}",
        names(ZONE_B).await,
        p.log(1)
    );
    // a misrouted delete comes back
    exec(ZONE_B, &[&format!("DELETE FROM `{db}`.countries WHERE code = 'fr'")]).await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            names(ZONE_B).await == [row("fr", "France")] && p.conflicts(1, "misrouted_write").await == 3
        })
        .await,
        "zone b restores the row it deleted: {:?}\n{}",
        names(ZONE_B).await,
        p.log(1)
    );
    assert!(
        wait_until(Duration::from_secs(20), || async {
            p.conflicts(0, "misrouted_write").await == 3
        })
        .await,
        "zone a reports the misrouted delete"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        p.conflicts(0, "misrouted_write").await,
        3,
        "zone b's undos are not misrouted writes"
    );
    assert_eq!(names(ZONE_A).await, [row("fr", "France")]);
    // the home zone's next write of the row overwrites it in b
    exec(
        ZONE_A,
        &[&format!(
            "UPDATE `{db}`.countries SET name = 'France (FR)' WHERE code = 'fr'"
        )],
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            names(ZONE_B).await.contains(&row("fr", "France (FR)"))
        })
        .await,
        "{:?}",
        names(ZONE_B).await
    );
    // several misrouted writes of one key in one transaction are undone together:
    // an insert then an update (the key goes), a delete then an insert (the row
    // comes back as the home zone wrote it)
    exec(
        ZONE_B,
        &[
            "BEGIN",
            &format!("INSERT INTO `{db}`.countries VALUES ('it', 'Italy')"),
            &format!("UPDATE `{db}`.countries SET name = 'Italia' WHERE code = 'it'"),
            &format!("DELETE FROM `{db}`.countries WHERE code = 'fr'"),
            &format!("INSERT INTO `{db}`.countries VALUES ('fr', 'Frankreich')"),
            "COMMIT",
        ],
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            names(ZONE_B).await == [row("fr", "France (FR)")]
        })
        .await,
        "zone b undoes each key's misrouted writes together: {:?}\n{}",
        names(ZONE_B).await,
        p.log(1)
    );
    assert_eq!(names(ZONE_A).await, [row("fr", "France (FR)")]);
    for z in 0..2 {
        assert!(p.running(z));
    }
}

/// XA transactions (issue 13): an XA transaction's changes are handed on at its XA
/// COMMIT, never after its XA ROLLBACK; the transactions committed after its XA
/// PREPARE wait behind it and are not lost; a daemon killed while an XA transaction is
/// prepared reads it again after its restart and applies it once it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xa_transactions_replicate_at_commit_and_never_after_rollback() {
    let mut p = Pair::new("xa", &[ORDERS], 6021).await;
    p.start_both().await;
    let db = p.db.clone();
    let ids = |port: u16| {
        let db = db.clone();
        async move {
            conn(port)
                .await
                .query::<u64, _>(format!("SELECT id FROM `{db}`.orders ORDER BY id"))
                .await
                .unwrap()
        }
    };
    let mut xa = conn(ZONE_A).await;
    // xids are server-wide: this run's own
    let (x1, x2) = (format!("{db}-x1"), format!("{db}-x2"));
    let prepare = |xid: &str, id: u64| {
        [
            format!("XA START '{xid}'"),
            format!("INSERT INTO `{db}`.orders (id, customer) VALUES ({id}, 'xa {xid}')"),
            format!("XA END '{xid}'"),
            format!("XA PREPARE '{xid}'"),
        ]
    };
    for q in prepare(&x1, 1001) {
        xa.query_drop(q).await.unwrap();
    }
    exec(
        ZONE_A,
        &[&format!(
            "INSERT INTO `{db}`.orders (id, customer) VALUES (1003, 'plain')"
        )],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !ids(ZONE_B).await.contains(&1001),
        "a prepared XA transaction is not applied"
    );
    xa.query_drop(format!("XA ROLLBACK '{x1}'")).await.unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || async { ids(ZONE_B).await == [1003] }).await,
        "the transaction behind the rolled-back XA arrives, the XA's row never: {:?}\n{}",
        ids(ZONE_B).await,
        p.log(1)
    );
    // killed while an XA transaction is prepared
    for q in prepare(&x2, 1005) {
        xa.query_drop(q).await.unwrap();
    }
    exec(
        ZONE_A,
        &[&format!(
            "INSERT INTO `{db}`.orders (id, customer) VALUES (1007, 'plain')"
        )],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    p.kill9(1);
    p.start(1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    xa.query_drop(format!("XA COMMIT '{x2}'")).await.unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || async {
            ids(ZONE_B).await == [1003, 1005, 1007]
        })
        .await,
        "the committed XA and the transaction behind it arrive after the restart: {:?}\n{}",
        ids(ZONE_B).await,
        p.log(1)
    );
    assert_eq!(ids(ZONE_A).await, [1003, 1005, 1007]);
    p.assert_converged("orders", 30, 0).await;
    for z in 0..2 {
        assert!(p.running(z), "{}", p.logs());
    }
}

/// A batch of inserts meets a key this zone already has (the insert-only batch path
/// writes without reading the rows first): the INSERT fails as a whole, and the full
/// path decides every row as before — the new keys are inserted, the existing key is
/// decided by last-writer-wins (here the incoming row is newer) and logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_batch_that_meets_an_existing_key_is_decided_row_by_row() {
    let mut p = Pair::new("insbatch", &[ORDERS], 6041).await;
    let db = p.db.clone();
    p.start_both().await;
    // zone b has key 5 already, older (written outside the binlog, as a restore
    // would); zone a inserts 1, 3, ..., 39 in one transaction
    exec(
        ZONE_B,
        &[
            "SET SESSION sql_log_bin = 0",
            &format!(
                "INSERT INTO `{db}`.orders (id, customer, updated_at) VALUES (5, 'old in b', '2020-01-01 00:00:00')"
            ),
        ],
    )
    .await;
    let values: Vec<String> = (0..20).map(|i| format!("({}, 'from a')", 2 * i + 1)).collect();
    exec(
        ZONE_A,
        &[&format!(
            "INSERT INTO `{db}`.orders (id, customer) VALUES {}",
            values.join(", ")
        )],
    )
    .await;
    let in_b = |db: String| async move {
        conn(ZONE_B)
            .await
            .query::<(u64, String), _>(format!("SELECT id, customer FROM `{db}`.orders ORDER BY id"))
            .await
            .unwrap()
    };
    assert!(
        wait_until(Duration::from_secs(20), || async {
            let rows = in_b(db.clone()).await;
            rows.len() == 20 && rows.iter().all(|(_, c)| c == "from a")
        })
        .await,
        "{:?}\n{}",
        in_b(db.clone()).await,
        p.log(1)
    );
    assert_eq!(p.conflicts(1, "local_row_newer").await, 0);
    p.assert_converged("orders", 30, 0).await;
    for z in 0..2 {
        assert!(p.running(z), "{}", p.logs());
    }
}

/// A run of new rows (one transaction of 600 rows, fragments of 1,000) is written in
/// zone b with `LOAD DATA LOCAL` (`drc_applied_rows_loaded_total`): every value
/// arrives exactly, text holding the characters `LOAD DATA` reads specially (tab,
/// newline, backslash, `\N`, NUL, CR) and NULLs included. A table with binary data
/// goes as INSERTs. A run that meets a key zone b already has is undone and decided
/// row by row as before (the newer incoming row wins, nothing logged as a conflict).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_new_rows_is_loaded_with_every_value_intact() {
    const TYPED: &str = "CREATE TABLE typed (id BIGINT PRIMARY KEY, t VARCHAR(64) NULL, txt TEXT, d DECIMAL(12,4), \
        f FLOAT, g DOUBLE, dt DATETIME(3), dd DATE, tm TIME(2), e ENUM('x','y z'), s SET('p','q'), j JSON, \
        u INT UNSIGNED, l1 VARCHAR(16) CHARACTER SET latin1, \
        updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";
    const BIN: &str = "CREATE TABLE bin (id BIGINT PRIMARY KEY, b VARBINARY(16), \
        updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";
    let mut p = Pair::new("load", &[TYPED, BIN], 6411).await;
    p.fragment_rows(1000);
    let admin = p.with_admin(9711, "t");
    let db = p.db.clone();
    p.start_both().await;
    let texts = [
        r"'tab\there'",
        r"'line\nbreak'",
        r"'back\\slash'",
        r"'\\N'",
        r"'cr\rlf'",
        r"'nul\0byte'",
        "'quote''s'",
        "'émoji 😀'",
        "''",
        "NULL",
    ];
    let row = |i: usize| {
        let id = 2 * i + 1;
        let t = texts[i % texts.len()];
        let enum_ = ["'x'", "'y z'", "NULL"][i % 3];
        let d = if i % 2 == 0 {
            format!("{i}.{:04}", i % 10_000)
        } else {
            format!("-{i}.5")
        };
        format!(
            "({id}, {t}, REPEAT({t}, 3), {d}, {i} / 7, {i} / 3e10, '2026-12-07 10:00:{:02}.{:03}', '2026-12-07', \
             '{}12:34:56.78', {enum_}, 'p,q', JSON_OBJECT('k', {t}, 'n', {i}), 4294967295, 'café')",
            i % 60,
            i % 1000,
            if i % 2 == 0 { "" } else { "-" },
        )
    };
    let loaded = |admin: String| async move {
        sample(&get(&format!("{admin}/metrics")), "drc_applied_rows_loaded_total", &[]).unwrap_or(0.0)
    };
    // 1. 600 new rows in one transaction: loaded
    let rows: Vec<String> = (0..600).map(row).collect();
    exec(
        ZONE_A,
        &[&format!(
            "INSERT INTO `{db}`.typed (id, t, txt, d, f, g, dt, dd, tm, e, s, j, u, l1) VALUES {}",
            rows.join(", ")
        )],
    )
    .await;
    p.assert_converged("typed", 30, 0).await;
    assert_eq!(p.rows(1, "typed").await.len(), 600);
    assert_eq!(loaded(admin[1].clone()).await, 600.0, "{}", p.log(1));
    // 2. binary data: INSERTs, same result
    let bins: Vec<String> = (0..300)
        .map(|i| format!("({}, X'00{:02x}ff09')", 2 * i + 1, i % 256))
        .collect();
    exec(
        ZONE_A,
        &[&format!("INSERT INTO `{db}`.bin (id, b) VALUES {}", bins.join(", "))],
    )
    .await;
    p.assert_converged("bin", 30, 0).await;
    assert_eq!(p.rows(1, "bin").await.len(), 300);
    assert_eq!(loaded(admin[1].clone()).await, 600.0, "binary values are not loaded");
    // 3. zone b has one key of the next run already, older (written outside the binlog)
    exec(
        ZONE_B,
        &[
            "SET SESSION sql_log_bin = 0",
            &format!("INSERT INTO `{db}`.typed (id, t, updated_at) VALUES (1301, 'old in b', '2020-01-01 00:00:00')"),
        ],
    )
    .await;
    let rows: Vec<String> = (650..950).map(row).collect();
    exec(
        ZONE_A,
        &[&format!(
            "INSERT INTO `{db}`.typed (id, t, txt, d, f, g, dt, dd, tm, e, s, j, u, l1) VALUES {}",
            rows.join(", ")
        )],
    )
    .await;
    p.assert_converged("typed", 30, 0).await;
    assert_eq!(p.rows(1, "typed").await.len(), 900);
    assert_eq!(p.conflicts(1, "local_row_newer").await, 0);
    for z in 0..2 {
        assert!(p.running(z), "{}", p.logs());
    }
}

/// A local delete whose tombstone the journal has not written yet (it lags under
/// load; here held back by `DRC_TEST_JOURNAL_DELAY_MS`, a test hook) looks like a
/// row this zone never had. A newer update of that row from the other zone, whose
/// key is outside the other zone's ID range, must still be decided against the
/// delete (it wins: the row comes back), not quarantined as a key the other zone
/// created (seen once in CI-like load: zone a kept nothing, zone b the row).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_racing_the_journal_of_a_local_delete_is_decided_against_the_delete() {
    let mut p = Pair::new("journal_race", &[ORDERS], 6071).await;
    p.start_both().await;
    let db = p.db.clone();
    exec(
        ZONE_A,
        &[&format!(
            "INSERT INTO `{db}`.orders (id, customer) VALUES (1, 'from a')"
        )],
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            p.rows(1, "orders").await.len() == 1
        })
        .await,
        "{}",
        p.logs()
    );
    // b's daemon down: a's delete reaches b only later; a's journal held back
    p.kill9(1);
    p.kill9(0);
    p.start_with_env(0, &[("DRC_TEST_JOURNAL_DELAY_MS", "5000")]);
    assert!(
        wait_until(Duration::from_secs(20), || async {
            p.log(0).matches("replicating from=b").count() >= 2
        })
        .await,
        "{}",
        p.log(0)
    );
    exec(ZONE_A, &[&format!("DELETE FROM `{db}`.orders WHERE id = 1")]).await;
    // (the version column has whole seconds: the update is a later second)
    tokio::time::sleep(Duration::from_millis(1100)).await;
    exec(
        ZONE_B,
        &[&format!(
            "UPDATE `{db}`.orders SET customer = 'b wrote after the delete' WHERE id = 1"
        )],
    )
    .await;
    p.start(1);
    p.assert_converged("orders", 60, 0).await;
    let rows = p.rows(0, "orders").await;
    let later: String = "b wrote after the delete".bytes().map(|b| format!("{b:02X}")).collect();
    assert!(
        rows.len() == 1 && rows[0].contains(&later),
        "the later update brought the row back in zone a: {rows:?}\n{}",
        p.logs()
    );
    assert_eq!(
        p.conflicts(0, "id_out_of_range").await,
        0,
        "not quarantined:\n{}",
        p.logs()
    );
}
