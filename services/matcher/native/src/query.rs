//! A second reading of the query grammar (rules.md section 3), for compiling large rulesets
//! fast. No I/O.
//!
//! `services/matcher/engine/query_parser.py` is the definition. This reader accepts only what
//! it can read exactly as Python does (ASCII queries within every limit) and gives up,
//! returning `Err(GiveUp)`, on anything else: an error, non-ASCII text, deep nesting. Python
//! then parses the rule itself, so every error message, with its position, comes from the one
//! definition. A differential test holds the two to the same plans.

/// The reader could not take this query; Python's parser decides it.
#[derive(Debug)]
pub struct GiveUp;

pub type Read<T> = Result<T, GiveUp>;

const MAX_QUERY_CHARS: usize = 4096;
const MAX_ATOMS: usize = 256;
const MAX_NEAR: u32 = 100;
pub const MAX_PHRASE_TOKENS: usize = 16;
const MIN_PREFIX_CHARS: usize = 3;
/// Parentheses deeper than this are left to Python (the AST is walked recursively here).
const MAX_DEPTH: usize = 64;

/// A field an atom is scoped to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Field {
    Title,
    Body,
}

/// A term or phrase (analysed tokens), or a prefix, optionally scoped to one field.
#[derive(Clone, Debug, PartialEq)]
pub struct Atom {
    pub prefix: bool,
    /// One token for a term or a prefix; 1..16 for a phrase.
    pub tokens: Vec<String>,
    pub field: Option<Field>,
}

/// The query AST. A run of NOTs is kept as one or two `Not`s of the same parity, which is all
/// a plan reads of it.
#[derive(Debug, PartialEq)]
pub enum Ast {
    Atom(Atom),
    And(Vec<Ast>),
    Or(Vec<Ast>),
    Not(Box<Ast>),
    Near(Vec<Atom>, Vec<Atom>, u32),
}

impl Ast {
    /// Calls `visit` on every atom, left to right.
    pub fn visit_atoms<'a>(&'a self, visit: &mut impl FnMut(&'a Atom)) {
        match self {
            Ast::Atom(atom) => visit(atom),
            Ast::And(children) | Ast::Or(children) => {
                children.iter().for_each(|child| child.visit_atoms(visit))
            }
            Ast::Not(child) => child.visit_atoms(visit),
            Ast::Near(left, right, _) => left.iter().chain(right).for_each(visit),
        }
    }

    /// Whether some atom is outside every NOT (a query without one could never match).
    pub fn has_positive_atom(&self) -> bool {
        match self {
            Ast::Atom(_) | Ast::Near(..) => true,
            Ast::And(children) | Ast::Or(children) => children.iter().any(Ast::has_positive_atom),
            Ast::Not(_) => false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Token<'q> {
    Open,
    Close,
    And,
    Or,
    Not,
    Minus,
    Near(u32),
    Field(Field),
    /// A quoted phrase's inner text.
    Phrase(&'q str),
    Word(&'q str),
    End,
}

/// Python's `\s` and `str.isspace()` on ASCII.
pub fn is_space(byte: u8) -> bool {
    matches!(byte, 0x09..=0x0d | 0x1c..=0x1f | b' ')
}

fn ends_word(byte: u8) -> bool {
    is_space(byte) || matches!(byte, b'(' | b')' | b'"')
}

/// The lexer of query_parser.py: its alternatives tried in the same order at each position.
fn lex(query: &str) -> Read<Vec<Token<'_>>> {
    let bytes = query.as_bytes();
    let mut tokens = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let rest = &query[pos..];
        match bytes[pos] {
            b if is_space(b) => {
                pos += rest.bytes().take_while(|&b| is_space(b)).count();
                continue;
            }
            b'(' => tokens.push(Token::Open),
            b')' => tokens.push(Token::Close),
            b'"' => {
                let close = rest[1..].find('"').ok_or(GiveUp)?;
                tokens.push(Token::Phrase(&rest[1..1 + close]));
                pos += close + 2;
                continue;
            }
            _ => {
                if let Some(length) = near_length(rest) {
                    let distance = rest[5..length].parse().map_err(|_| GiveUp)?;
                    tokens.push(Token::Near(distance));
                    pos += length;
                    continue;
                }
                if rest.starts_with("title:") || rest.starts_with("body:") {
                    let title = rest.starts_with('t');
                    tokens.push(Token::Field(if title { Field::Title } else { Field::Body }));
                    pos += if title { 6 } else { 5 };
                    continue;
                }
                let length = rest.bytes().take_while(|&b| !ends_word(b)).count();
                let word = &rest[..length];
                match word {
                    "AND" => tokens.push(Token::And),
                    "OR" => tokens.push(Token::Or),
                    "NOT" => tokens.push(Token::Not),
                    "-" => tokens.push(Token::Minus),
                    _ if word.starts_with('-') => {
                        // `-word` is NOT word: the minus is an operator of its own.
                        tokens.push(Token::Minus);
                        pos += 1;
                        continue;
                    }
                    _ => tokens.push(Token::Word(word)),
                }
                pos += length;
                continue;
            }
        }
        pos += 1;
    }
    tokens.push(Token::End);
    Ok(tokens)
}

/// The length of `NEAR/<digits>` at the start of `text` when a space, a parenthesis, a quote
/// or the end follows it.
fn near_length(text: &str) -> Option<usize> {
    let digits = text
        .strip_prefix("NEAR/")?
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    let length = 5 + digits;
    let followed_well = text.as_bytes().get(length).is_none_or(|&b| ends_word(b));
    (digits > 0 && followed_well).then_some(length)
}

/// One level of parentheses, or the whole query, while it is read (see `_Group` in Python).
#[derive(Default)]
struct Group {
    alternatives: Vec<Ast>,
    conjuncts: Vec<Ast>,
    negations: usize,
    near_left: Option<(Ast, u32)>,
}

impl Group {
    fn close(mut self) -> Read<Ast> {
        let conjuncts = std::mem::take(&mut self.conjuncts);
        self.alternatives.push(join(conjuncts, Ast::And)?);
        join(self.alternatives, Ast::Or)
    }
}

fn join(mut children: Vec<Ast>, kind: fn(Vec<Ast>) -> Ast) -> Read<Ast> {
    match children.len() {
        0 => Err(GiveUp),
        1 => Ok(children.pop().expect("one child")),
        _ => Ok(kind(children)),
    }
}

struct Parser<'q, 'a> {
    tokens: Vec<Token<'q>>,
    index: usize,
    atoms: usize,
    analyze: &'a dyn Fn(&str) -> Read<Vec<String>>,
}

impl Parser<'_, '_> {
    fn current(&self) -> Token<'_> {
        self.tokens[self.index]
    }

    fn parse(mut self) -> Read<Ast> {
        let mut stack = vec![Group::default()];
        loop {
            self.read_operand(&mut stack)?;
            if self.after_operand(&mut stack)? {
                return stack.pop().ok_or(GiveUp)?.close();
            }
        }
    }

    fn read_operand(&mut self, stack: &mut Vec<Group>) -> Read<()> {
        loop {
            let group = stack.last_mut().ok_or(GiveUp)?;
            match self.current() {
                Token::Not | Token::Minus if group.near_left.is_none() => {
                    self.index += 1;
                    group.negations += 1;
                }
                Token::Open => {
                    if stack.len() > MAX_DEPTH {
                        return Err(GiveUp);
                    }
                    self.index += 1;
                    stack.push(Group::default());
                }
                _ => {
                    let atom = self.parse_atom()?;
                    return self.finish_primary(stack, Ast::Atom(atom));
                }
            }
        }
    }

    fn finish_primary(&mut self, stack: &mut [Group], node: Ast) -> Read<()> {
        let group = stack.last_mut().ok_or(GiveUp)?;
        let node = if let Some((left, distance)) = group.near_left.take() {
            if matches!(self.current(), Token::Near(_)) {
                return Err(GiveUp); // NEAR cannot be chained
            }
            Ast::Near(near_operand(left)?, near_operand(node)?, distance)
        } else if let Token::Near(distance) = self.current() {
            self.index += 1;
            if distance > MAX_NEAR {
                return Err(GiveUp);
            }
            group.near_left = Some((node, distance));
            return Ok(());
        } else {
            node
        };
        let node = match group.negations {
            0 => node,
            n if n % 2 == 1 => Ast::Not(Box::new(node)),
            _ => Ast::Not(Box::new(Ast::Not(Box::new(node)))),
        };
        group.negations = 0;
        group.conjuncts.push(node);
        Ok(())
    }

    fn after_operand(&mut self, stack: &mut Vec<Group>) -> Read<bool> {
        loop {
            let top = stack.len() == 1;
            let group = stack.last_mut().ok_or(GiveUp)?;
            if group.near_left.is_some() {
                return Ok(false);
            }
            match self.current() {
                Token::And => {
                    self.index += 1;
                    return Ok(false);
                }
                Token::Open
                | Token::Not
                | Token::Minus
                | Token::Field(_)
                | Token::Phrase(_)
                | Token::Word(_) => return Ok(false),
                Token::Or => {
                    self.index += 1;
                    let conjuncts = std::mem::take(&mut group.conjuncts);
                    group.alternatives.push(join(conjuncts, Ast::And)?);
                    return Ok(false);
                }
                Token::End if top => return Ok(true),
                Token::Close if !top => {
                    self.index += 1;
                    let closed = stack.pop().ok_or(GiveUp)?.close()?;
                    self.finish_primary(stack, closed)?;
                }
                _ => return Err(GiveUp),
            }
        }
    }

    fn parse_atom(&mut self) -> Read<Atom> {
        let mut field = None;
        if let Token::Field(f) = self.current() {
            self.index += 1;
            field = Some(f);
        }
        let atom = match self.current() {
            Token::Phrase(text) => {
                let tokens = (self.analyze)(text)?;
                if tokens.is_empty() || tokens.len() > MAX_PHRASE_TOKENS {
                    return Err(GiveUp);
                }
                Atom {
                    prefix: false,
                    tokens,
                    field,
                }
            }
            Token::Word(text) => {
                let prefix = text.strip_suffix('*');
                let body = prefix.unwrap_or(text);
                let tokens = (self.analyze)(body)?;
                if body.contains('*') || tokens.len() != 1 {
                    return Err(GiveUp);
                }
                if prefix.is_some() && tokens[0].chars().count() < MIN_PREFIX_CHARS {
                    return Err(GiveUp);
                }
                Atom {
                    prefix: prefix.is_some(),
                    tokens,
                    field,
                }
            }
            _ => return Err(GiveUp),
        };
        self.index += 1;
        self.atoms += 1;
        if self.atoms > MAX_ATOMS {
            return Err(GiveUp);
        }
        Ok(atom)
    }
}

fn near_operand(node: Ast) -> Read<Vec<Atom>> {
    match node {
        Ast::Atom(atom) => Ok(vec![atom]),
        Ast::Or(children) => children
            .into_iter()
            .map(|child| match child {
                Ast::Atom(atom) => Ok(atom),
                _ => Err(GiveUp),
            })
            .collect(),
        _ => Err(GiveUp),
    }
}

/// The AST of an ASCII `query`, its terms analysed by `analyze`; `GiveUp` for anything
/// Python should decide.
pub fn parse(query: &str, analyze: &dyn Fn(&str) -> Read<Vec<String>>) -> Read<Ast> {
    if !query.is_ascii() || query.len() > MAX_QUERY_CHARS {
        return Err(GiveUp);
    }
    Parser {
        tokens: lex(query)?,
        index: 0,
        atoms: 0,
        analyze,
    }
    .parse()
}
