//! Evidence of a match (rules.md section 5) written as the JSON an alert carries, without a
//! Python object per span. No I/O.
//!
//! The Python definition is `services/matcher/engine/evidence.py` (`Quotes`, `snippet`) and
//! `services/matcher/alerts.py` (`_quoted_json`); tests/unit/engine/test_native_quote.py holds
//! this writer's output equal to theirs, byte for byte. Offsets are in code points, as in
//! Python; text is sliced through a code point -> byte table when it is not ASCII.

use std::collections::hash_map::Entry;
use std::fmt::Write;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use rustc_hash::FxHashMap;

use crate::tokens::token_offsets;
use crate::{Occ, Scan};

const ELLIPSIS: char = '\u{2026}';

/// Where a field's tokens lie: its translated text, whose runs of non-spaces are the tokens
/// (`TokenStream`'s common path, located here without a Python int per token), or their
/// `[start, end)` offsets.
#[derive(FromPyObject)]
enum Tokens {
    #[pyo3(transparent)]
    Translated(String),
    Offsets(Vec<u32>, Vec<u32>),
}

/// One field's original text and its tokens' `[start, end)` offsets, in code points.
struct Field {
    name: String,
    text: String,
    starts: Vec<u32>,
    ends: Vec<u32>,
    /// code point -> byte offset (one past the end included); None for ASCII text
    bytes: Option<Vec<u32>>,
    chars: usize,
}

impl Field {
    fn new(name: String, text: String, tokens: Tokens) -> PyResult<Field> {
        let (starts, ends) = match tokens {
            Tokens::Offsets(starts, ends) => (starts, ends),
            Tokens::Translated(translated) => {
                if translated.chars().count() != text.chars().count() {
                    return Err(PyValueError::new_err(format!(
                        "{name}: the translated text is not as long as the text"
                    )));
                }
                token_offsets(&translated)
            }
        };
        let bytes = if text.is_ascii() {
            None
        } else {
            let mut table: Vec<u32> = text.char_indices().map(|(b, _)| b as u32).collect();
            table.push(text.len() as u32);
            Some(table)
        };
        let chars = bytes.as_ref().map_or(text.len(), |t| t.len() - 1);
        if starts.len() != ends.len() {
            return Err(PyValueError::new_err(format!(
                "{name}: {} token starts but {} ends",
                starts.len(),
                ends.len()
            )));
        }
        if let Some((s, e)) = starts
            .iter()
            .zip(&ends)
            .find(|(s, e)| s > e || **e as usize > chars)
        {
            return Err(PyValueError::new_err(format!(
                "{name}: token [{s}, {e}) is not within the text's {chars} characters"
            )));
        }
        Ok(Field {
            name,
            text,
            starts,
            ends,
            bytes,
            chars,
        })
    }

    fn byte(&self, at: usize) -> usize {
        self.bytes.as_ref().map_or(at, |t| t[at] as usize)
    }

    fn slice(&self, from: usize, to: usize) -> &str {
        &self.text[self.byte(from)..self.byte(to)]
    }

    /// Code point index of the first space in `[from, to)`.
    fn find_space(&self, from: usize, to: usize) -> Option<usize> {
        self.slice(from, to)
            .chars()
            .position(|c| c == ' ')
            .map(|i| from + i)
    }

    /// Code point index of the last space in `[from, to)`.
    fn rfind_space(&self, from: usize, to: usize) -> Option<usize> {
        let slice = self.slice(from, to);
        let last = slice.rfind(' ')?;
        Some(from + slice[..last].chars().count())
    }
}

/// A JSON string literal as Python's `json.encoder.encode_basestring` writes it (and
/// pydantic, and `json.dumps(..., ensure_ascii=False)`): quote, backslash and control
/// characters escaped, everything else as is.
pub(crate) fn push_json_str(out: &mut String, text: &str) {
    out.push('"');
    // Runs of characters that need no escape are copied whole: in news text, nearly all.
    let mut plain = 0;
    for (at, byte) in text.bytes().enumerate() {
        if byte != b'"' && byte != b'\\' && byte >= 0x20 {
            continue;
        }
        out.push_str(&text[plain..at]);
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            control => {
                let _ = write!(out, "\\u{control:04x}");
            }
        }
        plain = at + 1;
    }
    out.push_str(&text[plain..]);
    out.push('"');
}

/// `bytes` as lower-case hex digits, appended to `out` (Python's `hexdigest`).
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 15)]));
    }
}

/// `memo[occ]`, written by `write` the first time, appended to `out`.
fn push_memoised(
    out: &mut String,
    memo: &mut FxHashMap<Occ, String>,
    occ: Occ,
    write: impl FnOnce(Occ) -> PyResult<String>,
) -> PyResult<()> {
    let json = match memo.entry(occ) {
        Entry::Occupied(found) => found.into_mut(),
        Entry::Vacant(slot) => slot.insert(write(occ)?),
    };
    out.push_str(json);
    Ok(())
}

/// One article's evidence writer: spans and snippets are written once each and reused by
/// every rule that quotes them.
#[pyclass(module = "newsalert_native")]
pub struct EvidenceWriter {
    texts: Texts,
    spans: FxHashMap<Occ, String>,
    snippets: FxHashMap<Occ, String>,
}

/// The article's fields and the snippet width: what a span or a snippet is written from.
struct Texts {
    fields: [Field; 2],
    context: usize,
}

impl EvidenceWriter {
    /// `span,...],"snippet":{...}` (or `null`): the evidence of rule `index` of the core
    /// that made `scan`, distinct spans sorted by field then position, and the snippet of
    /// the first.
    fn write(&mut self, scan: &Scan, index: usize) -> PyResult<String> {
        let mut out = String::with_capacity(256);
        self.write_into(scan, index, &mut out)?;
        Ok(out)
    }

    /// `write`, appended to `out`.
    pub(crate) fn write_into(
        &mut self,
        scan: &Scan,
        index: usize,
        out: &mut String,
    ) -> PyResult<()> {
        let mut occurrences = scan.occurrences_of(index)?;
        occurrences.sort_unstable();
        occurrences.dedup();
        for (n, &occ) in occurrences.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            push_memoised(out, &mut self.spans, occ, |o| self.texts.span_json(o))?;
        }
        out.push_str("],\"snippet\":");
        match occurrences.first() {
            None => out.push_str("null"),
            Some(&first) => push_memoised(out, &mut self.snippets, first, |o| {
                self.texts.snippet_json(o)
            })?,
        }
        Ok(())
    }
}

impl Texts {
    fn span(&self, occ: Occ) -> PyResult<(&Field, usize, usize)> {
        let (field, first, end) = occ;
        let field = self
            .fields
            .get(field as usize)
            .ok_or_else(|| PyValueError::new_err(format!("no field {field}")))?;
        let (first, end) = (first as usize, end as usize);
        if first >= end || end > field.starts.len() {
            return Err(PyValueError::new_err(format!(
                "tokens [{first}, {end}) are not tokens of the {}",
                field.name
            )));
        }
        Ok((
            field,
            field.starts[first] as usize,
            field.ends[end - 1] as usize,
        ))
    }

    fn span_json(&self, occ: Occ) -> PyResult<String> {
        let (field, start, end) = self.span(occ)?;
        let mut out = String::with_capacity(64 + 2 * (end - start));
        out.push_str("{\"field\":");
        push_json_str(&mut out, &field.name);
        let _ = write!(out, ",\"start\":{start},\"end\":{end},\"text\":");
        push_json_str(&mut out, field.slice(start, end));
        out.push('}');
        Ok(out)
    }

    /// About `context` characters either side of the span, cut at spaces, newlines as
    /// spaces; the same as evidence.py's `snippet`.
    fn snippet_json(&self, occ: Occ) -> PyResult<String> {
        let (field, start, end) = self.span(occ)?;
        let context = self.context;
        let mut left = start.saturating_sub(context);
        let mut right = (end + context).min(field.chars);
        if left > 0 {
            if let Some(space) = field.find_space(left, start) {
                left = space + 1;
            }
        }
        if right < field.chars {
            if let Some(space) = field.rfind_space(end, right) {
                right = space;
            }
        }
        let mut text = String::with_capacity(right - left + 8);
        if left > 0 {
            text.push(ELLIPSIS);
        }
        text.extend(
            field
                .slice(left, right)
                .chars()
                .map(|c| if c == '\n' { ' ' } else { c }),
        );
        if right < field.chars {
            text.push(ELLIPSIS);
        }
        let match_start = usize::from(left > 0) + start - left;
        let mut out = String::with_capacity(text.len() + 64);
        out.push_str("{\"field\":");
        push_json_str(&mut out, &field.name);
        out.push_str(",\"text\":");
        push_json_str(&mut out, &text);
        let _ = write!(
            out,
            ",\"match_start\":{match_start},\"match_end\":{}}}",
            match_start + end - start
        );
        Ok(out)
    }
}

#[pymethods]
impl EvidenceWriter {
    #[new]
    #[pyo3(signature = (texts, tokens, field_names, context))]
    fn new(
        texts: (String, String),
        tokens: (Tokens, Tokens),
        field_names: (String, String),
        context: usize,
    ) -> PyResult<EvidenceWriter> {
        Ok(EvidenceWriter {
            texts: Texts {
                fields: [
                    Field::new(field_names.0, texts.0, tokens.0)?,
                    Field::new(field_names.1, texts.1, tokens.1)?,
                ],
                context,
            },
            spans: FxHashMap::default(),
            snippets: FxHashMap::default(),
        })
    }

    /// The evidence of rule `index` of the core that made `scan`, as alerts carry it:
    /// `span,...],"snippet":{...}` (or `null`).
    fn json(&mut self, scan: &Scan, index: usize) -> PyResult<String> {
        self.write(scan, index)
    }
}
