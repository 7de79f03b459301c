//! An article's alerts written natively: each one's id and JSON, from the parts that
//! `services/matcher/alerts.py` prepares once per rule version and once per article. No I/O.
//!
//! The definition is `ArticleAlerts._write` there (and `schemas.identity.alert_id_of` for the
//! id); tests/unit/matcher/test_alerts.py holds this writer's records equal to it, byte for
//! byte. Written here because an article at 10k rules raises about fifty alerts of nearly a
//! kilobyte each: in Python, joining and encoding them cost more than matching the article.

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use sha2::{Digest, Sha256};

use crate::quote::{push_hex, EvidenceWriter};
use crate::Scan;

/// Hex digits of the SHA-256 an alert id keeps (`alert_` + the first 32).
const ID_BYTES: usize = 16;

/// The alerts of rules `indices` of the core that made `scan`, in order: their values
/// (UTF-8 JSON) and their ids.
///
/// `rules[i]` is the `RuleParts` of `indices[i]`'s rule (its `fields` and `id_prefix` are
/// read, by name), `first_of_story[i]` its flag; `frame` is what every alert of the article shares:
/// the text before the id, from after the rule's fields to the evidence, from after the
/// evidence to the flag, and after the flag.
#[pyfunction]
#[allow(clippy::too_many_arguments)] // the parts of one alert, each prepared elsewhere
pub fn write_alerts<'py>(
    py: Python<'py>,
    mut evidence: PyRefMut<'py, EvidenceWriter>,
    scan: PyRef<'py, Scan>,
    indices: Vec<usize>,
    rules: Vec<Bound<'py, PyAny>>,
    first_of_story: Vec<bool>,
    article_id: &[u8],
    frame: (String, String, String, String),
) -> PyResult<(Vec<Bound<'py, PyBytes>>, Vec<String>)> {
    if rules.len() != indices.len() || first_of_story.len() != indices.len() {
        return Err(PyValueError::new_err(format!(
            "{} rules and {} flags for {} matches",
            rules.len(),
            first_of_story.len(),
            indices.len()
        )));
    }
    let (head, article, story, tail) = frame;
    let mut values = Vec::with_capacity(indices.len());
    let mut ids = Vec::with_capacity(indices.len());
    let mut value = String::new();
    for ((index, parts), first) in indices.into_iter().zip(&rules).zip(first_of_story) {
        let fields = parts.getattr(intern!(py, "fields"))?;
        let prefix = parts.getattr(intern!(py, "id_prefix"))?;
        let id = alert_id(prefix.cast::<PyBytes>()?.as_bytes(), article_id);
        value.clear();
        value.push_str(&head);
        value.push_str(&id);
        value.push('"');
        value.push_str(fields.cast::<PyString>()?.to_str()?);
        value.push_str(&article);
        evidence.write_into(&scan, index, &mut value)?;
        value.push_str(&story);
        value.push_str(if first { "true" } else { "false" });
        value.push_str(&tail);
        values.push(PyBytes::new(py, value.as_bytes()));
        ids.push(id);
    }
    Ok((values, ids))
}

/// `schemas.identity.alert_id_of`: `alert_` and the first 32 hex digits of the SHA-256 of
/// the rule version's prefix and the article id.
fn alert_id(prefix: &[u8], article_id: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(prefix)
        .chain_update(article_id)
        .finalize();
    let mut id = String::with_capacity(6 + 2 * ID_BYTES);
    id.push_str("alert_");
    push_hex(&mut id, &digest[..ID_BYTES]);
    id
}
