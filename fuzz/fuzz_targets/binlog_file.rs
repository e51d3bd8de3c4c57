//! A binlog file of either flavor: the input after the 4-byte magic. Every event
//! header, length, TABLE_MAP (the row decoder's table metadata), rows event and
//! compressed payload is the fuzzer's: the reader must end with a transaction list or
//! an error naming the offset, never a panic or an allocation beyond the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    // drc turns some panics of its libraries into errors (catch_unwind): those must not
    // abort the run; a panic that escapes still does (libfuzzer-sys catches it)
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let path = std::env::temp_dir().join(format!("drc-fuzz-binlog-{}.bin", std::process::id()));
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&[0xfe, b'b', b'i', b'n']).unwrap();
    f.write_all(data).unwrap();
    drop(f);
    let limits = drc::mysql::reader::assembler::Limits::default();
    let _ = drc::mysql::reader::file::read_file(&path, "z", limits, |_tx| Ok(()));
});
