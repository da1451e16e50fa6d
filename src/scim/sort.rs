//! `sortBy` and `sortOrder` (RFC 7644 §3.4.2.3): which attribute, which way, and how two
//! resources compare by it.

use std::cmp::Ordering;

use serde_json::Value;

use super::filter::{sort_value, AttrPath, AttributeRules};
use crate::error::{Error, ScimType};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    pub path: AttrPath,
    pub descending: bool,
}

impl Sort {
    /// The sort a request asks for; `sortOrder` without `sortBy` sorts nothing.
    pub fn parse(sort_by: Option<&str>, sort_order: Option<&str>) -> Result<Option<Sort>, Error> {
        let descending = match sort_order.map(str::trim) {
            None | Some("") => false,
            Some(order) if order.eq_ignore_ascii_case("ascending") => false,
            Some(order) if order.eq_ignore_ascii_case("descending") => true,
            Some(order) => {
                return Err(Error::scim(
                    ScimType::InvalidValue,
                    format!("sortOrder must be \"ascending\" or \"descending\", not \"{order}\""),
                ))
            }
        };
        match sort_by.map(str::trim).filter(|by| !by.is_empty()) {
            None => Ok(None),
            Some(by) => Ok(Some(Sort {
                path: AttrPath::parse(by)?,
                descending,
            })),
        }
    }

    /// Whether the sort is by this attribute (`meta.created`: name `meta`, sub `created`).
    pub fn is(&self, name: &str, sub: Option<&str>) -> bool {
        self.path.is(name)
            && match (&self.path.sub, sub) {
                (None, None) => true,
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => false,
            }
    }
}

/// What a resource sorts by. Strings compare ignoring case unless the attribute is
/// `caseExact`; an unassigned value sorts after every value when ascending, before when
/// descending.
#[derive(Debug, Clone, PartialEq)]
pub enum SortKey {
    Bool(bool),
    Number(f64),
    Text(String),
    Missing,
}

impl SortKey {
    pub fn of(resource: &Value, sort: &Sort, rules: &dyn AttributeRules) -> SortKey {
        match sort_value(resource, &sort.path) {
            Some(Value::Bool(value)) => SortKey::Bool(*value),
            Some(Value::Number(number)) => SortKey::Number(number.as_f64().unwrap_or(0.0)),
            Some(Value::String(text)) if rules.case_exact(&sort.path) => {
                SortKey::Text(text.clone())
            }
            Some(Value::String(text)) => SortKey::Text(text.to_lowercase()),
            Some(other) => SortKey::Text(other.to_string()),
            None => SortKey::Missing,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            SortKey::Bool(_) => 0,
            SortKey::Number(_) => 1,
            SortKey::Text(_) => 2,
            SortKey::Missing => 3,
        }
    }

    /// The order of two keys for `sort`: by value, the way it asks; unassigned last when
    /// ascending, first when descending.
    pub fn compare(&self, other: &SortKey, sort: &Sort) -> Ordering {
        let ascending = match (self, other) {
            (SortKey::Bool(a), SortKey::Bool(b)) => a.cmp(b),
            (SortKey::Number(a), SortKey::Number(b)) => a.total_cmp(b),
            (SortKey::Text(a), SortKey::Text(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        };
        if sort.descending {
            ascending.reverse()
        } else {
            ascending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Rules;
    impl AttributeRules for Rules {
        fn case_exact(&self, path: &AttrPath) -> bool {
            path.is("id")
        }
    }

    fn keys(resources: &[Value], sort: &Sort) -> Vec<Value> {
        let mut keyed: Vec<(SortKey, &Value)> = resources
            .iter()
            .map(|r| (SortKey::of(r, sort, &Rules), r))
            .collect();
        keyed.sort_by(|a, b| a.0.compare(&b.0, sort));
        keyed.into_iter().map(|(_, r)| r["n"].clone()).collect()
    }

    #[test]
    fn sorts_ignoring_case_with_unassigned_last_when_ascending() {
        let resources = [
            json!({"n": 1, "name": {"familyName": "beta"}}),
            json!({"n": 2}),
            json!({"n": 3, "name": {"familyName": "Alpha"}}),
            json!({"n": 4, "name": {"familyName": "gamma"}}),
        ];
        let ascending = Sort::parse(Some("name.familyName"), None).unwrap().unwrap();
        assert_eq!(
            keys(&resources, &ascending),
            [json!(3), json!(1), json!(4), json!(2)]
        );
        let descending = Sort::parse(Some("name.familyName"), Some("descending"))
            .unwrap()
            .unwrap();
        assert_eq!(
            keys(&resources, &descending),
            [json!(2), json!(4), json!(1), json!(3)]
        );
    }

    #[test]
    fn multi_valued_attributes_sort_by_their_primary_value() {
        let resources = [
            json!({"n": 1, "emails": [{"value": "z@x.test"}, {"value": "a@x.test", "primary": true}]}),
            json!({"n": 2, "emails": [{"value": "m@x.test"}]}),
        ];
        for by in ["emails", "emails.value"] {
            let sort = Sort::parse(Some(by), None).unwrap().unwrap();
            assert_eq!(keys(&resources, &sort), [json!(1), json!(2)], "{by}");
        }
    }

    #[test]
    fn bad_sort_parameters_are_refused() {
        assert!(Sort::parse(Some("name.familyName"), Some("upwards")).is_err());
        assert!(Sort::parse(Some("name..x"), None).is_err());
        assert_eq!(Sort::parse(None, Some("descending")).unwrap(), None);
    }
}
