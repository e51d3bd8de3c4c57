//! A Redis snapshot (RDB) as a full sync reads it from the origin's server, item by
//! item (a value in chunks), to its end or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // drc turns some panics of its libraries into errors (catch_unwind): those must not
    // abort the run; a panic that escapes still does (libfuzzer-sys catches it)
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let Ok(mut rdb) = drc::redis::rdb::Rdb::open(data).await else {
            return;
        };
        while let Ok(Some(_)) = rdb.next().await {}
    });
});
