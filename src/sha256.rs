//! SHA-256 for bulk data (NARs, image layers): OpenSSL's libcrypto, through
//! the same `SHA256_Init`/`Update`/`Final` calls Nix makes, loaded the
//! first time something is hashed; the `sha2` crate where no libcrypto
//! loads.
//!
//! Why libcrypto: it picks its assembly for the CPU it runs on (SHA-NI,
//! AVX2, AVX, SSSE3), so `nucleus hash` keeps up with `nix hash path` on
//! every CPU, and `OPENSSL_ia32cap` steers both alike. With SHA-NI every
//! candidate measured 2.1 GB/s; with it masked, libcrypto did 760 MB/s,
//! aws-lc-rs 607, the `sha2` crate 515 (470 with its `asm` feature).
//! `ring` could not be measured without SHA-NI, as nothing masks CPU
//! features from it.
//!
//! Why loaded, not linked: linking it makes every nucleus process map and
//! relocate the whole library at start-up (1.4 MB of its peak memory, and
//! time), while only `hash`, `verify --deep` and `image` hash more than a
//! few kilobytes. Small digests (the bundle digest, cache keys) use the
//! `sha2` crate directly.
//!
//! Where: the path the build names in `NUCLEUS_LIBCRYPTO` (the Nix package
//! and the flake's development shell set it to their OpenSSL), then the
//! sonames of OpenSSL 3 and 1.1 as the dynamic loader finds them; only
//! functions carrying OpenSSL's symbol versions are taken.

use std::ffi::{c_int, c_void, CStr, CString};
use std::sync::OnceLock;

/// Where libcrypto is looked for, in order.
const CANDIDATES: [Option<&str>; 3] =
    [option_env!("NUCLEUS_LIBCRYPTO"), Some("libcrypto.so.3"), Some("libcrypto.so.1.1")];

/// The symbol versions OpenSSL gives these calls. Asking for them, not
/// for bare names, takes only OpenSSL's own functions: a library that has
/// the soname and the names but another ABI is passed over, as the
/// dynamic loader would refuse it to a program linked against OpenSSL.
const VERSIONS: [&CStr; 2] = [c"OPENSSL_3.0.0", c"OPENSSL_1_1_0"];

/// OpenSSL's `SHA256_CTX` is 112 bytes of 32-bit words in every version
/// that exports these calls; the context is opaque here, with room to
/// spare.
#[repr(C, align(8))]
#[derive(Clone)]
struct Context([u8; 128]);

type InitFn = unsafe extern "C" fn(*mut Context) -> c_int;
type UpdateFn = unsafe extern "C" fn(*mut Context, *const c_void, usize) -> c_int;
type FinalFn = unsafe extern "C" fn(*mut u8, *mut Context) -> c_int;

/// The three calls of a library that stays loaded for the life of the
/// process.
struct Libcrypto {
    init: InitFn,
    update: UpdateFn,
    finish: FinalFn,
}

static LIBCRYPTO: OnceLock<Option<Libcrypto>> = OnceLock::new();

fn libcrypto() -> Option<&'static Libcrypto> {
    LIBCRYPTO
        .get_or_init(|| {
            let mut failures = Vec::new();
            for name in CANDIDATES.into_iter().flatten() {
                match load(name) {
                    Ok(found) => {
                        tracing::debug!("SHA-256 from {name}");
                        return Some(found);
                    }
                    Err(e) => failures.push(e),
                }
            }
            tracing::debug!("SHA-256 from the sha2 crate, as no libcrypto loaded ({})", failures.join("; "));
            None
        })
        .as_ref()
}

fn load(name: &str) -> Result<Libcrypto, String> {
    let c_name = CString::new(name).map_err(|_| format!("{name}: a NUL in the name"))?;
    // SAFETY: dlopen runs only libcrypto's own initialisers (CPU
    // detection); the handle is kept open for the life of the process.
    let handle = unsafe { libc::dlopen(c_name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(format!("{name}: {}", dl_error()));
    }
    for version in VERSIONS {
        // SAFETY: `handle` is open; the names and version are C strings.
        let symbol = |symbol: &CStr| unsafe {
            let found = libc::dlvsym(handle, symbol.as_ptr(), version.as_ptr());
            (!found.is_null()).then_some(found)
        };
        if let (Some(init), Some(update), Some(finish)) =
            (symbol(c"SHA256_Init"), symbol(c"SHA256_Update"), symbol(c"SHA256_Final"))
        {
            // SAFETY: these are OpenSSL's own (by their symbol version),
            // with these signatures in 1.1 and 3.x alike.
            return Ok(unsafe {
                Libcrypto {
                    init: std::mem::transmute::<*mut c_void, InitFn>(init),
                    update: std::mem::transmute::<*mut c_void, UpdateFn>(update),
                    finish: std::mem::transmute::<*mut c_void, FinalFn>(finish),
                }
            });
        }
    }
    // SAFETY: nothing of the library is used any more.
    unsafe { libc::dlclose(handle) };
    Err(format!("{name}: no SHA256_Init of OpenSSL 3 or 1.1"))
}

/// The dynamic loader's last error.
fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a C string valid until the next call.
    let message = unsafe { libc::dlerror() };
    if message.is_null() {
        return "cannot be loaded".into();
    }
    // SAFETY: non-NULL, so a C string.
    unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned()
}

/// A SHA-256 in progress over data fed to it in pieces.
#[derive(Clone)]
pub struct BulkSha256(Engine);

#[derive(Clone)]
enum Engine {
    Libcrypto(&'static Libcrypto, Box<Context>),
    Rust(sha2::Sha256),
}

impl BulkSha256 {
    pub fn new() -> Self {
        match libcrypto() {
            Some(lib) => {
                let mut context = Box::new(Context([0; 128]));
                // SAFETY: `context` is writable and larger than SHA256_CTX.
                unsafe { (lib.init)(&mut *context) };
                BulkSha256(Engine::Libcrypto(lib, context))
            }
            None => BulkSha256(Engine::Rust(sha2::Digest::new())),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            // SAFETY: the context was set up by SHA256_Init; `data` is
            // readable for its length.
            Engine::Libcrypto(lib, context) => unsafe {
                (lib.update)(&mut **context, data.as_ptr().cast(), data.len());
            },
            Engine::Rust(hasher) => sha2::Digest::update(hasher, data),
        }
    }

    pub fn finish(self) -> [u8; 32] {
        match self.0 {
            Engine::Libcrypto(lib, mut context) => {
                let mut digest = [0; 32];
                // SAFETY: `digest` has room for the 32 bytes written.
                unsafe { (lib.finish)(digest.as_mut_ptr(), &mut *context) };
                digest
            }
            Engine::Rust(hasher) => sha2::Digest::finalize(hasher).into(),
        }
    }

    /// Whether libcrypto does the hashing (else the `sha2` crate).
    pub fn uses_libcrypto() -> bool {
        libcrypto().is_some()
    }
}

impl Default for BulkSha256 {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(data: &[u8], step: usize, mut hasher: BulkSha256) -> [u8; 32] {
        for chunk in data.chunks(step) {
            hasher.update(chunk);
        }
        hasher.finish()
    }

    /// FIPS 180-2's two-block example, and data fed in odd pieces, agree
    /// with the `sha2` crate whichever engine runs.
    #[test]
    fn agrees_with_the_reference() {
        let expected = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
        let message = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(crate::policy::hex(&pieces(message, 7, BulkSha256::new())), expected);
        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let reference: [u8; 32] = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&data)).into();
        for step in [1, 63, 64, 65, 4096, 1 << 20] {
            assert_eq!(pieces(&data, step, BulkSha256::new()), reference, "pieces of {step}");
        }
        assert_eq!(pieces(&data, 1000, BulkSha256(Engine::Rust(sha2::Digest::new()))), reference);
    }

    /// A clone continues on its own.
    #[test]
    fn clones_are_independent() {
        let mut a = BulkSha256::new();
        a.update(b"abc");
        let mut b = a.clone();
        b.update(b"def");
        let mut whole = BulkSha256::new();
        whole.update(b"abcdef");
        assert_eq!(b.finish(), whole.finish());
        let mut only = BulkSha256::new();
        only.update(b"abc");
        assert_eq!(a.finish(), only.finish());
    }
}
