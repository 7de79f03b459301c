//! Where each token of an analysed field lies in its text. No I/O.
//!
//! The definition is `TokenStream` in `services/matcher/engine/normalize.py`: on the common
//! path a field's translated text has every separator as a space, so its tokens are the
//! maximal runs of other characters, and a token's offsets in the translated text are its
//! offsets in the original (translation keeps every code point in place).

use pyo3::prelude::*;

/// The `[start, end)` code point offsets of each maximal run of non-space characters of
/// `text`, as two lists: what Python computes from `text.split(" ")`, without an object per
/// token (an article body has about 400, and only quoting needs them).
#[pyfunction]
pub fn token_offsets(text: &str) -> (Vec<u32>, Vec<u32>) {
    if text.is_ascii() {
        runs(text.bytes().map(|b| b == b' '))
    } else {
        runs(text.chars().map(|c| c == ' '))
    }
}

/// The `[start, end)` of each run of `false` in `spaces`.
fn runs(spaces: impl Iterator<Item = bool>) -> (Vec<u32>, Vec<u32>) {
    let (mut starts, mut ends) = (Vec::new(), Vec::new());
    let mut length = 0u32;
    for (at, space) in spaces.enumerate() {
        let at = at as u32;
        // A token starts where a space was before it, and ends where a space follows it.
        if !space && starts.len() == ends.len() {
            starts.push(at);
        } else if space && starts.len() > ends.len() {
            ends.push(at);
        }
        length = at + 1;
    }
    if starts.len() > ends.len() {
        ends.push(length);
    }
    (starts, ends)
}
