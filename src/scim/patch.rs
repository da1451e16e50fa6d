//! SCIM PATCH (RFC 7644 §3.5.2), applied to a resource in canonical form: JSON in, JSON out.
//! The operations of one request apply in order to a copy; the first error discards them all.

use serde_json::{Map, Value};

use super::filter::{AttrPath, AttributeRules, CompareOp, Filter, Literal, PatchPath};
use super::resource::{accepts_input, drop_if_empty, normalize_value, Attributes};
use super::schema::{Attribute, Mutability, ResourceType, Schema};
use crate::error::{Error, ScimType};

pub const PATCH_OP_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Replace,
    Remove,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub op: Op,
    pub path: Option<String>,
    pub value: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PatchRequest {
    pub operations: Vec<Operation>,
}

impl PatchRequest {
    /// Reads a PatchOp body. Keys and `op` values are matched case-insensitively
    /// (`Operations`, `"op": "Replace"`: IDP-QUIRKS 2).
    pub fn parse(body: &Value) -> Result<PatchRequest, Error> {
        let Value::Object(object) = body else {
            return Err(syntax(
                "a PATCH body must be a JSON object with \"Operations\"",
            ));
        };
        if let Some(schemas) = field(object, "schemas") {
            let names_patch = match schemas {
                Value::Array(urns) => urns.iter().any(|u| {
                    u.as_str()
                        .is_some_and(|u| u.eq_ignore_ascii_case(PATCH_OP_URN))
                }),
                Value::String(urn) => urn.eq_ignore_ascii_case(PATCH_OP_URN),
                _ => false,
            };
            if !names_patch {
                return Err(syntax(format!("schemas must include \"{PATCH_OP_URN}\"")));
            }
        }
        let operations = match field(object, "Operations") {
            Some(Value::Array(operations)) => operations,
            Some(_) => return Err(syntax("\"Operations\" must be a list of operations")),
            None => return Err(syntax("a PATCH body needs \"Operations\"")),
        };
        let operations = operations
            .iter()
            .enumerate()
            .map(|(index, operation)| parse_operation(index, operation))
            .collect::<Result<_, _>>()?;
        Ok(PatchRequest { operations })
    }
}

fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

fn syntax(message: impl Into<String>) -> Error {
    Error::scim(ScimType::InvalidSyntax, message)
}

fn parse_operation(index: usize, operation: &Value) -> Result<Operation, Error> {
    let Value::Object(object) = operation else {
        return Err(syntax(format!("Operations[{index}] must be an object")));
    };
    let op = match field(object, "op").and_then(Value::as_str) {
        Some(op) if op.eq_ignore_ascii_case("add") => Op::Add,
        Some(op) if op.eq_ignore_ascii_case("replace") => Op::Replace,
        Some(op) if op.eq_ignore_ascii_case("remove") => Op::Remove,
        Some(other) => {
            return Err(syntax(format!(
                "Operations[{index}].op \"{other}\" is not one of add, replace, remove"
            )))
        }
        None => {
            return Err(syntax(format!(
                "Operations[{index}] needs an \"op\": add, replace or remove"
            )))
        }
    };
    let path = match field(object, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(path)) if path.trim().is_empty() => None,
        Some(Value::String(path)) => Some(path.trim().to_string()),
        Some(_) => {
            return Err(Error::scim(
                ScimType::InvalidPath,
                format!("Operations[{index}].path must be a string"),
            ))
        }
    };
    let value = field(object, "value").cloned();
    if op != Op::Remove && value.is_none() {
        return Err(syntax(format!(
            "Operations[{index}] ({op:?}) needs a \"value\""
        )));
    }
    if op == Op::Remove && path.is_none() {
        return Err(Error::scim(
            ScimType::NoTarget,
            format!("Operations[{index}] (remove) needs a \"path\" naming what to remove"),
        ));
    }
    Ok(Operation { op, path, value })
}

/// Applies every operation to a copy of `resource` and returns it. `own_id` is the resource's
/// id: a pathless value may echo it (Okta does), and it is ignored.
pub fn apply(
    resource_type: &ResourceType,
    resource: &Attributes,
    request: &PatchRequest,
    own_id: &str,
) -> Result<Attributes, Error> {
    let mut patched = resource.clone();
    let patcher = Patcher {
        resource_type,
        own_id,
    };
    for operation in &request.operations {
        patcher.apply_operation(&mut patched, operation)?;
    }
    Ok(patched)
}

/// Whether a read-only target is an error (explicit `path`) or ignored (a key in a pathless
/// value: IDP-QUIRKS 9).
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReadOnlyTarget {
    Refuse,
    Ignore,
}

struct Patcher<'a> {
    resource_type: &'a ResourceType,
    own_id: &'a str,
}

impl Patcher<'_> {
    fn apply_operation(
        &self,
        resource: &mut Attributes,
        operation: &Operation,
    ) -> Result<(), Error> {
        let value = operation.value.as_ref();
        match &operation.path {
            Some(path) => {
                let path = PatchPath::parse(path)?;
                self.apply_path(resource, operation.op, &path, value, ReadOnlyTarget::Refuse)
            }
            None => {
                let Some(Value::Object(values)) = value else {
                    return Err(syntax(format!(
                        "a {:?} without a path takes an object of attributes as its value",
                        operation.op
                    )));
                };
                self.apply_pathless(resource, operation.op, values)
            }
        }
    }

    /// `{"op": "replace", "value": {"name.givenName": "A", "urn:…:User:employeeNumber": "7",
    /// "active": false}}`: each key is a path (IDP-QUIRKS 5).
    fn apply_pathless(
        &self,
        resource: &mut Attributes,
        op: Op,
        values: &Map<String, Value>,
    ) -> Result<(), Error> {
        for (key, value) in values {
            if key.eq_ignore_ascii_case("schemas") {
                continue;
            }
            if key.eq_ignore_ascii_case("id") {
                if value.as_str().is_some_and(|id| id != self.own_id) {
                    return Err(Error::scim(
                        ScimType::Mutability,
                        "id is read-only and differs from this resource's id",
                    ));
                }
                continue;
            }
            if let Some(schema) = self.resource_type.extension(key) {
                let Value::Object(extension_values) = value else {
                    return Err(Error::scim(
                        ScimType::InvalidValue,
                        format!(
                            "{} must be an object of that schema's attributes",
                            schema.id
                        ),
                    ));
                };
                for (name, value) in extension_values {
                    let path = PatchPath {
                        attr: AttrPath {
                            urn: Some(schema.id.to_string()),
                            name: name.clone(),
                            sub: None,
                        },
                        filter: None,
                        sub: None,
                    };
                    self.apply_path(resource, op, &path, Some(value), ReadOnlyTarget::Ignore)?;
                }
                continue;
            }
            // A key that is no path at all is unknown input, tolerated (IDP-QUIRKS 10).
            if let Ok(path) = PatchPath::parse(key) {
                self.apply_path(resource, op, &path, Some(value), ReadOnlyTarget::Ignore)?;
            }
        }
        Ok(())
    }

    fn apply_path(
        &self,
        resource: &mut Attributes,
        op: Op,
        path: &PatchPath,
        value: Option<&Value>,
        read_only: ReadOnlyTarget,
    ) -> Result<(), Error> {
        let urn = path.attr.urn.as_deref();
        if path.attr.name.is_empty() {
            return self.apply_whole_extension(resource, op, urn, value);
        }
        // Unknown attributes are tolerated: nothing to add, replace or remove (IDP-QUIRKS 10).
        let Some((schema, attribute)) = self.resource_type.attribute(urn, &path.attr.name) else {
            return Ok(());
        };
        let sub_name = path.sub.as_deref().or(path.attr.sub.as_deref());
        let sub = match sub_name {
            Some(name) => match attribute.sub_attribute(name) {
                Some(sub) => Some(sub),
                None => return Ok(()),
            },
            None => None,
        };
        let target = sub.unwrap_or(attribute);
        if attribute.mutability == Mutability::WriteOnly {
            // password: accepted and dropped, never stored (IDP-QUIRKS 17).
            return Ok(());
        }
        if !accepts_input(attribute) || !accepts_input(target) {
            return match read_only {
                ReadOnlyTarget::Ignore => Ok(()),
                ReadOnlyTarget::Refuse => Err(Error::scim(
                    ScimType::Mutability,
                    format!("{} is read-only", display_path(attribute, sub)),
                )),
            };
        }
        let container = container(resource, schema);
        let result = if attribute.multi_valued {
            apply_multi(container, op, attribute, path.filter.as_ref(), sub, value)
        } else {
            apply_single(container, op, attribute, path.filter.as_ref(), sub, value)
        };
        if let Some(schema) = schema {
            drop_if_empty(resource, schema.id);
        }
        result
    }

    /// A path that is an extension's URN alone: its whole object.
    fn apply_whole_extension(
        &self,
        resource: &mut Attributes,
        op: Op,
        urn: Option<&str>,
        value: Option<&Value>,
    ) -> Result<(), Error> {
        let Some(schema) = urn.and_then(|urn| self.resource_type.extension(urn)) else {
            return Ok(());
        };
        if op == Op::Remove {
            resource.remove(schema.id);
            return Ok(());
        }
        let mut wrapped = Map::new();
        wrapped.insert(schema.id.to_string(), value.cloned().unwrap_or(Value::Null));
        self.apply_pathless(resource, op, &wrapped)
    }
}

fn display_path(attribute: &Attribute, sub: Option<&Attribute>) -> String {
    match sub {
        Some(sub) => format!("{}.{}", attribute.name, sub.name),
        None => attribute.name.to_string(),
    }
}

/// The object an attribute lives in: the resource, or its extension's object.
fn container<'r>(
    resource: &'r mut Attributes,
    schema: Option<&Schema>,
) -> &'r mut Map<String, Value> {
    match schema {
        None => resource,
        Some(schema) => {
            let entry = resource
                .entry(schema.id)
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            entry.as_object_mut().expect("just made an object")
        }
    }
}

fn required_value(value: Option<&Value>) -> Result<&Value, Error> {
    value.ok_or_else(|| syntax("this operation needs a \"value\""))
}

fn apply_single(
    container: &mut Map<String, Value>,
    op: Op,
    attribute: &Attribute,
    filter: Option<&Filter>,
    sub: Option<&Attribute>,
    value: Option<&Value>,
) -> Result<(), Error> {
    if let Some(filter) = filter {
        let matches = container
            .get(attribute.name)
            .is_some_and(|current| filter.matches(current, &SubAttributeRules(attribute)));
        if !matches {
            return match op {
                Op::Remove => Ok(()),
                _ => Err(no_target(attribute, filter)),
            };
        }
    }
    match (op, sub) {
        (Op::Remove, None) => {
            container.remove(attribute.name);
        }
        (Op::Remove, Some(sub)) => {
            if let Some(Value::Object(object)) = container.get_mut(attribute.name) {
                object.remove(sub.name);
            }
            drop_if_empty(container, attribute.name);
        }
        (_, None) => {
            let normalized = normalize_value(attribute, required_value(value)?, attribute.name)?;
            match (normalized, container.get_mut(attribute.name)) {
                // Add and replace on a complex attribute set the sub-attributes given and keep
                // the others (RFC 7644 §3.5.2.1, §3.5.2.3); add on a simple one replaces
                // (IDP-QUIRKS 7).
                (Some(Value::Object(new)), Some(Value::Object(current))) => current.extend(new),
                (Some(new), _) => {
                    container.insert(attribute.name.to_string(), new);
                }
                // An empty value ("" or {"value": ""}) unassigns: Entra's manager removal
                // (IDP-QUIRKS 8).
                (None, _) => {
                    container.remove(attribute.name);
                }
            }
        }
        (_, Some(sub)) => {
            let path = display_path(attribute, Some(sub));
            let normalized = normalize_value(sub, required_value(value)?, &path)?;
            let entry = container
                .entry(attribute.name)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(object) = entry {
                match normalized {
                    Some(new) => {
                        object.insert(sub.name.to_string(), new);
                    }
                    None => {
                        object.remove(sub.name);
                    }
                }
            }
            drop_if_empty(container, attribute.name);
        }
    }
    Ok(())
}

fn apply_multi(
    container: &mut Map<String, Value>,
    op: Op,
    attribute: &Attribute,
    filter: Option<&Filter>,
    sub: Option<&Attribute>,
    value: Option<&Value>,
) -> Result<(), Error> {
    let mut items: Vec<Value> = match container.remove(attribute.name) {
        Some(Value::Array(items)) => items,
        Some(single) => vec![single],
        None => Vec::new(),
    };
    let rules = SubAttributeRules(attribute);
    match (op, filter, sub) {
        (Op::Remove, None, None) => match value {
            // {"op": "remove", "path": "members", "value": [{"value": "id"}]} removes only the
            // listed values, never all of them (IDP-QUIRKS 4).
            Some(listed) => {
                if let Some(Value::Array(listed)) =
                    normalize_value(attribute, listed, attribute.name)?
                {
                    items.retain(|item| !listed.iter().any(|gone| same_element(item, gone)));
                }
            }
            None => items.clear(),
        },
        (Op::Remove, filter, Some(sub)) => {
            for item in items
                .iter_mut()
                .filter(|item| filter.is_none_or(|f| f.matches(item, &rules)))
            {
                if let Some(object) = item.as_object_mut() {
                    object.remove(sub.name);
                }
            }
        }
        (Op::Remove, Some(filter), None) => items.retain(|item| !filter.matches(item, &rules)),
        (Op::Add, None, None) => {
            if let Some(Value::Array(added)) =
                normalize_value(attribute, required_value(value)?, attribute.name)?
            {
                for new in added {
                    match items.iter_mut().find(|item| same_element(item, &new)) {
                        Some(existing) => merge_element(existing, new),
                        None => items.push(new),
                    }
                }
            }
        }
        (Op::Replace, None, None) => {
            items = match normalize_value(attribute, required_value(value)?, attribute.name)? {
                Some(Value::Array(replacement)) => replacement,
                _ => Vec::new(),
            };
        }
        (_, filter, sub) => {
            let new = match sub {
                Some(sub) => {
                    let path = display_path(attribute, Some(sub));
                    let normalized = normalize_value(sub, required_value(value)?, &path)?;
                    let mut object = Map::new();
                    if let Some(normalized) = normalized {
                        object.insert(sub.name.to_string(), normalized);
                    }
                    Value::Object(object)
                }
                None => match normalize_value(attribute, required_value(value)?, attribute.name)? {
                    Some(Value::Array(mut values)) if values.len() == 1 => values.remove(0),
                    Some(_) => {
                        return Err(Error::scim(
                            ScimType::InvalidValue,
                            format!("a filtered {} path takes one value", attribute.name),
                        ))
                    }
                    None => Value::Object(Map::new()),
                },
            };
            let mut matched = false;
            for item in items
                .iter_mut()
                .filter(|item| filter.is_none_or(|f| f.matches(item, &rules)))
            {
                matched = true;
                match (sub, new.get(sub.map_or("", |s| s.name))) {
                    // A value that unassigns the sub-attribute removes it.
                    (Some(sub), None) => {
                        if let Some(object) = item.as_object_mut() {
                            object.remove(sub.name);
                        }
                    }
                    _ => merge_element(item, new.clone()),
                }
            }
            // emails[type eq "work"].value on a user with no work email creates one
            // (IDP-QUIRKS 6); a path without a filter addresses every element, so with none
            // there is one to create as well.
            if !matched {
                let mut created = match filter {
                    Some(filter) => {
                        element_from_filter(filter).ok_or_else(|| no_target(attribute, filter))?
                    }
                    None => Map::new(),
                };
                if let Value::Object(new) = new {
                    created.extend(new);
                }
                items.push(Value::Object(created));
            }
        }
    }
    // Normalising the whole list again drops emptied elements and duplicates and keeps one
    // primary (the last set).
    let items: Vec<Value> = items
        .into_iter()
        .filter(|item| item.as_object().is_none_or(|object| !object.is_empty()))
        .collect();
    if let Some(normalized) = normalize_value(attribute, &Value::Array(items), attribute.name)? {
        container.insert(attribute.name.to_string(), normalized);
    }
    Ok(())
}

/// Two elements of a multi-valued attribute are the same when their `value`s are equal (or,
/// for elements without `value`, when they are equal).
fn same_element(a: &Value, b: &Value) -> bool {
    match (a.get("value"), b.get("value")) {
        (Some(x), Some(y)) => x == y && (b.get("type").is_none() || a.get("type") == b.get("type")),
        _ => a == b,
    }
}

fn merge_element(existing: &mut Value, new: Value) {
    match (existing.as_object_mut(), new) {
        (Some(object), Value::Object(new)) => object.extend(new),
        (_, new) => *existing = new,
    }
}

/// The element a filter of equalities describes: `type eq "work"` → `{"type": "work"}`.
fn element_from_filter(filter: &Filter) -> Option<Map<String, Value>> {
    let mut element = Map::new();
    collect_equalities(filter, &mut element).then_some(element)
}

fn collect_equalities(filter: &Filter, element: &mut Map<String, Value>) -> bool {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value,
        } if path.sub.is_none() && path.urn.is_none() => {
            let value = match value {
                Literal::String(text) => Value::String(text.clone()),
                Literal::Number(number) => Value::Number(number.clone()),
                Literal::Bool(flag) => Value::Bool(*flag),
                Literal::Null => return false,
            };
            element.insert(path.name.clone(), value);
            true
        }
        Filter::And(left, right) => {
            collect_equalities(left, element) && collect_equalities(right, element)
        }
        _ => false,
    }
}

fn no_target(attribute: &Attribute, filter: &Filter) -> Error {
    Error::scim(
        ScimType::NoTarget,
        format!(
            "no {} matches [{filter}], and the filter does not describe one to create",
            attribute.name
        ),
    )
}

/// Case rules inside one attribute's elements: a value filter's paths name sub-attributes.
struct SubAttributeRules<'a>(&'a Attribute);

impl AttributeRules for SubAttributeRules<'_> {
    fn case_exact(&self, path: &AttrPath) -> bool {
        self.0
            .sub_attribute(&path.name)
            .is_some_and(|sub| sub.case_exact)
    }
}
