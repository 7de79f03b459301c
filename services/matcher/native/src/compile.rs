//! Whole rules compiled natively: the fast path of `services/matcher/engine/compile.py`.
//! No I/O.
//!
//! Compiling 100k rules in Python takes seconds, most of it interpreter overhead per node, so
//! a ruleset's first build is done here. Python stays the definition: this path takes only
//! rules whose every text is ASCII and which the query reader (`query.rs`) reads without
//! error, and returns None for the rest, which compile.py compiles (and, for a bad rule,
//! reports) itself. Analysis uses Python's own translation table, stemming Python's own
//! stemmer through `StemCache`; a differential test holds both paths to equal compiled rules
//! (identity, version, plan, trigger, keys, filters). A large batch is compiled on several
//! threads, and gives the same rules as on one.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{mpsc, Arc, Mutex, PoisonError};

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use rustc_hash::FxHashSet;
use sha2::{Digest, Sha256};

use crate::query::{self, is_space, Ast, Atom, Field, GiveUp, Read, MAX_PHRASE_TOKENS};
use crate::quote::{push_hex, push_json_str};
use crate::{
    build_threads, prefetch, selectivity, Node, Rule, RuleParts, StemCache, BOTH, RAW_SEP, STEM_SEP,
};

const TITLE: u8 = 0b01;
const BODY: u8 = 0b10;

/// Compiles rules with a given analysis table and stemmer.
#[pyclass(frozen, module = "newsalert_native")]
pub struct RuleCompiler {
    /// normalize.py's translation of each ASCII character: a letter, a digit, `'` or a space.
    table: [u8; 128],
    stems: Py<StemCache>,
}

/// What decides a rule's matching, read from a `WatchlistRule` without copying its texts.
struct Definition {
    query: Option<PyBackedStr>,
    any: Option<Vec<PyBackedStr>>,
    none: Vec<PyBackedStr>,
    stem: bool,
    fields: Vec<PyBackedStr>,
    /// sorted and distinct, as compile.py passes them on
    languages: Vec<String>,
    /// lower-cased and stripped of dots, in order, as compile.py passes them on
    sources: Vec<String>,
}

/// An object's attributes. A pydantic model keeps its fields in its `__dict__`: a lookup
/// there is cheaper than one through the model's class, which at 100k rules is most of
/// reading them. Whatever the dict lacks is asked of the object.
struct Attributes<'py> {
    object: Bound<'py, PyAny>,
    dict: Option<Bound<'py, PyDict>>,
}

impl<'py> Attributes<'py> {
    fn of(object: &Bound<'py, PyAny>) -> Self {
        let dict = object
            .getattr(intern!(object.py(), "__dict__"))
            .ok()
            .and_then(|d| d.cast_into::<PyDict>().ok());
        Attributes {
            object: object.clone(),
            dict,
        }
    }

    /// Asks for the memory of the values of `names` before any is read: the first touch of
    /// each is a cache miss, and one after another they were most of reading a rule.
    fn prefetch(&self, names: &[&Bound<'py, PyString>]) {
        let Some(dict) = &self.dict else {
            return;
        };
        for name in names {
            // SAFETY: a live dict and the GIL held; the value is borrowed, and only its address
            // is used, before any code that could change the dict runs.
            let value = unsafe { pyo3::ffi::PyDict_GetItem(dict.as_ptr(), name.as_ptr()) };
            if !value.is_null() {
                // SAFETY: a non-null value of a live dict points at a live object.
                prefetch(unsafe { &*value });
            }
        }
    }

    fn get(&self, name: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyAny>> {
        match self.dict.as_ref().map(|d| d.get_item(name)).transpose()? {
            Some(Some(value)) => Ok(value),
            _ => self.object.getattr(name),
        }
    }
}

impl Definition {
    fn read(rule: &Attributes<'_>) -> PyResult<Self> {
        let py = rule.object.py();
        let names = [
            intern!(py, "languages"),
            intern!(py, "any"),
            intern!(py, "query"),
            intern!(py, "none"),
            intern!(py, "stem"),
            intern!(py, "fields"),
            intern!(py, "sources"),
        ];
        rule.prefetch(&names);
        let get = |name| rule.get(name);
        let mut languages: Vec<String> = strings(&get(intern!(py, "languages"))?)?
            .iter()
            .map(|s| s.to_string())
            .collect();
        languages.sort_unstable();
        languages.dedup();
        let any = get(intern!(py, "any"))?;
        Ok(Definition {
            query: get(intern!(py, "query"))?.extract()?,
            any: if any.is_none() {
                None
            } else {
                Some(strings(&any)?)
            },
            none: strings(&get(intern!(py, "none"))?)?,
            stem: get(intern!(py, "stem"))?.extract()?,
            fields: strings(&get(intern!(py, "fields"))?)?,
            languages,
            sources: strings(&get(intern!(py, "sources"))?)?
                .iter()
                .map(|s| s.to_ascii_lowercase().trim_matches('.').to_string())
                .collect(),
        })
    }
}

/// The strings of a list, read by index (the generic sequence path makes an iterator
/// object per list, 400k of them for 100k rules); any other sequence the generic way.
fn strings(value: &Bound<'_, PyAny>) -> PyResult<Vec<PyBackedStr>> {
    match value.cast::<PyList>() {
        Ok(list) => {
            // Every item asked for first, as `Attributes::prefetch` does.
            for index in 0..list.len() {
                // SAFETY: a live list and the GIL held; the item is borrowed, and only its
                // address is used, before any code that could change the list runs.
                let item = unsafe {
                    pyo3::ffi::PyList_GetItem(list.as_ptr(), index as pyo3::ffi::Py_ssize_t)
                };
                if !item.is_null() {
                    // SAFETY: a non-null item of a live list points at a live object.
                    prefetch(unsafe { &*item });
                }
            }
            list.iter().map(|item| item.extract()).collect()
        }
        Err(_) => value.extract(),
    }
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

    /// For each (tenant, `WatchlistRule`) of `rules`, its compiled form, or None when
    /// compile.py must compile it: a non-ASCII text, or anything the rule language refuses.
    fn compile(
        &self,
        py: Python<'_>,
        rules: Vec<(Py<PyString>, Py<PyAny>)>,
    ) -> PyResult<Vec<Option<Rule>>> {
        let mut read = rules
            .iter()
            .map(|(_, rule)| Definition::read(&Attributes::of(rule.bind(py))));
        let mut compiled = Vec::with_capacity(rules.len());
        self.compile_streamed(
            py,
            1,
            || read.next().transpose(),
            |_, outcome| {
                compiled.push(outcome?);
                Ok(())
            },
        )?;
        Ok(rules
            .into_iter()
            .zip(compiled)
            .map(|((tenant, rule), compiled)| compiled.map(|c| c.into_rule(py, tenant, rule)))
            .collect())
    }

    /// Compile each (tenant, rule) of `upserts` whose rule differs from the one `rules`
    /// holds under `(tenant, rule id)`, and store it there, in order. A rule this path does
    /// not take goes to `fallback(tenant, rule)`, compile.py's, which returns a compiled rule
    /// or the error that refuses it. Returns the errors; a refused rule's key keeps its
    /// previous rule.
    ///
    /// The rules are compiled on `threads` threads (default: the machine's cores, at most 4)
    /// while they are still being read from Python and stored: 100k rules took two seconds
    /// on one core.
    #[pyo3(signature = (rules, upserts, fallback, threads = None))]
    fn compile_into(
        &self,
        py: Python<'_>,
        rules: &Bound<'_, PyDict>,
        upserts: &Bound<'_, PyAny>,
        fallback: &Bound<'_, PyAny>,
        threads: Option<usize>,
    ) -> PyResult<Vec<Py<PyAny>>> {
        let threads = threads.unwrap_or_else(build_threads);
        // Read rules, by their place in the batch, until they are stored.
        let changed = RefCell::new(Vec::new());
        let mut errors = Vec::new();
        let mut pairs = upserts.try_iter()?;
        // A first build has nothing to compare with (a rule given twice in one batch is
        // compiled twice, and the later one kept, as in any batch); at 100k rules the
        // lookups in the growing dict were a tenth of the reading.
        let new_ruleset = rules.is_empty();
        let read = || {
            for pair in pairs.by_ref() {
                let (tenant, rule): (Bound<'_, PyString>, Bound<'_, PyAny>) = pair?.extract()?;
                let attributes = Attributes::of(&rule);
                let key = rule_key(&tenant, &attributes.get(intern!(py, "id"))?)?;
                let previous = if new_ruleset {
                    None
                } else {
                    rules.get_item(&key)?
                };
                if let Some(previous) = previous {
                    if previous.getattr(intern!(py, "rule"))?.eq(&rule)? {
                        continue;
                    }
                }
                let definition = Definition::read(&attributes)?;
                changed.borrow_mut().push(Some((key, tenant, rule)));
                return Ok(Some(definition));
            }
            Ok(None)
        };
        let store = |at: usize, outcome: PyResult<Option<Compiled>>| {
            let taken = changed.borrow_mut()[at].take();
            let (key, tenant, rule) = taken.expect("each rule is stored once");
            match outcome? {
                Some(compiled) => {
                    let compiled = compiled.into_rule(py, tenant.unbind(), rule.unbind());
                    rules.set_item(key, Py::new(py, compiled)?)
                }
                None => {
                    let outcome = fallback.call1((tenant, rule))?;
                    if outcome.is_instance_of::<Rule>() {
                        rules.set_item(key, outcome)
                    } else {
                        errors.push(outcome.unbind());
                        Ok(())
                    }
                }
            }
        };
        self.compile_streamed(py, threads, read, store)?;
        Ok(errors)
    }
}

/// The key of a rule in a ruleset: (tenant, rule id).
///
/// A tuple of two exact strings can never be part of a reference cycle, so it leaves the
/// cycle collector's watch at once, as CPython itself drops such a tuple at its first
/// collection: that first collection, right after a build of 100k fresh keys, took a tenth
/// of a second.
fn rule_key<'py>(
    tenant: &Bound<'py, PyString>,
    id: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    let key = PyTuple::new(tenant.py(), [tenant.as_any(), id])?;
    if tenant.is_exact_instance_of::<PyString>() && id.is_exact_instance_of::<PyString>() {
        // SAFETY: `key` is a live tuple; untracking may be done at any time and only exempts
        // it from cycle detection, which (above) it can never need.
        unsafe { pyo3::ffi::PyObject_GC_UnTrack(key.as_ptr().cast()) };
    }
    Ok(key)
}

/// Rules handed to the compiling threads at a time: small enough that they start while the
/// first rules are still being read, large enough that the queue is not the work.
const CHUNK: usize = 256;

/// Rules to compile: the first one's place in the batch, and each one's definition and
/// query, which the reading thread has parsed already for a stemmed rule (None: not yet, or
/// the query reader gave up).
struct Chunk {
    first: usize,
    rules: Vec<(Definition, Option<Ast>)>,
}

/// A chunk compiled: the first rule's place, and each rule's outcome.
type CompiledChunk = (usize, Vec<PyResult<Option<Compiled>>>);

impl RuleCompiler {
    /// Each definition `read` yields (it reads them from Python, on this thread) compiled on
    /// up to `threads` threads, this one included, and handed to `store` in order, on this
    /// thread, with its place in the batch.
    ///
    /// Reading 100k rules out of their Python objects takes about a third of a second, and
    /// storing them a tenth, so the other threads compile the rules read so far meanwhile;
    /// this one stores what they have done between chunks it reads, and once reading is
    /// done compiles too. A rule is parsed and planned in one go, while its data is in the
    /// cache, except a stemmed rule: its plan needs the stems of its tokens, which Python
    /// computes. So this thread parses a chunk's stemmed rules as it reads them and stems
    /// every token they need that the memo lacks, in one go, before the chunk goes out; a
    /// compiling thread attaching to the interpreter per token would serialise the others.
    /// Each thread interns its own keys; the core build still finds equal keys by their text.
    fn compile_streamed(
        &self,
        py: Python<'_>,
        threads: usize,
        mut read: impl FnMut() -> PyResult<Option<Definition>>,
        mut store: impl FnMut(usize, PyResult<Option<Compiled>>) -> PyResult<()>,
    ) -> PyResult<()> {
        let (chunks, queue) = mpsc::channel::<Chunk>();
        let queue = Mutex::new(queue);
        let (done, finished) = mpsc::channel::<CompiledChunk>();
        let finished = Mutex::new(finished);
        std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..threads.max(1))
                .map(|_| {
                    let done = done.clone();
                    let queue = &queue;
                    scope.spawn(move || {
                        let mut compiler = ChunkCompiler::default();
                        while let Some(chunk) = take(queue, true) {
                            // The receiver hangs up only when storing failed: nothing to do.
                            let _ = done.send(compiler.compile(self, chunk));
                        }
                    })
                })
                .collect();
            drop(done);
            let mut stored = InOrder::default();
            let outcome = (|| {
                let mut at = 0;
                let mut chunk = Vec::with_capacity(CHUNK);
                loop {
                    let definition = read()?;
                    let last = definition.is_none();
                    if let Some(definition) = definition {
                        let ast = if definition.stem {
                            self.ast(&definition).ok()
                        } else {
                            None
                        };
                        chunk.push((definition, ast));
                    }
                    if chunk.len() == CHUNK || (last && !chunk.is_empty()) {
                        let rules = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                        self.learn_stems(&rules)?;
                        let first = at;
                        at += rules.len();
                        // The receiving end lives until every thread is done.
                        chunks
                            .send(Chunk { first, rules })
                            .expect("the queue is open");
                        stored.take_ready(&finished, &mut store)?;
                    }
                    if last {
                        break;
                    }
                }
                drop(chunks);
                let mut compiler = ChunkCompiler::default();
                while stored.next < at {
                    stored.take_ready(&finished, &mut store)?;
                    if stored.next == at {
                        break;
                    }
                    match take(&queue, false) {
                        Some(chunk) => stored.place(py.detach(|| compiler.compile(self, chunk))),
                        None => {
                            let compiled = py.detach(|| lock(&finished).recv());
                            stored.place(compiled.expect("a thread stopped with rules to compile"))
                        }
                    }
                }
                Ok(())
            })();
            // On an error the queue is closed all the same; the other threads compile what it
            // holds, and it is dropped.
            py.detach(|| {
                for helper in helpers {
                    helper.join().expect("a compile thread panicked");
                }
            });
            outcome
        })
    }

    /// Stems, in one go, every token the stemmed rules of `rules` need that the memo lacks.
    fn learn_stems(&self, rules: &[(Definition, Option<Ast>)]) -> PyResult<()> {
        let mut tokens = Vec::new();
        for ast in rules.iter().filter_map(|(_, ast)| ast.as_ref()) {
            ast.visit_atoms(&mut |atom| {
                if !atom.prefix {
                    tokens.extend(atom.tokens.iter().map(String::as_str));
                }
            });
        }
        tokens.sort_unstable();
        tokens.dedup();
        self.stems.get().learn(&tokens)
    }
}

/// One thread's compiling: its interned keys and its buffer for rule versions.
#[derive(Default)]
struct ChunkCompiler {
    interner: KeyInterner,
    json: String,
}

impl ChunkCompiler {
    fn compile(&mut self, compiler: &RuleCompiler, chunk: Chunk) -> CompiledChunk {
        let outcomes = chunk
            .rules
            .into_iter()
            .map(|(definition, ast)| {
                let ast = match ast {
                    Some(ast) => Ok(ast),
                    None if definition.stem => Err(GiveUp),
                    None => compiler.ast(&definition),
                };
                match ast {
                    Ok(ast) => compiler.compile_parsed(
                        definition,
                        &ast,
                        &mut self.interner,
                        &mut self.json,
                    ),
                    Err(GiveUp) => Ok(None),
                }
            })
            .collect();
        (chunk.first, outcomes)
    }
}

/// The next chunk of `queue`; if `wait`, waiting for one while the queue is open.
fn take(queue: &Mutex<mpsc::Receiver<Chunk>>, wait: bool) -> Option<Chunk> {
    let queue = lock(queue);
    if wait {
        queue.recv().ok()
    } else {
        queue.try_recv().ok()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A thread that panicked holding the lock is reported when it is joined.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Compiled chunks, stored in the batch's order whatever order they finish in.
#[derive(Default)]
struct InOrder {
    /// the place of the next rule to store
    next: usize,
    waiting: BTreeMap<usize, Vec<PyResult<Option<Compiled>>>>,
}

impl InOrder {
    fn place(&mut self, (first, outcomes): CompiledChunk) {
        self.waiting.insert(first, outcomes);
    }

    /// Stores every rule next in order, with the chunks `finished` holds.
    fn take_ready(
        &mut self,
        finished: &Mutex<mpsc::Receiver<CompiledChunk>>,
        store: &mut impl FnMut(usize, PyResult<Option<Compiled>>) -> PyResult<()>,
    ) -> PyResult<()> {
        while let Ok(compiled) = lock(finished).try_recv() {
            self.place(compiled);
        }
        while let Some(outcomes) = self.waiting.remove(&self.next) {
            for outcome in outcomes {
                store(self.next, outcome)?;
                self.next += 1;
            }
        }
        Ok(())
    }
}

/// A rule compiled, before it is given its identity: its parts and version.
struct Compiled {
    parts: RuleParts,
    version: String,
}

impl Compiled {
    fn into_rule(self, py: Python<'_>, tenant: Py<PyString>, rule: Py<PyAny>) -> Rule {
        Rule {
            tenant,
            rule,
            version: PyString::new(py, &self.version).unbind(),
            parts: self.parts,
        }
    }
}

impl RuleCompiler {
    fn compile_parsed(
        &self,
        definition: Definition,
        ast: &Ast,
        interner: &mut KeyInterner,
        json: &mut String,
    ) -> PyResult<Option<Compiled>> {
        let default_mask = definition.fields.iter().fold(0, |m, f| m | field_mask(f));
        let mut builder = PlanBuilder {
            compiler: self,
            stem: definition.stem,
            default_mask,
            keys: Vec::new(),
            interner,
        };
        let plan = builder.plan(ast)?;
        let keys = builder.keys;
        let trigger = trigger_keys(&plan);
        let version = version(&definition, json);
        let Definition {
            languages, sources, ..
        } = definition;
        let outright = is_alias_list(&plan) && languages.is_empty() && sources.is_empty();
        let parts = RuleParts {
            plan,
            trigger,
            keys,
            outright,
            languages,
            sources,
        };
        Ok(Some(Compiled { parts, version }))
    }

    /// compile.py's `rule_ast`: the query, or the `any` phrases OR-ed; `none` as AND NOT.
    fn ast(&self, rule: &Definition) -> Read<Ast> {
        let analyze = |text: &str| self.analyze(text);
        let positive = match (&rule.query, &rule.any) {
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
        let excluded = Ast::Not(Box::new(self.phrase_or(&rule.none)?));
        Ok(Ast::And(vec![positive, excluded]))
    }

    fn phrase_or(&self, phrases: &[PyBackedStr]) -> Read<Ast> {
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
struct PlanBuilder<'c, 's> {
    compiler: &'c RuleCompiler,
    stem: bool,
    default_mask: u8,
    keys: Vec<Arc<str>>,
    interner: &'s mut KeyInterner,
}

/// One `Arc` per distinct key across the rules compiled together: less memory, and the core
/// build recognises a key by its address (`KeyTable`).
#[derive(Default)]
struct KeyInterner {
    keys: FxHashSet<Arc<str>>,
    /// where a key is written before it is known to be new
    scratch: String,
}

impl KeyInterner {
    fn intern(&mut self) -> Arc<str> {
        if let Some(known) = self.keys.get(self.scratch.as_str()) {
            return known.clone();
        }
        let key: Arc<str> = Arc::from(self.scratch.as_str());
        self.keys.insert(key.clone());
        key
    }
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
        let key = &mut self.interner.scratch;
        key.clear();
        if atom.prefix {
            key.push(RAW_SEP);
            key.push_str(&atom.tokens[0]);
        } else if self.stem {
            let stems = self.compiler.stems.get();
            key.push(STEM_SEP);
            for token in &atom.tokens {
                key.push_str(&stems.stem_detached(token)?);
                key.push(STEM_SEP);
            }
        } else {
            key.push(RAW_SEP);
            for token in &atom.tokens {
                key.push_str(token);
                key.push(RAW_SEP);
            }
        }
        let key = self.interner.intern();
        if !self.keys.iter().any(|k| Arc::ptr_eq(k, &key)) {
            self.keys.push(key.clone());
        }
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

/// compile.py's `_selectivity` ranking; the first on a tie, as Python's `min`. Keys made here
/// are ASCII, so their length in bytes is Python's length in characters.
fn most_selective(best: Vec<Arc<str>>, other: Vec<Arc<str>>) -> Vec<Arc<str>> {
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
fn version(rule: &Definition, json: &mut String) -> String {
    json.clear();
    json.push_str("{\"any\": ");
    match &rule.any {
        Some(any) => write_set(json, any.iter().map(|s| &**s)),
        None => json.push_str("null"),
    }
    json.push_str(", \"fields\": ");
    write_set(json, rule.fields.iter().map(|s| &**s));
    json.push_str(", \"languages\": ");
    write_set(json, rule.languages.iter().map(String::as_str));
    json.push_str(", \"none\": ");
    write_set(json, rule.none.iter().map(|s| &**s));
    json.push_str(", \"query\": ");
    match &rule.query {
        Some(query) => push_json_str(json, query.trim_matches(is_space_char)),
        None => json.push_str("null"),
    }
    json.push_str(", \"sources\": ");
    write_set(json, rule.sources.iter().map(String::as_str));
    json.push_str(", \"stem\": ");
    json.push_str(if rule.stem { "true" } else { "false" });
    json.push('}');
    let mut version = String::with_capacity(16);
    push_hex(&mut version, &Sha256::digest(json.as_bytes())[..8]);
    version
}

/// Python's `str.isspace()`, which `str.strip()` removes; only ASCII text comes here.
fn is_space_char(c: char) -> bool {
    c.is_ascii() && is_space(c as u8)
}

/// `sorted(set(items))` as a JSON list (UTF-8 byte order is code point order, as Python sorts).
fn write_set<'a>(json: &mut String, items: impl Iterator<Item = &'a str>) {
    let mut items: Vec<&str> = items.collect();
    items.sort_unstable();
    items.dedup();
    json.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            json.push_str(", ");
        }
        push_json_str(json, item);
    }
    json.push(']');
}
