//! The body-override reader: arbitrary bytes under each form content type
//! must never panic, and a body that Rack would read as an override (a field
//! named `_method` after `+`/`%XX` decoding, fields split at `&`) must never
//! pass `method_override = "reject"`.
#![no_main]

use authzd::{
    config::RequestConfig,
    request::{
        body::{Body, overrides},
        canonical,
    },
};
use libfuzzer_sys::fuzz_target;

const TYPES: [Option<&str>; 5] = [
    None,
    Some("application/x-www-form-urlencoded"),
    Some("multipart/form-data; boundary=b"),
    Some("application/json"),
    Some("text/plain"),
];

/// Rack's reading of a urlencoded body, kept deliberately simple.
fn rack_sees_override(data: &[u8]) -> bool {
    data.split(|&b| b == b'&').any(|pair| {
        let name = pair.split(|&b| b == b'=').next().unwrap_or(pair);
        let spaced: Vec<u8> = name.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
        percent_encoding::percent_decode(&spaced).decode_utf8_lossy() == "_method"
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, bytes)) = data.split_first() else {
        return;
    };
    let content_type = TYPES[usize::from(flags) % TYPES.len()];
    let body = Body {
        content_type,
        bytes,
        partial: flags & 0x80 != 0,
    };
    let found = overrides(&body);
    let decided = canonical("POST", "/docs/1", &[None; 3], Some(&body), &RequestConfig::default());
    if content_type.is_none_or(|t| t.starts_with("application/x-www")) && rack_sees_override(bytes) {
        assert!(body.partial || found.is_ok_and(|f| !f.is_empty()), "{bytes:?}");
        assert!(decided.is_err(), "BYPASS: {bytes:?}");
    }
});
