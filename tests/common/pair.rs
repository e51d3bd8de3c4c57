//! Two or three zones with one `drc run` daemon each, on a private database (and, for
//! Kafka, private topics), for the active-active tests. Dropping a `Pair` kills its
//! daemons and drops its databases in every zone.
//!
//! An *audited* pair adds the proof of exactly-once that does not rest on drc's own
//! bookkeeping: every load transaction also inserts a unique token into `ledger`, and
//! a trigger in every zone counts each write of a token, by MySQL user, into the
//! non-replicated `<db>_audit.hits`. In every zone each committed token must then
//! have exactly one write: by the load in its origin zone, by drc's applier elsewhere.

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

/// A version column in whole seconds (DATETIME without fractions).
pub const COARSE: &str = "CREATE TABLE coarse (id BIGINT PRIMARY KEY, note VARCHAR(64) NOT NULL, \
    updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)";

/// Insert-only, one unique token per load transaction (see the module doc).
pub const LEDGER: &str =
    "CREATE TABLE ledger (id BIGINT PRIMARY KEY AUTO_INCREMENT, token VARCHAR(64) NOT NULL UNIQUE, \
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";

pub const PORTS: [u16; 3] = [ZONE_A, ZONE_B, ZONE_C];
pub const ZONES: [&str; 3] = ["a", "b", "c"];

pub struct Pair {
    pub transport: Transport,
    pub dir: tempfile::TempDir,
    pub db: String,
    /// Zones 0..n (a, b[, c]).
    pub n: usize,
    pub audited: bool,
    pub cfg: Vec<PathBuf>,
    pub daemons: Vec<Option<Child>>,
}

fn daemon_config(dir: &Path, zone: usize, n: usize, db: &str, server_id: u32, transport: Transport) -> PathBuf {
    let path = dir.join(format!("zone-{}.toml", ZONES[zone]));
    let transport_line = match transport {
        Transport::Direct => "",
        Transport::Kafka => "transport = \"kafka\"\n",
    };
    let kafka = match transport {
        Transport::Kafka => format!("[kafka]\nbrokers = \"127.0.0.1:9092\"\ntopic_prefix = \"{db}.\"\n"),
        Transport::Direct => String::new(),
    };
    // Each zone owns the keys = its offset modulo n (the load sets the session's
    // auto_increment_increment/offset to match when n is not the servers' 2).
    let ranges: String = (0..n)
        .map(|z| format!("[id_ranges.{}]\nincrement = {n}\noffset = {}\n", ZONES[z], z + 1))
        .collect();
    let peers: String = (0..n)
        .filter(|&z| z != zone)
        .map(|z| peer_section(ZONES[z], (transport == Transport::Direct).then_some(PORTS[z])))
        .collect();
    std::fs::write(
        &path,
        config_head(ZONES[zone], transport_line, PORTS[zone], server_id, "now")
            + &format!(
                r#"heartbeat_secs = 1
reconnect_max_backoff_secs = 1
max_fragment_rows = 50
[replication]
databases = ["{db}"]
version_column = "updated_at"
range_policy = "reject"
channel = "{db}"
missing_table_wait_secs = 8
{ranges}{kafka}{peers}"#
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
        Self::setup(name, ddl, server_id_base, transport, 2, false).await
    }

    /// `n` zones with `orders` and the audited `ledger` (see the module doc).
    pub async fn audited(name: &str, server_id_base: u32, transport: Transport, n: usize) -> Pair {
        Self::setup(name, &[ORDERS, LEDGER], server_id_base, transport, n, true).await
    }

    async fn setup(
        name: &str,
        ddl: &[&str],
        server_id_base: u32,
        transport: Transport,
        n: usize,
        audited: bool,
    ) -> Pair {
        // (the process id alone repeats after a reboot, and drc's own state in the
        // servers' `drc` schema and the broker's topics outlive a run: a second run
        // with the same name found the first one's position; the time makes it unique)
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let db = format!("drc_aa_{name}_{}_{:x}", std::process::id(), t & 0xff_ffff);
        for &port in &PORTS[..n] {
            let mut stmts = vec![
                format!("DROP DATABASE IF EXISTS `{db}`"),
                format!("DROP DATABASE IF EXISTS `{db}_audit`"),
                format!("CREATE DATABASE `{db}`"),
                format!("USE `{db}`"),
            ];
            stmts.extend(ddl.iter().map(|s| s.to_string()));
            if audited {
                stmts.push(format!("CREATE DATABASE `{db}_audit`"));
                stmts.push(format!(
                    "CREATE TABLE `{db}_audit`.hits (token VARCHAR(64) PRIMARY KEY, writer VARCHAR(32) NOT NULL, hits INT NOT NULL)"
                ));
                for (event, name) in [("INSERT", "i"), ("UPDATE", "u")] {
                    stmts.push(format!(
                        "CREATE TRIGGER `{db}`.ledger_audit_{name} AFTER {event} ON `{db}`.ledger FOR EACH ROW \
                         INSERT INTO `{db}_audit`.hits (token, writer, hits) VALUES (NEW.token, SUBSTRING_INDEX(USER(), '@', 1), 1) \
                         ON DUPLICATE KEY UPDATE hits = hits + 1"
                    ));
                }
            }
            let refs: Vec<&str> = stmts.iter().map(|s| s.as_str()).collect();
            exec(port, &refs).await;
        }
        let dir = tempfile::tempdir().unwrap();
        let cfg: Vec<PathBuf> = (0..n)
            .map(|z| daemon_config(dir.path(), z, n, &db, server_id_base + z as u32, transport))
            .collect();
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
            n,
            audited,
            cfg,
            daemons: (0..n).map(|_| None).collect(),
        }
    }

    /// Gives every zone's daemon an admin endpoint on 127.0.0.1:`base_port + zone`
    /// with bearer token `token`; returns the endpoints' base URLs.
    pub fn with_admin(&mut self, base_port: u16, token: &str) -> Vec<String> {
        (0..self.n)
            .map(|z| {
                let port = base_port + z as u16;
                let mut text = std::fs::read_to_string(&self.cfg[z]).unwrap();
                text += &format!("\n[admin]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{token}\"\n");
                std::fs::write(&self.cfg[z], text).unwrap();
                format!("http://127.0.0.1:{port}")
            })
            .collect()
    }

    /// Adds Redis sync to every zone's config: the testenv's redis-servers (zone a
    /// 6381, zone b 6382), databases `dbs` and key patterns `keys` (TOML arrays),
    /// and `tables` after `[redis]` (e.g. `[redis.homes]`).
    pub fn with_redis(&self, dbs: &str, keys: &str, tables: &str) {
        self.with_redis_on([6381, 6382], "", false, dbs, keys, tables)
    }

    /// [`Self::with_redis`] on the servers' `ports` (zone a, zone b), with `login`
    /// (e.g. `user = …`) in every Redis section and, with `tls`, `[*.redis.tls]`
    /// trusting the testenv's CA (verify-full).
    pub fn with_redis_on(&self, ports: [u16; 2], login: &str, tls: bool, dbs: &str, keys: &str, tables: &str) {
        let tls_for = |section: &str| if tls { super::tls_table(section) } else { String::new() };
        for (z, cfg) in self.cfg.iter().enumerate() {
            let text = std::fs::read_to_string(cfg).unwrap();
            let redis = format!(
                "[redis]\nhost = \"127.0.0.1\"\nport = {}\n{login}databases = {dbs}\nkeys = {keys}\nheartbeat_ms = 200\n{tables}{}",
                ports[z],
                tls_for("redis")
            );
            let at = text.find("[[peers]]").expect("a generated config has [[peers]]");
            let mut text = format!("{}{redis}{}", &text[..at], &text[at..]);
            text.push_str(&format!(
                "[peers.redis]\nhost = \"127.0.0.1\"\nport = {}\n{login}{}",
                ports[1 - z],
                tls_for("peers.redis")
            ));
            std::fs::write(cfg, text).unwrap();
        }
    }

    /// Adds ZooKeeper sync to every zone's config: the testenv's servers (zone a
    /// 21811, zone b 21812) and `roots` (TOML `[[zookeeper.roots]]` tables).
    pub fn with_zk(&self, roots: &str) {
        self.with_zk_on([21811, 21812], None, roots)
    }

    /// [`Self::with_zk`] over TLS: the servers' `secureClientPort`s (22811, 22812) and
    /// `[zookeeper.tls]` / `[peers.zookeeper.tls]` trusting the CA file `ca`.
    pub fn with_zk_tls(&self, ca: &Path, roots: &str) {
        self.with_zk_on([22811, 22812], Some(ca), roots)
    }

    fn with_zk_on(&self, ports: [u16; 2], ca: Option<&Path>, roots: &str) {
        let tls = |section: &str| match ca {
            Some(ca) => format!("[{section}.tls]\nca = \"{}\"\n", ca.display()),
            None => String::new(),
        };
        for (z, cfg) in self.cfg.iter().enumerate() {
            let text = std::fs::read_to_string(cfg).unwrap();
            let zk = format!(
                "[zookeeper]\nconnect = \"127.0.0.1:{}\"\nsession_timeout_ms = 4000\nreconcile_interval_secs = 5\n{roots}\n{}",
                ports[z],
                tls("zookeeper")
            );
            let at = text.find("[[peers]]").expect("a generated config has [[peers]]");
            let mut text = format!("{}{zk}{}", &text[..at], &text[at..]);
            text.push_str(&format!(
                "[peers.zookeeper]\nconnect = \"127.0.0.1:{}\"\n{}",
                ports[1 - z],
                tls("peers.zookeeper")
            ));
            std::fs::write(cfg, text).unwrap();
        }
    }

    /// Sets every zone reader's `max_fragment_rows` (50 by default here, so that
    /// tests meet fragments; a run of new rows needs longer ones to be loaded).
    pub fn fragment_rows(&self, n: usize) {
        for cfg in &self.cfg {
            let text = std::fs::read_to_string(cfg).unwrap();
            assert!(text.contains("max_fragment_rows = 50\n"));
            std::fs::write(
                cfg,
                text.replacen("max_fragment_rows = 50\n", &format!("max_fragment_rows = {n}\n"), 1),
            )
            .unwrap();
        }
    }

    /// Points every zone's `[kafka]` at `brokers`, with `tables` (`[kafka.tls]`,
    /// `[kafka.sasl]`) after its keys.
    pub fn with_kafka_at(&self, brokers: &str, tables: &str) {
        for cfg in &self.cfg {
            let text = std::fs::read_to_string(cfg).unwrap();
            let prefix = format!("topic_prefix = \"{}.\"\n", self.db);
            assert!(
                text.contains(&prefix) && text.contains("brokers = \"127.0.0.1:9092\""),
                "a Kafka pair's config"
            );
            let text = text
                .replacen("brokers = \"127.0.0.1:9092\"", &format!("brokers = \"{brokers}\""), 1)
                .replacen(&prefix, &format!("{prefix}{tables}\n"), 1);
            std::fs::write(cfg, text).unwrap();
        }
    }

    /// Adds `keys` under `[replication]` and `tables` (TOML tables such as
    /// `[replication.ddl_home]`, put before `[id_ranges.*]`) to every zone's config.
    pub fn configure(&self, keys: &str, tables: &str) {
        for cfg in &self.cfg {
            let text = std::fs::read_to_string(cfg).unwrap();
            let text = text.replacen("[replication]\n", &format!("[replication]\n{keys}"), 1);
            let at = text.find("[id_ranges.").expect("a generated config has [id_ranges]");
            std::fs::write(cfg, format!("{}{tables}{}", &text[..at], &text[at..])).unwrap();
        }
    }

    /// Inserts `n` rows into zone a's `orders`, with zone a's keys 1, 3, 5, … (its
    /// ID range), customer `row <i>`, in one statement.
    pub async fn insert_rows_in_a(&self, n: usize) {
        let values: Vec<String> = (0..n).map(|i| format!("({}, 'row {i}')", 2 * i + 1)).collect();
        exec(
            ZONE_A,
            &[&format!(
                "INSERT INTO `{}`.orders (id, customer) VALUES {}",
                self.db,
                values.join(", ")
            )],
        )
        .await;
    }

    /// Whether the daemon of `zone` still runs.
    pub fn running(&mut self, zone: usize) -> bool {
        self.daemons[zone]
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    pub fn start(&mut self, zone: usize) {
        self.start_with_env(zone, &[]);
    }

    /// Starts the daemon of `zone` with extra environment variables.
    pub fn start_with_env(&mut self, zone: usize, env: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}.log", ZONES[zone])))
            .unwrap();
        let child = Command::new(drc_bin())
            .arg("run")
            .arg("--config")
            .arg(&self.cfg[zone])
            .env(
                "DRC_LOG",
                std::env::var("DRC_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.daemons[zone] = Some(child);
    }

    /// Starts every zone's daemon and waits until all replicate.
    pub async fn start_both(&mut self) {
        self.start_both_with_env(&[]).await;
    }

    /// [`Pair::start_both`] with extra environment variables for every daemon.
    pub async fn start_both_with_env(&mut self, env: &[(&str, &str)]) {
        for z in 0..self.n {
            self.start_with_env(z, env);
        }
        for (z, name) in ZONES[..self.n].iter().enumerate() {
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

    /// With both daemons killed: zone a updates `orders` row `row`, then (5 ms
    /// later) zone b does (the later write); zone b updates row `gone`, then (5 ms
    /// later) zone a deletes it (the later delete). Restart the daemons to resolve.
    pub async fn conflicting_writes_while_down(&mut self, row: u64, gone: u64) {
        let db = self.db.clone();
        self.kill9(0);
        self.kill9(1);
        exec(
            ZONE_A,
            &[&format!(
                "UPDATE `{db}`.orders SET customer = 'a wrote first' WHERE id = {row}"
            )],
        )
        .await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        exec(
            ZONE_B,
            &[&format!(
                "UPDATE `{db}`.orders SET customer = 'b wrote last' WHERE id = {row}"
            )],
        )
        .await;
        exec(ZONE_B, &[&format!("UPDATE `{db}`.orders SET n = 7 WHERE id = {gone}")]).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        exec(ZONE_A, &[&format!("DELETE FROM `{db}`.orders WHERE id = {gone}")]).await;
    }

    pub fn kill9(&mut self, zone: usize) {
        if let Some(mut c) = self.daemons[zone].take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// `kill -9`s and restarts the daemon of a random zone `times` times, 100–400 ms
    /// apart, drawn from `seed` (printed by the tests, so a failure can be replayed).
    pub async fn kill_randomly(&mut self, times: usize, seed: u64) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for _ in 0..times {
            tokio::time::sleep(Duration::from_millis(rng.gen_range(100..400))).await;
            let z = rng.gen_range(0..self.n);
            self.kill9(z);
            self.start(z);
        }
    }

    pub fn log(&self, zone: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{}.log", ZONES[zone]))).unwrap_or_default()
    }

    /// Column names of `table` in table order, as the server on `c` has them.
    async fn columns(&self, c: &mut mysql_async::Conn, table: &str) -> Vec<String> {
        c.exec("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION", (&self.db, table))
            .await
            .unwrap()
    }

    pub async fn rows(&self, zone: usize, table: &str) -> Vec<String> {
        let mut c = conn(PORTS[zone]).await;
        let cols = self.columns(&mut c, table).await;
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

    /// Transactions of the other zone applied in `zone` (two zones).
    pub async fn applied_txns(&self, zone: usize) -> u64 {
        self.applied_from(zone, 1 - zone).await
    }

    /// Transactions of zone `origin` applied in `zone`, as counted in `drc.applied`.
    pub async fn applied_from(&self, zone: usize, origin: usize) -> u64 {
        let mut c = conn(PORTS[zone]).await;
        c.exec_first(
            "SELECT applied_txns FROM drc.applied WHERE origin_zone = ?",
            (format!("{}/{}", ZONES[origin], self.db),),
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
        let first = self.rows(0, table).await;
        for z in 1..self.n {
            if self.rows(z, table).await != first {
                return false;
            }
        }
        true
    }

    /// Waits up to `secs` for `table` (integer key `id` first) to be identical in
    /// every zone. If it is not, panics naming up to 10 differing keys with, per zone,
    /// the row, its tombstone and every conflict-log entry for it, then the daemons'
    /// logs: enough to find the decision that differed from one failed run.
    pub async fn assert_converged(&self, table: &str, secs: u64, seed: u64) {
        if wait_converged(self, table, secs).await {
            return;
        }
        let mut all: Vec<Vec<String>> = Vec::new();
        for z in 0..self.n {
            all.push(self.rows(z, table).await);
        }
        let mut keys: Vec<u64> = Vec::new();
        for (z, rows) in all.iter().enumerate() {
            for r in rows {
                if all.iter().enumerate().any(|(o, other)| o != z && !other.contains(r)) {
                    let id = u64::from_str_radix(r.split('|').next().unwrap(), 16).unwrap();
                    if !keys.contains(&id) {
                        keys.push(id);
                    }
                }
            }
        }
        let mut report = format!("{table} differs (seed {seed}); {} differing key(s)\n", keys.len());
        for id in keys.iter().take(10) {
            for z in 0..self.n {
                let mut c = conn(PORTS[z]).await;
                let cols = self.columns(&mut c, table).await;
                let pairs: Vec<String> = cols.iter().map(|c| format!("'{c}', `{c}`")).collect();
                let row: Vec<String> = c
                    .query(format!(
                        "SELECT CAST(JSON_OBJECT({}) AS CHAR) FROM `{}`.`{table}` WHERE id = {id}",
                        pairs.join(", "),
                        self.db
                    ))
                    .await
                    .unwrap();
                let tomb: Vec<String> = c
                    .exec(
                        "SELECT CONCAT(version, ' at ', deleted_at) FROM drc.tombstones WHERE db = ? AND tbl = ? AND pk = JSON_ARRAY(?)",
                        (&self.db, table, id),
                    )
                    .await
                    .unwrap();
                let log: Vec<String> = c
                    .exec(
                        "SELECT CONCAT_WS(' ', at, kind, resolution, 'from', origin_zone, origin_gtid, 'in', incoming_version, \
                         'local', IFNULL(local_version, '-'), IFNULL(incoming_row, '-'), IFNULL(local_row, '-')) \
                         FROM drc.conflicts WHERE db = ? AND tbl = ? AND pk = JSON_ARRAY(?) ORDER BY id",
                        (&self.db, table, id),
                    )
                    .await
                    .unwrap();
                report += &format!(
                    "key {id} in zone {}: row {row:?}, tombstone {tomb:?}\n  conflicts: {log:#?}\n",
                    ZONES[z]
                );
            }
        }
        panic!("{report}{}", self.logs());
    }

    /// Waits until every zone applied every other zone's `committed` transactions
    /// (by `drc.applied`), then checks the counts are exact: an echo or a repeat would
    /// raise one, a loss lower it. Panics with the daemons' logs otherwise.
    pub async fn assert_applied_exactly(&self, committed: &[u64]) {
        let pairs: Vec<(usize, usize)> = (0..self.n)
            .flat_map(|z| (0..self.n).filter(move |&o| o != z).map(move |o| (z, o)))
            .collect();
        let all = wait_until(Duration::from_secs(180), || async {
            for &(z, o) in &pairs {
                if self.applied_from(z, o).await < committed[o] {
                    return false;
                }
            }
            true
        })
        .await;
        let mut report = String::new();
        for &(z, o) in &pairs {
            let got = self.applied_from(z, o).await;
            report += &format!("{} -> {}: {got} of {}\n", ZONES[o], ZONES[z], committed[o]);
        }
        assert!(all, "not everything applied:\n{report}{}", self.logs());
        for &(z, o) in &pairs {
            assert_eq!(
                self.applied_from(z, o).await,
                committed[o],
                "{} -> {}: each transaction exactly once\n{report}",
                ZONES[o],
                ZONES[z]
            );
        }
    }

    /// The audit proof (audited pairs): in every zone, every committed token has
    /// exactly one write, by the load in its origin zone and by drc elsewhere.
    pub async fn assert_audit(&self, committed: &[u64]) {
        assert!(self.audited);
        let total: u64 = committed.iter().sum();
        for z in 0..self.n {
            let mut c = conn(PORTS[z]).await;
            let (tokens, max_hits, local, by_drc): (u64, Option<u64>, Option<u64>, Option<u64>) = c
                .query_first(format!(
                    "SELECT COUNT(*), MAX(hits), SUM(writer = 'drc_test'), SUM(writer = 'drc') FROM `{}_audit`.hits",
                    self.db
                ))
                .await
                .unwrap()
                .unwrap();
            let ledger: u64 = c
                .query_first(format!("SELECT COUNT(*) FROM `{}`.ledger", self.db))
                .await
                .unwrap()
                .unwrap();
            let zone = ZONES[z];
            assert_eq!(
                ledger, total,
                "zone {zone}: ledger rows = transactions committed in all zones"
            );
            assert_eq!(
                tokens, total,
                "zone {zone}: a write for every committed token (none lost)"
            );
            assert_eq!(max_hits, Some(1), "zone {zone}: no token written twice");
            assert_eq!(local, Some(committed[z]), "zone {zone}: its own load's writes");
            assert_eq!(
                by_drc,
                Some(total - committed[z]),
                "zone {zone}: drc's writes = the other zones' transactions"
            );
        }
    }

    /// Every zone's daemon log, then each zone's warnings, errors and full syncs
    /// again (the last 40, cut to 400 characters): the end of a failure message is
    /// what a truncated CI report still shows.
    pub fn logs(&self) -> String {
        let mut out: String = (0..self.n)
            .map(|z| format!("--- zone {} daemon log ---\n{}", ZONES[z], self.log(z)))
            .collect();
        for (z, zone) in ZONES.iter().enumerate().take(self.n) {
            let log = self.log(z);
            let notable: Vec<&str> = log
                .lines()
                .filter(|l| l.contains(" WARN ") || l.contains(" ERROR ") || l.contains("full sync"))
                .collect();
            out += &format!("--- zone {zone}: warnings, errors, full syncs ---\n");
            for l in &notable[notable.len().saturating_sub(40)..] {
                let cut = l.char_indices().nth(400).map_or(l.len(), |(i, _)| i);
                out += &l[..cut];
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for z in 0..self.n {
            self.kill9(z);
        }
        // DRC_TEST_LOGS=<dir> keeps the daemons' logs (with DRC_TEST_LOG=<filter>)
        if let Ok(dir) = std::env::var("DRC_TEST_LOGS") {
            for zone in &ZONES[..self.n] {
                let to = std::path::Path::new(&dir).join(format!("{}-{zone}.log", self.db));
                let _ = std::fs::copy(self.dir.path().join(format!("{zone}.log")), to);
            }
        }
        // Drop the private databases (on a thread with its own runtime: Drop is sync).
        let (db, n) = (self.db.clone(), self.n);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                for &port in &PORTS[..n] {
                    if let Ok(mut c) = mysql_async::Conn::new(opts(port)).await {
                        let _ = c.query_drop(format!("DROP DATABASE IF EXISTS `{db}`")).await;
                        let _ = c.query_drop(format!("DROP DATABASE IF EXISTS `{db}_audit`")).await;
                    }
                }
            })
        })
        .join();
    }
}

pub async fn wait_converged(p: &Pair, table: &str, secs: u64) -> bool {
    wait_until(Duration::from_secs(secs), || async { p.converged(table).await }).await
}

/// A running random load on `orders`: `workers` connections per loaded zone, each
/// doing `ops` operations (30% insert, 55% update, 15% delete of any key any zone
/// created, so keys overlap). `committed[zone]` counts the transactions that reached
/// the binlog: those that changed a row, and in an audited pair every transaction
/// (each also inserts its unique ledger token).
pub struct Load {
    pub handles: Vec<tokio::task::JoinHandle<()>>,
    pub committed: Vec<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    /// Set to end the load early (each worker still stops after its `ops`).
    pub stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Load {
    /// Load in every zone of `p`.
    pub fn spawn(p: &Pair, workers: usize, ops: usize, seed: u64) -> Load {
        Self::spawn_in(p, &(0..p.n).collect::<Vec<_>>(), workers, ops, seed)
    }

    /// Load in the given zones of `p` only.
    pub fn spawn_in(p: &Pair, zones: &[usize], workers: usize, ops: usize, seed: u64) -> Load {
        use rand::{Rng, SeedableRng};
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::{Arc, Mutex};
        let ids: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
        let committed: Vec<Arc<AtomicU64>> = (0..p.n).map(|_| Arc::new(AtomicU64::new(0))).collect();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut handles = Vec::new();
        for &zone in zones {
            for w in 0..workers {
                let (ids, committed, db) = (ids.clone(), committed[zone].clone(), p.db.clone());
                let (n, audited, stop) = (p.n, p.audited, stop.clone());
                handles.push(tokio::spawn(async move {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ ((zone * 16 + w) as u64));
                    let mut c = conn(PORTS[zone]).await;
                    // the zone's own key range (the servers are configured for two zones)
                    c.query_drop(format!(
                        "SET SESSION auto_increment_increment = {n}, auto_increment_offset = {}",
                        zone + 1
                    ))
                    .await
                    .unwrap();
                    for i in 0..ops {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let pick = |rng: &mut rand::rngs::StdRng| {
                            let v = ids.lock().unwrap();
                            v[rng.gen_range(0..v.len())]
                        };
                        let roll = rng.gen_range(0..100);
                        let op = if roll < 30 || ids.lock().unwrap().len() < 20 {
                            Op::Insert(format!("z{zone}w{w}i{i}"))
                        } else if roll < 85 {
                            Op::Update(pick(&mut rng), format!("z{zone}w{w}u{i}"))
                        } else {
                            Op::Delete(pick(&mut rng))
                        };
                        let token = audited.then(|| format!("{seed}/z{zone}w{w}o{i}"));
                        // a deadlock with the applier rolls the transaction back: retry it
                        let affected = loop {
                            match run_op(&mut c, &db, &op, token.as_deref()).await {
                                Ok((affected, inserted)) => {
                                    ids.lock().unwrap().extend(inserted);
                                    break affected;
                                }
                                Err(mysql_async::Error::Server(e)) if e.code == 1213 || e.code == 1205 => {
                                    c.query_drop("ROLLBACK").await.unwrap();
                                }
                                Err(e) => panic!("load in zone {}: {e}", ZONES[zone]),
                            }
                        };
                        if affected > 0 || audited {
                            committed.fetch_add(1, Ordering::SeqCst);
                        }
                        if i % 25 == 0 {
                            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..30))).await;
                        }
                    }
                }));
            }
        }
        Load {
            handles,
            committed,
            stop,
        }
    }

    /// Waits for every worker; returns the committed transactions per zone of the pair.
    pub async fn finish(self) -> Vec<u64> {
        for h in self.handles {
            h.await.unwrap();
        }
        self.committed
            .iter()
            .map(|c| c.load(std::sync::atomic::Ordering::SeqCst))
            .collect()
    }
}

enum Op {
    Insert(String),
    Update(u64, String),
    Delete(u64),
}

/// One load transaction; returns the rows it changed and the id it inserted.
async fn run_op(
    c: &mut mysql_async::Conn,
    db: &str,
    op: &Op,
    token: Option<&str>,
) -> Result<(u64, Option<u64>), mysql_async::Error> {
    if token.is_some() {
        c.query_drop("START TRANSACTION").await?;
    }
    let (affected, inserted) = match op {
        Op::Insert(customer) => {
            c.exec_drop(format!("INSERT INTO `{db}`.orders (customer) VALUES (?)"), (customer,))
                .await?;
            (1, c.last_insert_id())
        }
        Op::Update(id, customer) => {
            c.exec_drop(
                format!("UPDATE `{db}`.orders SET n = n + 1, customer = ? WHERE id = ?"),
                (customer, id),
            )
            .await?;
            (c.affected_rows(), None)
        }
        Op::Delete(id) => {
            c.exec_drop(format!("DELETE FROM `{db}`.orders WHERE id = ?"), (id,))
                .await?;
            (c.affected_rows(), None)
        }
    };
    if let Some(token) = token {
        c.exec_drop(format!("INSERT INTO `{db}`.ledger (token) VALUES (?)"), (token,))
            .await?;
        c.query_drop("COMMIT").await?;
    }
    Ok((affected, inserted))
}
