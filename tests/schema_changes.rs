//! ALTER TABLE under traffic, run in one zone and seconds later in the other (either
//! order), while both zones write the table and the daemons are killed (`kill -9`)
//! and restarted: ADD COLUMN (nullable, and NOT NULL with a default), MODIFY COLUMN
//! (widening), ADD and DROP INDEX, DROP COLUMN. The application writes what its
//! zone's schema has (the new column's values, names only the widened column holds,
//! the dropped column while it exists). No daemon stops; no row and no value is
//! lost; after both ALTERs of each step the zones are identical.
//!
//! What the rules of `src/mysql/applier/apply/columns.rs` must do here:
//! * a's rows carry `note` (not NULL) before b has it: b's direction waits for the
//!   column (`drc_schema_wait_seconds`), then applies them in order with it;
//! * a's rows carry `qty` = 7, the default of a's `ADD COLUMN`: applied without it
//!   (b's own ALTER gives the rows 7);
//! * b's long names before a widened `name`: a's direction waits (the value does not
//!   fit), then applies them;
//! * b dropped `legacy` first: a's rows that still carry it are applied without it.
//!
//! Run: `testenv/up.sh && cargo nextest run --test schema_changes`.

mod common;

use common::pair::*;
use common::*;
use mysql_async::prelude::Queryable;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const ITEMS: &str = "CREATE TABLE items (id BIGINT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(20) NOT NULL, \
    n INT NOT NULL DEFAULT 0, legacy VARCHAR(10) NULL, \
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";

/// Whether a zone's table has a column (the application asks its own zone).
async fn has_column(c: &mut mysql_async::Conn, db: &str, col: &str) -> bool {
    let n: u64 = c
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'items' AND COLUMN_NAME = ?",
            (db, col),
        )
        .await
        .unwrap()
        .unwrap();
    n > 0
}

async fn name_width(c: &mut mysql_async::Conn, db: &str) -> u64 {
    c.exec_first(
        "SELECT CHARACTER_MAXIMUM_LENGTH FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'items' AND COLUMN_NAME = 'name'",
        (db,),
    )
    .await
    .unwrap()
    .unwrap()
}

/// A bounded load in one zone writing what the zone's schema has; returns the rows it
/// inserted.
fn load(port: u16, db: String, zone: u64, ops: u64, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut c = conn(port).await;
        let mut schema = conn(port).await;
        c.query_drop(format!(
            "SET SESSION auto_increment_increment = 2, auto_increment_offset = {}",
            zone + 1
        ))
        .await
        .unwrap();
        let mut inserted = 0u64;
        for i in 0..ops {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let (note, legacy) = (
                has_column(&mut schema, &db, "note").await,
                has_column(&mut schema, &db, "legacy").await,
            );
            let wide = name_width(&mut schema, &db).await >= 60;
            let name = if wide {
                format!("z{zone} {i} a name longer than twenty characters")
            } else {
                format!("z{zone} {i}")
            };
            let sql = if i % 3 == 2 {
                format!(
                    "UPDATE `{db}`.items SET n = n + 1, name = '{name}' WHERE id = (SELECT id FROM (SELECT MAX(id) AS id FROM `{db}`.items) AS m)"
                )
            } else {
                let (mut cols, mut vals) = (vec!["name"], vec![format!("'{name}'")]);
                if note {
                    cols.push("note");
                    vals.push(format!("'note z{zone} {i}'"));
                }
                if legacy {
                    cols.push("legacy");
                    vals.push(format!("'l{i}'"));
                }
                format!(
                    "INSERT INTO `{db}`.items ({}) VALUES ({})",
                    cols.join(", "),
                    vals.join(", ")
                )
            };
            match c.query_drop(&sql).await {
                Ok(()) => inserted += u64::from(i % 3 != 2),
                // the schema changed between the look and the write: next time
                Err(mysql_async::Error::Server(e)) if matches!(e.code, 1054 | 1406 | 1213 | 1205) => {}
                Err(e) => panic!("load in zone {zone}: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        inserted
    })
}

fn running(p: &mut Pair) -> bool {
    p.daemons
        .iter_mut()
        .all(|d| d.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none()))
}

/// Runs `sql` in `first`, then a moment later (a kill -9 of the other zone's daemon
/// and a restart in between) in the other zone.
async fn alter_both(p: &mut Pair, first: usize, sql: &str, pause: Duration) {
    let db = p.db.clone();
    let sql = sql.replace("{t}", &format!("`{db}`.items"));
    exec(PORTS[first], &[&sql]).await;
    tokio::time::sleep(pause / 2).await;
    p.kill9(1 - first);
    p.start(1 - first);
    tokio::time::sleep(pause / 2).await;
    exec(PORTS[1 - first], &[&sql]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_table_in_both_zones_in_either_order_under_load_and_kills() {
    let mut p = Pair::new("alter", &[ITEMS], 5361).await;
    p.start_both().await;
    let db = p.db.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = [(ZONE_A, 0), (ZONE_B, 1)]
        .into_iter()
        .map(|(port, z)| load(port, db.clone(), z, 1500, stop.clone()))
        .collect();
    let pause = Duration::from_millis(2500);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // a first: a nullable column the application fills at once, and a defaulted one
    alter_both(
        &mut p,
        0,
        "ALTER TABLE {t} ADD COLUMN note VARCHAR(40) NULL, ADD COLUMN qty INT NOT NULL DEFAULT 7",
        pause,
    )
    .await;
    // b first: widening, and names that only the wider column holds
    alter_both(
        &mut p,
        1,
        "ALTER TABLE {t} MODIFY COLUMN name VARCHAR(60) NOT NULL",
        pause,
    )
    .await;
    alter_both(&mut p, 0, "ALTER TABLE {t} ADD INDEX by_name (name)", pause).await;
    // b first: a column dropped while a's application still writes it
    alter_both(&mut p, 1, "ALTER TABLE {t} DROP COLUMN legacy", pause).await;
    alter_both(&mut p, 1, "ALTER TABLE {t} DROP INDEX by_name", pause).await;
    let mut inserted = 0;
    for l in loads {
        inserted += l.await.unwrap();
    }
    assert!(running(&mut p), "a daemon stopped:\n{}", p.logs());
    p.assert_converged("items", 90, 0).await;
    let rows = p.rows(0, "items").await;
    assert_eq!(rows.len() as u64, inserted, "every row, once");
    // nothing lost: every note written in either zone is in both, and the long names
    let mut c = [conn(ZONE_A).await, conn(ZONE_B).await];
    for (z, c) in c.iter_mut().enumerate() {
        let (notes, long, qty): (u64, u64, u64) = c
            .query_first(format!(
                "SELECT SUM(note IS NOT NULL), SUM(CHAR_LENGTH(name) > 20), SUM(qty = 7) FROM `{db}`.items"
            ))
            .await
            .unwrap()
            .unwrap();
        assert!(
            notes > 0 && long > 0,
            "zone {z}: the load wrote new values ({notes} notes, {long} long names)"
        );
        assert_eq!(qty, inserted, "zone {z}: every row has the default");
    }
    // b's direction from a waited for `note` at least once, and it is over
    let waited: u64 = c[1]
        .exec_first(
            "SELECT COUNT(*) FROM drc.dropped_columns WHERE db = ? AND tbl = 'items' AND col = 'legacy'",
            (&db,),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(waited, 1, "zone b's journal recorded its DROP COLUMN");
    let log = p.logs();
    assert!(
        log.contains("has column `note` that"),
        "b waited for the column a added:\n{log}"
    );
    assert!(running(&mut p), "a daemon stopped:\n{}", p.logs());
}

/// A table waiting for a column does not hold the others back: zone a adds column
/// `note` and writes rows with a value for it; zone b lacks the column for a while.
/// Meanwhile a's writes to another table (`orders`) reach b. a's rows of `items` are
/// parked in b (`drc.parked`), kept across a `kill -9` of b's daemon, and applied in
/// order (an insert, then updates of the same row) once b runs the ALTER.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_waiting_for_a_column_does_not_hold_back_the_other_tables() {
    let mut p = Pair::new("parked", &[ITEMS, ORDERS], 6031).await;
    p.start_both().await;
    let db = p.db.clone();
    exec(
        ZONE_A,
        &[
            &format!("ALTER TABLE `{db}`.items ADD COLUMN note VARCHAR(20) NULL"),
            &format!("INSERT INTO `{db}`.items (id, name, note) VALUES (1, 'first', 'n1')"),
            &format!("UPDATE `{db}`.items SET note = 'n2', n = 1 WHERE id = 1"),
            &format!("INSERT INTO `{db}`.orders (id, customer) VALUES (1, 'behind the wait')"),
        ],
    )
    .await;
    let orders_in_b = |db: String| async move {
        conn(ZONE_B)
            .await
            .query::<u64, _>(format!("SELECT id FROM `{db}`.orders"))
            .await
            .unwrap()
    };
    assert!(
        wait_until(Duration::from_secs(20), || async {
            orders_in_b(db.clone()).await == [1]
        })
        .await,
        "the other table is held back by the waiting one:\n{}",
        p.log(1)
    );
    assert!(p.rows(1, "items").await.is_empty(), "items waits in b");
    // parked rows survive a kill; more rows park behind them
    p.kill9(1);
    exec(
        ZONE_A,
        &[&format!("UPDATE `{db}`.items SET note = 'n3', n = 2 WHERE id = 1")],
    )
    .await;
    p.start(1);
    exec(
        ZONE_A,
        &[&format!(
            "INSERT INTO `{db}`.orders (id, customer) VALUES (3, 'after the kill')"
        )],
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            orders_in_b(db.clone()).await == [1, 3]
        })
        .await,
        "{}",
        p.log(1)
    );
    exec(
        ZONE_B,
        &[&format!("ALTER TABLE `{db}`.items ADD COLUMN note VARCHAR(20) NULL")],
    )
    .await;
    p.assert_converged("items", 30, 0).await;
    let note: Option<String> = conn(ZONE_B)
        .await
        .query_first(format!("SELECT note FROM `{db}`.items WHERE id = 1"))
        .await
        .unwrap();
    assert_eq!(note.as_deref(), Some("n3"), "applied in order");
    let left: u64 = conn(ZONE_B)
        .await
        .query_first(format!("SELECT COUNT(*) FROM drc.parked WHERE db = '{db}'"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(left, 0, "nothing stays parked");
    assert!(running(&mut p), "{}", p.logs());
}

/// The table metadata drc reads is never wrong under a concurrent ALTER TABLE, even
/// from a session that holds a metadata lock of its own (drc's sessions hold their
/// `GET_LOCK` claim): MariaDB's information_schema then skips a table under DDL with
/// warning 1684 instead of waiting, and a table read without its primary key had its
/// changes skipped (rows lost; CI, 2026-12-06). Every read is the right definition or
/// a transient error (read again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_metadata_read_under_concurrent_alter_is_right_or_retried() {
    use drc::mysql::applier::table::LocalTable;
    let db = format!("drc_meta_race_{}", std::process::id());
    exec(
        ZONE_A,
        &[
            &format!("DROP DATABASE IF EXISTS `{db}`"),
            &format!("CREATE DATABASE `{db}`"),
            &format!("CREATE TABLE `{db}`.items (id BIGINT PRIMARY KEY, name VARCHAR(20) NOT NULL, updated_at DATETIME(6) NOT NULL)"),
        ],
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let alter = {
        let (db, stop) = (db.clone(), stop.clone());
        tokio::spawn(async move {
            let mut c = conn(ZONE_A).await;
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) && n < 2000 {
                for q in ["ADD INDEX by_name (name)", "DROP INDEX by_name"] {
                    c.query_drop(format!("ALTER TABLE `{db}`.items {q}")).await.unwrap();
                }
                n += 1;
            }
        })
    };
    let mut c = conn(ZONE_A).await;
    let _: Option<i64> = c
        .query_first("SELECT GET_LOCK('drc_meta_race_claim', 0)")
        .await
        .unwrap();
    let (mut right, mut retried) = (0, 0);
    for _ in 0..1500 {
        match LocalTable::load(&mut c, &db, "items", "updated_at").await {
            Ok(Some(t)) => {
                assert_eq!(t.pk, ["id"], "a definition without its primary key");
                assert_eq!(t.columns, ["id", "name", "updated_at"]);
                right += 1;
            }
            Ok(None) => panic!("the table looked missing"),
            Err(mysql_async::Error::Server(e)) if e.code == 1684 => retried += 1,
            Err(e) => panic!("{e}"),
        }
    }
    stop.store(true, Ordering::SeqCst);
    alter.await.unwrap();
    eprintln!("{right} right, {retried} retried");
    assert!(right > 0);
    exec(ZONE_A, &[&format!("DROP DATABASE `{db}`")]).await;
}
