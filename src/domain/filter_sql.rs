//! A filter's SQL: the [`Condition`] that `scim::list::plan` made of it, as a diesel
//! expression over a collection's table. Every value is a bound parameter; no input text is
//! ever part of the statement. Users and Groups map their own columns (`leaf`); the
//! connectives and the shape of each test are written once, here.

use std::collections::HashSet;

use diesel::expression::BoxableExpression;
use diesel::prelude::*;
use diesel::sql_types::Bool;

use crate::db::DbConn;
use crate::error::Error;
use crate::scim::list::Condition;
use crate::scim::sort::Sort;

pub type Backend = <DbConn as diesel::Connection>::Backend;

/// A boolean SQL expression over `T`'s rows.
pub type Sql<T> = Box<dyn BoxableExpression<T, Backend, SqlType = Bool>>;

/// `condition` as SQL over `T`, its leaves (text, instant, flag, document and element tests)
/// made by `leaf`.
pub fn condition<T: 'static>(
    condition: &Condition,
    leaf: &dyn Fn(&Condition) -> Result<Sql<T>, Error>,
) -> Result<Sql<T>, Error> {
    Ok(match condition {
        Condition::All(operands) => fold(operands, leaf, |all, next| Box::new(all.and(next)))?,
        Condition::Any(operands) => fold(operands, leaf, |any, next| Box::new(any.or(next)))?,
        Condition::Not(inner) => Box::new(diesel::dsl::not(self::condition(inner, leaf)?)),
        other => leaf(other)?,
    })
}

fn fold<T: 'static>(
    operands: &[Condition],
    leaf: &dyn Fn(&Condition) -> Result<Sql<T>, Error>,
    join: impl Fn(Sql<T>, Sql<T>) -> Sql<T>,
) -> Result<Sql<T>, Error> {
    let mut operands = operands.iter();
    let first = operands
        .next()
        .ok_or_else(|| Error::internal("a filter condition joins no operands"))?;
    operands.try_fold(condition(first, leaf)?, |joined, next| {
        Ok(join(joined, condition(next, leaf)?))
    })
}

/// `condition` as SQL over `T` for a listing, sorted by `sort` or not: [`condition`], in a
/// statement kept prepared only while the shapes of such statements stay few ([`kept`]);
/// planned afresh otherwise.
pub fn listing<T: 'static>(
    condition: &Condition,
    sort: Option<&Sort>,
    leaf: &dyn Fn(&Condition) -> Result<Sql<T>, Error>,
) -> Result<Sql<T>, Error> {
    let sql = self::condition(condition, leaf)?;
    Ok(match kept(condition, sort) {
        true => sql,
        false => afresh(sql),
    })
}

/// How many shapes of filtered listing, beyond one test unsorted, a process keeps prepared:
/// the first it meets.
const MORE_SHAPES_KEPT: usize = 64;

/// Whether a listing with this condition and sort may be kept prepared. diesel keeps a
/// statement prepared by its text for the connection's life, without bound, and PostgreSQL
/// keeps its plans in the backend: a token holder sending `userName eq "a" or userName eq
/// "b" or …`, one term more each time, would grow both without end. One test, unsorted
/// ([`has_few_shapes`]), is always kept: its shapes are as few as the columns and tests, and
/// it is how IdPs look users up. Of the other shapes (`emails[type eq "work" and value eq
/// …]`, `id eq … and manager eq …`, any sort), the first [`MORE_SHAPES_KEPT`] the process
/// meets are kept, and any later one is planned afresh at each request.
pub fn kept(condition: &Condition, sort: Option<&Sort>) -> bool {
    static SHAPES: std::sync::Mutex<Option<HashSet<String>>> = std::sync::Mutex::new(None);
    if sort.is_none() && has_few_shapes(condition) {
        return true;
    }
    let mut key = sort.map_or(String::new(), |sort| format!("{sort:?} "));
    shape(condition, &mut key);
    let mut shapes = SHAPES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let shapes = shapes.get_or_insert_with(HashSet::new);
    shapes.contains(&key) || (shapes.len() < MORE_SHAPES_KEPT && shapes.insert(key))
}

/// Whether the condition is one test (inside one element at most: `emails[type eq
/// "work"]`), whose statements have as many shapes as the collection has columns and tests.
pub fn has_few_shapes(condition: &Condition) -> bool {
    match condition {
        Condition::All(_) | Condition::Any(_) | Condition::Not(_) => false,
        Condition::Element { condition, .. } => has_few_shapes(condition),
        _ => true,
    }
}

/// The condition without its values: what its statement's text follows.
fn shape(condition: &Condition, out: &mut String) {
    use crate::scim::list::{TextOrder, TextTest};
    let joined = |out: &mut String, name: &str, operands: &[Condition]| {
        out.push_str(name);
        out.push('(');
        for operand in operands {
            shape(operand, out);
            out.push(',');
        }
        out.push(')');
    };
    match condition {
        Condition::Text { column, test } => {
            out.push_str(column);
            out.push_str(match test {
                TextTest::Equals(_) => " eq",
                TextTest::Differs(_) => " ne",
                TextTest::StartsWith(_) => " sw",
                TextTest::EndsWith(_) => " ew",
                TextTest::Contains(_) => " co",
                TextTest::Present => " pr",
                TextTest::Ordered(TextOrder::After, _) => " gt",
                TextTest::Ordered(TextOrder::AfterOrEqual, _) => " ge",
                TextTest::Ordered(TextOrder::Before, _) => " lt",
                TextTest::Ordered(TextOrder::BeforeOrEqual, _) => " le",
            });
        }
        Condition::Instant { column, op, .. } => out.push_str(&format!("{column} {op:?}")),
        Condition::Flag { column, value } => out.push_str(&format!("{column} {value}")),
        Condition::Contains(_) => out.push_str("document"),
        Condition::Element {
            attribute,
            condition,
        } => {
            out.push_str(attribute);
            out.push('[');
            shape(condition, out);
            out.push(']');
        }
        Condition::All(operands) => joined(out, "and", operands),
        Condition::Any(operands) => joined(out, "or", operands),
        Condition::Not(inner) => joined(out, "not", std::slice::from_ref(&**inner)),
    }
}

/// `sql`, in a statement that is never kept prepared (see [`kept`]).
pub fn afresh<T: 'static>(sql: Sql<T>) -> Sql<T> {
    Box::new(Afresh(sql))
}

/// An expression whose statement diesel prepares afresh at every execution.
struct Afresh<E>(E);

impl<E> diesel::Expression for Afresh<E> {
    type SqlType = Bool;
}

impl<E: diesel::AppearsOnTable<QS>, QS> diesel::AppearsOnTable<QS> for Afresh<E> {}

impl<E: diesel::SelectableExpression<QS>, QS> diesel::SelectableExpression<QS> for Afresh<E> {}

impl<E> diesel::expression::ValidGrouping<()> for Afresh<E> {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl<E> diesel::query_builder::QueryId for Afresh<E> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<E, DB> diesel::query_builder::QueryFragment<DB> for Afresh<E>
where
    DB: diesel::backend::Backend,
    E: diesel::query_builder::QueryFragment<DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        // The pass that asks whether the statement may be kept prepared learns it here.
        out.unsafe_to_cache_prepared();
        self.0.walk_ast(out)
    }
}

/// A leaf the collection has no column for: the planner only names the columns the
/// collection's `Columns` gave it.
pub fn unknown_column(condition: &Condition) -> Error {
    Error::internal(format!("no column answers the filter test {condition:?}"))
}

/// A LIKE pattern (with `\` as its escape) for text that starts with, ends with or contains
/// `text` literally.
pub fn like_pattern(test: &crate::scim::list::TextTest) -> Option<String> {
    use crate::db::escape_like;
    use crate::scim::list::TextTest;
    match test {
        TextTest::StartsWith(text) => Some(format!("{}%", escape_like(text))),
        TextTest::EndsWith(text) => Some(format!("%{}", escape_like(text))),
        TextTest::Contains(text) => Some(crate::db::contains_pattern(text)),
        _ => None,
    }
}

/// A [`TextTest`](crate::scim::list::TextTest) on a nullable text column: false, never NULL,
/// where the column is NULL, so that the test can be negated as it stands.
#[macro_export]
macro_rules! text_sql {
    ($column:expr, $test:expr) => {{
        use diesel::prelude::*;
        use $crate::scim::list::TextTest;
        let column = $column;
        let present = column.is_not_null();
        let value = column.assume_not_null();
        let sql: $crate::domain::filter_sql::Sql<_> = match $test {
            TextTest::Equals(text) => Box::new(present.and(value.eq(text.clone()))),
            TextTest::Differs(text) => Box::new(present.and(value.ne(text.clone()))),
            TextTest::Present => Box::new(present.and(value.ne(""))),
            TextTest::Ordered(order, text) => {
                Box::new(present.and($crate::domain::filter_sql::ordered(value, *order, text)))
            }
            TextTest::StartsWith(text) => Box::new(
                present
                    .and($crate::domain::filter_sql::prefix_range(value, text))
                    .and(
                        value
                            .like(
                                $crate::domain::filter_sql::like_pattern($test).unwrap_or_default(),
                            )
                            .escape('\\'),
                    ),
            ),
            like => Box::new(
                present.and(
                    value
                        .like($crate::domain::filter_sql::like_pattern(like).unwrap_or_default())
                        .escape('\\'),
                ),
            ),
        };
        sql
    }};
}

/// `column >= prefix AND column < (prefix with its last character the next one)`, by code
/// point: a superset of `column LIKE 'prefix%'` that a B-tree on the column can range-scan,
/// so that `sw` on a key column is an index range rather than a scan of the connection. Code
/// point order is SQLite's BINARY collation; on PostgreSQL the range says `COLLATE "C"`,
/// since the database's own collation need not order text by code point, and the columns
/// filters test are kept in "C" (`db::CODE_POINT_COLUMNS`) so that their indexes answer it
/// (on another column the range only filters, and LIKE still decides).
pub fn prefix_range<C>(column: C, prefix: &str) -> CodePoint<C> {
    let mut bounds = vec![(">=", prefix.to_string())];
    bounds.extend(successor(prefix).map(|high| ("<", high)));
    CodePoint { column, bounds }
}

/// The smallest text greater than every text that starts with `prefix` (`None` when the last
/// character is the largest one, or `prefix` is empty: no bound above).
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    let last = chars.pop()?;
    let next = match last as u32 + 1 {
        // Past the surrogates, which are no characters.
        0xD800 => '\u{E000}',
        code => char::from_u32(code)?,
    };
    chars.push(next);
    Some(chars.into_iter().collect())
}

/// `column` ordered against `text` as `order` says, by code point (`gt`, `ge`, `lt`, `le` on a
/// text column): what Rust's evaluation does with the same texts, keys lowercased as its.
pub fn ordered<C>(column: C, order: crate::scim::list::TextOrder, text: &str) -> CodePoint<C> {
    CodePoint {
        column,
        bounds: vec![(order.sql(), text.to_string())],
    }
}

/// Comparisons of one text column, all of which hold (`column >= $1 AND column < $2`), texts
/// compared by code point: SQLite's BINARY collation; on PostgreSQL `COLLATE "C"`, whatever
/// the database's (see `prefix_range`).
#[derive(Debug, Clone)]
pub struct CodePoint<C> {
    column: C,
    /// Each comparison's SQL operator and text.
    bounds: Vec<(&'static str, String)>,
}

impl<C> diesel::Expression for CodePoint<C> {
    type SqlType = Bool;
}

impl<C: diesel::AppearsOnTable<QS>, QS> diesel::AppearsOnTable<QS> for CodePoint<C> {}

impl<C: diesel::SelectableExpression<QS>, QS> diesel::SelectableExpression<QS> for CodePoint<C> {}

impl<C> diesel::expression::ValidGrouping<()> for CodePoint<C> {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl<C> diesel::query_builder::QueryId for CodePoint<C> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<C> diesel::query_builder::QueryFragment<crate::db::MultiBackend> for CodePoint<C>
where
    C: diesel::query_builder::QueryFragment<crate::db::MultiBackend>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, crate::db::MultiBackend>,
    ) -> QueryResult<()> {
        let postgres = matches!(out.backend(), crate::db::MultiBackend::Postgres(_));
        out.push_sql("(");
        for (n, (operator, text)) in self.bounds.iter().enumerate() {
            if n > 0 {
                out.push_sql(" AND ");
            }
            self.column.walk_ast(out.reborrow())?;
            if postgres {
                out.push_sql(" COLLATE \"C\"");
            }
            out.push_sql(" ");
            out.push_sql(operator);
            out.push_sql(" ");
            out.push_bind_param::<diesel::sql_types::Text, _>(text)?;
        }
        out.push_sql(")");
        Ok(())
    }
}

/// An instant column compared as `op` says with `at`.
#[macro_export]
macro_rules! instant_sql {
    ($column:expr, $op:expr, $at:expr) => {{
        use diesel::prelude::*;
        use $crate::scim::filter::CompareOp;
        let (column, at) = ($column, *$at);
        let sql: $crate::domain::filter_sql::Sql<_> = match $op {
            CompareOp::Eq => Box::new(column.eq(at)),
            CompareOp::Ne => Box::new(column.ne(at)),
            CompareOp::Gt => Box::new(column.gt(at)),
            CompareOp::Ge => Box::new(column.ge(at)),
            CompareOp::Lt => Box::new(column.lt(at)),
            CompareOp::Le => Box::new(column.le(at)),
            // The planner compares instants by order alone (scim::list::instant_leaf).
            CompareOp::Co | CompareOp::Sw | CompareOp::Ew => Box::new(column.ne(column)),
        };
        sql
    }};
}

/// `left IN (subquery)` or `EXISTS (subquery)`, with a boxed subquery. Diesel's own `eq_any`
/// and `exists` take a subquery only when its every part renders for each backend of the
/// MultiConnection, which a boxed one does not (it renders through the multi-backend); this
/// node renders through whichever backend it is given.
#[derive(Debug)]
pub struct Subquery<L, S> {
    left: L,
    operator: &'static str,
    subquery: S,
}

pub fn in_subquery<L, S>(left: L, subquery: S) -> Subquery<L, S> {
    Subquery {
        left,
        operator: " IN (",
        subquery,
    }
}

pub fn exists<S>(subquery: S) -> Subquery<NoOperand, S> {
    Subquery {
        left: NoOperand,
        operator: "EXISTS (",
        subquery,
    }
}

/// The left side `EXISTS` has none of: renders nothing, stands on any table.
#[derive(Debug)]
pub struct NoOperand;

impl diesel::Expression for NoOperand {
    type SqlType = Bool;
}

impl<QS> diesel::AppearsOnTable<QS> for NoOperand {}

impl<QS> diesel::SelectableExpression<QS> for NoOperand {}

impl<DB: diesel::backend::Backend> diesel::query_builder::QueryFragment<DB> for NoOperand {
    fn walk_ast<'b>(&'b self, _: diesel::query_builder::AstPass<'_, 'b, DB>) -> QueryResult<()> {
        Ok(())
    }
}

impl<L, S> diesel::Expression for Subquery<L, S> {
    type SqlType = Bool;
}

impl<L: diesel::AppearsOnTable<QS>, S, QS> diesel::AppearsOnTable<QS> for Subquery<L, S> {}

impl<L: diesel::SelectableExpression<QS>, S, QS> diesel::SelectableExpression<QS>
    for Subquery<L, S>
{
}

impl<L, S> diesel::expression::ValidGrouping<()> for Subquery<L, S> {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl<L, S> diesel::query_builder::QueryId for Subquery<L, S> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<L, S, DB> diesel::query_builder::QueryFragment<DB> for Subquery<L, S>
where
    DB: diesel::backend::Backend,
    L: diesel::query_builder::QueryFragment<DB>,
    S: diesel::query_builder::QueryFragment<DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        self.left.walk_ast(out.reborrow())?;
        out.push_sql(self.operator);
        self.subquery.walk_ast(out.reborrow())?;
        out.push_sql(")");
        Ok(())
    }
}

/// Whether an element condition holds a test an index on the element's value can find rows
/// by (`value eq`, `value sw`, alone or in an `and`): then the rows it finds drive the query
/// (`IN`); otherwise each candidate is checked on its own rows (`EXISTS`), so that another,
/// selective condition of the filter (`name.familyName eq … and (emails co … or …)`) decides
/// which candidates there are.
pub fn finds_by_value(condition: &Condition, value_column: &str) -> bool {
    use crate::scim::list::TextTest;
    match condition {
        Condition::Text {
            column,
            test: TextTest::Equals(_) | TextTest::StartsWith(_),
        } => *column == value_column,
        Condition::All(operands) => operands
            .iter()
            .any(|operand| finds_by_value(operand, value_column)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::successor;

    #[test]
    fn the_successor_bounds_every_text_with_the_prefix() {
        assert_eq!(successor("smi").as_deref(), Some("smj"));
        assert_eq!(successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(successor("zoë").as_deref(), Some("zoì"));
        assert_eq!(successor(""), None);
        assert_eq!(successor("a\u{10FFFF}"), None);
        let (low, high) = ("smi", successor("smi").unwrap());
        for text in ["smi", "smith", "smi\u{10FFFF}\u{10FFFF}", "smi~"] {
            assert!(low <= text && text < high.as_str(), "{text}");
        }
        for text in ["smh\u{10FFFF}", "smj", "sm"] {
            assert!(!(low <= text && text < high.as_str()), "{text}");
        }
    }
}
