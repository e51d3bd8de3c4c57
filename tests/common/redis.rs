//! The testenv's Redis servers (`testenv/up.sh --redis`: zone a on 6381, zone b on 6382).

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs redis-cli on `port`, database `db`, with `commands` (one per line); returns
/// its output.
pub fn redis_cli(port: &str, db: u64, commands: &str) -> String {
    let mut child = Command::new("redis-cli")
        .args(["-p", port, "-n", &db.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-cli (testenv/up.sh --redis installs it)");
    child.stdin.take().unwrap().write_all(commands.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Restarts the testenv redis-server on `port` (zone a 6381, zone b 6382) with its
/// data: `SHUTDOWN SAVE` writes the snapshot (with the replication id and offset, so
/// its replicas can continue), then the server starts again from its config as
/// `testenv/up.sh --redis` starts it, and is waited for.
pub fn restart_redis(port: u16) {
    let zone = if port == 6381 { "a" } else { "b" };
    let ping = || {
        Command::new("redis-cli")
            .args(["-p", &port.to_string(), "ping"])
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"PONG"))
    };
    let _ = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "shutdown", "save"])
        .output();
    for _ in 0..100 {
        if !ping() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!ping(), "redis on {port} did not stop");
    let conf = super::run_dir().join(format!("redis-{zone}/redis.conf"));
    // (`setsid -f`: the server outlives the test, as testenv/up.sh starts it)
    let started = Command::new("setsid")
        .arg("-f")
        .arg("redis-server")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("redis-server");
    assert!(started.success(), "redis-server {}", conf.display());
    for _ in 0..100 {
        if ping() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("redis on {port} did not start again ({})", conf.display());
}

/// `(master_repl_offset, the first replica's acknowledged offset)` of the
/// redis-server on `port`.
pub fn replication_offsets(port: u16) -> (Option<u64>, Option<u64>) {
    let info = redis_cli(&port.to_string(), 0, "INFO replication\n");
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.to_string())
    };
    let master = field("master_repl_offset:").and_then(|v| v.parse::<u64>().ok());
    let replica = field("slave0:").and_then(|v| {
        v.split(',')
            .find_map(|kv| kv.strip_prefix("offset="))
            .and_then(|o| o.parse::<u64>().ok())
    });
    (master, replica)
}

/// Waits up to `secs` until the redis-server on `port` has a replica (drc's capture)
/// that acknowledged at least `offset` of its stream.
pub fn wait_replica_past(port: u16, offset: u64, secs: u64) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if replication_offsets(port).1.is_some_and(|r| r >= offset) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}
