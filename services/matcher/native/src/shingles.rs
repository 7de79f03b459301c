//! Story grouping's per-article arithmetic: word shingles hashed with CRC-32, the
//! one-permutation MinHash signature folded into LSH band keys, and the overlap of two
//! fingerprints. No I/O.
//!
//! What they are for is in `services/matcher/stories.py`. Shingles and band keys have a
//! Python definition there, which tests/unit/matcher/test_stories.py holds these equal to;
//! passages and overlaps are plain enough to be stated in the tests themselves.

use std::cmp::Ordering;

use pyo3::buffer::{PyBuffer, ReadOnlyCell};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

const MIX: [u64; 4] = [
    0x9E37_79B9_7F4A_7C15,
    0xC2B2_AE3D_27D4_EB4F,
    0x1656_67B1_9E37_79F9,
    0x27D4_EB2F_1656_67C5,
];

/// The sorted, distinct CRC-32 hashes of the `words`-shingles of each field's tokens (the
/// fields' `scan_text`: tokens separated by spaces), as the bytes of an `array("I")`. A field
/// shorter than `words` tokens is one shingle; title and body are shingled apart.
#[pyfunction]
pub fn shingle_hashes<'py>(
    py: Python<'py>,
    fields: Vec<String>,
    words: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    if words == 0 {
        return Err(PyValueError::new_err("a shingle holds at least one word"));
    }
    let mut hashes = Vec::new();
    for text in &fields {
        let tokens: Vec<&str> = text.split(' ').filter(|t| !t.is_empty()).collect();
        if tokens.is_empty() {
            continue;
        }
        let width = words.min(tokens.len());
        for window in tokens.windows(width) {
            let mut crc = crc32fast::Hasher::new();
            for (n, token) in window.iter().enumerate() {
                if n > 0 {
                    crc.update(b" ");
                }
                crc.update(token.as_bytes());
            }
            hashes.push(crc.finalize());
        }
    }
    hashes.sort_unstable();
    hashes.dedup();
    Ok(array_bytes(py, &hashes, u32::to_ne_bytes))
}

/// The hashes of the ascending `hashes` (an `array("I")`) divisible by `sample`: a
/// fingerprint's passages, as the bytes of an `array("I")`.
#[pyfunction]
pub fn passages<'py>(hashes: &Bound<'py, PyAny>, sample: u32) -> PyResult<Bound<'py, PyBytes>> {
    if sample == 0 {
        return Err(PyValueError::new_err("the passage sample must be positive"));
    }
    let kept: Vec<u32> = Hashes::of(hashes)?
        .below(u64::MAX)?
        .iter()
        .map(ReadOnlyCell::get)
        .filter(|h| h % sample == 0)
        .collect();
    Ok(array_bytes(hashes.py(), &kept, u32::to_ne_bytes))
}

/// `values` as the machine's bytes for them: what `array(typecode, bytes)` reads back.
fn array_bytes<'py, T: Copy, const N: usize>(
    py: Python<'py>,
    values: &[T],
    to_bytes: fn(T) -> [u8; N],
) -> Bound<'py, PyBytes> {
    let bytes: Vec<u8> = values.iter().flat_map(|&v| to_bytes(v)).collect();
    PyBytes::new(py, &bytes)
}

/// One 64-bit key per LSH band of the one-permutation MinHash signature of `hashes`
/// (ascending, an `array("I")`): `bins` bins chosen by a hash's top bits, `bands` bands of
/// `rows` rows; as the bytes of an `array("Q")`.
#[pyfunction]
pub fn band_keys<'py>(
    hashes: &Bound<'py, PyAny>,
    bins: usize,
    bands: usize,
    rows: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let py = hashes.py();
    let held = Hashes::of(hashes)?;
    let hashes = held.below(u64::MAX)?;
    if !bins.is_power_of_two() || bins > 1 << 16 || bands * rows != bins || rows != MIX.len() {
        return Err(PyValueError::new_err(format!(
            "{bins} bins in {bands} bands of {rows} rows: bins must be a power of two, \
             equal to bands * rows, with 4 rows"
        )));
    }
    if hashes.is_empty() {
        return Ok(PyBytes::new(py, &[]));
    }
    let shift = 32 - bins.trailing_zeros();
    // Ascending hashes: the first to land in a bin is its least.
    let mut signature: Vec<i64> = vec![-1; bins];
    for h in hashes {
        let h = h.get();
        let bin = (h >> shift) as usize;
        if signature[bin] < 0 {
            signature[bin] = i64::from(h);
        }
    }
    // An empty bin borrows the next full bin's value (circularly), tagged with the distance;
    // right to left, twice round, so that every empty bin has seen a full one.
    let original = signature.clone();
    let (mut borrowed, mut distance) = (0i64, 0i64);
    for position in (0..2 * bins).rev() {
        let value = original[position % bins];
        if value < 0 {
            distance += 1;
        } else {
            borrowed = value;
            distance = 0;
        }
        if position < bins && value < 0 {
            signature[position] = borrowed | (distance << 32);
        }
    }
    let keys: Vec<u64> = (0..bands)
        .map(|band| {
            let row = &signature[band * rows..band * rows + rows];
            let mixed = row.iter().zip(MIX).fold(0u64, |acc, (&v, m)| {
                acc.wrapping_add((v as u64).wrapping_mul(m))
            });
            mixed.wrapping_mul(MIX[0]).wrapping_add(band as u64)
        })
        .collect();
    Ok(array_bytes(py, &keys, u64::to_ne_bytes))
}

/// `(shared, left, right)`: how many hashes below `limit` the two ascending fingerprints
/// `a` and `b` (arrays of 32-bit hashes) have in common, and how many each has. One merge,
/// with no Python int per hash: an article is compared with every candidate the index gives.
#[pyfunction]
pub fn shared_hashes(
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
    limit: u64,
) -> PyResult<(usize, usize, usize)> {
    let (a, b) = (Hashes::of(a)?, Hashes::of(b)?);
    let (a, b) = (a.below(limit)?, b.below(limit)?);
    let (mut i, mut j, mut shared) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].get().cmp(&b[j].get()) {
            Ordering::Less => i += 1,
            Ordering::Greater => j += 1,
            Ordering::Equal => {
                shared += 1;
                i += 1;
                j += 1;
            }
        }
    }
    Ok((shared, a.len(), b.len()))
}

/// A fingerprint's hashes, read in place. An empty array may have no aligned buffer to
/// read, so it is not asked for one.
struct Hashes<'py> {
    py: Python<'py>,
    buffer: Option<PyBuffer<u32>>,
}

impl<'py> Hashes<'py> {
    fn of(array: &Bound<'py, PyAny>) -> PyResult<Hashes<'py>> {
        let buffer = if array.len()? == 0 {
            None
        } else {
            Some(PyBuffer::get(array)?)
        };
        Ok(Hashes {
            py: array.py(),
            buffer,
        })
    }

    /// The ascending hashes below `limit`.
    fn below(&self, limit: u64) -> PyResult<&[ReadOnlyCell<u32>]> {
        let Some(buffer) = &self.buffer else {
            return Ok(&[]);
        };
        let hashes = buffer
            .as_slice(self.py)
            .ok_or_else(|| PyValueError::new_err("fingerprints must be contiguous arrays"))?;
        Ok(&hashes[..hashes.partition_point(|h| u64::from(h.get()) < limit)])
    }
}
