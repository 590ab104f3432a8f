//! Who sent a message: agent keys, and the tags that prove a sender.
//!
//! Every agent has an X25519 key pair. Its secret stays in its process (a `<agent>.key` file,
//! made on first use, readable by its owner only); its public key (`<agent>.pub`) is given to
//! the agents that should believe it — copied into their key directory, like an SSH
//! `authorized_keys` entry. Two agents that know each other's public key share a secret that
//! no one else can compute (X25519 Diffie–Hellman, as in NaCl's `crypto_box` and Noise),
//! from which each derives the same pair key (HKDF-SHA256). Every message between them
//! carries a tag: HMAC-SHA256 under the pair key over the sender's and receiver's names, a
//! timestamp and the exact bytes of the message. A peer without the sender's or the
//! receiver's secret cannot make a valid tag; a tag made for one receiver is worthless to
//! another; and a receiver accepts each (sender, timestamp) once, within a window of
//! [`REPLAY_WINDOW`], so a recorded message cannot be played again.
//!
//! Why a pair key and an HMAC rather than a signature per message: a call is two messages,
//! and making and checking a tag takes about a microsecond, an order of magnitude less than an
//! Ed25519 signature and its verification; the Diffie–Hellman step runs once per pair of
//! agents and is cached. What this does not give is a tag a third agent could check, which
//! nothing here needs.
//!
//! The tag travels beside the message (as a Zenoh attachment), 41 bytes:
//! `[1] ‖ timestamp (u64, big-endian, microseconds since the Unix epoch) ‖ HMAC (32 bytes)`,
//! the HMAC taken over `b"selflet-v1" ‖ len(from) ‖ from ‖ len(to) ‖ to ‖ timestamp ‖ message`
//! (lengths as one byte). The pair key is
//! `HKDF-SHA256(salt = b"selflet-v1", ikm = X25519(own secret, peer public),
//! info = the two public keys, smaller first)`. `docs/protocol.md` shows it in Python.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use x25519_dalek::StaticSecret;

use super::Refusal;
use crate::name::is_valid_name;
use crate::sync::lock;

/// How far a message's timestamp may be from the receiver's clock, either way. Agents on
/// different machines need clocks within this of each other (NTP keeps them far closer).
pub const REPLAY_WINDOW: Duration = Duration::from_secs(300);

/// How many recent timestamps a receiver keeps per sender; past that, older ones are
/// forgotten and anything not newer than them is refused.
const REPLAY_MEMORY: usize = 65_536;

/// How many pair keys a keyring keeps; more are derived again when needed.
const PAIR_KEYS: usize = 65_536;

/// How long a peer whose public key was not found is not looked for again.
const NOT_FOUND_FOR: Duration = Duration::from_secs(2);

const CONTEXT: &[u8] = b"selflet-v1";

/// The length of a tag, in bytes.
pub const TAG_LEN: usize = 1 + 8 + 32;

/// An agent's public key: 32 bytes, written in base64 (44 characters).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&BASE64.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<PublicKey, KeyError> {
        decode32(s).map(PublicKey)
    }
}

/// A key file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not 32 bytes in base64.
    #[error("not a key: 32 bytes in base64 expected")]
    Format,
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// No secure random numbers were available to make a key.
    #[error("no secure random numbers to make a key: {0}")]
    Random(String),
}

fn decode32(s: &str) -> Result<[u8; 32], KeyError> {
    BASE64
        .decode(s.trim())
        .ok()
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or(KeyError::Format)
}

/// The keys of the agents of one process, and where to find their peers' public keys.
///
/// ```
/// use selflet_core::transport::Keyring;
///
/// let dir = std::env::temp_dir().join(format!("selflet-doc-{}", std::process::id()));
/// let keys = Keyring::new(&dir);
/// let a = keys.own_key("a")?; // made and stored on first use
/// assert_eq!(keys.public_key("a"), Some(a));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), selflet_core::transport::KeyError>(())
/// ```
pub struct Keyring {
    dir: PathBuf,
    own: Mutex<HashMap<String, StaticSecret>>,
    peers: Mutex<HashMap<String, PublicKey>>,
    not_found: Mutex<HashMap<String, std::time::Instant>>,
    pair_keys: Mutex<HashMap<(String, String), [u8; 32]>>,
    seen: Mutex<HashMap<(String, String), Seen>>,
    clock: AtomicU64,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The timestamps already accepted from one sender, within the replay window.
#[derive(Default)]
struct Seen {
    recent: BTreeSet<u64>,
    // Nothing at or below this is accepted any more.
    floor: u64,
}

impl Keyring {
    /// A keyring whose keys live in `dir`: `<agent>.key` (secret) and `<agent>.pub` files.
    pub fn new(dir: impl Into<PathBuf>) -> Keyring {
        Keyring {
            dir: dir.into(),
            own: Mutex::default(),
            peers: Mutex::default(),
            not_found: Mutex::default(),
            pair_keys: Mutex::default(),
            seen: Mutex::default(),
            clock: AtomicU64::new(0),
        }
    }

    /// The directory the keys live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The public key of a local agent, reading its secret from `<agent>.key` — or making
    /// one, and writing it there (owner-only) with `<agent>.pub` beside it, if there is none.
    pub fn own_key(&self, agent: &str) -> Result<PublicKey, KeyError> {
        if let Some(s) = lock(&self.own).get(agent) {
            return Ok(public_of(s));
        }
        let path = self.dir.join(format!("{agent}.key"));
        let secret = match std::fs::read_to_string(&path) {
            Ok(text) => StaticSecret::from(decode32(&text)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.create(agent, &path)?,
            Err(source) => return Err(KeyError::Io { path, source }),
        };
        let public = public_of(&secret);
        lock(&self.own).insert(agent.to_owned(), secret);
        lock(&self.peers).insert(agent.to_owned(), public);
        Ok(public)
    }

    fn create(&self, agent: &str, path: &Path) -> Result<StaticSecret, KeyError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        let secret = StaticSecret::from(bytes);
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| KeyError::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        write_private(path, &BASE64.encode(secret.to_bytes())).map_err(io(path))?;
        let public = self.dir.join(format!("{agent}.pub"));
        std::fs::write(&public, format!("{}\n", public_of(&secret))).map_err(io(&public))?;
        tracing::info!(%agent, key = %path.display(), "made a new key; give {} to the agents that should trust it", public.display());
        Ok(secret)
    }

    /// Pins `agent`'s public key (instead of reading `<agent>.pub`).
    pub fn pin(&self, agent: &str, key: PublicKey) {
        lock(&self.peers).insert(agent.to_owned(), key);
    }

    /// The public key of `agent`: pinned, or read from `<agent>.pub`. Not finding one is
    /// remembered for a moment, so that a flood of unknown names does not become a flood of
    /// file lookups.
    pub fn public_key(&self, agent: &str) -> Option<PublicKey> {
        if let Some(k) = lock(&self.peers).get(agent) {
            return Some(*k);
        }
        if !is_valid_name(agent) {
            return None;
        }
        let now = std::time::Instant::now();
        {
            let mut nf = lock(&self.not_found);
            if nf.get(agent).is_some_and(|t| now < *t) {
                return None;
            }
            if nf.len() > 4096 {
                nf.retain(|_, t| now < *t);
            }
        }
        let path = self.dir.join(format!("{agent}.pub"));
        match std::fs::read_to_string(&path).ok().map(|t| t.parse()) {
            Some(Ok(key)) => {
                lock(&self.peers).insert(agent.to_owned(), key);
                Some(key)
            }
            Some(Err(_)) => {
                tracing::warn!(path = %path.display(), "not a public key; ignored");
                lock(&self.not_found).insert(agent.to_owned(), now + NOT_FOUND_FOR);
                None
            }
            None => {
                lock(&self.not_found).insert(agent.to_owned(), now + NOT_FOUND_FOR);
                None
            }
        }
    }

    /// The key `from` and `to` share, derived once and kept.
    fn pair_key(&self, local: &str, peer: &str) -> Option<[u8; 32]> {
        let id = (local.to_owned(), peer.to_owned());
        if let Some(k) = lock(&self.pair_keys).get(&id) {
            return Some(*k);
        }
        let peer_key = self.public_key(peer)?;
        let secret = lock(&self.own).get(local)?.clone();
        let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(peer_key.0));
        // A low-order public key would make the shared secret public knowledge.
        if !shared.was_contributory() {
            return None;
        }
        let own = public_of(&secret);
        let (lo, hi) = if own <= peer_key {
            (own, peer_key)
        } else {
            (peer_key, own)
        };
        let mut info = [0u8; 64];
        info[..32].copy_from_slice(&lo.0);
        info[32..].copy_from_slice(&hi.0);
        let mut key = [0u8; 32];
        hkdf::Hkdf::<Sha256>::new(Some(CONTEXT), shared.as_bytes())
            .expand(&info, &mut key)
            .ok()?;
        let mut cache = lock(&self.pair_keys);
        if cache.len() >= PAIR_KEYS {
            cache.clear();
        }
        cache.insert(id, key);
        Some(key)
    }

    /// The tag for a message from local agent `from` to `to`, or `None` when `from` has no
    /// key here or `to`'s public key is unknown.
    pub fn tag(&self, from: &str, to: &str, message: &[u8]) -> Option<[u8; TAG_LEN]> {
        let key = self.pair_key(from, to)?;
        let ts = self.next_timestamp();
        let mut tag = [0u8; TAG_LEN];
        tag[0] = 1;
        tag[1..9].copy_from_slice(&ts.to_be_bytes());
        tag[9..].copy_from_slice(&mac(&key, from, to, ts, message));
        Some(tag)
    }

    /// Checks that `message` comes from `from` for local agent `to`: a valid tag under their
    /// pair key, with a timestamp inside the replay window that was not accepted before.
    pub fn verify(&self, from: &str, to: &str, message: &[u8], tag: &[u8]) -> Result<(), Refusal> {
        if tag.len() != TAG_LEN || tag[0] != 1 {
            return Err(Refusal::Unauthenticated);
        }
        let key = self.pair_key(to, from).ok_or(Refusal::Unauthenticated)?;
        let ts = u64::from_be_bytes(tag[1..9].try_into().map_err(|_| Refusal::Unauthenticated)?);
        let mut m =
            <Hmac<Sha256> as Mac>::new_from_slice(&key).map_err(|_| Refusal::Unauthenticated)?;
        feed(&mut m, from, to, ts, message);
        m.verify_slice(&tag[9..])
            .map_err(|_| Refusal::Unauthenticated)?;
        self.fresh(from, to, ts)
    }

    /// Accepts each (sender, receiver, timestamp) once, within the window.
    fn fresh(&self, from: &str, to: &str, ts: u64) -> Result<(), Refusal> {
        let now = now_micros();
        let window = REPLAY_WINDOW.as_micros() as u64;
        if ts.abs_diff(now) > window {
            return Err(Refusal::Replayed);
        }
        let mut seen = lock(&self.seen);
        let s = seen.entry((from.to_owned(), to.to_owned())).or_default();
        if ts <= s.floor || !s.recent.insert(ts) {
            return Err(Refusal::Replayed);
        }
        let oldest = now.saturating_sub(window);
        while let Some(&first) = s.recent.first() {
            if first >= oldest && s.recent.len() <= REPLAY_MEMORY {
                break;
            }
            s.recent.pop_first();
            s.floor = s.floor.max(first);
        }
        Ok(())
    }

    /// A timestamp for the next message: the clock in microseconds, and never twice the same.
    fn next_timestamp(&self) -> u64 {
        let now = now_micros();
        let mut last = self.clock.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self
                .clock
                .compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }
}

fn public_of(secret: &StaticSecret) -> PublicKey {
    PublicKey(x25519_dalek::PublicKey::from(secret).to_bytes())
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

fn feed(m: &mut Hmac<Sha256>, from: &str, to: &str, ts: u64, message: &[u8]) {
    m.update(CONTEXT);
    // Names are at most 64 bytes (see `name`), so one byte holds their length.
    m.update(&[from.len() as u8]);
    m.update(from.as_bytes());
    m.update(&[to.len() as u8]);
    m.update(to.as_bytes());
    m.update(&ts.to_be_bytes());
    m.update(message);
}

fn mac(key: &[u8; 32], from: &str, to: &str, ts: u64, message: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    feed(&mut m, from, to, ts, message);
    m.finalize().into_bytes().into()
}

/// Writes a file only its owner may read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    writeln!(f, "{text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("selflet-auth-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_tag_proves_sender_and_receiver_and_is_accepted_once() {
        let d = dir("roundtrip");
        let (ka, kb) = (Keyring::new(&d), Keyring::new(&d));
        ka.own_key("a").unwrap();
        kb.own_key("b").unwrap();
        let tag = ka
            .tag("a", "b", b"hello")
            .expect("b's public key is in the directory");
        assert_eq!(kb.verify("a", "b", b"hello", &tag), Ok(()));
        assert_eq!(
            kb.verify("a", "b", b"hello", &tag),
            Err(Refusal::Replayed),
            "the same message again"
        );
        let tag = ka.tag("a", "b", b"hello").unwrap();
        assert_eq!(
            kb.verify("a", "b", b"hellO", &tag),
            Err(Refusal::Unauthenticated),
            "another message"
        );
        assert_eq!(
            kb.verify("c", "b", b"hello", &tag),
            Err(Refusal::Unauthenticated),
            "claimed by another sender"
        );
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn a_forger_with_its_own_key_cannot_speak_for_another_agent() {
        let (real, forged) = (dir("real"), dir("forged"));
        let kb = Keyring::new(&real);
        kb.own_key("b").unwrap();
        Keyring::new(&real).own_key("a").unwrap();
        // Mallory makes a key she calls `a`, and b's public key is no secret.
        let mallory = Keyring::new(&forged);
        mallory.own_key("a").unwrap();
        mallory.pin("b", kb.public_key("b").unwrap());
        let tag = mallory.tag("a", "b", b"lesson").unwrap();
        assert_eq!(
            kb.verify("a", "b", b"lesson", &tag),
            Err(Refusal::Unauthenticated)
        );
        std::fs::remove_dir_all(&real).ok();
        std::fs::remove_dir_all(&forged).ok();
    }

    #[test]
    fn keys_are_made_once_and_read_back() {
        let d = dir("persist");
        let first = Keyring::new(&d).own_key("a").unwrap();
        assert_eq!(Keyring::new(&d).own_key("a").unwrap(), first);
        let text = std::fs::read_to_string(d.join("a.pub")).unwrap();
        assert_eq!(text.trim().parse::<PublicKey>().unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(d.join("a.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the secret is for its owner only");
        }
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn timestamps_outside_the_window_are_refused() {
        let d = dir("window");
        let k = Keyring::new(&d);
        k.own_key("a").unwrap();
        k.own_key("b").unwrap();
        let key = k.pair_key("a", "b").unwrap();
        let old = now_micros() - 2 * REPLAY_WINDOW.as_micros() as u64;
        let mut tag = [0u8; TAG_LEN];
        tag[0] = 1;
        tag[1..9].copy_from_slice(&old.to_be_bytes());
        tag[9..].copy_from_slice(&mac(&key, "a", "b", old, b"m"));
        assert_eq!(k.verify("a", "b", b"m", &tag), Err(Refusal::Replayed));
        std::fs::remove_dir_all(&d).ok();
    }
}
