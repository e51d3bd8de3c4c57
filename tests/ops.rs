//! Operations against the real testenv zones:
//! * `/metrics` exposes the lag histogram and gauge with sensible values while load
//!   runs; `/status` and `drc status` report the direction; mutating calls without
//!   (or with a wrong) bearer token are refused; `drc pause` stops applying at a
//!   transaction boundary and `drc resume` continues;
//! * the lag drc reports moves, and agrees within 50 ms with an independent probe (a
//!   row written in zone a, polled for in zone b);
//! * `testenv/drill.sh` runs a complete failover drill (fence, drain, move, verify,
//!   unfence) and reports PASS;
//! * docs/METRICS.md lists every metric drc exports.
//!
//! Run: `testenv/up.sh && cargo nextest run --test ops`.

mod common;

use common::pair::*;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn post_status(url: &str, token: Option<&str>) -> u16 {
    let mut r = ureq::post(url).timeout(Duration::from_secs(5));
    if let Some(t) = token {
        r = r.set("Authorization", &format!("Bearer {t}"));
    }
    match r.call() {
        Ok(resp) => resp.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("POST {url}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_lag_and_mutations_need_the_token() {
    let mut p = Pair::new("metrics", &[ORDERS], 5301).await;
    let admin = p.with_admin(9461, "s3cret");
    p.start_both().await;
    let load = Load::spawn(&p, 2, 300, rand::random());
    let (from_a, to_b) = ("from_zone=\"a\"", "to_zone=\"b\"");
    let ok = wait_until(Duration::from_secs(30), || async {
        sample(
            &get(&format!("{}/metrics", admin[1])),
            "drc_replication_lag_histogram_seconds_count",
            &[from_a, to_b],
        )
        .is_some_and(|n| n >= 20.0)
    })
    .await;
    let text = get(&format!("{}/metrics", admin[1]));
    assert!(ok, "no lag histogram samples in zone b's /metrics:\n{text}");
    let count = sample(&text, "drc_replication_lag_histogram_seconds_count", &[from_a, to_b]).unwrap();
    let sum = sample(&text, "drc_replication_lag_histogram_seconds_sum", &[from_a, to_b]).unwrap();
    let gauge = sample(&text, "drc_replication_lag_seconds", &[from_a, to_b]).unwrap();
    let buckets = text
        .lines()
        .filter(|l| l.starts_with("drc_replication_lag_histogram_seconds_bucket{") && l.contains(from_a))
        .count();
    eprintln!(
        "zone b while loaded: {count} lag samples, mean {:.1} ms, gauge {:.1} ms, {buckets} buckets",
        sum / count * 1e3,
        gauge * 1e3
    );
    assert!(buckets >= 10, "histogram buckets:\n{text}");
    assert!(
        sum / count >= 0.0 && sum / count < 1.0,
        "mean lag {} s is not sensible",
        sum / count
    );
    assert!((0.0..2.0).contains(&gauge), "lag gauge {gauge} s is not sensible");
    for name in [
        "drc_applied_transactions_total",
        "drc_applied_rows_total",
        "drc_reader_transactions_total",
        "drc_heartbeats_written_total",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
    let committed = load.finish().await;
    p.assert_applied_exactly(&committed).await;

    // With no user traffic the heartbeats keep measuring; both zones' heartbeats give
    // a clock-skew estimate, ~0 here (one host, one clock).
    let idle_before = sample(
        &get(&format!("{}/metrics", admin[1])),
        "drc_replication_lag_histogram_seconds_count",
        &[from_a, to_b],
    )
    .unwrap();
    let skew = wait_until(Duration::from_secs(10), || async {
        sample(
            &get(&format!("{}/metrics", admin[1])),
            "drc_clock_skew_seconds",
            &[from_a, to_b],
        )
        .is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let text = get(&format!("{}/metrics", admin[1]));
    let idle_after = sample(&text, "drc_replication_lag_histogram_seconds_count", &[from_a, to_b]).unwrap();
    assert!(
        idle_after >= idle_before + 2.0,
        "no lag samples without traffic: {idle_before} -> {idle_after}"
    );
    assert!(skew, "no clock-skew estimate in zone b:\n{text}");
    let skew = sample(&text, "drc_clock_skew_seconds", &[from_a, to_b]).unwrap();
    eprintln!(
        "idle: {} heartbeat lag samples in 2.5 s; clock skew estimate {:.2} ms",
        idle_after - idle_before,
        skew * 1e3
    );
    assert!(
        skew.abs() < 0.05,
        "clock skew between two zones on one host estimated at {skew} s"
    );

    // Mutations need the token; reads do not.
    assert_eq!(post_status(&format!("{}/pause", admin[1]), None), 401);
    assert_eq!(post_status(&format!("{}/pause", admin[1]), Some("wrong")), 401);
    let status: serde_json::Value = serde_json::from_str(&get(&format!("{}/status", admin[1]))).unwrap();
    assert_eq!(status["directions"][0]["paused"], false, "{status}");

    // drc pause / status / resume through the CLI.
    let cfg_b = p.cfg[1].to_str().unwrap().to_string();
    let (code, out) = drc(&["pause", "--config", &cfg_b, "--from", "a"]);
    assert_eq!(code, 0, "{out}");
    let db = p.db.clone();
    exec(
        ZONE_A,
        &[&format!("INSERT INTO `{db}`.orders (customer) VALUES ('while paused')")],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (code, out) = drc(&["status", "--config", &cfg_b, "--format", "json"]);
    assert_eq!(code, 0, "{out}");
    let st: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(st["directions"][0]["from_zone"], "a", "{st}");
    assert_eq!(st["directions"][0]["paused"], true, "{st}");
    assert_eq!(p.applied_txns(1).await, committed[0], "nothing applied while paused");
    let (code, out) = drc(&["resume", "--config", &cfg_b]);
    assert_eq!(code, 0, "{out}");
    p.assert_applied_exactly(&[committed[0] + 1, committed[1]]).await;
    let (code, out) = drc(&["status", "--config", &cfg_b]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("a -> b: applying"), "{out}");

    // every mutating call is in zone b's audit log (default: in its state directory),
    // refused ones included, and the token in none of its lines nor the daemon's log
    let audit = p.cfg[1].parent().unwrap().join("state-b/audit.log");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&audit)
        .unwrap_or_else(|e| panic!("{}: {e}", audit.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seen: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["action"].as_str().unwrap().into(),
                l["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(seen.len(), 4, "{lines:?}");
    assert!(
        seen[0].0 == "pause" && seen[0].1.starts_with("refused: missing"),
        "{seen:?}"
    );
    assert!(
        seen[1].0 == "pause" && seen[1].1.starts_with("refused: wrong"),
        "{seen:?}"
    );
    assert_eq!(seen[2], ("pause".into(), "ok".into()));
    assert_eq!(seen[3], ("resume".into(), "ok".into()));
    assert_eq!(lines[2]["target"], "a");
    assert!(
        lines
            .iter()
            .all(|l| l["who"].as_str().unwrap().starts_with("127.0.0.1:")),
        "{lines:?}"
    );
    let text = std::fs::read_to_string(&audit).unwrap() + &p.logs();
    assert!(!text.contains("s3cret"), "the admin token in a log:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_lag_agrees_with_an_independent_probe() {
    let mut p = Pair::new("lag", &[ORDERS], 5311).await;
    let admin = p.with_admin(9471, "t");
    p.start_both().await;
    let db = p.db.clone();
    // Steady load in zone a: ~200 transactions/s for 10 s (bounded).
    let load = {
        let db = db.clone();
        tokio::spawn(async move {
            let mut c = conn(ZONE_A).await;
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            for i in 0..2000 {
                tick.tick().await;
                mysql_async::prelude::Queryable::exec_drop(
                    &mut c,
                    format!("INSERT INTO `{db}`.orders (customer) VALUES (?)"),
                    (format!("load {i}"),),
                )
                .await
                .unwrap();
            }
        })
    };
    // drc's view, scraped every 100 ms.
    let scraper = {
        let url = format!("{}/metrics", admin[1]);
        tokio::spawn(async move {
            let mut v = Vec::new();
            for _ in 0..90 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let text = tokio::task::spawn_blocking({
                    let url = url.clone();
                    move || get(&url)
                })
                .await
                .unwrap();
                if let Some(g) = sample(
                    &text,
                    "drc_replication_lag_seconds",
                    &["from_zone=\"a\"", "to_zone=\"b\""],
                ) {
                    v.push(g * 1e3);
                }
            }
            v
        })
    };
    // The independent probe: a row written in a, polled for in b every 2 ms.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut probe = Vec::new();
    let (mut ca, mut cb) = (conn(ZONE_A).await, conn(ZONE_B).await);
    for i in 0..30 {
        use mysql_async::prelude::Queryable;
        let name = format!("probe {i}");
        let t0 = Instant::now();
        ca.exec_drop(format!("INSERT INTO `{db}`.orders (customer) VALUES (?)"), (&name,))
            .await
            .unwrap();
        loop {
            let n: Option<u64> = cb
                .exec_first(
                    format!("SELECT COUNT(*) FROM `{db}`.orders WHERE customer = ?"),
                    (&name,),
                )
                .await
                .unwrap();
            if n == Some(1) {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "probe {i} never arrived");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        probe.push(t0.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reported = scraper.await.unwrap();
    load.await.unwrap();
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    assert!(reported.len() >= 50, "too few lag readings: {reported:?}");
    let (m_drc, m_probe) = (median(reported.clone()), median(probe.clone()));
    eprintln!(
        "lag under ~200 tx/s: drc reports median {m_drc:.1} ms ({} readings), independent probe median {m_probe:.1} ms ({} probes)",
        reported.len(),
        probe.len()
    );
    // a gauge stuck at one value (0, say) is no measurement
    assert!(
        m_drc > 0.0 && reported.iter().any(|r| *r != reported[0]),
        "drc's lag gauge does not move: {reported:?}"
    );
    assert!(
        (m_drc - m_probe).abs() <= 50.0,
        "drc's lag {m_drc:.1} ms disagrees with the probe's {m_probe:.1} ms by more than 50 ms"
    );
}

/// The clock-skew estimate has the sign and the size of a real skew: zone b's daemon
/// runs with its clock 400 ms ahead (`DRC_FAKE_CLOCK_OFFSET_MS`, the heartbeats it
/// writes and the lags it measures move with it); zone b estimates (b − a) ≈ +0.4 s,
/// zone a estimates (a − b) ≈ −0.4 s. A constant, a zero or a sign error fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_estimate_has_the_sign_and_size_of_a_skewed_clock() {
    let mut p = Pair::new("skew", &[ORDERS], 6011).await;
    let admin = p.with_admin(9631, "s3cret");
    p.start_with_env(0, &[]);
    p.start_with_env(1, &[("DRC_FAKE_CLOCK_OFFSET_MS", "400")]);
    let estimate = |zone: usize, from: &'static str, to: &'static str| {
        let url = format!("{}/metrics", admin[zone]);
        move || {
            let text = ureq::get(&url)
                .timeout(Duration::from_secs(5))
                .call()
                .ok()
                .and_then(|r| r.into_string().ok())
                .unwrap_or_default();
            sample(&text, "drc_clock_skew_seconds", &[from, to])
        }
    };
    let (in_b, in_a) = (
        estimate(1, "from_zone=\"a\"", "to_zone=\"b\""),
        estimate(0, "from_zone=\"b\"", "to_zone=\"a\""),
    );
    let ok = wait_until(Duration::from_secs(30), || async {
        in_b().is_some_and(|s| (0.3..0.5).contains(&s)) && in_a().is_some_and(|s| (-0.5..-0.3).contains(&s))
    })
    .await;
    assert!(
        ok,
        "skew estimates: in b (b - a) {:?} s, in a (a - b) {:?} s; expected about +0.4 and -0.4\n{}",
        in_b(),
        in_a(),
        p.logs()
    );
    for z in 0..2 {
        assert!(p.running(z), "{}", p.logs());
    }
}

/// The journal's reader leaves the rows of applier transactions undecoded when the
/// journal has nothing to check in them (no local delete of the table since, nothing
/// pending): zone b's journal skips zone a's rows as b's applier wrote them. (The rows
/// it must still read, after a local delete the applier had not seen, are the
/// window tests' (tests/journal.rs, tests/active_active.rs), which pass with it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_skips_applier_rows_it_does_not_need() {
    let mut p = Pair::new("jskip", &[ORDERS], 6051).await;
    let admin = p.with_admin(9641, "s3cret");
    p.start_both().await;
    let skipped = || {
        sample(
            &get(&format!("{}/metrics", admin[1])),
            "drc_journal_skipped_events_total",
            &["zone=\"b\""],
        )
        .unwrap_or(0.0)
    };
    p.insert_rows_in_a(200).await;
    assert!(
        wait_until(Duration::from_secs(20), || async { skipped() > 0.0 }).await,
        "zone b's journal decoded every applier row:\n{}",
        get(&format!("{}/metrics", admin[1]))
    );
    p.assert_converged("orders", 30, 0).await;
    // a transaction of several fragments (max_fragment_rows = 10,000) too
    let before = skipped();
    exec(
        ZONE_A,
        &[&format!(
            "INSERT INTO `{db}`.orders (customer) SELECT CONCAT('bulk ', seq) FROM `{db}`.seq_1_to_30000",
            db = p.db
        )],
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(30), || async { skipped() >= before + 3.0 }).await,
        "{before} -> {}",
        skipped()
    );
    p.assert_converged("orders", 30, 0).await;
    for z in 0..2 {
        assert!(p.running(z), "{}", p.logs());
    }
}

#[test]
fn drill_script_fences_drains_moves_and_reports_pass() {
    // zone a's daemon's audit log ([reader] state_dir of testenv/zone-a.toml)
    let audit = repo().join("testenv/.run/drc-a/state/audit.log");
    let before = std::fs::read_to_string(&audit).unwrap_or_default().lines().count();
    let out = Command::new("bash")
        .arg(repo().join("testenv/drill.sh"))
        .env("DRILL_SECONDS", "2")
        .env("DRC_BIN", drc_bin())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    // the drill leaves the daemons running; stop them
    let _ = Command::new("bash")
        .arg("-c")
        .arg(format!(
            ". {}/testenv/lib.sh && stop_daemon a && stop_daemon b",
            repo().display()
        ))
        .status();
    eprintln!("{text}");
    assert!(out.status.success(), "drill failed:\n{text}\n{err}");
    assert!(text.contains("RESULT: PASS"), "{text}");
    assert!(text.contains("lost writes: 0"), "{text}");
    assert!(text.contains("conflicts on the drill's rows: 0 unexplained"), "{text}");
    assert!(text.contains("zone a unfenced: read_only = 0"), "{text}");
    // each fence and unfence by the drill's commands is audited: started, then done
    let entries: Vec<serde_json::Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .skip(before)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let done = |action: &str| {
        entries
            .iter()
            .filter(|e| e["action"] == action && e["via"] == "cli" && e["target"] == "a")
            .filter(|e| e["outcome"].as_str().unwrap().starts_with("ok: read_only"))
            .count()
    };
    assert!(done("fence") >= 2 && done("unfence") >= 2, "audit entries: {entries:?}");
    let committed = |prefix: &str| -> u64 {
        let line = text
            .lines()
            .find(|l| l.contains(prefix))
            .unwrap_or_else(|| panic!("{prefix}: {text}"));
        line.split(':')
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(committed("writes committed in zone a") > 0, "{text}");
    assert!(committed("writes committed in zone b") > 0, "{text}");
    assert!(text.contains("drained a -> b in"), "{text}");
    // the global-zone table's home moved with nothing lost, a misrouted write undone
    // on each side of the move
    assert!(
        text.contains("home writes, lost or extra: 0, misrouted writes undone: a 1, b 1"),
        "{text}"
    );
}

#[test]
fn metrics_doc_lists_every_metric() {
    let doc = std::fs::read_to_string(repo().join("docs/METRICS.md")).unwrap();
    for name in drc::telemetry::metrics::ALL {
        assert!(
            doc.contains(&format!("`{name}`")),
            "docs/METRICS.md does not list {name}"
        );
    }
}

/// The Grafana dashboard and the alert rules use only metrics drc exports, and cover
/// lag per direction, throughput, conflicts, violations and clock skew.
#[test]
fn dashboard_and_alerts_use_only_exported_metrics() {
    let known = |name: &str| {
        drc::telemetry::metrics::ALL.iter().any(|m| {
            name == *m
                || [*m, "_bucket"].concat() == name
                || [*m, "_count"].concat() == name
                || [*m, "_sum"].concat() == name
        })
    };
    let names_in = |text: &str| -> Vec<String> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("drc_") && w.len() > 4)
            .map(str::to_string)
            .collect()
    };
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("docs/grafana/drc-dashboard.json")).unwrap())
            .unwrap();
    let mut exprs = String::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            exprs += t["expr"].as_str().unwrap();
            exprs += "\n";
        }
    }
    let alerts: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo().join("docs/prometheus/alerts.yml")).unwrap()).unwrap();
    let mut alert_exprs = String::new();
    for r in alerts["groups"][0]["rules"].as_sequence().unwrap() {
        alert_exprs += r["expr"].as_str().unwrap();
        alert_exprs += "\n";
        assert!(
            r["annotations"]["description"].as_str().is_some(),
            "alert without description: {r:?}"
        );
    }
    for name in names_in(&exprs).iter().chain(names_in(&alert_exprs).iter()) {
        assert!(known(name), "{name} is not a metric drc exports");
    }
    for needed in [
        "drc_replication_lag_seconds",
        "drc_replication_lag_histogram_seconds_bucket",
        "drc_applied_rows_total",
        "drc_conflicts_total",
        "drc_id_range_violations_total",
        "drc_clock_skew_seconds",
    ] {
        assert!(exprs.contains(needed), "the dashboard does not show {needed}");
    }
    for needed in [
        "drc_replication_lag_seconds",
        "drc_applied_transactions_total",
        "drc_conflicts_total",
        "drc_clock_skew_seconds",
    ] {
        assert!(alert_exprs.contains(needed), "no alert on {needed}");
    }
}

/// Tombstones per zone, of this test's database.
async fn tombstones(port: u16, db: &str) -> u64 {
    use mysql_async::prelude::Queryable;
    conn(port)
        .await
        .exec_first("SELECT COUNT(*) FROM drc.tombstones WHERE db = ?", (db,))
        .await
        .unwrap()
        .unwrap()
}

/// Retention of drc's growing tables (3 s here, a pass every second): conflict
/// entries go when old; a tombstone goes only once every origin applied here has had
/// changes applied that were committed 3 s after it. With zone b's direction from a
/// paused, b's tombstones of its own deletes stay however old they get; resumed, they
/// go. Sizes and dropped rows are metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_old_tombstones_only_when_every_origin_is_past_them() {
    let mut p = Pair::new("retention", &[ORDERS], 5951).await;
    let db = p.db.clone();
    p.configure(
        "tombstone_retention_secs = 3\nconflict_retention_secs = 3\nretention_interval_secs = 1\n",
        "",
    );
    let admin = p.with_admin(9621, "t");
    p.start_both().await;
    p.insert_rows_in_a(20).await;
    assert!(wait_converged(&p, "orders", 20).await);
    // a conflict, and tombstones in both zones
    p.conflicting_writes_while_down(1, 3).await;
    p.start(0);
    p.start(1);
    assert!(wait_converged(&p, "orders", 20).await);
    assert!(p.conflicts(0, "local_row_newer").await + p.conflicts(1, "local_row_newer").await >= 1);
    let cfg_b = p.cfg[1].to_str().unwrap().to_string();
    let (code, out) = drc(&["pause", "--config", &cfg_b, "--from", "a"]);
    assert_eq!(code, 0, "{out}");
    exec(ZONE_B, &[&format!("DELETE FROM `{db}`.orders WHERE id IN (5, 7, 9)")]).await;
    let recorded = wait_until(Duration::from_secs(10), || async { tombstones(ZONE_B, &db).await >= 3 }).await;
    assert!(recorded, "zone b's journal records its deletes");
    // conflicts go after 3 s; b's tombstones are held by the paused origin
    let conflicts_gone = wait_until(Duration::from_secs(15), || async {
        use mysql_async::prelude::Queryable;
        let n: u64 = conn(ZONE_B)
            .await
            .exec_first("SELECT COUNT(*) FROM drc.conflicts WHERE db = ?", (&db,))
            .await
            .unwrap()
            .unwrap();
        n == 0
    })
    .await;
    assert!(conflicts_gone, "old conflict entries are dropped:\n{}", p.log(1));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        tombstones(ZONE_B, &db).await >= 3,
        "a tombstone younger than the paused origin's last applied change is kept"
    );
    let (code, out) = drc(&["resume", "--config", &cfg_b]);
    assert_eq!(code, 0, "{out}");
    let gone = wait_until(Duration::from_secs(20), || async {
        tombstones(ZONE_A, &db).await == 0 && tombstones(ZONE_B, &db).await == 0
    })
    .await;
    assert!(
        gone,
        "a={} b={}\n{}",
        tombstones(ZONE_A, &db).await,
        tombstones(ZONE_B, &db).await,
        p.log(1)
    );
    assert!(wait_converged(&p, "orders", 20).await, "zones agree after the purge");
    let metrics = get(&format!("{}/metrics", admin[1]));
    let dropped = sample(&metrics, "drc_retention_purged_rows_total", &["table=\"tombstones\""]).unwrap_or(0.0);
    assert!(dropped >= 3.0, "{metrics}");
    assert!(
        sample(&metrics, "drc_table_rows", &["table=\"tombstones\""]).is_some(),
        "{metrics}"
    );
}
