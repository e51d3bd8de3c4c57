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
