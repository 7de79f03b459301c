//! Story grouping's index: band and passage keys -> the most recent articles holding them.
//! No I/O.
//!
//! `services/matcher/stories.py` owns the entries (`_Entry`) and every decision; this keeps
//! which entries hold which keys, so that an article's ~80 keys are filed and looked up in
//! one call each, without a Python dict lookup and list insort per key. Entries are held as
//! the Python objects they are, each with its order (receipt time, then article id).
//! tests/unit/matcher/test_stories.py holds the index to the behaviour `_ReferencePostings`
//! there defines.

use std::collections::hash_map::Entry;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

/// An entry's place in time: receipt time (µs since the epoch), then article id. Ids are
/// unique, so no two entries are equal; UTF-8 bytes sort as Python compares `str`.
type Order = (i64, Box<str>);
/// An entry's number, given by the caller (never reused while the entry is filed).
type Handle = u64;

enum Bucket {
    /// Most keys are held by one article.
    One(Handle),
    /// Oldest first, at most `cap`.
    Many(Vec<Handle>),
}

struct Held {
    order: Order,
    entry: Py<PyAny>,
    /// The keys it is filed under: removal takes them from here, so a bucket never keeps
    /// a handle that is gone.
    keys: [Box<[u64]>; 2],
}

/// Two indexes (band keys and passage keys) over one set of entries. An entry refers to
/// nothing that refers back to the index, so no reference cycle runs through it and the
/// cycle collector need not see inside.
#[pyclass(module = "newsalert_native")]
pub struct StoryPostings {
    cap: usize,
    entries: FxHashMap<Handle, Held>,
    keys: [FxHashMap<u64, Bucket>; 2],
}

/// An array of 64-bit (band) or 32-bit (passage) keys, as `u64`s.
fn keys_of(array: &Bound<'_, PyAny>) -> PyResult<Vec<u64>> {
    if array.len()? == 0 {
        return Ok(Vec::new());
    }
    let py = array.py();
    if let Ok(buffer) = PyBuffer::<u64>::get(array) {
        return buffer.to_vec(py);
    }
    let buffer = PyBuffer::<u32>::get(array)?;
    Ok(buffer.to_vec(py)?.into_iter().map(u64::from).collect())
}

impl StoryPostings {
    fn file(&mut self, index: usize, key: u64, handle: Handle) {
        let entries = &self.entries;
        match self.keys[index].entry(key) {
            Entry::Vacant(slot) => {
                slot.insert(Bucket::One(handle));
            }
            Entry::Occupied(mut slot) => {
                let bucket = slot.get_mut();
                if let Bucket::One(other) = *bucket {
                    *bucket = Bucket::Many(vec![other]);
                }
                let Bucket::Many(held) = bucket else {
                    unreachable!("a bucket of one was made a bucket of many")
                };
                let order = &entries[&handle].order;
                let at = held.partition_point(|h| entries[h].order < *order);
                held.insert(at, handle);
                if held.len() > self.cap {
                    held.remove(0);
                }
            }
        }
    }

    fn unfile(&mut self, index: usize, key: u64, handle: Handle) {
        let Entry::Occupied(mut slot) = self.keys[index].entry(key) else {
            return;
        };
        match slot.get_mut() {
            Bucket::One(held) => {
                if *held == handle {
                    slot.remove();
                }
            }
            Bucket::Many(held) => {
                if let Some(at) = held.iter().position(|&h| h == handle) {
                    held.remove(at);
                }
                match held[..] {
                    [] => {
                        slot.remove();
                    }
                    [last] => {
                        slot.insert(Bucket::One(last));
                    }
                    _ => {}
                }
            }
        }
    }
}

#[pymethods]
impl StoryPostings {
    /// An empty index keeping at most `cap` entries per key.
    #[new]
    fn new(cap: usize) -> PyResult<Self> {
        if cap < 1 {
            return Err(PyValueError::new_err("a key must keep at least one entry"));
        }
        Ok(StoryPostings {
            cap,
            entries: FxHashMap::default(),
            keys: [FxHashMap::default(), FxHashMap::default()],
        })
    }

    /// File `entry` (known from now on as `handle`, ordered by `at_us` then `article_id`)
    /// under each of its band and passage keys.
    fn add(
        &mut self,
        handle: Handle,
        entry: Py<PyAny>,
        at_us: i64,
        article_id: &str,
        bands: &Bound<'_, PyAny>,
        passages: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (bands, passages) = (keys_of(bands)?, keys_of(passages)?);
        if self.entries.contains_key(&handle) {
            return Err(PyValueError::new_err(format!(
                "entry {handle} is filed already"
            )));
        }
        let keys = [bands.into_boxed_slice(), passages.into_boxed_slice()];
        let filing = keys.clone();
        let order = (at_us, Box::from(article_id));
        // Held first: filing orders the entry among those a key holds by its `order`.
        self.entries.insert(handle, Held { order, entry, keys });
        for (index, filed) in filing.iter().enumerate() {
            for &key in filed.iter() {
                self.file(index, key, handle);
            }
        }
        Ok(())
    }

    /// Take the entry `handle` out of the index, from under every key it was filed with.
    fn remove(&mut self, handle: Handle) -> PyResult<()> {
        let Some(held) = self.entries.remove(&handle) else {
            return Err(PyKeyError::new_err(handle));
        };
        for (index, keys) in held.keys.iter().enumerate() {
            for &key in keys.iter() {
                self.unfile(index, key, handle);
            }
        }
        Ok(())
    }

    /// The entries filed under any of these band or passage keys, each once, in the order
    /// they are first found (bands first, each key's oldest first).
    fn lookup(
        &self,
        py: Python<'_>,
        bands: &Bound<'_, PyAny>,
        passages: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<Py<PyAny>>> {
        let (bands, passages) = (keys_of(bands)?, keys_of(passages)?);
        let mut seen = FxHashSet::default();
        let mut found = Vec::new();
        let mut take = |handle: Handle| {
            if seen.insert(handle) {
                found.push(self.entries[&handle].entry.clone_ref(py));
            }
        };
        for (index, keys) in [bands, passages].into_iter().enumerate() {
            for key in keys {
                match self.keys[index].get(&key) {
                    None => {}
                    Some(Bucket::One(handle)) => take(*handle),
                    Some(Bucket::Many(held)) => held.iter().copied().for_each(&mut take),
                }
            }
        }
        Ok(found)
    }

    /// About how many bytes the index holds on the heap (tables, buckets, ids), for memory
    /// reports: Python's allocator tracing does not see them.
    fn heap_bytes(&self) -> usize {
        // hashbrown keeps a table at most 7/8 full, in a power of two of slots, with a
        // control byte per slot and a group's worth more.
        fn table<K, V>(map: &FxHashMap<K, V>) -> usize {
            let slots = match map.capacity() {
                0 => return 0,
                capacity => (capacity * 8 / 7).next_power_of_two(),
            };
            slots * (std::mem::size_of::<(K, V)>() + 1) + 16
        }
        let buckets: usize = self.keys.iter().map(table).sum();
        let many: usize = (self.keys.iter())
            .flat_map(|keys| keys.values())
            .map(|bucket| match bucket {
                Bucket::One(_) => 0,
                Bucket::Many(held) => held.capacity() * std::mem::size_of::<Handle>(),
            })
            .sum();
        let ids: usize = (self.entries.values())
            .map(|held| held.order.1.len() + 8 * (held.keys[0].len() + held.keys[1].len()))
            .sum();
        table(&self.entries) + buckets + many + ids
    }

    /// Keys held, bands and passages together.
    fn __len__(&self) -> usize {
        self.keys[0].len() + self.keys[1].len()
    }
}
