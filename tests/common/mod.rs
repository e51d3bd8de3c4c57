//! Helpers shared by the live tests: connections to the testenv zones, temporary
//! configs, and the `drc` binary. The servers come from `testenv/up.sh` (the README's
//! test command starts them); a test that finds no server fails and says so.
#![allow(dead_code)]

pub mod pair;
pub mod redis;

use mysql_async::prelude::Queryable;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const ZONE_A: u16 = 33061;
pub const ZONE_B: u16 = 33062;
pub const ZONE_C: u16 = 33063;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where the testenv servers keep their files: `$DRC_TESTENV_DIR`, as testenv/lib.sh
/// has it (default `testenv/.run` in the checkout).
pub fn run_dir() -> PathBuf {
    std::env::var_os("DRC_TESTENV_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("testenv/.run"))
}

pub fn drc_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_drc"))
}

/// Admin connection options (user drc_test) for the zone on `port`.
pub fn opts(port: u16) -> mysql_async::Opts {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some("drc_test"))
        .pass(Some("drc_test"))
        .prefer_socket(false)
        .init(vec!["SET time_zone = '+00:00'"])
        .into()
}

pub async fn conn(port: u16) -> mysql_async::Conn {
    match mysql_async::Conn::new(opts(port)).await {
        Ok(c) => c,
        Err(e) => panic!("no test server on 127.0.0.1:{port} ({e}); start it with testenv/up.sh"),
    }
}

/// Runs SQL statements in order on a fresh connection.
pub async fn exec(port: u16, sqls: &[&str]) {
    let mut c = conn(port).await;
    for s in sqls {
        c.query_drop(*s).await.unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    c.disconnect().await.ok();
}

/// Writes a zone config for a reader of the server on `port` into `dir`.
pub fn write_config(dir: &Path, zone: &str, port: u16, reader_server_id: u32, start: &str) -> PathBuf {
    let path = dir.join(format!("zone-{zone}.toml"));
    let text =
        config_head(zone, "", port, reader_server_id, start) + "heartbeat_secs = 1\nreconnect_max_backoff_secs = 1\n";
    std::fs::write(&path, text).unwrap();
    path
}

/// `[<section>.tls]` of every test: TLS verified against the testenv's CA, for the
/// name the server's certificate is issued for (127.0.0.1).
pub fn tls_table(section: &str) -> String {
    format!(
        "[{section}.tls]\nmode = \"verify-full\"\nca = \"{}\"\n",
        run_dir().join("tls/ca.pem").display()
    )
}

/// The start of a drc config for a testenv zone: top-level keys `top` (e.g.
/// `transport = "kafka"`), `[mysql]` as user drc on 127.0.0.1:`port` over TLS
/// (`verify-full`), and `[reader]` with `server_id`, a state directory and `start`;
/// callers append `[reader]` keys and further tables.
pub fn config_head(zone: &str, top: &str, port: u16, server_id: u32, start: &str) -> String {
    let tls = tls_table("mysql");
    format!(
        r#"zone = "{zone}"
{top}[mysql]
host = "127.0.0.1"
port = {port}
user = "drc"
password = "drc"
{tls}[reader]
server_id = {server_id}
state_dir = "state-{zone}"
start = "{start}"
"#
    )
}

/// A `[[peers]]` entry for `zone`, with `[peers.mysql]` (user drc on
/// 127.0.0.1:`port`) when the daemon reaches that zone's server.
pub fn peer_section(zone: &str, port: Option<u16>) -> String {
    let mysql = port
        .map(|p| {
            format!(
                "[peers.mysql]\nhost = \"127.0.0.1\"\nport = {p}\nuser = \"drc\"\npassword = \"drc\"\n{}",
                tls_table("peers.mysql")
            )
        })
        .unwrap_or_default();
    format!("[[peers]]\nzone = \"{zone}\"\n{mysql}")
}

/// Recreates database `db` on the zone at `port` with one table (`table_ddl`, after
/// `CREATE TABLE {db}.`), and returns the server's GTID position from just after that,
/// for a reader started exactly there (`start = "gtid:<pos>"`).
pub async fn fresh_db_at(port: u16, db: &str, table_ddl: &str) -> String {
    exec(
        port,
        &[
            &format!("DROP DATABASE IF EXISTS {db}"),
            &format!("CREATE DATABASE {db}"),
            &format!("CREATE TABLE {db}.{table_ddl}"),
        ],
    )
    .await;
    conn(port)
        .await
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .unwrap()
        .unwrap()
}

/// Starts a testenv zone (idempotent), e.g. the private zone c.
pub fn testenv_up(zone: &str) {
    testenv_up_with(&[zone]);
}

/// `testenv/up.sh ARGS` (zones, `--kafka`); panics if it fails.
pub fn testenv_up_with(args: &[&str]) {
    let st = std::process::Command::new("bash")
        .arg(repo().join("testenv/up.sh"))
        .args(args)
        .status()
        .expect("run testenv/up.sh");
    assert!(st.success(), "testenv/up.sh {args:?} failed");
}

pub fn testenv_down(zone: &str) {
    let st = std::process::Command::new("bash")
        .arg(repo().join("testenv/down.sh"))
        .arg(zone)
        .status()
        .expect("run testenv/down.sh");
    assert!(st.success(), "testenv/down.sh {zone} failed");
}

/// Polls `f` every 100 ms until it is true or `limit` passes.
pub async fn wait_until<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// GET `url` (an admin endpoint); panics with the error.
pub fn get(url: &str) -> String {
    ureq::get(url)
        .timeout(Duration::from_secs(5))
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .into_string()
        .unwrap()
}

/// The value of the first sample of `name` whose labels include every `labels` pair.
pub fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|x| l.contains(x)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Runs the drc binary; its exit code and output (stdout then stderr).
pub fn drc(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(drc_bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}
