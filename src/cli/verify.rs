//! `drc verify --config zone.toml [--zones a,b] [--tables db.t,...]`: do the zones hold
//! the same rows? Chunk checksums computed inside each server, differing chunks
//! narrowed to keys, every differing key read again after replication caught up both
//! ways (`src/mysql/verify/`). Exit 0: the zones agree; 3: keys differ (or keep
//! changing, or a table could not be compared); 1: an error.

use super::ops::cfg_err;
use drc::config::Config;
use drc::mysql::applier::table::{is_shadow_table, TablePatterns};
use drc::mysql::verify::{text, verify_table, KeyDiff, Options, Progress, Side, TableReport};
use indicatif::{ProgressBar, ProgressStyle};
use mysql_async::prelude::Queryable;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// A zone daemon's config file: its [mysql], its [[peers]] and [replication].
    #[arg(long)]
    config: PathBuf,
    /// The two zones to compare, `a,b` (default: this zone and each peer in turn).
    #[arg(long, value_delimiter = ',')]
    zones: Vec<String>,
    /// Only these tables (`db.table`, * and ? wildcards; default: every replicated table).
    #[arg(long, value_delimiter = ',')]
    tables: Vec<String>,
    /// Target time of one chunk's checksum, ms (chunk sizes adapt to it).
    #[arg(long, default_value_t = 500)]
    chunk_ms: u64,
    /// Re-checks of a differing key at most (each after replication caught up both ways).
    #[arg(long, default_value_t = 10)]
    rounds: u32,
    /// How long to wait for a zone to apply the other's sync heartbeat, seconds.
    #[arg(long, default_value_t = 60)]
    settle_secs: u64,
    /// Write the differing keys to this file, one JSON object per line.
    #[arg(long)]
    export: Option<PathBuf>,
    /// Output: text or json.
    #[arg(long, default_value = "text")]
    format: String,
}

#[derive(clap::Args)]
pub struct SeedArgs {
    /// This zone's daemon config file (the zone seeded; its daemon must have started replicating from --from).
    #[arg(long)]
    config: PathBuf,
    /// The zone to copy from (a [[peers]] zone).
    #[arg(long)]
    from: String,
    /// Only these tables (`db.table`, * and ? wildcards; default: every replicated table).
    #[arg(long, value_delimiter = ',')]
    tables: Vec<String>,
    /// Rows per chunk (one transaction here each).
    #[arg(long, default_value_t = 1000)]
    chunk_rows: usize,
    /// Wait while this zone's replication lag from --from exceeds this, ms (0: never).
    #[arg(long, default_value_t = 5000)]
    max_lag_ms: u64,
    /// Copy every table again from its start (default: resume after the last chunk copied).
    #[arg(long)]
    restart: bool,
    /// Output: text or json.
    #[arg(long, default_value = "text")]
    format: String,
}

#[derive(clap::Args)]
pub struct RepairArgs {
    #[command(flatten)]
    verify: VerifyArgs,
    /// Write the fixes (default: a dry run that prints the statements).
    #[arg(long)]
    apply: bool,
}

/// Progress on stderr: a bar with rate and ETA on a terminal, a line every 5 s
/// otherwise, nothing with `--format json`.
struct Shown {
    bar: Option<ProgressBar>,
    plain: bool,
    table: String,
    rows: u64,
    since: Instant,
    said: Instant,
}

impl Shown {
    fn new(json: bool) -> Shown {
        Shown {
            bar: None,
            plain: !json && !std::io::stderr().is_terminal(),
            table: String::new(),
            rows: 0,
            since: Instant::now(),
            said: Instant::now(),
        }
    }

    fn done(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Progress for Shown {
    fn table(&mut self, table: &str, estimate: u64) {
        self.done();
        self.table = table.to_string();
        self.rows = 0;
        self.since = Instant::now();
        if !self.plain && std::io::stderr().is_terminal() {
            let b = ProgressBar::new(estimate.max(1));
            b.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {pos}/~{len} rows, {per_sec}, ETA {eta}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            b.set_message(table.to_string());
            self.bar = Some(b);
        } else if self.plain {
            eprintln!("verify: {table}: about {estimate} rows");
        }
    }

    fn rows(&mut self, rows: u64) {
        self.rows += rows;
        if let Some(b) = &self.bar {
            if self.rows > b.length().unwrap_or(0) {
                b.set_length(self.rows);
            }
            b.set_position(self.rows);
        } else if self.plain && self.said.elapsed() >= Duration::from_secs(5) {
            self.said = Instant::now();
            let rate = self.rows as f64 / self.since.elapsed().as_secs_f64().max(0.001);
            eprintln!("verify: {}: {} rows, {rate:.0} rows/s", self.table, self.rows);
        }
    }

    fn not_drained(&mut self, from: &str, to: &str) {
        self.say(&format!("verify: zone {to} did not apply zone {from}'s sync heartbeat in time (is its daemon running?): differences are judged without waiting for it"));
    }
}

impl Shown {
    fn say(&self, line: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

impl drc::mysql::verify::seed::Progress for Shown {
    fn table(&mut self, table: &str, estimate: u64, resumed: u64) {
        Progress::table(self, table, estimate.max(resumed));
        if resumed > 0 {
            self.say(&format!("seed: {table}: resuming after {resumed} rows copied before"));
            Progress::rows(self, resumed);
        }
    }

    fn rows(&mut self, rows: u64) {
        Progress::rows(self, rows);
    }

    fn throttled(&mut self, lag_ms: u64) {
        self.say(&format!(
            "seed: this zone's replication lag is {lag_ms} ms: waiting for it to catch up before the next chunk"
        ));
    }
}

/// Connects to `zone`'s server (this zone's or a peer's, from the config) for
/// comparing or copying; `channel`: the config's replication channel.
async fn connect(cfg: &Config, channel: &str, zone: &str) -> Result<Side, drc::error::Error> {
    let m = cfg.zone_mysql(zone).map_err(|e| cfg_err(cfg, e))?;
    let opts = m.opts(&cfg.base_dir).map_err(|e| cfg_err(cfg, e))?;
    let addr = format!("{}:{}", m.host, m.port);
    let key = drc::mysql::applier::apply::channel_key(channel, zone);
    Side::connect(zone, &addr, opts, key)
        .await
        .map_err(|e| drc::mysql::error::classify(&addr, "connecting", e))
}

/// The replicated tables of either zone (`--tables` narrows them).
async fn tables(
    cfg: &Config,
    sides: [&mut Side; 2],
    only: &TablePatterns,
) -> Result<Vec<(String, String)>, drc::error::Error> {
    let r = cfg
        .replication
        .as_ref()
        .ok_or_else(|| cfg_err(cfg, "no [replication] section: nothing replicates".into()))?;
    let (listed, excluded) = (TablePatterns::new(&r.tables), TablePatterns::new(&r.exclude_tables));
    let mut out = std::collections::BTreeSet::new();
    for side in sides {
        for db in &r.databases {
            let names: Vec<String> = side
                .conn
                .exec(
                    "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'",
                    (db,),
                )
                .await
                .map_err(|e| drc::mysql::error::classify(&side.addr, "listing tables", e))?;
            for t in names {
                let wanted = (listed.is_empty() || listed.matches(db, &t))
                    && !excluded.matches(db, &t)
                    && !(r.skip_shadow_tables && is_shadow_table(&t))
                    && (only.is_empty() || only.matches(db, &t));
                if wanted {
                    out.insert((db.clone(), t));
                }
            }
        }
    }
    Ok(out.into_iter().collect())
}

fn key_json(pk: &[String], d: &KeyDiff) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (c, v) in pk.iter().zip(&d.key) {
        let j = match v {
            mysql_async::Value::Int(i) => serde_json::json!(i),
            mysql_async::Value::UInt(u) => serde_json::json!(u),
            mysql_async::Value::Bytes(b) => serde_json::json!(String::from_utf8_lossy(b)),
            other => serde_json::json!(other.as_sql(false)),
        };
        m.insert(c.clone(), j);
    }
    serde_json::Value::Object(m)
}

fn report_json(r: &TableReport, a: &str, b: &str) -> serde_json::Value {
    let keys = |v: &[KeyDiff]| -> Vec<serde_json::Value> {
        v.iter()
            .map(|d| serde_json::json!({"key": key_json(&r.pk, d), "kind": d.kind(a, b)}))
            .collect()
    };
    serde_json::json!({
        "table": r.table,
        "rows": r.rows,
        "chunks": r.chunks,
        "chunks_differing": r.chunks_differing,
        "differences": keys(&r.differences),
        "unsettled": keys(&r.unsettled),
        "not_compared": r.not_compared,
    })
}

/// `drc verify`.
pub async fn run(a: VerifyArgs) -> i32 {
    compare(a, None).await
}

/// `drc repair`: verify, then settle each persisting difference with last-writer-wins
/// (`apply`: written; else printed).
pub async fn repair(a: RepairArgs) -> i32 {
    compare(a.verify, Some(a.apply)).await
}

async fn compare(a: VerifyArgs, repair: Option<bool>) -> i32 {
    let cfg = match Config::load(&a.config) {
        Ok(c) => c,
        Err(e) => return super::fail(e),
    };
    let pairs: Vec<(String, String)> = match a.zones.as_slice() {
        [] => cfg
            .peers
            .iter()
            .filter(|p| p.mysql.is_some())
            .map(|p| (cfg.zone.clone(), p.zone.clone()))
            .collect(),
        [x, y] if x != y => vec![(x.clone(), y.clone())],
        _ => return super::fail("--zones takes two different zones: --zones a,b"),
    };
    let json = a.format == "json";
    let o = Options {
        chunk_ms: a.chunk_ms.max(1),
        rounds: a.rounds.max(1),
        settle: Duration::from_secs(a.settle_secs),
    };
    let only = TablePatterns::new(&a.tables);
    let channel = cfg.replication.as_ref().map_or("", |r| r.channel.as_str()).to_string();
    let version = cfg
        .replication
        .as_ref()
        .map_or("updated_at", |r| r.version_column.as_str())
        .to_string();
    let mut export = match &a.export {
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => Some(std::io::BufWriter::new(f)),
            Err(e) => return super::fail(format!("{}: {e}", p.display())),
        },
        None => None,
    };
    let started = Instant::now();
    let (mut differing, mut unsettled, mut uncompared, mut rows) = (0usize, 0usize, 0usize, 0u64);
    let (mut repaired, mut unrepaired) = (0usize, 0usize);
    let mut out = Vec::new();
    for (za, zb) in pairs {
        let r = async {
            let mut sides = [connect(&cfg, &channel, &za).await?, connect(&cfg, &channel, &zb).await?];
            let [sa, sb] = &mut sides;
            let list = tables(&cfg, [sa, sb], &only).await?;
            let mut shown = Shown::new(json);
            let mut reports = Vec::new();
            for (db, t) in list {
                let [sa, sb] = &mut sides;
                let r = verify_table(sa, sb, &db, &t, &version, &o, &mut shown).await?;
                let fixes = match (repair, &r.definition) {
                    (Some(apply), Some(def)) if !r.differences.is_empty() => {
                        drc::mysql::verify::repair::repair_keys(&mut sides, def, &r.differences, apply).await?
                    }
                    _ => Vec::new(),
                };
                reports.push((r, fixes));
            }
            shown.done();
            Ok::<_, drc::error::Error>(reports)
        };
        let reports = match r.await {
            Ok(r) => r,
            Err(e) => return super::fail(e),
        };
        for (r, fixes) in &reports {
            if repair.is_some()
                && r.definition.as_ref().is_some_and(|d| d.version.is_none())
                && !r.differences.is_empty()
            {
                eprintln!(
                    "repair: {}: no version column `{version}`: its differences are not repaired",
                    r.table
                );
            }
            repaired += fixes.iter().filter(|f| f.applied).count();
            unrepaired += fixes.iter().filter(|f| !f.applied).count();
            differing += r.differences.len();
            unsettled += r.unsettled.len();
            uncompared += usize::from(r.not_compared.is_some());
            rows += r.rows;
            if let Some(f) = export.as_mut() {
                for d in r.differences.iter().chain(&r.unsettled) {
                    let line = serde_json::json!({"zones": [&za, &zb], "table": r.table, "key": key_json(&r.pk, d), "kind": d.kind(&za, &zb)});
                    if let Err(e) = writeln!(f, "{line}") {
                        return super::fail(format!("writing the export: {e}"));
                    }
                }
            }
            if json {
                out.push(serde_json::json!({"zones": [&za, &zb], "report": report_json(r, &za, &zb), "fixes": fixes}));
            } else {
                print_text(r, &za, &zb);
                for f in fixes {
                    let how = match (f.applied, &f.note) {
                        (true, _) => "repaired".to_string(),
                        (false, Some(n)) => format!("not repaired: {n}"),
                        (false, None) => "dry run".to_string(),
                    };
                    println!(
                        "  zone {}: {} (zone {}'s write wins; {how}): {}",
                        f.zone, f.action, f.winner, f.statement
                    );
                }
            }
        }
    }
    if let Some(mut f) = export {
        if let Err(e) = f.flush() {
            return super::fail(format!("writing the export: {e}"));
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let agree = differing == 0 && unsettled == 0 && uncompared == 0;
    // a repair that wrote every fix leaves the zones agreeing on what differed
    let settled = match repair {
        Some(true) => unrepaired == 0 && unsettled == 0 && uncompared == 0 && repaired >= 1,
        _ => false,
    };
    if json {
        let v = serde_json::json!({
            "agree": agree, "rows": rows, "differences": differing, "unsettled": unsettled,
            "tables_not_compared": uncompared, "seconds": secs, "tables": out,
            "repaired": repaired, "not_repaired": unrepaired,
        });
        println!("{v}");
    } else {
        println!(
            "{}: {rows} rows compared in {secs:.1} s ({:.0} rows/s); {differing} keys differ, {unsettled} kept changing, {uncompared} tables not compared",
            if agree { "the zones agree" } else { "the zones DIFFER" },
            rows as f64 / secs.max(0.001)
        );
    }
    if repair.is_some() && !json {
        println!(
            "repair: {repaired} rows written, {unrepaired} {}",
            if repair == Some(true) {
                "left (see above)"
            } else {
                "to write (dry run: --apply writes them)"
            }
        );
    }
    if agree || settled {
        0
    } else {
        3
    }
}

fn print_text(r: &TableReport, a: &str, b: &str) {
    if let Some(why) = &r.not_compared {
        println!("{}: not compared: {why}", r.table);
        return;
    }
    println!(
        "{}: {} rows, {} chunks ({} differed): {} keys differ, {} kept changing",
        r.table,
        r.rows,
        r.chunks,
        r.chunks_differing,
        r.differences.len(),
        r.unsettled.len()
    );
    const SHOWN: usize = 100;
    for d in r.differences.iter().take(SHOWN) {
        println!("  differs: {} ({}) {}", text(&d.key), d.kind(a, b), key_json(&r.pk, d));
    }
    for d in r.unsettled.iter().take(SHOWN) {
        println!("  kept changing: {} {}", text(&d.key), key_json(&r.pk, d));
    }
    if r.differences.len() + r.unsettled.len() > 2 * SHOWN {
        println!("  (more: --export FILE or --format json lists them all)");
    }
}

/// `drc seed --config zone-b.toml --from a`: copies the replicated tables from zone a
/// into this zone while zone a keeps taking writes (`src/mysql/verify/seed.rs`).
pub async fn seed(a: SeedArgs) -> i32 {
    let cfg = match Config::load(&a.config) {
        Ok(c) => c,
        Err(e) => return super::fail(e),
    };
    if a.from == cfg.zone {
        return super::fail(format!(
            "--from {}: that is this config's own zone; seed copies from a peer into this zone",
            a.from
        ));
    }
    let json = a.format == "json";
    let channel = cfg.replication.as_ref().map_or("", |r| r.channel.as_str()).to_string();
    let version = cfg
        .replication
        .as_ref()
        .map_or("updated_at", |r| r.version_column.as_str())
        .to_string();
    let o = drc::mysql::verify::seed::Options {
        chunk_rows: a.chunk_rows.max(1),
        max_lag_ms: a.max_lag_ms,
        restart: a.restart,
    };
    let only = TablePatterns::new(&a.tables);
    let started = Instant::now();
    let r = async {
        let mut source = connect(&cfg, &channel, &a.from).await?;
        let mut here = connect(&cfg, &channel, &cfg.zone).await?;
        // drc's progress table (a daemon of this version creates it too)
        for s in drc::mysql::applier::apply::meta_statements() {
            if s.contains("`seed_progress`") {
                here.conn
                    .query_drop(&s)
                    .await
                    .map_err(|e| drc::mysql::error::classify(&here.addr, "creating drc.seed_progress", e))?;
            }
        }
        if !drc::mysql::verify::seed::replication_started(&mut here, &source.key).await? {
            return Err(cfg_err(
                &cfg,
                format!(
                    "zone {}'s daemon has not started replicating from zone {} yet (no position for {} in drc.applied): start `drc run --config {}` first, so that every write zone {} commits after the copy's reads reaches this zone, then run drc seed again",
                    cfg.zone, a.from, source.key, a.config.display(), a.from
                ),
            ));
        }
        let list = tables(&cfg, [&mut source, &mut here], &only).await?;
        let mut shown = Shown::new(json);
        let mut out = Vec::new();
        for (db, t) in list {
            let (ts, th) = (
                definition(&mut source, &db, &t, &version).await?,
                definition(&mut here, &db, &t, &version).await?,
            );
            let def = match (ts, th) {
                (None, _) => continue,
                (Some(_), None) => {
                    return Err(cfg_err(&cfg, format!("`{db}`.`{t}` does not exist in zone {}: create it there first (drc seed copies rows, not schemas)", cfg.zone)))
                }
                (Some(s), Some(h)) if s.columns != h.columns || s.pk != h.pk => {
                    return Err(cfg_err(&cfg, format!("`{db}`.`{t}` has other columns in zone {} ({:?}, key {:?}) than in zone {} ({:?}, key {:?}): make them the same first", cfg.zone, h.columns, h.pk, a.from, s.columns, s.pk)))
                }
                (Some(s), Some(_)) if s.pk.is_empty() => continue,
                (Some(s), Some(_)) => s,
            };
            out.push(drc::mysql::verify::seed::seed_table(&mut source, &mut here, &def, &o, &mut shown).await?);
        }
        shown.done();
        Ok::<_, drc::error::Error>(out)
    };
    let tables = match r.await {
        Ok(t) => t,
        Err(e) => return super::fail(e),
    };
    let secs = started.elapsed().as_secs_f64();
    let read: u64 = tables.iter().map(|t| t.read).sum();
    if json {
        println!(
            "{}",
            serde_json::json!({"from": a.from, "to": cfg.zone, "tables": tables, "rows": read, "seconds": secs, "rows_per_sec": read as f64 / secs.max(0.001)})
        );
    } else {
        for t in &tables {
            println!(
                "{}: {} rows copied ({} newer than the row here or new, {} deleted here since: not copied), resumed after {}, {:.1} s",
                t.table, t.read, t.written, t.deleted_since, t.resumed_after, t.seconds
            );
        }
        println!(
            "seeded zone {} from zone {}: {read} rows in {secs:.1} s ({:.0} rows/s); check with `drc verify --config {} --zones {},{}`",
            cfg.zone,
            a.from,
            read as f64 / secs.max(0.001),
            a.config.display(),
            a.from,
            cfg.zone
        );
    }
    0
}

async fn definition(
    side: &mut Side,
    db: &str,
    t: &str,
    version: &str,
) -> Result<Option<drc::mysql::applier::table::LocalTable>, drc::error::Error> {
    drc::mysql::applier::table::LocalTable::load(&mut side.conn, db, t, version)
        .await
        .map_err(|e| drc::mysql::error::classify(&side.addr, "reading the table's definition", e))
}
