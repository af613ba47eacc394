//! nixbase32: decoding accepts only canonical encodings, and encoding
//! round-trips any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nucleus::nix::base32;

fuzz_target!(|data: &[u8]| {
    let text = base32::encode(data);
    assert_eq!(text.len(), base32::encoded_len(data.len()));
    assert_eq!(base32::decoded_len(text.len()), Some(data.len()));
    assert_eq!(base32::decode(&text).unwrap(), data);
    let Ok(input) = std::str::from_utf8(data) else { return };
    if let Ok(bytes) = base32::decode(input) {
        assert_eq!(base32::encode(&bytes), input, "{input:?} is not canonical");
    }
    let mut out = vec![0u8; data.len() % 40];
    if base32::decode_into(input, &mut out).is_ok() {
        assert_eq!(base32::encode(&out), input);
    }
});
