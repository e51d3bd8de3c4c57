//! `drc seed` against the testenv's two MariaDB zones: 200,000 rows that zone b never
//! got (written in zone a before zone b's daemon first started) are copied into zone b
//! while zone a keeps updating, deleting and inserting them; the seed is killed
//! (`kill -9`) halfway and run again, and resumes; after catch-up `drc verify` reports
//! no difference and an independent comparison of every row and cell agrees.
//!
//! Run: `testenv/up.sh && cargo nextest run --test seed`.

mod common;

use common::pair::*;
use mysql_async::prelude::Queryable;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const ROWS: u64 = 200_000;

async fn count(port: u16, q: String) -> u64 {
    let mut c = common::conn(port).await;
    c.query_first::<u64, _>(q).await.unwrap().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_two_hundred_thousand_rows_while_the_source_writes_killed_halfway() {
    let mut p = Pair::new("seed", &[ORDERS], 6361).await;
    // written before zone b's daemon first starts (it starts replicating at "now"):
    // zone b never gets them from replication
    for part in 0..4 {
        let values: Vec<String> = (part * ROWS / 4..(part + 1) * ROWS / 4)
            .map(|i| format!("({}, 'row {i}')", 2 * i + 1))
            .collect();
        common::exec(
            PORTS[0],
            &[&format!(
                "INSERT INTO `{}`.orders (id, customer) VALUES {}",
                p.db,
                values.join(", ")
            )],
        )
        .await;
    }
    p.start_both().await;
    let db = p.db.clone();
    assert_eq!(
        count(PORTS[1], format!("SELECT COUNT(*) FROM `{db}`.orders")).await,
        0,
        "zone b starts empty"
    );

    // zone a writes all along: updates and deletes of the rows being copied, inserts
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, db) = (stop.clone(), db.clone());
        tokio::spawn(async move {
            use rand::{Rng, SeedableRng};
            let mut rng = rand::rngs::StdRng::seed_from_u64(7);
            let mut c = common::conn(PORTS[0]).await;
            let mut next = 2 * ROWS + 1;
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) && n < 200_000 {
                let id = 2 * rng.gen_range(0..ROWS) + 1;
                let q = match rng.gen_range(0..10) {
                    0..=5 => format!("UPDATE `{db}`.orders SET n = n + 1 WHERE id = {id}"),
                    6 | 7 => format!("DELETE FROM `{db}`.orders WHERE id = {id}"),
                    _ => {
                        next += 2;
                        format!("INSERT INTO `{db}`.orders (id, customer) VALUES ({next}, 'new')")
                    }
                };
                c.query_drop(q).await.unwrap();
                n += 1;
            }
            n
        })
    };

    // the seed, killed once it copied a good part, then run again: it resumes
    let cfg = p.cfg[1].display().to_string();
    let seed_log = p.dir.path().join("seed.log");
    let mut child = std::process::Command::new(common::drc_bin())
        .args(["seed", "--config", &cfg, "--from", "a", "--chunk-rows", "2000"])
        .stdout(std::fs::File::create(&seed_log).unwrap())
        .stderr(std::fs::File::options().append(true).open(&seed_log).unwrap())
        .spawn()
        .unwrap();
    let progress =
        format!("SELECT COALESCE(MAX(copied), 0) FROM drc.seed_progress WHERE source_zone = 'a' AND db = '{db}'");
    let halfway = common::wait_until(Duration::from_secs(120), || {
        let q = progress.clone();
        async move { count(PORTS[1], q).await >= ROWS / 3 }
    })
    .await;
    assert!(
        halfway,
        "the seed did not get a third of the way:\n{}\n{}",
        std::fs::read_to_string(&seed_log).unwrap_or_default(),
        p.logs()
    );
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let at_kill = count(PORTS[1], progress.clone()).await;
    assert!(at_kill < ROWS, "the seed was done before it was killed: copy more rows");
    let (code, out) = common::drc(&["seed", "--config", &cfg, "--from", "a", "--chunk-rows", "2000"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("resumed after {at_kill}")) || out.contains("resumed after"),
        "{out}"
    );
    stop.store(true, Ordering::SeqCst);
    let writes = writer.await.unwrap();
    assert!(writes > 1000, "zone a wrote during the seed ({writes} writes)");

    // caught up: verify, and every row and cell compared independently
    let (code, out) = common::drc(&["verify", "--config", &cfg, "--zones", "a,b", "--settle-secs", "60"]);
    assert_eq!(code, 0, "{out}\n{}", p.logs());
    assert!(wait_converged(&p, "orders", 60).await, "{}", p.logs());
    let rows = count(PORTS[1], format!("SELECT COUNT(*) FROM `{db}`.orders")).await;
    assert!(rows > ROWS / 2, "zone b holds the copy: {rows} rows");
    assert!(p.running(0) && p.running(1), "{}", p.logs());
}
