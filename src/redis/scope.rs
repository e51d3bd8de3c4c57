//! Which Redis commands a direction carries: the keys each write command touches,
//! and the configured scope (database numbers and key patterns).
//!
//! # Rules
//! * A transaction whose commands all touch keys in scope is shipped whole.
//! * One whose commands all touch keys out of scope is dropped (counted).
//! * One that mixes the two is an alert (`drc_redis_refused_total{reason="mixed_scope"}`
//!   and a warning naming the keys) and is not applied at all: applying only its
//!   in-scope half would break the origin's atomicity silently.
//! * drc's own keys (`drc:*` in database 0: positions, heartbeats) are never in scope.
//! * Commands that touch no key (`PUBLISH`, `FUNCTION`, `SCRIPT`) carry no synced data:
//!   dropped; `FUNCTION` and `SCRIPT` are counted as refused (a function library is
//!   deployed per zone, like application code).
//!
//! Key positions follow Redis 7.0's command table for the write commands that reach
//! a replica's stream (scripts arrive as their effects, blocking pops as plain pops).
//! An unknown command is taken to have its key at argument 1, as most have.

use wildmatch::WildMatch;

/// What to do with one origin transaction.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Ship,
    /// Nothing in it is synced.
    Drop,
    /// It names no key (a function library, a script cache): not synced, alerted.
    Unkeyed(String),
    /// It touches keys in and out of scope: `(in scope, out of scope)` examples.
    Mixed(String, String),
}

/// Databases and key patterns (`*` and `?` wildcards) a direction carries.
#[derive(Debug, Clone)]
pub struct Scope {
    databases: Vec<u64>,
    keys: Vec<WildMatch>,
}

impl Scope {
    pub fn new(databases: &[u64], patterns: &[String]) -> Scope {
        Scope {
            databases: databases.to_vec(),
            keys: patterns.iter().map(|p| WildMatch::new(p)).collect(),
        }
    }

    /// The synced database numbers.
    pub fn databases(&self) -> &[u64] {
        &self.databases
    }

    pub fn has_db(&self, db: u64) -> bool {
        self.databases.contains(&db)
    }

    /// Whether key `key` of database `db` is synced.
    pub fn covers(&self, db: u64, key: &[u8]) -> bool {
        if !self.has_db(db) || (db == 0 && key.starts_with(b"drc:")) {
            return false;
        }
        let k = String::from_utf8_lossy(key);
        self.keys.iter().any(|p| p.matches(&k))
    }

    /// Removes what never syncs from a transaction before it is judged: deletes of
    /// keys all out of scope (Redis 7.0 deletes a key that expired when a command of a
    /// transaction or script touches it, inside that transaction: a cache key's expiry
    /// must not make a synced transaction "mixed"), and messages (`PUBLISH`,
    /// `SPUBLISH`: the peer's subscribers would get them twice).
    pub fn trim(&self, commands: &mut Vec<(u64, Vec<Vec<u8>>)>) {
        commands.retain(|(db, args)| {
            let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
            match name.as_str() {
                "PUBLISH" | "SPUBLISH" => false,
                "DEL" | "UNLINK" => args[1..].iter().any(|k| self.covers(*db, k)),
                _ => true,
            }
        });
    }

    /// The verdict on a transaction's commands (database, arguments).
    pub fn judge(&self, commands: &[(u64, Vec<Vec<u8>>)]) -> Verdict {
        let (mut inside, mut outside): (Option<String>, Option<String>) = (None, None);
        for (db, args) in commands {
            let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
            let keys = db_keys(&name, *db, args);
            if keys.is_empty() {
                if matches!(name.as_str(), "FUNCTION" | "SCRIPT") {
                    return Verdict::Unkeyed(name);
                }
                continue;
            }
            for (d, k) in keys {
                let slot = if self.covers(d, k) { &mut inside } else { &mut outside };
                slot.get_or_insert_with(|| format!("db {d} {}", String::from_utf8_lossy(k)));
            }
        }
        match (inside, outside) {
            (Some(i), Some(o)) => Verdict::Mixed(i, o),
            (Some(_), None) => Verdict::Ship,
            _ => Verdict::Drop,
        }
    }
}

/// The (database, key) pairs a write command run in `db` touches: its keys in `db`,
/// and the target of `MOVE key db` and of `COPY src dst DB n` in that database.
pub fn db_keys<'a>(name: &str, db: u64, args: &'a [Vec<u8>]) -> Vec<(u64, &'a [u8])> {
    let mut out: Vec<(u64, &[u8])> = key_positions(name, args)
        .into_iter()
        .map(|i| (db, args[i].as_slice()))
        .collect();
    let num = |a: &[u8]| std::str::from_utf8(a).ok()?.parse::<u64>().ok();
    match name {
        "MOVE" if args.len() >= 3 => {
            if let Some(t) = num(&args[2]) {
                out.push((t, &args[1]));
            }
        }
        "COPY" if args.len() >= 3 => {
            if let Some(i) = args.iter().skip(3).position(|a| a.eq_ignore_ascii_case(b"DB")) {
                if let Some(t) = args.get(3 + i + 1).and_then(|a| num(a)) {
                    out.retain(|(_, k)| *k != args[2].as_slice());
                    out.push((t, &args[2]));
                }
            }
        }
        _ => {}
    }
    out
}

/// The argument positions of the keys a write command touches.
pub fn key_positions(name: &str, args: &[Vec<u8>]) -> Vec<usize> {
    let n = args.len();
    let num = |i: usize| -> usize {
        args.get(i)
            .and_then(|a| std::str::from_utf8(a).ok()?.parse().ok())
            .unwrap_or(0)
    };
    match name {
        "PUBLISH" | "SPUBLISH" | "FUNCTION" | "SCRIPT" | "PING" | "SELECT" | "MULTI" | "EXEC" | "FLUSHALL"
        | "FLUSHDB" | "SWAPDB" => vec![],
        "DEL" | "UNLINK" | "EXISTS" | "TOUCH" | "PFMERGE" | "SINTERSTORE" | "SUNIONSTORE" | "SDIFFSTORE" | "WATCH" => {
            (1..n).collect()
        }
        "MSET" | "MSETNX" => (1..n).step_by(2).collect(),
        "RENAME" | "RENAMENX" | "COPY" | "SMOVE" | "LMOVE" | "BLMOVE" | "RPOPLPUSH" | "BRPOPLPUSH" | "ZRANGESTORE"
        | "GEOSEARCHSTORE" => (1..n.min(3)).collect(),
        // XGROUP CREATE|SETID|DESTROY|CREATECONSUMER|DELCONSUMER key ...
        "XGROUP" if n >= 3 => vec![2],
        "GEORADIUS" | "GEORADIUSBYMEMBER" => {
            let mut v = vec![1];
            if let Some(i) = args
                .iter()
                .skip(2)
                .position(|a| a.eq_ignore_ascii_case(b"STORE") || a.eq_ignore_ascii_case(b"STOREDIST"))
            {
                if 2 + i + 1 < n {
                    v.push(2 + i + 1);
                }
            }
            v
        }
        "BITOP" => (2..n).collect(),
        "ZUNIONSTORE" | "ZINTERSTORE" | "ZDIFFSTORE" => {
            let k = num(2);
            std::iter::once(1).chain(3..(3 + k).min(n)).collect()
        }
        "SORT" => {
            let mut v = vec![1];
            if let Some(i) = args.iter().skip(2).position(|a| a.eq_ignore_ascii_case(b"STORE")) {
                if 2 + i + 1 < n {
                    v.push(2 + i + 1);
                }
            }
            v
        }
        _ if n >= 2 => vec![1],
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(s: &str) -> Vec<Vec<u8>> {
        s.split(' ').map(|a| a.as_bytes().to_vec()).collect()
    }

    #[test]
    fn keys_of_write_commands() {
        let k = |s: &str| {
            let a = cmd(s);
            key_positions(&String::from_utf8_lossy(&a[0]).to_ascii_uppercase(), &a)
        };
        assert_eq!(k("SET a 1"), [1]);
        assert_eq!(k("DEL a b c"), [1, 2, 3]);
        assert_eq!(k("MSET a 1 b 2"), [1, 3]);
        assert_eq!(k("RENAME a b"), [1, 2]);
        assert_eq!(k("ZUNIONSTORE d 2 x y WEIGHTS 1 2"), [1, 3, 4]);
        assert_eq!(k("BITOP AND d x y"), [2, 3, 4]);
        assert_eq!(k("SORT l BY w STORE d"), [1, 5]);
        assert_eq!(k("PUBLISH ch msg"), Vec::<usize>::new());
        assert_eq!(k("XGROUP CREATE s g $"), [2]);
        assert_eq!(k("SORT store STORE d"), [1, 3]);
        assert_eq!(k("GEORADIUS g 0 0 5 km STORE d"), [1, 7]);
    }

    #[test]
    fn moves_between_databases_and_expiry_deletes() {
        let s = Scope::new(&[0], &["user:*".into()]);
        let tx = |c: &[(u64, &str)]| c.iter().map(|(d, s)| (*d, cmd(s))).collect::<Vec<_>>();
        // a key moved into an unsynced database: mixed
        assert!(matches!(s.judge(&tx(&[(0, "MOVE user:1 3")])), Verdict::Mixed(..)));
        assert!(matches!(
            s.judge(&tx(&[(0, "COPY user:1 user:2 DB 3")])),
            Verdict::Mixed(..)
        ));
        assert_eq!(s.judge(&tx(&[(0, "COPY user:1 user:2")])), Verdict::Ship);
        // a cache key's expiry inside a synced transaction, and a PUBLISH, trimmed
        let mut t = tx(&[(0, "DEL cache:x"), (0, "INCR user:n"), (0, "PUBLISH ch m")]);
        s.trim(&mut t);
        assert_eq!(t.len(), 1);
        assert_eq!(s.judge(&t), Verdict::Ship);
    }

    #[test]
    fn scope_ships_drops_and_alerts() {
        let s = Scope::new(&[0, 2], &["user:*".into(), "counter:*".into()]);
        let tx = |c: &[(u64, &str)]| c.iter().map(|(d, s)| (*d, cmd(s))).collect::<Vec<_>>();
        assert_eq!(
            s.judge(&tx(&[(0, "SET user:1 x"), (0, "INCR counter:a")])),
            Verdict::Ship
        );
        assert_eq!(s.judge(&tx(&[(0, "SET cache:1 x")])), Verdict::Drop);
        assert_eq!(
            s.judge(&tx(&[(1, "SET user:1 x")])),
            Verdict::Drop,
            "database 1 not synced"
        );
        assert_eq!(s.judge(&tx(&[(0, "SET drc:pos:a x")])), Verdict::Drop, "drc's own keys");
        assert!(matches!(
            s.judge(&tx(&[(0, "RENAME user:1 cache:1")])),
            Verdict::Mixed(..)
        ));
        assert!(matches!(
            s.judge(&tx(&[(0, "SET user:1 x"), (1, "SET user:2 y")])),
            Verdict::Mixed(..)
        ));
        assert_eq!(s.judge(&tx(&[(0, "PUBLISH user:1 x")])), Verdict::Drop);
        assert_eq!(
            s.judge(&tx(&[(0, "FUNCTION LOAD x")])),
            Verdict::Unkeyed("FUNCTION".into())
        );
    }
}
