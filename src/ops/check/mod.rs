//! `drc check`: is this server ready for drc? One finding per line, each problem with
//! the exact fix. Problems make the exit code non-zero; warnings do not.

use crate::mysql::applier::table::TablePatterns;
use crate::mysql::reader::live::{server_info, Flavor};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde::Serialize;

mod kafka;
mod redis;
mod zookeeper;
pub use kafka::kafka_checks;
pub use redis::redis_checks;
pub use zookeeper::zk_checks;

/// Name of drc's own schema (positions, conflict log, loop marker). Binlog filters must
/// not drop it.
pub const DRC_SCHEMA: &str = "drc";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    #[serde(rename = "ok")]
    Pass,
    Warn,
    Problem,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub level: Level,
    pub check: &'static str,
    /// What was found.
    pub found: String,
    /// What to change (empty when OK).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

impl Finding {
    fn ok(check: &'static str, found: impl Into<String>) -> Self {
        Finding {
            level: Level::Pass,
            check,
            found: found.into(),
            fix: String::new(),
        }
    }
    fn bad(level: Level, check: &'static str, found: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding {
            level,
            check,
            found: found.into(),
            fix: fix.into(),
        }
    }
}

async fn var(conn: &mut Conn, name: &str) -> Result<Option<String>, mysql_async::Error> {
    let row: Option<(String, String)> = conn.query_first(format!("SHOW GLOBAL VARIABLES LIKE '{name}'")).await?;
    Ok(row.map(|r| r.1))
}

/// Runs every check against a connected server. `replica_server_id` is the id the
/// reader will present.
pub async fn run_checks(conn: &mut Conn, replica_server_id: u32) -> Result<Vec<Finding>, mysql_async::Error> {
    run_checks_for(conn, replica_server_id, None).await
}

/// Everything `drc run` needs on top of the reader's checks: ID ranges against the
/// server's auto-increment settings, the version column on every replicated table,
/// and a common time zone.
pub async fn run_checks_for(
    conn: &mut Conn,
    replica_server_id: u32,
    cfg: Option<&crate::config::Config>,
) -> Result<Vec<Finding>, mysql_async::Error> {
    let mut f = reader_checks(conn, replica_server_id).await?;
    if let Some(cfg) = cfg {
        f.extend(replication_checks(conn, cfg).await?);
    }
    Ok(f)
}

/// What drc's user needs on each replicated database (docs/OPERATIONS.md, Grants).
const APP_PRIVILEGES: &[&str] = &["SELECT", "INSERT", "UPDATE", "DELETE", "CREATE TEMPORARY TABLES"];
/// What drc's user needs on its own `drc` schema.
const DRC_PRIVILEGES: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "ALTER",
    "INDEX",
    "CREATE TEMPORARY TABLES",
];
/// What it needs besides on a database whose schema changes it applies (`ddl_home`).
const DDL_PRIVILEGES: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE TEMPORARY TABLES",
    "CREATE",
    "ALTER",
    "INDEX",
    "DROP",
];

/// The privileges of `needed` the connected user lacks on database `db`: `global`
/// (its global privileges) and those of every schema grant whose pattern (`drc\_%`)
/// matches `db` (roles are not looked at).
async fn schema_grants(
    conn: &mut Conn,
    global: &[String],
    db: &str,
    needed: &[&str],
) -> Result<Finding, mysql_async::Error> {
    let mut have = global.to_vec();
    let on_schema: Vec<String> = conn
        .exec(
            "SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES WHERE ? LIKE TABLE_SCHEMA",
            (db,),
        )
        .await?;
    have.extend(on_schema);
    let missing: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|p| !have.iter().any(|h| h.eq_ignore_ascii_case(p)))
        .collect();
    Ok(if missing.is_empty() {
        Finding::ok("grants", format!("{} on `{db}`", needed.join(", ")))
    } else {
        Finding::bad(
            Level::Problem,
            "grants",
            format!("the drc user lacks {} on `{db}`", missing.join(", ")),
            format!("GRANT {} ON `{db}`.* TO <drc user>", missing.join(", ")),
        )
    })
}

/// The connection to this zone's server is encrypted as `[mysql.tls]` asks; without
/// it, a warning when the server is not on this host (its traffic crosses a network).
async fn tls_check(conn: &mut Conn, m: &crate::config::MysqlConfig) -> Result<Finding, mysql_async::Error> {
    let version: Option<(String, String)> = conn.query_first("SHOW SESSION STATUS LIKE 'Ssl_version'").await?;
    let version = version.map(|(_, v)| v).filter(|v| !v.is_empty());
    let local = m.host == "localhost" || m.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    Ok(match (&m.tls, version) {
        (Some(t), Some(v)) => Finding::ok("tls", format!("{v}, mode {}", t.mode)),
        (Some(t), None) if t.mode != crate::config::TlsMode::Disabled => Finding::bad(
            Level::Problem,
            "tls",
            "[mysql.tls] is set but the connection is not encrypted",
            "set ssl_cert and ssl_key on the server",
        ),
        (_, Some(v)) => Finding::ok("tls", v),
        (_, None) if local => Finding::ok("tls", "not encrypted (the server is on this host)"),
        (_, None) => Finding::bad(
            Level::Warn,
            "tls",
            format!("the connection to {} is not encrypted", m.host),
            "add [mysql.tls] with ca = the CA of the server's certificate (docs/OPERATIONS.md, TLS)",
        ),
    })
}

async fn replication_checks(conn: &mut Conn, cfg: &crate::config::Config) -> Result<Vec<Finding>, mysql_async::Error> {
    use Level::*;
    let mut f = vec![tls_check(conn, &cfg.mysql).await?];
    let cnf = "in the server's my.cnf, then restart it";
    if let Some(r) = cfg.id_ranges.get(&cfg.zone) {
        if let (Some(inc), Some(off)) = (r.increment, r.offset) {
            let si: u64 = var(conn, "auto_increment_increment")
                .await?
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            let so: u64 = var(conn, "auto_increment_offset")
                .await?
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            if (si, so) == (inc, off) {
                f.push(Finding::ok(
                    "id_range",
                    format!(
                        "auto_increment_increment={si}, auto_increment_offset={so} match [id_ranges.{}]",
                        cfg.zone
                    ),
                ));
            } else {
                f.push(Finding::bad(
                    Problem,
                    "id_range",
                    format!("server generates keys with increment {si} offset {so}, config says increment {inc} offset {off}"),
                    format!("set auto_increment_increment={inc} and auto_increment_offset={off} {cnf}, or fix [id_ranges.{}]", cfg.zone),
                ));
            }
        }
    } else if !cfg.id_ranges.is_empty() {
        f.push(Finding::bad(
            Problem,
            "id_range",
            format!("[id_ranges] has no entry for this zone {:?}", cfg.zone),
            format!("add [id_ranges.{}]", cfg.zone),
        ));
    }
    let tz = var(conn, "time_zone").await?.unwrap_or_default();
    let sys = var(conn, "system_time_zone").await?.unwrap_or_default();
    let utc = matches!(tz.as_str(), "+00:00" | "UTC")
        || (tz == "SYSTEM" && matches!(sys.as_str(), "UTC" | "Etc/UTC" | "GMT"));
    if utc {
        f.push(Finding::ok("time_zone", format!("time_zone={tz} (UTC)")));
    } else {
        f.push(Finding::bad(
            Problem,
            "time_zone",
            format!("time_zone={tz} (system {sys})"),
            format!("set default_time_zone='+00:00' {cnf}: DATETIME versions of different zones must compare in one time zone"),
        ));
    }
    // `drc fence` sets read_only; the applier must keep writing under it.
    let grants = conn
        .query::<String, _>("SHOW GRANTS")
        .await?
        .join(" ")
        .to_ascii_uppercase();
    let writes_when_read_only = ["READ_ONLY ADMIN", "CONNECTION_ADMIN", "SUPER", "ALL PRIVILEGES ON *.*"]
        .iter()
        .any(|p| grants.contains(p));
    if writes_when_read_only {
        f.push(Finding::ok(
            "fence_privilege",
            "the drc user can write while the zone is fenced (read_only)",
        ));
    } else {
        f.push(Finding::bad(
            Warn,
            "fence_privilege",
            "the drc user cannot write under read_only: while `drc fence` fences this zone the applier would stop",
            "GRANT READ_ONLY ADMIN ON *.* TO <drc user> (MariaDB 10.5+), or SYSTEM_VARIABLES_ADMIN, CONNECTION_ADMIN (MySQL 8)",
        ));
    }
    if let Some(r) = &cfg.replication {
        let global: Vec<String> = conn
            .query("SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES")
            .await?;
        for (db, needed) in r
            .databases
            .iter()
            .map(|d| {
                let ddl = r.ddl_home.contains_key(d);
                (d.as_str(), if ddl { DDL_PRIVILEGES } else { APP_PRIVILEGES })
            })
            .chain([("drc", DRC_PRIVILEGES)])
        {
            f.push(schema_grants(conn, &global, db, needed).await?);
        }
        for db in &r.databases {
            let rows: Vec<(String, u64, u64)> = conn
                .exec(
                    "SELECT t.TABLE_NAME,                        (SELECT COUNT(*) FROM information_schema.KEY_COLUMN_USAGE k WHERE k.TABLE_SCHEMA = t.TABLE_SCHEMA AND k.TABLE_NAME = t.TABLE_NAME AND k.CONSTRAINT_NAME = 'PRIMARY'),                        (SELECT COUNT(*) FROM information_schema.COLUMNS c WHERE c.TABLE_SCHEMA = t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME AND c.COLUMN_NAME = ?)                      FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = ? AND t.TABLE_TYPE = 'BASE TABLE' ORDER BY 1",
                    (&r.version_column, db),
                )
                .await?;
            let mut good = 0;
            let (listed, excluded) = (TablePatterns::new(&r.tables), TablePatterns::new(&r.exclude_tables));
            let global = TablePatterns::new(&r.global_tables.keys().cloned().collect::<Vec<_>>());
            for (t, pk, ver) in rows {
                if excluded.matches(db, &t) || !(listed.is_empty() || listed.matches(db, &t)) {
                    continue;
                }
                // a table that cannot replicate is skipped by the daemon, unless the
                // config lists it as one that must replicate
                let level = if listed.matches(db, &t) { Problem } else { Warn };
                if pk == 0 {
                    f.push(Finding::bad(
                        level,
                        "replicated_table",
                        format!("`{db}`.`{t}` has no primary key: its changes are skipped"),
                        "add a primary key (drc identifies rows by it), or list the table in [replication] exclude_tables",
                    ));
                } else if ver == 0 && global.matches(db, &t) {
                    good += 1; // one writer: no version needed
                } else if ver == 0 && r.unversioned.iter().any(|u| *u == format!("{db}.{t}")) {
                    f.push(Finding::bad(
                        Warn,
                        "replicated_table",
                        format!("`{db}`.`{t}` has no version column; listed in unversioned: origin wins, no conflict resolution"),
                        "write it in one zone at a time, or add the version column",
                    ));
                    good += 1;
                } else if ver == 0 {
                    f.push(Finding::bad(
                        level,
                        "replicated_table",
                        format!("`{db}`.`{t}` has no version column `{}`: its changes are skipped", r.version_column),
                        format!("ALTER TABLE `{db}`.`{t}` ADD `{0}` DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6) (last-writer-wins needs it), or list the table in [replication] unversioned or exclude_tables", r.version_column),
                    ));
                } else {
                    good += 1;
                }
            }
            f.push(Finding::ok(
                "replicated_tables",
                format!("{good} table(s) of `{db}` ready to replicate"),
            ));
        }
    }
    Ok(f)
}

async fn reader_checks(conn: &mut Conn, replica_server_id: u32) -> Result<Vec<Finding>, mysql_async::Error> {
    use Level::*;
    let mut f = Vec::new();
    let info = server_info(conn).await?;
    f.push(Finding::ok(
        "server",
        format!("{} (server_id {})", info.version, info.server_id),
    ));
    let cnf = "in the server's my.cnf ([mysqld] / [mariadbd] section), then restart it";

    let expect = |name: &'static str, got: Option<String>, want: &str, fix: String| -> Finding {
        match got {
            Some(v) if v.eq_ignore_ascii_case(want) => Finding::ok(name, format!("{name}={v}")),
            Some(v) => Finding::bad(Problem, name, format!("{name}={v}"), fix),
            None => Finding::bad(
                Problem,
                name,
                format!("{name} does not exist on this server version"),
                fix,
            ),
        }
    };
    let log_bin = var(conn, "log_bin").await?;
    f.push(expect(
        "log_bin",
        log_bin,
        "ON",
        format!("set log_bin=<basename> {cnf}"),
    ));
    f.push(expect(
        "binlog_format",
        var(conn, "binlog_format").await?,
        "ROW",
        format!("set binlog_format=ROW {cnf} (SET GLOBAL binlog_format=ROW works until restart)"),
    ));
    f.push(expect(
        "binlog_row_image",
        var(conn, "binlog_row_image").await?,
        "FULL",
        format!("set binlog_row_image=FULL {cnf}"),
    ));
    let meta_fix = match info.flavor {
        Flavor::Mariadb => {
            format!("set binlog_row_metadata=FULL {cnf} (needs MariaDB 10.5 or later)")
        }
        Flavor::Mysql => format!("set binlog_row_metadata=FULL {cnf} (needs MySQL 8.0.1 or later)"),
    };
    f.push(expect(
        "binlog_row_metadata",
        var(conn, "binlog_row_metadata").await?,
        "FULL",
        meta_fix,
    ));

    if info.server_id == 0 {
        f.push(Finding::bad(
            Problem,
            "server_id",
            "server_id=0",
            format!("set a unique non-zero server_id {cnf}"),
        ));
    } else if info.server_id == replica_server_id {
        f.push(Finding::bad(
            Problem,
            "server_id",
            format!("[reader] server_id {replica_server_id} equals the server's own server_id"),
            "choose a different [reader] server_id in the drc config (unique among all servers and replicas)",
        ));
    } else {
        f.push(Finding::ok(
            "server_id",
            format!("server_id={} (reader uses {replica_server_id})", info.server_id),
        ));
    }

    match info.flavor {
        Flavor::Mysql => {
            f.push(expect(
                "gtid_mode",
                var(conn, "gtid_mode").await?,
                "ON",
                format!("set gtid_mode=ON and enforce_gtid_consistency=ON {cnf}"),
            ));
            f.push(expect(
                "enforce_gtid_consistency",
                var(conn, "enforce_gtid_consistency").await?,
                "ON",
                format!("set enforce_gtid_consistency=ON {cnf}"),
            ));
        }
        Flavor::Mariadb => {
            let d = var(conn, "gtid_domain_id").await?.unwrap_or_default();
            if d == "0" {
                f.push(Finding::bad(
                    Problem,
                    "gtid_domain_id",
                    "gtid_domain_id=0 (the default)",
                    format!("give every zone's server its own non-zero gtid_domain_id {cnf}; zones writing in the same domain break GTID ordering"),
                ));
            } else {
                f.push(Finding::ok("gtid_domain_id", format!("gtid_domain_id={d}")));
            }
            if var(conn, "gtid_strict_mode").await?.as_deref() != Some("ON") {
                f.push(Finding::bad(
                    Warn,
                    "gtid_strict_mode",
                    "gtid_strict_mode is OFF",
                    format!("set gtid_strict_mode=ON {cnf} so sequence numbers only grow within a domain"),
                ));
            }
            if var(conn, "log_bin_compress").await?.as_deref() == Some("ON") {
                f.push(Finding::bad(
                    Problem,
                    "log_bin_compress",
                    "log_bin_compress=ON",
                    format!("set log_bin_compress=OFF {cnf}"),
                ));
            }
            if var(conn, "encrypt_binlog").await?.as_deref() == Some("ON") {
                f.push(Finding::bad(
                    Problem,
                    "encrypt_binlog",
                    "encrypt_binlog=ON",
                    format!("set encrypt_binlog=OFF {cnf}"),
                ));
            }
        }
    }

    // Binlog filters that would drop drc's own schema (ANCHORS.md, hurt #1).
    // (MySQL 8.4 calls it SHOW BINARY LOG STATUS)
    let status = match conn.query_first::<mysql_async::Row, _>("SHOW MASTER STATUS").await {
        Err(mysql_async::Error::Server(e)) if e.code == 1064 => {
            conn.query_first::<mysql_async::Row, _>("SHOW BINARY LOG STATUS").await
        }
        r => r,
    };
    match status {
        Ok(Some(row)) => {
            let do_db: String = row.get(2).unwrap_or_default();
            let ignore_db: String = row.get(3).unwrap_or_default();
            let list = |s: &str| {
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect::<Vec<_>>()
            };
            let (do_db, ignore_db) = (list(&do_db), list(&ignore_db));
            if !do_db.is_empty() && !do_db.iter().any(|d| d == DRC_SCHEMA) {
                f.push(Finding::bad(
                    Problem,
                    "binlog_filter",
                    format!("binlog_do_db={} does not include `{DRC_SCHEMA}`", do_db.join(",")),
                    format!(
                        "remove binlog_do_db or add binlog_do_db={DRC_SCHEMA} {cnf}: drc's loop marker must be logged"
                    ),
                ));
            } else if ignore_db.iter().any(|d| d == DRC_SCHEMA) {
                f.push(Finding::bad(
                    Problem,
                    "binlog_filter",
                    format!("binlog_ignore_db includes `{DRC_SCHEMA}`"),
                    format!("remove {DRC_SCHEMA} from binlog_ignore_db {cnf}"),
                ));
            } else {
                f.push(Finding::ok("binlog_filter", "no binlog filter drops the drc schema"));
            }
            f.push(Finding::ok("privilege_binlog_monitor", "SHOW MASTER STATUS allowed"));
        }
        Ok(None) => f.push(Finding::bad(
            Problem,
            "log_bin",
            "SHOW MASTER STATUS returned nothing",
            "enable the binlog (log_bin)",
        )),
        Err(mysql_async::Error::Server(e)) => f.push(Finding::bad(
            Problem,
            "privilege_binlog_monitor",
            format!("SHOW MASTER STATUS refused: {}", e.message),
            match info.flavor {
                Flavor::Mariadb => "GRANT BINLOG MONITOR ON *.* TO <drc user>",
                Flavor::Mysql => "GRANT REPLICATION CLIENT ON *.* TO <drc user>",
            },
        )),
        Err(e) => return Err(e),
    }

    let grants: Vec<String> = conn.query("SHOW GRANTS").await?;
    let all = grants.join("\n").to_ascii_uppercase();
    if all.contains("REPLICATION SLAVE") || all.contains("ALL PRIVILEGES ON *.*") || all.contains("REPLICATION REPLICA")
    {
        f.push(Finding::ok("privilege_replication", "REPLICATION SLAVE granted"));
    } else {
        f.push(Finding::bad(
            Problem,
            "privilege_replication",
            "the user lacks REPLICATION SLAVE",
            "GRANT REPLICATION SLAVE ON *.* TO <drc user>",
        ));
    }

    // Durability and retention: warnings.
    if var(conn, "sync_binlog").await?.as_deref() != Some("1") {
        f.push(Finding::bad(
            Warn,
            "sync_binlog",
            "sync_binlog is not 1",
            format!("set sync_binlog=1 {cnf} so a crash cannot lose logged commits"),
        ));
    }
    if var(conn, "innodb_flush_log_at_trx_commit").await?.as_deref() != Some("1") {
        f.push(Finding::bad(
            Warn,
            "innodb_flush_log_at_trx_commit",
            "innodb_flush_log_at_trx_commit is not 1",
            format!("set innodb_flush_log_at_trx_commit=1 {cnf}"),
        ));
    }
    let secs: u64 = match var(conn, "binlog_expire_logs_seconds").await? {
        Some(s) => s.parse().unwrap_or(0),
        None => var(conn, "expire_logs_days")
            .await?
            .and_then(|d| d.parse::<f64>().ok())
            .map_or(0, |d| (d * 86400.0) as u64),
    };
    if secs > 0 && secs < 86_400 {
        f.push(Finding::bad(
            Warn,
            "binlog_retention",
            format!("binlogs expire after {secs} s"),
            "keep binlogs at least a day (binlog_expire_logs_seconds) so a stopped reader can resume",
        ));
    }
    Ok(f)
}
