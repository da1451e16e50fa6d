//! The protocol side of lists (RFC 7644 §3.4.2): which filters an index can answer, and
//! what a filter looks at. Users and Groups share it; the paging itself is domain::Window.

use chrono::{DateTime, NaiveDateTime};

use super::filter::{AttrPath, CompareOp, Filter, Literal};

/// A condition SQL can check before a filter runs in Rust, which every match satisfies: the
/// rows it drops could not have matched, so the answer is the same, only cheaper to reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Narrowing {
    /// The stored document, lowercased, holds this text (a string that an `eq`, `co`, `sw` or
    /// `ew` compares with, lowercased and escaped as JSON writes it).
    Contains(String),
    /// `active eq true` / `active eq false`.
    Active(bool),
    /// `meta.created` (`created: true`) or `meta.lastModified` lies at or after, or at or
    /// before, an instant.
    Meta {
        created: bool,
        bound: Bound,
        at: NaiveDateTime,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    AtOrAfter,
    AtOrBefore,
}

/// The narrowings every match of `filter` satisfies, from its top-level `and` chain and the
/// value paths in it. `stored_elsewhere` names the attributes that are not in the stored
/// document (`id`, `meta`, `groups`, `members`…): their strings narrow nothing.
pub fn narrowings(filter: &Filter, stored_elsewhere: &[&str]) -> Vec<Narrowing> {
    let mut found = Vec::new();
    collect(filter, stored_elsewhere, &mut found);
    found
}

fn collect(filter: &Filter, stored_elsewhere: &[&str], found: &mut Vec<Narrowing>) {
    match filter {
        Filter::And(left, right) => {
            collect(left, stored_elsewhere, found);
            collect(right, stored_elsewhere, found);
        }
        Filter::ValuePath { path, filter }
            if !stored_elsewhere.iter().any(|name| path.is(name)) =>
        {
            let mut inner = Vec::new();
            collect(filter, &[], &mut inner);
            found.extend(
                inner
                    .into_iter()
                    .filter(|narrowing| matches!(narrowing, Narrowing::Contains(_))),
            );
        }
        Filter::Compare { path, op, value } => {
            if let Some(narrowing) = compare_narrowing(path, *op, value, stored_elsewhere) {
                found.push(narrowing);
            }
        }
        _ => {}
    }
}

fn compare_narrowing(
    path: &AttrPath,
    op: CompareOp,
    value: &Literal,
    stored_elsewhere: &[&str],
) -> Option<Narrowing> {
    if path.is("meta") && path.urn.is_none() {
        let created = match path.sub.as_deref()? {
            sub if sub.eq_ignore_ascii_case("created") => true,
            sub if sub.eq_ignore_ascii_case("lastModified") => false,
            _ => return None,
        };
        let Literal::String(text) = value else {
            return None;
        };
        let at = DateTime::parse_from_rfc3339(text).ok()?.naive_utc();
        let bound = match op {
            CompareOp::Gt | CompareOp::Ge => Bound::AtOrAfter,
            CompareOp::Lt | CompareOp::Le => Bound::AtOrBefore,
            _ => return None,
        };
        return Some(Narrowing::Meta { created, bound, at });
    }
    if path.is("active") && path.sub.is_none() && op == CompareOp::Eq {
        return match value {
            Literal::Bool(active) => Some(Narrowing::Active(*active)),
            _ => None,
        };
    }
    let Literal::String(text) = value else {
        return None;
    };
    let textual = matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
        // `eq` compares dateTimes as instants, which another text may write.
        || (op == CompareOp::Eq && DateTime::parse_from_rfc3339(text).is_err());
    // SQLite lowercases ASCII alone: only ASCII text folds alike on both sides.
    let usable = textual
        && !text.is_empty()
        && text.is_ascii()
        && !stored_elsewhere.iter().any(|name| path.is(name));
    usable.then(|| {
        let escaped = serde_json::to_string(&text.to_ascii_lowercase()).expect("strings serialize");
        Narrowing::Contains(escaped[1..escaped.len() - 1].to_string())
    })
}

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

    fn narrowed(filter: &str) -> Vec<Narrowing> {
        narrowings(&Filter::parse(filter).unwrap(), &["id", "meta", "groups"])
    }

    #[test]
    fn narrowings_come_from_what_every_match_needs() {
        assert_eq!(
            narrowed(r#"emails[type eq "work" and value eq "Ada@X.test"] and active eq false"#),
            [
                Narrowing::Contains("work".into()),
                Narrowing::Contains("ada@x.test".into()),
                Narrowing::Active(false)
            ]
        );
        assert_eq!(
            narrowed(r#"name.familyName sw "O\"Brien""#),
            [Narrowing::Contains(r#"o\"brien"#.into())]
        );
        assert_eq!(
            narrowed(r#"meta.lastModified gt "2026-01-01T00:00:00Z""#),
            [Narrowing::Meta {
                created: false,
                bound: Bound::AtOrAfter,
                at: DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                    .unwrap()
                    .naive_utc()
            }]
        );
        // Nothing every match needs: alternatives, negations, inequalities, instants compared
        // as instants, attributes stored elsewhere, non-ASCII text, empty text.
        for filter in [
            r#"userName eq "a" or userName eq "b""#,
            r#"not (userName eq "a")"#,
            r#"userName ne "a""#,
            r#"title gt "m""#,
            r#"x eq "2026-01-01T00:00:00Z""#,
            r#"groups.display eq "Sales""#,
            r#"id eq "member-1""#,
            r#"displayName eq "Zoë""#,
            r#"userName eq """#,
        ] {
            assert_eq!(narrowed(filter), [], "{filter}");
        }
    }

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
