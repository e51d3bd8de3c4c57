//! A Redis replication command stream (RESP arrays of bulk strings, as a server sends
//! them to its replica after the snapshot), read command by command to its end or an
//! error, every other command read past without its arguments (the light path).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    rt.block_on(async {
        let io = tokio::io::join(std::io::Cursor::new(data.to_vec()), tokio::io::sink());
        let mut r = drc::redis::replica::Replica::streaming(Box::new(io), "fuzz");
        let mut light = false;
        while let Ok(c) = r.next_command_light(light).await {
            light = !light;
            std::hint::black_box(c.name());
        }
    });
});
