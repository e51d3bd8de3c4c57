//! The audit log: every mutating operation on a zone — the admin API's `POST /pause`
//! and `POST /resume` (refused attempts included) and `drc fence` / `drc unfence` —
//! as one JSON line: when, what, through which door, who (the address of the caller;
//! for a command, the OS user) and how it ended.
//!
//! # Invariants
//! * A line is appended (`O_APPEND`) and synced before the operation's answer is
//!   given: what the log does not hold did not happen through drc.
//! * The file is created readable by its owner only (0600); it never holds a token,
//!   a password or a header, only whether the token was right.
//! * A failure to write the log fails the operation (an operation that cannot be
//!   audited is not done), with the path in the message.

use serde::Serialize;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// One audited operation.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// RFC 3339, UTC, microseconds.
    pub at: String,
    /// `pause`, `resume`, `fence`, `unfence`.
    pub action: String,
    /// `admin-api` or `cli`.
    pub via: &'static str,
    /// The caller: `ip:port` of an API call, `user@host` of a command.
    pub who: String,
    /// What it applied to: the directions' origin zones, or the fenced zone.
    pub target: String,
    /// `ok`, or why it was refused or failed.
    pub outcome: String,
}

impl Entry {
    pub fn new(action: &str, via: &'static str, who: String, target: String, outcome: String) -> Entry {
        Entry {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            action: action.to_string(),
            via,
            who,
            target,
            outcome,
        }
    }
}

/// Where a zone's audit log is: `[admin] audit_log`, else `audit.log` in the reader's
/// state directory (both relative to the config's directory).
pub fn path(cfg: &crate::config::Config) -> PathBuf {
    let p = cfg
        .admin
        .as_ref()
        .and_then(|a| a.audit_log.clone())
        .unwrap_or_else(|| cfg.reader.state_dir.join("audit.log"));
    cfg.base_dir.join(p)
}

/// Appends `e` to the log at `path` and syncs it.
pub fn record(path: &Path, e: &Entry) -> Result<(), String> {
    let fail = |what: &str, err: std::io::Error| format!("audit log {}: {what}: {err}", path.display());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|err| fail("creating its directory", err))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|err| fail("opening", err))?;
    let mut line = serde_json::to_vec(e).expect("an entry serializes");
    line.push(b'\n');
    f.write_all(&line).map_err(|err| fail("writing", err))?;
    f.sync_data().map_err(|err| fail("syncing", err))?;
    tracing::info!(action = %e.action, via = e.via, who = %e.who, target = %e.target, outcome = %e.outcome, "audited");
    Ok(())
}

/// `user@host` of this process (for commands).
pub fn os_user() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| format!("uid {}", unsafe { libc::getuid() }));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    format!("{user}@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_appended_as_json_lines_readable_by_the_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("drc-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let p = dir.join("sub/audit.log");
        record(
            &p,
            &Entry::new("pause", "admin-api", "127.0.0.1:5000".into(), "b".into(), "ok".into()),
        )
        .unwrap();
        record(&p, &Entry::new("fence", "cli", os_user(), "a".into(), "ok".into())).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["action"], "pause");
        assert_eq!(lines[1]["via"], "cli");
        assert!(lines[1]["who"].as_str().unwrap().contains('@'));
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
