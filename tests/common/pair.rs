//! Two zones with one `drc run` daemon each, on a private database (and, for Kafka,
//! private topics), for the active-active tests.

use super::*;
use mysql_async::prelude::Queryable;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How the pair's daemons exchange transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Direct,
    Kafka,
}

/// A replicated table with the testenv contract (integer key, `updated_at`).
pub const ORDERS: &str = "CREATE TABLE orders (id BIGINT PRIMARY KEY AUTO_INCREMENT, customer VARCHAR(64) NOT NULL, n INT NOT NULL DEFAULT 0, \
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";

pub const PORTS: [u16; 2] = [ZONE_A, ZONE_B];
pub const ZONES: [&str; 2] = ["a", "b"];

pub struct Pair {
    pub transport: Transport,
    pub dir: tempfile::TempDir,
    pub db: String,
    pub cfg: [PathBuf; 2],
    pub daemons: [Option<Child>; 2],
}

fn daemon_config(dir: &Path, zone: usize, db: &str, server_id: u32, transport: Transport) -> PathBuf {
    let other = 1 - zone;
    let path = dir.join(format!("zone-{}.toml", ZONES[zone]));
    let (transport_line, peer) = match transport {
        Transport::Direct => (
            String::new(),
            format!(
                "[peers.mysql]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"drc\"\npassword = \"drc\"\n",
                PORTS[other]
            ),
        ),
        Transport::Kafka => ("transport = \"kafka\"\n".to_string(), String::new()),
    };
    let kafka = match transport {
        Transport::Kafka => {
            format!("[kafka]\nbrokers = \"127.0.0.1:9092\"\ntopic_prefix = \"{db}.\"\n")
        }
        Transport::Direct => String::new(),
    };
    std::fs::write(
        &path,
        format!(
            r#"zone = "{z}"
{transport_line}[mysql]
host = "127.0.0.1"
port = {port}
user = "drc"
password = "drc"
[reader]
server_id = {server_id}
state_dir = "state-{z}"
start = "now"
heartbeat_secs = 1
reconnect_max_backoff_secs = 1
max_fragment_rows = 50
[replication]
databases = ["{db}"]
version_column = "updated_at"
range_policy = "reject"
channel = "{db}"
[id_ranges.a]
increment = 2
offset = 1
[id_ranges.b]
increment = 2
offset = 2
{kafka}[[peers]]
zone = "{oz}"
{peer}"#,
            z = ZONES[zone],
            port = PORTS[zone],
            oz = ZONES[other],
        ),
    )
    .unwrap();
    path
}

impl Pair {
    /// A fresh database `db` in both zones, created with `ddl` (run in both zones).
    pub async fn new(name: &str, ddl: &[&str], server_id_base: u32) -> Pair {
        Self::with(name, ddl, server_id_base, Transport::Direct).await
    }

    pub async fn with(name: &str, ddl: &[&str], server_id_base: u32, transport: Transport) -> Pair {
        let db = format!("drc_aa_{name}_{}", std::process::id());
        for port in PORTS {
            exec(
                port,
                &[
                    &format!("DROP DATABASE IF EXISTS `{db}`"),
                    &format!("CREATE DATABASE `{db}`"),
                ],
            )
            .await;
            let mut stmts = vec![format!("USE `{db}`")];
            stmts.extend(ddl.iter().map(|s| s.to_string()));
            let refs: Vec<&str> = stmts.iter().map(|s| s.as_str()).collect();
            exec(port, &refs).await;
        }
        let dir = tempfile::tempdir().unwrap();
        let cfg = [
            daemon_config(dir.path(), 0, &db, server_id_base, transport),
            daemon_config(dir.path(), 1, &db, server_id_base + 1, transport),
        ];
        for c in &cfg {
            let st = Command::new(drc_bin())
                .arg("init")
                .arg("--config")
                .arg(c)
                .status()
                .unwrap();
            assert!(st.success());
        }
        Pair {
            transport,
            dir,
            db,
            cfg,
            daemons: [None, None],
        }
    }

    pub fn start(&mut self, zone: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}.log", ZONES[zone])))
            .unwrap();
        let child = Command::new(drc_bin())
            .arg("run")
            .arg("--config")
            .arg(&self.cfg[zone])
            .env("DRC_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.daemons[zone] = Some(child);
    }

    /// Starts both daemons and waits until both replicate.
    pub async fn start_both(&mut self) {
        self.start(0);
        self.start(1);
        for (z, name) in ZONES.iter().enumerate() {
            let ok = wait_until(Duration::from_secs(30), || {
                let log = self.log(z);
                let kafka = self.transport == Transport::Kafka;
                async move {
                    if kafka {
                        log.contains("applying") && log.contains("publishing")
                    } else {
                        log.contains("replicating")
                    }
                }
            })
            .await;
            assert!(ok, "daemon of zone {name} did not start:\n{}", self.log(z));
        }
    }

    pub fn kill9(&mut self, zone: usize) {
        if let Some(mut c) = self.daemons[zone].take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn log(&self, zone: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{}.log", ZONES[zone]))).unwrap_or_default()
    }

    pub async fn rows(&self, zone: usize, table: &str) -> Vec<String> {
        let mut c = conn(PORTS[zone]).await;
        let cols: Vec<String> = c
            .exec("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION", (&self.db, table))
            .await
            .unwrap();
        let hex: Vec<String> = cols
            .iter()
            .map(|c| format!("IFNULL(HEX(`{}`), 'NULL')", c.replace('`', "``")))
            .collect();
        c.query(format!(
            "SELECT CONCAT_WS('|', {}) FROM `{}`.`{}` ORDER BY 1",
            hex.join(", "),
            self.db,
            table.replace('`', "``")
        ))
        .await
        .unwrap()
    }

    pub async fn applied_txns(&self, zone: usize) -> u64 {
        let mut c = conn(PORTS[zone]).await;
        c.exec_first(
            "SELECT applied_txns FROM drc.applied WHERE origin_zone = ?",
            (format!("{}/{}", ZONES[1 - zone], self.db),),
        )
        .await
        .unwrap()
        .unwrap_or(0)
    }

    pub async fn conflicts(&self, zone: usize, kind: &str) -> u64 {
        let mut c = conn(PORTS[zone]).await;
        c.exec_first(
            "SELECT COUNT(*) FROM drc.conflicts WHERE db = ? AND kind = ?",
            (&self.db, kind),
        )
        .await
        .unwrap()
        .unwrap_or(0)
    }

    pub async fn converged(&self, table: &str) -> bool {
        self.rows(0, table).await == self.rows(1, table).await
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.kill9(0);
        self.kill9(1);
    }
}

pub async fn wait_converged(p: &Pair, table: &str, secs: u64) -> bool {
    wait_until(Duration::from_secs(secs), || async { p.converged(table).await }).await
}

/// A running random load on `orders` in both zones: `workers` connections per zone,
/// each doing `ops` operations (30% insert, 55% update, 15% delete of any key either
/// zone created, so keys overlap). `committed[zone]` counts the transactions that
/// changed a row (only those reach the binlog).
pub struct Load {
    pub handles: Vec<tokio::task::JoinHandle<()>>,
    pub committed: [std::sync::Arc<std::sync::atomic::AtomicU64>; 2],
}

impl Load {
    pub fn spawn(db: &str, workers: usize, ops: usize, seed: u64) -> Load {
        use rand::{Rng, SeedableRng};
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::{Arc, Mutex};
        let ids: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
        let committed = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
        let mut handles = Vec::new();
        for zone in 0..2 {
            for w in 0..workers {
                let (ids, committed, db) = (ids.clone(), committed[zone].clone(), db.to_string());
                handles.push(tokio::spawn(async move {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ ((zone * 16 + w) as u64));
                    let mut c = conn(PORTS[zone]).await;
                    for i in 0..ops {
                        let pick = |rng: &mut rand::rngs::StdRng| {
                            let v = ids.lock().unwrap();
                            v[rng.gen_range(0..v.len())]
                        };
                        let roll = rng.gen_range(0..100);
                        let affected = if roll < 30 || ids.lock().unwrap().len() < 20 {
                            c.exec_drop(
                                format!("INSERT INTO `{db}`.orders (customer) VALUES (?)"),
                                (format!("z{zone}w{w}i{i}"),),
                            )
                            .await
                            .unwrap();
                            ids.lock().unwrap().push(c.last_insert_id().unwrap());
                            1
                        } else if roll < 85 {
                            let id = pick(&mut rng);
                            c.exec_drop(
                                format!("UPDATE `{db}`.orders SET n = n + 1, customer = ? WHERE id = ?"),
                                (format!("z{zone}w{w}u{i}"), id),
                            )
                            .await
                            .unwrap();
                            c.affected_rows()
                        } else {
                            let id = pick(&mut rng);
                            c.exec_drop(format!("DELETE FROM `{db}`.orders WHERE id = ?"), (id,))
                                .await
                                .unwrap();
                            c.affected_rows()
                        };
                        if affected > 0 {
                            committed.fetch_add(1, Ordering::SeqCst);
                        }
                        if i % 25 == 0 {
                            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..30))).await;
                        }
                    }
                }));
            }
        }
        Load { handles, committed }
    }

    /// Waits for every worker; returns the committed transactions per zone.
    pub async fn finish(self) -> [u64; 2] {
        for h in self.handles {
            h.await.unwrap();
        }
        self.committed.map(|c| c.load(std::sync::atomic::Ordering::SeqCst))
    }
}
