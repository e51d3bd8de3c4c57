//! A Kafka message's payload as each consumer decodes it: MySQL transactions
//! (`json/1` and `json/2`), Redis items and ZooKeeper items.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // drc turns some panics of its libraries into errors (catch_unwind): those must not
    // abort the run; a panic that escapes still does (libfuzzer-sys catches it)
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let _ = drc::model::wire::decode(data);
    let _ = drc::model::wire::decode_batch(data);
    let _ = drc::redis::wire::decode(data);
    let roots = [
        drc::zookeeper::Root {
            path: "/app".into(),
            mode: drc::zookeeper::ZkMode::Lww,
        },
        drc::zookeeper::Root {
            path: "/cfg".into(),
            mode: drc::zookeeper::ZkMode::Partitioned,
        },
    ];
    let _ = drc::zookeeper::wire::decode(data, &roots);
});
