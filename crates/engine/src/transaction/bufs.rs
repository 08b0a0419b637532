//! Byte buffers of finished transactions, emptied, for the next one on the thread: a
//! small request fills the same few dozen (header names and values, the request line, the
//! path…), and allocating and freeing each was ~4% of a `GET /`'s instructions.
//!
//! Only capacity is reused: a buffer is cleared before it is handed out, so no byte of one
//! transaction can reach another.

use super::state::Pairs;

/// Buffers larger than this are freed, not kept (a large body's would pin its memory).
const KEEP_MAX: usize = 4096;
/// At most this many buffers per size class: the small ones by the hundred, as arguments
/// take two each (a 57-field checkout form 114, the Kibana search body ~780, most below
/// 128 bytes), the larger by the dozen. At most ~220 KB per kept set.
const KEEP_COUNTS: [usize; 4] = [256, 512, 32, 32];
/// Emptied pair lists up to this long are kept.
const KEEP_LIST: usize = 32;
/// Size classes by capacity: below 32, 128, 512 bytes, and up to [`KEEP_MAX`]. A request
/// for n bytes is served from n's class or a larger one, so that it rarely grows.
const CLASS_LIMITS: [usize; 3] = [32, 128, 512];

thread_local! {
    static SPARE: crate::spare::Pool<Bufs> = const { std::cell::RefCell::new(Vec::new()) };
}

#[derive(Debug, Default)]
pub(super) struct Bufs {
    bytes: [Vec<Vec<u8>>; 4],
    /// Emptied pair lists, with their room.
    lists: Vec<Pairs>,
}

fn class(n: usize) -> usize {
    CLASS_LIMITS.iter().position(|&l| n < l).unwrap_or(CLASS_LIMITS.len())
}

impl Bufs {
    /// The thread's kept buffers (none at first).
    pub(super) fn spare() -> Bufs {
        crate::spare::take(&SPARE).unwrap_or_default()
    }

    /// Keeps these buffers for the thread's next transaction.
    pub(super) fn recycle(self) {
        if self.bytes.iter().any(|c| !c.is_empty()) || !self.lists.is_empty() {
            crate::spare::keep(&SPARE, self, crate::spare::IN_FLIGHT);
        }
    }

    /// An empty buffer with room for `n` bytes: a kept one, or a new one with the room of
    /// the largest of its size class, so that once kept it fits any request of its class
    /// (one of 3 bytes would have been passed over by every longer name or value).
    pub(super) fn with_room(&mut self, n: usize) -> Vec<u8> {
        let k = class(n);
        let fits = |c: &Vec<Vec<u8>>| c.last().is_some_and(|v| v.capacity() >= n);
        let mut v = match self.bytes[k..].iter_mut().find(|c| fits(c)) {
            Some(c) => c.pop().unwrap_or_default(),
            None => Vec::with_capacity(CLASS_LIMITS.get(k).map_or(n, |l| l - 1)),
        };
        v.clear();
        v
    }

    /// An empty buffer (for a value of unknown length).
    pub(super) fn empty(&mut self) -> Vec<u8> {
        self.with_room(CLASS_LIMITS[0])
    }

    /// A copy of `b` in a kept buffer.
    pub(super) fn copy(&mut self, b: &[u8]) -> Vec<u8> {
        let mut v = self.with_room(b.len());
        v.extend_from_slice(b);
        v
    }

    /// Takes `v` back (when small enough and there is room).
    pub(super) fn give(&mut self, v: Vec<u8>) {
        let k = class(v.capacity());
        let c = &mut self.bytes[k];
        if v.capacity() > 0 && v.capacity() <= KEEP_MAX && c.len() < KEEP_COUNTS[k] {
            c.push(v);
        }
    }

    /// Takes back every name and value of `pairs`, and the list.
    pub(super) fn give_pairs(&mut self, mut pairs: Pairs) {
        for (k, v) in pairs.drain(..) {
            self.give(k);
            self.give(v);
        }
        if pairs.capacity() > 0 && pairs.capacity() <= KEEP_LIST && self.lists.len() < 8 {
            self.lists.push(pairs);
        }
    }

    /// An empty pair list, with room when one was kept.
    pub(super) fn list(&mut self) -> Pairs {
        self.lists.pop().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_buffer_comes_back_empty_with_its_room() {
        let mut b = Bufs::default();
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(b"secret header value");
        let at = v.as_ptr();
        b.give(v);
        // Too long for the kept one: a new buffer.
        assert_eq!(b.copy(&[b'x'; 100]).len(), 100);
        let c = b.copy(b"GET");
        assert_eq!((c.as_slice(), c.as_ptr()), (&b"GET"[..], at), "the kept buffer, cleared first");
        b.give(c);
        let e = b.empty();
        assert!(e.is_empty() && e.as_ptr() == at);
    }

    #[test]
    fn a_thread_keeps_the_buffers_of_transactions_that_end_together() {
        // As many as nginx has in flight: ending in a burst, none is freed.
        for _ in 0..crate::spare::IN_FLIGHT + 2 {
            let mut b = Bufs::default();
            b.give(Vec::with_capacity(16));
            b.recycle();
        }
        let kept = (0..crate::spare::IN_FLIGHT + 2).filter(|_| !Bufs::spare().bytes[0].is_empty()).count();
        assert_eq!(kept, crate::spare::IN_FLIGHT);
    }

    #[test]
    fn a_new_buffer_has_its_classs_room_and_fits_any_later_request_of_it() {
        let mut b = Bufs::default();
        let short = b.with_room(2);
        let at = short.as_ptr();
        assert_eq!(short.capacity(), CLASS_LIMITS[0] - 1);
        b.give(short);
        let longer = b.with_room(CLASS_LIMITS[0] - 1);
        assert_eq!(longer.as_ptr(), at, "the kept buffer serves a longer value of its class");
        assert_eq!(b.with_room(200).capacity(), CLASS_LIMITS[2] - 1);
        assert_eq!(b.with_room(3000).capacity(), 3000);
    }

    #[test]
    fn large_or_many_buffers_are_not_kept() {
        let mut b = Bufs::default();
        b.give(Vec::with_capacity(KEEP_MAX + 1));
        b.give(Vec::new());
        assert!(b.bytes.iter().all(Vec::is_empty));
        for _ in 0..KEEP_COUNTS[0] + 5 {
            b.give(Vec::with_capacity(8));
        }
        assert_eq!(b.bytes[0].len(), KEEP_COUNTS[0]);
        for _ in 0..KEEP_COUNTS[3] + 5 {
            b.give(Vec::with_capacity(1024));
        }
        assert_eq!(b.bytes[3].len(), KEEP_COUNTS[3]);
        b.give_pairs(vec![(b"a".to_vec(), b"b".to_vec())]);
        let list = b.list();
        assert!(list.is_empty() && list.capacity() >= 1, "the list comes back empty, with its room");
    }
}
