//! Fencing a zone for a failover drill: `read_only = ON` on its server makes it refuse
//! application writes, while drc's applier (its user holds `READ_ONLY ADMIN` on
//! MariaDB, `CONNECTION_ADMIN`/`SUPER` on MySQL) keeps applying the other zones'
//! transactions and writing heartbeats. `super_read_only` is not used: it would stop
//! drc's applier too.

use mysql_async::prelude::Queryable;

/// What `drc fence` / `drc unfence` found and did.
#[derive(Debug, serde::Serialize)]
pub struct FenceReport {
    pub zone: String,
    pub server: String,
    pub read_only: bool,
    /// drc's own user can still write (it must, for the applier to keep working).
    pub drc_can_write: bool,
    /// Sessions of other users in a transaction right now (their next write fails
    /// once fenced); `None` without the PROCESS privilege to see them.
    pub open_transactions: Option<u64>,
}

/// Sets `read_only` on the zone's server and checks drc's user can still write.
pub async fn set_fence(zone: &str, opts: mysql_async::Opts, on: bool) -> Result<FenceReport, mysql_async::Error> {
    let server = format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port());
    let user = opts.user().unwrap_or_default().to_string();
    let mut c = mysql_async::Conn::new(opts).await?;
    c.query_drop(format!("SET GLOBAL read_only = {}", if on { "ON" } else { "OFF" }))
        .await?;
    let read_only: bool = c.query_first("SELECT @@global.read_only").await?.unwrap_or(false);
    // drc's user writes a heartbeat-shaped probe row no applier acts on.
    let probe = crate::mysql::heartbeat::beat(&mut c, &format!("{zone}/fence-check"), "{}").await;
    let drc_can_write = match probe {
        Ok(_) => true,
        Err(mysql_async::Error::Server(e)) if e.code == 1290 => {
            let _ = c.query_drop("ROLLBACK").await;
            false
        }
        Err(e) => return Err(e),
    };
    let open_transactions: Option<u64> = c
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id WHERE p.USER <> ?",
            (&user,),
        )
        .await
        .ok()
        .flatten();
    Ok(FenceReport {
        zone: zone.to_string(),
        server,
        read_only,
        drc_can_write,
        open_transactions,
    })
}
