//! The config file turned into the settings of each part (the parts own their
//! settings types; only this module reads [`Config`]).

use crate::config::{Config, MysqlConfig};
use crate::error::{ConfigError, Error};
use crate::mysql::applier::apply::ApplierSettings;
use crate::mysql::applier::table::TablePatterns;
use crate::mysql::reader::live::LiveSettings;
use crate::mysql::reader::Limits;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub fn cfg_err(path: &Path, what: String) -> Error {
    Error::Config(ConfigError {
        path: path.display().to_string(),
        what,
    })
}

/// The applier's settings from `[replication]`, `[id_ranges]` and `[mysql]`.
pub fn applier_settings(cfg: &Config, path: &Path) -> Result<Arc<ApplierSettings>, Error> {
    let r = cfg
        .replication
        .as_ref()
        .ok_or_else(|| cfg_err(path, "no [replication] section: say which databases replicate".into()))?;
    Ok(Arc::new(ApplierSettings {
        zone: cfg.zone.clone(),
        databases: r.databases.clone(),
        version_column: r.version_column.clone(),
        id_ranges: cfg.id_ranges.clone(),
        range_policy: r.range_policy,
        addr: cfg.mysql.addr(),
        channel: r.channel.clone(),
        unversioned: r.unversioned.clone(),
        missing_table_wait: Duration::from_secs(r.missing_table_wait_secs),
        skip_shadow_tables: r.skip_shadow_tables,
        tables: TablePatterns::new(&r.tables),
        exclude_tables: TablePatterns::new(&r.exclude_tables),
        ddl_home: r.ddl_home.clone(),
        global_tables: r
            .global_tables
            .iter()
            .map(|(pat, home)| (pat.clone(), TablePatterns::new(std::slice::from_ref(pat)), home.clone()))
            .collect(),
    }))
}

/// Settings for reading the server `mysql` (of zone `zone`) with `cfg`'s `[reader]`.
pub fn live_settings(cfg: &Config, zone: &str, mysql: &MysqlConfig) -> Result<LiveSettings, String> {
    Ok(LiveSettings {
        zone: zone.to_string(),
        addr: mysql.addr(),
        opts: mysql.opts(&cfg.base_dir)?,
        replica_server_id: cfg.reader.server_id,
        limits: Limits {
            max_rows: cfg.reader.max_fragment_rows,
            max_bytes: cfg.reader.max_fragment_bytes,
            max_held_rows: cfg.reader.max_xa_held_rows,
            ..Limits::default()
        },
        heartbeat: Duration::from_secs(cfg.reader.heartbeat_secs.max(1)),
        max_backoff: Duration::from_secs(cfg.reader.reconnect_max_backoff_secs.max(1)),
    })
}
