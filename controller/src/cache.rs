//! Software prefetching for the packet-in path, whose tables outgrow the
//! CPU caches: a batch's lookups are done in stages, each stage starting
//! the memory loads of every packet before any of them is waited for.

use hashbrown::HashTable;

/// Starts loading the entries of `table` that a lookup of `hash` would
/// compare, without reading them: hashbrown calls `eq` with a reference to
/// each candidate whose control byte matches, and that reference is all a
/// prefetch needs. Only the control bytes are read (a few per table, and
/// usually cached), so a loop of these overlaps every lookup's miss.
#[inline]
pub fn prefetch_candidates<T>(table: &HashTable<T>, hash: u64) {
    table.find(hash, |candidate| {
        prefetch_value(candidate);
        false
    });
}

/// Starts loading every cache line of `value`.
#[inline]
pub fn prefetch_value<T: ?Sized>(value: &T) {
    prefetch_span(std::ptr::from_ref(value).cast(), size_of_val(value));
}

/// Starts loading every cache line of the `len` bytes at `ptr`.
#[inline]
fn prefetch_span(ptr: *const u8, len: usize) {
    const LINE: usize = 64;
    let first = ptr as usize / LINE;
    let last = (ptr as usize + len.saturating_sub(1)) / LINE;
    for line in 0..=last - first {
        prefetch(ptr.wrapping_add(line * LINE));
    }
}

/// Starts loading the cache line at `ptr` without waiting for it.
#[inline]
fn prefetch(ptr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it never faults, whatever the
    // address, and reads nothing into the program.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(ptr.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probing_finds_nothing_and_changes_nothing() {
        let hasher = foldhash::fast::FixedState::with_seed(7);
        let hash = |v: &u64| std::hash::BuildHasher::hash_one(&hasher, v);
        let mut table = HashTable::new();
        for v in 0..100u64 {
            table.insert_unique(hash(&v), v, hash);
        }
        for v in 0..200u64 {
            prefetch_candidates(&table, hash(&v));
        }
        assert_eq!(table.len(), 100);
        assert_eq!(table.find(hash(&42), |x| *x == 42), Some(&42));
    }

    #[test]
    fn prefetching_any_span_is_harmless() {
        prefetch_value(&[0u8; 0][..]);
        prefetch_value(&[1u8; 300][..]);
        prefetch_span(std::ptr::null(), 4096);
    }
}
