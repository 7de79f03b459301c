//! The matcher engine's hot path: every rule literal found in one pass over an article's
//! tokens, the candidate rules those hits put forward, and the evaluation of their plans.
//! No I/O.
//!
//! Python stays the owner of the rule language: it parses and analyses rules, builds each
//! rule's plan and literal keys (`services/matcher/engine/compile.py`, `plan.py`), and
//! analyses article text into tokens (`normalize.py`). This crate runs what Python compiled
//! over the tokens Python analysed, so there is one definition of the language. The one
//! exception is speed at build time: `compile.rs` repeats compile.py for the common rules,
//! held equal to it by a differential test, and leaves every other rule to it.
//!
//! Keys come framed as compile.py writes them: `" a b "` (a term or phrase), `" pre"` (a
//! prefix) and `"\x01a\x01b\x01"` (stemmed tokens). Matching works on whole tokens: a hash
//! lookup per token, a check of the following tokens for phrases, and a walk down a trie for
//! prefixes. That costs per token, not per character and per automaton state.
//!
//! Beside the engine, the worker's other per-alert work is here too: story grouping's
//! arithmetic (`shingles.rs`), alert JSON (`alerts.rs`, `quote.rs`) and the Kafka record
//! batches the alerts leave in (`records.rs`).

use std::cmp::Ordering;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyFrozenSet, PyString, PyTuple};
use rustc_hash::FxHashMap;

mod alerts;
mod compile;
mod pick;
mod postings;
mod query;
mod quote;
mod records;
mod shingles;
mod tokens;

const RAW_SEP: char = ' ';
const STEM_SEP: char = '\x01';
const BOTH: u8 = 0b11;
const NONE: u32 = u32::MAX;
/// Bound of the per-token memos: the BBC corpus has about 30k distinct tokens.
const MAX_MEMO_ENTRIES: usize = 500_000;

/// (field, first token, end token exclusive); field 0 is the title, 1 the body.
type Occ = (u32, u32, u32);

/// A rule's plan, with keys as strings (`K = Arc<str>`) or as indices into a core (`u32`).
#[derive(Clone, Debug, PartialEq)]
enum Node<K> {
    /// A literal restricted to a set of fields (bit 0 title, bit 1 body).
    Lit(K, u8),
    All(Vec<Node<K>>),
    Any(Vec<Node<K>>),
    Not(Box<Node<K>>),
    /// NEAR/n between two sets of literals.
    Near(Vec<(K, u8)>, Vec<(K, u8)>, u32),
}

fn lit_from_py(obj: &Bound<'_, PyAny>) -> PyResult<(Arc<str>, u8)> {
    let key: String = obj.getattr("key")?.extract()?;
    let mask: u8 = obj.getattr("mask")?.extract()?;
    Ok((Arc::from(key), mask))
}

fn lits_from_py(obj: &Bound<'_, PyAny>) -> PyResult<Vec<(Arc<str>, u8)>> {
    obj.try_iter()?.map(|lit| lit_from_py(&lit?)).collect()
}

fn children_from_py(obj: &Bound<'_, PyAny>) -> PyResult<Vec<Node<Arc<str>>>> {
    obj.getattr("children")?
        .try_iter()?
        .map(|c| node_from_py(&c?))
        .collect()
}

/// Reads a plan built by verify.py; each node class names its kind in `KIND`.
fn node_from_py(obj: &Bound<'_, PyAny>) -> PyResult<Node<Arc<str>>> {
    let kind: String = obj.getattr("KIND")?.extract()?;
    Ok(match kind.as_str() {
        "lit" => {
            let (key, mask) = lit_from_py(obj)?;
            Node::Lit(key, mask)
        }
        "all" => Node::All(children_from_py(obj)?),
        "any" => Node::Any(children_from_py(obj)?),
        "not" => Node::Not(Box::new(node_from_py(&obj.getattr("child")?)?)),
        "near" => Node::Near(
            lits_from_py(&obj.getattr("left")?)?,
            lits_from_py(&obj.getattr("right")?)?,
            obj.getattr("distance")?.extract()?,
        ),
        other => {
            return Err(PyTypeError::new_err(format!(
                "unknown plan node kind {other:?}"
            )))
        }
    })
}

/// One compiled rule: who it belongs to, for Python (`tenant`, the `WatchlistRule`, its
/// version), and what the core needs of it. Python knows it as `CompiledRule`
/// (services/matcher/engine/compile.py). Built once per rule version and shared by every core
/// built afterwards, so a ruleset change converts only the changed rules. A build of 100k
/// rules makes 100k of them, so they are made here, in one call (compile.rs), not in Python.
#[pyclass(frozen, name = "CompiledRule", module = "newsalert_native")]
pub struct Rule {
    /// The tenant the rule belongs to.
    #[pyo3(get)]
    tenant: Py<PyString>,
    /// The `WatchlistRule` as written.
    #[pyo3(get)]
    rule: Py<PyAny>,
    /// The rule's version (rules.md section 6).
    #[pyo3(get)]
    version: Py<PyString>,
    parts: RuleParts,
}

/// What the core needs of a rule, as compile.py or compile.rs made it.
#[derive(Debug, PartialEq)]
struct RuleParts {
    plan: Node<Arc<str>>,
    /// keys one of which must occur (None: check on every article)
    trigger: Option<Vec<Arc<str>>>,
    /// every literal key of the rule
    keys: Vec<Arc<str>>,
    /// a trigger key occurring is a match
    outright: bool,
    /// sorted and distinct
    languages: Vec<String>,
    /// lower-cased, dots stripped
    sources: Vec<String>,
}

#[pymethods]
impl Rule {
    /// tenant, rule, version: the identity; plan: the plan.py plan; trigger: keys one of which
    /// must occur (None: check on every article); keys: every literal key of the rule;
    /// outright: a trigger key occurring is a match; languages, sources: the rule's filters
    /// (languages sorted and distinct; sources lower-cased, dots stripped).
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (tenant, rule, version, plan, trigger, keys, outright, languages, sources))]
    fn new(
        tenant: Py<PyString>,
        rule: Py<PyAny>,
        version: Py<PyString>,
        plan: &Bound<'_, PyAny>,
        trigger: Option<Vec<String>>,
        keys: Vec<String>,
        outright: bool,
        languages: Vec<String>,
        sources: Vec<String>,
    ) -> PyResult<Self> {
        if keys.iter().any(|k| k.is_empty()) {
            return Err(PyValueError::new_err("a literal key is empty"));
        }
        Ok(Rule {
            tenant,
            rule,
            version,
            parts: RuleParts {
                plan: node_from_py(plan)?,
                trigger: trigger.map(|t| t.into_iter().map(Arc::from).collect()),
                keys: keys.into_iter().map(Arc::from).collect(),
                outright,
                languages,
                sources,
            },
        })
    }

    /// The rule's id within its tenant.
    #[getter]
    fn rule_id<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.rule.bind(py).getattr(intern!(py, "id"))
    }

    /// The languages the rule is restricted to (empty: any).
    #[getter]
    fn languages<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyFrozenSet>> {
        PyFrozenSet::new(py, &self.parts.languages)
    }

    /// The source domains the rule is restricted to, lower-cased (empty: any).
    #[getter]
    fn sources<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.parts.sources)
    }

    /// Equal when the identity and every compiled part are (the test that holds compile.rs
    /// to compile.py compares them).
    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(other) = other.cast::<Rule>() else {
            return Ok(false);
        };
        let other = other.get();
        Ok(
            self.tenant.bind(py).to_str()? == other.tenant.bind(py).to_str()?
                && self.version.bind(py).to_str()? == other.version.bind(py).to_str()?
                && self.parts == other.parts
                && self.rule.bind(py).eq(other.rule.bind(py))?,
        )
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "CompiledRule({}/{} @{}: {:?})",
            self.tenant.bind(py).to_str()?,
            self.rule_id(py)?,
            self.version.bind(py).to_str()?,
            self.parts,
        ))
    }
}

/// One step of a rule's plan, flattened. Every rule's plan lies in one array (`Inner::code`),
/// rule after rule, so deciding a candidate reads a cache line or two in one place instead
/// of following boxed nodes and vectors scattered over the heap: at 100k rules each of those
/// was a cache miss. A composite's children follow it up to its `end` (an index into the same
/// array), which is also where the evaluation resumes when it skips the rest of them.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// A literal restricted to a set of fields (bit 0 title, bit 1 body).
    Lit {
        key: u32,
        mask: u8,
    },
    All {
        end: u32,
    },
    Any {
        end: u32,
    },
    /// Its one child follows.
    Not {
        end: u32,
    },
    /// NEAR/distance: left literals (as `Lit`s) follow, up to `right`; right ones up to `end`.
    Near {
        right: u32,
        end: u32,
        distance: u32,
    },
    /// The rule's language and source filters, an index into `Inner::filters`: the first
    /// step of a rule that has some, so that the check costs the others nothing.
    Filter(u32),
}

impl Op {
    /// This step in code moved `base` steps on, with key ids renumbered by `keys` and filter
    /// indices moved `filters` on.
    fn moved(self, base: u32, keys: &[u32], filters: u32) -> Op {
        match self {
            Op::Lit { key, mask } => Op::Lit {
                key: keys[key as usize],
                mask,
            },
            Op::All { end } => Op::All { end: end + base },
            Op::Any { end } => Op::Any { end: end + base },
            Op::Not { end } => Op::Not { end: end + base },
            Op::Near {
                right,
                end,
                distance,
            } => Op::Near {
                right: right + base,
                end: end + base,
                distance,
            },
            Op::Filter(index) => Op::Filter(index + filters),
        }
    }

    /// The index of the step after the subtree that starts at `at`.
    fn after(self, at: usize) -> usize {
        match self {
            Op::Lit { .. } | Op::Filter(_) => at + 1,
            Op::All { end } | Op::Any { end } | Op::Not { end } | Op::Near { end, .. } => {
                end as usize
            }
        }
    }
}

/// A rule's language and source filters (sources lower-cased, dots stripped).
struct Filters {
    languages: Vec<String>,
    sources: Vec<String>,
}

/// Token sequences (terms and phrases) as a trie over token ids. The first token of a
/// sequence leads to its node through an array; a further token costs a hash lookup, and
/// only at nodes that some longer sequence continues from.
#[derive(Default)]
struct SequenceIndex {
    vocabulary: FxHashMap<Box<str>, u32>,
    /// token id -> the node of the sequences that start with it, or NONE
    first: Vec<u32>,
    /// (node, token id) -> child node, below the first token; while keys are added
    children: FxHashMap<(u32, u32), u32>,
    /// (node, token id) -> what the scan needs of the child, once every key is added
    steps: FlatMap<u64, Step>,
    /// per node: the key of the sequence ending there, or NONE
    keys: Vec<u32>,
    /// per node: whether a longer sequence continues from it
    continues: Vec<bool>,
}

impl SequenceIndex {
    fn new_node(&mut self) -> u32 {
        self.keys.push(NONE);
        self.continues.push(false);
        self.keys.len() as u32 - 1
    }

    fn add(&mut self, tokens: &[&str], key: u32) {
        let mut node = NONE;
        for token in tokens {
            let next = self.vocabulary.len() as u32;
            let id = *self.vocabulary.entry((*token).into()).or_insert(next);
            if id == next {
                self.first.push(NONE);
            }
            node = if node == NONE {
                match self.first[id as usize] {
                    NONE => {
                        let fresh = self.new_node();
                        self.first[id as usize] = fresh;
                        fresh
                    }
                    existing => existing,
                }
            } else {
                self.continues[node as usize] = true;
                match self.children.get(&(node, id)) {
                    Some(&existing) => existing,
                    None => {
                        let fresh = self.new_node();
                        self.children.insert((node, id), fresh);
                        fresh
                    }
                }
            };
        }
        self.keys[node as usize] = key;
    }

    fn is_empty(&self) -> bool {
        self.vocabulary.is_empty()
    }

    /// Builds `steps` once every key is added.
    fn finish(&mut self) {
        for (&(node, id), &child) in &std::mem::take(&mut self.children) {
            let step = Step {
                node: if self.continues[child as usize] {
                    child
                } else {
                    NONE
                },
                key: self.keys[child as usize],
            };
            self.steps.insert(pair(node, id), step);
        }
    }

    /// Where a token stands in this index: everything the scan needs of it in one place.
    fn start(&self, token: &str) -> SeqStart {
        let id = self.vocabulary.get(token).copied().unwrap_or(NONE);
        let node = if id == NONE {
            NONE
        } else {
            self.first[id as usize]
        };
        let (key, more) = if node == NONE {
            (NONE, false)
        } else {
            (self.keys[node as usize], self.continues[node as usize])
        };
        SeqStart {
            id,
            key,
            node,
            more,
        }
    }

    /// Every sequence occurring in a field's tokens, as (key, occurrence) pairs.
    fn scan(&self, starts: &[SeqStart], field: u32, out: &mut Vec<(u32, Occ)>) {
        for (start, next) in starts.iter().zip(&starts[1.min(starts.len())..]) {
            if start.more && next.id != NONE {
                self.steps.prefetch(pair(start.node, next.id));
            }
        }
        for (at, start) in starts.iter().enumerate() {
            if start.key != NONE {
                out.push((start.key, (field, at as u32, at as u32 + 1)));
            }
            if !start.more {
                continue;
            }
            let mut node = start.node;
            for (end, next) in starts.iter().enumerate().skip(at + 1) {
                if next.id == NONE {
                    break;
                }
                let Some(step) = self.steps.get(pair(node, next.id)) else {
                    break;
                };
                if step.key != NONE {
                    out.push((step.key, (field, at as u32, end as u32 + 1)));
                }
                node = step.node;
                if node == NONE {
                    break;
                }
            }
        }
    }
}

fn pair(node: u32, id: u32) -> u64 {
    (node as u64) << 32 | id as u64
}

/// A trie node below the first token, as the scan reaches it from its parent: with the key
/// of the sequence ending there and, only if longer sequences continue from it, its node
/// (else NONE). One slot answers all three questions, where separate arrays cost a cache
/// miss each.
#[derive(Clone, Copy)]
struct Step {
    node: u32,
    key: u32,
}

impl Default for Step {
    fn default() -> Self {
        Step {
            node: NONE,
            key: NONE,
        }
    }
}

/// One token as a sequence index sees it: its id (NONE: in no sequence), the node of the
/// sequences it starts (NONE: none), the key of the one-token sequence, and whether longer
/// sequences start with it.
#[derive(Clone, Copy)]
struct SeqStart {
    id: u32,
    key: u32,
    node: u32,
    more: bool,
}

impl Default for SeqStart {
    fn default() -> Self {
        SeqStart {
            id: NONE,
            key: NONE,
            node: NONE,
            more: false,
        }
    }
}

/// Prefixes as a byte trie: an article token walks down it as far as its bytes lead, and
/// every prefix passed on the way is a hit. Most tokens leave the trie after a byte or two.
struct PrefixTrie {
    /// per node: children as (byte, node) sorted by byte, and the key ending here
    children: Vec<Vec<(u8, u32)>>,
    keys: Vec<u32>,
}

impl PrefixTrie {
    fn new() -> Self {
        PrefixTrie {
            children: vec![Vec::new()],
            keys: vec![NONE],
        }
    }

    fn add(&mut self, prefix: &str, key: u32) {
        let mut node = 0usize;
        for &byte in prefix.as_bytes() {
            node = match self.children[node].binary_search_by_key(&byte, |c| c.0) {
                Ok(i) => self.children[node][i].1 as usize,
                Err(i) => {
                    let child = self.keys.len() as u32;
                    self.children[node].insert(i, (byte, child));
                    self.children.push(Vec::new());
                    self.keys.push(NONE);
                    child as usize
                }
            };
        }
        self.keys[node] = key;
    }

    /// The keys of every prefix of `token`, shortest first.
    fn matches(&self, token: &str) -> Box<[u32]> {
        let mut found = Vec::new();
        let mut node = 0usize;
        for &byte in token.as_bytes() {
            match self.children[node].binary_search_by_key(&byte, |c| c.0) {
                Ok(i) => node = self.children[node][i].1 as usize,
                Err(_) => break,
            }
            if self.keys[node] != NONE {
                found.push(self.keys[node]);
            }
        }
        found.into()
    }
}

/// Article token -> TokenInfo. Tokens are short: up to 15 bytes, a token is packed into a
/// u128 key, so a lookup hashes two words and compares one integer instead of calling
/// memcmp, which took a quarter of the scan's time; longer tokens go to a map of strings.
#[derive(Default)]
struct TokenMemo {
    short: FlatMap<u128, TokenInfo>,
    long: FxHashMap<Box<str>, TokenInfo>,
    /// every token's prefix keys, one run after another (see `TokenInfo::prefixes`): a few
    /// hundred kilobytes at most in news, where a boxed slice per token cost a cache miss
    prefix_keys: Vec<u32>,
}

impl TokenMemo {
    /// The token's bytes, zero-padded, with its length in the last byte.
    fn pack(token: &str) -> Option<u128> {
        let bytes = token.as_bytes();
        if bytes.len() > 15 {
            return None;
        }
        let mut packed = [0u8; 16];
        packed[..bytes.len()].copy_from_slice(bytes);
        packed[15] = bytes.len() as u8;
        Some(u128::from_le_bytes(packed))
    }

    fn get(&self, token: &str) -> Option<&TokenInfo> {
        match Self::pack(token) {
            Some(key) => self.short.get(key),
            None => self.long.get(token),
        }
    }

    /// Each token's info, None if some token is new. Every short token's slot is prefetched
    /// before the first is read.
    fn get_all(&self, field: &Field<'_>) -> Option<Vec<&TokenInfo>> {
        for key in field.packed.iter().flatten() {
            self.short.prefetch(*key);
        }
        field
            .tokens
            .iter()
            .zip(&field.packed)
            .map(|(token, key)| match key {
                Some(key) => self.short.get(*key),
                None => self.long.get(*token),
            })
            .collect()
    }

    fn insert(&mut self, token: &str, mut info: TokenInfo, prefixes: &[u32]) {
        info.prefixes = (self.prefix_keys.len() as u32, prefixes.len() as u32);
        self.prefix_keys.extend_from_slice(prefixes);
        match Self::pack(token) {
            Some(key) => self.short.insert(key, info),
            None => {
                self.long.insert(token.into(), info);
            }
        }
    }

    fn len(&self) -> usize {
        self.short.len + self.long.len()
    }

    /// The keys of the prefixes a token starts with, shortest first.
    fn prefixes(&self, info: &TokenInfo) -> &[u32] {
        let (start, len) = (info.prefixes.0 as usize, info.prefixes.1 as usize);
        &self.prefix_keys[start..start + len]
    }

    fn clear(&mut self) {
        *self = TokenMemo::default();
    }
}

/// What the core knows of one article token: its id in the raw and in the stemmed index
/// (NONE when no key holds it) and the prefixes it starts with.
#[derive(Default)]
struct TokenInfo {
    raw: SeqStart,
    stem: SeqStart,
    /// (start, count) in `TokenMemo::prefix_keys`
    prefixes: (u32, u32),
}

struct Inner {
    /// every rule's plan, flattened (see `Op`)
    code: Vec<Op>,
    /// rule index -> where its plan starts in `code`
    starts: Vec<u32>,
    filters: Vec<Filters>,
    key_count: usize,
    raw: SequenceIndex,
    stemmed: SequenceIndex,
    prefixes: PrefixTrie,
    /// key id -> the rules it puts forward
    postings: Postings,
    /// rules with no trigger: evaluated on every article
    always: Vec<Posting>,
    /// article token -> what it is to this core: one lookup per token on the hot path
    tokens: Mutex<TokenMemo>,
    max_tokens: usize,
}

impl Inner {
    /// Make sure every token of `fields` is known, stemming the new ones.
    fn learn_tokens(
        &self,
        py: Python<'_>,
        fields: [&[&str]; 2],
        stems: Option<&StemCache>,
    ) -> PyResult<()> {
        let mut fresh: Vec<&str> = {
            let mut known = lock(&self.tokens)?;
            let fresh: Vec<&str> = fields
                .iter()
                .copied()
                .flatten()
                .copied()
                .filter(|t| known.get(t).is_none())
                .collect();
            // A bound against adversarial vocabularies (news stays far below it): start over,
            // with this article's tokens, which the scan is about to look up.
            if known.len() + fresh.len() > self.max_tokens {
                known.clear();
                fields.iter().copied().flatten().copied().collect()
            } else {
                fresh
            }
        };
        if fresh.is_empty() {
            return Ok(());
        }
        fresh.sort_unstable();
        fresh.dedup();
        let stemmed: Vec<Option<String>> = match stems {
            Some(stems) => fresh
                .iter()
                .map(|t| stems.stem_one(py, t).map(Some))
                .collect::<PyResult<_>>()?,
            None => vec![None; fresh.len()],
        };
        let mut known = lock(&self.tokens)?;
        for (token, stem) in fresh.into_iter().zip(stemmed) {
            let info = self.token_info(token, stem.as_deref());
            known.insert(token, info, &self.prefixes.matches(token));
        }
        Ok(())
    }

    fn token_info(&self, token: &str, stem: Option<&str>) -> TokenInfo {
        const ABSENT: SeqStart = SeqStart {
            id: NONE,
            key: NONE,
            node: NONE,
            more: false,
        };
        TokenInfo {
            raw: self.raw.start(token),
            stem: stem.map_or(ABSENT, |s| self.stemmed.start(s)),
            prefixes: (0, 0),
        }
    }
}

/// A rule put forward by a key, in 8 bytes (an article walks some 1,500 of them): the rule,
/// and in `what` its `Role`, with where its plan starts in `Inner::code` for the roles that
/// evaluate it, so that deciding it needs no read of `Inner::starts`, which at 100k rules
/// was a cache miss per candidate.
#[derive(Clone, Copy)]
struct Posting {
    rule: u32,
    what: u32,
}

impl Posting {
    const OUTRIGHT: u32 = u32::MAX;
    const SECOND: u32 = u32::MAX - 1;
    /// set on the plan offset of a `CheckIfSecond`
    const IF_SECOND: u32 = 1 << 31;
    /// Plan offsets must stay below this, for the encoding above.
    const MAX_PLAN: usize = (Self::IF_SECOND - 2) as usize;

    fn new(rule: u32, plan: u32, role: Role) -> Self {
        let what = match role {
            Role::Outright => Self::OUTRIGHT,
            Role::Second => Self::SECOND,
            Role::Check => plan,
            Role::CheckIfSecond => plan | Self::IF_SECOND,
        };
        Posting { rule, what }
    }

    fn role(self) -> Role {
        match self.what {
            Self::OUTRIGHT => Role::Outright,
            Self::SECOND => Role::Second,
            what if what & Self::IF_SECOND != 0 => Role::CheckIfSecond,
            _ => Role::Check,
        }
    }

    /// This posting with its plan moved `base` steps on in code.
    fn moved(self, base: u32) -> Posting {
        match self.role() {
            Role::Outright | Role::Second => self,
            Role::Check | Role::CheckIfSecond => Posting {
                rule: self.rule,
                what: self.what + base,
            },
        }
    }

    /// Where the plan starts, for `Check` and `CheckIfSecond`.
    fn plan(self) -> u32 {
        self.what & !Self::IF_SECOND
    }
}

/// What a key's occurrence does to a rule.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// a trigger key of a rule that it decides: the rule matches
    Outright,
    /// a trigger key: the rule is evaluated
    Check,
    /// a trigger key of a rule that also has a second trigger (see `second_trigger`): the
    /// rule is evaluated if a key of that occurs too
    CheckIfSecond,
    /// a key of a rule's second trigger
    Second,
}

/// Keys one of which must occur for the plan to hold, besides the rule's trigger: for
/// `common AND rare`, NEAR, and their like, whichever side the trigger is, the other.
///
/// Most candidates at 100k rules were of that kind and failed (of ~645 evaluated per
/// article, ~127 held), each costing a cache miss on its plan; the second trigger's
/// postings are read in sequence with the first's, and a rule whose second trigger has no
/// hit is never evaluated. Exact: each set is necessary for the plan to hold.
fn second_trigger<'p>(plan: &'p Node<Arc<str>>, trigger: &[Arc<str>]) -> Option<Vec<&'p Arc<str>>> {
    let mut sets = Vec::new();
    necessary(plan, &mut sets);
    sets.into_iter()
        .filter(|set| set.iter().all(|key| !trigger.contains(*key)))
        .min_by_key(|set| selectivity(set))
}

/// Sets of keys such that for `node` to hold, some key of each set must occur. By reference:
/// a clone of a key writes its count, a cache miss per key at 100k rules.
fn necessary<'p>(node: &'p Node<Arc<str>>, out: &mut Vec<Vec<&'p Arc<str>>>) {
    match node {
        Node::Lit(key, _) => out.push(vec![key]),
        Node::All(children) => children.iter().for_each(|c| necessary(c, out)),
        Node::Any(children) => {
            let mut union = Vec::new();
            for child in children {
                let mut sets = Vec::new();
                necessary(child, &mut sets);
                match sets.into_iter().min_by_key(|set| selectivity(set)) {
                    Some(set) => union.extend(set),
                    None => return,
                }
            }
            union.sort_unstable();
            union.dedup();
            out.push(union);
        }
        Node::Not(_) => {}
        Node::Near(left, right, _) => {
            out.push(left.iter().map(|(key, _)| key).collect());
            out.push(right.iter().map(|(key, _)| key).collect());
        }
    }
}

/// Fewer keys first, then longer ones: long keys are rarer in text (as compile.py ranks
/// triggers).
pub(crate) fn selectivity<K: AsRef<str>>(keys: &[K]) -> (usize, std::cmp::Reverse<usize>) {
    let shortest = keys.iter().map(|key| key.as_ref().len()).min().unwrap_or(0);
    (keys.len(), std::cmp::Reverse(shortest))
}

/// key id -> postings, in two flat arrays: a hit costs two adjacent reads, not a pointer
/// chase to a small vector of its own somewhere in the heap.
struct Postings {
    starts: Vec<u32>,
    postings: Vec<Posting>,
}

impl Postings {
    /// `posted`: (key id, posting) in the order each key's postings keep; ids below `keys`.
    /// One counting pass and one placing pass, rather than a growing list per key.
    fn new(keys: usize, posted: &[(u32, Posting)]) -> Self {
        let mut starts = huge_capacity(keys + 1);
        starts.resize(keys + 1, 0u32);
        for &(key, _) in posted {
            starts[key as usize + 1] += 1;
        }
        for key in 0..keys {
            starts[key + 1] += starts[key];
        }
        let mut next = starts.clone();
        let mut postings = huge_capacity(posted.len());
        postings.resize(posted.len(), Posting { rule: 0, what: 0 });
        for &(key, posting) in posted {
            let at = &mut next[key as usize];
            postings[*at as usize] = posting;
            *at += 1;
        }
        Postings { starts, postings }
    }

    fn of(&self, key: u32) -> &[Posting] {
        let key = key as usize;
        &self.postings[self.starts[key] as usize..self.starts[key + 1] as usize]
    }

    /// Starts loading what `of(key)` reads; see `prefetch`.
    fn prefetch_starts(&self, key: u32) {
        prefetch(&self.starts[key as usize]);
    }

    fn prefetch_postings(&self, key: u32) {
        if let Some(first) = self.postings.get(self.starts[key as usize] as usize) {
            prefetch(first);
        }
    }
}

/// `data` moved to memory the kernel is asked to back with 2 MiB pages where it can.
///
/// The scan reads a few bytes here and there over megabytes of postings and plans; with 4 KiB
/// pages nearly every such read also missed the TLB, and in a virtual machine a page walk
/// costs several memory reads of its own (perf put most of the scan's time on the first
/// read of each candidate's plan, prefetched or not). The advice must come before the
/// memory is first written, hence the copy. Elsewhere than Linux, or where the kernel
/// declines, nothing changes.
fn on_huge_pages<T: Copy>(data: Vec<T>) -> Vec<T> {
    if std::mem::size_of_val(data.as_slice()) < HUGE_PAGE {
        return data;
    }
    let mut moved = huge_capacity(data.len());
    moved.extend_from_slice(&data);
    moved
}

const HUGE_PAGE: usize = 2 << 20;

/// An empty Vec with room for `capacity` items, advised onto huge pages as `on_huge_pages`
/// says, when that is at least one huge page.
fn huge_capacity<T>(capacity: usize) -> Vec<T> {
    let mut moved: Vec<T> = Vec::with_capacity(capacity);
    let bytes = capacity * std::mem::size_of::<T>();
    #[cfg(target_os = "linux")]
    {
        extern "C" {
            fn madvise(
                addr: *mut std::ffi::c_void,
                len: usize,
                advice: std::ffi::c_int,
            ) -> std::ffi::c_int;
        }
        const MADV_HUGEPAGE: std::ffi::c_int = 14;
        let start = moved.as_mut_ptr() as usize;
        let (from, to) = (
            start.next_multiple_of(HUGE_PAGE),
            (start + bytes) / HUGE_PAGE * HUGE_PAGE,
        );
        if from < to {
            // SAFETY: the range lies within `moved`'s allocation and is page-aligned; the
            // advice changes how the kernel backs it, never its contents.
            unsafe { madvise(from as *mut std::ffi::c_void, to - from, MADV_HUGEPAGE) };
        }
    }
    moved
}

/// A key of a `FlatMap`: an integer with one value that no real key takes.
trait FlatKey: Copy + Eq + std::hash::Hash {
    const EMPTY: Self;
}

/// A packed token (see `TokenMemo::pack`): its last byte is its length, never zero.
impl FlatKey for u128 {
    const EMPTY: u128 = 0;
}

/// A (node, token id) pair, node in the high half: a node is never NONE.
impl FlatKey for u64 {
    const EMPTY: u64 = u64::MAX;
}

/// Integer keys -> values, by open addressing with linear probing, kept at most half full.
/// A lookup mostly reads one slot, key and value together, and that slot can be prefetched
/// as soon as the key is known: the scan asks for every token's slot of an article before it
/// reads the first, so that their cache misses overlap instead of queueing.
struct FlatMap<K, V> {
    /// a power of two of them
    slots: Vec<(K, V)>,
    len: usize,
}

impl<K: FlatKey, V: Default> FlatMap<K, V> {
    fn with_slots(count: usize) -> Self {
        let mut slots = huge_capacity(count);
        slots.resize_with(count, || (K::EMPTY, V::default()));
        FlatMap { slots, len: 0 }
    }

    fn home(&self, key: K) -> usize {
        rustc_hash::FxBuildHasher.hash_one(key) as usize & (self.slots.len() - 1)
    }

    /// Starts loading the slot where a lookup of `key` begins.
    fn prefetch(&self, key: K) {
        let slot = &self.slots[self.home(key)];
        prefetch(slot);
        // A slot may straddle two cache lines.
        prefetch(&slot.1);
    }

    fn get(&self, key: K) -> Option<&V> {
        let mask = self.slots.len() - 1;
        let mut at = self.home(key);
        loop {
            let (k, v) = &self.slots[at];
            if *k == key {
                return Some(v);
            }
            if *k == K::EMPTY {
                return None;
            }
            at = (at + 1) & mask;
        }
    }

    fn insert(&mut self, key: K, value: V) {
        if (self.len + 1) * 2 > self.slots.len() {
            let mut grown = Self::with_slots(self.slots.len() * 2);
            for (k, v) in std::mem::take(&mut self.slots) {
                if k != K::EMPTY {
                    grown.insert(k, v);
                }
            }
            *self = grown;
        }
        let mask = self.slots.len() - 1;
        let mut at = self.home(key);
        while self.slots[at].0 != K::EMPTY && self.slots[at].0 != key {
            at = (at + 1) & mask;
        }
        if self.slots[at].0 == K::EMPTY {
            self.len += 1;
        }
        self.slots[at] = (key, value);
    }
}

impl<K: FlatKey, V: Default> Default for FlatMap<K, V> {
    fn default() -> Self {
        Self::with_slots(16)
    }
}

/// The left and right literals of the `Op::Near { right, end, .. }` at `code[at]`.
fn near_operands(code: &[Op], at: usize, right: u32, end: u32) -> (&[Op], &[Op]) {
    (
        &code[at + 1..right as usize],
        &code[right as usize..end as usize],
    )
}

/// Asks the CPU to start loading the cache line of `value`, so that a later read of it, some
/// work further on, does not wait on memory. At 100k rules the scan's reads of postings and
/// plans land all over megabytes of memory; one after another, each waits out a cache miss,
/// while issued ahead they overlap.
#[inline(always)]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: SSE is part of x86_64; a prefetch never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

#[derive(Default)]
struct KeyTable {
    ids: FxHashMap<Arc<str>, u32>,
    /// The same ids by the address of a key's text. Rules compiled together share one `Arc`
    /// per distinct key (compile.rs), so most lookups hash an address rather than the text,
    /// whose comparison is a cache miss per key at 100k rules. Addresses are stable and
    /// unique while the core is built: the rules being read hold every key alive.
    by_address: FxHashMap<usize, u32>,
    keys: Vec<Arc<str>>,
    /// (address, id) of the keys of the rule being added (`begin_rule`). Its plan and
    /// triggers name its own keys over and over; a scan of these few entries stays in the
    /// cache, where each lookup in `by_address` was a miss at 100k rules.
    rule: Vec<(usize, u32)>,
}

impl KeyTable {
    /// Resolve the keys of the next rule, which `id` then finds first.
    fn begin_rule(&mut self, keys: &[Arc<str>]) {
        self.rule.clear();
        for key in keys {
            let id = self.id(key);
            self.rule.push((address(key), id));
        }
    }

    fn id(&mut self, key: &Arc<str>) -> u32 {
        let address = address(key);
        if let Some(&(_, id)) = self.rule.iter().find(|(at, _)| *at == address) {
            return id;
        }
        if let Some(&id) = self.by_address.get(&address) {
            return id;
        }
        let id = match self.ids.get(key) {
            Some(&id) => id,
            None => {
                let id = self.keys.len() as u32;
                self.ids.insert(key.clone(), id);
                self.keys.push(key.clone());
                id
            }
        };
        self.by_address.insert(address, id);
        id
    }

    /// Appends `node`, flattened, to `code`.
    fn emit(&mut self, node: &Node<Arc<str>>, code: &mut Vec<Op>) {
        let at = code.len();
        let end = |code: &Vec<Op>| code.len() as u32;
        match node {
            Node::Lit(key, mask) => self.emit_lit(key, *mask, code),
            Node::All(children) | Node::Any(children) => {
                code.push(Op::All { end: 0 });
                for child in children {
                    self.emit(child, code);
                }
                let end = end(code);
                code[at] = match node {
                    Node::All(_) => Op::All { end },
                    _ => Op::Any { end },
                };
            }
            Node::Not(child) => {
                code.push(Op::Not { end: 0 });
                self.emit(child, code);
                code[at] = Op::Not { end: end(code) };
            }
            Node::Near(left, right, distance) => {
                code.push(Op::Not { end: 0 });
                for (key, mask) in left {
                    self.emit_lit(key, *mask, code);
                }
                let right_at = end(code);
                for (key, mask) in right {
                    self.emit_lit(key, *mask, code);
                }
                code[at] = Op::Near {
                    right: right_at,
                    end: end(code),
                    distance: *distance,
                };
            }
        }
    }

    fn emit_lit(&mut self, key: &Arc<str>, mask: u8, code: &mut Vec<Op>) {
        let key = self.id(key);
        code.push(Op::Lit { key, mask });
    }
}

/// Where a key's text lives: equal for clones of one `Arc`.
fn address(key: &Arc<str>) -> usize {
    Arc::as_ptr(key).cast::<u8>() as usize
}

/// Every key by its tokens, raw or stemmed, or as a prefix.
struct KeyIndex {
    raw: SequenceIndex,
    stemmed: SequenceIndex,
    prefixes: PrefixTrie,
}

impl KeyIndex {
    fn new() -> Self {
        KeyIndex {
            raw: SequenceIndex::default(),
            stemmed: SequenceIndex::default(),
            prefixes: PrefixTrie::new(),
        }
    }

    /// Index `keys`, whose ids run from `first`.
    fn add_all(&mut self, keys: &[Arc<str>], first: u32) -> PyResult<()> {
        (first..)
            .zip(keys)
            .try_for_each(|(id, key)| self.add(key, id))
    }

    /// Where a key goes: a token sequence (raw or stemmed) or a prefix, by its framing.
    fn add(&mut self, key: &str, id: u32) -> PyResult<()> {
        let bad = || PyValueError::new_err(format!("not a framed literal key: {key:?}"));
        if let Some(inner) = key.strip_prefix(STEM_SEP) {
            let inner = inner.strip_suffix(STEM_SEP).ok_or_else(bad)?;
            let tokens: Vec<&str> = inner.split(STEM_SEP).collect();
            if tokens.iter().any(|t| t.is_empty()) {
                return Err(bad());
            }
            self.stemmed.add(&tokens, id);
        } else {
            let inner = key.strip_prefix(RAW_SEP).ok_or_else(bad)?;
            match inner.strip_suffix(RAW_SEP) {
                Some(phrase) => {
                    let tokens: Vec<&str> = phrase.split(RAW_SEP).collect();
                    if tokens.iter().any(|t| t.is_empty()) {
                        return Err(bad());
                    }
                    self.raw.add(&tokens, id);
                }
                None if !inner.is_empty() && !inner.contains(RAW_SEP) => {
                    self.prefixes.add(inner, id)
                }
                None => return Err(bad()),
            }
        }
        Ok(())
    }
}

/// The core's tables of a run of rules: keys numbered in first-use order, plans flattened,
/// postings by key.
#[derive(Default)]
struct Tables {
    table: KeyTable,
    code: Vec<Op>,
    /// rule index -> where its plan starts in `code`
    starts: Vec<u32>,
    filters: Vec<Filters>,
    /// (key id, a rule it puts forward), in rule order
    posted: Vec<(u32, Posting)>,
    always: Vec<Posting>,
}

/// `rules` split into up to `threads` contiguous runs (start, end) of about equal work, a
/// rule's work being about its number of keys: rulesets are often written in blocks of
/// alike rules, so equal counts of rules can be far from equal work.
fn runs(rules: &[&RuleParts], threads: usize) -> Vec<(usize, usize)> {
    let threads = threads.clamp(1, rules.len().max(1));
    let weight = |rule: &&RuleParts| rule.keys.len() + 1;
    let total: usize = rules.iter().map(weight).sum();
    let mut runs = Vec::with_capacity(threads);
    let (mut start, mut done) = (0, 0);
    for (at, rule) in rules.iter().enumerate() {
        done += weight(rule);
        if done * threads >= total * (runs.len() + 1) && runs.len() + 1 < threads {
            runs.push((start, at + 1));
            start = at + 1;
        }
    }
    if start < rules.len() {
        runs.push((start, rules.len()));
    }
    runs
}

/// Threads for a build, by default: the machine's cores, at most 4.
pub(crate) fn build_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Rules per thread of a core build, by default.
const MIN_RULES_PER_THREAD: usize = 8192;

impl Tables {
    /// The tables of `rules`, built in contiguous runs on up to `threads` threads and joined
    /// in order, which numbers keys, plans and postings exactly as one pass would (at 100k
    /// rules the pass was a third of a second of cache misses on one core); and the index of
    /// their keys.
    fn build(rules: &[&RuleParts], threads: usize) -> PyResult<(Tables, KeyIndex)> {
        let runs = runs(rules, threads);
        let mut index = KeyIndex::new();
        let Some((&(start, end), others)) = runs.split_first() else {
            return Ok((Tables::default(), index));
        };
        std::thread::scope(|scope| {
            let others: Vec<_> = others
                .iter()
                .map(|&(start, end)| {
                    scope.spawn(move || Tables::of(&rules[start..end], start as u32))
                })
                .collect();
            let mut tables = Tables::of(&rules[start..end], start as u32)?;
            // The first run's keys keep their ids: index them while the others are built.
            index.add_all(&tables.table.keys, 0)?;
            for other in others {
                let known = tables.table.keys.len();
                tables.append(other.join().expect("a core build thread panicked")?)?;
                index.add_all(&tables.table.keys[known..], known as u32)?;
            }
            Ok((tables, index))
        })
    }

    /// The tables of `rules`, the first of which is rule `first` of the core.
    fn of(rules: &[&RuleParts], first: u32) -> PyResult<Tables> {
        let mut tables = Tables::default();
        for (index, rule) in (first..).zip(rules) {
            tables.add(index, rule)?;
        }
        Ok(tables)
    }

    fn add(&mut self, index: u32, rule: &RuleParts) -> PyResult<()> {
        let Tables {
            table,
            code,
            starts,
            filters,
            posted,
            always,
        } = self;
        table.begin_rule(&rule.keys);
        let plan = code.len() as u32;
        starts.push(plan);
        if !rule.languages.is_empty() || !rule.sources.is_empty() {
            code.push(Op::Filter(filters.len() as u32));
            filters.push(Filters {
                languages: rule.languages.clone(),
                sources: rule.sources.clone(),
            });
        }
        table.emit(&rule.plan, code);
        if plan as usize > Posting::MAX_PLAN {
            return Err(PyValueError::new_err("the rules' plans are too large"));
        }
        let posting = |role| Posting::new(index, plan, role);
        let mut post = |key: &Arc<str>, posting: Posting| posted.push((table.id(key), posting));
        match &rule.trigger {
            None => always.push(posting(Role::Check)),
            Some(trigger) if rule.outright => {
                trigger
                    .iter()
                    .for_each(|key| post(key, posting(Role::Outright)));
            }
            Some(trigger) => match second_trigger(&rule.plan, trigger) {
                None => trigger
                    .iter()
                    .for_each(|key| post(key, posting(Role::Check))),
                Some(second) => {
                    for key in trigger {
                        post(key, posting(Role::CheckIfSecond));
                    }
                    for key in second {
                        post(key, posting(Role::Second));
                    }
                }
            },
        }
        Ok(())
    }

    /// Appends the tables of the rules that follow: their keys renumbered into this table's
    /// (new ones in their first-use order), their plans and postings moved past this code.
    fn append(&mut self, other: Tables) -> PyResult<()> {
        let ids: Vec<u32> = other
            .table
            .keys
            .iter()
            .map(|key| self.table.id(key))
            .collect();
        let base = self.code.len() as u32;
        let filters = self.filters.len() as u32;
        for &start in &other.starts {
            if (base + start) as usize > Posting::MAX_PLAN {
                return Err(PyValueError::new_err("the rules' plans are too large"));
            }
        }
        self.starts
            .extend(other.starts.iter().map(|start| base + start));
        self.code
            .extend(other.code.iter().map(|op| op.moved(base, &ids, filters)));
        self.filters.extend(other.filters);
        self.always
            .extend(other.always.iter().map(|posting| posting.moved(base)));
        self.posted.extend(
            other
                .posted
                .iter()
                .map(|&(key, posting)| (ids[key as usize], posting.moved(base))),
        );
        Ok(())
    }
}

/// A ruleset ready to scan articles: every rule's literals indexed by token, and indexes
/// from each literal to the rules it decides or puts forward.
#[pyclass(frozen, module = "newsalert_native")]
pub struct Core {
    inner: Arc<Inner>,
}

#[pymethods]
impl Core {
    /// A core over `rules`, in order: the article's matches are indices into this list.
    /// `max_tokens` bounds the memo of article tokens seen so far. Built on `threads`
    /// threads (default: one per 8k rules, up to the cores, at most 4), with the same result
    /// on any number.
    #[new]
    #[pyo3(signature = (rules, max_tokens = MAX_MEMO_ENTRIES, threads = None))]
    fn new(
        py: Python<'_>,
        rules: Vec<PyRef<'_, Rule>>,
        max_tokens: usize,
        threads: Option<usize>,
    ) -> PyResult<Self> {
        let parts: Vec<&RuleParts> = rules.iter().map(|rule| &rule.parts).collect();
        let threads = threads
            .unwrap_or_else(|| build_threads().min(parts.len().div_ceil(MIN_RULES_PER_THREAD)));
        let (tables, index) = py.detach(|| Tables::build(&parts, threads))?;
        let key_count = tables.table.keys.len();
        let KeyIndex {
            mut raw,
            mut stemmed,
            prefixes,
        } = index;
        raw.finish();
        stemmed.finish();
        let inner = Inner {
            code: on_huge_pages(tables.code),
            starts: tables.starts,
            filters: tables.filters,
            key_count,
            raw,
            stemmed,
            prefixes,
            postings: Postings::new(key_count, &tables.posted),
            always: tables.always,
            tokens: Mutex::new(TokenMemo::default()),
            max_tokens,
        };
        Ok(Core {
            inner: Arc::new(inner),
        })
    }

    /// Distinct literal keys.
    #[getter]
    fn literal_count(&self) -> usize {
        self.inner.key_count
    }

    /// Whether some rule compares stems, so articles must be stemmed.
    #[getter]
    fn uses_stems(&self) -> bool {
        !self.inner.stemmed.is_empty()
    }

    /// Scan one article and decide every rule.
    ///
    /// `title` and `body` are the fields' tokens separated by one or more spaces (tokens never
    /// hold one); `stems` stems them when some rule needs it.
    ///
    /// Returns (the scan, for evidence; indices of the matching rules, ascending; how many
    /// rules were considered; how many distinct keys occurred).
    #[pyo3(signature = (title, body, stems, language, domain))]
    fn scan(
        &self,
        py: Python<'_>,
        title: &str,
        body: &str,
        stems: Option<&StemCache>,
        language: Option<&str>,
        domain: Option<&str>,
    ) -> PyResult<(Scan, Vec<u32>, usize, usize)> {
        let inner = &self.inner;
        let fields = [Field::split(title), Field::split(body)];
        let stems = match (inner.stemmed.is_empty(), stems) {
            (true, _) => None,
            (false, Some(stems)) => Some(stems),
            (false, None) => {
                return Err(PyValueError::new_err(
                    "this ruleset stems: scan needs a StemCache",
                ))
            }
        };
        let mut known = lock(&inner.tokens)?;
        if lookup(&known, &fields).is_none() {
            drop(known);
            inner.learn_tokens(py, [&fields[0].tokens, &fields[1].tokens], stems)?;
            known = lock(&inner.tokens)?;
        }
        let looked_up = lookup(&known, &fields)
            .ok_or_else(|| PyValueError::new_err("a token was forgotten as soon as learnt"))?;
        let mut found: Vec<(u32, Occ)> = Vec::new();
        for (field, infos) in looked_up.iter().enumerate() {
            let field = field as u32;
            let raw: Vec<SeqStart> = infos.iter().map(|i| i.raw).collect();
            inner.raw.scan(&raw, field, &mut found);
            if stems.is_some() {
                let stemmed: Vec<SeqStart> = infos.iter().map(|i| i.stem).collect();
                inner.stemmed.scan(&stemmed, field, &mut found);
            }
            for (at, info) in infos.iter().enumerate() {
                let at = at as u32;
                let prefixes = known.prefixes(info);
                found.extend(prefixes.iter().map(|&key| (key, (field, at, at + 1))));
            }
        }
        drop(known);
        let scan = Scan::new(inner.clone(), found);
        // Rule sets as bits, not sorted lists: a rule put forward by several keys is marked
        // again at no cost, and reading the bits back yields ascending rule order.
        let rule_count = inner.starts.len();
        let (mut matched, mut seen) = (RuleSet::new(rule_count), RuleSet::new(rule_count));
        let mut second = RuleSet::new(rule_count);
        let mut candidates: Vec<Posting> = Vec::new();
        // put forward by their trigger, and evaluated only if their second trigger has a hit
        let mut pending: Vec<Posting> = Vec::new();
        let mut put_forward = |posting: Posting| match posting.role() {
            Role::Outright => {
                matched.insert(posting.rule);
            }
            role @ (Role::Check | Role::CheckIfSecond) if seen.insert(posting.rule) => {
                if role == Role::Check {
                    candidates.push(posting);
                } else {
                    pending.push(posting);
                }
            }
            Role::Check | Role::CheckIfSecond => {}
            Role::Second => {
                second.insert(posting.rule);
            }
        };
        inner.always.iter().copied().for_each(&mut put_forward);
        // Two steps to a key's postings, both likely cache misses: prefetched two strides and
        // one stride ahead, each step finds its line on the way.
        const AHEAD: usize = 8;
        let hits = &scan.hits;
        for (i, &key) in hits.iter().enumerate() {
            if let Some(&later) = hits.get(i + 2 * AHEAD) {
                inner.postings.prefetch_starts(later);
            }
            if let Some(&later) = hits.get(i + AHEAD) {
                inner.postings.prefetch_postings(later);
            }
            inner
                .postings
                .of(key)
                .iter()
                .copied()
                .for_each(&mut put_forward);
        }
        let considered = matched.len() + candidates.len() + pending.len();
        candidates.extend(pending.into_iter().filter(|p| second.contains(p.rule)));
        for (i, candidate) in candidates.iter().enumerate() {
            if let Some(later) = candidates.get(i + AHEAD) {
                prefetch(&inner.code[later.plan() as usize]);
            }
            if scan.decides(candidate.plan(), language, domain) {
                matched.insert(candidate.rule);
            }
        }
        let hits = scan.hits.len();
        Ok((scan, matched.iter().collect(), considered, hits))
    }
}

/// Each field's tokens as the core knows them; None if some token is new to it.
fn lookup<'a>(known: &'a TokenMemo, fields: &[Field<'_>; 2]) -> Option<[Vec<&'a TokenInfo>; 2]> {
    Some([known.get_all(&fields[0])?, known.get_all(&fields[1])?])
}

/// One field of an article: its tokens, and the packed key of each (`TokenMemo::pack`; None
/// for a long token).
struct Field<'a> {
    tokens: Vec<&'a str>,
    packed: Vec<Option<u128>>,
}

impl<'a> Field<'a> {
    /// `text`: tokens separated by one or more spaces (tokens never hold one). One pass over
    /// the bytes, each token packed from a 16-byte load where the text has room for one:
    /// `str::split` and a copy per token took a quarter of the scan at 1k rules.
    fn split(text: &'a str) -> Self {
        let bytes = text.as_bytes();
        let estimate = bytes.len() / 6 + 1;
        let (mut tokens, mut packed) = (Vec::with_capacity(estimate), Vec::with_capacity(estimate));
        let mut start = 0;
        for end in 0..=bytes.len() {
            if end < bytes.len() && bytes[end] != RAW_SEP as u8 {
                continue;
            }
            if end > start {
                tokens.push(&text[start..end]);
                packed.push(pack_at(bytes, start, end));
            }
            start = end + 1;
        }
        Field { tokens, packed }
    }
}

/// `TokenMemo::pack(&text[start..end])`, from one unaligned load when 16 bytes are there.
fn pack_at(bytes: &[u8], start: usize, end: usize) -> Option<u128> {
    let len = end - start;
    if len > 15 {
        return None;
    }
    let word = match bytes.get(start..start + 16) {
        Some(window) => u128::from_le_bytes(window.try_into().expect("16 bytes")),
        None => {
            let mut padded = [0u8; 16];
            padded[..len].copy_from_slice(&bytes[start..end]);
            u128::from_le_bytes(padded)
        }
    };
    Some(word & ((1u128 << (8 * len)) - 1) | (len as u128) << 120)
}

/// token -> stem, computed once per distinct token by the Python stemmer it wraps (rules.md
/// section 4 names the algorithm; there is one implementation of it, in Python).
#[pyclass(frozen, module = "newsalert_native")]
pub struct StemCache {
    stem: Py<PyAny>,
    max_entries: usize,
    memo: Mutex<FxHashMap<Box<str>, Box<str>>>,
}

impl StemCache {
    /// Stems every token of `tokens` the memo does not hold, attaching to the interpreter
    /// once for all of them.
    fn learn(&self, tokens: &[&str]) -> PyResult<()> {
        let missing: Vec<&str> = {
            let memo = lock(&self.memo)?;
            tokens
                .iter()
                .copied()
                .filter(|t| !memo.contains_key(*t))
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        Python::attach(|py| {
            missing
                .iter()
                .try_for_each(|t| self.stem_one(py, t).map(drop))
        })
    }

    /// `stem_one` from a thread that may not be attached to the interpreter: it attaches
    /// only to stem a token the memo does not hold.
    fn stem_detached(&self, token: &str) -> PyResult<String> {
        if let Some(stem) = lock(&self.memo)?.get(token) {
            return Ok(stem.to_string());
        }
        Python::attach(|py| self.stem_one(py, token))
    }

    fn stem_one(&self, py: Python<'_>, token: &str) -> PyResult<String> {
        if let Some(stem) = lock(&self.memo)?.get(token) {
            return Ok(stem.to_string());
        }
        let stem: String = self.stem.call1(py, (token,))?.extract(py)?;
        let mut memo = lock(&self.memo)?;
        // A bound against adversarial vocabularies; news vocabulary stays far below it.
        if memo.len() >= self.max_entries {
            memo.clear();
        }
        memo.insert(token.into(), stem.as_str().into());
        Ok(stem)
    }
}

#[pymethods]
impl StemCache {
    /// `stem`: a function from one token to its stem.
    #[new]
    #[pyo3(signature = (stem, max_entries = MAX_MEMO_ENTRIES))]
    fn new(stem: Py<PyAny>, max_entries: usize) -> Self {
        StemCache {
            stem,
            max_entries,
            memo: Mutex::new(FxHashMap::default()),
        }
    }

    /// The stem of one token.
    fn stem(&self, py: Python<'_>, token: &str) -> PyResult<String> {
        self.stem_one(py, token)
    }

    fn __len__(&self) -> PyResult<usize> {
        Ok(lock(&self.memo)?.len())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> PyResult<std::sync::MutexGuard<'_, T>> {
    mutex
        .lock()
        .map_err(|_| PyValueError::new_err("a memo's lock is poisoned"))
}

/// An article of unknown language never passes a language filter.
fn language_allowed(language: Option<&str>, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some(language) = language else {
        return false;
    };
    let primary = language.split('-').next().unwrap_or(language);
    allowed.iter().any(|a| a == primary || a == language)
}

/// Suffix match on the (lower-cased, dot-stripped) domain: `reuters.com` allows `uk.reuters.com`.
fn source_allowed(domain: Option<&str>, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some(domain) = domain.filter(|d| !d.is_empty()) else {
        return false;
    };
    allowed.iter().any(|s| {
        domain == s
            || (domain.len() > s.len()
                && domain.ends_with(s.as_str())
                && domain.as_bytes()[domain.len() - s.len() - 1] == b'.')
    })
}

/// The literal hits of one article: which keys occur, and where, as token positions.
#[pyclass(frozen, module = "newsalert_native")]
pub struct Scan {
    core: Arc<Inner>,
    /// distinct key ids that occur, ascending
    hits: Vec<u32>,
    /// bit per key id: whether it occurs (the question asked most often)
    present: Vec<u64>,
    /// per word of `present`: how many keys occur below it, so that a key's place among the
    /// hits is a count of bits, not a search
    rank: Vec<u32>,
    /// per hit, in key order: where its occurrences start in `occurrences`; one more at the end
    bounds: Vec<u32>,
    /// occurrences grouped by key, each group in text order
    occurrences: Vec<Occ>,
}

impl Scan {
    /// `found` holds each key's occurrences in text order, without repeats: the scan walks
    /// each field once, token by token, and a key occurs at most once per starting token.
    /// So grouping by key is a counting sort by hit, with no comparison sort.
    fn new(core: Arc<Inner>, found: Vec<(u32, Occ)>) -> Scan {
        let mut present = vec![0u64; core.key_count.div_ceil(64)];
        for &(key, _) in &found {
            present[key as usize / 64] |= 1 << (key % 64);
        }
        let mut rank = Vec::with_capacity(present.len());
        let mut total = 0u32;
        for word in &present {
            rank.push(total);
            total += word.count_ones();
        }
        let mut scan = Scan {
            core,
            hits: bits(&present).collect(),
            present,
            rank,
            bounds: vec![0; total as usize + 1],
            occurrences: vec![(0, 0, 0); found.len()],
        };
        for &(key, _) in &found {
            let hit = scan.hit(key);
            scan.bounds[hit + 1] += 1;
        }
        for i in 1..scan.bounds.len() {
            scan.bounds[i] += scan.bounds[i - 1];
        }
        let mut next = scan.bounds.clone();
        for (key, occ) in found {
            let slot = &mut next[scan.hit(key)];
            scan.occurrences[*slot as usize] = occ;
            *slot += 1;
        }
        scan
    }

    /// The place of an occurring key among the hits.
    fn hit(&self, key: u32) -> usize {
        let word = key as usize / 64;
        let below = self.present[word] & ((1u64 << (key % 64)) - 1);
        self.rank[word] as usize + below.count_ones() as usize
    }

    fn occurrences(&self, key: u32) -> &[Occ] {
        if !self.has(key) {
            return &[];
        }
        let hit = self.hit(key);
        &self.occurrences[self.bounds[hit] as usize..self.bounds[hit + 1] as usize]
    }

    fn has(&self, key: u32) -> bool {
        self.present[key as usize / 64] & (1 << (key % 64)) != 0
    }

    /// Whether the rule whose plan starts at `code[plan]` matches an article in `language`
    /// from `domain`.
    fn decides(&self, plan: u32, language: Option<&str>, domain: Option<&str>) -> bool {
        let code = &self.core.code;
        let mut at = plan as usize;
        if let Op::Filter(filter) = code[at] {
            let filter = &self.core.filters[filter as usize];
            if !language_allowed(language, &filter.languages)
                || !source_allowed(domain, &filter.sources)
            {
                return false;
            }
            at += 1;
        }
        self.holds(code, at)
    }

    /// Whether the plan at `code[at]` holds: from the keys present wherever it can, from
    /// positions where it must (NEAR, field-restricted literals).
    fn holds(&self, code: &[Op], at: usize) -> bool {
        match code[at] {
            Op::Lit { key, mask } => {
                if !self.has(key) {
                    return false;
                }
                mask == BOTH || self.occurrences(key).iter().any(|o| (1 << o.0) & mask != 0)
            }
            Op::All { end } => {
                let mut child = at + 1;
                while child < end as usize {
                    if !self.holds(code, child) {
                        return false;
                    }
                    child = code[child].after(child);
                }
                true
            }
            Op::Any { end } => {
                let mut child = at + 1;
                while child < end as usize {
                    if self.holds(code, child) {
                        return true;
                    }
                    child = code[child].after(child);
                }
                false
            }
            Op::Not { .. } => !self.holds(code, at + 1),
            Op::Near {
                right,
                end,
                distance,
            } => {
                let (left, right) = near_operands(code, at, right, end);
                left.iter().any(|&l| self.has(lit_of(l).0))
                    && right.iter().any(|&r| self.has(lit_of(r).0))
                    && self.near_holds(left, right, distance as i64)
            }
            Op::Filter(_) => unreachable!("a filter only starts a rule"),
        }
    }

    /// Whether some occurrence of `left` and some of `right` lie within `d` tokens of each
    /// other, in the same field, without overlapping: `near` without its evidence.
    fn near_holds(&self, left: &[Op], right: &[Op], d: i64) -> bool {
        left.iter().any(|&l| {
            let (key, mask) = lit_of(l);
            self.occurrences(key)
                .iter()
                .filter(|o| (1 << o.0) & mask != 0)
                .any(|&occ| right.iter().any(|&r| self.within(r, occ, d)))
        })
    }

    /// Whether literal `lit` occurs within `d` tokens after or before `occ`. A key's
    /// occurrences all span the same number of tokens (its own), so in text order their
    /// ends ascend with their starts and both bounds are found by bisection.
    fn within(&self, lit: Op, occ: Occ, d: i64) -> bool {
        let (key, mask) = lit_of(lit);
        if (1 << occ.0) & mask == 0 {
            return false;
        }
        let found = self.occurrences(key);
        let (field, start, end) = (occ.0, occ.1 as i64, occ.2 as i64);
        // Starting after `occ` ends, within d tokens ...
        let i = found.partition_point(|r| (r.0, r.1 as i64) < (field, end));
        if found
            .get(i)
            .is_some_and(|r| r.0 == field && r.1 as i64 <= end + d)
        {
            return true;
        }
        // ... or ending before `occ` starts, within d tokens.
        let i = found.partition_point(|r| (r.0, r.2 as i64) < (field, start - d));
        found
            .get(i)
            .is_some_and(|r| r.0 == field && r.2 as i64 <= start)
    }

    fn lit(&self, key: u32, mask: u8) -> impl Iterator<Item = Occ> + '_ {
        self.occurrences(key)
            .iter()
            .copied()
            .filter(move |o| (1 << o.0) & mask != 0)
    }

    /// Appends to `out` the occurrences that make the plan at `code[at]` hold, and says
    /// whether it holds; when it does not, what it appended is for the caller to drop. Only
    /// branches that hold contribute (a NOT, nothing), and for NEAR only occurrences that
    /// take part in a pair within the distance, so evidence says why the rule fired.
    fn evaluate(&self, code: &[Op], at: usize, out: &mut Vec<Occ>) -> bool {
        match code[at] {
            Op::Lit { key, mask } => {
                let before = out.len();
                out.extend(self.lit(key, mask));
                out.len() > before
            }
            Op::All { end } => {
                let mut child = at + 1;
                while child < end as usize {
                    if !self.evaluate(code, child, out) {
                        return false;
                    }
                    child = code[child].after(child);
                }
                true
            }
            Op::Any { end } => {
                let mut holds = false;
                let mut child = at + 1;
                while child < end as usize {
                    let before = out.len();
                    if self.evaluate(code, child, out) {
                        holds = true;
                    } else {
                        out.truncate(before);
                    }
                    child = code[child].after(child);
                }
                holds
            }
            Op::Not { .. } => {
                let before = out.len();
                let holds = self.evaluate(code, at + 1, out);
                out.truncate(before);
                !holds
            }
            Op::Near {
                right,
                end,
                distance,
            } => {
                let (left, right) = near_operands(code, at, right, end);
                self.near(left, right, distance as i64, out)
            }
            Op::Filter(_) => unreachable!("a filter only starts a rule"),
        }
    }

    fn gather(&self, lits: &[Op]) -> Vec<Occ> {
        lits.iter()
            .flat_map(|&l| {
                let (key, mask) = lit_of(l);
                self.lit(key, mask)
            })
            .collect()
    }

    /// NEAR's evidence: the left occurrences that pair with some right one, in the order of
    /// the left literals, then the right occurrences that pair with some left one, sorted.
    fn near(&self, left: &[Op], right: &[Op], d: i64, out: &mut Vec<Occ>) -> bool {
        let lefts = self.gather(left);
        if lefts.is_empty() {
            return false;
        }
        let mut rights = self.gather(right);
        if rights.is_empty() {
            return false;
        }
        rights.sort_unstable();
        // The longest right-hand occurrence bounds how far before `occ` one may start.
        let longest = rights.iter().map(|r| (r.2 - r.1) as i64).max().unwrap_or(0);
        // Position of the first right occurrence at or after (field, start).
        let at = |field: u32, start: i64, inclusive_after: bool| {
            rights.partition_point(|r| match r.0.cmp(&field) {
                Ordering::Less => true,
                Ordering::Greater => false,
                Ordering::Equal => {
                    let s = r.1 as i64;
                    if inclusive_after {
                        s <= start
                    } else {
                        s < start
                    }
                }
            })
        };
        let first_left = out.len();
        let mut used_right: Vec<Occ> = Vec::new();
        for &occ in &lefts {
            let (field, start, end) = (occ.0, occ.1 as i64, occ.2 as i64);
            let before = used_right.len();
            // Right occurrences that start after `occ` ends, within d tokens ...
            used_right.extend_from_slice(&rights[at(field, end, false)..at(field, end + d, true)]);
            // ... or end before `occ` starts, within d tokens.
            let lo = at(field, start - d - longest, false);
            let hi = at(field, start - 1, true);
            used_right.extend(
                rights[lo..hi.max(lo)]
                    .iter()
                    .filter(|r| start - d <= r.2 as i64 && r.2 as i64 <= start),
            );
            if used_right.len() > before {
                out.push(occ);
            }
        }
        if out.len() == first_left {
            return false;
        }
        used_right.sort_unstable();
        used_right.dedup();
        out.extend(used_right);
        true
    }
}

/// A NEAR operand's literal as (key, mask).
fn lit_of(op: Op) -> (u32, u8) {
    match op {
        Op::Lit { key, mask } => (key, mask),
        _ => unreachable!("NEAR's operands are literals"),
    }
}

/// The indices of the set bits of `words`, ascending.
fn bits(words: &[u64]) -> impl Iterator<Item = u32> + '_ {
    words.iter().enumerate().flat_map(|(i, &word)| {
        let mut word = word;
        std::iter::from_fn(move || {
            if word == 0 {
                return None;
            }
            let bit = word.trailing_zeros();
            word &= word - 1;
            Some(i as u32 * 64 + bit)
        })
    })
}

/// A set of rule indices, a bit per rule.
struct RuleSet {
    words: Vec<u64>,
}

impl RuleSet {
    fn new(rules: usize) -> Self {
        RuleSet {
            words: vec![0; rules.div_ceil(64)],
        }
    }

    /// Adds `index`; whether it was new.
    fn insert(&mut self, index: u32) -> bool {
        let (word, bit) = (&mut self.words[index as usize / 64], 1 << (index % 64));
        let new = *word & bit == 0;
        *word |= bit;
        new
    }

    fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    fn contains(&self, index: u32) -> bool {
        self.words[index as usize / 64] & (1 << (index % 64)) != 0
    }

    /// The members, ascending.
    fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        bits(&self.words)
    }
}

#[pymethods]
impl Scan {
    /// The occurrences that make rule `index` (of the core that scanned) hold, as
    /// (field, first token, end token); empty when it does not hold.
    fn evidence(&self, index: usize) -> PyResult<Vec<Occ>> {
        self.occurrences_of(index)
    }
}

impl Scan {
    fn occurrences_of(&self, index: usize) -> PyResult<Vec<Occ>> {
        let mut at = *self
            .core
            .starts
            .get(index)
            .ok_or_else(|| PyValueError::new_err(format!("no rule at index {index}")))?
            as usize;
        let code = &self.core.code;
        if let Op::Filter(_) = code[at] {
            at += 1;
        }
        let mut found = Vec::new();
        if !self.evaluate(code, at, &mut found) {
            found.clear();
        }
        Ok(found)
    }
}

#[pymodule]
fn newsalert_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Rule>()?;
    m.add_class::<Core>()?;
    m.add_class::<Scan>()?;
    m.add_class::<StemCache>()?;
    m.add_class::<compile::RuleCompiler>()?;
    m.add_class::<quote::EvidenceWriter>()?;
    m.add_class::<records::RecordBatch>()?;
    m.add_class::<postings::StoryPostings>()?;
    m.add_function(wrap_pyfunction!(shingles::shingle_hashes, m)?)?;
    m.add_function(wrap_pyfunction!(shingles::band_keys, m)?)?;
    m.add_function(wrap_pyfunction!(shingles::shared_hashes, m)?)?;
    m.add_function(wrap_pyfunction!(shingles::passages, m)?)?;
    m.add_function(wrap_pyfunction!(pick::pick, m)?)?;
    m.add_function(wrap_pyfunction!(alerts::write_alerts, m)?)?;
    m.add_function(wrap_pyfunction!(tokens::token_offsets, m)?)?;
    Ok(())
}
