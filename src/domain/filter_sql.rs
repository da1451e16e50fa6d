//! A filter's SQL: the [`Condition`] that `scim::list::plan` made of it, as a diesel
//! expression over a collection's table. Every value is a bound parameter; no input text is
//! ever part of the statement. Users and Groups map their own columns (`leaf`); the
//! connectives and the shape of each test are written once, here.

use diesel::expression::BoxableExpression;
use diesel::prelude::*;
use diesel::sql_types::Bool;

use crate::db::DbConn;
use crate::error::Error;
use crate::scim::list::Condition;

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
