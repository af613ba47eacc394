//! Nix's base32 ("nixbase32"), used in store path names and `sha256:` hashes.
//!
//! It is not RFC 4648: the alphabet omits `e o u t` (to avoid words in store
//! paths) and the bits are taken from the *end* of the input first, so the
//! first character holds the most significant bits of the last byte.

use crate::error::{Error, Result};

/// The 32 digits, in value order.
pub const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Number of characters that encode `bytes` bytes.
pub const fn encoded_len(bytes: usize) -> usize {
    if bytes == 0 {
        0
    } else {
        (bytes * 8 - 1) / 5 + 1
    }
}

/// Number of bytes encoded by a string of `chars` characters, if that is a
/// length `encode` can produce.
pub const fn decoded_len(chars: usize) -> Option<usize> {
    let bytes = chars * 5 / 8;
    if encoded_len(bytes) == chars {
        Some(bytes)
    } else {
        None
    }
}

/// Encodes `bytes` the way Nix prints hashes and store path digests.
pub fn encode(bytes: &[u8]) -> String {
    let len = encoded_len(bytes.len());
    let mut out = String::with_capacity(len);
    for n in (0..len).rev() {
        let b = n * 5;
        let (i, j) = (b / 8, b % 8);
        let low = bytes[i] >> j;
        // Bits that spill over from the next byte; `checked_shl` covers j == 0.
        let high = bytes.get(i + 1).map_or(0, |&next| u8::checked_shl(next, 8 - j as u32).unwrap_or(0));
        out.push(char::from(ALPHABET[usize::from((low | high) & 0x1f)]));
    }
    out
}

/// Decodes a nixbase32 string of any valid length.
pub fn decode(s: &str) -> Result<Vec<u8>> {
    let len = decoded_len(s.len())
        .ok_or_else(|| bad(s, format!("{} characters is not a length nixbase32 produces", s.len())))?;
    let mut out = vec![0u8; len];
    decode_into(s, &mut out)?;
    Ok(out)
}

/// Decodes `s` into exactly `out.len()` bytes; `s` must have
/// `encoded_len(out.len())` characters.
pub fn decode_into(s: &str, out: &mut [u8]) -> Result<()> {
    let want = encoded_len(out.len());
    if s.len() != want {
        return Err(bad(s, format!("expected {want} characters for {} bytes, got {}", out.len(), s.len())));
    }
    if let Some((pos, c)) = s.char_indices().find(|&(_, c)| !c.is_ascii() || digit(c as u8).is_none()) {
        return Err(bad(s, format!("'{c}' at position {pos} is not a nixbase32 digit")));
    }
    out.fill(0);
    // Every byte is a valid digit now, so the fallback is never taken.
    for (n, digit) in s.bytes().rev().map(|c| digit(c).unwrap_or(0)).enumerate() {
        let b = n * 5;
        let (i, j) = (b / 8, b % 8);
        out[i] |= digit << j;
        let carry = u16::from(digit) >> (8 - j);
        if i + 1 < out.len() {
            // Truncation keeps the bits that belong in the next byte.
            out[i + 1] |= carry as u8;
        } else if carry != 0 {
            // Nix rejects these too: the extra bits of the first character
            // would otherwise make several strings decode to one value.
            return Err(bad(s, "the first character has bits set beyond the encoded length".into()));
        }
    }
    Ok(())
}

/// Each byte's value as a digit, or `NOT_A_DIGIT`: one lookup per byte
/// (store paths are checked by the thousand on every run).
const NOT_A_DIGIT: u8 = 0xff;
static DIGIT_VALUES: [u8; 256] = {
    let mut table = [NOT_A_DIGIT; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

fn digit(c: u8) -> Option<u8> {
    Some(DIGIT_VALUES[usize::from(c)]).filter(|&v| v != NOT_A_DIGIT)
}

/// Whether `c` is a nixbase32 digit.
pub fn is_digit(c: u8) -> bool {
    DIGIT_VALUES[usize::from(c)] != NOT_A_DIGIT
}

fn bad(s: &str, why: String) -> Error {
    Error::invalid(format!("nixbase32 string '{s}'"), why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// (hex, `nix-hash --type sha256|sha1|md5 --to-base32 hex`) from Nix 2.8.
    const VECTORS: &[(&str, &str)] = &[
        (
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73",
        ),
        (
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s",
        ),
        (
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0000000000000000000000000000000000000000000000000000",
        ),
        (
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "1zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
        ),
        (
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "1vydmf4nfi9307pwvaw9cx2j60ggrnmqjrs54c0yzkdbi5kla8q1",
        ),
        ("a9993e364706816aba3e25717850c26c9cd0d89d", "kpcd173cq987hw957sx6m0868wv3x6d9"),
        ("d41d8cd98f00b204e9800998ecf8427e", "3y8bwfr609h3lh9ch0izcqq7fl"),
    ];

    #[test]
    fn encodes_like_nix() {
        for (hex, b32) in VECTORS {
            assert_eq!(encode(&unhex(hex)), *b32, "{hex}");
        }
    }

    #[test]
    fn decodes_like_nix() {
        for (hex, b32) in VECTORS {
            assert_eq!(decode(b32).unwrap(), unhex(hex), "{b32}");
        }
    }

    #[test]
    fn round_trips_every_length() {
        for len in 0..70usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
            let s = encode(&bytes);
            assert_eq!(s.len(), encoded_len(len));
            assert_eq!(decoded_len(s.len()), Some(len));
            assert_eq!(decode(&s).unwrap(), bytes);
        }
    }

    #[test]
    fn rejects_bad_digits() {
        // 'e', 'o', 'u', 't' are not in the alphabet, nor are capitals.
        for c in ["e", "o", "u", "t", "A", "-"] {
            let s = format!("{c}{}", &VECTORS[1].1[1..]);
            assert!(matches!(decode(&s), Err(Error::InvalidArgument { .. })), "{s}");
        }
    }

    #[test]
    fn rejects_bad_lengths() {
        assert!(matches!(decode("000"), Err(Error::InvalidArgument { .. })));
        let mut out = [0u8; 32];
        assert!(decode_into("00", &mut out).is_err());
    }

    #[test]
    fn rejects_overflowing_first_digit() {
        // 256 bits need 52 digits of which the first carries only one bit.
        let s = format!("2{}", &VECTORS[2].1[1..]);
        assert!(decode(&s).is_err());
    }

    #[test]
    fn rejects_non_ascii_without_panicking() {
        let s = format!("é{}", &VECTORS[2].1[2..]);
        assert_eq!(s.len(), 52);
        assert!(decode(&s).is_err());
    }
}
