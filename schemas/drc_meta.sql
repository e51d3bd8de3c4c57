-- drc's own schema, created in every zone by `drc init --config FILE` (and on start).
-- Idempotent. Nothing here is replicated between zones: readers drop every change to
-- the `drc` database, and a transaction that writes `drc`.`marker` is an applier
-- transaction, which is never shipped onward (loop suppression).

CREATE DATABASE IF NOT EXISTS `drc` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;

-- Where the applier stands, per origin zone. Written in the same transaction as the
-- applied rows, so after a crash the rows and the position agree: a transaction is
-- applied exactly once.
CREATE TABLE IF NOT EXISTS `drc`.`applied` (
  origin_zone   VARCHAR(128) NOT NULL PRIMARY KEY, -- zone the transactions come from (`zone` or `zone/channel`)
  gtid          TEXT         NULL,                 -- origin GTID state after the last applied transaction (the resume point)
  file          VARCHAR(255) NOT NULL DEFAULT '',  -- origin binlog file of that point
  pos           BIGINT UNSIGNED NOT NULL DEFAULT 0,-- origin binlog offset of that point
  last_gtid     VARCHAR(128) NULL,                 -- GTID of the last applied transaction
  commit_ts_us  BIGINT       NOT NULL DEFAULT 0,   -- its origin commit time (µs since the epoch)
  applied_txns  BIGINT UNSIGNED NOT NULL DEFAULT 0,-- transactions applied from this origin
  kafka_topic   VARCHAR(255) NULL,                 -- Kafka transport: topic of the last applied message
  kafka_partition INT        NULL,                 -- ... its partition
  kafka_offset  BIGINT       NULL,                 -- ... and offset (the consumer seeks to offset + 1)
  hb_seq        BIGINT UNSIGNED NULL,              -- last heartbeat of the origin applied here (drc.heartbeat seq)
  hb_ts_us      BIGINT       NULL,                 -- its write time on the origin's clock (µs)
  hb_applied_us BIGINT       NULL,                 -- when it was applied here, this zone's clock (µs)
  applied_at    DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB;

-- Loop marker. Every applier transaction starts by bumping this row; the reader of
-- this zone recognises such transactions by it and does not ship them. The row also
-- carries the journal's position the applier read at that moment (its watermark): the
-- local deletes after it were not yet tombstones when the applier decided, so the
-- journal re-checks this transaction's inserts against them (docs/CONFLICTS.md).
CREATE TABLE IF NOT EXISTS `drc`.`marker` (
  origin_zone   VARCHAR(128) NOT NULL PRIMARY KEY, -- zone whose transaction is being applied (`zone` or `zone/channel`)
  applier_zone  VARCHAR(64)  NOT NULL,             -- this zone
  n             BIGINT UNSIGNED NOT NULL DEFAULT 0,-- applier transactions so far
  journal_file  VARCHAR(255) NULL,                 -- the journal's committed position when the transaction began
  journal_pos   BIGINT UNSIGNED NULL
) ENGINE=InnoDB;

-- The journal: where drc's reader of this zone's own binlog stands. It records the
-- tombstones of local deletes and raises local writes that went back in version
-- (docs/CONFLICTS.md); its transactions start by bumping this row (so it skips its
-- own), and are shipped to the other zones like the application's.
CREATE TABLE IF NOT EXISTS `drc`.`journal` (
  channel       VARCHAR(128) NOT NULL PRIMARY KEY, -- this zone (`zone` or `zone/channel`)
  n             BIGINT UNSIGNED NOT NULL DEFAULT 0,-- journal transactions so far
  gtid          TEXT         NULL,                 -- local GTID state after the last journalled transaction
  file          VARCHAR(255) NOT NULL DEFAULT '',  -- local binlog file of that point
  pos           BIGINT UNSIGNED NOT NULL DEFAULT 0,-- local binlog offset of that point
  tombstones    BIGINT UNSIGNED NOT NULL DEFAULT 0,-- tombstones of local deletes recorded
  raised        BIGINT UNSIGNED NOT NULL DEFAULT 0,-- local writes raised above what they replaced
  unresurrected BIGINT UNSIGNED NOT NULL DEFAULT 0,-- applier inserts undone (a local delete they had not seen)
  updated_at    DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB;

-- The home zone of each global-zone table pattern ([replication.global_tables]) as
-- this zone's journal judges local writes: a write at or after since_file/since_pos
-- (this zone's binlog end when the daemon first ran with that home) belongs to `home`,
-- an earlier one to `prev_home` (NULL: not judged). So a restart that re-reads the
-- binlog after the home moved does not take the old home's writes for misrouted ones.
CREATE TABLE IF NOT EXISTS `drc`.`global_homes` (
  channel    VARCHAR(128) NOT NULL,
  pattern    VARCHAR(255) NOT NULL,
  home       VARCHAR(64)  NOT NULL,
  prev_home  VARCHAR(64)  NULL,
  since_file VARCHAR(255) NOT NULL,
  since_pos  BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (channel, pattern)
) ENGINE=InnoDB;

-- Rows of a table waiting for a schema change here (a column the origin's rows carry
-- with a value, that this zone's table lacks): one entry per origin transaction and
-- table, in order (id), the transaction in the Kafka wire encoding. Written with the
-- applier position that passes them; applied and deleted once the table has the
-- column (src/mysql/applier/apply/parked.rs).
CREATE TABLE IF NOT EXISTS `drc`.`parked` (
  id      BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  at      DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  channel VARCHAR(128) NOT NULL DEFAULT '',  -- the applier's channel (several daemons may apply here)
  origin  VARCHAR(128) NOT NULL,
  db      VARCHAR(64)  NOT NULL,
  tbl     VARCHAR(64)  NOT NULL,
  journal TINYINT      NOT NULL DEFAULT 0,   -- rows of the origin's journal (tombstones, raises)
  tx      LONGBLOB     NOT NULL,
  KEY by_table (channel, origin, db, tbl, id)
) ENGINE=InnoDB;

-- Tables renamed in this zone (recorded by the journal from the binlog's RENAME
-- statements): a change from another zone for a table that no longer exists here
-- under its old name is applied to its new name (the DBA renames in every zone, one
-- after the other, while both zones write).
CREATE TABLE IF NOT EXISTS `drc`.`renamed` (
  db          VARCHAR(64) NOT NULL,
  tbl         VARCHAR(64) NOT NULL,  -- the old name
  renamed_to  VARCHAR(64) NOT NULL,  -- the new name
  at          DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (db, tbl)
) ENGINE=InnoDB;

-- Columns dropped in this zone: the journal records its zone's ALTER TABLE … DROP
-- COLUMN (and removes the row when the column is added again). A row image from
-- another zone that still carries such a column is applied without it: this zone
-- dropped that data on purpose (a column this zone has never had makes the table wait).
CREATE TABLE IF NOT EXISTS `drc`.`dropped_columns` (
  db   VARCHAR(64) NOT NULL,
  tbl  VARCHAR(64) NOT NULL,
  col  VARCHAR(64) NOT NULL,
  at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (db, tbl, col)
) ENGINE=InnoDB;

-- Tables truncated in this zone (recorded by the journal from the binlog's TRUNCATE):
-- a TRUNCATE writes no row events, so it leaves no tombstones; an incoming row of a
-- version <= `version` (the truncate's time) is dropped as if its key had a tombstone.
CREATE TABLE IF NOT EXISTS `drc`.`truncated` (
  db       VARCHAR(64)   NOT NULL,
  tbl      VARCHAR(64)   NOT NULL,
  version  DECIMAL(30,6) NOT NULL,  -- the truncate's time as a DATETIME version (end of its second)
  at       DATETIME(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (db, tbl)
) ENGINE=InnoDB;

-- Tombstones: per deleted key, the greatest delete version: the time of the delete,
-- never less than the version of the row it removed. A row write of a version <= the
-- tombstone is dropped, so a late older update never undoes a delete. The applier
-- records those of the deletes it applies, in its transaction; the journal those of
-- local deletes, from the binlog (nothing of drc runs in the application's writes).
CREATE TABLE IF NOT EXISTS `drc`.`tombstones` (
  db       VARCHAR(64)   NOT NULL,  -- database of the deleted row
  tbl      VARCHAR(64)   NOT NULL,  -- table of the deleted row
  pk       VARCHAR(500)  NOT NULL,  -- JSON_ARRAY of its primary-key values
  version  DECIMAL(30,6) NOT NULL,  -- greatest deleted version (DATETIME as YYYYMMDDhhmmss.ffffff, or the BIGINT)
  deleted_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (db, tbl, pk)
) ENGINE=InnoDB;

-- The journal's pending decisions (src/mysql/journal module doc): per key, the version a
-- local write still owes a raise above (`owed`), or the tombstone an applier write
-- resurrected the key under (`resurrected`), until a later write of the key settles
-- it. Written in the journal transaction that commits its position, so a restart
-- resumes them exactly.
CREATE TABLE IF NOT EXISTS `drc`.`journal_pending` (
  channel     VARCHAR(128)  NOT NULL,  -- the journal's `drc.journal` channel
  db          VARCHAR(64)   NOT NULL,
  tbl         VARCHAR(64)   NOT NULL,
  pk          VARCHAR(500)  NOT NULL,  -- the key as the journal matches it (JSON array of text)
  owed        DECIMAL(30,6) NULL,
  resurrected DECIMAL(30,6) NULL,
  PRIMARY KEY (channel, db, tbl, pk)
) ENGINE=InnoDB;

-- Conflicts and quarantined rows. One row per incoming change that did not simply
-- apply: who won, both versions, both zones, the rows. Never replicated.
CREATE TABLE IF NOT EXISTS `drc`.`conflicts` (
  id               BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  at               DATETIME(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  kind             VARCHAR(32)   NOT NULL,  -- local_row_newer | deleted_later | row_newer_than_delete | concurrent_update | resurrected_after_delete | concurrent_delete | id_out_of_range | unique_key | foreign_key | misrouted_write
  resolution       VARCHAR(32)   NOT NULL,  -- kept_local | applied_incoming | quarantined | undone | home_write_stands
  db               VARCHAR(64)   NOT NULL,
  tbl              VARCHAR(64)   NOT NULL,
  pk               VARCHAR(500)  NOT NULL,  -- JSON_ARRAY of the key
  origin_zone      VARCHAR(64)   NOT NULL,  -- zone the incoming change came from
  local_zone       VARCHAR(64)   NOT NULL,  -- this zone
  origin_gtid      VARCHAR(128)  NULL,      -- GTID of the incoming transaction
  incoming_version DECIMAL(30,6) NULL,
  local_version    DECIMAL(30,6) NULL,
  incoming_row     LONGTEXT      NULL,      -- JSON (change_event value encoding)
  local_row        LONGTEXT      NULL,      -- JSON_OBJECT of the local row (the one kept, or the one an applied write replaced), when there was one
  detail           TEXT          NULL,
  KEY by_table (db, tbl, at),
  KEY by_kind (kind, at)
) ENGINE=InnoDB;

-- Heartbeats. Every daemon bumps its own zone's row every [replication] heartbeat_ms,
-- through the binlog like any write; the peers' appliers measure the end-to-end lag
-- from `ts_us` and record the applied `seq` in drc.applied (hb_seq), which
-- `drc wait --drained` waits for.
CREATE TABLE IF NOT EXISTS `drc`.`heartbeat` (
  origin_zone VARCHAR(128) NOT NULL PRIMARY KEY, -- the writing zone (`zone` or `zone/channel`)
  seq         BIGINT UNSIGNED NOT NULL DEFAULT 0,-- +1 per heartbeat (and per `drc wait --drained`)
  ts_us       BIGINT       NOT NULL DEFAULT 0,   -- the writer's clock at the write, µs since the epoch
  lags        TEXT         NULL                  -- JSON {zone: seconds}: lags the writer measured last (clock-skew estimate)
) ENGINE=InnoDB;

-- `drc seed`: how far the copy of each table from a source zone has got (the last key
-- copied, committed with the rows it covers), so that a seed stopped at any instant
-- resumes after it.
CREATE TABLE IF NOT EXISTS `drc`.`seed_progress` (
  source_zone VARCHAR(64)   NOT NULL,
  db          VARCHAR(64)   NOT NULL,
  tbl         VARCHAR(64)   NOT NULL,
  last_key    TEXT          NULL,      -- JSON array of the last key copied (typed values), NULL: none yet
  copied      BIGINT UNSIGNED NOT NULL DEFAULT 0,
  done        TINYINT       NOT NULL DEFAULT 0,
  updated_at  DATETIME(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (source_zone, db, tbl)
) ENGINE=InnoDB;
