//! A config file's text: parsed and validated (an error that names the setting, or a
//! config), never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // drc turns some panics of its libraries into errors (catch_unwind): those must not
    // abort the run; a panic that escapes still does (libfuzzer-sys catches it)
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = drc::config::Config::parse(text, std::path::Path::new("/nonexistent"));
    }
});
