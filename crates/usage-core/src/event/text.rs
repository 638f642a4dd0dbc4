//! `Text`: owned, immutable, 48-byte strings built for the emit path.
//!
//! Up to 47 bytes live inline, built in registers (no allocation, no shared cache line between the
//! emitting and exporting threads: Lava's 32-char project hashes, 44-char provider
//! addresses and origins all fit); `&'static str` is borrowed; longer strings share
//! one `Arc<str>`.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use crate::words::{load4, load8};

/// The size of a `Text`; its last byte is the tag.
const SIZE: usize = 48;
const INLINE_CAP: usize = SIZE - 1;
const TAG_STATIC: u8 = 0x80;
const TAG_HEAP: u8 = 0x81;

/// Owned, immutable text.
///
/// ```
/// use usage_core::Text;
/// let short = Text::new("eth_getBlockByNumber"); // inline, no allocation
/// assert!(!short.is_heap_allocated());
/// let constant = Text::new_static("jsonrpc"); // borrowed, free to clone
/// let provider = Text::new("lava@1qu0jm3ts8g5sc7kmc9wruyqk7gk2ms8etjmg6y"); // 44 bytes: inline
/// assert!(!provider.is_heap_allocated());
/// let long = Text::new("a value longer than forty-seven bytes is shared on the heap");
/// assert!(long.is_heap_allocated());
/// assert_eq!(short.as_str(), "eth_getBlockByNumber");
/// assert_eq!(constant, "jsonrpc");
/// ```
pub struct Text {
    r: Repr,
}

#[cfg(not(target_pointer_width = "64"))]
compile_error!("usage_core::Text supports 64-bit targets only");

/// `SIZE` bytes. The last is the tag: 0..=47 is an inline length (the bytes come
/// first), else `TAG_STATIC`/`TAG_HEAP` with a pointer and a length in front.
#[derive(Clone, Copy)]
#[repr(C)]
union Repr {
    bytes: [u8; SIZE],
    words: [u64; SIZE / 8],
    ptr: PtrRepr,
}

#[derive(Clone, Copy)]
#[repr(C)]
struct PtrRepr {
    ptr: *const u8,
    len: usize,
    pad: [u8; SIZE - 17],
    tag: u8,
}

// SAFETY: the pointer variants are a `&'static str` or an `Arc<str>`, both Send + Sync.
unsafe impl Send for Text {}
// SAFETY: as above; the text is immutable.
unsafe impl Sync for Text {}

/// The bytes `[from, n)` of `s` (fewer than 8) as the low bytes of a word, read
/// with one overlapping load ending at `n`. Requires `n >= 8`.
#[inline(always)]
fn tail(s: &[u8], from: usize, n: usize) -> u64 {
    let shift = (8 - (n - from)) * 8;
    if shift >= 64 {
        0
    } else {
        load8(s, n - 8) >> shift
    }
}

/// Up to 7 bytes as the low bytes of a word.
#[inline(always)]
fn small(s: &[u8]) -> u64 {
    let n = s.len();
    if n >= 4 {
        // Two overlapping 4-byte loads; overlapping bytes are equal, so OR is exact.
        load4(s, 0) | (load4(s, n - 4) << ((n - 4) * 8))
    } else if n > 0 {
        u64::from(s[0]) | (u64::from(s[n / 2]) << ((n / 2) * 8)) | (u64::from(s[n - 1]) << ((n - 1) * 8))
    } else {
        0
    }
}

impl Text {
    /// Copies `s` (inline if it fits, else into a shared `Arc<str>`).
    // Always inlined, the shared path kept out of line: called from a host's crate
    // `new` stayed a call, and its 48-byte result went through the stack before
    // the event's copy (emit of Lava's values, 10 runs each in turn: 72.0 -> 66.2 ns).
    #[inline(always)]
    pub fn new(s: impl AsRef<str>) -> Self {
        let s = s.as_ref();
        if s.len() <= INLINE_CAP {
            Self::inline(s.as_bytes())
        } else {
            Self::shared(s)
        }
    }

    #[cold]
    #[inline(never)]
    fn shared(s: &str) -> Self {
        Self::from_arc(Arc::from(s))
    }

    /// Borrows a static string: nothing is copied or counted.
    pub const fn new_static(s: &'static str) -> Self {
        Text {
            r: Repr {
                ptr: PtrRepr {
                    ptr: s.as_ptr(),
                    len: s.len(),
                    pad: [0; SIZE - 17],
                    tag: TAG_STATIC,
                },
            },
        }
    }

    /// A process-lifetime copy of `s`, shared by every later `intern` of the same
    /// text. Clones are free and touch no reference count, so threads that build
    /// and drop events never contend on it. The memory is never freed: use it for
    /// bounded sets (provider addresses, project ids, chain names), not for
    /// per-request values.
    ///
    /// ```
    /// use usage_core::Text;
    /// let a = Text::intern("lava@1qu0jm3ts8g5sc7kmc9wruyqk7gk2ms8etjmg6y");
    /// let b = Text::intern("lava@1qu0jm3ts8g5sc7kmc9wruyqk7gk2ms8etjmg6y");
    /// assert_eq!(a.as_str().as_ptr(), b.as_str().as_ptr());
    /// assert!(!a.is_heap_allocated());
    /// ```
    pub fn intern(s: &str) -> Self {
        static INTERNED: std::sync::Mutex<Option<std::collections::HashSet<&'static str>>> =
            std::sync::Mutex::new(None);
        let mut set = INTERNED.lock().unwrap_or_else(|p| p.into_inner());
        let set = set.get_or_insert_with(Default::default);
        let stored: &'static str = match set.get(s) {
            Some(existing) => existing,
            None => {
                let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
                set.insert(leaked);
                leaked
            }
        };
        Text::new_static(stored)
    }

    /// Shares an existing `Arc<str>` (no copy).
    pub fn from_arc(s: Arc<str>) -> Self {
        let len = s.len();
        let ptr = Arc::into_raw(s).cast::<u8>();
        Text {
            r: Repr {
                ptr: PtrRepr {
                    ptr,
                    len,
                    pad: [0; SIZE - 17],
                    tag: TAG_HEAP,
                },
            },
        }
    }

    #[inline(always)]
    fn inline(s: &[u8]) -> Self {
        let n = s.len();
        debug_assert!(n <= INLINE_CAP);
        // Six whole words, built in registers and stored as words: a byte-wise copy
        // followed by a separate tag byte stalls every later copy of the event on
        // store forwarding.
        let word = |i: usize| -> u64 {
            let from = i * 8;
            if n >= from + 8 {
                load8(s, from)
            } else if n > from {
                if n >= 8 {
                    tail(s, from, n)
                } else {
                    small(s)
                }
            } else {
                0
            }
        };
        let tag = (n as u64) << 56;
        Text {
            r: Repr {
                words: [
                    word(0).to_le(),
                    word(1).to_le(),
                    word(2).to_le(),
                    word(3).to_le(),
                    word(4).to_le(),
                    (word(5) | tag).to_le(),
                ],
            },
        }
    }

    #[inline(always)]
    fn tag(&self) -> u8 {
        // SAFETY: every variant initialises all `SIZE` bytes.
        unsafe { self.r.bytes[SIZE - 1] }
    }

    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        let tag = self.tag();
        let bytes: &[u8] = if tag as usize <= INLINE_CAP {
            // SAFETY: inline bytes are the first `tag` bytes, copied from a str.
            unsafe { std::slice::from_raw_parts(self.r.bytes.as_ptr(), tag as usize) }
        } else {
            // SAFETY: a live &'static str or Arc<str> (kept alive by this Text).
            unsafe { std::slice::from_raw_parts(self.r.ptr.ptr, self.r.ptr.len) }
        };
        // SAFETY: every constructor copies or borrows valid UTF-8, whole.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    /// True when the text lives in a shared heap allocation (longer than 47 bytes).
    #[inline]
    pub fn is_heap_allocated(&self) -> bool {
        self.tag() == TAG_HEAP
    }

    fn arc_ptr(&self) -> *const str {
        // SAFETY: only called for TAG_HEAP, whose first two words are pointer and length.
        let p = unsafe { self.r.ptr };
        std::ptr::slice_from_raw_parts(p.ptr, p.len) as *const str
    }
}

impl Clone for Text {
    #[inline]
    fn clone(&self) -> Self {
        if self.is_heap_allocated() {
            // SAFETY: the pointer came from Arc::into_raw and this Text holds a count.
            unsafe { Arc::increment_strong_count(self.arc_ptr()) };
        }
        Text { r: self.r }
    }
}

impl Drop for Text {
    #[inline]
    fn drop(&mut self) {
        if self.is_heap_allocated() {
            // SAFETY: the pointer came from Arc::into_raw; this Text owns one count.
            unsafe { drop(Arc::from_raw(self.arc_ptr())) };
        }
    }
}

impl Default for Text {
    fn default() -> Self {
        Text {
            r: Repr { bytes: [0; SIZE] },
        }
    }
}

impl Deref for Text {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Text {
    #[inline(always)]
    fn from(s: &str) -> Self {
        Text::new(s)
    }
}

impl From<&String> for Text {
    #[inline(always)]
    fn from(s: &String) -> Self {
        Text::new(s)
    }
}

impl From<String> for Text {
    #[inline]
    fn from(s: String) -> Self {
        if s.len() <= INLINE_CAP {
            Text::inline(s.as_bytes())
        } else {
            Text::from_arc(Arc::from(s))
        }
    }
}

impl From<Arc<str>> for Text {
    fn from(s: Arc<str>) -> Self {
        Text::from_arc(s)
    }
}

impl From<Text> for String {
    fn from(t: Text) -> Self {
        t.as_str().to_string()
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}
impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.as_str()
    }
}
impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Text {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Text {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_length_round_trips() {
        let src: String = "abcdefghijklmnopqrstuvwxyz0123456789".repeat(2);
        for n in 0..=src.len() {
            let t = Text::new(&src[..n]);
            assert_eq!(t.as_str(), &src[..n], "len {n}");
            assert_eq!(t.is_heap_allocated(), n > INLINE_CAP);
            let c = t.clone();
            assert_eq!(c, t);
            assert_eq!(Text::from(src[..n].to_string()), t);
        }
    }

    #[test]
    fn static_and_arc_share_without_copying() {
        const S: Text = Text::new_static("a fairly long constant string, over forty-seven bytes");
        assert!(!S.is_heap_allocated());
        let arc: Arc<str> = Arc::from("shared value that is longer than the inline capacity");
        let t = Text::from(arc.clone());
        assert_eq!(Arc::strong_count(&arc), 2);
        let t2 = t.clone();
        assert_eq!(Arc::strong_count(&arc), 3);
        drop((t, t2));
        assert_eq!(Arc::strong_count(&arc), 1);
        assert_eq!(std::mem::size_of::<Text>(), SIZE);
        assert_eq!(Text::default().as_str(), "");
    }

    proptest! {
        #[test]
        fn any_utf8_round_trips(s in ".{0,60}") {
            let t = Text::new(&s);
            prop_assert_eq!(t.as_str(), s.as_str());
            let c = t.clone();
            prop_assert_eq!(c.as_str(), s.as_str());
        }
    }
}
