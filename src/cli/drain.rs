//! `drc binlog drain --config FILE [--from beginning]`: read the zone's binlog as a
//! replica from a start position up to the server's end position at the call, decode
//! every event, output nothing, and print a summary (transactions, rows, bytes, time).
//! Stateless. For sizing ("how fast can drc read this server?") and the parse
//! benchmark (`cargo bench --bench parse`).

use drc::config::Config;
use drc::error::Error;
use drc::mysql::reader::live::{LiveReader, StartSpec};
use drc::position::{Checkpoint, FilePos, GtidState, MariaGtidPos};
use mysql_async::prelude::Queryable;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct DrainArgs {
    /// The zone's config file ([mysql], [reader] server_id).
    #[arg(long)]
    config: PathBuf,
    /// Where to start: beginning | gtid:<set> | file:<name>:<offset>.
    #[arg(long, default_value = "beginning")]
    from: String,
}

/// Where the server's binlog ends now: its file position and, on MariaDB, its GTID
/// position (the exact end: the file position may lie after a rotation with no
/// transaction to reach it).
async fn end_position(opts: mysql_async::Opts, addr: &str) -> Result<(FilePos, Option<MariaGtidPos>), Error> {
    let m = |e| drc::mysql::error::classify(addr, "reading the binlog end", e);
    let mut c = mysql_async::Conn::new(opts).await.map_err(m)?;
    let end = drc::mysql::reader::live::master_status(&mut c).await.map_err(m)?;
    let FilePos { file, pos } = end.ok_or_else(|| Error::Server {
        addr: addr.to_string(),
        what: "SHOW MASTER STATUS returned nothing: binary logging is off".into(),
    })?;
    // MariaDB's GTID position (MySQL has none of this form)
    let version: Option<String> = c.query_first("SELECT @@version").await.map_err(m)?;
    let gtid: Option<String> = if version.is_some_and(|v| v.to_ascii_lowercase().contains("mariadb")) {
        c.query_first("SELECT @@gtid_binlog_pos").await.ok().flatten()
    } else {
        None
    };
    let gtid = gtid
        .and_then(|g| g.parse::<MariaGtidPos>().ok())
        .filter(|g| !g.is_empty());
    Ok((FilePos::new(file, pos), gtid))
}

fn reached(at: &Checkpoint, end: &(FilePos, Option<MariaGtidPos>)) -> bool {
    if let (Some(end), Some(GtidState::Mariadb(pos))) = (&end.1, &at.gtid) {
        return end.is_reached_by(pos);
    }
    let n = |f: &str| drc::telemetry::metrics::binlog_file_number(f);
    (n(&at.file.file), at.file.pos) >= (n(&end.0.file), end.0.pos)
}

pub async fn run(a: DrainArgs) -> i32 {
    let r = async {
        let cfg = Config::load(&a.config)?;
        let settings = drc::daemon::topology::live_settings(&cfg, &cfg.zone, &cfg.mysql).map_err(|e| {
            Error::Config(drc::config::ConfigError {
                path: a.config.display().to_string(),
                what: e,
            })
        })?;
        let start = StartSpec::parse(&a.from).map_err(|e| {
            Error::Config(drc::config::ConfigError {
                path: a.config.display().to_string(),
                what: format!("--from: {e}"),
            })
        })?;
        let end = end_position(settings.opts.clone(), &settings.addr).await?;
        let t0 = Instant::now();
        let mut reader = LiveReader::start(settings, None, &start).await?;
        let (mut txns, mut rows, mut last) = (0u64, 0u64, t0);
        while !reached(reader.resume_point(), &end) {
            // The end may lie after events that close no transaction (a rotation, a
            // restart): nothing for 3 s means everything was read.
            let Ok(batch) = tokio::time::timeout(std::time::Duration::from_secs(3), reader.next()).await else {
                break;
            };
            for tx in batch? {
                rows += tx.changes.len() as u64;
                txns += tx.last as u64;
            }
            last = Instant::now();
        }
        let secs = (last - t0).as_secs_f64();
        Ok::<_, Error>(serde_json::json!({
            "transactions": txns,
            "rows": rows,
            "seconds": secs,
            "rows_per_second": rows as f64 / secs,
            "end": end.0.to_string(),
        }))
    }
    .await;
    match r {
        Ok(v) => {
            println!("{v}");
            0
        }
        Err(e) => super::fail(e),
    }
}
