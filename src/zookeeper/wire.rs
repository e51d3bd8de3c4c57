//! ZooKeeper items on Kafka (`drc-zk-v1`): consecutive [`ZkItem`]s per message, MessagePack
//! with fields by name; node data as a binary, ACLs as (permission bits, scheme, id);
//! the root by its path (the consumer finds it among its own roots).

use super::source::ZkItem;
use super::Root;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::collections::HashSet;
use zookeeper_client as zk;

/// The `drc-format` header of a ZooKeeper message.
pub const FORMAT: &str = "drc-zk-v1";

#[derive(Serialize, Deserialize)]
struct Acl {
    perms: u32,
    scheme: String,
    id: String,
}

#[derive(Serialize, Deserialize)]
enum Item {
    Upsert {
        root: String,
        path: String,
        data: ByteBuf,
        acl: Vec<Acl>,
        mtime: i64,
        mzxid: i64,
        live: bool,
    },
    Delete {
        root: String,
        path: String,
        at_ms: i64,
    },
    Reconciled {
        root: String,
        present: Vec<String>,
        origin_root: bool,
    },
}

const BITS: [(u32, zk::Permission); 5] = [
    (1, zk::Permission::READ),
    (2, zk::Permission::WRITE),
    (4, zk::Permission::CREATE),
    (8, zk::Permission::DELETE),
    (16, zk::Permission::ADMIN),
];

fn perms(p: zk::Permission) -> u32 {
    BITS.iter().filter(|(_, x)| p.has(*x)).map(|(b, _)| b).sum()
}

fn permission(bits: u32) -> zk::Permission {
    BITS.iter()
        .filter(|(b, _)| bits & b != 0)
        .fold(zk::Permission::NONE, |p, (_, x)| p | *x)
}

/// Encodes consecutive items of a direction whose roots are `roots` as one message.
pub fn encode(items: &[ZkItem], roots: &[Root]) -> Vec<u8> {
    let wire: Vec<Item> = items.iter().map(|i| item(i, roots)).collect();
    rmp_serde::to_vec_named(&wire).expect("ZooKeeper items serialize")
}

fn item(item: &ZkItem, roots: &[Root]) -> Item {
    let path_of = |i: &usize| roots[*i].path.clone();
    match item {
        ZkItem::Upsert {
            root,
            path,
            data,
            acl,
            mtime,
            mzxid,
            live,
        } => Item::Upsert {
            root: path_of(root),
            path: path.clone(),
            data: ByteBuf::from(data.clone()),
            acl: acl
                .iter()
                .map(|a| Acl {
                    perms: perms(a.permission()),
                    scheme: a.scheme().to_string(),
                    id: a.id().to_string(),
                })
                .collect(),
            mtime: *mtime,
            mzxid: *mzxid,
            live: *live,
        },
        ZkItem::Delete { root, path, at_ms } => Item::Delete {
            root: path_of(root),
            path: path.clone(),
            at_ms: *at_ms,
        },
        ZkItem::Reconciled {
            root,
            present,
            origin_root,
        } => {
            let mut present: Vec<String> = present.iter().cloned().collect();
            present.sort();
            Item::Reconciled {
                root: path_of(root),
                present,
                origin_root: *origin_root,
            }
        }
    }
}

/// Decodes a message for a direction whose roots are `roots` (a root this zone does
/// not mirror, or a path outside its root, is an error).
pub fn decode(payload: &[u8], roots: &[Root]) -> Result<Vec<ZkItem>, String> {
    let wire: Vec<Item> = rmp_serde::from_slice(payload).map_err(|e| format!("not a {FORMAT} message: {e}"))?;
    if wire.is_empty() {
        return Err(format!("{FORMAT}: an empty message"));
    }
    wire.into_iter().map(|w| resolve(w, roots)).collect()
}

fn resolve(wire: Item, roots: &[Root]) -> Result<ZkItem, String> {
    let (name, path) = match &wire {
        Item::Upsert { root, path, .. } | Item::Delete { root, path, .. } => (root, Some(path)),
        Item::Reconciled { root, .. } => (root, None),
    };
    let Some(root) = roots.iter().position(|r| r.path == *name) else {
        return Err(format!(
            "{FORMAT}: root {name:?} of the origin is not one this zone mirrors from it: the zones' [[zookeeper.roots]] differ (they must be the same in every zone)"
        ));
    };
    if let Some(p) = path {
        if !(p == name || p.starts_with(&format!("{name}/"))) || p.contains("//") {
            return Err(format!("{FORMAT}: path {p:?} is not under its root {name:?}"));
        }
    }
    Ok(match wire {
        Item::Upsert {
            path,
            data,
            acl,
            mtime,
            mzxid,
            live,
            ..
        } => ZkItem::Upsert {
            root,
            path,
            data: data.into_vec(),
            acl: acl
                .into_iter()
                .map(|a| zk::Acl::new(permission(a.perms), zk::AuthId::new(&a.scheme, &a.id)))
                .collect(),
            mtime,
            mzxid,
            live,
        },
        Item::Delete { path, at_ms, .. } => ZkItem::Delete { root, path, at_ms },
        Item::Reconciled {
            present, origin_root, ..
        } => ZkItem::Reconciled {
            root,
            present: present.into_iter().collect::<HashSet<_>>(),
            origin_root,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::super::ZkMode;
    use super::*;

    #[test]
    fn items_cross_unchanged_and_garbage_is_an_error() {
        let acl = vec![
            zk::Acl::new(zk::Permission::READ | zk::Permission::DELETE, zk::AuthId::anyone()),
            zk::Acl::new(zk::Permission::ALL, zk::AuthId::new("digest", "u:hash")),
        ];
        let roots = vec![
            Root {
                path: "/x".into(),
                mode: ZkMode::Lww,
            },
            Root {
                path: "/a".into(),
                mode: ZkMode::OneWay,
            },
        ];
        let items = vec![
            ZkItem::Upsert {
                root: 1,
                path: "/a/b".into(),
                data: vec![0, 255, 7],
                acl,
                mtime: 5,
                mzxid: 9,
                live: true,
            },
            ZkItem::Delete {
                root: 1,
                path: "/a/c".into(),
                at_ms: 11,
            },
            ZkItem::Reconciled {
                root: 1,
                present: ["/a".to_string(), "/a/b".to_string()].into_iter().collect(),
                origin_root: true,
            },
        ];
        let text = |i: &ZkItem| match i {
            ZkItem::Reconciled {
                root,
                present,
                origin_root,
            } => {
                let mut p: Vec<_> = present.iter().collect();
                p.sort();
                format!("{root} {p:?} {origin_root}")
            }
            other => format!("{other:?}"),
        };
        let back = decode(&encode(&items, &roots), &roots).unwrap();
        assert_eq!(back.len(), items.len());
        for (b, i) in back.iter().zip(&items) {
            assert_eq!(text(b), text(i));
        }
        assert!(decode(&encode(&items[..1], &roots), &roots[..1])
            .unwrap_err()
            .contains("roots]] differ"));
        assert!(decode(&encode(&[], &roots), &roots).is_err());
        let outside = ZkItem::Delete {
            root: 1,
            path: "/ab/c".into(),
            at_ms: 1,
        };
        assert!(decode(&encode(std::slice::from_ref(&outside), &roots), &roots)
            .unwrap_err()
            .contains("not under"));
        let good = encode(&items[1..2], &roots);
        for cut in 0..good.len() {
            assert!(decode(&good[..cut], &roots).is_err());
        }
        assert!(decode(b"junk", &roots).is_err());
    }
}
