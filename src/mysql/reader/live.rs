//! The live reader: connects to the zone's server as a replica and yields committed
//! transactions, reconnecting by itself.
//!
//! # Resumption
//! The reader keeps `resume`, the checkpoint after the last transaction it has handed
//! on. On a transient error (network, server restart, no heartbeat for three periods)
//! it drops the connection and the partly read transaction, reconnects with backoff and
//! asks the server for the stream from `resume`, by GTID when the server logs GTIDs
//! (MariaDB `@slave_connect_state`, MySQL `COM_BINLOG_DUMP_GTID`) and by file/offset
//! otherwise. Fragments of a large transaction that were already handed on before the
//! break are recognised (same GTID or start offset, same fragment number) and not
//! handed on again. A purged binlog (server error 1236) is a definite error: the reader
//! stops and says so; it never jumps ahead.
//!
//! # MariaDB specifics
//! `@mariadb_slave_capability=4` makes the server send its native GTID, annotate and
//! checkpoint events (without it MariaDB rewrites them into MySQL-compatible dummies).

use super::assembler::{Assembler, EventPos, Limits};
use crate::error::Error;
use crate::model::Transaction;
use crate::position::{Checkpoint, FilePos, Gtid, GtidSet, GtidState, MariaGtidPos};
use futures_util::StreamExt;
use mysql_async::binlog::events::Event;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, Opts};
use std::time::{Duration, SystemTime};

/// Where to start when there is no saved checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartSpec {
    /// The server's current position.
    Now,
    /// The oldest binlog still on the server.
    Beginning,
    /// A GTID set (MySQL) or GTID position (MariaDB), as text.
    Gtid(String),
    File(FilePos),
}

impl StartSpec {
    /// `now` | `beginning` | `gtid:<text>` | `file:<name>:<offset>`.
    pub fn parse(s: &str) -> Result<StartSpec, String> {
        match s {
            "now" => Ok(StartSpec::Now),
            "beginning" => Ok(StartSpec::Beginning),
            _ => {
                if let Some(g) = s.strip_prefix("gtid:") {
                    let ok = g.parse::<MariaGtidPos>().is_ok() || g.parse::<GtidSet>().is_ok();
                    if !ok {
                        return Err(format!("{g:?} is neither a MariaDB GTID position nor a MySQL GTID set"));
                    }
                    Ok(StartSpec::Gtid(g.to_string()))
                } else if let Some(f) = s.strip_prefix("file:") {
                    f.parse().map(StartSpec::File).map_err(|e| e.to_string())
                } else {
                    Err(format!(
                        "{s:?}: expected now, beginning, gtid:<set> or file:<name>:<offset>"
                    ))
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Mysql,
    Mariadb,
}

/// Facts about the source server.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub flavor: Flavor,
    pub version: String,
    pub server_id: u32,
    /// MySQL `@@server_uuid`; empty on MariaDB.
    pub server_uuid: String,
    /// MySQL `gtid_mode=ON`, or MariaDB (which always logs GTIDs).
    pub gtids: bool,
}

pub async fn server_info(conn: &mut Conn) -> Result<ServerInfo, mysql_async::Error> {
    let (version, server_id): (String, u32) = conn
        .query_first("SELECT @@version, @@server_id")
        .await?
        .unwrap_or_default();
    if version.to_ascii_lowercase().contains("mariadb") {
        return Ok(ServerInfo {
            flavor: Flavor::Mariadb,
            version,
            server_id,
            server_uuid: String::new(),
            gtids: true,
        });
    }
    let (uuid, mode): (String, String) = conn
        .query_first("SELECT @@server_uuid, @@gtid_mode")
        .await?
        .unwrap_or_default();
    Ok(ServerInfo {
        flavor: Flavor::Mysql,
        version,
        server_id,
        server_uuid: uuid,
        gtids: mode.eq_ignore_ascii_case("ON"),
    })
}

/// The server's current binlog file/offset (SHOW MASTER STATUS, or SHOW BINARY LOG STATUS on MySQL 8.4+).
pub async fn master_status(conn: &mut Conn) -> Result<Option<FilePos>, mysql_async::Error> {
    let row: Option<mysql_async::Row> = match conn.query_first("SHOW MASTER STATUS").await {
        Ok(r) => r,
        Err(mysql_async::Error::Server(_)) => conn.query_first("SHOW BINARY LOG STATUS").await?,
        Err(e) => return Err(e),
    };
    Ok(row.and_then(|r| {
        let file: Option<String> = r.get(0);
        let pos: Option<u64> = r.get(1);
        file.zip(pos).map(|(f, p)| FilePos::new(f, p))
    }))
}

/// Turns a start spec into a concrete checkpoint on this server.
pub async fn resolve_start(
    conn: &mut Conn,
    info: &ServerInfo,
    spec: &StartSpec,
) -> Result<Checkpoint, mysql_async::Error> {
    Ok(match spec {
        StartSpec::Now => {
            let file = master_status(conn).await?.unwrap_or_else(|| FilePos::new("", 4));
            let gtid = match info.flavor {
                Flavor::Mariadb => {
                    let p: String = conn.query_first("SELECT @@gtid_binlog_pos").await?.unwrap_or_default();
                    p.parse::<MariaGtidPos>().ok().map(GtidState::Mariadb)
                }
                Flavor::Mysql if info.gtids => {
                    let s: String = conn.query_first("SELECT @@gtid_executed").await?.unwrap_or_default();
                    s.parse::<GtidSet>().ok().map(GtidState::Mysql)
                }
                Flavor::Mysql => None,
            };
            Checkpoint { file, gtid }
        }
        StartSpec::Beginning => {
            let rows: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await?;
            let first: Option<String> = rows.first().and_then(|r| r.get(0));
            Checkpoint {
                file: FilePos::new(first.unwrap_or_default(), 4),
                gtid: None,
            }
        }
        StartSpec::Gtid(text) => Checkpoint {
            file: FilePos::new("", 4),
            gtid: match info.flavor {
                Flavor::Mariadb => text.parse().ok().map(GtidState::Mariadb),
                Flavor::Mysql => text.parse().ok().map(GtidState::Mysql),
            },
        },
        StartSpec::File(f) => Checkpoint {
            file: f.clone(),
            gtid: None,
        },
    })
}

/// Settings of a live reader.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    pub zone: String,
    pub addr: String,
    pub opts: Opts,
    /// Server id presented to the source as a replica.
    pub replica_server_id: u32,
    pub limits: Limits,
    pub heartbeat: Duration,
    pub max_backoff: Duration,
}

/// Identity of a transaction group, to recognise it when it is read again.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GroupKey {
    Gtid(Gtid),
    At(String, u64),
}

fn group_key(tx: &Transaction) -> GroupKey {
    match &tx.gtid {
        Some(g) => GroupKey::Gtid(g.clone()),
        None => GroupKey::At(tx.file.to_string(), tx.start_pos),
    }
}

/// The live reader. See the module doc.
pub struct LiveReader {
    settings: LiveSettings,
    info: ServerInfo,
    resume: Checkpoint,
    asm: Assembler,
    stream: Option<BinlogStream>,
    /// Fragments of the open group already handed on: (group, count).
    handed_on: Option<(GroupKey, u32)>,
    /// After a reconnect: fragments of this group to drop because they were handed on.
    skip: Option<(GroupKey, u32)>,
    /// Reconnects so far (for logs and metrics).
    pub reconnects: u64,
    metrics: crate::telemetry::metrics::ReaderMetrics,
    /// The server writes event checksums (`binlog_checksum` is not NONE).
    checksums: bool,
    /// A FORMAT_DESCRIPTION event has arrived on the current connection.
    seen_fde: bool,
    /// The journal's reader leaves rows it does not need undecoded.
    filter: Option<super::assembler::JournalFilter>,
}

const FDE: u8 = mysql_common::binlog::consts::EventType::FORMAT_DESCRIPTION_EVENT as u8;
const ROTATE: u8 = mysql_common::binlog::consts::EventType::ROTATE_EVENT as u8;

impl LiveReader {
    /// Connects to learn about the server and resolve the start position, retrying
    /// transient errors (a server that is restarting) with backoff.
    pub async fn start(
        settings: LiveSettings,
        saved: Option<Checkpoint>,
        spec: &StartSpec,
    ) -> Result<LiveReader, Error> {
        let addr = settings.addr.clone();
        let mut backoff = Duration::from_millis(100);
        let (info, resume) = loop {
            match Self::probe(&settings, saved.as_ref(), spec).await {
                Ok(r) => break r,
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot reach the source; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(settings.max_backoff);
                }
                Err(e) => return Err(e),
            }
        };
        tracing::info!(server = %addr, version = %info.version, server_id = info.server_id, from = %resume, "binlog reader starting");
        let asm = Assembler::new(&settings.zone, &resume.file.file, settings.limits, resume.gtid.clone());
        let metrics = crate::telemetry::metrics::ReaderMetrics::new(&settings.zone);
        Ok(LiveReader {
            metrics,
            settings,
            info,
            resume,
            asm,
            stream: None,
            handed_on: None,
            skip: None,
            reconnects: 0,
            checksums: true,
            seen_fde: false,
            filter: None,
        })
    }

    /// Makes this the journal's reader: rows it does not need stay undecoded
    /// (`assembler`, "What the journal's reader leaves undecoded").
    pub fn set_journal_filter(&mut self, f: super::assembler::JournalFilter) {
        self.asm.set_journal_filter(Some(f.clone()));
        self.filter = Some(f);
    }

    async fn probe(
        settings: &LiveSettings,
        saved: Option<&Checkpoint>,
        spec: &StartSpec,
    ) -> Result<(ServerInfo, Checkpoint), Error> {
        let m = |e| crate::mysql::error::classify(&settings.addr, "the start position", e);
        let mut conn = Conn::new(settings.opts.clone()).await.map_err(m)?;
        let info = server_info(&mut conn).await.map_err(m)?;
        let resume = match saved {
            Some(c) => c.clone(),
            None => resolve_start(&mut conn, &info, spec).await.map_err(m)?,
        };
        let _ = conn.disconnect().await;
        Ok((info, resume))
    }

    pub fn server_info(&self) -> &ServerInfo {
        &self.info
    }

    /// The checkpoint after the last complete transaction handed on.
    pub fn resume_point(&self) -> &Checkpoint {
        &self.resume
    }

    async fn connect(&mut self) -> Result<BinlogStream, Error> {
        let addr = self.settings.addr.clone();
        let wanted = self.resume.to_string();
        let m = |e| crate::mysql::error::classify(&addr, &wanted, e);
        let mut conn = Conn::new(self.settings.opts.clone()).await.map_err(m)?;
        let info = server_info(&mut conn).await.map_err(m)?;
        if info.server_id != self.info.server_id || info.server_uuid != self.info.server_uuid {
            return Err(Error::Server {
                addr: addr.clone(),
                what: format!(
                    "the server changed identity (server_id {} -> {}, uuid {:?} -> {:?}); positions of the old server do not apply. Point the reader at the zone's primary and restart with a position valid there",
                    self.info.server_id, info.server_id, self.info.server_uuid, info.server_uuid
                ),
            });
        }
        let checksum: Option<String> = conn.query_first("SELECT @@global.binlog_checksum").await.map_err(m)?;
        self.checksums = !checksum.unwrap_or_default().eq_ignore_ascii_case("NONE");
        self.seen_fde = false;
        let period_ns = self.settings.heartbeat.as_nanos().max(1_000_000);
        conn.query_drop(format!("SET @master_heartbeat_period = {period_ns}"))
            .await
            .map_err(m)?;
        let sid = self.settings.replica_server_id;
        let file = self.resume.file.file.clone();
        let use_gtid = self.info.gtids
            && match &self.resume.gtid {
                Some(GtidState::Mariadb(p)) => !p.is_empty(),
                Some(GtidState::Mysql(s)) => !s.is_empty(),
                None => false,
            };
        let request = match (&self.info.flavor, &self.resume.gtid) {
            (Flavor::Mariadb, Some(GtidState::Mariadb(pos))) if use_gtid || file.is_empty() => {
                conn.query_drop("SET @mariadb_slave_capability = 4").await.map_err(m)?;
                conn.query_drop(format!("SET @slave_connect_state = '{pos}'"))
                    .await
                    .map_err(m)?;
                conn.query_drop("SET @slave_gtid_strict_mode = 1").await.map_err(m)?;
                conn.query_drop("SET @slave_gtid_ignore_duplicates = 0")
                    .await
                    .map_err(m)?;
                BinlogStreamRequest::new(sid).with_pos(4u64)
            }
            (Flavor::Mysql, Some(GtidState::Mysql(set))) if use_gtid || file.is_empty() => {
                let sids: Vec<mysql_async::Sid<'static>> = set
                    .iter()
                    .map(|(uuid, tag, ivs)| {
                        let mut s = mysql_async::Sid::new(*uuid.as_bytes());
                        if !tag.is_empty() {
                            if let Ok(t) = mysql_common::packets::Tag::new(tag.to_string()) {
                                s = s.with_tag(t);
                            }
                        }
                        // wire intervals are half-open
                        s.with_intervals(
                            ivs.iter()
                                .map(|&(a, b)| mysql_async::GnoInterval::new(a, b + 1))
                                .collect(),
                        )
                    })
                    .collect();
                BinlogStreamRequest::new(sid)
                    .with_gtid()
                    .with_gtid_set(sids)
                    .with_pos(4u64)
            }
            _ => {
                if self.info.flavor == Flavor::Mariadb {
                    conn.query_drop("SET @mariadb_slave_capability = 4").await.map_err(m)?;
                }
                BinlogStreamRequest::new(sid)
                    .with_filename(file.as_bytes())
                    .with_pos(self.resume.file.pos)
            }
        };
        let stream = conn.get_binlog_stream(request).await.map_err(m)?;
        self.asm = Assembler::new(
            &self.settings.zone,
            &file,
            self.settings.limits,
            self.resume.gtid.clone(),
        );
        self.asm.set_journal_filter(self.filter.clone());
        Ok(stream)
    }

    /// Waits for the next fragments. Transient errors are handled inside (reconnect
    /// with backoff); a returned error is definite.
    pub async fn next(&mut self) -> Result<Vec<Transaction>, Error> {
        let mut backoff = Duration::from_millis(100);
        let idle_limit = self.settings.heartbeat * 3 + Duration::from_secs(2);
        let mut out = Vec::new();
        loop {
            let stream = match &mut self.stream {
                Some(s) => s,
                None => match self.connect().await {
                    Ok(s) => {
                        backoff = Duration::from_millis(100);
                        self.stream.insert(s)
                    }
                    Err(e) if e.is_transient() => {
                        tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot connect to the source; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(self.settings.max_backoff);
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            let item = tokio::time::timeout(idle_limit, stream.next()).await;
            let ev: Event = match item {
                Ok(Some(Ok(ev))) => ev,
                Ok(Some(Err(e))) => {
                    let err = crate::mysql::error::classify(&self.settings.addr, &self.resume.to_string(), e);
                    if !err.is_transient() {
                        return Err(err);
                    }
                    self.lose_connection(&err.to_string())?;
                    continue;
                }
                Ok(None) => {
                    self.lose_connection("the server closed the binlog stream")?;
                    continue;
                }
                Err(_) => {
                    self.lose_connection(&format!("no event or heartbeat for {} s", idle_limit.as_secs()))?;
                    continue;
                }
            };
            let raw_type = ev.header().event_type_raw();
            if raw_type == FDE {
                self.seen_fde = true;
            } else if raw_type == ROTATE && !self.seen_fde {
                // The rotate that opens a stream comes before the format description, so
                // mysql_common cannot know whether it carries a checksum; strip it here.
                let d = ev.data();
                let end = if self.checksums {
                    d.len().saturating_sub(4)
                } else {
                    d.len()
                };
                if end > 8 {
                    self.asm.set_file(&String::from_utf8_lossy(&d[8..end]));
                }
                continue;
            }
            let at = EventPos {
                end: ev.header().log_pos() as u64,
                arrival: Some(SystemTime::now()),
            };
            self.metrics.bytes.increment(ev.header().event_size() as u64);
            self.asm.push(&ev, at, &mut out)?;
            if self.asm.held_rows() > self.settings.limits.max_held_rows {
                return Err(Error::Transient {
                    addr: self.settings.addr.clone(),
                    what: format!(
                        "a prepared XA transaction (xid {}) and the transactions behind it, waiting for its XA COMMIT or XA ROLLBACK, hold {} rows ([reader] max_xa_held_rows): if it is still prepared on this server (`XA RECOVER` shows it), commit or roll it back there; if it is one XA transaction that large, raise max_xa_held_rows. The reader reads again from before it",
                        self.asm.held_xid().unwrap_or("?"),
                        self.asm.held_rows()
                    ),
                });
            }
            if out.is_empty() {
                continue;
            }
            out.retain(|tx| self.keep(tx));
            if !out.is_empty() {
                return Ok(out);
            }
        }
    }

    /// Bookkeeping for a fragment about to be handed on; false drops a fragment that
    /// was handed on before a reconnect.
    fn keep(&mut self, tx: &Transaction) -> bool {
        let key = group_key(tx);
        if let Some((k, n)) = &self.skip {
            if *k == key && tx.fragment < *n {
                return false;
            }
            self.skip = None;
        }
        self.metrics.rows.increment(tx.changes.len() as u64);
        if tx.last {
            self.metrics.transactions.increment(1);
            self.handed_on = None;
            if let Some(cp) = &tx.checkpoint {
                self.resume = cp.clone();
                self.metrics.binlog_offset.set(cp.file.pos as f64);
                self.metrics
                    .binlog_file
                    .set(crate::telemetry::metrics::binlog_file_number(&cp.file.file));
            }
        } else {
            self.handed_on = Some((key, tx.fragment + 1));
        }
        true
    }

    fn lose_connection(&mut self, why: &str) -> Result<(), Error> {
        // The journal's reader skips rows by what it knows when it reads them, so a
        // group read again may split into other fragments than the ones handed on:
        // inside such a group a lost stream ends the session (the journal resumes from
        // its committed position) instead of dropping fragments by number.
        if self.filter.is_some() && self.handed_on.is_some() {
            return Err(Error::Transient {
                addr: self.settings.addr.clone(),
                what: format!("{why}, inside a transaction the journal has partly read: reading again from its committed position"),
            });
        }
        self.reconnects += 1;
        tracing::warn!(reason = why, resume_from = %self.resume, "binlog stream lost; reconnecting");
        self.stream = None;
        self.asm.abandon_open_group();
        self.skip = self.handed_on.take();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_specs() {
        assert_eq!(StartSpec::parse("now").unwrap(), StartSpec::Now);
        assert_eq!(
            StartSpec::parse("gtid:1-1-5,2-2-9").unwrap(),
            StartSpec::Gtid("1-1-5,2-2-9".into())
        );
        assert_eq!(
            StartSpec::parse("file:bin.000002:154").unwrap(),
            StartSpec::File(FilePos::new("bin.000002", 154))
        );
        assert!(StartSpec::parse("gtid:zzz").is_err());
        assert!(StartSpec::parse("file:bin").is_err());
        assert!(StartSpec::parse("later").is_err());
    }
}
