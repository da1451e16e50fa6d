//! SCIM filters and attribute paths (RFC 7644 §3.4.2.2, §3.5.2): parsing them, rendering them
//! back in a canonical form, and evaluating a filter against a resource's JSON.
//!
//! The grammar is RFC 7644's, whole, plus what real clients send:
//! - unquoted values (`name.familyName eq Employee` from Entra ID, `userName sw O`): a bare token
//!   that is not `true`, `false`, `null` or a number is a string reaching up to the next
//!   whitespace, `)` or `]`;
//! - `+` instead of spaces between tokens (`userName+eq+"ada"`), from clients that form-encode
//!   the query string; see [`Filter::parse`] for when it counts.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use chrono::DateTime;
use serde_json::{Number, Value};
use winnow::ascii::{digit0, digit1, Caseless};
use winnow::combinator::{alt, opt, peek};
use winnow::error::{ContextError, ErrMode, ModalResult, StrContext, StrContextValue};
use winnow::prelude::*;
use winnow::stream::{AsChar, Stateful, Stream};
use winnow::token::{literal, one_of, take_till, take_while};

use crate::error::{Error, ScimType};

/// A path without a URN also looks inside this extension, since clients filter on
/// `employeeNumber` or `manager.value` without qualifying them.
const ENTERPRISE_USER_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Core schemas keep their attributes at the top level of a resource (RFC 7643 §3), so a path
/// qualified with one looks there.
const CORE_SCHEMA_PREFIX: &str = "urn:ietf:params:scim:schemas:core:";

/// Deeper than any real filter; the bound keeps hostile input from overflowing the stack.
const MAX_NESTING: usize = 64;
const TOO_DEEP: &str = "the filter nests deeper than 64 levels of parentheses, not and [...]";

/// More `and`/`or` than any real filter joins. Evaluation and rendering walk a chain in a loop,
/// but dropping, cloning and comparing a tree recurse down its left spine, which is as long as
/// the chain.
const MAX_CONNECTIVES: usize = 1000;
const TOO_MANY_CONNECTIVES: &str = "the filter joins more than 1000 expressions with and/or";

/// An attribute reference, `[urn ":"] name ["." sub]` (RFC 7644 §3.10).
///
/// Names keep the case the client sent; compare them with [`AttrPath::is`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub urn: Option<String>,
    /// Empty only in a [`PatchPath`] that names an extension's whole object.
    pub name: String,
    pub sub: Option<String>,
}

impl AttrPath {
    /// Parses a bare attribute path (`sortBy`), answering `invalidPath` with the 1-based
    /// character where it went wrong.
    pub fn parse(input: &str) -> Result<AttrPath, Error> {
        parse_whole(
            input.trim(),
            Subject::Path,
            Separators::Whitespace,
            attr_path,
        )
    }

    /// Whether this path's attribute is `name`, ignoring case and any URN.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            f.write_str(urn)?;
            if self.name.is_empty() {
                return Ok(());
            }
            f.write_str(":")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// A comparison operator (RFC 7644 Table 3); `pr` is [`Filter::Present`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    const ALL: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    /// Whether a value standing in `ordering` to the filter's value satisfies this operator.
    /// The substring operators never hold for an ordering alone.
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            CompareOp::Eq => ordering.is_eq(),
            CompareOp::Ne => ordering.is_ne(),
            CompareOp::Gt => ordering.is_gt(),
            CompareOp::Ge => ordering.is_ge(),
            CompareOp::Lt => ordering.is_lt(),
            CompareOp::Le => ordering.is_le(),
            CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
        }
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A comparison value (RFC 7644 `compValue`). Date-times arrive as strings and are compared as
/// instants when both sides parse as RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    String(String),
    Number(Number),
    Bool(bool),
    Null,
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(text) => {
                // Serializing a str cannot fail; the mapping only satisfies the signature.
                f.write_str(&serde_json::to_string(text).map_err(|_| fmt::Error)?)
            }
            Literal::Number(number) => write!(f, "{number}"),
            Literal::Bool(flag) => write!(f, "{flag}"),
            Literal::Null => f.write_str("null"),
        }
    }
}

/// A parsed SCIM filter (RFC 7644 §3.4.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: Literal,
    },
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `emails[type eq "work" and value co "@acme.com"]`: the inner filter's paths are relative
    /// to one element of `path`.
    ValuePath {
        path: AttrPath,
        filter: Box<Filter>,
    },
}

/// How tightly a filter binds, loosest first; it decides where rendering needs parentheses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Precedence {
    Or,
    And,
    Atom,
}

impl Filter {
    /// Parses a filter, answering `invalidFilter` with the 1-based character where it went wrong.
    ///
    /// Keywords, operators and attribute names are case-insensitive. Besides RFC 7644 this
    /// accepts unquoted values (see the module documentation) and `+` as a separator when the
    /// filter holds no whitespace at all: a client that form-encoded the query sent it that
    /// way. Inside quotes a `+` stays a `+`, because it cannot be told apart from an encoded
    /// `%2B` there.
    pub fn parse(input: &str) -> Result<Filter, Error> {
        parse_whole(
            input,
            Subject::Filter,
            Separators::for_filter(input),
            whole_filter,
        )
    }

    /// Whether `resource` (a SCIM resource with canonical-cased keys) satisfies this filter.
    ///
    /// Attribute names match case-insensitively; a multi-valued attribute matches when any
    /// element does; an absent attribute satisfies no comparison but `eq null`; type
    /// mismatches are false.
    pub fn matches(&self, resource: &Value, rules: &dyn AttributeRules) -> bool {
        self.matches_in(resource, None, rules)
    }

    /// `parent` is the multi-valued attribute that `node` is an element of, inside a value path.
    fn matches_in(
        &self,
        node: &Value,
        parent: Option<&AttrPath>,
        rules: &dyn AttributeRules,
    ) -> bool {
        match self {
            Filter::Compare { path, op, value } => {
                let case = match value {
                    Literal::String(_) if rules.case_exact(&qualified(parent, path)) => Case::Exact,
                    _ => Case::Insensitive,
                };
                compare_attribute(node, path, *op, value, case)
            }
            Filter::Present(path) => values_at(node, path).into_iter().any(is_present),
            // Evaluation has no effects, so walking a chain from its right end changes nothing.
            Filter::And(..) => self
                .chain()
                .all(|operand| operand.matches_in(node, parent, rules)),
            Filter::Or(..) => self
                .chain()
                .any(|operand| operand.matches_in(node, parent, rules)),
            Filter::Not(inner) => !inner.matches_in(node, parent, rules),
            Filter::ValuePath { path, filter } => {
                let element_path = qualified(parent, path);
                values_at(node, path).into_iter().any(|element| {
                    element.is_object() && filter.matches_in(element, Some(&element_path), rules)
                })
            }
        }
    }

    /// The operands of a chain of one connective, rightmost first: `a or b or c` parses as
    /// `Or(Or(a, b), c)`, and walking its left spine in a loop keeps a long chain off the stack.
    /// A filter that is not `and` or `or` is a chain of itself.
    pub fn chain(&self) -> Chain<'_> {
        Chain {
            rest: Some(self),
            connective: self.precedence(),
        }
    }

    fn precedence(&self) -> Precedence {
        match self {
            Filter::Or(..) => Precedence::Or,
            Filter::And(..) => Precedence::And,
            _ => Precedence::Atom,
        }
    }
}

/// See [`Filter::chain`].
pub struct Chain<'f> {
    rest: Option<&'f Filter>,
    connective: Precedence,
}

impl<'f> Iterator for Chain<'f> {
    type Item = &'f Filter;

    fn next(&mut self) -> Option<&'f Filter> {
        let filter = self.rest.take()?;
        match filter {
            Filter::And(left, right) | Filter::Or(left, right)
                if filter.precedence() == self.connective =>
            {
                self.rest = Some(left);
                Some(right)
            }
            operand => Some(operand),
        }
    }
}

/// Writes `operand`, parenthesised unless it binds at least as tightly as `bare_from`.
fn write_operand(
    f: &mut fmt::Formatter<'_>,
    operand: &Filter,
    bare_from: Precedence,
) -> fmt::Result {
    if operand.precedence() >= bare_from {
        write!(f, "{operand}")
    } else {
        write!(f, "({operand})")
    }
}

/// Writes a chain of `and` or `or` left to right. Its leftmost operand is never of the chain's
/// own connective, so it only needs parentheses when it binds more loosely (an `or` under
/// `and`); every later operand is bare only when it binds tighter than the connective.
fn write_chain(
    f: &mut fmt::Formatter<'_>,
    chain: &Filter,
    connective: &str,
    later_bare_from: Precedence,
) -> fmt::Result {
    let operands: Vec<&Filter> = chain.chain().collect();
    let mut operands = operands.into_iter().rev();
    if let Some(leftmost) = operands.next() {
        write_operand(f, leftmost, chain.precedence())?;
    }
    for operand in operands {
        f.write_str(connective)?;
        write_operand(f, operand, later_bare_from)?;
    }
    Ok(())
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `and` binds tighter than `or` and both group to the left when parsed, so an operand is
        // parenthesised exactly when leaving it bare would regroup the tree.
        match self {
            Filter::Compare { path, op, value } => write!(f, "{path} {op} {value}"),
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::And(..) => write_chain(f, self, " and ", Precedence::Atom),
            Filter::Or(..) => write_chain(f, self, " or ", Precedence::And),
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::ValuePath { path, filter } => write!(f, "{path}[{filter}]"),
        }
    }
}

/// A PATCH operation's `path` (RFC 7644 §3.5.2): `attrPath / valuePath [subAttr]`.
///
/// A path that is only a schema URN (`urn:…:enterprise:2.0:User`) names that extension's whole
/// object: `attr.urn` holds the URN and `attr.name` is empty. A URN is taken
/// for a schema when its next-to-last segment is a version (`2.0`), as in every RFC 7643 schema
/// URN; otherwise its last segment is an attribute name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}

impl PatchPath {
    /// Parses a PATCH path, answering `invalidPath` with the 1-based character where it went
    /// wrong. A value filter inside it follows [`Filter::parse`], except that only whitespace
    /// separates tokens: a path arrives in a JSON body, never form-encoded.
    pub fn parse(input: &str) -> Result<PatchPath, Error> {
        parse_whole(input, Subject::Path, Separators::Whitespace, patch_path)
    }
}

/// What the caller knows about the schema that decides how attributes compare.
pub trait AttributeRules {
    /// Whether string comparisons on `path` respect case (RFC 7643 §2.2 `caseExact`). Inside a
    /// value path the path is qualified: `emails[value eq "x"]` asks about `emails.value`.
    fn case_exact(&self, path: &AttrPath) -> bool;
}

// ---------------------------------------------------------------------------------------------
// Parsing

type Input<'i> = Stateful<&'i str, ParseState>;

#[derive(Debug, Clone, Copy)]
struct ParseState {
    separators: Separators,
    /// `and`s and `or`s read so far, against [`MAX_CONNECTIVES`].
    connectives: usize,
}
type Checkpoint<'i> = <Input<'i> as Stream>::Checkpoint;

/// What separates tokens: whitespace, as RFC 7644 says, or also `+` in a filter that holds no
/// whitespace at all (see [`Filter::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Separators {
    Whitespace,
    WhitespaceOrPlus,
}

impl Separators {
    fn for_filter(text: &str) -> Separators {
        if text.contains(|c: char| c.is_ascii_whitespace()) {
            Separators::Whitespace
        } else {
            Separators::WhitespaceOrPlus
        }
    }

    fn separates(self, c: char) -> bool {
        c.is_ascii_whitespace() || (c == '+' && self == Separators::WhitespaceOrPlus)
    }

    /// Whether `c` ends an unquoted value.
    fn ends_value(self, c: char) -> bool {
        self.separates(c) || c == ')' || c == ']'
    }
}

/// Whether the parser is inside a value path's brackets, where RFC 7644 `valFilter` allows no
/// further value path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Resource,
    ValueFilter,
}

#[derive(Debug, Clone, Copy)]
struct Nesting {
    depth: usize,
    scope: Scope,
}

impl Nesting {
    const TOP: Nesting = Nesting {
        depth: 0,
        scope: Scope::Resource,
    };

    /// One level deeper (a parenthesis, a `not` or a value path opening at `at`).
    fn enter<'i>(
        self,
        input: &mut Input<'i>,
        at: &Checkpoint<'i>,
        scope: Scope,
    ) -> ModalResult<Nesting> {
        if self.depth >= MAX_NESTING {
            return refuse(input, at, TOO_DEEP);
        }
        Ok(Nesting {
            depth: self.depth + 1,
            scope,
        })
    }
}

/// An attribute expression's operator.
enum Operator {
    Present,
    Compare(CompareOp),
}

const WANT_FILTER: &str = "an attribute path, \"(\" or \"not\"";
const WANT_ATTRIBUTE: &str = "an attribute name";
const WANT_OPERATOR: &str = "an operator (eq, ne, co, sw, ew, gt, ge, lt, le or pr)";
const WANT_VALUE: &str = "a value (a quoted string, a number, true, false or null)";
const WANT_ESCAPE: &str =
    "an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\u and four hex digits \
                           forming a character)";

/// Stops parsing at `at`, saying what the grammar wanted there. The error is a cut: no other
/// reading of the input could succeed either.
fn expected<'i, T>(
    input: &mut Input<'i>,
    at: &Checkpoint<'i>,
    wanted: &'static str,
) -> ModalResult<T> {
    stop(
        input,
        at,
        StrContext::Expected(StrContextValue::Description(wanted)),
    )
}

fn expected_here<T>(input: &mut Input<'_>, wanted: &'static str) -> ModalResult<T> {
    let here = input.checkpoint();
    expected(input, &here, wanted)
}

/// Stops parsing at `at` with a problem that is not a missing token.
fn refuse<'i, T>(
    input: &mut Input<'i>,
    at: &Checkpoint<'i>,
    problem: &'static str,
) -> ModalResult<T> {
    stop(input, at, StrContext::Label(problem))
}

fn stop<'i, T>(input: &mut Input<'i>, at: &Checkpoint<'i>, context: StrContext) -> ModalResult<T> {
    input.reset(at);
    let mut error = ContextError::new();
    error.push(context);
    Err(ErrMode::Cut(error))
}

fn next_char(input: &Input<'_>) -> Option<char> {
    input.peek_token()
}

/// Consumes `wanted` if it comes next.
fn eat(input: &mut Input<'_>, wanted: char) -> bool {
    if next_char(input) == Some(wanted) {
        input.next_token();
        true
    } else {
        false
    }
}

fn skip_separators(input: &mut Input<'_>) -> ModalResult<()> {
    let separators = input.state.separators;
    take_while(0.., move |c: char| separators.separates(c))
        .void()
        .parse_next(input)
}

/// RFC 7644 `nameChar`.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Characters that continue a word, so that `andrew` is not the keyword `and`.
fn continues_word(c: char) -> bool {
    is_name_char(c) || matches!(c, '$' | ':' | '.')
}

fn starts_attribute(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '$'
}

/// Characters of a URN-qualified path up to its end (`[`, a separator, an operator's space).
fn is_urn_char(c: char) -> bool {
    continues_word(c) || c == '%'
}

fn whole_filter(input: &mut Input<'_>) -> ModalResult<Filter> {
    let filter = or_expression(input, Nesting::TOP)?;
    skip_separators(input)?;
    if !input.input.is_empty() {
        return expected_here(input, "\"and\", \"or\" or the end of the filter");
    }
    Ok(filter)
}

fn or_expression(input: &mut Input<'_>, nesting: Nesting) -> ModalResult<Filter> {
    let mut filter = and_expression(input, nesting)?;
    while connective(input, "or")? {
        let right = and_expression(input, nesting)?;
        filter = Filter::Or(Box::new(filter), Box::new(right));
    }
    Ok(filter)
}

fn and_expression(input: &mut Input<'_>, nesting: Nesting) -> ModalResult<Filter> {
    let mut filter = unary(input, nesting)?;
    while connective(input, "and")? {
        let right = unary(input, nesting)?;
        filter = Filter::And(Box::new(filter), Box::new(right));
    }
    Ok(filter)
}

/// [`keyword`] for `and` and `or`, counted against [`MAX_CONNECTIVES`].
fn connective(input: &mut Input<'_>, word: &'static str) -> ModalResult<bool> {
    skip_separators(input)?;
    let start = input.checkpoint();
    if !keyword(input, word)? {
        return Ok(false);
    }
    input.state.connectives += 1;
    if input.state.connectives > MAX_CONNECTIVES {
        return refuse(input, &start, TOO_MANY_CONNECTIVES);
    }
    Ok(true)
}

/// Consumes `word` in any case, as a whole word after optional separators; leaves the input
/// untouched when it is not there.
fn keyword(input: &mut Input<'_>, word: &'static str) -> ModalResult<bool> {
    let start = input.checkpoint();
    skip_separators(input)?;
    if opt(literal(Caseless(word))).parse_next(input)?.is_some()
        && !next_char(input).is_some_and(continues_word)
    {
        return Ok(true);
    }
    input.reset(&start);
    Ok(false)
}

fn unary(input: &mut Input<'_>, nesting: Nesting) -> ModalResult<Filter> {
    skip_separators(input)?;
    match next_char(input) {
        Some('(') => parenthesised(input, nesting),
        Some(c) if starts_attribute(c) => match negation(input, nesting)? {
            Some(negated) => Ok(Filter::Not(Box::new(negated))),
            None => attribute_expression(input, nesting),
        },
        _ => expected_here(input, WANT_FILTER),
    }
}

/// `( filter )`, with the input at the opening parenthesis.
fn parenthesised(input: &mut Input<'_>, nesting: Nesting) -> ModalResult<Filter> {
    let start = input.checkpoint();
    let inner = nesting.enter(input, &start, nesting.scope)?;
    eat(input, '(');
    let filter = or_expression(input, inner)?;
    skip_separators(input)?;
    if !eat(input, ')') {
        return expected_here(input, "\"and\", \"or\" or \")\"");
    }
    Ok(filter)
}

/// `not ( filter )`. Without the parentheses RFC 7644 has no `not`: followed by an operator or
/// `[`, "not" is an attribute's name, and anything else is an error.
fn negation(input: &mut Input<'_>, nesting: Nesting) -> ModalResult<Option<Filter>> {
    let start = input.checkpoint();
    if opt(literal(Caseless("not"))).parse_next(input)?.is_none()
        || next_char(input).is_some_and(continues_word)
    {
        input.reset(&start);
        return Ok(None);
    }
    skip_separators(input)?;
    if next_char(input) == Some('(') {
        return parenthesised(input, nesting).map(Some);
    }
    let after_not = input.checkpoint();
    let names_attribute = next_char(input) == Some('[')
        || (operator(input).is_ok() && !next_char(input).is_some_and(continues_word));
    if names_attribute {
        input.reset(&start);
        return Ok(None);
    }
    expected(
        input,
        &after_not,
        "\"(\" after \"not\" (RFC 7644 writes not (filter))",
    )
}

fn attribute_expression(input: &mut Input<'_>, nesting: Nesting) -> ModalResult<Filter> {
    let path = attr_path(input)?;
    skip_separators(input)?;
    if next_char(input) == Some('[') {
        let mut filter = value_filter(input, nesting)?;
        // `emails[type eq "work"].value eq "x"` is outside RFC 7644's filter grammar, but IdPs
        // send it (IDP-QUIRKS 16): one element must satisfy the value filter and, in its
        // sub-attribute, the comparison.
        if eat(input, '.') {
            let sub = AttrPath {
                urn: None,
                name: attribute_name(input)?,
                sub: None,
            };
            skip_separators(input)?;
            let comparison = comparison(input, sub)?;
            filter = Filter::And(Box::new(filter), Box::new(comparison));
        }
        return Ok(Filter::ValuePath {
            path,
            filter: Box::new(filter),
        });
    }
    comparison(input, path)
}

/// The operator and value after an attribute path.
fn comparison(input: &mut Input<'_>, path: AttrPath) -> ModalResult<Filter> {
    match operator(input)? {
        Operator::Present => Ok(Filter::Present(path)),
        Operator::Compare(op) => {
            skip_separators(input)?;
            let value = comparison_value(input)?;
            Ok(Filter::Compare { path, op, value })
        }
    }
}

fn operator(input: &mut Input<'_>) -> ModalResult<Operator> {
    let start = input.checkpoint();
    let word = opt(take_while(1.., AsChar::is_alpha)).parse_next(input)?;
    let operator = word.and_then(|word| {
        if word.eq_ignore_ascii_case("pr") {
            return Some(Operator::Present);
        }
        CompareOp::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(word))
            .map(Operator::Compare)
    });
    match operator {
        Some(operator) => Ok(operator),
        None => expected(input, &start, WANT_OPERATOR),
    }
}

/// `[ filter ]` after a multi-valued attribute, with the input at the opening bracket.
fn value_filter(input: &mut Input<'_>, nesting: Nesting) -> ModalResult<Filter> {
    let start = input.checkpoint();
    if nesting.scope == Scope::ValueFilter {
        return refuse(
            input,
            &start,
            "a value filter cannot contain another \"[...]\" (RFC 7644 valFilter)",
        );
    }
    let inner = nesting.enter(input, &start, Scope::ValueFilter)?;
    eat(input, '[');
    let filter = or_expression(input, inner)?;
    skip_separators(input)?;
    if !eat(input, ']') {
        return expected_here(input, "\"and\", \"or\" or \"]\"");
    }
    Ok(filter)
}

/// `[urn ":"] name ["." sub]`. A URN runs up to its last `:`, since URNs hold `:` and `.` too
/// (`urn:…:enterprise:2.0:User:manager.value`).
fn attr_path(input: &mut Input<'_>) -> ModalResult<AttrPath> {
    let start = input.checkpoint();
    if opt(literal(Caseless("urn:"))).parse_next(input)?.is_none() {
        let (name, sub) = name_and_sub(input)?;
        return Ok(AttrPath {
            urn: None,
            name,
            sub,
        });
    }
    input.reset(&start);
    let token = peek(take_while(1.., is_urn_char)).parse_next(input)?;
    let Some(colon) = token.rfind(':').filter(|&colon| colon > "urn".len()) else {
        return expected(input, &start, "a URN, \":\" and an attribute name");
    };
    let urn = input.next_slice(colon).to_string();
    eat(input, ':');
    let (name, sub) = name_and_sub(input)?;
    Ok(AttrPath {
        urn: Some(urn),
        name,
        sub,
    })
}

fn name_and_sub(input: &mut Input<'_>) -> ModalResult<(String, Option<String>)> {
    let name = attribute_name(input)?;
    let sub = if eat(input, '.') {
        Some(attribute_name(input)?)
    } else {
        None
    };
    Ok((name, sub))
}

/// RFC 7643 `ATTRNAME` (`ALPHA *nameChar`), or `$ref`.
fn attribute_name(input: &mut Input<'_>) -> ModalResult<String> {
    let start = input.checkpoint();
    let name = opt(alt((
        literal(Caseless("$ref")),
        (one_of(AsChar::is_alpha), take_while(0.., is_name_char)).take(),
    )))
    .parse_next(input)?;
    match name {
        Some(name) => Ok(name.to_string()),
        None => expected(input, &start, WANT_ATTRIBUTE),
    }
}

fn comparison_value(input: &mut Input<'_>) -> ModalResult<Literal> {
    let start = input.checkpoint();
    if next_char(input) == Some('"') {
        return quoted_string(input).map(Literal::String);
    }
    let separators = input.state.separators;
    // A number is tried before the bare token so that an exponent's `+` is not taken for a
    // separator (`1e+5` in a `+`-separated filter).
    if let Some(text) = opt(number_text).parse_next(input)? {
        if next_char(input).is_none_or(|c| separators.ends_value(c)) {
            return match number_from_text(text) {
                Some(number) => Ok(Literal::Number(number)),
                None => refuse(input, &start, "the number is out of range"),
            };
        }
        input.reset(&start);
    }
    let token = take_till(0.., move |c: char| separators.ends_value(c)).parse_next(input)?;
    if token.is_empty() {
        return expected(input, &start, WANT_VALUE);
    }
    Ok(unquoted_literal(token))
}

/// Entra ID and others send values unquoted (`name.familyName eq Employee`): a bare `true`,
/// `false` or `null` keeps its meaning and anything else is a string.
fn unquoted_literal(token: &str) -> Literal {
    if token.eq_ignore_ascii_case("true") {
        Literal::Bool(true)
    } else if token.eq_ignore_ascii_case("false") {
        Literal::Bool(false)
    } else if token.eq_ignore_ascii_case("null") {
        Literal::Null
    } else {
        Literal::String(token.to_string())
    }
}

/// The text of a JSON number (RFC 8259 §6).
fn number_text<'i>(input: &mut Input<'i>) -> ModalResult<&'i str> {
    (
        opt('-'),
        alt(('0'.void(), (one_of('1'..='9'), digit0).void())),
        opt(('.', digit1)),
        opt((one_of(['e', 'E']), opt(one_of(['+', '-'])), digit1)),
    )
        .take()
        .parse_next(input)
}

fn number_from_text(text: &str) -> Option<Number> {
    if !text.contains(['.', 'e', 'E']) {
        if let Ok(natural) = text.parse::<u64>() {
            return Some(natural.into());
        }
        if let Ok(integer) = text.parse::<i64>() {
            return Some(integer.into());
        }
    }
    // Rust rounds correctly where serde_json by default may not, so a rendered float parses
    // back to the very same value.
    text.parse::<f64>().ok().and_then(Number::from_f64)
}

/// A JSON string (RFC 8259 §7), with the input at the opening quote.
fn quoted_string(input: &mut Input<'_>) -> ModalResult<String> {
    eat(input, '"');
    let mut text = String::new();
    loop {
        let chunk = take_till(0.., ['"', '\\']).parse_next(input)?;
        text.push_str(chunk);
        let escape_start = input.checkpoint();
        match input.next_token() {
            Some('"') => return Ok(text),
            Some(_backslash) => text.push(escaped_char(input, &escape_start)?),
            None => return expected_here(input, "a closing '\"'"),
        }
    }
}

fn escaped_char<'i>(input: &mut Input<'i>, escape_start: &Checkpoint<'i>) -> ModalResult<char> {
    let unescaped = match input.next_token() {
        Some('"') => '"',
        Some('\\') => '\\',
        Some('/') => '/',
        Some('b') => '\u{8}',
        Some('f') => '\u{c}',
        Some('n') => '\n',
        Some('r') => '\r',
        Some('t') => '\t',
        Some('u') => return unicode_escape(input, escape_start),
        _ => return expected(input, escape_start, WANT_ESCAPE),
    };
    Ok(unescaped)
}

/// `\uXXXX`, after the `u`. A character beyond the Basic Multilingual Plane is written as a
/// UTF-16 surrogate pair (RFC 8259 §7); a lone surrogate is no character.
fn unicode_escape<'i>(input: &mut Input<'i>, escape_start: &Checkpoint<'i>) -> ModalResult<char> {
    let first = hex_quad(input, escape_start)?;
    let code = if (0xD800..0xDC00).contains(&first) {
        if !(eat(input, '\\') && eat(input, 'u')) {
            return expected(input, escape_start, WANT_ESCAPE);
        }
        let second = hex_quad(input, escape_start)?;
        if !(0xDC00..0xE000).contains(&second) {
            return expected(input, escape_start, WANT_ESCAPE);
        }
        0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
    } else {
        first
    };
    match char::from_u32(code) {
        Some(c) => Ok(c),
        None => expected(input, escape_start, WANT_ESCAPE),
    }
}

fn hex_quad<'i>(input: &mut Input<'i>, escape_start: &Checkpoint<'i>) -> ModalResult<u32> {
    let digits = opt(take_while(4, AsChar::is_hex_digit)).parse_next(input)?;
    match digits.and_then(|digits| u32::from_str_radix(digits, 16).ok()) {
        Some(code) => Ok(code),
        None => expected(input, escape_start, WANT_ESCAPE),
    }
}

fn patch_path(input: &mut Input<'_>) -> ModalResult<PatchPath> {
    skip_separators(input)?;
    if !next_char(input).is_some_and(starts_attribute) {
        return expected_here(input, "an attribute path");
    }
    let attr = attr_path(input)?;
    let filter = if next_char(input) == Some('[') {
        Some(value_filter(input, Nesting::TOP)?)
    } else {
        None
    };
    let sub = if filter.is_some() && eat(input, '.') {
        Some(attribute_name(input)?)
    } else {
        None
    };
    skip_separators(input)?;
    if !input.input.is_empty() {
        let wanted = match (&filter, &sub) {
            (None, _) => "\"[\" or the end of the path",
            (Some(_), None) => "\".\" and a sub-attribute, or the end of the path",
            (Some(_), Some(_)) => "the end of the path",
        };
        return expected_here(input, wanted);
    }
    let attr = if filter.is_none() {
        as_whole_schema(attr)
    } else {
        attr
    };
    Ok(PatchPath { attr, filter, sub })
}

/// `urn:…:enterprise:2.0:User` parses as URN `urn:…:enterprise:2.0` and attribute `User`; a
/// version before the last segment shows it is a schema URN, naming the extension's object.
fn as_whole_schema(attr: AttrPath) -> AttrPath {
    let follows_version = attr
        .urn
        .as_deref()
        .and_then(|urn| urn.rsplit(':').next())
        .is_some_and(|segment| {
            segment.starts_with(|c: char| c.is_ascii_digit())
                && segment.chars().all(|c| c.is_ascii_digit() || c == '.')
        });
    match attr.urn {
        Some(urn) if follows_version && attr.sub.is_none() => AttrPath {
            urn: Some(format!("{urn}:{}", attr.name)),
            name: String::new(),
            sub: None,
        },
        urn => AttrPath { urn, ..attr },
    }
}

/// What is being parsed, for the error's wording and `scimType`.
#[derive(Debug, Clone, Copy)]
enum Subject {
    Filter,
    Path,
}

impl Subject {
    fn noun(self) -> &'static str {
        match self {
            Subject::Filter => "filter",
            Subject::Path => "path",
        }
    }

    fn scim_type(self) -> ScimType {
        match self {
            Subject::Filter => ScimType::InvalidFilter,
            Subject::Path => ScimType::InvalidPath,
        }
    }
}

fn parse_whole<T>(
    text: &str,
    subject: Subject,
    separators: Separators,
    parser: impl FnOnce(&mut Input<'_>) -> ModalResult<T>,
) -> Result<T, Error> {
    let mut input = Input {
        input: text,
        state: ParseState {
            separators,
            connectives: 0,
        },
    };
    parser(&mut input).map_err(|error| {
        // The input only ever advances or rewinds within `text`, so what is left is its tail.
        let offset = text.len() - input.input.len();
        let problem = match error {
            ErrMode::Backtrack(error) | ErrMode::Cut(error) => error.context().next().cloned(),
            ErrMode::Incomplete(_) => None,
        };
        malformed(text, offset, subject, separators, problem)
    })
}

/// The error for `text` going wrong at byte `offset`: where (a 1-based character position and
/// what precedes it), what was wanted, and what was found instead.
fn malformed(
    text: &str,
    offset: usize,
    subject: Subject,
    separators: Separators,
    problem: Option<StrContext>,
) -> Error {
    let (before, rest) = text.split_at_checked(offset).unwrap_or((text, ""));
    let noun = subject.noun();
    let position = before.chars().count() + 1;
    let mut detail = format!("{noun} is malformed at character {position}");
    let context = before.trim_end_matches(|c: char| separators.separates(c));
    if !context.is_empty() {
        detail.push_str(&format!(" (after \"{}\")", last_chars(context, 30)));
    }
    let found = describe_found(rest, separators, noun);
    match problem {
        Some(StrContext::Expected(wanted)) => {
            detail.push_str(&format!(": expected {wanted}, found {found}"))
        }
        Some(StrContext::Label(problem)) => detail.push_str(&format!(": {problem}")),
        _ => detail.push_str(&format!(": unexpected {found}")),
    }
    Error::scim(subject.scim_type(), detail)
}

fn last_chars(text: &str, limit: usize) -> String {
    let count = text.chars().count();
    if count <= limit {
        return text.to_string();
    }
    let tail: String = text.chars().skip(count - limit).collect();
    format!("…{tail}")
}

/// The token at the error, cut at the next separator or bracket.
fn describe_found(rest: &str, separators: Separators, noun: &str) -> String {
    const LIMIT: usize = 20;
    let mut chars = rest.chars();
    let Some(first) = chars.next() else {
        return format!("the end of the {noun}");
    };
    let ends_token = |c: char| separators.separates(c) || matches!(c, '(' | ')' | '[' | ']');
    let mut token = String::from(first);
    if !ends_token(first) {
        token.extend(chars.take_while(|&c| !ends_token(c)).take(LIMIT));
    }
    if token.chars().count() > LIMIT {
        token = token.chars().take(LIMIT).collect::<String>() + "…";
    }
    format!("\"{token}\"")
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// How strings compare, from [`AttributeRules::case_exact`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Exact,
    Insensitive,
}

/// `path` as the schema knows it: inside a value path, `type` is `emails.type`.
pub fn qualified<'p>(parent: Option<&AttrPath>, path: &'p AttrPath) -> Cow<'p, AttrPath> {
    match parent {
        None => Cow::Borrowed(path),
        Some(parent) => Cow::Owned(AttrPath {
            urn: parent.urn.clone(),
            name: parent.name.clone(),
            sub: Some(path.name.clone()),
        }),
    }
}

/// `key` in `node` when it is an object, its name matched ignoring case (RFC 7643 §2.1).
fn member<'v>(node: &'v Value, key: &str) -> Option<&'v Value> {
    let object = node.as_object()?;
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| value)
    })
}

/// The attribute `path` names in `node`, before any sub-attribute.
fn attribute<'v>(node: &'v Value, path: &AttrPath) -> Option<&'v Value> {
    match &path.urn {
        Some(urn) => match member(node, urn) {
            Some(extension) => member(extension, &path.name),
            None if is_core_schema(urn) => member(node, &path.name),
            None => None,
        },
        None => member(node, &path.name)
            .or_else(|| member(member(node, ENTERPRISE_USER_URN)?, &path.name)),
    }
}

/// Whether `path` names an attribute at the top level of a resource: no URN, or a core
/// schema's (`urn:ietf:params:scim:schemas:core:2.0:User:userName`).
pub fn is_top_level(path: &AttrPath) -> bool {
    path.urn.as_deref().is_none_or(is_core_schema)
}

fn is_core_schema(urn: &str) -> bool {
    urn.get(..CORE_SCHEMA_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(CORE_SCHEMA_PREFIX))
}

/// A multi-valued attribute's elements, or a single value on its own.
fn elements(value: &Value) -> std::slice::Iter<'_, Value> {
    match value {
        Value::Array(items) => items.iter(),
        single => std::slice::from_ref(single).iter(),
    }
}

/// Every value `path` names in `node`: one per element of a multi-valued attribute, and for
/// `emails.value` each element's `value`.
fn values_at<'v>(node: &'v Value, path: &AttrPath) -> Vec<&'v Value> {
    let Some(attribute) = attribute(node, path) else {
        return Vec::new();
    };
    match &path.sub {
        None => elements(attribute).collect(),
        Some(sub) => elements(attribute)
            .filter_map(|element| member(element, sub))
            .flat_map(elements)
            .collect(),
    }
}

/// The value a resource sorts by (RFC 7644 §3.4.2.3): the attribute's value; of a
/// multi-valued attribute, the primary element's (else the first's); of a complex value, its
/// `value` sub-attribute. `None` when unassigned.
pub fn sort_value<'v>(resource: &'v Value, path: &AttrPath) -> Option<&'v Value> {
    let attribute = attribute(resource, path)?;
    let element = match attribute {
        Value::Array(items) => items
            .iter()
            .find(|item| member(item, "primary") == Some(&Value::Bool(true)))
            .or_else(|| items.first())?,
        single => single,
    };
    let value = match &path.sub {
        Some(sub) => member(element, sub)?,
        None => element,
    };
    match value {
        Value::Object(_) => member(value, "value").filter(|v| is_present(v)),
        other if is_present(other) => Some(other),
        _ => None,
    }
}

/// RFC 7644 `pr`: not null, not an empty string or array, and a complex value holds some
/// present sub-attribute.
fn is_present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => items.iter().any(is_present),
        Value::Object(members) => members.values().any(is_present),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

fn compare_attribute(
    node: &Value,
    path: &AttrPath,
    op: CompareOp,
    expected: &Literal,
    case: Case,
) -> bool {
    let values = values_at(node, path);
    if *expected == Literal::Null {
        // RFC 7643 §2.5: unassigned, null and empty are one state.
        let present = values.into_iter().any(is_present);
        return match op {
            CompareOp::Eq => !present,
            CompareOp::Ne => present,
            _ => false,
        };
    }
    values
        .into_iter()
        // A complex value compares by its `value` sub-attribute (`emails co "example.com"`).
        .filter_map(|value| match value {
            Value::Object(_) => member(value, "value"),
            simple => Some(simple),
        })
        .any(|actual| compare_value(actual, op, expected, case))
}

fn compare_value(actual: &Value, op: CompareOp, expected: &Literal, case: Case) -> bool {
    match (actual, expected) {
        (Value::String(actual), Literal::String(expected)) => {
            compare_strings(actual, expected, op, case)
        }
        (Value::Number(actual), Literal::Number(expected)) => {
            compare_numbers(actual, expected).is_some_and(|ordering| op.holds(ordering))
        }
        (Value::Bool(actual), Literal::Bool(expected)) => compare_booleans(*actual, *expected, op),
        // Unquoted values (IDP-QUIRKS 16) read as numbers or booleans may target a string
        // attribute (`externalId eq 12345`), and a quoted "true" a boolean one: compare them
        // as the attribute's type.
        (Value::String(actual), Literal::Number(expected)) => {
            compare_strings(actual, &expected.to_string(), op, case)
        }
        (Value::String(actual), Literal::Bool(expected)) => {
            compare_strings(actual, &expected.to_string(), op, case)
        }
        (Value::Bool(actual), Literal::String(expected)) => {
            match expected.to_ascii_lowercase().as_str() {
                "true" => compare_booleans(*actual, true, op),
                "false" => compare_booleans(*actual, false, op),
                _ => false,
            }
        }
        _ => false,
    }
}

fn compare_booleans(actual: bool, expected: bool, op: CompareOp) -> bool {
    match op {
        CompareOp::Eq => actual == expected,
        CompareOp::Ne => actual != expected,
        _ => false,
    }
}

fn compare_strings(actual: &str, expected: &str, op: CompareOp, case: Case) -> bool {
    let substring = matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew);
    if !substring {
        // A dateTime may be written with another offset or precision than the stored one.
        if let (Ok(actual), Ok(expected)) = (
            DateTime::parse_from_rfc3339(actual),
            DateTime::parse_from_rfc3339(expected),
        ) {
            return op.holds(actual.cmp(&expected));
        }
    }
    let (actual, expected) = match case {
        Case::Exact => (Cow::Borrowed(actual), Cow::Borrowed(expected)),
        Case::Insensitive => (
            Cow::Owned(actual.to_lowercase()),
            Cow::Owned(expected.to_lowercase()),
        ),
    };
    match op {
        CompareOp::Co => actual.contains(&*expected),
        CompareOp::Sw => actual.starts_with(&*expected),
        CompareOp::Ew => actual.ends_with(&*expected),
        _ => op.holds(actual.cmp(&expected)),
    }
}

fn compare_numbers(actual: &Number, expected: &Number) -> Option<Ordering> {
    match (exact_integer(actual), exact_integer(expected)) {
        (Some(actual), Some(expected)) => Some(actual.cmp(&expected)),
        _ => actual.as_f64()?.partial_cmp(&expected.as_f64()?),
    }
}

fn exact_integer(number: &Number) -> Option<i128> {
    number
        .as_i64()
        .map(i128::from)
        .or_else(|| number.as_u64().map(i128::from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use std::time::{Duration, Instant};

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn attr(name: &str) -> AttrPath {
        AttrPath {
            urn: None,
            name: name.to_string(),
            sub: None,
        }
    }

    fn attr_sub(name: &str, sub: &str) -> AttrPath {
        AttrPath {
            sub: Some(sub.to_string()),
            ..attr(name)
        }
    }

    fn attr_urn(urn: &str, name: &str) -> AttrPath {
        AttrPath {
            urn: Some(urn.to_string()),
            ..attr(name)
        }
    }

    fn compare(path: AttrPath, op: CompareOp, value: Literal) -> Filter {
        Filter::Compare { path, op, value }
    }

    fn text(value: &str) -> Literal {
        Literal::String(value.to_string())
    }

    fn number(value: i64) -> Literal {
        Literal::Number(value.into())
    }

    fn and(left: Filter, right: Filter) -> Filter {
        Filter::And(Box::new(left), Box::new(right))
    }

    fn or(left: Filter, right: Filter) -> Filter {
        Filter::Or(Box::new(left), Box::new(right))
    }

    fn not(inner: Filter) -> Filter {
        Filter::Not(Box::new(inner))
    }

    fn value_path(path: AttrPath, filter: Filter) -> Filter {
        Filter::ValuePath {
            path,
            filter: Box::new(filter),
        }
    }

    fn parsed(input: &str) -> Filter {
        match Filter::parse(input) {
            Ok(filter) => filter,
            Err(error) => panic!("{input:?} should parse: {error:?}"),
        }
    }

    fn error_detail(result: Result<impl fmt::Debug, Error>, wanted: ScimType) -> String {
        match result {
            Err(Error::Invalid {
                scim_type, message, ..
            }) if scim_type == wanted => message,
            other => panic!("expected a {wanted:?} error, got {other:?}"),
        }
    }

    fn filter_error(input: &str) -> String {
        error_detail(Filter::parse(input), ScimType::InvalidFilter)
    }

    fn path_error(input: &str) -> String {
        error_detail(PatchPath::parse(input), ScimType::InvalidPath)
    }

    #[test]
    fn rfc_7644_example_filters_parse_to_their_trees() {
        let employee = || compare(attr("userType"), CompareOp::Eq, text("Employee"));
        let emails_co = || {
            or(
                compare(attr("emails"), CompareOp::Co, text("example.com")),
                compare(
                    attr_sub("emails", "value"),
                    CompareOp::Co,
                    text("example.org"),
                ),
            )
        };
        let work_at_example = || {
            value_path(
                attr("emails"),
                and(
                    compare(attr("type"), CompareOp::Eq, text("work")),
                    compare(attr("value"), CompareOp::Co, text("@example.com")),
                ),
            )
        };
        let examples = [
            (
                r#"userName Eq "john""#,
                compare(attr("userName"), CompareOp::Eq, text("john")),
            ),
            (
                r#"name.familyName co "O'Malley""#,
                compare(
                    attr_sub("name", "familyName"),
                    CompareOp::Co,
                    text("O'Malley"),
                ),
            ),
            (
                r#"userName sw "J""#,
                compare(attr("userName"), CompareOp::Sw, text("J")),
            ),
            (
                r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
                compare(
                    attr_urn("urn:ietf:params:scim:schemas:core:2.0:User", "userName"),
                    CompareOp::Sw,
                    text("J"),
                ),
            ),
            ("title pr", Filter::Present(attr("title"))),
            (
                r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
                compare(
                    attr_sub("meta", "lastModified"),
                    CompareOp::Gt,
                    text("2011-05-13T04:42:34Z"),
                ),
            ),
            (
                r#"title pr and userType eq "Employee""#,
                and(Filter::Present(attr("title")), employee()),
            ),
            (
                r#"title pr or userType eq "Intern""#,
                or(
                    Filter::Present(attr("title")),
                    compare(attr("userType"), CompareOp::Eq, text("Intern")),
                ),
            ),
            (
                r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
                compare(attr("schemas"), CompareOp::Eq, text(ENTERPRISE)),
            ),
            (
                r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
                and(employee(), emails_co()),
            ),
            (
                r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
                and(
                    compare(attr("userType"), CompareOp::Ne, text("Employee")),
                    not(emails_co()),
                ),
            ),
            (
                r#"userType eq "Employee" and (emails.type eq "work")"#,
                and(
                    employee(),
                    compare(attr_sub("emails", "type"), CompareOp::Eq, text("work")),
                ),
            ),
            (
                r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
                and(employee(), work_at_example()),
            ),
            (
                r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
                or(
                    work_at_example(),
                    value_path(
                        attr("ims"),
                        and(
                            compare(attr("type"), CompareOp::Eq, text("xmpp")),
                            compare(attr("value"), CompareOp::Co, text("@foo.com")),
                        ),
                    ),
                ),
            ),
        ];
        for (input, expected) in examples {
            assert_eq!(parsed(input), expected, "{input}");
        }
    }

    #[test]
    fn and_binds_tighter_than_or_and_both_group_left() {
        let a = || compare(attr("a"), CompareOp::Eq, number(1));
        let b = || compare(attr("b"), CompareOp::Eq, number(2));
        let c = || compare(attr("c"), CompareOp::Eq, number(3));
        assert_eq!(
            parsed("a eq 1 or b eq 2 and c eq 3"),
            or(a(), and(b(), c()))
        );
        assert_eq!(
            parsed("a eq 1 and b eq 2 or c eq 3"),
            or(and(a(), b()), c())
        );
        assert_eq!(parsed("a eq 1 or b eq 2 or c eq 3"), or(or(a(), b()), c()));
        assert_eq!(
            parsed("(a eq 1 or b eq 2) and c eq 3"),
            and(or(a(), b()), c())
        );
        assert_eq!(parsed("not (a eq 1) and b eq 2"), and(not(a()), b()));
    }

    #[test]
    fn keywords_operators_and_literals_ignore_case() {
        assert_eq!(
            parsed(r#"NOT (userName EQ "x") AND active eq TRUE Or nickName Eq NULL"#),
            or(
                and(
                    not(compare(attr("userName"), CompareOp::Eq, text("x"))),
                    compare(attr("active"), CompareOp::Eq, Literal::Bool(true)),
                ),
                compare(attr("nickName"), CompareOp::Eq, Literal::Null),
            )
        );
        assert_eq!(parsed("title PR"), Filter::Present(attr("title")));
    }

    #[test]
    fn literals_follow_json() {
        assert_eq!(
            parsed(r#"a eq "q\"b\\s\/\n\u00e9\ud83d\ude00""#),
            compare(attr("a"), CompareOp::Eq, text("q\"b\\s/\né😀"))
        );
        let numbers = [
            ("-12", Number::from(-12)),
            ("0", Number::from(0)),
            ("18446744073709551615", Number::from(u64::MAX)),
            ("2.5", Number::from_f64(2.5).unwrap()),
            ("-1.5e3", Number::from_f64(-1500.0).unwrap()),
            ("1E-2", Number::from_f64(0.01).unwrap()),
        ];
        for (input, expected) in numbers {
            assert_eq!(
                parsed(&format!("a gt {input}")),
                compare(attr("a"), CompareOp::Gt, Literal::Number(expected)),
                "{input}"
            );
        }
        assert_eq!(
            parsed("a eq false"),
            compare(attr("a"), CompareOp::Eq, Literal::Bool(false))
        );
    }

    #[test]
    fn entra_ids_unquoted_values_are_strings() {
        assert_eq!(
            parsed("name.FamilyName eq Employee and (emails.Value co example.com or emails.Value co example.org)"),
            and(
                compare(attr_sub("name", "FamilyName"), CompareOp::Eq, text("Employee")),
                or(
                    compare(attr_sub("emails", "Value"), CompareOp::Co, text("example.com")),
                    compare(attr_sub("emails", "Value"), CompareOp::Co, text("example.org")),
                ),
            )
        );
        assert_eq!(
            parsed("userName sw O"),
            compare(attr("userName"), CompareOp::Sw, text("O"))
        );
        assert_eq!(
            parsed("externalId eq 007 or x eq 5abc"),
            or(
                compare(attr("externalId"), CompareOp::Eq, text("007")),
                compare(attr("x"), CompareOp::Eq, text("5abc")),
            )
        );
        assert_eq!(
            parsed("emails[value ew acme.com]"),
            value_path(
                attr("emails"),
                compare(attr("value"), CompareOp::Ew, text("acme.com"))
            )
        );
    }

    #[test]
    fn plus_separates_tokens_only_in_a_filter_without_whitespace() {
        assert_eq!(
            parsed(r#"userName+eq+"ada""#),
            compare(attr("userName"), CompareOp::Eq, text("ada"))
        );
        assert_eq!(
            parsed("title+pr+and+(userType+eq+Employee+or+loginCount+gt+1e+5)"),
            and(
                Filter::Present(attr("title")),
                or(
                    compare(attr("userType"), CompareOp::Eq, text("Employee")),
                    compare(
                        attr("loginCount"),
                        CompareOp::Gt,
                        Literal::Number(Number::from_f64(1e5).unwrap())
                    ),
                ),
            )
        );
        // Inside quotes a `+` may have been an encoded `%2B`, so it stays.
        assert_eq!(
            parsed(r#"phoneNumbers.value+eq+"+1+555""#),
            compare(
                attr_sub("phoneNumbers", "value"),
                CompareOp::Eq,
                text("+1+555")
            )
        );
        // With whitespace present, `+` is an ordinary character of an unquoted value.
        assert_eq!(
            parsed("phoneNumbers.value eq +1555"),
            compare(
                attr_sub("phoneNumbers", "value"),
                CompareOp::Eq,
                text("+1555")
            )
        );
    }

    #[test]
    fn attribute_paths_keep_urn_name_and_sub_attribute() {
        assert_eq!(
            parsed(&format!("{ENTERPRISE}:manager.value eq \"26118915\"")),
            compare(
                AttrPath {
                    urn: Some(ENTERPRISE.to_string()),
                    name: "manager".to_string(),
                    sub: Some("value".to_string()),
                },
                CompareOp::Eq,
                text("26118915")
            )
        );
        assert_eq!(
            parsed(r#"members[$ref eq "https://x/Users/1"]"#),
            value_path(
                attr("members"),
                compare(attr("$ref"), CompareOp::Eq, text("https://x/Users/1"))
            )
        );
        assert_eq!(parsed("not pr"), Filter::Present(attr("not")));
        assert_eq!(parsed("notes pr"), Filter::Present(attr("notes")));
        let path = attr_sub("name", "FamilyName");
        assert!(path.is("NAME"));
        assert!(!path.is("name.familyName"));
        assert_eq!(path.to_string(), "name.FamilyName");
    }

    #[test]
    fn display_is_canonical_and_parses_back() {
        let filter = parsed(
            "name.FamilyName EQ Employee and (emails.Value co example.com or emails.Value co example.org)",
        );
        assert_eq!(
            filter.to_string(),
            r#"name.FamilyName eq "Employee" and (emails.Value co "example.com" or emails.Value co "example.org")"#
        );
        let nested = and(
            compare(attr("a"), CompareOp::Eq, number(1)),
            and(
                Filter::Present(attr("b")),
                not(or(Filter::Present(attr("c")), Filter::Present(attr("d")))),
            ),
        );
        assert_eq!(
            nested.to_string(),
            "a eq 1 and (b pr and not (c pr or d pr))"
        );
        assert_eq!(parsed(&nested.to_string()), nested);
    }

    #[test]
    fn a_missing_value_is_reported_where_it_should_be() {
        assert_eq!(
            filter_error("userName eq"),
            "filter is malformed at character 12 (after \"userName eq\"): expected a value \
             (a quoted string, a number, true, false or null), found the end of the filter"
        );
        assert_eq!(
            filter_error("title pr and (userName eq )"),
            "filter is malformed at character 27 (after \"title pr and (userName eq\"): \
             expected a value (a quoted string, a number, true, false or null), found \")\""
        );
    }

    #[test]
    fn an_unknown_operator_is_named_with_the_valid_ones() {
        assert_eq!(
            filter_error(r#"userName xx "a""#),
            "filter is malformed at character 10 (after \"userName\"): expected an operator \
             (eq, ne, co, sw, ew, gt, ge, lt, le or pr), found \"xx\""
        );
        assert!(filter_error("userName").contains("expected an operator"));
    }

    #[test]
    fn malformed_filters_say_what_was_expected() {
        let cases = [
            ("", "character 1: expected an attribute path, \"(\" or \"not\", found the end"),
            (r#"(userName eq "a""#, "character 17 (after \"(userName eq \"a\"\"): expected \"and\", \"or\" or \")\""),
            (r#"userName eq "a" )"#, "character 17 (after \"userName eq \"a\"\"): expected \"and\", \"or\" or the end of the filter, found \")\""),
            (r#"userName eq "abc"#, "character 17 (after \"userName eq \"abc\"): expected a closing '\"', found the end"),
            (r#"a eq "\x""#, "character 7 (after \"a eq \"\"): expected an escape"),
            (r#"a eq "\ud800""#, "character 7 (after \"a eq \"\"): expected an escape"),
            ("emails[type eq work", "expected \"and\", \"or\" or \"]\", found the end"),
            ("emails[type eq work] .value eq 1", "character 22 (after \"emails[type eq work]\"): expected \"and\", \"or\" or the end of the filter, found \".value\""),
            ("emails[x[y pr]]", "character 9 (after \"emails[x\"): a value filter cannot contain another"),
            ("not userName eq 1", "character 5 (after \"not\"): expected \"(\" after \"not\""),
            ("a eq 1e999", "character 6 (after \"a eq\"): the number is out of range"),
            ("name. pr", "character 6 (after \"name.\"): expected an attribute name"),
            ("urn:foo pr", "character 1: expected a URN, \":\" and an attribute name"),
            ("a pr andy", "expected \"and\", \"or\" or the end of the filter, found \"andy\""),
            ("1 eq 1", "character 1: expected an attribute path"),
            ("a pr and", "character 9 (after \"a pr and\"): expected an attribute path"),
        ];
        for (input, wanted) in cases {
            let detail = filter_error(input);
            assert!(detail.contains(wanted), "{input:?}: {detail}");
        }
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        assert!(filter_error(r#"displayName eq "Zoë" zz"#)
            .starts_with("filter is malformed at character 22"),);
    }

    #[test]
    fn ten_thousand_open_parentheses_are_refused_quickly() {
        let started = Instant::now();
        for hostile in [
            "(".repeat(10_000),
            "not (".repeat(10_000),
            format!("{}a pr{}", "(".repeat(10_000), ")".repeat(10_000)),
        ] {
            let detail = filter_error(&hostile);
            assert!(detail.contains("deeper than 64 levels"), "{detail}");
        }
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_thousand_connectives_are_allowed_and_no_more() {
        let at_limit = vec!["a pr"; MAX_CONNECTIVES + 1].join(" or ");
        let filter = parsed(&at_limit);
        assert_eq!(filter.to_string(), at_limit);
        assert!(filter.matches(&json!({"a": 1}), &NOTHING_CASE_EXACT));
        let beyond = format!("{at_limit} and b pr");
        assert!(filter_error(&beyond).contains("more than 1000 expressions"));
    }

    #[test]
    fn nesting_is_allowed_up_to_64_levels() {
        let at_limit = format!("{}a pr{}", "(".repeat(64), ")".repeat(64));
        assert_eq!(parsed(&at_limit), Filter::Present(attr("a")));
        let beyond = format!("{}a pr{}", "(".repeat(65), ")".repeat(65));
        assert!(filter_error(&beyond).contains("at character 65"));
    }

    /// Attributes whose strings compare exactly, written `name` or `name.sub`.
    struct CaseExact(&'static [&'static str]);

    impl AttributeRules for CaseExact {
        fn case_exact(&self, path: &AttrPath) -> bool {
            let written = match &path.sub {
                Some(sub) => format!("{}.{sub}", path.name),
                None => path.name.clone(),
            };
            self.0
                .iter()
                .any(|exact| exact.eq_ignore_ascii_case(&written))
        }
    }

    const NOTHING_CASE_EXACT: CaseExact = CaseExact(&[]);

    fn barbara() -> Value {
        json!({
            "schemas": [
                "urn:ietf:params:scim:schemas:core:2.0:User",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
            ],
            "id": "2819c223",
            "externalId": "AbC-1",
            "userName": "Bjensen@example.com",
            "name": {"familyName": "O'Malley", "givenName": "Barbara"},
            "displayName": "Babs Jensen",
            "title": "Tour Guide",
            "userType": "Employee",
            "nickName": "",
            "active": true,
            "loginCount": 42,
            "score": 2.5,
            "roles": null,
            "ims": [],
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "meta": {
                "lastModified": "2011-05-13T04:42:34Z",
                "created": "2010-01-23T04:56:22+02:00"
            },
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "employeeNumber": "701984",
                "manager": {"value": "26118915", "displayName": "John Smith"}
            }
        })
    }

    fn check(cases: &[(&str, bool)], rules: &dyn AttributeRules) {
        let resource = barbara();
        for &(input, expected) in cases {
            assert_eq!(parsed(input).matches(&resource, rules), expected, "{input}");
        }
    }

    #[test]
    fn names_and_strings_compare_ignoring_case_unless_case_exact() {
        check(
            &[
                (r#"USERNAME eq "bjensen@EXAMPLE.com""#, true),
                (r#"name.FAMILYNAME eq "o'malley""#, true),
                (r#"externalId eq "abc-1""#, true),
                (r#"displayName sw "BABS" and displayName ew "jensen""#, true),
                (r#"title co "OUR g""#, true),
                (r#"title gt "tour""#, true),
            ],
            &NOTHING_CASE_EXACT,
        );
        check(
            &[
                (r#"externalId eq "abc-1""#, false),
                (r#"externalId eq "AbC-1""#, true),
                (r#"externalId ne "abc-1""#, true),
                (r#"userName eq "bjensen@example.com""#, true),
            ],
            &CaseExact(&["externalId"]),
        );
    }

    #[test]
    fn unicode_strings_fold_case_fully() {
        let resource = json!({"displayName": "ÉLODIE"});
        assert!(parsed(r#"displayName eq "élodie""#).matches(&resource, &NOTHING_CASE_EXACT));
    }

    #[test]
    fn a_multi_valued_attribute_matches_when_any_element_does() {
        check(
            &[
                (r#"emails.value co "jensen.org""#, true),
                (r#"emails co "jensen.org""#, true),
                (r#"emails.type eq "home""#, true),
                (r#"emails.type eq "other""#, false),
                (r#"emails.primary eq true"#, true),
                (&format!("schemas eq \"{ENTERPRISE}\""), true),
                (
                    r#"schemas eq "urn:ietf:params:scim:schemas:core:2.0:Group""#,
                    false,
                ),
            ],
            &NOTHING_CASE_EXACT,
        );
    }

    #[test]
    fn a_value_path_needs_one_element_to_satisfy_the_whole_inner_filter() {
        check(
            &[
                (
                    r#"emails[type eq "work" and value co "@example.com"]"#,
                    true,
                ),
                (
                    r#"emails[type eq "home" and value co "@example.com"]"#,
                    false,
                ),
                (r#"emails[not (type eq "work")]"#, true),
                (r#"name[givenName sw "barb"]"#, true),
                (r#"ims[type eq "xmpp"]"#, false),
                (r#"nope[type eq "xmpp"]"#, false),
                (
                    r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
                    true,
                ),
            ],
            &NOTHING_CASE_EXACT,
        );
    }

    #[test]
    fn a_value_path_asks_the_rules_about_the_qualified_path() {
        let rules = CaseExact(&["emails.value"]);
        check(
            &[
                (r#"emails[value eq "BJENSEN@example.com"]"#, false),
                (r#"emails[value eq "bjensen@example.com"]"#, true),
                (r#"emails[type eq "WORK"]"#, true),
            ],
            &rules,
        );
    }

    #[test]
    fn enterprise_attributes_are_found_with_or_without_their_urn() {
        check(
            &[
                (&format!("{ENTERPRISE}:employeeNumber eq \"701984\""), true),
                (
                    &format!("{}:EMPLOYEENUMBER eq \"701984\"", ENTERPRISE.to_uppercase()),
                    true,
                ),
                (&format!("{ENTERPRISE}:manager.value eq \"26118915\""), true),
                ("employeeNumber eq \"701984\"", true),
                ("manager.displayName sw \"john\"", true),
                (
                    r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "bj""#,
                    true,
                ),
                (
                    r#"urn:ietf:params:scim:schemas:extension:acme:2.0:User:userName pr"#,
                    false,
                ),
                (&format!("{ENTERPRISE}:userName pr"), false),
            ],
            &NOTHING_CASE_EXACT,
        );
    }

    #[test]
    fn date_times_compare_as_instants() {
        check(
            &[
                (r#"meta.lastModified gt "2011-05-13T04:42:33Z""#, true),
                (r#"meta.lastModified ge "2011-05-13T04:42:34Z""#, true),
                (r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, false),
                (
                    r#"meta.lastModified eq "2011-05-13T06:42:34.000+02:00""#,
                    true,
                ),
                // As text "2010-01-23T04:56:22+02:00" sorts after this; as an instant it is 02:56Z.
                (r#"meta.created lt "2010-01-23T03:00:00Z""#, true),
                (r#"meta.created sw "2010-01-23""#, true),
            ],
            &NOTHING_CASE_EXACT,
        );
    }

    #[test]
    fn numbers_and_booleans_compare_by_value_and_type() {
        check(
            &[
                ("loginCount gt 41", true),
                ("loginCount le 42", true),
                ("loginCount eq 42.0", true),
                ("loginCount ne 42", false),
                ("score lt 3", true),
                ("score gt 2.4", true),
                ("loginCount co 4", false),
                (r#"loginCount eq "42""#, false),
                ("active eq true", true),
                ("active ne false", true),
                ("active gt false", false),
                (r#"active eq "TRUE""#, true),
                (r#"active eq "yes""#, false),
                ("title eq 1", false),
            ],
            &NOTHING_CASE_EXACT,
        );
    }

    #[test]
    fn an_unquoted_number_matches_a_string_attribute_by_its_text() {
        let user = serde_json::json!({"externalId": "12345", "userName": "true"});
        assert!(parsed("externalId eq 12345").matches(&user, &NOTHING_CASE_EXACT));
        assert!(parsed("userName eq true").matches(&user, &NOTHING_CASE_EXACT));
        assert!(!parsed("externalId eq 1234").matches(&user, &NOTHING_CASE_EXACT));
    }

    #[test]
    fn a_value_path_with_a_sub_attribute_comparison_is_the_element_conjunction() {
        let filter = parsed(r#"emails[type eq "work"].value eq "bjensen@example.com""#);
        assert_eq!(
            filter,
            value_path(
                attr("emails"),
                and(
                    compare(attr("type"), CompareOp::Eq, text("work")),
                    compare(attr("value"), CompareOp::Eq, text("bjensen@example.com")),
                ),
            )
        );
        assert_eq!(Filter::parse(&filter.to_string()).unwrap(), filter);
        let user = serde_json::json!({"emails": [
            {"type": "home", "value": "bjensen@example.com"},
            {"type": "work", "value": "babs@example.com"}
        ]});
        assert!(
            !filter.matches(&user, &NOTHING_CASE_EXACT),
            "the work email is another address"
        );
        assert!(
            parsed(r#"emails[type eq "work"].value co "babs""#).matches(&user, &NOTHING_CASE_EXACT)
        );
        assert!(parsed(r#"emails[type eq "work"].value pr"#).matches(&user, &NOTHING_CASE_EXACT));
    }

    #[test]
    fn pr_needs_a_non_empty_value_and_null_means_absent() {
        check(
            &[
                ("title pr", true),
                ("name pr", true),
                ("emails.value pr", true),
                ("nickName pr", false),
                ("ims pr", false),
                ("roles pr", false),
                ("nope pr", false),
                ("roles eq null", true),
                ("nope eq null", true),
                ("title eq null", false),
                ("title ne null", true),
                ("nope ne null", false),
                ("title gt null", false),
            ],
            &NOTHING_CASE_EXACT,
        );
    }

    #[test]
    fn an_absent_attribute_satisfies_no_comparison_but_not_negates() {
        check(
            &[
                (r#"nope ne "x""#, false),
                (r#"nope eq "x""#, false),
                (r#"not (nope ne "x")"#, true),
                (r#"not (userType eq "Intern")"#, true),
                (r#"not (userType eq "Employee")"#, false),
                (r#"title pr and userType eq "Intern""#, false),
                (r#"title pr or userType eq "Intern""#, true),
            ],
            &NOTHING_CASE_EXACT,
        );
    }

    #[test]
    fn entra_ids_lenient_filter_evaluates() {
        let resource = json!({
            "name": {"familyName": "employee"},
            "emails": [{"value": "a@example.org"}]
        });
        let filter = parsed(
            "name.FamilyName eq Employee and (emails.Value co example.com or emails.Value co example.org)",
        );
        assert!(filter.matches(&resource, &NOTHING_CASE_EXACT));
    }

    #[test]
    fn patch_paths_split_into_attribute_filter_and_sub_attribute() {
        let cases = [
            (
                r#"members[value eq "2819"]"#,
                PatchPath {
                    attr: attr("members"),
                    filter: Some(compare(attr("value"), CompareOp::Eq, text("2819"))),
                    sub: None,
                },
            ),
            (
                r#"emails[type eq "work"].value"#,
                PatchPath {
                    attr: attr("emails"),
                    filter: Some(compare(attr("type"), CompareOp::Eq, text("work"))),
                    sub: Some("value".to_string()),
                },
            ),
            (
                "name.givenName",
                PatchPath {
                    attr: attr_sub("name", "givenName"),
                    filter: None,
                    sub: None,
                },
            ),
            (
                &format!("{ENTERPRISE}:employeeNumber"),
                PatchPath {
                    attr: attr_urn(ENTERPRISE, "employeeNumber"),
                    filter: None,
                    sub: None,
                },
            ),
            (
                &format!("{ENTERPRISE}:manager.value"),
                PatchPath {
                    attr: AttrPath {
                        sub: Some("value".to_string()),
                        ..attr_urn(ENTERPRISE, "manager")
                    },
                    filter: None,
                    sub: None,
                },
            ),
            (
                ENTERPRISE,
                PatchPath {
                    attr: attr_urn(ENTERPRISE, ""),
                    filter: None,
                    sub: None,
                },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(PatchPath::parse(input).ok(), Some(expected), "{input}");
        }
    }

    #[test]
    fn malformed_patch_paths_are_invalid_paths() {
        let cases = [
            ("", "path is malformed at character 1: expected an attribute path, found the end of the path"),
            ("emails[type eq", "character 15 (after \"emails[type eq\"): expected a value"),
            ("emails[type eq \"work\"]value", "expected \".\" and a sub-attribute, or the end of the path, found \"value\""),
            ("emails[type eq \"work\"].", "expected an attribute name"),
            ("name.givenName.x", "character 15 (after \"name.givenName\"): expected \"[\" or the end of the path"),
            ("userName+eq", "expected \"[\" or the end of the path, found \"+eq\""),
        ];
        for (input, wanted) in cases {
            let detail = path_error(input);
            assert!(detail.contains(wanted), "{input:?}: {detail}");
        }
    }

    fn arb_string() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9 \"\\\\'+()\\[\\]é😀\n\t\u{1}\u{7f}\u{2028}]{0,12}",
            any::<String>(),
        ]
    }

    fn arb_literal() -> impl Strategy<Value = Literal> {
        prop_oneof![
            arb_string().prop_map(Literal::String),
            any::<i64>().prop_map(|n| Literal::Number(n.into())),
            any::<u64>().prop_map(|n| Literal::Number(n.into())),
            any::<f64>().prop_filter_map("finite", |n| Number::from_f64(n).map(Literal::Number)),
            any::<bool>().prop_map(Literal::Bool),
            Just(Literal::Null),
        ]
    }

    fn arb_op() -> impl Strategy<Value = CompareOp> {
        proptest::sample::select(CompareOp::ALL.to_vec())
    }

    fn arb_resource_path() -> impl Strategy<Value = AttrPath> + Clone {
        prop_oneof![
            Just(attr("userName")),
            Just(attr("TITLE")),
            Just(attr("emails")),
            Just(attr("$ref")),
            Just(attr_sub("name", "familyName")),
            Just(attr_sub("emails", "value")),
            Just(attr_sub("meta", "lastModified")),
            Just(attr_urn(ENTERPRISE, "employeeNumber")),
            Just(AttrPath {
                sub: Some("value".to_string()),
                ..attr_urn(ENTERPRISE, "manager")
            }),
        ]
    }

    fn arb_element_path() -> impl Strategy<Value = AttrPath> + Clone {
        prop_oneof![
            Just(attr("type")),
            Just(attr("value")),
            Just(attr("Primary")),
            Just(attr("display-name_2")),
        ]
    }

    fn arb_multi_valued_path() -> impl Strategy<Value = AttrPath> {
        prop_oneof![
            Just(attr("emails")),
            Just(attr("members")),
            Just(attr_urn(
                "urn:ietf:params:scim:schemas:core:2.0:User",
                "ims"
            )),
        ]
    }

    fn arb_attribute_expression(
        paths: impl Strategy<Value = AttrPath> + Clone,
    ) -> impl Strategy<Value = Filter> {
        prop_oneof![
            (paths.clone(), arb_op(), arb_literal())
                .prop_map(|(path, op, value)| Filter::Compare { path, op, value }),
            paths.prop_map(Filter::Present),
        ]
    }

    fn arb_logical(leaf: impl Strategy<Value = Filter> + 'static) -> impl Strategy<Value = Filter> {
        leaf.prop_recursive(4, 24, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(left, right)| and(left, right)),
                (inner.clone(), inner.clone()).prop_map(|(left, right)| or(left, right)),
                inner.prop_map(not),
            ]
        })
    }

    fn arb_filter() -> impl Strategy<Value = Filter> {
        let value_paths = (
            arb_multi_valued_path(),
            arb_logical(arb_attribute_expression(arb_element_path())),
        )
            .prop_map(|(path, inner)| value_path(path, inner));
        let leaf = prop_oneof![
            3 => arb_attribute_expression(arb_resource_path()),
            1 => value_paths,
        ];
        arb_logical(leaf)
    }

    proptest! {
        #[test]
        fn a_rendered_filter_parses_back_to_itself(filter in arb_filter()) {
            prop_assert_eq!(Filter::parse(&filter.to_string()).ok(), Some(filter));
        }

        #[test]
        fn any_input_gets_an_answer_not_a_panic(input in "\\PC{0,256}") {
            let _ = Filter::parse(&input);
        }

        #[test]
        fn filter_like_input_gets_an_answer_not_a_panic(
            input in "[a-z \"\\\\()\\[\\].:+$0-9eE-]{0,64}"
        ) {
            let _ = Filter::parse(&input);
        }

        #[test]
        fn any_patch_path_gets_an_answer_not_a_panic(input in "\\PC{0,256}") {
            let _ = PatchPath::parse(&input);
        }

        #[test]
        fn evaluation_never_panics(filter in arb_filter()) {
            let _ = filter.matches(&barbara(), &NOTHING_CASE_EXACT);
        }
    }
}
