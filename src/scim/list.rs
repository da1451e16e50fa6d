//! The protocol side of lists (RFC 7644 §3.4.2): which filters an index can answer, and
//! what a filter looks at. Users and Groups share it; the paging itself is domain::Window.

use super::filter::{AttrPath, CompareOp, Filter, Literal};

/// An equality every match of `filter` must satisfy, on one of the `indexed` attributes
/// (`userName`, or `members.value` given as ("members", Some("value"))): the filter itself,
/// a value path `members[value eq "x"]`, or either side of a top-level `and`. Returns the
/// attribute as named in `indexed` and the value.
pub fn required_equality<'f>(
    filter: &'f Filter,
    indexed: &[(&'static str, Option<&'static str>)],
) -> Option<((&'static str, Option<&'static str>), &'f str)> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: Literal::String(value),
        } => indexed
            .iter()
            .find(|(name, sub)| names(path, name, *sub))
            .map(|attribute| (*attribute, value.as_str())),
        Filter::ValuePath { path, filter } if path.sub.is_none() => {
            let Filter::Compare {
                path: inner,
                op: CompareOp::Eq,
                value: Literal::String(value),
            } = filter.as_ref()
            else {
                return None;
            };
            indexed
                .iter()
                .find(|(name, sub)| {
                    sub.is_some_and(|sub| {
                        path.is(name) && path.urn.is_none() && inner.is(sub) && inner.sub.is_none()
                    })
                })
                .map(|attribute| (*attribute, value.as_str()))
        }
        Filter::And(left, right) => {
            required_equality(left, indexed).or_else(|| required_equality(right, indexed))
        }
        _ => None,
    }
}

fn names(path: &AttrPath, name: &str, sub: Option<&str>) -> bool {
    let core_or_none = path.urn.as_deref().is_none_or(|urn| {
        urn.to_ascii_lowercase()
            .starts_with("urn:ietf:params:scim:schemas:core:2.0:")
    });
    core_or_none
        && path.is(name)
        && match (sub, &path.sub) {
            (None, None) => true,
            (Some(sub), Some(path_sub)) => sub.eq_ignore_ascii_case(path_sub),
            _ => false,
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

    const INDEXED: &[(&str, Option<&str>)] = &[("userName", None), ("members", Some("value"))];

    fn equality(filter: &str) -> Option<(&'static str, String)> {
        let filter = Filter::parse(filter).unwrap();
        required_equality(&filter, INDEXED).map(|((name, _), value)| (name, value.to_string()))
    }

    #[test]
    fn indexed_equalities_are_found_where_every_match_needs_them() {
        assert_eq!(
            equality(r#"UserName eq "a""#),
            Some(("userName", "a".into()))
        );
        assert_eq!(
            equality(r#"title pr and userName eq "a""#),
            Some(("userName", "a".into()))
        );
        assert_eq!(
            equality(r#"members[value eq "m"]"#),
            Some(("members", "m".into()))
        );
        assert_eq!(
            equality(r#"members.value eq "m""#),
            Some(("members", "m".into()))
        );
        assert_eq!(
            equality(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "a""#),
            Some(("userName", "a".into()))
        );
        assert_eq!(equality(r#"userName eq "a" or title pr"#), None);
        assert_eq!(equality(r#"userName co "a""#), None);
        assert_eq!(equality(r#"not (userName eq "a")"#), None);
    }
}
