//! Whole rules compiled natively: the fast path of `services/matcher/engine/compile.py`.
//! No I/O.
//!
//! Compiling 100k rules in Python takes seconds, most of it interpreter overhead per node, so
//! a ruleset's first build is done here. Python stays the definition: this path takes only
//! rules whose every text is ASCII and which the query reader (`query.rs`) reads without
//! error, and returns None for the rest, which compile.py compiles (and, for a bad rule,
//! reports) itself. Analysis uses Python's own translation table, stemming Python's own
//! stemmer through `StemCache`; a differential test holds both paths to equal `Rule`s and
//! versions.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use sha2::{Digest, Sha256};

use crate::query::{self, is_space, Ast, Atom, Field, GiveUp, Read, MAX_PHRASE_TOKENS};
use crate::{Node, Rule, StemCache, BOTH, RAW_SEP, STEM_SEP};

const TITLE: u8 = 0b01;
const BODY: u8 = 0b10;

/// Compiles rules with a given analysis table and stemmer.
#[pyclass(frozen, module = "newsalert_native")]
pub struct RuleCompiler {
    /// normalize.py's translation of each ASCII character: a letter, a digit, `'` or a space.
    table: [u8; 128],
    stems: Py<StemCache>,
}

/// What a rule says, as compile.py reads it (languages sorted and distinct, sources
/// lower-cased and stripped of dots, as compile.py prepares them).
struct Definition<'r> {
    query: Option<&'r str>,
    any: Option<&'r [String]>,
    none: &'r [String],
    stem: bool,
    fields: &'r [String],
    languages: &'r [String],
    sources: &'r [String],
}

#[pymethods]
impl RuleCompiler {
    /// `ascii_table`: normalize.py's translation of the 128 ASCII characters, in order.
    #[new]
    fn new(ascii_table: &str, stems: Py<StemCache>) -> PyResult<Self> {
        let bytes = ascii_table.as_bytes();
        let valid = |b: &u8| b.is_ascii_alphanumeric() || *b == b' ' || *b == b'\'';
        if bytes.len() != 128 || !bytes.iter().all(valid) {
            return Err(PyValueError::new_err(
                "the ASCII table must map each of the 128 ASCII characters to a letter, \
                 a digit, an apostrophe or a space",
            ));
        }
        let mut table = [0u8; 128];
        table.copy_from_slice(bytes);
        Ok(RuleCompiler { table, stems })
    }

    /// The compiled rule and its version, or None when compile.py must compile it: a
    /// non-ASCII text, or anything the rule language refuses.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (query, any, none, stem, fields, languages, sources))]
    fn compile(
        &self,
        py: Python<'_>,
        query: Option<&str>,
        any: Option<Vec<String>>,
        none: Vec<String>,
        stem: bool,
        fields: Vec<String>,
        languages: Vec<String>,
        sources: Vec<String>,
    ) -> PyResult<Option<(Rule, String)>> {
        let definition = Definition {
            query,
            any: any.as_deref(),
            none: &none,
            stem,
            fields: &fields,
            languages: &languages,
            sources: &sources,
        };
        let Ok(ast) = self.ast(&definition) else {
            return Ok(None);
        };
        let mut builder = PlanBuilder {
            compiler: self,
            py,
            stem,
            default_mask: fields.iter().map(|f| field_mask(f)).fold(0, |a, b| a | b),
            keys: Vec::new(),
        };
        let plan = builder.plan(&ast)?;
        let trigger = trigger_keys(&plan);
        let outright = is_alias_list(&plan) && languages.is_empty() && sources.is_empty();
        let rule = Rule {
            plan,
            trigger,
            keys: builder.keys,
            outright,
            languages: languages.clone(),
            sources: sources.clone(),
        };
        Ok(Some((rule, version(&definition))))
    }
}

impl RuleCompiler {
    /// compile.py's `rule_ast`: the query, or the `any` phrases OR-ed; `none` as AND NOT.
    fn ast(&self, rule: &Definition<'_>) -> Read<Ast> {
        let analyze = |text: &str| self.analyze(text);
        let positive = match (rule.query, rule.any) {
            (Some(text), None) => {
                let ast = query::parse(text, &analyze)?;
                if !ast.has_positive_atom() {
                    return Err(GiveUp);
                }
                ast
            }
            (None, Some(phrases)) => self.phrase_or(phrases)?,
            _ => return Err(GiveUp),
        };
        if rule.none.is_empty() {
            return Ok(positive);
        }
        let excluded = Ast::Not(Box::new(self.phrase_or(rule.none)?));
        Ok(Ast::And(vec![positive, excluded]))
    }

    fn phrase_or(&self, phrases: &[String]) -> Read<Ast> {
        let mut alternatives = Vec::with_capacity(phrases.len());
        for text in phrases {
            let tokens = self.analyze(text)?;
            if tokens.is_empty() || tokens.len() > MAX_PHRASE_TOKENS {
                return Err(GiveUp);
            }
            alternatives.push(Ast::Atom(Atom {
                prefix: false,
                tokens,
                field: None,
            }));
        }
        match alternatives.len() {
            0 => Err(GiveUp),
            1 => Ok(alternatives.pop().expect("one phrase")),
            _ => Ok(Ast::Or(alternatives)),
        }
    }

    /// normalize.py's `analyze_terms` on ASCII text: translate, drop possessive `'s`, split.
    fn analyze(&self, text: &str) -> Read<Vec<String>> {
        if !text.is_ascii() {
            return Err(GiveUp);
        }
        let mut translated: Vec<u8> = text.bytes().map(|b| self.table[b as usize]).collect();
        // A lone `s` after an apostrophe, before a separator or the end, is a possessive.
        let n = translated.len();
        let mut i = 0;
        while i + 1 < n {
            let at_boundary = i + 2 == n || matches!(translated[i + 2], b' ' | b'\'');
            if translated[i] == b'\'' && translated[i + 1] == b's' && at_boundary {
                translated[i] = b' ';
                translated[i + 1] = b' ';
                i += 2;
            } else {
                i += 1;
            }
        }
        Ok(translated
            .split(|&b| b == b' ' || b == b'\'')
            .filter(|token| !token.is_empty())
            .map(|token| String::from_utf8_lossy(token).into_owned())
            .collect())
    }
}

fn field_mask(field: &str) -> u8 {
    match field {
        "title" => TITLE,
        "body" => BODY,
        _ => 0,
    }
}

/// compile.py's `_PlanBuilder`: plan nodes in the same order, keys in first-use order.
struct PlanBuilder<'c, 'py> {
    compiler: &'c RuleCompiler,
    py: Python<'py>,
    stem: bool,
    default_mask: u8,
    keys: Vec<Arc<str>>,
}

impl PlanBuilder<'_, '_> {
    fn plan(&mut self, node: &Ast) -> PyResult<Node<Arc<str>>> {
        Ok(match node {
            Ast::Atom(atom) => {
                let (key, mask) = self.lit(atom)?;
                Node::Lit(key, mask)
            }
            Ast::And(children) => Node::All(self.plans(children)?),
            Ast::Or(children) => Node::Any(self.plans(children)?),
            Ast::Not(child) => {
                // NOT^k decides like NOT for odd k and like NOT NOT for even k.
                let mut odd = true;
                let mut inner: &Ast = child;
                while let Ast::Not(next) = inner {
                    odd = !odd;
                    inner = next;
                }
                let negated = Node::Not(Box::new(self.plan(inner)?));
                if odd {
                    negated
                } else {
                    Node::Not(Box::new(negated))
                }
            }
            Ast::Near(left, right, distance) => {
                let left = left.iter().map(|a| self.lit(a)).collect::<PyResult<_>>()?;
                let right = right.iter().map(|a| self.lit(a)).collect::<PyResult<_>>()?;
                Node::Near(left, right, *distance)
            }
        })
    }

    fn plans(&mut self, children: &[Ast]) -> PyResult<Vec<Node<Arc<str>>>> {
        children.iter().map(|c| self.plan(c)).collect()
    }

    fn lit(&mut self, atom: &Atom) -> PyResult<(Arc<str>, u8)> {
        let key: String = if atom.prefix {
            format!("{RAW_SEP}{}", atom.tokens[0])
        } else if self.stem {
            let stems = self.compiler.stems.get();
            let mut key = String::from(STEM_SEP);
            for token in &atom.tokens {
                key.push_str(&stems.stem_one(self.py, token)?);
                key.push(STEM_SEP);
            }
            key
        } else {
            let mut key = String::from(RAW_SEP);
            for token in &atom.tokens {
                key.push_str(token);
                key.push(RAW_SEP);
            }
            key
        };
        let key = match self.keys.iter().find(|k| ***k == *key) {
            Some(known) => known.clone(),
            None => {
                let key: Arc<str> = Arc::from(key);
                self.keys.push(key.clone());
                key
            }
        };
        let mask = match atom.field {
            Some(Field::Title) => TITLE,
            Some(Field::Body) => BODY,
            None => self.default_mask,
        };
        Ok((key, mask))
    }
}

/// compile.py's `trigger_keys`: keys one of which must occur for `plan` to hold.
fn trigger_keys(plan: &Node<Arc<str>>) -> Option<Vec<Arc<str>>> {
    match plan {
        Node::Lit(key, _) => Some(vec![key.clone()]),
        Node::Any(children) => {
            let mut found: Vec<Arc<str>> = Vec::new();
            for child in children {
                for key in trigger_keys(child)? {
                    if !found.contains(&key) {
                        found.push(key);
                    }
                }
            }
            Some(found)
        }
        Node::All(children) => children
            .iter()
            .filter_map(trigger_keys)
            .reduce(most_selective),
        Node::Near(left, right, _) => {
            let side = |lits: &[(Arc<str>, u8)]| lits.iter().map(|(k, _)| k.clone()).collect();
            Some(most_selective(side(left), side(right)))
        }
        Node::Not(_) => None,
    }
}

/// Fewer keys, then longer ones (rarer in text); the first on a tie, as Python's `min`.
fn most_selective(best: Vec<Arc<str>>, other: Vec<Arc<str>>) -> Vec<Arc<str>> {
    let selectivity = |keys: &[Arc<str>]| {
        let shortest = keys.iter().map(|k| k.chars().count()).min().unwrap_or(0);
        (keys.len(), std::cmp::Reverse(shortest))
    };
    if selectivity(&other) < selectivity(&best) {
        other
    } else {
        best
    }
}

fn is_alias_list(plan: &Node<Arc<str>>) -> bool {
    match plan {
        Node::Lit(_, mask) => *mask == BOTH,
        Node::Any(children) => children
            .iter()
            .all(|c| matches!(c, Node::Lit(_, mask) if *mask == BOTH)),
        _ => false,
    }
}

/// `WatchlistRule.version` (schemas/watchlist.py): the SHA-256 of the rule's matching
/// definition as `json.dumps(..., sort_keys=True, ensure_ascii=False)` writes it.
fn version(rule: &Definition<'_>) -> String {
    let set = |items: &[String]| -> Vec<String> {
        items
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    let mut fields = rule.fields.to_vec();
    fields.sort();
    let mut json = String::from("{\"any\": ");
    match rule.any {
        Some(any) => write_list(&mut json, &set(any)),
        None => json.push_str("null"),
    }
    json.push_str(", \"fields\": ");
    write_list(&mut json, &fields);
    json.push_str(", \"languages\": ");
    write_list(&mut json, &set(rule.languages));
    json.push_str(", \"none\": ");
    write_list(&mut json, &set(rule.none));
    json.push_str(", \"query\": ");
    match rule.query {
        Some(query) => write_string(&mut json, query.trim_matches(|c: char| is_space_char(c))),
        None => json.push_str("null"),
    }
    json.push_str(", \"sources\": ");
    write_list(&mut json, &set(rule.sources));
    json.push_str(", \"stem\": ");
    json.push_str(if rule.stem { "true" } else { "false" });
    json.push('}');
    let digest = Sha256::digest(json.as_bytes());
    digest[..8]
        .iter()
        .fold(String::with_capacity(16), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// Python's `str.isspace()`, which `str.strip()` removes; only ASCII text comes here.
fn is_space_char(c: char) -> bool {
    c.is_ascii() && is_space(c as u8)
}

fn write_list(json: &mut String, items: &[String]) {
    json.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            json.push_str(", ");
        }
        write_string(json, item);
    }
    json.push(']');
}

/// A JSON string as Python's json module writes it with `ensure_ascii=False`.
fn write_string(json: &mut String, text: &str) {
    json.push('"');
    for c in text.chars() {
        match c {
            '"' => json.push_str("\\\""),
            '\\' => json.push_str("\\\\"),
            '\n' => json.push_str("\\n"),
            '\r' => json.push_str("\\r"),
            '\t' => json.push_str("\\t"),
            '\u{8}' => json.push_str("\\b"),
            '\u{c}' => json.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(json, "\\u{:04x}", c as u32);
            }
            c => json.push(c),
        }
    }
    json.push('"');
}
