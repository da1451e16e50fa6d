//! The protocol side of lists (RFC 7644 §3.4.2): which filters an index can answer, and
//! what a filter looks at. Users and Groups share it; the paging itself is domain::Window.

use chrono::{DateTime, NaiveDateTime, Timelike};

use super::filter::{
    is_top_level, qualified, AttrPath, AttributeRules, CompareOp, Filter, Literal,
};

/// How a collection keeps an attribute where SQL can test it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// Text, NULL when unassigned. `lowercased`: the column holds the attribute's lowercase,
    /// as a `caseExact: false` attribute compares; otherwise its text as sent.
    Text { lowercased: bool },
    /// A dateTime, as an instant (`meta.created`, `meta.lastModified`).
    Instant,
    /// A boolean, NULL when unassigned (`emails.primary`).
    Flag,
    /// `active`, told by the member's status: `active eq false` exactly (the member is
    /// inactive); `active eq true` only as a superset, since a user whose IdP never set
    /// `active` shows none.
    Status,
}

/// What a collection's SQL can test: the columns that keep attributes, and the multi-valued
/// attributes whose elements are rows of their own.
pub struct Columns {
    /// The attributes kept in columns, by path (`userName`, `name.givenName`, `emails.value`),
    /// each of which is also the name the collection's SQL knows the column by. A column keeps
    /// a single-valued attribute, a sub-attribute of a single-valued complex one, or a
    /// sub-attribute of an element row.
    pub columns: &'static [(&'static str, Column)],
    /// The multi-valued attributes whose elements are rows of their own (`emails`), their
    /// sub-attributes among `columns` as `emails.value`.
    pub elements: &'static [&'static str],
    /// Attributes that are not in the stored document (`id`, `meta`, `groups`…): their text
    /// narrows nothing.
    pub stored_elsewhere: &'static [&'static str],
}

impl Columns {
    /// The column that keeps `path` (a value path's inner paths qualified: `emails[type eq
    /// "work"]` asks for `emails.type`), by its name; names compare ignoring case.
    fn column(&self, path: &AttrPath) -> Option<(&'static str, Column)> {
        self.columns.iter().copied().find(|(name, _)| {
            let (attribute, sub) = match name.split_once('.') {
                Some((attribute, sub)) => (attribute, Some(sub)),
                None => (*name, None),
            };
            path.is(attribute)
                && match (sub, &path.sub) {
                    (None, None) => true,
                    (Some(sub), Some(path_sub)) => sub.eq_ignore_ascii_case(path_sub),
                    _ => false,
                }
        })
    }

    fn elements(&self, name: &str) -> Option<&'static str> {
        self.elements
            .iter()
            .copied()
            .find(|attribute| attribute.eq_ignore_ascii_case(name))
    }
}

/// A test SQL makes of a row. Every test is two-valued: a NULL column fails it, and so it
/// can be negated as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The column holds text that passes `test`.
    Text {
        column: &'static str,
        test: TextTest,
    },
    /// The column holds an instant that stands to `at` as `op` says (`eq` … `le`).
    Instant {
        column: &'static str,
        op: CompareOp,
        at: NaiveDateTime,
    },
    /// The column holds `value`.
    Flag {
        column: &'static str,
        value: bool,
    },
    /// The stored document, lowercased, holds this text (lowercased, escaped as JSON writes
    /// it): a superset of an `eq`, `co`, `sw` or `ew` no column answers.
    Contains(String),
    /// One element row of the multi-valued attribute passes `condition`.
    Element {
        attribute: &'static str,
        condition: Box<Condition>,
    },
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextTest {
    Equals(String),
    Differs(String),
    StartsWith(String),
    EndsWith(String),
    Contains(String),
    /// Not empty (RFC 7644 `pr`).
    Present,
    /// Ordered against the text as `gt`, `ge`, `lt` or `le` say, by code point: the order of
    /// Rust's `str`, SQLite's BINARY collation and PostgreSQL's "C".
    Ordered(TextOrder, String),
}

/// Where a text stands against another, for `gt`, `ge`, `lt` and `le`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextOrder {
    After,
    AfterOrEqual,
    Before,
    BeforeOrEqual,
}

impl TextOrder {
    /// The order `op` asks for; `None` for an operator that is not one.
    pub fn of(op: CompareOp) -> Option<TextOrder> {
        match op {
            CompareOp::Gt => Some(TextOrder::After),
            CompareOp::Ge => Some(TextOrder::AfterOrEqual),
            CompareOp::Lt => Some(TextOrder::Before),
            CompareOp::Le => Some(TextOrder::BeforeOrEqual),
            _ => None,
        }
    }

    /// Its SQL operator.
    pub fn sql(self) -> &'static str {
        match self {
            TextOrder::After => ">",
            TextOrder::AfterOrEqual => ">=",
            TextOrder::Before => "<",
            TextOrder::BeforeOrEqual => "<=",
        }
    }
}

/// What SQL does of a filter: `condition` holds for every match (`None`: no test, every row
/// is a candidate). When `exact`, it holds for the matches alone, and the filter need not run
/// in Rust at all; otherwise the filter runs on the rows it leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub condition: Option<Condition>,
    pub exact: bool,
}

/// The most operands of one `and` or `or` given to SQL. An `and` keeps its first ones (a
/// superset still), an `or` with more stays in Rust: the bound keeps statements small and
/// their expression trees shallow for both databases.
const MAX_OPERANDS: usize = 32;

/// How SQL can answer `filter` over a collection that keeps `columns`, comparing text as
/// `rules` say. Only a test whose SQL means exactly what the filter's evaluation means is
/// exact: text compared as the column keeps it, instants as instants, booleans as booleans.
pub fn plan(filter: &Filter, columns: &Columns, rules: &dyn AttributeRules) -> Plan {
    Planner { columns, rules }.filter(filter, Within::Resource)
}

struct Planner<'a> {
    columns: &'a Columns,
    rules: &'a dyn AttributeRules,
}

/// Where a part of a filter stands: its paths are the resource's, or relative to the
/// attribute of the value path it is inside.
#[derive(Clone, Copy)]
enum Within<'p> {
    Resource,
    /// A value path on an attribute whose elements are rows of their own: SQL tests one row.
    Elements(&'p AttrPath),
    /// A value path on any other attribute: its paths are qualified and tested like the
    /// resource's (`name[givenName eq "Ada"]` is `name.givenName eq "Ada"`).
    Complex(&'p AttrPath),
}

impl Plan {
    fn exact(condition: Condition) -> Plan {
        Plan {
            condition: Some(condition),
            exact: true,
        }
    }

    fn superset(condition: Condition) -> Plan {
        Plan {
            condition: Some(condition),
            exact: false,
        }
    }

    fn none() -> Plan {
        Plan {
            condition: None,
            exact: false,
        }
    }
}

impl Planner<'_> {
    fn filter(&self, filter: &Filter, within: Within<'_>) -> Plan {
        match filter {
            Filter::And(..) => {
                let mut exact = true;
                let mut conditions = Vec::new();
                for operand in filter.chain() {
                    let plan = self.filter(operand, within);
                    exact &= plan.exact;
                    conditions.extend(plan.condition);
                }
                if conditions.len() > MAX_OPERANDS {
                    conditions.truncate(MAX_OPERANDS);
                    exact = false;
                }
                match conditions.len() {
                    0 => Plan::none(),
                    1 => Plan {
                        condition: conditions.pop(),
                        exact,
                    },
                    _ => Plan {
                        condition: Some(Condition::All(conditions)),
                        exact,
                    },
                }
            }
            Filter::Or(..) => {
                let mut exact = true;
                let mut conditions = Vec::new();
                for operand in filter.chain() {
                    let plan = self.filter(operand, within);
                    // One alternative SQL cannot test lets any row through.
                    let Some(condition) = plan.condition else {
                        return Plan::none();
                    };
                    exact &= plan.exact;
                    conditions.push(condition);
                }
                if conditions.len() > MAX_OPERANDS {
                    return Plan::none();
                }
                Plan {
                    condition: Some(Condition::Any(conditions)),
                    exact,
                }
            }
            Filter::Not(inner) => match self.filter(inner, within) {
                // The complement of a superset says nothing.
                Plan {
                    condition: Some(condition),
                    exact: true,
                } => Plan::exact(Condition::Not(Box::new(condition))),
                _ => Plan::none(),
            },
            Filter::ValuePath { path, filter } => self.value_path(path, filter, within),
            Filter::Present(path) => self.leaf(path, None, within),
            Filter::Compare { path, op, value } => self.leaf(path, Some((*op, value)), within),
        }
    }

    fn value_path(&self, path: &AttrPath, filter: &Filter, within: Within<'_>) -> Plan {
        if !matches!(within, Within::Resource) || path.sub.is_some() || !is_top_level(path) {
            // Value paths do not nest (RFC 7644 §3.4.2.2), and a qualified one names nothing
            // a column keeps.
            return self.narrowing_only(filter, path);
        }
        let Some(attribute) = self.columns.elements(&path.name) else {
            return self.filter(filter, Within::Complex(path));
        };
        let inner = self.filter(filter, Within::Elements(path));
        match inner.condition {
            Some(condition) => Plan {
                condition: Some(Condition::Element {
                    attribute,
                    condition: Box::new(condition),
                }),
                exact: inner.exact,
            },
            None => self.narrowing_only(filter, path),
        }
    }

    /// A value path where nothing but the stored document's text can narrow.
    fn narrowing_only(&self, filter: &Filter, parent: &AttrPath) -> Plan {
        let mut texts = Vec::new();
        collect_texts(filter, &mut texts);
        if self.stored_elsewhere(parent) {
            return Plan::none();
        }
        let mut conditions: Vec<Condition> = texts.into_iter().map(Condition::Contains).collect();
        conditions.truncate(MAX_OPERANDS);
        match conditions.len() {
            0 => Plan::none(),
            1 => Plan::superset(conditions.remove(0)),
            _ => Plan::superset(Condition::All(conditions)),
        }
    }

    fn stored_elsewhere(&self, path: &AttrPath) -> bool {
        self.columns
            .stored_elsewhere
            .iter()
            .any(|name| path.is(name))
    }

    fn leaf(
        &self,
        path: &AttrPath,
        compare: Option<(CompareOp, &Literal)>,
        within: Within<'_>,
    ) -> Plan {
        let parent = match within {
            Within::Resource => return self.resource_leaf(path, compare),
            Within::Elements(parent) | Within::Complex(parent) => parent,
        };
        if path.sub.is_some() || path.urn.is_some() {
            return Plan::none();
        }
        let qualified = qualified(Some(parent), path);
        match within {
            Within::Elements(_) => self
                .column_leaf(&qualified, compare)
                .unwrap_or_else(Plan::none),
            _ => self.top_level_leaf(&qualified, compare),
        }
    }

    /// A comparison or `pr` on a path of the resource: on element rows when its attribute
    /// has them (`emails.value co "x"`, or `emails eq "x"`, since a complex attribute
    /// compares by its `value`), else as [`Planner::top_level_leaf`].
    fn resource_leaf(&self, path: &AttrPath, compare: Option<(CompareOp, &Literal)>) -> Plan {
        let attribute = is_top_level(path)
            .then(|| self.columns.elements(&path.name))
            .flatten();
        let Some(attribute) = attribute else {
            return self.top_level_leaf(path, compare);
        };
        if compare.is_none() && path.sub.is_none() {
            // `emails pr` asks whether any element holds anything at all.
            return Plan::none();
        }
        let qualified = AttrPath {
            urn: None,
            name: path.name.clone(),
            sub: Some(path.sub.clone().unwrap_or_else(|| "value".into())),
        };
        match self.column_leaf(&qualified, compare) {
            Some(Plan {
                condition: Some(condition),
                exact,
            }) => Plan {
                condition: Some(Condition::Element {
                    attribute,
                    condition: Box::new(condition),
                }),
                exact,
            },
            _ => self.top_level_leaf(path, compare),
        }
    }

    /// A comparison or `pr` outside any element rows: on a column when one keeps the
    /// attribute, else narrowed by the stored document's text.
    fn top_level_leaf(&self, path: &AttrPath, compare: Option<(CompareOp, &Literal)>) -> Plan {
        if let Some(plan) = is_top_level(path)
            .then(|| self.column_leaf(path, compare))
            .flatten()
        {
            return plan;
        }
        match compare {
            Some((op, value)) if !self.stored_elsewhere(path) => document_text(op, value)
                .map_or_else(Plan::none, |text| Plan::superset(Condition::Contains(text))),
            _ => Plan::none(),
        }
    }

    /// The test of the column that keeps `path`; `None` when none does (or its case rule is
    /// not the attribute's, which would make its answers differ).
    fn column_leaf(&self, path: &AttrPath, compare: Option<(CompareOp, &Literal)>) -> Option<Plan> {
        let (column, kind) = self.columns.column(path)?;
        Some(match kind {
            Column::Text { lowercased } => {
                if lowercased == self.rules.case_exact(path) {
                    return None;
                }
                text_leaf(column, lowercased, compare)
            }
            Column::Instant => instant_leaf(column, compare),
            Column::Flag => match compare.and_then(|(op, value)| equality_with_flag(op, value)) {
                Some(value) => Plan::exact(Condition::Flag { column, value }),
                None => Plan::none(),
            },
            Column::Status => match compare.and_then(|(op, value)| equality_with_flag(op, value)) {
                Some(false) => Plan::exact(Condition::Flag {
                    column,
                    value: false,
                }),
                Some(true) => Plan::superset(Condition::Flag {
                    column,
                    value: true,
                }),
                None => Plan::none(),
            },
        })
    }
}

fn text_leaf(
    column: &'static str,
    lowercased: bool,
    compare: Option<(CompareOp, &Literal)>,
) -> Plan {
    let text = |test: TextTest| Condition::Text { column, test };
    let Some((op, value)) = compare else {
        return Plan::exact(text(TextTest::Present));
    };
    // Numbers and booleans compare with a text attribute as their text (filter::compare_value).
    let literal = match value {
        Literal::String(text) => text.clone(),
        Literal::Number(number) => number.to_string(),
        Literal::Bool(flag) => flag.to_string(),
        // RFC 7643 §2.5: unassigned, null and empty are one state.
        Literal::Null => {
            return match op {
                CompareOp::Eq => Plan::exact(Condition::Not(Box::new(text(TextTest::Present)))),
                CompareOp::Ne => Plan::exact(text(TextTest::Present)),
                _ => Plan::none(),
            };
        }
    };
    let key = if lowercased {
        literal.to_lowercase()
    } else {
        literal.clone()
    };
    match op {
        // Two dateTimes compare as instants, which other text may write: not a column test.
        CompareOp::Eq
        | CompareOp::Ne
        | CompareOp::Gt
        | CompareOp::Ge
        | CompareOp::Lt
        | CompareOp::Le
            if DateTime::parse_from_rfc3339(&literal).is_ok() =>
        {
            Plan::none()
        }
        CompareOp::Eq => Plan::exact(text(TextTest::Equals(key))),
        CompareOp::Ne => Plan::exact(text(TextTest::Differs(key))),
        // LIKE ignores ASCII case on SQLite: exact on lowercased text, a superset otherwise.
        CompareOp::Sw | CompareOp::Ew | CompareOp::Co => {
            let test = match op {
                CompareOp::Sw => TextTest::StartsWith(key),
                CompareOp::Ew => TextTest::EndsWith(key),
                _ => TextTest::Contains(key),
            };
            Plan {
                condition: Some(text(test)),
                exact: lowercased,
            }
        }
        // Rust orders the (lowercased) texts by code point, as SQL does the keys, in SQLite's
        // BINARY collation and PostgreSQL's "C" (filter_sql::ordered).
        CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le => match TextOrder::of(op) {
            Some(order) => Plan::exact(text(TextTest::Ordered(order, key))),
            None => Plan::none(),
        },
    }
}

fn instant_leaf(column: &'static str, compare: Option<(CompareOp, &Literal)>) -> Plan {
    let Some((op, Literal::String(text))) = compare else {
        return Plan::none();
    };
    let Ok(at) = DateTime::parse_from_rfc3339(text) else {
        return Plan::none();
    };
    let at = at.naive_utc();
    if matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) {
        return Plan::none();
    }
    let condition = Condition::Instant { column, op, at };
    // Stored instants have whole microseconds, and PostgreSQL keeps no finer bound.
    if at.nanosecond() % 1_000 == 0 {
        Plan::exact(condition)
    } else {
        Plan::superset(Condition::Instant {
            column,
            op: match op {
                CompareOp::Gt | CompareOp::Ge => CompareOp::Ge,
                CompareOp::Lt | CompareOp::Le => CompareOp::Le,
                _ => return Plan::none(),
            },
            at: at
                .with_nanosecond(at.nanosecond() / 1_000 * 1_000)
                .unwrap_or(at),
        })
    }
}

/// The boolean a row's flag must hold for `op value` to pass (`ne true` is `eq false`: a
/// flag that is unassigned passes neither); `None` for what a boolean cannot satisfy.
fn equality_with_flag(op: CompareOp, value: &Literal) -> Option<bool> {
    let flag = match value {
        Literal::Bool(flag) => *flag,
        Literal::String(text) if text.eq_ignore_ascii_case("true") => true,
        Literal::String(text) if text.eq_ignore_ascii_case("false") => false,
        _ => return None,
    };
    match op {
        CompareOp::Eq => Some(flag),
        CompareOp::Ne => Some(!flag),
        _ => None,
    }
}

/// The text the stored document must hold for `op value` to pass on an attribute kept in it:
/// the literal, lowercased and escaped as JSON writes it.
fn document_text(op: CompareOp, value: &Literal) -> Option<String> {
    let Literal::String(text) = value else {
        return None;
    };
    let textual = matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
        // `eq` compares dateTimes as instants, which another text may write.
        || (op == CompareOp::Eq && DateTime::parse_from_rfc3339(text).is_err());
    // SQLite lowercases ASCII alone: only ASCII text folds alike on both sides.
    (textual && !text.is_empty() && text.is_ascii()).then(|| {
        let escaped = serde_json::to_string(&text.to_ascii_lowercase()).expect("strings serialize");
        escaped[1..escaped.len() - 1].to_string()
    })
}

/// The texts every match of a value path's inner filter holds, from its `and` chain.
fn collect_texts(filter: &Filter, texts: &mut Vec<String>) {
    for operand in filter.chain() {
        match operand {
            Filter::And(..) => collect_texts(operand, texts),
            Filter::Compare { op, value, .. } => texts.extend(document_text(*op, value)),
            _ => {}
        }
    }
}

/// Whether `filter` looks at the attribute `name` anywhere.
pub fn mentions(filter: &Filter, name: &str) -> bool {
    match filter {
        Filter::Compare { path, .. } | Filter::Present(path) | Filter::ValuePath { path, .. }
            if path.is(name) =>
        {
            true
        }
        Filter::And(left, right) | Filter::Or(left, right) => {
            mentions(left, name) || mentions(right, name)
        }
        Filter::Not(inner) => mentions(inner, name),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::resource::ResourceRules;
    use crate::scim::schema::USER_RESOURCE;

    /// Columns the way a Users table keeps them.
    const USER_COLUMNS: Columns = Columns {
        columns: &[
            ("id", Column::Text { lowercased: false }),
            ("userName", Column::Text { lowercased: true }),
            ("externalId", Column::Text { lowercased: false }),
            ("name.givenName", Column::Text { lowercased: true }),
            ("active", Column::Status),
            ("meta.lastModified", Column::Instant),
            ("emails.value", Column::Text { lowercased: true }),
            ("emails.type", Column::Text { lowercased: true }),
            ("emails.primary", Column::Flag),
        ],
        elements: &["emails"],
        stored_elsewhere: &["id", "meta", "groups"],
    };

    fn planned(filter: &str) -> Plan {
        plan(
            &Filter::parse(filter).unwrap(),
            &USER_COLUMNS,
            &ResourceRules(&USER_RESOURCE),
        )
    }

    fn text(column: &'static str, test: TextTest) -> Condition {
        Condition::Text { column, test }
    }

    fn email(condition: Condition) -> Condition {
        Condition::Element {
            attribute: "emails",
            condition: Box::new(condition),
        }
    }

    #[test]
    fn text_on_a_column_compares_as_the_column_keeps_it() {
        assert_eq!(
            planned(r#"UserName eq "Ada@Acme.test""#),
            Plan::exact(text("userName", TextTest::Equals("ada@acme.test".into())))
        );
        assert_eq!(
            planned(r#"externalId eq "AbC""#),
            Plan::exact(text("externalId", TextTest::Equals("AbC".into())))
        );
        // An unquoted number is the text of a text attribute.
        assert_eq!(
            planned("externalId eq 12345"),
            Plan::exact(text("externalId", TextTest::Equals("12345".into())))
        );
        // LIKE ignores ASCII case on SQLite: only a superset of a caseExact `sw`.
        assert_eq!(
            planned(r#"externalId sw "Ab""#),
            Plan::superset(text("externalId", TextTest::StartsWith("Ab".into())))
        );
        assert_eq!(
            planned(r#"userName ne "x""#),
            Plan::exact(text("userName", TextTest::Differs("x".into())))
        );
        assert_eq!(
            planned("userName eq null"),
            Plan::exact(Condition::Not(Box::new(text(
                "userName",
                TextTest::Present
            ))))
        );
    }

    #[test]
    fn text_orders_by_code_point_unless_it_is_a_date_time() {
        assert_eq!(
            planned(r#"userName gt "Ada""#),
            Plan::exact(text(
                "userName",
                TextTest::Ordered(TextOrder::After, "ada".into())
            ))
        );
        assert_eq!(
            planned(r#"externalId le "AbC""#),
            Plan::exact(text(
                "externalId",
                TextTest::Ordered(TextOrder::BeforeOrEqual, "AbC".into())
            ))
        );
        assert_eq!(
            planned("externalId ge 12345"),
            Plan::exact(text(
                "externalId",
                TextTest::Ordered(TextOrder::AfterOrEqual, "12345".into())
            ))
        );
        // A dateTime compares as an instant with another: Rust decides.
        assert_eq!(
            planned(r#"userName lt "2026-01-01T00:00:00Z""#),
            Plan::none()
        );
        assert_eq!(planned("userName gt null"), Plan::none());
    }

    #[test]
    fn microsofts_test_filter_is_answered_by_sql_alone() {
        // IDP-QUIRKS 16, with a column for name.givenName standing in for familyName.
        assert_eq!(
            planned(
                "name.GivenName eq Employee and (emails.Value co example.com or emails.Value co example.org)"
            ),
            Plan::exact(Condition::All(vec![
                Condition::Any(vec![
                    email(text("emails.value", TextTest::Contains("example.org".into()))),
                    email(text("emails.value", TextTest::Contains("example.com".into()))),
                ]),
                text("name.givenName", TextTest::Equals("employee".into())),
            ]))
        );
    }

    #[test]
    fn a_value_path_on_element_rows_tests_one_row() {
        assert_eq!(
            planned(r#"emails[type eq "work" and value co "@Acme.test"]"#),
            Plan::exact(email(Condition::All(vec![
                text("emails.value", TextTest::Contains("@acme.test".into())),
                text("emails.type", TextTest::Equals("work".into())),
            ])))
        );
        assert_eq!(
            planned(r#"emails[type eq "work"].value eq "a@x.test""#),
            Plan::exact(email(Condition::All(vec![
                text("emails.value", TextTest::Equals("a@x.test".into())),
                text("emails.type", TextTest::Equals("work".into())),
            ])))
        );
        assert_eq!(
            planned(r#"emails[primary ne "True"]"#),
            Plan::exact(email(Condition::Flag {
                column: "emails.primary",
                value: false
            }))
        );
        assert_eq!(
            planned("emails.value pr"),
            Plan::exact(email(text("emails.value", TextTest::Present)))
        );
        // A sub-attribute without a column: the stored document's text narrows.
        assert_eq!(
            planned(r#"emails[display eq "Work"]"#),
            Plan::superset(Condition::Contains("work".into()))
        );
        assert_eq!(planned("emails pr"), Plan::none());
    }

    #[test]
    fn a_value_path_on_a_single_complex_attribute_is_its_qualified_paths() {
        assert_eq!(
            planned(r#"name[givenName sw "Ad"]"#),
            Plan::exact(text("name.givenName", TextTest::StartsWith("ad".into())))
        );
    }

    #[test]
    fn active_is_exact_only_when_false() {
        let status = |value| Condition::Flag {
            column: "active",
            value,
        };
        assert_eq!(planned("active eq false"), Plan::exact(status(false)));
        assert_eq!(planned(r#"active ne "True""#), Plan::exact(status(false)));
        assert_eq!(planned(r#"active eq "True""#), Plan::superset(status(true)));
        assert_eq!(planned("active gt true"), Plan::none());
    }

    #[test]
    fn instants_compare_as_instants() {
        let at = |text: &str| DateTime::parse_from_rfc3339(text).unwrap().naive_utc();
        assert_eq!(
            planned(r#"meta.lastModified gt "2026-01-01T01:00:00+01:00""#),
            Plan::exact(Condition::Instant {
                column: "meta.lastModified",
                op: CompareOp::Gt,
                at: at("2026-01-01T00:00:00Z")
            })
        );
        // Finer than a microsecond: a bound on whole microseconds, and Rust decides.
        assert_eq!(
            planned(r#"meta.lastModified gt "2026-01-01T00:00:00.0000005Z""#),
            Plan::superset(Condition::Instant {
                column: "meta.lastModified",
                op: CompareOp::Ge,
                at: at("2026-01-01T00:00:00Z")
            })
        );
        assert_eq!(planned(r#"meta.lastModified co "2026""#), Plan::none());
    }

    #[test]
    fn what_no_column_keeps_is_narrowed_by_the_document_or_left_to_rust() {
        assert_eq!(
            planned(r#"title eq "Boss" and userName sw "a""#),
            Plan::superset(Condition::All(vec![
                text("userName", TextTest::StartsWith("a".into())),
                Condition::Contains("boss".into()),
            ]))
        );
        assert_eq!(
            planned(r#"name.familyName sw "O\"Brien""#),
            Plan::superset(Condition::Contains(r#"o\"brien"#.into()))
        );
        for filter in [
            r#"userName eq "a" or title pr"#,
            r#"not (title eq "a")"#,
            r#"not (externalId co "a")"#,
            r#"title gt "m""#,
            r#"userName eq "2026-01-01T00:00:00Z""#,
            r#"groups.display eq "Sales""#,
            r#"displayName eq "Zoë""#,
            r#"title eq """#,
        ] {
            assert_eq!(planned(filter), Plan::none(), "{filter}");
        }
    }

    #[test]
    fn a_column_whose_case_rule_differs_from_the_schema_is_not_used() {
        let wrong = Columns {
            columns: &[("userName", Column::Text { lowercased: false })],
            elements: &[],
            stored_elsewhere: &[],
        };
        let plan = super::plan(
            &Filter::parse(r#"userName eq "Ada""#).unwrap(),
            &wrong,
            &ResourceRules(&USER_RESOURCE),
        );
        assert_eq!(plan, Plan::superset(Condition::Contains("ada".into())));
    }

    #[test]
    fn long_chains_are_bounded() {
        let chain = |connective: &str| {
            (0..40)
                .map(|n| format!(r#"userName eq "u{n}""#))
                .collect::<Vec<_>>()
                .join(connective)
        };
        let and = planned(&chain(" and "));
        assert!(!and.exact);
        assert!(
            matches!(and.condition, Some(Condition::All(ref all)) if all.len() == MAX_OPERANDS)
        );
        assert_eq!(planned(&chain(" or ")), Plan::none());
    }
}
