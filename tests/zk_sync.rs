//! ZooKeeper sync through the daemon (`drc run` with `[zookeeper]`), against the
//! testenv's two real ZooKeeper 3.8 servers (`testenv/up.sh --zk`: zone a 21811,
//! zone b 21812): a one-way subtree of 2,000+ nodes built, changed and partly deleted
//! under load in its home zone is identical in the peer (data, ACLs, no extra nodes,
//! no ephemerals), also through daemon kills, a restart of the peer's server and an
//! expired session; two zones writing the same nodes of an `lww` root converge on the
//! later write with no loop; a `partitioned` root's sub-paths cross both ways.
//!
//! Run: `testenv/up.sh --zk && cargo nextest run --test zk_sync`.

mod common;

use common::pair::*;
use common::{get, sample, wait_until};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::time::Duration;
use zookeeper_client as zk;

const ZK: [&str; 2] = ["127.0.0.1:21811", "127.0.0.1:21812"];
const TABLE: &str = "CREATE TABLE t (id BIGINT PRIMARY KEY, updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";

async fn client(zone: usize) -> zk::Client {
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(ZK[zone])
        .await
        .unwrap_or_else(|e| panic!("ZooKeeper of zone {zone} ({}): {e} (testenv/up.sh --zk)", ZK[zone]))
}

fn open() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

/// Creates `path` and its missing ancestors.
async fn ensure(c: &zk::Client, path: &str) {
    let mut at = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        at.push('/');
        at.push_str(part);
        match c.create(&at, b"", &open()).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(e) => panic!("create {at}: {e}"),
        }
    }
}

/// Deletes `path` and everything below it.
async fn delete_tree(c: &zk::Client, path: &str) {
    if let Ok(kids) = c.list_children(path).await {
        for k in kids {
            Box::pin(delete_tree(c, &format!("{path}/{k}"))).await;
        }
        let _ = c.delete(path, None).await;
    }
}

/// Removes `root` (and drc's metadata of it) from both zones.
async fn fresh(root: &str) {
    for z in 0..2 {
        let c = client(z).await;
        delete_tree(&c, root).await;
        delete_tree(&c, &format!("/drc/zk/meta{root}")).await;
    }
}

/// The persistent nodes under `root` in zone `zone`: data and ACL; and how many
/// ephemeral nodes there are.
async fn tree(zone: usize, root: &str) -> (BTreeMap<String, String>, usize) {
    let c = client(zone).await;
    let mut out = BTreeMap::new();
    let mut ephemerals = 0;
    let mut queue = std::collections::VecDeque::from([root.to_string()]);
    while let Some(p) = queue.pop_front() {
        let Ok((data, stat)) = c.get_data(&p).await else {
            continue;
        };
        if stat.ephemeral_owner != 0 {
            ephemerals += 1;
            continue;
        }
        let Ok((acl, _)) = c.get_acl(&p).await else { continue };
        out.insert(p.clone(), format!("{} {acl:?}", String::from_utf8_lossy(&data)));
        if let Ok(kids) = c.list_children(&p).await {
            queue.extend(kids.into_iter().map(|k| format!("{p}/{k}")));
        }
    }
    (out, ephemerals)
}

/// Waits until `root` holds the same persistent nodes in both zones; panics with the
/// differences after `secs`.
async fn assert_same(p: &Pair, root: &str, secs: u64) -> BTreeMap<String, String> {
    assert_same_but(p, root, secs, &[]).await
}

/// [`assert_same`], `only_in_a` being in zone a only.
async fn assert_same_but(p: &Pair, root: &str, secs: u64, only_in_a: &[String]) -> BTreeMap<String, String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let (mut a, _) = tree(0, root).await;
        let (b, _) = tree(1, root).await;
        for k in only_in_a {
            if a.remove(k).is_none() {
                panic!("{k} is not in zone a");
            }
        }
        if a == b && !a.is_empty() {
            return a;
        }
        if std::time::Instant::now() > deadline {
            let differ: Vec<String> = a
                .keys()
                .chain(b.keys())
                .filter(|k| a.get(*k) != b.get(*k))
                .take(10)
                .map(|k| format!("{k}: a {:?} / b {:?}", a.get(k), b.get(k)))
                .collect();
            panic!(
                "{} nodes of {root} differ ({} in a, {} in b), e.g.:\n{}\n{}",
                differ.len(),
                a.len(),
                b.len(),
                differ.join("\n"),
                p.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn pair(t: Transport, name: &str, server_id: u32, admin_port: u16, roots: &str) -> (Pair, Vec<String>) {
    let mut p = Pair::with(name, &[TABLE], server_id, t).await;
    p.with_zk(roots);
    let admin = p.with_admin(admin_port, "t");
    p.start_both().await;
    for z in 0..2 {
        assert!(
            wait_until(Duration::from_secs(30), || {
                let log = p.log(z);
                async move { log.contains("ZooKeeper sync starting") || log.contains("ZooKeeper sync over Kafka starting") }
            })
            .await,
            "zone {z}'s ZooKeeper direction did not start:\n{}",
            p.log(z)
        );
    }
    (p, admin)
}

/// Writes `path` = `data` in zone `c`, creating it (and its parents) when missing;
/// gives up quietly on a connection problem (the load goes on).
async fn put(c: &zk::Client, path: &str, data: &[u8]) {
    if let Err(zk::Error::NoNode) = c.set_data(path, data, None).await {
        if let Some(i) = path.rfind('/') {
            if i > 0 {
                Box::pin(put(c, &path[..i], b"")).await;
            }
        }
        let _ = c.create(path, data, &open()).await;
    }
}

/// The load in a one-way root's home: `n` operations on a two-level tree under
/// `root` (create or change a leaf, delete a leaf, drop a whole directory).
async fn load(root: String, n: usize, seed: u64) {
    let mut c = client(0).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut i = 0;
    while i < n {
        let dir = format!("{root}/d{}", rng.gen_range(0..20));
        let leaf = format!("{dir}/l{}", rng.gen_range(0..10));
        let r = match rng.gen_range(0..10) {
            0..=6 => {
                put(&c, &leaf, format!("v{i}").as_bytes()).await;
                Ok(())
            }
            7 | 8 => c.delete(&leaf, None).await,
            _ => {
                delete_tree(&c, &dir).await;
                Ok(())
            }
        };
        if matches!(r, Err(zk::Error::SessionExpired | zk::Error::ClientClosed)) {
            // the server was paused past the session: a new session, and go on
            c = client(0).await;
        }
        i += 1;
    }
}

/// A one-way subtree of 2,200 nodes built in its home zone a — with an ACL that is
/// not open, ephemeral nodes, 1,500 changes and deletes meanwhile — and written in
/// zone b too (a node of its own, a changed node): identical in b at the end (zone
/// b's writes overwritten and counted), no ephemeral copied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_way_subtree_of_two_thousand_nodes_under_load_is_identical_in_the_peer() {
    one_way_subtree(Transport::Direct, "/drc-it/oneway", "zk_oneway", 6221, 9683).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_kafka_a_one_way_subtree_of_two_thousand_nodes_under_load_is_identical_in_the_peer() {
    one_way_subtree(Transport::Kafka, "/drc-it/oneway-k", "zk_oneway_k", 6261, 9691).await
}

async fn one_way_subtree(t: Transport, root: &str, name: &str, server_id: u32, admin_port: u16) {
    fresh(root).await;
    let (p, admin) = pair(
        t,
        name,
        server_id,
        admin_port,
        &format!("[[zookeeper.roots]]\npath = \"{root}\"\nmode = \"one_way\"\nhome = \"a\"\n"),
    )
    .await;
    let a = client(0).await;
    ensure(&a, root).await;
    // ephemeral registrations (never copied)
    let eph = client(0).await;
    ensure(&a, &format!("{root}/services")).await;
    for i in 0..10 {
        eph.create(
            &format!("{root}/services/instance-{i}"),
            b"10.0.0.1:80",
            &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all()),
        )
        .await
        .unwrap();
    }
    // a node whose ACL is not open: copied as it is
    let acl = [zk::Acl::new(
        zk::Permission::READ | zk::Permission::WRITE | zk::Permission::CREATE | zk::Permission::DELETE,
        zk::AuthId::anyone(),
    )];
    a.create(
        &format!("{root}/guarded"),
        b"g",
        &zk::CreateMode::Persistent.with_acls(zk::Acls::new(&acl)),
    )
    .await
    .unwrap();
    let changes = tokio::spawn(load(root.to_string(), 1500, 1));
    for d in 0..20 {
        for s in 0..10 {
            for l in 0..10 {
                put(&a, &format!("{root}/t{d}/s{s}/l{l}"), format!("{d}.{s}.{l}").as_bytes()).await;
            }
        }
    }
    changes.await.unwrap();
    // zone b writes into zone a's subtree: overwritten / removed
    let b = client(1).await;
    assert!(
        wait_until(Duration::from_secs(60), || async {
            b.check_stat(&format!("{root}/t19/s9/l9"))
                .await
                .ok()
                .flatten()
                .is_some()
        })
        .await,
        "the subtree did not reach zone b:\n{}",
        p.logs()
    );
    b.create(&format!("{root}/intruder"), b"b", &open()).await.unwrap();
    b.set_data(&format!("{root}/t0/s0/l0"), b"written in b", None)
        .await
        .unwrap();
    let same = assert_same(&p, root, 90).await;
    assert!(same.len() > 2_000, "{} nodes", same.len());
    assert!(!same.contains_key(&format!("{root}/intruder")));
    assert_eq!(tree(1, root).await.1, 0, "ephemeral nodes were copied");
    assert_eq!(tree(0, root).await.1, 10);
    // READ | WRITE | CREATE | DELETE, no ADMIN: as created in zone a
    assert!(
        same[&format!("{root}/guarded")].contains("Permission(15)"),
        "{:?}",
        same[&format!("{root}/guarded")]
    );
    let metrics = get(&format!("{}/metrics", admin[1]));
    assert!(
        sample(&metrics, "drc_zk_conflicts_total", &["from_zone=\"a\""]).unwrap_or(0.0) >= 2.0,
        "{metrics}"
    );
    assert!(sample(&metrics, "drc_zk_nodes_synced_total", &["from_zone=\"a\""]).unwrap_or(0.0) > 2000.0);
    // the direction in /status and `drc status`
    let status: serde_json::Value = serde_json::from_str(&get(&format!("{}/status", admin[1]))).unwrap();
    let d = &status["zookeeper"][0];
    assert_eq!(d["from_zone"], "a", "{status}");
    assert!(d["nodes_written"].as_u64().unwrap() > 2000, "{status}");
    assert!(d["reconciles"].as_u64().unwrap() >= 1, "{status}");
    let text = std::process::Command::new(common::drc_bin())
        .args(["status", "--config"])
        .arg(&p.cfg[1])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("zookeeper a -> b: applying"), "drc status:\n{text}");
    // `drc check` names what it checked in both ensembles
    let check = std::process::Command::new(common::drc_bin())
        .args(["check", "--config"])
        .arg(&p.cfg[1])
        .output()
        .unwrap();
    let check = String::from_utf8_lossy(&check.stdout).into_owned();
    for finding in ["zk_connect", "zk_version", "zk_watch", "zk_root", "zk_rights"] {
        assert!(
            check.lines().any(|l| l.starts_with("ok") && l.contains(finding)),
            "drc check: no passing {finding}:\n{check}"
        );
    }
    drop(eph);
    fresh(root).await;
}

fn zk_ctl(zone: &str, what: &str) {
    let st = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(". testenv/lib.sh; zk_ctl {zone} {what}"))
        .current_dir(common::repo())
        .env("DRC_TESTENV_DIR", common::run_dir())
        .status()
        .unwrap();
    assert!(st.success(), "zk_ctl {zone} {what}");
}

fn zk_pid(zone: &str) -> String {
    std::fs::read_to_string(common::run_dir().join(format!("zk-{zone}/zk.pid")))
        .unwrap()
        .trim()
        .to_string()
}

/// Under load in zone a: the daemons killed 10 times, zone b's server restarted, and
/// zone a's server paused longer than the sessions last (they expire): still
/// identical at the end, nothing missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_a_server_restart_and_an_expired_session_miss_nothing() {
    kills(Transport::Direct, "/drc-it/kills", "zk_kills", 6231, 9685).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_kafka_kills_a_server_restart_and_an_expired_session_miss_nothing() {
    kills(Transport::Kafka, "/drc-it/kills-k", "zk_kills_k", 6271, 9693).await
}

async fn kills(t: Transport, root: &str, name: &str, server_id: u32, admin_port: u16) {
    fresh(root).await;
    let (mut p, admin) = pair(
        t,
        name,
        server_id,
        admin_port,
        &format!("[[zookeeper.roots]]\npath = \"{root}\"\nmode = \"one_way\"\nhome = \"a\"\n"),
    )
    .await;
    ensure(&client(0).await, root).await;
    let l1 = tokio::spawn(load(root.to_string(), 2000, 2));
    p.kill_randomly(10, 21).await;
    l1.await.unwrap();
    // zone b's server restarts
    zk_ctl("b", "stop");
    zk_ctl("b", "start");
    let l2 = tokio::spawn(load(root.to_string(), 1000, 3));
    // (the direction's new session with zone a is up again)
    tokio::time::sleep(Duration::from_secs(3)).await;
    // zone a's server stops answering for longer than the sessions (4 s) last
    let pid = zk_pid("a");
    std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap();
    l2.await.unwrap();
    assert_same(&p, root, 90).await;
    // the capture of zone a's roots: zone b's direct direction, or zone a's publisher
    let capture = if t == Transport::Kafka { 0 } else { 1 };
    let metrics = get(&format!("{}/metrics", admin[capture]));
    assert!(
        sample(&metrics, "drc_zk_reconciles_total", &["from_zone=\"a\""]).unwrap_or(0.0) >= 1.0,
        "{metrics}"
    );
    // the pause ended the capture's session: expired, or a request of it (a watch
    // re-added by the interval reconcile) timed out first; either way a new session
    // and a full read followed
    let log = p.log(capture);
    assert!(
        log.contains("session expired")
            || log
                .lines()
                .any(|l| l.contains("interrupted; resuming") && l.contains("127.0.0.1:21811")),
        "the pause of zone a's server did not end the capture's session:\n{log}"
    );
    for z in 0..2 {
        assert!(p.running(z), "{}", p.logs());
    }
    fresh(root).await;
}

/// Both zones write the same 40 nodes of an `lww` root at once: both end with the
/// same data (the later write), and once the writes stop no node changes any more
/// (no loop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lww_writes_to_the_same_nodes_in_both_zones_converge_without_loops() {
    lww(Transport::Direct, "/drc-it/lww", "zk_lww", 6241, 9687).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_kafka_lww_writes_to_the_same_nodes_in_both_zones_converge_without_loops() {
    lww(Transport::Kafka, "/drc-it/lww-k", "zk_lww_k", 6281, 9695).await
}

async fn lww(t: Transport, root: &str, name: &str, server_id: u32, admin_port: u16) {
    fresh(root).await;
    let (p, admin) = pair(
        t,
        name,
        server_id,
        admin_port,
        &format!("[[zookeeper.roots]]\npath = \"{root}\"\nmode = \"lww\"\n"),
    )
    .await;
    let write = |zone: usize| {
        let root = root.to_string();
        async move {
            let c = client(zone).await;
            let mut rng = rand::rngs::StdRng::seed_from_u64(zone as u64 + 10);
            for i in 0..400 {
                let n = rng.gen_range(0..40);
                put(&c, &format!("{root}/n{n}"), format!("zone {zone} write {i}").as_bytes()).await;
                if i % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    };
    tokio::join!(write(0), write(1));
    // a sequential node in a two-way root is not shipped (two zones' counters collide)
    let seq = client(0)
        .await
        .create(
            &format!("{root}/job-"),
            b"queued in a",
            &zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all()),
        )
        .await
        .unwrap()
        .1;
    assert_same_but(&p, root, 60, &[format!("{root}/job-{seq}")]).await;
    // (over Kafka, writes still in flight can arrive after a moment of equality:
    // the no-loop check starts once the zones agree after that)
    tokio::time::sleep(Duration::from_secs(2)).await;
    let same = assert_same_but(&p, root, 60, &[format!("{root}/job-{seq}")]).await;
    assert!(same.len() >= 40, "{}", same.len());
    // no loop: the versions stand still
    let versions = |zone| async move {
        let c = client(zone).await;
        let mut v = Vec::new();
        for n in 0..40 {
            v.push(c.check_stat(&format!("{root}/n{n}")).await.unwrap().map(|s| s.version));
        }
        v
    };
    let (a1, b1) = (versions(0).await, versions(1).await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(versions(0).await, a1, "zone a's nodes kept changing");
    assert_eq!(versions(1).await, b1, "zone b's nodes kept changing");
    let m = get(&format!("{}/metrics", admin[0]));
    assert!(
        sample(&m, "drc_zk_loops_suppressed_total", &[]).unwrap_or(0.0) > 0.0,
        "{m}"
    );
    fresh(root).await;
}

/// A `partitioned` root: each zone registers nodes under its own sub-path at once;
/// both zones see all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_roots_cross_both_ways() {
    partitioned(Transport::Direct, "/drc-it/part", "zk_part", 6251, 9689).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_kafka_partitioned_roots_cross_both_ways() {
    partitioned(Transport::Kafka, "/drc-it/part-k", "zk_part_k", 6291, 9697).await
}

async fn partitioned(t: Transport, root: &str, name: &str, server_id: u32, admin_port: u16) {
    fresh(root).await;
    let (p, _) = pair(
        t,
        name,
        server_id,
        admin_port,
        &format!("[[zookeeper.roots]]\npath = \"{root}\"\nmode = \"partitioned\"\n"),
    )
    .await;
    let register = |zone: usize, name: &'static str| {
        let root = root.to_string();
        async move {
            let c = client(zone).await;
            for i in 0..100 {
                put(
                    &c,
                    &format!("{root}/{name}/svc{}/i{i}", i % 5),
                    format!("{name}:{i}").as_bytes(),
                )
                .await;
            }
        }
    };
    tokio::join!(register(0, "a"), register(1, "b"));
    let same = assert_same(&p, root, 60).await;
    for name in ["a", "b"] {
        assert_eq!(
            same.keys()
                .filter(|k| k.starts_with(&format!("{root}/{name}/svc")))
                .count(),
            105,
            "{name}'s registrations (100 and 5 parents)"
        );
    }
    fresh(root).await;
}

/// The TLS client (`secureClientPort` 22811/22812, the test CA) the daemons use.
async fn tls_client(zone: usize) -> zk::Client {
    let ca = std::fs::read_to_string(common::run_dir().join("tls/ca.pem")).unwrap();
    let tls = zk::TlsOptions::new().with_pem_ca(&ca).unwrap();
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .with_tls(tls)
        .secure_connect(["127.0.0.1:22811", "127.0.0.1:22812"][zone])
        .await
        .unwrap_or_else(|e| panic!("ZooKeeper of zone {zone} over TLS: {e} (testenv/up.sh --zk)"))
}

/// Both zones' daemons reach both ensembles only over TLS (verify-full against the
/// test CA): a partitioned root's registrations cross both ways; `drc check` says
/// the session is over TLS, and names `[zookeeper.tls]` when the CA is not the one
/// that issued the servers' certificates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_partitioned_roots_cross_both_ways_and_check_names_a_wrong_ca() {
    drc::tls::install_default_provider();
    let root = "/drc-it/part-tls";
    fresh(root).await;
    let mut p = Pair::with("zk_tls", &[TABLE], 6301, Transport::Direct).await;
    let ca = common::run_dir().join("tls/ca.pem");
    p.with_zk_tls(
        &ca,
        &format!("[[zookeeper.roots]]\npath = \"{root}\"\nmode = \"partitioned\"\n"),
    );
    let cfg = p.cfg[0].clone();
    let (_, out) = common::drc(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(
        out.contains("ok      zk_tls") && out.contains("ok      zk_connect") && !out.contains("PROBLEM zk_"),
        "{out}"
    );
    p.start_both().await;
    let register = |zone: usize, name: &'static str| async move {
        let c = tls_client(zone).await;
        for i in 0..50 {
            put(&c, &format!("{root}/{name}/svc{}/i{i}", i % 5), name.as_bytes()).await;
        }
    };
    tokio::join!(register(0, "a"), register(1, "b"));
    let same = assert_same(&p, root, 60).await;
    assert_eq!(
        same.len(),
        2 * 55 + 2 + 1,
        "both zones' registrations, their parents and the root"
    );
    for z in 0..2 {
        assert!(
            p.log(z).contains("127.0.0.1:2281"),
            "zone {z} used the TLS ports:\n{}",
            p.log(z)
        );
    }
    p.kill9(0);
    p.kill9(1);
    // a CA that did not issue the servers' certificates
    let other = common::run_dir().join("tls/other-ca.pem");
    let (good, wrong) = (
        format!("[zookeeper.tls]\nca = \"{}\"", ca.display()),
        format!("[zookeeper.tls]\nca = \"{}\"", other.display()),
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains(&good), "{text}");
    let text = text.replace(&good, &wrong);
    std::fs::write(&cfg, text).unwrap();
    let (code, out) = common::drc(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 3, "a problem: {out}");
    assert!(
        out.contains("PROBLEM zk_connect") && out.contains("[zookeeper.tls] ca"),
        "{out}"
    );
    fresh(root).await;
}
