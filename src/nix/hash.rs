//! The sha256 of a NAR and the textual forms Nix prints it in.
//!
//! Nix 2.8's `nix path-info --json` prints narHash as SRI (`sha256-<base64>`)
//! while older tools and the store database use `sha256:<nix32>`; both parse
//! to the same [`NarHash`], so comparisons never depend on the Nix version.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::nix::base32;

/// How to print a [`NarHash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HashFormat {
    /// `sha256-<base64>`, what `nix hash path` prints by default.
    #[default]
    Sri,
    /// Bare nixbase32, what `nix hash path --base32` prints.
    Nix32,
    /// Bare lowercase hex, what `nix hash path --base16` prints.
    Base16,
}

impl FromStr for HashFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sri" => Ok(HashFormat::Sri),
            "nix32" | "base32" => Ok(HashFormat::Nix32),
            "base16" => Ok(HashFormat::Base16),
            _ => Err(Error::invalid("hash format", format!("'{s}' is not one of sri, nix32, base32, base16"))),
        }
    }
}

impl fmt::Display for HashFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HashFormat::Sri => "sri",
            HashFormat::Nix32 => "nix32",
            HashFormat::Base16 => "base16",
        })
    }
}

/// A sha256 NAR hash. `Display` prints it as SRI.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NarHash(pub [u8; 32]);

const SHA256_LEN: usize = 32;
const BASE16_LEN: usize = 2 * SHA256_LEN;
const NIX32_LEN: usize = base32::encoded_len(SHA256_LEN);
const BASE64_LEN: usize = SHA256_LEN.div_ceil(3) * 4;

impl NarHash {
    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Prints the hash the way `nix hash path` does with the matching flag.
    pub fn format(&self, format: HashFormat) -> String {
        match format {
            HashFormat::Sri => format!("sha256-{}", base64_encode(&self.0)),
            HashFormat::Nix32 => base32::encode(&self.0),
            HashFormat::Base16 => hex_encode(&self.0),
        }
    }

    /// Parses `sha256-<base64>`, `sha256:<nix32|base16|base64>`, or a bare
    /// nix32 (52 characters) or base16 (64 characters) digest.
    pub fn parse(s: &str) -> Result<NarHash> {
        let s = s.trim();
        let bad = |why: String| Error::invalid(format!("NAR hash '{s}'"), why);
        let mut bytes = [0u8; SHA256_LEN];
        if let Some(b64) = s.strip_prefix("sha256-") {
            base64_decode(b64, &mut bytes).map_err(bad)?;
        } else {
            let digest = s.strip_prefix("sha256:").unwrap_or(s);
            if let Some((algo, _)) = digest.split_once([':', '-']) {
                return Err(bad(format!("'{algo}' hashes are not supported, only sha256")));
            }
            match digest.len() {
                BASE16_LEN => hex_decode(digest, &mut bytes).map_err(bad)?,
                NIX32_LEN => base32::decode_into(digest, &mut bytes)?,
                // Nix accepts base64 after `sha256:`, though it never prints it.
                BASE64_LEN if digest.len() < s.len() => base64_decode(digest, &mut bytes).map_err(bad)?,
                n => {
                    return Err(bad(format!(
                        "a sha256 digest has {BASE16_LEN} (base16) or {NIX32_LEN} (nix32) \
                         characters, not {n}"
                    )))
                }
            }
        }
        Ok(NarHash(bytes))
    }
}

impl From<[u8; 32]> for NarHash {
    fn from(bytes: [u8; 32]) -> Self {
        NarHash(bytes)
    }
}

impl FromStr for NarHash {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        NarHash::parse(s)
    }
}

impl fmt::Display for NarHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format(HashFormat::Sri))
    }
}

impl fmt::Debug for NarHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NarHash({self})")
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

fn hex_decode(s: &str, out: &mut [u8]) -> std::result::Result<(), String> {
    if s.len() != out.len() * 2 {
        return Err(format!("expected {} hex digits, got {}", out.len() * 2, s.len()));
    }
    let nibble = |pos: usize| {
        let c = s.as_bytes()[pos];
        char::from(c)
            .to_digit(16)
            .map(|d| d as u8)
            .ok_or_else(|| format!("byte {pos} ('{}') is not a hex digit", c.escape_ascii()))
    };
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = (nibble(2 * i)? << 4) | nibble(2 * i + 1)?;
    }
    Ok(())
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(BASE64[(n >> (18 - 6 * k) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes padded standard base64 into exactly `out.len()` bytes.
fn base64_decode(s: &str, out: &mut [u8]) -> std::result::Result<(), String> {
    let want = out.len().div_ceil(3) * 4;
    if s.len() != want {
        return Err(format!("expected {want} base64 characters, got {}", s.len()));
    }
    let pad = (3 - out.len() % 3) % 3;
    let (data, padding) = s.as_bytes().split_at(want - pad);
    if padding.iter().any(|&c| c != b'=') {
        return Err(format!("expected {pad} '=' of padding at the end"));
    }
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut written = 0;
    for (pos, &c) in data.iter().enumerate() {
        let v = BASE64
            .iter()
            .position(|&a| a == c)
            .ok_or_else(|| format!("byte {pos} ('{}') is not a base64 digit", c.escape_ascii()))?;
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out[written] = (acc >> bits) as u8;
            written += 1;
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero, or two strings would name one hash.
    if acc != 0 {
        return Err("the last base64 digit has bits set beyond the digest".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // sha256("abc") in the forms Nix 2.8 prints it.
    const HEX: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const NIX32: &str = "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s";
    const SRI: &str = "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=";

    fn abc() -> NarHash {
        NarHash::parse(HEX).unwrap()
    }

    #[test]
    fn formats_like_nix() {
        let h = abc();
        assert_eq!(h.format(HashFormat::Sri), SRI);
        assert_eq!(h.format(HashFormat::Nix32), NIX32);
        assert_eq!(h.format(HashFormat::Base16), HEX);
        assert_eq!(h.to_string(), SRI);
    }

    #[test]
    fn empty_sha256_sri() {
        let h = NarHash::parse("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855").unwrap();
        assert_eq!(h.to_string(), "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    }

    #[test]
    fn every_notation_parses_to_one_value() {
        let h = abc();
        for s in [
            SRI.to_string(),
            format!("sha256:{NIX32}"),
            format!("sha256:{HEX}"),
            format!("sha256:{}", &SRI[7..]),
            NIX32.to_string(),
            HEX.to_string(),
            HEX.to_uppercase(),
            format!("  {SRI}\n"),
        ] {
            assert_eq!(NarHash::parse(&s).unwrap(), h, "{s}");
            assert_eq!(s.parse::<NarHash>().unwrap(), h, "{s}");
        }
    }

    #[test]
    fn round_trips_through_every_format() {
        for seed in 0..50u8 {
            let bytes: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(seed) ^ seed);
            let h = NarHash(bytes);
            for f in [HashFormat::Sri, HashFormat::Nix32, HashFormat::Base16] {
                assert_eq!(NarHash::parse(&h.format(f)).unwrap(), h);
            }
        }
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "sha256-",
            "sha256:",
            "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0",
            "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa1=",
            "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAF!0=",
            "sha512-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=",
            "sha1:kpcd173cq987hw957sx6m0868wv3x6d9",
            &HEX[1..],
            &format!("{}g", &HEX[1..]),
            &format!("e{}", &NIX32[1..]),
            &SRI[7..],
        ] {
            assert!(NarHash::parse(s).is_err(), "{s:?} parsed");
        }
    }

    #[test]
    fn errors_name_the_problem() {
        for bad in ["md5:3y8bwfr609h3lh9ch0izcqq7fl", "abc"] {
            assert!(matches!(NarHash::parse(bad), Err(Error::InvalidArgument { .. })), "{bad}");
        }
    }

    #[test]
    fn base64_handles_every_tail_length() {
        // RFC 4648 test vectors.
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(raw.as_bytes()), enc);
            let mut out = vec![0u8; raw.len()];
            base64_decode(enc, &mut out).unwrap();
            assert_eq!(out, raw.as_bytes());
        }
    }

    #[test]
    fn hash_format_names() {
        assert_eq!("sri".parse::<HashFormat>().unwrap(), HashFormat::Sri);
        assert_eq!("nix32".parse::<HashFormat>().unwrap(), HashFormat::Nix32);
        assert_eq!("base32".parse::<HashFormat>().unwrap(), HashFormat::Nix32);
        assert_eq!("base16".parse::<HashFormat>().unwrap(), HashFormat::Base16);
        assert!("hex".parse::<HashFormat>().is_err());
        assert_eq!(HashFormat::default(), HashFormat::Sri);
    }
}
