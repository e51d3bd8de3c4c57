//! Every metric drc exports, in one place. docs/METRICS.md lists the same names (a
//! test keeps the two in step). Metrics go through the `metrics` crate; the admin
//! endpoint renders them in the Prometheus text format (`GET /metrics`).
//!
//! Labels: `from_zone`/`to_zone` for a replication direction (the zone names of the
//! configs, channel excluded), `zone` for the daemon's own zone, `kind` where stated.
//! Counters count since the daemon started (Prometheus handles resets).

use metrics::{describe_counter, describe_gauge, describe_histogram, Counter, Gauge, Histogram, Unit};

/// Gauge, seconds: end-to-end lag per direction, origin write → applied here, from the
/// last heartbeat or transaction applied; grows while nothing arrives (stall).
pub const LAG_SECONDS: &str = "drc_replication_lag_seconds";
/// Histogram, seconds: every lag sample (each heartbeat and each applied transaction).
pub const LAG_HISTOGRAM: &str = "drc_replication_lag_histogram_seconds";
/// Gauge, seconds: estimated clock offset of `to_zone` minus `from_zone`, from the
/// heartbeats of both directions ((lag a→b − lag b→a) / 2).
pub const CLOCK_SKEW_SECONDS: &str = "drc_clock_skew_seconds";
/// Counter: heartbeats this daemon wrote into its own zone (`zone`).
pub const HEARTBEATS_WRITTEN: &str = "drc_heartbeats_written_total";
/// Counter: transactions the binlog reader completed (`zone` = the server read).
pub const TXNS_READ: &str = "drc_reader_transactions_total";
/// Counter: row changes the binlog reader decoded (`zone`).
pub const ROWS_READ: &str = "drc_reader_rows_total";
/// Counter: binlog bytes received by the reader (`zone`).
pub const BYTES_READ: &str = "drc_reader_bytes_total";
/// Counter: transactions shipped to peers (`from_zone`, `transport`): published to
/// Kafka and acknowledged, or handed to the applier by the direct transport.
pub const TXNS_SHIPPED: &str = "drc_shipped_transactions_total";
/// Counter: message bytes published to Kafka (`from_zone`).
pub const BYTES_SHIPPED: &str = "drc_shipped_bytes_total";
/// Counter: origin transactions committed here by the applier (`from_zone`, `to_zone`).
pub const TXNS_APPLIED: &str = "drc_applied_transactions_total";
/// Counter: rows written by the applier (`from_zone`, `to_zone`).
pub const ROWS_APPLIED: &str = "drc_applied_rows_total";
/// Of those, rows written by multi-row statements (the applier's batch path).
pub const ROWS_BATCHED: &str = "drc_applied_rows_batched_total";
/// Of those, rows written with `LOAD DATA LOCAL` (runs of new rows).
pub const ROWS_LOADED: &str = "drc_applied_rows_loaded_total";
/// Target-database commits of the applier; fewer than applied transactions while
/// group commit combines transactions of a backlog.
pub const APPLIER_COMMITS: &str = "drc_applier_commits_total";
/// Counter: conflicts logged in `drc.conflicts` (`from_zone`, `to_zone`, `kind` =
/// local_row_newer, equal_version, update_of_deleted, unique_key, id_out_of_range, ...).
pub const CONFLICTS: &str = "drc_conflicts_total";
/// Counter: transactions not applied or not shipped because they were written by a
/// drc applier (loop suppression) (`from_zone`, `to_zone`).
pub const LOOPS_SUPPRESSED: &str = "drc_loops_suppressed_total";
/// Counter: rows outside their origin zone's ID range (`from_zone`, `to_zone`).
pub const ID_RANGE_VIOLATIONS: &str = "drc_id_range_violations_total";
/// Counter: transactions received again and skipped (already applied) (`from_zone`, `to_zone`).
pub const DUPLICATES_SKIPPED: &str = "drc_duplicates_skipped_total";
/// Gauge: origin commit time of the last applied transaction, seconds since the epoch
/// (`from_zone`, `to_zone`).
pub const APPLIED_COMMIT_TS: &str = "drc_applied_commit_timestamp_seconds";
/// Gauge: Kafka offset of the last applied message (`from_zone`, `to_zone`).
pub const APPLIED_KAFKA_OFFSET: &str = "drc_applied_kafka_offset";
/// Gauge: binlog offset of the reader's last completed transaction (`zone`).
pub const READER_BINLOG_OFFSET: &str = "drc_reader_binlog_offset_bytes";
/// Gauge: numeric suffix of the reader's current binlog file (`zone`).
pub const READER_BINLOG_FILE: &str = "drc_reader_binlog_file_number";
/// Gauge: fragments published to Kafka and not yet acknowledged (`zone`).
pub const KAFKA_UNACKED: &str = "drc_kafka_unacknowledged_fragments";
/// Gauge: 1 while a direction is paused by `POST /pause` or `drc pause` (`from_zone`, `to_zone`).
pub const PAUSED: &str = "drc_direction_paused";
/// Counter: sessions restarted after a transient error (`component` = the session,
/// e.g. `replication from zone a`).
pub const RECONNECTS: &str = "drc_reconnects_total";
/// Counter: errors by `kind` (`transient`, `definite`).
pub const ERRORS: &str = "drc_errors_total";
/// Counter: what the journal did in its own zone (`zone`, `kind` = `tombstone`: a
/// local delete's tombstone recorded; `raised`: a local write raised above the row or
/// tombstone it replaced; `undone`: an applier insert that a local delete beats, deleted
/// again).
pub const JOURNAL_ACTIONS: &str = "drc_journal_actions_total";
/// Gauge: origin commit time of the last local transaction the journal committed,
/// seconds since the epoch (`zone`).
pub const JOURNAL_COMMIT_TS: &str = "drc_journal_commit_timestamp_seconds";
/// Rows events of applier transactions the journal's reader left undecoded (the
/// journal did not need them: no local delete since, nothing pending).
pub const JOURNAL_SKIPPED_EVENTS: &str = "drc_journal_skipped_events_total";

/// Every name above, for the docs check.
/// Gauge: seconds a direction has waited for a column this zone's table lacks (a row
/// from `origin` carries a value for it), by table and column; 0 once it exists.
pub const SCHEMA_WAIT: &str = "drc_schema_wait_seconds";
/// Rows parked because their table waits for a schema change here (`drc.parked`).
pub const PARKED_ROWS: &str = "drc_parked_rows_total";

/// Counter: row changes of a table this zone skips, by origin, table and reason
/// (`no_primary_key`, `no_version_column`, `missing_here`).
pub const SKIPPED_ROWS: &str = "drc_skipped_rows_total";

/// Counter: rows of drc's growing tables dropped by retention, by table.
pub const RETENTION_PURGED: &str = "drc_retention_purged_rows_total";
/// Gauge: rows of `drc.tombstones` / `drc.conflicts` (InnoDB's estimate), by table.
pub const DRC_TABLE_ROWS: &str = "drc_table_rows";

/// Counter: DDL statements of a database with a home zone, by action (`applied`,
/// `already_applied`, `skipped_destructive`, `misplaced`).
pub const DDL: &str = "drc_ddl_total";

/// Gauge: seconds between a local write's DATETIME version and its commit time, by
/// table, when 15 min or more (hours off: a session in another time zone than UTC).
pub const VERSION_CLOCK_OFFSET: &str = "drc_version_clock_offset_seconds";
/// Counter: reports of such an offset (at most one per table every 30 s).
pub const VERSION_CLOCK_OFFSET_REPORTS: &str = "drc_version_clock_offset_reports_total";

/// Redis sync (by from_zone): origin commands applied here.
pub const REDIS_COMMANDS: &str = "drc_redis_commands_total";
/// Redis sync: bytes of the origin's command stream read (every command, synced or not).
pub const REDIS_BYTES: &str = "drc_redis_stream_bytes_total";
/// Redis sync: origin transactions applied here (a MULTI/EXEC, a script's effects, one command).
pub const REDIS_TXNS: &str = "drc_redis_transactions_total";
/// Redis sync: lag from the origin's heartbeat key to its application here, seconds.
pub const REDIS_LAG_SECONDS: &str = "drc_redis_lag_seconds";
/// Redis sync: full synchronisations (snapshot + stream), by reason (first_start, backlog_lost, interrupted).
pub const REDIS_FULL_SYNCS: &str = "drc_redis_full_syncs_total";
/// Redis sync: keys a full sync replaced here.
pub const REDIS_SNAPSHOT_KEYS: &str = "drc_redis_snapshot_keys_total";
/// Redis sync: origin transactions not applied, by reason (flush: FLUSHALL/FLUSHDB/SWAPDB;
/// mixed_scope; unkeyed: FUNCTION/SCRIPT; refused_here: a command this zone refused, e.g. WRONGTYPE).
pub const REDIS_REFUSED: &str = "drc_redis_refused_total";
pub const REDIS_DUPLICATES: &str = "drc_redis_duplicates_total";
pub const ZK_NODES: &str = "drc_zk_nodes_synced_total";
pub const ZK_DELETES: &str = "drc_zk_deletes_total";
pub const ZK_RECONCILES: &str = "drc_zk_reconciles_total";
pub const ZK_CONFLICTS: &str = "drc_zk_conflicts_total";
pub const ZK_LOOPS_SUPPRESSED: &str = "drc_zk_loops_suppressed_total";
pub const ZK_SKIPPED: &str = "drc_zk_skipped_total";
pub const ZK_GUARDED: &str = "drc_zk_guarded_deletes_total";
pub const ZK_LAG_SECONDS: &str = "drc_zk_lag_seconds";
pub const ZK_BYTES_PUBLISHED: &str = "drc_zk_published_bytes_total";
pub const REDIS_BYTES_PUBLISHED: &str = "drc_redis_published_bytes_total";
/// Redis sync: transactions of the origin's own applier (a third zone's, or ours) not shipped back.
pub const REDIS_LOOPS_SUPPRESSED: &str = "drc_redis_loops_suppressed_total";
/// Redis sync: conflicting writes, by from_zone, to_zone and rule: `home` (a key homed in another zone
/// than the writer's, not applied), `later_write` (the origin's write of a key this zone wrote later,
/// concurrently: not applied), `merged` (concurrent writes, one partial: both applied).
pub const REDIS_CONFLICTS: &str = "drc_redis_conflicts_total";
/// Redis sync: keys that differed from the peer at the last anti-entropy pass and were not repaired.
pub const REDIS_VERIFY_DIFFERENCES: &str = "drc_redis_verify_differences";
/// Redis sync: keys with a home zone repaired by the anti-entropy passes.
pub const REDIS_VERIFY_REPAIRED: &str = "drc_redis_verify_repaired_total";
/// Redis sync: bytes of the origin's stream read but not yet applied here (backlog distance).
pub const REDIS_BEHIND_BYTES: &str = "drc_redis_behind_bytes";

pub const ALL: &[&str] = &[
    LAG_SECONDS,
    LAG_HISTOGRAM,
    CLOCK_SKEW_SECONDS,
    HEARTBEATS_WRITTEN,
    TXNS_READ,
    ROWS_READ,
    BYTES_READ,
    TXNS_SHIPPED,
    BYTES_SHIPPED,
    TXNS_APPLIED,
    ROWS_APPLIED,
    ROWS_BATCHED,
    ROWS_LOADED,
    APPLIER_COMMITS,
    CONFLICTS,
    LOOPS_SUPPRESSED,
    ID_RANGE_VIOLATIONS,
    DUPLICATES_SKIPPED,
    APPLIED_COMMIT_TS,
    APPLIED_KAFKA_OFFSET,
    READER_BINLOG_OFFSET,
    READER_BINLOG_FILE,
    KAFKA_UNACKED,
    PAUSED,
    RECONNECTS,
    ERRORS,
    JOURNAL_ACTIONS,
    JOURNAL_COMMIT_TS,
    JOURNAL_SKIPPED_EVENTS,
    SCHEMA_WAIT,
    PARKED_ROWS,
    SKIPPED_ROWS,
    RETENTION_PURGED,
    DRC_TABLE_ROWS,
    DDL,
    VERSION_CLOCK_OFFSET,
    VERSION_CLOCK_OFFSET_REPORTS,
    REDIS_COMMANDS,
    REDIS_BYTES,
    REDIS_TXNS,
    REDIS_LAG_SECONDS,
    REDIS_FULL_SYNCS,
    REDIS_SNAPSHOT_KEYS,
    REDIS_REFUSED,
    REDIS_DUPLICATES,
    ZK_NODES,
    ZK_DELETES,
    ZK_RECONCILES,
    ZK_CONFLICTS,
    ZK_LOOPS_SUPPRESSED,
    ZK_SKIPPED,
    ZK_GUARDED,
    ZK_LAG_SECONDS,
    ZK_BYTES_PUBLISHED,
    REDIS_BYTES_PUBLISHED,
    REDIS_LOOPS_SUPPRESSED,
    REDIS_BEHIND_BYTES,
    REDIS_CONFLICTS,
    REDIS_VERIFY_DIFFERENCES,
    REDIS_VERIFY_REPAIRED,
];

/// Lag histogram buckets, seconds: 1 ms to 5 min.
pub const LAG_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Installs the Prometheus recorder (once per process) and describes every metric.
pub fn install() -> Result<metrics_exporter_prometheus::PrometheusHandle, String> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(LAG_HISTOGRAM.into()), LAG_BUCKETS)
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())?;
    describe();
    Ok(handle)
}

fn describe() {
    describe_gauge!(
        LAG_SECONDS,
        Unit::Seconds,
        "end-to-end replication lag, origin write to applied here"
    );
    describe_histogram!(
        LAG_HISTOGRAM,
        Unit::Seconds,
        "replication lag samples (heartbeats and transactions)"
    );
    describe_gauge!(
        CLOCK_SKEW_SECONDS,
        Unit::Seconds,
        "estimated clock offset to_zone minus from_zone"
    );
    describe_counter!(HEARTBEATS_WRITTEN, "heartbeats written into the daemon's own zone");
    describe_counter!(TXNS_READ, "transactions read from the binlog");
    describe_counter!(ROWS_READ, "row changes read from the binlog");
    describe_counter!(BYTES_READ, Unit::Bytes, "binlog bytes read");
    describe_counter!(TXNS_SHIPPED, "transactions shipped to the peer zones");
    describe_counter!(BYTES_SHIPPED, Unit::Bytes, "bytes published to Kafka");
    describe_counter!(TXNS_APPLIED, "origin transactions applied here");
    describe_counter!(ROWS_APPLIED, "rows written by the applier");
    describe_counter!(ROWS_BATCHED, "rows written by the applier in multi-row statements");
    describe_counter!(ROWS_LOADED, "rows written by the applier with LOAD DATA LOCAL");
    describe_counter!(
        APPLIER_COMMITS,
        "commits of the applier (group commit: fewer than applied transactions)"
    );
    describe_counter!(CONFLICTS, "conflicts logged in drc.conflicts, by kind");
    describe_counter!(LOOPS_SUPPRESSED, "applier transactions not applied or shipped again");
    describe_counter!(ID_RANGE_VIOLATIONS, "rows outside their origin zone's ID range");
    describe_counter!(DUPLICATES_SKIPPED, "transactions received again and skipped");
    describe_gauge!(
        VERSION_CLOCK_OFFSET,
        Unit::Seconds,
        "a local write's DATETIME version minus its commit time, by table"
    );
    describe_counter!(
        VERSION_CLOCK_OFFSET_REPORTS,
        "local writes whose DATETIME version is 15 min or more off their commit time (at most one per table every 30 s)"
    );
    describe_counter!(
        DDL,
        "DDL of databases with a home zone: applied, already_applied, skipped_destructive, misplaced"
    );
    describe_counter!(
        RETENTION_PURGED,
        "rows of drc.tombstones / drc.conflicts dropped by retention"
    );
    describe_gauge!(
        DRC_TABLE_ROWS,
        "rows of drc.tombstones / drc.conflicts (InnoDB's estimate)"
    );
    describe_counter!(
        SKIPPED_ROWS,
        "row changes of tables skipped here (no primary key, no version column, missing), by table and reason"
    );
    describe_gauge!(
        APPLIED_COMMIT_TS,
        Unit::Seconds,
        "origin commit time of the last applied transaction"
    );
    describe_gauge!(APPLIED_KAFKA_OFFSET, "Kafka offset of the last applied message");
    describe_gauge!(READER_BINLOG_OFFSET, Unit::Bytes, "binlog offset of the reader");
    describe_gauge!(READER_BINLOG_FILE, "binlog file number of the reader");
    describe_gauge!(KAFKA_UNACKED, "fragments published and not yet acknowledged");
    describe_gauge!(PAUSED, "1 while the direction is paused");
    describe_counter!(RECONNECTS, "sessions restarted after a transient error");
    describe_counter!(ERRORS, "errors by kind");
    describe_counter!(
        JOURNAL_ACTIONS,
        "journal actions in its own zone: tombstone, raised, undone"
    );
    describe_gauge!(
        JOURNAL_COMMIT_TS,
        Unit::Seconds,
        "commit time of the last local transaction the journal committed"
    );
    describe_counter!(REDIS_COMMANDS, "Redis commands of the origin zone applied here");
    describe_counter!(
        REDIS_BYTES,
        Unit::Bytes,
        "bytes of the origin Redis's command stream read"
    );
    describe_counter!(REDIS_TXNS, "Redis origin transactions applied here");
    describe_gauge!(
        REDIS_LAG_SECONDS,
        Unit::Seconds,
        "Redis lag: origin heartbeat key written to applied here"
    );
    describe_counter!(REDIS_FULL_SYNCS, "Redis full synchronisations, by reason");
    describe_counter!(REDIS_SNAPSHOT_KEYS, "keys a Redis full sync replaced here");
    describe_counter!(REDIS_REFUSED, "Redis origin transactions not applied, by reason");
    describe_counter!(ZK_NODES, "ZooKeeper nodes written here with the origin zone's value");
    describe_counter!(
        ZK_DELETES,
        "ZooKeeper nodes deleted here because the origin zone deleted them"
    );
    describe_counter!(
        ZK_RECONCILES,
        "full reads of the origin zone's mirrored roots, by reason (start, reconnect, interval)"
    );
    describe_counter!(
        ZK_CONFLICTS,
        "ZooKeeper changes where this zone's value won or was overwritten (lww, one-way roots written elsewhere)"
    );
    describe_counter!(
        ZK_LOOPS_SUPPRESSED,
        "ZooKeeper nodes and deletes drc wrote in the origin zone, not shipped back"
    );
    describe_counter!(
        ZK_SKIPPED,
        "ZooKeeper nodes not shipped, by reason (ephemeral, sequential in an lww root)"
    );
    describe_counter!(
        ZK_GUARDED,
        "ZooKeeper deletes held back by the deletion guard (max_deletes_per_pass)"
    );
    describe_counter!(
        ZK_BYTES_PUBLISHED,
        Unit::Bytes,
        "bytes of this zone's ZooKeeper items published to Kafka"
    );
    describe_gauge!(
        ZK_LAG_SECONDS,
        Unit::Seconds,
        "origin zone's modification time of the last node applied here from an event, to its application"
    );
    describe_counter!(
        REDIS_BYTES_PUBLISHED,
        Unit::Bytes,
        "bytes of Redis items published to Kafka"
    );
    describe_counter!(
        REDIS_DUPLICATES,
        "Redis origin transactions received again (a Kafka publisher's restart) and skipped"
    );
    describe_counter!(
        REDIS_LOOPS_SUPPRESSED,
        "Redis transactions of a drc applier not shipped back"
    );
    describe_gauge!(
        REDIS_VERIFY_DIFFERENCES,
        "Redis keys differing from the peer at the last anti-entropy pass, not repaired"
    );
    describe_counter!(
        REDIS_VERIFY_REPAIRED,
        "Redis keys with a home zone repaired by anti-entropy passes"
    );
    describe_counter!(
        REDIS_CONFLICTS,
        "Redis conflicting writes: rule=home (homed elsewhere, not applied), later_write (older concurrent write, not applied), merged (concurrent, one partial: both applied)"
    );
    describe_gauge!(
        REDIS_BEHIND_BYTES,
        Unit::Bytes,
        "origin Redis stream bytes read and not yet applied here"
    );
    describe_counter!(
        JOURNAL_SKIPPED_EVENTS,
        "rows events of applier transactions the journal's reader left undecoded"
    );
}

/// The numeric suffix of a binlog file name (`zone-a-bin.000042` → 42).
pub fn binlog_file_number(file: &str) -> f64 {
    file.rsplit('.').next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0) as f64
}

/// The reader's metrics for the server of `zone`, registered once: the per-event and
/// per-transaction path only increments handles (no label allocation or lookup).
#[derive(Clone)]
pub struct ReaderMetrics {
    pub bytes: Counter,
    pub rows: Counter,
    pub transactions: Counter,
    pub binlog_offset: Gauge,
    pub binlog_file: Gauge,
}

impl ReaderMetrics {
    pub fn new(zone: &str) -> Self {
        let l = [("zone", zone.to_string())];
        ReaderMetrics {
            bytes: metrics::counter!(BYTES_READ, &l),
            rows: metrics::counter!(ROWS_READ, &l),
            transactions: metrics::counter!(TXNS_READ, &l),
            binlog_offset: metrics::gauge!(READER_BINLOG_OFFSET, &l),
            binlog_file: metrics::gauge!(READER_BINLOG_FILE, &l),
        }
    }
}

/// The metrics of one direction (`from_zone` → `to_zone`), registered once.
pub struct DirectionMetrics {
    pub applied_transactions: Counter,
    pub applied_rows: Counter,
    pub batched_rows: Counter,
    pub loaded_rows: Counter,
    pub commits: Counter,
    pub applied_commit_ts: Gauge,
    pub applied_kafka_offset: Gauge,
    pub loops_suppressed: Counter,
    pub duplicates_skipped: Counter,
    pub id_range_violations: Counter,
    pub lag: Gauge,
    pub lag_histogram: Histogram,
    pub clock_skew: Gauge,
    pub paused: Gauge,
}

impl DirectionMetrics {
    pub fn new(from: &str, to: &str) -> Self {
        let l = [("from_zone", from.to_string()), ("to_zone", to.to_string())];
        DirectionMetrics {
            applied_transactions: metrics::counter!(TXNS_APPLIED, &l),
            applied_rows: metrics::counter!(ROWS_APPLIED, &l),
            batched_rows: metrics::counter!(ROWS_BATCHED, &l),
            loaded_rows: metrics::counter!(ROWS_LOADED, &l),
            commits: metrics::counter!(APPLIER_COMMITS, &l),
            applied_commit_ts: metrics::gauge!(APPLIED_COMMIT_TS, &l),
            applied_kafka_offset: metrics::gauge!(APPLIED_KAFKA_OFFSET, &l),
            loops_suppressed: metrics::counter!(LOOPS_SUPPRESSED, &l),
            duplicates_skipped: metrics::counter!(DUPLICATES_SKIPPED, &l),
            id_range_violations: metrics::counter!(ID_RANGE_VIOLATIONS, &l),
            lag: metrics::gauge!(LAG_SECONDS, &l),
            lag_histogram: metrics::histogram!(LAG_HISTOGRAM, &l),
            clock_skew: metrics::gauge!(CLOCK_SKEW_SECONDS, &l),
            paused: metrics::gauge!(PAUSED, &l),
        }
    }
}
