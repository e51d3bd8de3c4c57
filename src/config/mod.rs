//! The configuration of one zone daemon: one TOML file per zone.
//!
//! Strict: unknown keys are rejected (`deny_unknown_fields`), so a typo is an error at
//! start-up, not a silently ignored setting. Relative paths are relative to the
//! directory of the config file. A complete example: `testenv/zone-a.toml`.
//!
//! Secrets: the MySQL password comes from exactly one of `password_env` (an environment
//! variable), `password_file` (a file, trailing newline ignored) or `password` (inline,
//! for throw-away test setups only). A file holding a secret must be readable by its
//! owner only (`secret_files`). TLS to a server: its `tls` table ([`tls`]).
//!
//! (Over 600 lines on purpose: every top-level section's settings types with their
//! documentation and strict validation in one place, the file a DBA reads beside
//! their config; the parts' own sections live with them: `kafka`, `zookeeper`.)

pub mod tls;

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use crate::error::ConfigError;
pub use tls::{SecretFiles, TlsConfig, TlsMode};

/// Top level of a zone daemon's config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Name of this zone, tagged on every transaction read here. Short, stable, unique
    /// across the topology: `zone = "a"`.
    pub zone: String,
    /// The zone's own MySQL/MariaDB primary.
    pub mysql: MysqlConfig,
    /// How the binlog reader connects as a replica and where it keeps its position.
    pub reader: ReaderConfig,
    /// What is replicated between zones and how conflicts resolve (`drc run`).
    #[serde(default)]
    pub replication: Option<ReplicationConfig>,
    /// Key ranges owned by each zone: `[id_ranges.a] increment = 2, offset = 1`.
    #[serde(default)]
    pub id_ranges: std::collections::BTreeMap<String, crate::mysql::applier::id_range::ZoneRanges>,
    /// The peer zones whose transactions this daemon applies: `[[peers]] zone = "b"`,
    /// with a `[peers.mysql]` table like `[mysql]` for the direct transport.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// How transactions travel between zones: `transport = "direct"` (default; each
    /// daemon reads its peers' binlogs) or `"kafka"` (each daemon publishes its own
    /// zone's transactions and consumes its peers' topics; needs `[kafka]`).
    #[serde(default)]
    pub transport: TransportKind,
    /// The Kafka cluster, for `transport = "kafka"`.
    #[serde(default)]
    pub kafka: Option<crate::kafka::KafkaConfig>,
    /// This zone's Redis and what of it is synced with the peers' (docs/REDIS.md).
    /// Without `[redis]` the daemon syncs no Redis data.
    #[serde(default)]
    pub redis: Option<RedisConfig>,
    /// This zone's ZooKeeper ensemble and the subtrees mirrored with the peers'
    /// (docs/ZOOKEEPER.md). Without `[zookeeper]` the daemon syncs no znodes.
    #[serde(default)]
    pub zookeeper: Option<ZkConfig>,
    /// The admin HTTP endpoint (`/metrics`, `/status`, `/pause`, `/resume`) and the
    /// token of its mutating calls. Without `[admin]` the daemon serves none.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// A file holding a secret (`password_file`, `token_file`, a TLS `key`) that its
    /// group or others can read: `"refuse"` to start (default) or `"warn"`.
    #[serde(default)]
    pub secret_files: SecretFiles,
    /// Directory the file was loaded from (relative paths resolve against it).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// Connection to a MySQL/MariaDB server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlConfig {
    /// Host name or IP: `host = "127.0.0.1"`.
    pub host: String,
    /// TCP port: `port = 3306`.
    #[serde(default = "default_port")]
    pub port: u16,
    /// User; needs REPLICATION SLAVE and REPLICATION CLIENT / BINLOG MONITOR
    /// (docs/OPERATIONS.md lists the grants): `user = "drc"`.
    pub user: String,
    /// Name of an environment variable holding the password: `password_env = "DRC_A_PASSWORD"`.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the password: `password_file = "/etc/drc/zone-a.password"`.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Inline password, for test setups only: `password = "drc"`.
    #[serde(default)]
    pub password: Option<String>,
    /// Seconds to wait for a TCP connection: `connect_timeout_secs = 5`.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// TLS to this server (`[mysql.tls]`, `[peers.mysql.tls]`); without it the
    /// connection is not encrypted ([`TlsConfig`]).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// The binlog reader.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReaderConfig {
    /// Server id this reader presents as a replica; unique among all replicas of the
    /// server and different from every server's own id: `server_id = 1001`.
    pub server_id: u32,
    /// Directory of the reader's sled state (its resume position): `state_dir = "/var/lib/drc/a"`.
    pub state_dir: PathBuf,
    /// Where to start when the state directory has no position yet: `"now"` (the
    /// server's current position), `"beginning"` (oldest binlog still on the server),
    /// `"gtid:<set or position>"` or `"file:<name>:<offset>"`. Default `"now"`.
    #[serde(default = "default_start")]
    pub start: String,
    /// Rows per transaction fragment handed downstream: `max_fragment_rows = 10000`.
    #[serde(default = "default_fragment_rows")]
    pub max_fragment_rows: usize,
    /// Approximate row-event bytes per fragment: `max_fragment_bytes = 8388608`.
    #[serde(default = "default_fragment_bytes")]
    pub max_fragment_bytes: usize,
    /// Rows of later transactions that may wait, in memory, behind a prepared XA
    /// transaction until its XA COMMIT or XA ROLLBACK is read (its changes are handed on
    /// only then); past this the reader reads again from before the XA transaction and
    /// says so (a prepared XA left open on the server: `XA RECOVER`):
    /// `max_xa_held_rows = 1000000`.
    #[serde(default = "default_xa_held_rows")]
    pub max_xa_held_rows: usize,
    /// Seconds between the server's heartbeats on an idle stream; no event for three
    /// periods means a dead connection, which is re-opened: `heartbeat_secs = 1`.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_secs: u64,
    /// Longest wait between reconnect attempts (backoff doubles from 100 ms):
    /// `reconnect_max_backoff_secs = 10`.
    #[serde(default = "default_backoff")]
    pub reconnect_max_backoff_secs: u64,
    /// Server id of the journal's replica connection to this zone's own server (`drc
    /// run`: tombstones and raises of local writes, docs/CONFLICTS.md); unique among
    /// the server's replicas like `server_id`. Default `server_id + 1000000`:
    /// `journal_server_id = 1001001`.
    #[serde(default)]
    pub journal_server_id: Option<u32>,
}

impl ReaderConfig {
    /// The journal's replica server id (`journal_server_id`, or `server_id + 1000000`).
    pub fn journal_server_id(&self) -> u32 {
        self.journal_server_id
            .unwrap_or_else(|| self.server_id.wrapping_add(1_000_000).max(1))
    }
}

/// Replication scope and conflict policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationConfig {
    /// Databases replicated in both directions; every table in them with a primary
    /// key and the version column replicates: `databases = ["shop"]`.
    pub databases: Vec<String>,
    /// The version column every replicated table has (last-writer-wins compares it):
    /// `version_column = "updated_at"`.
    #[serde(default = "default_version_column")]
    pub version_column: String,
    /// Inserted rows outside their origin zone's ID range: `"reject"` (quarantine) or
    /// `"apply-and-log"`. Default `"reject"`.
    #[serde(default)]
    pub range_policy: crate::mysql::applier::id_range::RangePolicy,
    /// Optional channel name, for more than one daemon applying into the same server
    /// (e.g. separate database groups): positions are kept per origin zone and channel.
    /// Default: none (`channel = ""`).
    #[serde(default)]
    pub channel: String,
    /// Tables (`"db.table"`) replicated without a version column: each change from
    /// the origin is written as it is, with no conflict resolution. Only for tables
    /// written in one zone at a time: `unversioned = ["shop.countries"]`.
    #[serde(default)]
    pub unversioned: Vec<String>,
    /// Seconds an incoming change for a table that does not exist here (yet) waits
    /// for it — a RENAME or CREATE the DBA has run in the origin zone and not yet
    /// here — before the daemon stops with a definite error: `missing_table_wait_secs
    /// = 300` (default). While it waits, the direction's status names the table.
    #[serde(default = "default_missing_table_wait")]
    pub missing_table_wait_secs: u64,
    /// Skip the shadow tables of online schema change tools, which exist in one zone
    /// only while the tool runs: pt-online-schema-change's `_<table>_new` /
    /// `_<table>_old` and gh-ost's `_<table>_gho` / `_<table>_ghc` / `_<table>_del`.
    /// The tool's copy is not replicated; after its swap each zone has its own
    /// identical copy. `skip_shadow_tables = true` (default).
    #[serde(default = "default_true")]
    pub skip_shadow_tables: bool,
    /// Only these tables of `databases` replicate: `"db.table"` patterns, `*` matching
    /// any run of characters (`tables = ["shop.orders", "shop.order_*"]`). Default
    /// (empty): every table of `databases`. A listed table that does not exist here
    /// is waited for however long it takes (it must replicate), where an unlisted one
    /// is skipped after `missing_table_wait_secs`.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Tables of `databases` never replicated, in either direction: `"db.table"`
    /// patterns as in `tables` (`exclude_tables = ["shop.tmp_*"]`).
    #[serde(default)]
    pub exclude_tables: Vec<String>,
    /// A tombstone (a deleted key's version) is dropped once it is this old and every
    /// peer's changes applied here were committed at least this long after it: a
    /// late change older than the delete can then no longer arrive (unless its
    /// statement time lagged its commit by as much). A stopped peer holds them all.
    /// `tombstone_retention_secs = 86400` (default, one day).
    #[serde(default = "default_tombstone_retention")]
    pub tombstone_retention_secs: u64,
    /// Entries of `drc.conflicts` older than this are dropped; 0 keeps them:
    /// `conflict_retention_secs = 2592000` (default, 30 days).
    #[serde(default = "default_conflict_retention")]
    pub conflict_retention_secs: u64,
    /// DDL policy per database. Unlisted (default, "manual"): DDL is not replicated,
    /// run it in every zone (docs/OPERATIONS.md). Listed: `[replication.ddl_home]
    /// shop = "a"` replicates the schema changes run in zone a (CREATE TABLE/INDEX,
    /// ALTER TABLE without DROP COLUMN, RENAME, DROP INDEX) to every zone, once and
    /// never back; destructive DDL (DROP TABLE, TRUNCATE, DROP COLUMN) is never
    /// replicated, and DDL run in another zone is reported, not applied.
    #[serde(default)]
    pub ddl_home: std::collections::BTreeMap<String, String>,
    /// Global-zone tables: data with one writer, read everywhere.
    /// `[replication.global_tables] "shop.countries" = "a"` (`db.table` patterns):
    /// changes made in zone a replicate one way, as they are (no last-writer-wins);
    /// a write of such a table in another zone is a misrouted write: reported in
    /// `drc.conflicts` (`misrouted_write`) and never applied elsewhere.
    #[serde(default)]
    pub global_tables: std::collections::BTreeMap<String, String>,
    /// How often retention runs: `retention_interval_secs = 60` (default).
    #[serde(default = "default_retention_interval")]
    pub retention_interval_secs: u64,
    /// How often the daemon writes its heartbeat row into its own zone (the peers
    /// measure the end-to-end lag from it): `heartbeat_ms = 1000` (default).
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
}

/// `[admin]`: the admin HTTP endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address to listen on: `listen = "127.0.0.1:9451"`. Keep it on a loopback or
    /// management address: `/metrics` and `/status` need no token.
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    /// Environment variable holding the bearer token of `POST /pause` and
    /// `POST /resume`: `token_env = "DRC_ADMIN_TOKEN"`.
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding the token (trailing newline ignored).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The token inline (test setups only).
    #[serde(default)]
    pub token: Option<String>,
    /// The audit log (JSON lines: every pause, resume and fence, refused attempts
    /// included): `audit_log = "/var/log/drc/audit.log"`. Default `audit.log` in
    /// `[reader] state_dir`.
    #[serde(default)]
    pub audit_log: Option<PathBuf>,
    /// HTTPS: the endpoint's certificate chain (PEM), with `tls_key`:
    /// `tls_cert = "/etc/drc/tls/admin.pem"`. Without it the endpoint speaks plain
    /// HTTP, and drc warns when `listen` is not a loopback address.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM; a secret: mode 0600).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// The CA that issued `tls_cert`: drc's own CLI (`drc status`, `pause`, `resume`)
    /// trusts it when it calls the endpoint. Default: the public roots.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
}

impl AdminConfig {
    /// `listen` as an address; the error says how to write it.
    pub fn listen_addr(&self) -> Result<std::net::SocketAddr, String> {
        self.listen.parse().map_err(|e| {
            format!(
                "[admin] listen = {:?}: {e} (use IP:PORT, e.g. 127.0.0.1:9451)",
                self.listen
            )
        })
    }

    fn validate(&self) -> Result<(), String> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("[admin] set both tls_cert and tls_key, or neither".into());
        }
        if self.tls_ca.is_some() && self.tls_cert.is_none() {
            return Err(
                "[admin] tls_ca without tls_cert: the endpoint speaks plain HTTP; set tls_cert and tls_key".into(),
            );
        }
        Ok(())
    }

    /// The endpoint's TLS settings (files read now); `None`: plain HTTP.
    pub fn server_tls(&self, base_dir: &Path) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => tls::server_config(base_dir, "admin", cert, key).map(Some),
            _ => Ok(None),
        }
    }

    /// What drc's CLI calls the endpoint with: its base URL (`https://` with TLS) and,
    /// with TLS, the client settings (trusting `tls_ca`, the name checked).
    pub fn client(&self, base_dir: &Path) -> Result<(String, Option<Arc<rustls::ClientConfig>>), String> {
        if self.tls_cert.is_none() {
            return Ok((format!("http://{}", self.listen), None));
        }
        let host = self.listen_addr()?.ip().to_string();
        let t = tls::TlsConfig {
            ca: self.tls_ca.clone(),
            ..Default::default()
        };
        let tls = t.rustls(base_dir, "admin", &host)?.map(|t| t.config);
        Ok((format!("https://{}", self.listen), tls))
    }

    /// The configured token, if any (`None`: mutating calls are refused).
    pub fn token(&self, base_dir: &Path) -> Result<Option<String>, String> {
        secret(
            base_dir,
            "admin",
            "token",
            &self.token_env,
            &self.token_file,
            &self.token,
        )
    }
}

/// A secret from exactly one configured source: `<key>_env` (an environment
/// variable), `<key>_file` (a file relative to the config's directory, trailing
/// newline ignored) or `<key>` inline; an error names the section and source.
fn secret(
    base_dir: &Path,
    section: &str,
    key: &str,
    env: &Option<String>,
    file: &Option<PathBuf>,
    inline: &Option<String>,
) -> Result<Option<String>, String> {
    if let Some(var) = env {
        return std::env::var(var)
            .map(Some)
            .map_err(|_| format!("[{section}] {key}_env: environment variable {var} is not set"));
    }
    if let Some(f) = file {
        let path = base_dir.join(f);
        return std::fs::read_to_string(&path)
            .map(|t| Some(t.trim_end_matches(['\n', '\r']).to_string()))
            .map_err(|e| format!("[{section}] {key}_file {}: {e}", path.display()));
    }
    Ok(inline.clone())
}

/// At most one of a secret's sources is set (see [`secret`]).
fn one_secret_source(section: &str, key: &str, set: [bool; 3]) -> Result<(), String> {
    if set.iter().filter(|x| **x).count() > 1 {
        return Err(format!("[{section}] set only one of {key}_env, {key}_file, {key}"));
    }
    Ok(())
}

fn default_admin_listen() -> String {
    "127.0.0.1:9450".into()
}

fn default_tombstone_retention() -> u64 {
    86_400
}

fn default_conflict_retention() -> u64 {
    30 * 86_400
}

fn default_retention_interval() -> u64 {
    60
}

fn default_heartbeat_ms() -> u64 {
    1000
}

/// A peer zone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The peer's zone name: `zone = "b"`.
    pub zone: String,
    /// The peer's primary, read as a replica with `[reader] server_id` (direct
    /// transport only).
    #[serde(default)]
    pub mysql: Option<MysqlConfig>,
    /// The peer's Redis, read as a replica (PSYNC) when this zone has `[redis]`:
    /// `[peers.redis] host = "10.0.2.5", port = 6379`.
    #[serde(default)]
    pub redis: Option<RedisServer>,
    /// The peer's ZooKeeper ensemble, read when this zone has `[zookeeper]`:
    /// `[peers.zookeeper] connect = "10.0.2.5:2181,10.0.2.6:2181"`.
    #[serde(default)]
    pub zookeeper: Option<ZkServer>,
}

pub use crate::zookeeper::config::{ZkConfig, ZkServer};

/// A Redis server drc connects to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisServer {
    /// Host name or IP: `host = "127.0.0.1"`.
    pub host: String,
    /// TCP port: `port = 6379`.
    #[serde(default = "default_redis_port")]
    pub port: u16,
    /// ACL user (Redis 6+); needs `+psync +replconf +ping` on the origin side and
    /// the synced commands plus `+multi +exec +select` on the applying side
    /// (docs/REDIS.md). Default: the `default` user.
    #[serde(default)]
    pub user: Option<String>,
    /// Name of an environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the password (trailing newline ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Inline password, for test setups only.
    #[serde(default)]
    pub password: Option<String>,
    /// TLS to this server (`[redis.tls]`, `[peers.redis.tls]`): the same table as
    /// `[mysql.tls]`, every mode available. The server's `tls-port` goes in `port`.
    #[serde(default)]
    pub tls: Option<tls::TlsConfig>,
}

/// `[redis]`: this zone's Redis (the applier writes peers' transactions and the
/// daemon's heartbeat key there) and the synced scope.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    #[serde(flatten)]
    pub server: RedisServer,
    /// Database numbers synced: `databases = [0]` (default).
    #[serde(default = "default_redis_databases")]
    pub databases: Vec<u64>,
    /// Key patterns synced (`*` and `?` wildcards): `keys = ["*"]` (default). drc's
    /// own keys (`drc:*` in database 0) never are. A transaction touching keys in and
    /// out of the scope is not applied (alert).
    #[serde(default = "default_redis_keys")]
    pub keys: Vec<String>,
    /// Milliseconds between writes of this zone's heartbeat key `drc:hb:<zone>`
    /// (database 0), from which the peers measure the Redis lag: `heartbeat_ms = 1000`.
    #[serde(default = "default_redis_heartbeat")]
    pub heartbeat_ms: u64,
    /// Home zones of key patterns: `[redis.homes] "route:*" = "a"`. A key with a home
    /// is written in its home zone only: another zone's write of it is not applied
    /// anywhere (counted as a conflict, logged), and `drc redis verify --repair`
    /// gives the other zones the home's version. The first matching pattern counts.
    #[serde(default)]
    pub homes: std::collections::BTreeMap<String, String>,
    /// Seconds between anti-entropy passes against each peer (`drc redis verify
    /// --repair` inside the daemon: keys with a home get the home's version, other
    /// differences are counted and logged); 0 (default) runs none. Each pass reads
    /// every synced key of both zones: size it to the keyspace.
    #[serde(default)]
    pub verify_interval_secs: u64,
    /// Two zones writing the same key without a home concurrently (neither had seen
    /// the other's write): `conflicts = "later_write"` keeps, in every zone, the
    /// write with the later origin time (then the greater zone name) when both wrote
    /// the whole value (SET, DEL, ...); `"apply"` (default) applies every write as it
    /// comes, so the zones can end with each other's value. docs/REDIS.md, "Conflicts".
    #[serde(default)]
    pub conflicts: crate::redis::lww::Conflicts,
    /// Key patterns of counters (`counters = ["counter:*"]`): their commands are
    /// always applied as they come, so that increments made in several zones sum, even
    /// with `conflicts = "later_write"`.
    #[serde(default)]
    pub counters: Vec<String>,
}

fn default_redis_port() -> u16 {
    6379
}
fn default_redis_databases() -> Vec<u64> {
    vec![0]
}
fn default_redis_keys() -> Vec<String> {
    vec!["*".into()]
}
fn default_redis_heartbeat() -> u64 {
    1000
}

impl RedisServer {
    /// `host:port`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// (user, password) for `AUTH`, when a password is configured.
    pub fn auth(&self, base_dir: &Path, section: &str) -> Result<Option<(String, String)>, String> {
        let pass = secret(
            base_dir,
            section,
            "password",
            &self.password_env,
            &self.password_file,
            &self.password,
        )?;
        Ok(pass.map(|p| (self.user.clone().unwrap_or_else(|| "default".into()), p)))
    }

    /// The server as drc connects to it: address, credentials, TLS (files read now).
    pub fn endpoint(&self, base_dir: &Path, section: &str) -> Result<crate::redis::endpoint::Endpoint, String> {
        let tls = match &self.tls {
            Some(t) => t.rustls(base_dir, &format!("{section}.tls"), &self.host)?,
            None => None,
        };
        Ok(crate::redis::endpoint::Endpoint {
            addr: self.addr(),
            auth: self.auth(base_dir, section)?,
            tls,
        })
    }

    fn validate(&self, section: &str) -> Result<(), String> {
        one_secret_source(
            section,
            "password",
            [
                self.password_env.is_some(),
                self.password_file.is_some(),
                self.password.is_some(),
            ],
        )
    }
}

/// See [`Config::transport`].
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    #[default]
    Direct,
    Kafka,
}

fn default_version_column() -> String {
    "updated_at".into()
}

fn default_port() -> u16 {
    3306
}
fn default_connect_timeout() -> u64 {
    5
}
fn default_missing_table_wait() -> u64 {
    300
}
fn default_true() -> bool {
    true
}
fn default_start() -> String {
    "now".into()
}
fn default_fragment_rows() -> usize {
    10_000
}
fn default_xa_held_rows() -> usize {
    1_000_000
}

fn default_fragment_bytes() -> usize {
    8 << 20
}
fn default_heartbeat() -> u64 {
    1
}
fn default_backoff() -> u64 {
    10
}

impl Config {
    /// Loads and validates a config file.
    /// The MySQL connection of `zone`: this zone's own, or a peer's `[peers.mysql]`.
    pub fn zone_mysql(&self, zone: &str) -> Result<&MysqlConfig, String> {
        if zone == self.zone {
            return Ok(&self.mysql);
        }
        self.peers
            .iter()
            .find(|p| p.zone == zone)
            .and_then(|p| p.mysql.as_ref())
            .ok_or_else(|| {
                format!(
                    "zone {zone:?} is neither this config's zone ({:?}) nor a [[peers]] entry with [peers.mysql]",
                    self.zone
                )
            })
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let err = |what: String| ConfigError {
            path: path.display().to_string(),
            what,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        Config::parse(&text, path.parent().unwrap_or(Path::new(""))).map_err(err)
    }

    /// Parses and validates the text of a config file whose directory is `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Config, String> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        cfg.base_dir = base_dir.to_path_buf();
        cfg.validate()?;
        use crate::zookeeper::tls_options;
        if let Some(z) = cfg.zookeeper.as_mut() {
            z.client_tls = tls_options(z.tls.as_ref(), base_dir, "zookeeper.tls")?;
        }
        for z in cfg.peers.iter_mut().filter_map(|p| p.zookeeper.as_mut()) {
            z.client_tls = tls_options(z.tls.as_ref(), base_dir, "peers.zookeeper.tls")?;
        }
        if let Some(k) = cfg.kafka.as_mut() {
            k.prepare(
                |p| base_dir.join(p),
                |a| {
                    secret(
                        base_dir,
                        "kafka.sasl",
                        "password",
                        &a.password_env,
                        &a.password_file,
                        &a.password,
                    )
                },
            )?;
        }
        Ok(cfg)
    }

    /// This zone's MySQL server and the peers', with their sections' names.
    fn mysql_servers(&self) -> impl Iterator<Item = (&'static str, &MysqlConfig)> {
        std::iter::once(("mysql", &self.mysql)).chain(
            self.peers
                .iter()
                .filter_map(|p| p.mysql.as_ref().map(|m| ("peers.mysql", m))),
        )
    }

    /// This zone's Redis and the peers', with their sections' names.
    fn redis_servers(&self) -> impl Iterator<Item = (&'static str, &RedisServer)> {
        let local = self.redis.iter().map(|r| ("redis", &r.server));
        local.chain(
            self.peers
                .iter()
                .filter_map(|p| p.redis.as_ref().map(|r| ("peers.redis", r))),
        )
    }

    /// Every file holding a secret is readable by its owner only
    /// ([`tls::check_secret_file`]).
    fn check_secret_files(&self) -> Result<(), String> {
        let mut files: Vec<(String, &PathBuf)> = Vec::new();
        for (section, m) in self.mysql_servers() {
            if let Some(t) = &m.tls {
                files.extend(t.secret_files().map(|f| (format!("[{section}.tls] key"), f)));
            }
            files.extend(
                m.password_file
                    .iter()
                    .map(|f| (format!("[{section}] password_file"), f)),
            );
        }
        for (section, r) in self.redis_servers() {
            if let Some(t) = &r.tls {
                files.extend(t.secret_files().map(|f| (format!("[{section}.tls] key"), f)));
            }
            files.extend(
                r.password_file
                    .iter()
                    .map(|f| (format!("[{section}] password_file"), f)),
            );
        }
        let zk_tls = self
            .zookeeper
            .iter()
            .filter_map(|z| z.tls.as_ref().map(|t| ("zookeeper", t)));
        let peer_zk_tls =
            (self.peers.iter()).filter_map(|p| p.zookeeper.as_ref()?.tls.as_ref().map(|t| ("peers.zookeeper", t)));
        for (section, t) in zk_tls.chain(peer_zk_tls) {
            files.extend(t.secret_files().map(|f| (format!("[{section}.tls] key"), f)));
        }
        if let Some(k) = &self.kafka {
            if let Some(t) = &k.tls {
                files.extend(t.secret_files().map(|f| ("[kafka.tls] key".to_string(), f)));
            }
            if let Some(a) = &k.sasl {
                files.extend(
                    a.password_file
                        .iter()
                        .map(|f| ("[kafka.sasl] password_file".to_string(), f)),
                );
            }
        }
        if let Some(a) = &self.admin {
            files.extend(a.token_file.iter().map(|f| ("[admin] token_file".to_string(), f)));
            files.extend(a.tls_key.iter().map(|f| ("[admin] tls_key".to_string(), f)));
        }
        for (setting, f) in files {
            tls::check_secret_file(&self.base_dir, &setting, f, self.secret_files)?;
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), String> {
        if self.zone.is_empty()
            || !self
                .zone
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!("zone = {:?}: use letters, digits, '-' or '_'", self.zone));
        }
        let m = &self.mysql;
        one_secret_source(
            "mysql",
            "password",
            [
                m.password_env.is_some(),
                m.password_file.is_some(),
                m.password.is_some(),
            ],
        )?;
        for (section, m) in self.mysql_servers() {
            if let Some(t) = &m.tls {
                t.validate_mysql(&format!("{section}.tls"))?;
            }
        }
        for (section, r) in self.redis_servers() {
            if let Some(t) = &r.tls {
                t.validate(&format!("{section}.tls"))?;
            }
        }
        self.check_secret_files()?;
        if let Some(a) = &self.admin {
            one_secret_source(
                "admin",
                "token",
                [a.token_env.is_some(), a.token_file.is_some(), a.token.is_some()],
            )?;
            a.listen_addr()?;
            a.validate()?;
        }
        if let Some(r) = &self.replication {
            if r.heartbeat_ms == 0 {
                return Err("[replication] heartbeat_ms must be positive".into());
            }
            // zones named as a home: this zone or a peer
            let homes = r.global_tables.iter().map(|(k, z)| ("global_tables", k, z));
            for (key, name, home) in homes.chain(r.ddl_home.iter().map(|(k, z)| ("ddl_home", k, z))) {
                if *home != self.zone && !self.peers.iter().any(|p| p.zone == *home) {
                    return Err(format!(
                        "[replication.{key}] {name:?} = {home:?}: not this zone ({:?}) nor a [[peers]] zone",
                        self.zone
                    ));
                }
            }
            if let Some(db) = r.ddl_home.keys().find(|db| !r.databases.contains(db)) {
                return Err(format!(
                    "[replication.ddl_home] {db}: not in databases = {:?}",
                    r.databases
                ));
            }
            if r.retention_interval_secs == 0 || r.tombstone_retention_secs == 0 {
                return Err(
                    "[replication] retention_interval_secs and tombstone_retention_secs must be positive".into(),
                );
            }
            let global: Vec<String> = r.global_tables.keys().cloned().collect();
            for (key, list) in [
                ("tables", &r.tables),
                ("exclude_tables", &r.exclude_tables),
                ("global_tables", &global),
            ] {
                for pat in list {
                    let db = pat.split_once('.').map(|(db, _)| db);
                    if !db.is_some_and(|db| r.databases.iter().any(|d| d == db)) {
                        return Err(format!(
                            "[replication] {key}: {pat:?} is not \"db.table\" of a database in databases = {:?} (`*` may stand for any characters of the table name)",
                            r.databases
                        ));
                    }
                }
            }
        }
        if self.reader.server_id == 0 {
            return Err("[reader] server_id must not be 0 (the server refuses replicas with id 0)".into());
        }
        if self.reader.journal_server_id() == self.reader.server_id {
            return Err("[reader] journal_server_id must differ from server_id (both connect to this zone's server as replicas in Kafka mode)".into());
        }
        if self.reader.max_fragment_rows == 0 || self.reader.max_fragment_bytes == 0 {
            return Err("[reader] max_fragment_rows and max_fragment_bytes must be positive".into());
        }
        crate::mysql::reader::live::StartSpec::parse(&self.reader.start).map_err(|e| format!("[reader] start: {e}"))?;
        for (zone, r) in &self.id_ranges {
            r.validate(zone)?;
        }
        let zones: Vec<&String> = self.id_ranges.keys().collect();
        for (i, a) in zones.iter().enumerate() {
            for b in &zones[i + 1..] {
                if let Some(k) = self.id_ranges[*a].overlaps(&self.id_ranges[*b], 100_000) {
                    return Err(format!(
                        "[id_ranges] zones {a} and {b} both own key {k}; ranges must not overlap"
                    ));
                }
            }
        }
        for p in &self.peers {
            if p.zone == self.zone {
                return Err(format!("[[peers]] zone {:?} is this zone", p.zone));
            }
            if self.transport == TransportKind::Direct && p.mysql.is_none() {
                return Err(format!(
                    "[[peers]] zone {:?} needs a [peers.mysql] table with the direct transport",
                    p.zone
                ));
            }
        }
        if let Some(z) = &self.zookeeper {
            let peers: Vec<&str> = self.peers.iter().map(|p| p.zone.as_str()).collect();
            z.validate(&self.zone, &peers)?;
            if let Some(p) = self.peers.iter().find(|p| p.zookeeper.is_none()) {
                return Err(format!(
                    "[[peers]] zone {:?} needs a [peers.zookeeper] table (connect = \"host:port\"): this zone has [zookeeper]",
                    p.zone
                ));
            }
        } else if let Some(p) = self.peers.iter().find(|p| p.zookeeper.is_some()) {
            return Err(format!(
                "[[peers]] zone {:?} has [peers.zookeeper] but this zone has no [zookeeper] to apply its nodes to",
                p.zone
            ));
        }
        if let Some(r) = &self.redis {
            r.server.validate("redis")?;
            if r.databases.is_empty() || r.keys.is_empty() {
                return Err(
                    "[redis] databases and keys must not be empty (leave [redis] out to sync no Redis data)".into(),
                );
            }
            if r.heartbeat_ms == 0 {
                return Err("[redis] heartbeat_ms must be positive".into());
            }
            for (pattern, home) in &r.homes {
                if *home != self.zone && !self.peers.iter().any(|p| p.zone == *home) {
                    return Err(format!(
                        "[redis.homes] {pattern:?} = {home:?}: not this zone ({:?}) nor a [[peers]] zone",
                        self.zone
                    ));
                }
            }
            for p in &self.peers {
                match &p.redis {
                    Some(s) => s.validate("peers.redis")?,
                    // Redis data travels directly with either transport (docs/REDIS.md)
                    None => {
                        return Err(format!(
                        "[[peers]] zone {:?} needs a [peers.redis] table: this zone has [redis] (or leave [redis] out)",
                        p.zone
                    ))
                    }
                }
            }
        } else if let Some(p) = self.peers.iter().find(|p| p.redis.is_some()) {
            return Err(format!(
                "[[peers]] zone {:?} has [peers.redis] but this zone has no [redis] to apply its data to",
                p.zone
            ));
        }
        if self.transport == TransportKind::Kafka && self.kafka.is_none() {
            return Err("transport = \"kafka\" needs a [kafka] section (brokers = \"host:9092\")".into());
        }
        if self.kafka.as_ref().is_some_and(|k| k.max_message_txns == 0) {
            return Err(
                "[kafka] max_message_txns = 0: a message carries at least one transaction (1: each alone)".into(),
            );
        }
        if let Some(r) = &self.replication {
            if r.databases.is_empty() {
                return Err("[replication] databases is empty".into());
            }
            if r.databases.iter().any(|d| d == "drc") {
                return Err("[replication] databases must not include drc's own schema `drc`".into());
            }
        }
        Ok(())
    }

    /// Resolves a path from the config against the config file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.resolve(&self.reader.state_dir)
    }
}

impl MysqlConfig {
    /// The password from its configured source; an error says which source failed.
    pub fn resolve_password(&self, base_dir: &Path) -> Result<Option<String>, String> {
        secret(
            base_dir,
            "mysql",
            "password",
            &self.password_env,
            &self.password_file,
            &self.password,
        )
    }

    /// mysql_async connection options for this server.
    pub fn opts(&self, base_dir: &Path) -> Result<mysql_async::Opts, String> {
        let pass = self.resolve_password(base_dir)?;
        let ssl = match &self.tls {
            Some(t) => t.mysql(base_dir, "mysql.tls")?,
            None => None,
        };
        Ok(mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(pass)
            .prefer_socket(false)
            .stmt_cache_size(0)
            .ssl_opts(ssl)
            .into())
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, String> {
        let mut c: Config = toml::from_str(s).map_err(|e| e.to_string())?;
        c.base_dir = PathBuf::from("/etc/drc");
        c.validate()?;
        Ok(c)
    }

    const OK: &str = r#"
zone = "a"
[mysql]
host = "127.0.0.1"
user = "drc"
password_env = "X"
[reader]
server_id = 1001
state_dir = "state"
"#;

    #[test]
    fn minimal_config_and_defaults() {
        let c = parse(OK).unwrap();
        assert_eq!(c.mysql.port, 3306);
        assert_eq!(c.reader.start, "now");
        assert_eq!(c.state_dir(), PathBuf::from("/etc/drc/state"));
    }

    #[test]
    fn rejects_unknown_keys_and_conflicts() {
        let e = parse(&OK.replace("user = \"drc\"", "user = \"drc\"\nusr = 1")).unwrap_err();
        assert!(e.contains("unknown field `usr`"), "{e}");
        let e = parse(&OK.replace("password_env = \"X\"", "password_env = \"X\"\npassword = \"y\"")).unwrap_err();
        assert!(e.contains("only one of"), "{e}");
        let e = parse(&OK.replace("server_id = 1001", "server_id = 0")).unwrap_err();
        assert!(e.contains("server_id"), "{e}");
        let e = parse(&OK.replace("zone = \"a\"", "zone = \"a b\"")).unwrap_err();
        assert!(e.contains("zone"), "{e}");
        let e =
            parse(&OK.replace("state_dir = \"state\"", "state_dir = \"state\"\nstart = \"yesterday\"")).unwrap_err();
        assert!(e.contains("start"), "{e}");
    }

    #[test]
    fn password_sources() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
        let mut c = parse(OK).unwrap();
        c.mysql.password_env = None;
        c.mysql.password_file = Some("pw".into());
        assert_eq!(c.mysql.resolve_password(dir.path()).unwrap().as_deref(), Some("s3cret"));
        c.mysql.password_file = None;
        c.mysql.password_env = Some("DRC_TEST_SURELY_UNSET_VAR".into());
        assert!(c
            .mysql
            .resolve_password(dir.path())
            .unwrap_err()
            .contains("DRC_TEST_SURELY_UNSET_VAR"));
    }
}
