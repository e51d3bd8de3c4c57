//! The RDB snapshot reader against snapshots written by a real redis-server (7.0, the
//! testenv's zone a on 127.0.0.1:6381, `testenv/up.sh --redis`): every type in its
//! compact and its large encoding (listpack, intset, quicklist of several nodes,
//! hashtable, skiplist), integer and LZF-compressed strings, expiry times, two
//! databases; every collection handed out in chunks of at most `CHUNK` elements.
//!
//! Run: `testenv/up.sh --redis && cargo nextest run --test redis_rdb`.

mod common;

use common::redis::redis_cli;
use drc::redis::rdb::{Kind, Rdb, RdbItem, CHUNK};
use std::collections::{BTreeMap, BTreeSet};

const PORT: &str = "6381";
// databases of their own on the shared test server
const DB: u64 = 5;
const OTHER_DB: u64 = 6;

fn cli(db: u64, commands: &str) -> String {
    redis_cli(PORT, db, commands)
}

#[derive(Debug, Default, PartialEq)]
struct Value {
    kind: Option<Kind>,
    expire_at_ms: Option<i64>,
    list: Vec<String>,
    set: BTreeSet<String>,
    hash: BTreeMap<String, String>,
    zset: BTreeMap<String, f64>,
    string: Option<String>,
}

fn cur<'a>(keys: &'a mut BTreeMap<(u64, String), Value>, current: &Option<(u64, String)>) -> &'a mut Value {
    keys.get_mut(current.as_ref().expect("inside a key")).unwrap()
}

#[tokio::test]
async fn snapshots_of_a_real_server_read_back_exactly() {
    let t = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
    // what is written, and what must be read back
    let big_list: Vec<String> = (0..20_000)
        .map(|i| format!("item-{i:05}-{}", "x".repeat(i % 30)))
        .collect();
    let big_set: BTreeSet<String> = (0..5_000).map(|i| format!("member-{i}")).collect();
    let big_hash: BTreeMap<String, String> = (0..1_000).map(|i| (format!("f{i}"), format!("value {i}"))).collect();
    let big_zset: BTreeMap<String, f64> = (0..1_000).map(|i| (format!("z{i}"), i as f64 * 0.25 - 100.0)).collect();
    let long = "abcdefghij".repeat(300); // compressible: LZF
    let expire_at = (std::time::SystemTime::now() + std::time::Duration::from_secs(3600))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut cmds = String::from("FLUSHDB\n");
    cmds += "SET s:int 12345\nSET s:neg -7\nSET s:plain hello\n";
    cmds += &format!("SET s:long {long}\nPEXPIREAT s:plain {expire_at}\n");
    cmds += "RPUSH l:small a b 3 -4 5000000000\n";
    for chunk in big_list.chunks(500) {
        cmds += &format!("RPUSH l:big {}\n", chunk.join(" "));
    }
    cmds += "SADD set:ints 1 2 3 -5 70000\nSADD set:strs apple pear\n";
    for chunk in big_set.iter().collect::<Vec<_>>().chunks(500) {
        cmds += &format!(
            "SADD set:big {}\n",
            chunk.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
        );
    }
    cmds += "HSET h:small name drc zone a n 12\n";
    for (f, v) in &big_hash {
        cmds += &format!("HSET h:big {f} \"{v}\"\n");
    }
    cmds += "ZADD z:small 1.5 one -2 two 30000000000 three\n";
    for (m, s) in &big_zset {
        cmds += &format!("ZADD z:big {s} {m}\n");
    }
    cli(DB, &cmds);
    cli(OTHER_DB, "FLUSHDB\nSET elsewhere 1\n");
    assert!(cli(DB, "SAVE\n").contains("OK"));
    let dir = cli(DB, "CONFIG GET dir\n");
    let dir = dir.lines().nth(1).expect("CONFIG GET dir").trim().to_string();

    let file = tokio::fs::File::open(format!("{dir}/dump.rdb")).await.unwrap();
    let mut rdb = Rdb::open(tokio::io::BufReader::new(file)).await.unwrap();
    let mut keys: BTreeMap<(u64, String), Value> = BTreeMap::new();
    let mut current: Option<(u64, String)> = None;
    let mut largest_chunk = 0;
    let mut ended = false;
    let mut aux = BTreeMap::new();
    while let Some(item) = rdb.next().await.unwrap() {
        match item {
            RdbItem::Aux(k, val) => {
                aux.insert(t(&k), t(&val));
            }
            RdbItem::Db(_) => {}
            RdbItem::Key {
                db,
                key,
                kind,
                expire_at_ms,
            } => {
                let k = (db, t(&key));
                keys.insert(
                    k.clone(),
                    Value {
                        kind: Some(kind),
                        expire_at_ms,
                        ..Default::default()
                    },
                );
                current = Some(k);
            }
            RdbItem::Str(s) => cur(&mut keys, &current).string = Some(t(&s)),
            RdbItem::List(l) => {
                if current.as_ref().is_some_and(|c| c.0 == DB) {
                    largest_chunk = largest_chunk.max(l.len());
                }
                cur(&mut keys, &current).list.extend(l.iter().map(|x| t(x)));
            }
            RdbItem::Set(s) => {
                if current.as_ref().is_some_and(|c| c.0 == DB) {
                    largest_chunk = largest_chunk.max(s.len());
                }
                cur(&mut keys, &current).set.extend(s.iter().map(|x| t(x)));
            }
            RdbItem::Hash(h) => {
                if current.as_ref().is_some_and(|c| c.0 == DB) {
                    largest_chunk = largest_chunk.max(h.len());
                }
                cur(&mut keys, &current)
                    .hash
                    .extend(h.iter().map(|(f, x)| (t(f), t(x))));
            }
            RdbItem::Zset(z) => {
                if current.as_ref().is_some_and(|c| c.0 == DB) {
                    largest_chunk = largest_chunk.max(z.len());
                }
                cur(&mut keys, &current).zset.extend(z.iter().map(|(m, s)| (t(m), *s)));
            }
            RdbItem::KeyEnd => current = None,
            RdbItem::End => ended = true,
        }
    }
    assert!(ended, "the snapshot ends with its checksum verified");
    assert!(aux.get("redis-ver").is_some_and(|v| v.starts_with('7')), "{aux:?}");
    // a chunk is CHUNK elements, or the nodes of a list up to past CHUNK (a quicklist
    // node, at most 8 kB, is not split); this test's keys only (other databases of the
    // shared server may hold lists of tiny elements: thousands in one 8 kB node)
    assert!(largest_chunk <= CHUNK + 1000, "a chunk of {largest_chunk} elements");
    let get = |k: &str| keys.get(&(DB, k.to_string())).unwrap_or_else(|| panic!("{k} missing"));
    assert_eq!(get("s:int").string.as_deref(), Some("12345"));
    assert_eq!(get("s:neg").string.as_deref(), Some("-7"));
    assert_eq!(get("s:long").string.as_deref(), Some(long.as_str()));
    assert_eq!(get("s:plain").string.as_deref(), Some("hello"));
    assert_eq!(get("s:plain").expire_at_ms, Some(expire_at));
    assert_eq!(get("s:int").expire_at_ms, None);
    assert_eq!(get("l:small").list, ["a", "b", "3", "-4", "5000000000"]);
    assert_eq!(get("l:big").kind, Some(Kind::List));
    assert_eq!(get("l:big").list, big_list);
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(get("set:ints").set, set(&["1", "2", "3", "-5", "70000"]));
    assert_eq!(get("set:strs").set, set(&["apple", "pear"]));
    assert_eq!(get("set:big").set, big_set);
    let hash: BTreeMap<String, String> = [("name", "drc"), ("zone", "a"), ("n", "12")]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(get("h:small").hash, hash);
    assert_eq!(get("h:big").hash, big_hash);
    let zs: BTreeMap<String, f64> = [("one", 1.5), ("two", -2.0), ("three", 3e10)]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b))
        .collect();
    assert_eq!(get("z:small").zset, zs);
    assert_eq!(get("z:small").kind, Some(Kind::Zset));
    assert_eq!(get("z:big").zset, big_zset);
    assert_eq!(
        keys.get(&(OTHER_DB, "elsewhere".to_string()))
            .and_then(|v| v.string.clone())
            .as_deref(),
        Some("1")
    );
    cli(DB, "FLUSHDB\n");
    cli(OTHER_DB, "FLUSHDB\n");
}
