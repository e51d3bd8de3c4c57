//! Server-side claims: one applier per origin zone and channel, and one journal per
//! channel, on a server. Two daemons applying the same origin into one server would
//! overwrite each other's `drc.applied` row, and a restart could then resume past
//! transactions it never applied: silently lost. So each session takes a named
//! lock (`GET_LOCK`, MySQL and MariaDB alike) on its own connection and holds it for
//! the connection's life; a second daemon is refused with the holder's connection.
//!
//! A session of this process that died on a broken network may still hold its
//! claim on the server (its connection not yet timed out): the claim of this
//! process's own earlier connections is taken back (`KILL CONNECTION`, allowed on a
//! user's own connections).

use crate::error::Error;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::HashSet;
use std::sync::Mutex;

/// Connection ids that held a claim in this process.
static OWN: Mutex<Option<HashSet<u32>>> = Mutex::new(None);

/// Seconds to wait for a claim a dying connection still holds.
const WAIT_SECS: u32 = 5;

/// The lock name of `what` (at most 64 characters, MySQL's limit).
pub fn lock_name(what: &str) -> String {
    let name = format!("drc {what}");
    if name.len() <= 64 {
        name
    } else {
        format!(
            "drc {:08x} {}",
            crc32fast::hash(what.as_bytes()),
            &what[..40.min(what.len())]
        )
        .chars()
        .take(64)
        .collect()
    }
}

/// Takes the claim `what` (e.g. `applier a/shop`) on `conn`, or fails with a
/// definite error naming the connection that holds it.
pub async fn claim(conn: &mut Conn, what: &str, addr: &str) -> Result<(), Error> {
    let name = lock_name(what);
    let m = |e| crate::mysql::error::classify(addr, "taking drc's claim (GET_LOCK)", e);
    for attempt in 0..2 {
        let got: Option<Option<i64>> = conn
            .exec_first("SELECT GET_LOCK(?, ?)", (name.as_str(), WAIT_SECS))
            .await
            .map_err(m)?;
        if got.flatten() == Some(1) {
            OWN.lock()
                .expect("claims")
                .get_or_insert_with(HashSet::new)
                .insert(conn.id());
            return Ok(());
        }
        let holder: Option<Option<u64>> = conn
            .exec_first("SELECT IS_USED_LOCK(?)", (name.as_str(),))
            .await
            .map_err(m)?;
        let Some(holder) = holder.flatten() else { continue };
        let ours = OWN
            .lock()
            .expect("claims")
            .as_ref()
            .is_some_and(|o| o.contains(&(holder as u32)));
        if ours && attempt == 0 {
            tracing::warn!(
                what,
                connection = holder,
                "an earlier session of this daemon still holds its claim; ending it"
            );
            let _ = conn.query_drop(format!("KILL CONNECTION {holder}")).await;
            continue;
        }
        let who: Option<(String, String)> = conn
            .exec_first(
                "SELECT USER, HOST FROM information_schema.PROCESSLIST WHERE ID = ?",
                (holder,),
            )
            .await
            .map_err(m)?;
        let who = who.map_or_else(String::new, |(u, h)| format!(" ({u}@{h})"));
        return Err(Error::Server {
            addr: addr.to_string(),
            what: format!(
                "another drc daemon already runs the {what} on this server: connection {holder}{who} holds the claim `{name}`. \
                 Two daemons applying the same origin into one server overwrite each other's position and lose transactions: \
                 stop the other daemon, or give this one its own [replication] channel"
            ),
        });
    }
    Err(Error::Server {
        addr: addr.to_string(),
        what: format!("could not take drc's claim `{name}` for the {what}"),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn lock_names_fit_mysql() {
        assert_eq!(super::lock_name("applier a/shop"), "drc applier a/shop");
        let long = super::lock_name(&format!("applier a/{}", "x".repeat(100)));
        assert!(long.len() <= 64, "{long}");
        assert_ne!(long, super::lock_name(&format!("applier a/{}", "y".repeat(100))));
    }
}
