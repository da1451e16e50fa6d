//! SCIM resources in canonical form: what every IdP's input is normalised into before it is
//! stored, and how stored resources are rendered and projected. IdP quirks that concern the
//! shape of values (IDP-QUIRKS 1, 2, 8, 9, 10, 17) are handled here, in one place.

use std::borrow::Cow;

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

use super::filter::{qualified, AttrPath, AttributeRules, CompareOp, Filter};
use super::schema::{
    Attribute, Kind, Mutability, ResourceType, Returned, Schema, COMMON_ATTRIBUTES,
};
use crate::error::{Error, ScimType};

/// The longest string value accepted, in characters; binary values (certificates) may be longer.
pub const MAX_STRING_CHARS: usize = 2048;
pub const MAX_BINARY_CHARS: usize = 65_536;

/// A resource's attributes in canonical form: canonical attribute names; extension attributes
/// in an object under their schema URN; values of their declared types; no read-only,
/// write-only, unknown, null or empty values. `id` and `meta` are not part of it.
pub type Attributes = Map<String, Value>;

/// Normalises a client's resource document (POST or PUT body).
pub fn normalize(resource_type: &ResourceType, input: &Value) -> Result<Attributes, Error> {
    let Value::Object(object) = input else {
        return Err(Error::scim(
            ScimType::InvalidSyntax,
            "the request body must be a JSON object",
        ));
    };
    check_schemas(resource_type, object)?;
    let mut attributes = Map::new();
    for (key, value) in object {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if let Some(schema) = resource_type.extension(key) {
            merge_extension(&mut attributes, schema, value)?;
            continue;
        }
        let (urn, name) = split_urn(key);
        if let Some((schema, attribute)) = resource_type.attribute(urn, name) {
            set_normalized(&mut attributes, schema, attribute, value, attribute.name)?;
        }
        // Unknown attributes are tolerated and dropped (IDP-QUIRKS 10).
    }
    Ok(attributes)
}

/// Stores `value`, normalised for `attribute`, at its place (under its extension's URN when it
/// has one); a value that normalises to nothing removes the attribute.
pub fn set_normalized(
    attributes: &mut Attributes,
    schema: Option<&Schema>,
    attribute: &Attribute,
    value: &Value,
    path: &str,
) -> Result<(), Error> {
    if !accepts_input(attribute) {
        // Read-only input (id, meta, groups) is ignored, not refused (IDP-QUIRKS 9); write-only
        // input (password) is dropped: it is never stored (IDP-QUIRKS 17).
        return Ok(());
    }
    let normalized = normalize_value(attribute, value, path)?;
    let container = match schema {
        Some(schema) => {
            let entry = attributes
                .entry(schema.id)
                .or_insert_with(|| Value::Object(Map::new()));
            match entry {
                Value::Object(object) => object,
                _ => unreachable!("extensions are stored as objects"),
            }
        }
        None => attributes,
    };
    match normalized {
        Some(value) => {
            container.insert(attribute.name.to_string(), value);
        }
        None => {
            container.remove(attribute.name);
        }
    }
    if let Some(schema) = schema {
        drop_if_empty(attributes, schema.id);
    }
    Ok(())
}

/// Removes `key` when it holds an empty object.
pub fn drop_if_empty(attributes: &mut Attributes, key: &str) {
    if attributes
        .get(key)
        .is_some_and(|value| value.as_object().is_some_and(Map::is_empty))
    {
        attributes.remove(key);
    }
}

fn merge_extension(
    attributes: &mut Attributes,
    schema: &'static Schema,
    value: &Value,
) -> Result<(), Error> {
    let object = match value {
        Value::Null => return Ok(()),
        Value::Object(object) => object,
        _ => {
            return Err(Error::scim(
                ScimType::InvalidValue,
                format!(
                    "{} must be an object of that schema's attributes",
                    schema.id
                ),
            ))
        }
    };
    for (key, value) in object {
        if let Some(attribute) = schema.attribute(key) {
            set_normalized(attributes, Some(schema), attribute, value, attribute.name)?;
        }
    }
    Ok(())
}

/// A write may set attributes that are readWrite, or immutable (set once; the caller checks
/// changes); never readOnly or writeOnly ones.
pub fn accepts_input(attribute: &Attribute) -> bool {
    matches!(
        attribute.mutability,
        Mutability::ReadWrite | Mutability::Immutable
    )
}

/// `schemas` may carry extra URNs (IDP-QUIRKS 10) but, when present, must name the resource's
/// core schema.
fn check_schemas(resource_type: &ResourceType, object: &Map<String, Value>) -> Result<(), Error> {
    let Some((_, schemas)) = object
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("schemas"))
    else {
        return Ok(());
    };
    let names_core = match schemas {
        Value::Array(urns) => urns.iter().any(|urn| {
            urn.as_str()
                .is_some_and(|urn| urn.eq_ignore_ascii_case(resource_type.core.id))
        }),
        Value::String(urn) => urn.eq_ignore_ascii_case(resource_type.core.id),
        _ => false,
    };
    if !names_core {
        return Err(Error::scim(
            ScimType::InvalidSyntax,
            format!(
                "schemas must be a list that includes \"{}\"",
                resource_type.core.id
            ),
        ));
    }
    Ok(())
}

/// Splits `urn:…:User:userName` into its schema URN and attribute name.
pub fn split_urn(key: &str) -> (Option<&str>, &str) {
    if key.len() > 4 && key[..4].eq_ignore_ascii_case("urn:") {
        if let Some(colon) = key.rfind(':') {
            return (Some(&key[..colon]), &key[colon + 1..]);
        }
    }
    (None, key)
}

/// Normalises one attribute's value; `None` means unassigned (null, empty string, empty list,
/// empty object: RFC 7643 §2.5 treats them alike).
pub fn normalize_value(
    attribute: &Attribute,
    value: &Value,
    path: &str,
) -> Result<Option<Value>, Error> {
    if value.is_null() {
        return Ok(None);
    }
    if attribute.multi_valued {
        let items = match value {
            Value::Array(items) => items.clone(),
            // Entra sends some multi-valued attributes (roles) as a JSON-encoded string.
            Value::String(text) if text.trim_start().starts_with('[') => {
                match serde_json::from_str(text) {
                    Ok(Value::Array(items)) => items,
                    _ => vec![value.clone()],
                }
            }
            single => vec![single.clone()],
        };
        let mut normalized: Vec<Value> = Vec::with_capacity(items.len());
        // Duplicates are found by their serialised form: linear, whatever the list's length.
        let mut seen = std::collections::HashSet::with_capacity(items.len());
        for item in &items {
            if let Some(item) = normalize_single(attribute, item, path)? {
                if seen.insert(item.to_string()) {
                    normalized.push(item);
                }
            }
        }
        keep_one_primary(&mut normalized);
        return Ok((!normalized.is_empty()).then_some(Value::Array(normalized)));
    }
    let value = match value {
        Value::Array(items) if items.is_empty() => return Ok(None),
        // Entra and others send a single-valued complex attribute (manager) as a one-element list.
        Value::Array(items) if items.len() == 1 => &items[0],
        Value::Array(_) => {
            return Err(Error::scim(
                ScimType::InvalidValue,
                format!("{path} takes a single value, not a list"),
            ))
        }
        single => single,
    };
    normalize_single(attribute, value, path)
}

/// RFC 7643 §2.4: `primary: true` appears at most once. The last one given wins, so that adding
/// a new primary value demotes the old one.
fn keep_one_primary(items: &mut [Value]) {
    let primaries: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, item)| item.get("primary") == Some(&Value::Bool(true)))
        .map(|(index, _)| index)
        .collect();
    if let Some((_, earlier)) = primaries.split_last() {
        for index in earlier {
            if let Some(object) = items[*index].as_object_mut() {
                object.remove("primary");
            }
        }
    }
}

fn normalize_single(
    attribute: &Attribute,
    value: &Value,
    path: &str,
) -> Result<Option<Value>, Error> {
    if value.is_null() {
        return Ok(None);
    }
    match attribute.kind {
        Kind::Complex => normalize_complex(attribute, value, path),
        Kind::String | Kind::Reference | Kind::Binary => normalize_string(attribute, value, path),
        Kind::Boolean => match value {
            Value::Bool(_) => Ok(Some(value.clone())),
            // Entra sends "True"/"False" (IDP-QUIRKS 1).
            Value::String(text) if text.eq_ignore_ascii_case("true") => Ok(Some(Value::Bool(true))),
            Value::String(text) if text.eq_ignore_ascii_case("false") => {
                Ok(Some(Value::Bool(false)))
            }
            _ => Err(type_error(path, "a boolean (true or false)", value)),
        },
        Kind::Integer => match value {
            Value::Number(number) if number.is_i64() || number.is_u64() => Ok(Some(value.clone())),
            Value::String(text) => text
                .trim()
                .parse::<i64>()
                .map(|n| Some(Value::from(n)))
                .map_err(|_| type_error(path, "an integer", value)),
            _ => Err(type_error(path, "an integer", value)),
        },
        Kind::Decimal => match value {
            Value::Number(_) => Ok(Some(value.clone())),
            Value::String(text) => text
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(|n| Some(Value::Number(n)))
                .ok_or_else(|| type_error(path, "a number", value)),
            _ => Err(type_error(path, "a number", value)),
        },
        Kind::DateTime => match value {
            Value::String(text) if text.is_empty() => Ok(None),
            Value::String(text) if chrono::DateTime::parse_from_rfc3339(text).is_ok() => {
                Ok(Some(value.clone()))
            }
            _ => Err(type_error(
                path,
                "an RFC 3339 date-time such as \"2026-11-23T12:00:00Z\"",
                value,
            )),
        },
    }
}

fn normalize_string(
    attribute: &Attribute,
    value: &Value,
    path: &str,
) -> Result<Option<Value>, Error> {
    let text = match value {
        Value::String(text) => text.clone(),
        // employeeNumber: 7 — a number where a string is declared is taken as its text.
        Value::Number(number) => number.to_string(),
        _ => return Err(type_error(path, "a string", value)),
    };
    if text.is_empty() {
        return Ok(None);
    }
    if text.contains('\0') {
        return Err(Error::scim(
            ScimType::InvalidValue,
            format!("{path} contains a NUL character, which no attribute may hold"),
        ));
    }
    let limit = if attribute.kind == Kind::Binary {
        MAX_BINARY_CHARS
    } else {
        MAX_STRING_CHARS
    };
    let length = text.chars().count();
    if length > limit {
        return Err(Error::scim(
            ScimType::InvalidValue,
            format!("{path} is {length} characters long; the limit is {limit}"),
        ));
    }
    Ok(Some(Value::String(text)))
}

fn normalize_complex(
    attribute: &Attribute,
    value: &Value,
    path: &str,
) -> Result<Option<Value>, Error> {
    let has_value = attribute.sub_attribute("value").is_some();
    let parsed;
    let object = match value {
        Value::Object(object) => object,
        // A JSON-encoded object (Entra roles), or a bare value: a manager id or a member id
        // given as a plain string (IDP-QUIRKS 8, 10).
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) if text.trim_start().starts_with('{') => {
                parsed = object;
                &parsed
            }
            _ if has_value => return normalize_complex_from_value(attribute, value, path),
            _ => return Err(type_error(path, "an object", value)),
        },
        Value::Number(_) | Value::Bool(_) if has_value => {
            return normalize_complex_from_value(attribute, value, path)
        }
        _ => return Err(type_error(path, "an object", value)),
    };
    let mut normalized = Map::new();
    for (key, sub_value) in object {
        let Some(sub) = attribute.sub_attribute(key) else {
            continue;
        };
        if !accepts_input(sub) {
            continue;
        }
        if let Some(sub_value) = normalize_single(sub, sub_value, &format!("{path}.{}", sub.name))?
        {
            normalized.insert(sub.name.to_string(), sub_value);
        }
    }
    Ok((!normalized.is_empty()).then_some(Value::Object(normalized)))
}

fn normalize_complex_from_value(
    attribute: &Attribute,
    value: &Value,
    path: &str,
) -> Result<Option<Value>, Error> {
    let mut object = Map::new();
    object.insert("value".into(), value.clone());
    normalize_complex(attribute, &Value::Object(object), path)
}

fn type_error(path: &str, expected: &str, got: &Value) -> Error {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    Error::scim(
        ScimType::InvalidValue,
        format!("{path} must be {expected}, not {got}"),
    )
}

/// Refuses a resource that lacks a required attribute (`userName`, group `displayName`).
pub fn check_required(resource_type: &ResourceType, attributes: &Attributes) -> Result<(), Error> {
    for attribute in resource_type.core.attributes.iter().filter(|a| a.required) {
        if !attributes.contains_key(attribute.name) {
            return Err(Error::scim(
                ScimType::InvalidValue,
                format!("{} is required on a {}", attribute.name, resource_type.name),
            ));
        }
    }
    Ok(())
}

/// What `meta` says of a stored resource.
pub struct Meta {
    pub created: NaiveDateTime,
    pub last_modified: NaiveDateTime,
    pub location: String,
    pub version: i64,
}

/// The ETag of a version, as `meta.version` and the `ETag` header carry it.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Renders a stored resource: `schemas`, `id`, its attributes in schema order, then `meta`.
pub fn render(
    resource_type: &ResourceType,
    id: &str,
    attributes: &Attributes,
    meta: &Meta,
) -> Value {
    let mut schemas = vec![Value::from(resource_type.core.id)];
    schemas.extend(
        resource_type
            .extensions
            .iter()
            .filter(|schema| attributes.contains_key(schema.id))
            .map(|schema| Value::from(schema.id)),
    );
    let mut out = Map::new();
    out.insert("schemas".into(), Value::Array(schemas));
    out.insert("id".into(), Value::from(id));
    let ordered = COMMON_ATTRIBUTES
        .iter()
        .chain(resource_type.core.attributes)
        .map(|attribute| attribute.name)
        .chain(resource_type.extensions.iter().map(|schema| schema.id));
    for name in ordered {
        if let Some(value) = attributes.get(name) {
            out.insert(name.to_string(), value.clone());
        }
    }
    out.insert(
        "meta".into(),
        serde_json::json!({
            "resourceType": resource_type.name,
            "created": crate::domain::rfc3339(meta.created),
            "lastModified": crate::domain::rfc3339(meta.last_modified),
            "location": meta.location,
            "version": etag(meta.version),
        }),
    );
    Value::Object(out)
}

/// An entry of `attributes` or `excludedAttributes`: `[urn:]name[.sub]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    urn: Option<String>,
    name: String,
    sub: Option<String>,
}

impl Selector {
    /// Whether this selector names the core attribute `name` (whole or one of its
    /// sub-attributes).
    pub fn names(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
            && self.urn.as_deref().is_none_or(|urn| {
                urn.to_ascii_lowercase()
                    .starts_with("urn:ietf:params:scim:schemas:core:2.0:")
            })
    }
}

/// Parses a comma-separated `attributes` / `excludedAttributes` list.
pub fn parse_selectors(list: &str) -> Vec<Selector> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (urn, rest) = split_urn(item);
            // `urn:…:User` alone names the whole extension.
            let (urn, rest) = match urn {
                Some(_) if !rest.is_empty() && !rest.contains('.') && is_schema_urn(item) => {
                    (Some(item), "")
                }
                other => (other, rest),
            };
            let (name, sub) = match rest.split_once('.') {
                Some((name, sub)) => (name, Some(sub.to_string())),
                None => (rest, None),
            };
            Selector {
                urn: urn.map(str::to_string),
                name: name.to_string(),
                sub,
            }
        })
        .collect()
}

fn is_schema_urn(text: &str) -> bool {
    [
        super::schema::USER_URN,
        super::schema::GROUP_URN,
        super::schema::ENTERPRISE_USER_URN,
    ]
    .iter()
    .any(|urn| urn.eq_ignore_ascii_case(text))
}

/// Applies `attributes` (only these, plus what is always returned) or `excludedAttributes`
/// (all but these) to a rendered resource (RFC 7644 §3.4.2.5). Attributes whose `returned`
/// is `never` are never present; `request` ones only when asked for.
pub fn project(
    resource_type: &ResourceType,
    rendered: Value,
    include: &[Selector],
    exclude: &[Selector],
) -> Value {
    let Value::Object(mut resource) = rendered else {
        return rendered;
    };
    if !include.is_empty() {
        let mut kept = Map::new();
        for (key, value) in &resource {
            if key == "schemas" || key == "id" {
                kept.insert(key.clone(), value.clone());
                continue;
            }
            if let Some(schema) = resource_type.extension(key) {
                if let Some(projected) = keep_selected(value, include, Some(schema), |name| {
                    resource_type
                        .attribute(Some(schema.id), name)
                        .map(|(_, a)| a)
                }) {
                    kept.insert(key.clone(), projected);
                }
                continue;
            }
            let attribute = resource_type.attribute(None, key).map(|(_, a)| a);
            if attribute.is_some_and(|a| a.returned == Returned::Always) {
                kept.insert(key.clone(), value.clone());
                continue;
            }
            let wanted: Vec<&Selector> = include
                .iter()
                .filter(|s| {
                    s.name.eq_ignore_ascii_case(key)
                        && s.urn
                            .as_deref()
                            .is_none_or(|u| u.eq_ignore_ascii_case(resource_type.core.id))
                })
                .collect();
            if wanted.iter().any(|s| s.sub.is_none()) {
                kept.insert(key.clone(), value.clone());
            } else if !wanted.is_empty() {
                let subs: Vec<&str> = wanted.iter().filter_map(|s| s.sub.as_deref()).collect();
                if let Some(value) = keep_sub_attributes(value, &subs) {
                    kept.insert(key.clone(), value);
                }
            }
        }
        resource = kept;
    } else {
        for selector in exclude {
            remove_selected(resource_type, &mut resource, selector);
        }
        // Without `attributes`, what is returned only on request is not.
        drop_returned_on_request(resource_type, &mut resource);
    }
    Value::Object(resource)
}

/// Removes the attributes whose `returned` is `request` (RFC 7643 §7), of the core schema
/// and of each extension object: a response shows them only when `attributes` names them.
fn drop_returned_on_request(resource_type: &ResourceType, resource: &mut Map<String, Value>) {
    let on_request = |schema: &Schema, key: &str| {
        schema
            .attribute(key)
            .is_some_and(|attribute| attribute.returned == Returned::Request)
    };
    resource.retain(|key, _| !on_request(resource_type.core, key));
    for schema in resource_type.extensions {
        if let Some(Value::Object(extension)) = resource.get_mut(schema.id) {
            extension.retain(|key, _| !on_request(schema, key));
        }
    }
}

/// Projects an extension object to the selected attributes; a selector naming the whole
/// extension keeps all of it.
fn keep_selected(
    value: &Value,
    include: &[Selector],
    schema: Option<&Schema>,
    attribute: impl Fn(&str) -> Option<&'static Attribute>,
) -> Option<Value> {
    let schema = schema?;
    if include.iter().any(|s| {
        s.urn
            .as_deref()
            .is_some_and(|u| u.eq_ignore_ascii_case(schema.id))
            && s.name.is_empty()
    }) {
        return Some(value.clone());
    }
    let object = value.as_object()?;
    let mut kept = Map::new();
    for (key, sub_value) in object {
        let selected: Vec<&Selector> = include
            .iter()
            .filter(|s| {
                s.name.eq_ignore_ascii_case(key)
                    && s.urn
                        .as_deref()
                        .is_none_or(|u| u.eq_ignore_ascii_case(schema.id))
                    && attribute(key).is_some()
            })
            .collect();
        if selected.iter().any(|s| s.sub.is_none()) {
            kept.insert(key.clone(), sub_value.clone());
        } else if !selected.is_empty() {
            let subs: Vec<&str> = selected.iter().filter_map(|s| s.sub.as_deref()).collect();
            if let Some(value) = keep_sub_attributes(sub_value, &subs) {
                kept.insert(key.clone(), value);
            }
        }
    }
    (!kept.is_empty()).then_some(Value::Object(kept))
}

fn keep_sub_attributes(value: &Value, subs: &[&str]) -> Option<Value> {
    let keep = |object: &Map<String, Value>| {
        let kept: Map<String, Value> = object
            .iter()
            .filter(|(key, _)| subs.iter().any(|sub| sub.eq_ignore_ascii_case(key)))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        (!kept.is_empty()).then_some(Value::Object(kept))
    };
    match value {
        Value::Object(object) => keep(object),
        Value::Array(items) => {
            let kept: Vec<Value> = items
                .iter()
                .filter_map(|item| item.as_object().and_then(keep))
                .collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        _ => None,
    }
}

fn remove_selected(
    resource_type: &ResourceType,
    resource: &mut Map<String, Value>,
    selector: &Selector,
) {
    // The whole extension.
    if selector.name.is_empty() {
        if let Some(urn) = &selector.urn {
            resource.retain(|key, _| !key.eq_ignore_ascii_case(urn));
        }
        return;
    }
    let Some((schema, attribute)) =
        resource_type.attribute(selector.urn.as_deref(), &selector.name)
    else {
        return;
    };
    if attribute.returned == Returned::Always || attribute.name == "id" {
        return;
    }
    let container = match schema {
        Some(schema) => match resource.get_mut(schema.id) {
            Some(Value::Object(object)) => object,
            _ => return,
        },
        None => &mut *resource,
    };
    match &selector.sub {
        None => {
            container.remove(attribute.name);
        }
        Some(sub) => {
            match container.get_mut(attribute.name) {
                Some(Value::Object(object)) => {
                    object.retain(|key, _| !key.eq_ignore_ascii_case(sub))
                }
                Some(Value::Array(items)) => {
                    for item in items.iter_mut() {
                        if let Some(object) = item.as_object_mut() {
                            object.retain(|key, _| !key.eq_ignore_ascii_case(sub));
                        }
                    }
                }
                _ => {}
            }
            drop_if_empty(container, attribute.name);
        }
    }
    if let Some(schema) = schema {
        drop_if_empty(resource, schema.id);
    }
}

/// What a resource type's schema says about filters on it: case rules (RFC 7643 §2.2
/// `caseExact`: `id` and `externalId` compare exactly, `userName` and emails do not), and
/// which attributes may be ordered.
pub struct ResourceRules(pub &'static ResourceType);

impl ResourceRules {
    /// The attribute a comparison on `path` compares, if the schema has it.
    fn compared(&self, path: &AttrPath) -> Option<&'static Attribute> {
        let (_, attribute) = self.0.attribute(path.urn.as_deref(), &path.name)?;
        match (&path.sub, attribute.sub_attribute("value")) {
            (Some(sub), _) => attribute.sub_attribute(sub),
            // `emails eq "x"` compares each element's value.
            (None, Some(value)) if attribute.kind == Kind::Complex => Some(value),
            (None, _) => Some(attribute),
        }
    }

    /// Refuses a filter that orders a boolean or binary attribute: RFC 7644 §3.4.2.2 says that
    /// for `gt`, `ge`, `lt` and `le` they "SHALL cause a failed response (i.e., HTTP 400 Bad
    /// Request with scimType of invalidFilter)". An attribute the schema does not have is let
    /// through, to match nothing.
    ///
    /// Paths are resolved as evaluation resolves them; a stack, not recursion, holds what is
    /// left to look at, since an `and`/`or` chain may hang 1000 operands down its left spine.
    pub fn check_ordering(&self, filter: &Filter) -> Result<(), Error> {
        // Each part with the path of the value path it is inside, if any.
        let mut pending: Vec<(&Filter, Option<Cow<'_, AttrPath>>)> = vec![(filter, None)];
        while let Some((part, parent)) = pending.pop() {
            match part {
                Filter::Compare { path, op, .. } => {
                    let path = qualified(parent.as_deref(), path);
                    self.check_ordered(&path, *op)?;
                }
                Filter::Present(_) => {}
                Filter::And(..) | Filter::Or(..) => {
                    pending.extend(part.chain().map(|operand| (operand, parent.clone())));
                }
                Filter::Not(inner) => pending.push((inner, parent)),
                Filter::ValuePath { path, filter } => {
                    let element_path = qualified(parent.as_deref(), path);
                    pending.push((filter, Some(element_path)));
                }
            }
        }
        Ok(())
    }

    fn check_ordered(&self, path: &AttrPath, op: CompareOp) -> Result<(), Error> {
        if !matches!(
            op,
            CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
        ) {
            return Ok(());
        }
        match self.compared(path) {
            Some(attribute) if matches!(attribute.kind, Kind::Boolean | Kind::Binary) => {
                Err(Error::scim(
                    ScimType::InvalidFilter,
                    format!(
                        "{op} cannot compare {path}, a {} attribute: boolean and binary values \
                         have no order, so RFC 7644 §3.4.2.2 refuses gt, ge, lt and le on them",
                        attribute.kind.as_str()
                    ),
                ))
            }
            _ => Ok(()),
        }
    }
}

impl AttributeRules for ResourceRules {
    fn case_exact(&self, path: &AttrPath) -> bool {
        self.compared(path)
            .is_some_and(|attribute| attribute.case_exact)
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::{ENTERPRISE_USER_URN, GROUP_RESOURCE, USER_RESOURCE};
    use super::*;
    use serde_json::json;

    #[test]
    fn an_attribute_returned_on_request_shows_only_when_asked_for() {
        use super::super::schema::{Kind, Mutability, Uniqueness};
        const fn attribute(name: &'static str, returned: Returned) -> Attribute {
            Attribute {
                name,
                kind: Kind::String,
                multi_valued: false,
                required: false,
                case_exact: false,
                mutability: Mutability::ReadWrite,
                returned,
                uniqueness: Uniqueness::None,
                sub_attributes: &[],
                canonical_values: &[],
                reference_types: &[],
                description: "",
            }
        }
        static CORE: Schema = Schema {
            id: "urn:example:core",
            name: "Core",
            description: "",
            attributes: &[
                attribute("id", Returned::Always),
                attribute("plain", Returned::Default),
                attribute("secretish", Returned::Request),
            ],
        };
        static EXTENSION: Schema = Schema {
            id: "urn:example:extension",
            name: "Extension",
            description: "",
            attributes: &[
                attribute("badge", Returned::Default),
                attribute("audit", Returned::Request),
            ],
        };
        static THING: ResourceType = ResourceType {
            name: "Thing",
            endpoint: "/Things",
            description: "",
            core: &CORE,
            extensions: &[&EXTENSION],
        };
        let rendered = json!({
            "id": "t-1", "plain": "p", "secretish": "s",
            "urn:example:extension": {"badge": "b", "audit": "a"},
        });
        let shown = |include: &str, exclude: &str| {
            project(
                &THING,
                rendered.clone(),
                &parse_selectors(include),
                &parse_selectors(exclude),
            )
        };
        let by_default =
            json!({"id": "t-1", "plain": "p", "urn:example:extension": {"badge": "b"}});
        assert_eq!(shown("", ""), by_default);
        assert_eq!(
            shown("", "plain"),
            json!({"id": "t-1", "urn:example:extension": {"badge": "b"}})
        );
        assert_eq!(
            shown("secretish,urn:example:extension:audit", ""),
            json!({"id": "t-1", "secretish": "s", "urn:example:extension": {"audit": "a"}})
        );
    }

    fn user(value: Value) -> Result<Attributes, Error> {
        normalize(&USER_RESOURCE, &value)
    }

    #[test]
    fn names_are_canonical_and_read_only_or_unknown_input_is_dropped() {
        let attributes = user(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:example:extra"],
            "UserName": "ada@acme.test",
            "id": "mine", "meta": {"resourceType": "User"}, "groups": [], "password": "hunter2",
            "shoeSize": 44, "nickName": null, "title": "",
            "name": {"GivenName": "Ada", "familyName": "Lovelace", "unknown": 1},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {"Department": "R&D", "manager": "m-1"},
        }))
        .unwrap();
        assert_eq!(
            Value::Object(attributes),
            json!({
                "userName": "ada@acme.test",
                "name": {"givenName": "Ada", "familyName": "Lovelace"},
                ENTERPRISE_USER_URN: {"department": "R&D", "manager": {"value": "m-1"}},
            })
        );
    }

    #[test]
    fn entra_boolean_strings_become_booleans() {
        let attributes = user(json!({
            "userName": "a", "active": "False",
            "emails": [{"value": "a@x.test", "primary": "True", "type": "work"}],
        }))
        .unwrap();
        assert_eq!(attributes["active"], json!(false));
        assert_eq!(attributes["emails"][0]["primary"], json!(true));
    }

    #[test]
    fn wrong_types_are_refused_with_the_attribute_named() {
        let error = user(json!({"userName": "a", "active": 7})).unwrap_err();
        assert_eq!(error.scim_type(), Some(ScimType::InvalidValue));
        assert!(
            error.to_string().contains("active must be a boolean"),
            "{error}"
        );
        let error = user(json!({"userName": "a", "name": {"givenName": ["x", "y"]}})).unwrap_err();
        assert!(error.to_string().contains("name.givenName"), "{error}");
        let error = user(json!({"userName": "x".repeat(MAX_STRING_CHARS + 1)})).unwrap_err();
        assert!(error.to_string().contains("limit"), "{error}");
    }

    #[test]
    fn a_wrong_schemas_list_is_refused() {
        let error = user(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "userName": "a"}),
        )
        .unwrap_err();
        assert_eq!(error.scim_type(), Some(ScimType::InvalidSyntax));
    }

    #[test]
    fn manager_arrives_in_three_shapes_and_reads_back_as_one() {
        for manager in [
            json!("m-1"),
            json!({"value": "m-1"}),
            json!([{"$ref": "../Users/m-1", "value": "m-1"}]),
        ] {
            let attributes =
                user(json!({"userName": "a", ENTERPRISE_USER_URN: {"manager": manager}})).unwrap();
            assert_eq!(attributes[ENTERPRISE_USER_URN]["manager"]["value"], "m-1");
        }
        let cleared =
            user(json!({"userName": "a", ENTERPRISE_USER_URN: {"manager": {"value": ""}}}))
                .unwrap();
        assert!(!cleared.contains_key(ENTERPRISE_USER_URN), "{cleared:?}");
    }

    #[test]
    fn roles_as_a_json_string_are_parsed() {
        let attributes =
            user(json!({"userName": "a", "roles": "[{\"value\":\"Admin\",\"primary\":\"True\"}]"}))
                .unwrap();
        assert_eq!(
            attributes["roles"],
            json!([{"value": "Admin", "primary": true}])
        );
    }

    #[test]
    fn only_the_last_primary_stays_primary() {
        let attributes = user(json!({"userName": "a", "emails": [
            {"value": "a@x.test", "primary": true}, {"value": "b@x.test", "primary": true}
        ]}))
        .unwrap();
        assert_eq!(
            attributes["emails"],
            json!([{"value": "a@x.test"}, {"value": "b@x.test", "primary": true}])
        );
    }

    #[test]
    fn projection_keeps_what_was_asked_and_what_is_always_returned() {
        let attributes = user(
            json!({"userName": "a", "title": "t", "name": {"givenName": "A", "familyName": "L"},
                                     ENTERPRISE_USER_URN: {"department": "d", "division": "v"}}),
        )
        .unwrap();
        let meta = Meta {
            created: crate::domain::now(),
            last_modified: crate::domain::now(),
            location: "http://x/Users/1".into(),
            version: 1,
        };
        let rendered = render(&USER_RESOURCE, "1", &attributes, &meta);
        let only = project(
            &USER_RESOURCE,
            rendered.clone(),
            &parse_selectors("userName,name.givenName,department"),
            &[],
        );
        assert_eq!(
            only,
            json!({"schemas": rendered["schemas"], "id": "1", "userName": "a", "name": {"givenName": "A"},
                   ENTERPRISE_USER_URN: {"department": "d"}})
        );
        let without = project(
            &USER_RESOURCE,
            rendered.clone(),
            &[],
            &parse_selectors(&format!(
                "title,meta,id,name.familyName,{ENTERPRISE_USER_URN}"
            )),
        );
        assert_eq!(
            without,
            json!({"schemas": rendered["schemas"], "id": "1", "userName": "a", "name": {"givenName": "A"}})
        );
    }

    fn ordering_check(resource_type: &'static ResourceType, filter: &str) -> Result<(), Error> {
        ResourceRules(resource_type).check_ordering(&Filter::parse(filter).unwrap())
    }

    #[test]
    fn ordering_a_boolean_or_binary_attribute_is_an_invalid_filter_naming_both() {
        for (filter, named) in [
            (
                "active gt true",
                "gt cannot compare active, a boolean attribute",
            ),
            (
                "emails[primary ge true]",
                "ge cannot compare emails.primary",
            ),
            ("emails.primary lt true", "lt cannot compare emails.primary"),
            (
                "urn:ietf:params:scim:schemas:core:2.0:User:active le false",
                "le cannot compare urn:ietf:params:scim:schemas:core:2.0:User:active",
            ),
            (r#"x509Certificates gt "MII""#, "a binary attribute"),
            (
                r#"x509Certificates[value lt "MII"]"#,
                "x509Certificates.value",
            ),
            // IDP-QUIRKS 16: the comparison after the brackets is inside the value path.
            (
                r#"emails[type eq "work"].primary gt true"#,
                "emails.primary",
            ),
            (
                r#"userName eq "a" and not (ACTIVE GT true)"#,
                "gt cannot compare ACTIVE",
            ),
        ] {
            let error = ordering_check(&USER_RESOURCE, filter).unwrap_err();
            assert_eq!(error.scim_type(), Some(ScimType::InvalidFilter), "{filter}");
            let detail = error.to_string();
            assert!(detail.contains(named), "{filter}: {detail}");
            assert!(detail.contains("RFC 7644 §3.4.2.2"), "{filter}: {detail}");
        }
    }

    #[test]
    fn ordering_other_or_unknown_attributes_and_comparing_booleans_stay_valid() {
        for filter in [
            "active eq true",
            "active ne false",
            "emails[primary eq true]",
            "active pr",
            r#"userName gt "a""#,
            r#"meta.lastModified ge "2026-01-01T00:00:00Z""#,
            r#"emails[value lt "b"]"#,
            // Unknown attributes match nothing rather than fail.
            "shoeSize gt true",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:active gt true",
            "name.active gt true",
        ] {
            assert!(ordering_check(&USER_RESOURCE, filter).is_ok(), "{filter}");
        }
        // A group has no `active`.
        assert!(ordering_check(&GROUP_RESOURCE, "active gt true").is_ok());
    }

    #[test]
    fn a_thousand_and_one_operand_chain_is_checked_in_a_small_stack() {
        // The offending comparison is leftmost: the bottom of the left spine.
        let chain = std::iter::once("active gt true")
            .chain(std::iter::repeat_n(r#"userName eq "a""#, 1000))
            .collect::<Vec<_>>()
            .join(" or ");
        let filter = Filter::parse(&chain).unwrap();
        let rules = ResourceRules(&USER_RESOURCE);
        std::thread::scope(|scope| {
            // Far too small for a recursion 1000 frames deep.
            let checked = std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn_scoped(scope, || rules.check_ordering(&filter).is_err())
                .unwrap();
            assert!(checked.join().unwrap());
        });
    }
}
