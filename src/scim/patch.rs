//! SCIM PATCH (RFC 7644 §3.5.2), applied to a resource in canonical form: JSON in, JSON out.
//! The operations of one request apply in order to a copy; the first error discards them all.

use serde_json::{Map, Value};

use super::filter::{AttrPath, AttributeRules, CompareOp, Filter, Literal, PatchPath};
use super::resource::{accepts_input, drop_if_empty, normalize_value, Attributes};
use super::schema::{Attribute, Kind, Mutability, ResourceType, Schema};
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
                // A null extension is unassigned, like a null attribute (RFC 7643 §2.5).
                if value.is_null() {
                    resource.remove(schema.id);
                    continue;
                }
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
        (_, None) => match required_value(value)? {
            // Add and replace on a complex attribute set the sub-attributes given — or unassign
            // those given empty — and keep the others (RFC 7644 §3.5.2.1, §3.5.2.3). An emptied
            // `value` unassigns the whole attribute: Entra removes a manager with
            // {"value": ""} (IDP-QUIRKS 8).
            Value::Object(given) if attribute.kind == Kind::Complex => {
                let mut object = match container.remove(attribute.name) {
                    Some(Value::Object(object)) => object,
                    _ => Map::new(),
                };
                for (key, sub_value) in given {
                    let Some(sub) = attribute
                        .sub_attribute(key)
                        .filter(|sub| accepts_input(sub))
                    else {
                        continue;
                    };
                    match normalize_value(sub, sub_value, &display_path(attribute, Some(sub)))? {
                        Some(normalized) => {
                            object.insert(sub.name.to_string(), normalized);
                        }
                        None if sub.name == "value" => {
                            object.clear();
                            break;
                        }
                        None => {
                            object.remove(sub.name);
                        }
                    }
                }
                if !object.is_empty() {
                    container.insert(attribute.name.to_string(), Value::Object(object));
                }
            }
            // A simple value, or a bare one standing for a complex attribute's `value` (a
            // manager id): it replaces (add on a single-valued attribute is a replace:
            // IDP-QUIRKS 7); an empty one unassigns.
            value => match normalize_value(attribute, value, attribute.name)? {
                Some(normalized) => {
                    container.insert(attribute.name.to_string(), normalized);
                }
                None => {
                    container.remove(attribute.name);
                }
            },
        },
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
    let primary_before: Vec<Value> = items
        .iter()
        .filter(|item| is_primary(item))
        .cloned()
        .collect();
    match (op, filter, sub) {
        (Op::Remove, None, None) => match value {
            // {"op": "remove", "path": "members", "value": [{"value": "id"}]} removes only the
            // listed values, never all of them (IDP-QUIRKS 4).
            Some(listed) => {
                if let Some(Value::Array(listed)) =
                    normalize_value(attribute, listed, attribute.name)?
                {
                    items.retain(|item| {
                        !listed
                            .iter()
                            .any(|gone| same_element(attribute, item, gone))
                    });
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
                    match items
                        .iter_mut()
                        .find(|item| same_element(attribute, item, &new))
                    {
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
            // A value that unassigns (`""`, null) on no element changes nothing.
            if !matched && new.as_object().is_some_and(|new| !new.is_empty()) {
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
    // The element this operation made primary stays primary; every other one is demoted
    // (RFC 7643 §2.4: at most one primary value).
    if let Some(promoted) = items
        .iter()
        .rposition(|item| is_primary(item) && !primary_before.contains(item))
    {
        for (index, item) in items.iter_mut().enumerate() {
            if index != promoted {
                if let Some(object) = item.as_object_mut() {
                    object.remove("primary");
                }
            }
        }
    }
    // Normalising the whole list again drops emptied elements and duplicates.
    let items: Vec<Value> = items
        .into_iter()
        .filter(|item| item.as_object().is_none_or(|object| !object.is_empty()))
        .collect();
    if let Some(normalized) = normalize_value(attribute, &Value::Array(items), attribute.name)? {
        container.insert(attribute.name.to_string(), normalized);
    }
    Ok(())
}

fn is_primary(item: &Value) -> bool {
    item.get("primary") == Some(&Value::Bool(true))
}

/// Two elements of a multi-valued attribute are the same when their `value`s are equal (or,
/// for elements without `value`, when they are equal).
/// `value`s compare as their attribute says: `emails.value` ignoring case, `members.value`
/// exactly.
fn same_element(attribute: &Attribute, a: &Value, b: &Value) -> bool {
    let case_exact = attribute
        .sub_attribute("value")
        .is_some_and(|value| value.case_exact);
    let same_value = |x: &Value, y: &Value| match (x, y) {
        (Value::String(x), Value::String(y)) if !case_exact => x.to_lowercase() == y.to_lowercase(),
        _ => x == y,
    };
    match (a.get("value"), b.get("value")) {
        (Some(x), Some(y)) => {
            same_value(x, y) && (b.get("type").is_none() || a.get("type") == b.get("type"))
        }
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

#[cfg(test)]
mod tests {
    use super::super::resource::normalize;
    use super::super::schema::{ENTERPRISE_USER_URN, GROUP_RESOURCE, USER_RESOURCE};
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// The id of the resource being patched, in every test.
    const OWN_ID: &str = "r-1";
    const DEPARTMENT: &str =
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department";
    const MANAGER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager";

    fn ada() -> Value {
        json!({
            "userName": "ada@acme.test",
            "active": true,
            "title": "Countess",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [
                {"value": "ada@acme.test", "type": "work", "primary": true},
                {"value": "ada@home.test", "type": "home"},
            ],
            ENTERPRISE_USER_URN: {"department": "Analytics", "employeeNumber": "1815"},
        })
    }

    fn grace() -> Value {
        json!({
            "userName": "grace@acme.test",
            "active": false,
            "emails": [{"value": "grace@acme.test"}],
            "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}],
            "addresses": [{"locality": "Arlington", "type": "home"}],
            "roles": [{"value": "Admiral", "primary": true}],
            ENTERPRISE_USER_URN: {"manager": {"value": "m-1", "$ref": "../Users/m-1"}},
        })
    }

    fn engineers() -> Value {
        json!({
            "displayName": "Engineers",
            "members": [{"value": "u-1"}, {"value": "u-2", "type": "User"}, {"value": "u-3"}],
        })
    }

    fn object(value: Value) -> Attributes {
        match value {
            Value::Object(object) => object,
            other => panic!("not an object: {other}"),
        }
    }

    fn request(operations: Value) -> PatchRequest {
        PatchRequest::parse(&json!({"schemas": [PATCH_OP_URN], "Operations": operations})).unwrap()
    }

    fn patched(
        resource_type: &ResourceType,
        resource: Value,
        operations: Value,
    ) -> Result<Value, Error> {
        apply(
            resource_type,
            &object(resource),
            &request(operations),
            OWN_ID,
        )
        .map(Value::Object)
    }

    fn patch_user(user: Value, operations: Value) -> Value {
        patched(&USER_RESOURCE, user, operations).unwrap()
    }

    fn patch_group(group: Value, operations: Value) -> Value {
        patched(&GROUP_RESOURCE, group, operations).unwrap()
    }

    fn user_error(user: Value, operations: Value) -> Option<ScimType> {
        patched(&USER_RESOURCE, user, operations)
            .unwrap_err()
            .scim_type()
    }

    fn parse_error(operations: Value) -> Option<ScimType> {
        PatchRequest::parse(&json!({"Operations": operations}))
            .unwrap_err()
            .scim_type()
    }

    /// `resource` with `changes` merged in at the top level; a null change removes the key.
    fn with(resource: Value, changes: Value) -> Value {
        let mut resource = object(resource);
        for (key, value) in object(changes) {
            match value {
                Value::Null => resource.remove(&key),
                value => resource.insert(key, value),
            };
        }
        Value::Object(resource)
    }

    #[test]
    fn the_test_resources_are_in_canonical_form() {
        for user in [ada(), grace()] {
            assert_eq!(
                Value::Object(normalize(&USER_RESOURCE, &user).unwrap()),
                user
            );
        }
        assert_eq!(
            Value::Object(normalize(&GROUP_RESOURCE, &engineers()).unwrap()),
            engineers()
        );
    }

    // --- Parsing ----------------------------------------------------------------------------

    #[test]
    fn keys_and_op_names_are_read_whatever_their_case() {
        let parsed = PatchRequest::parse(&json!({
            "SCHEMAS": [PATCH_OP_URN.to_uppercase()],
            "operations": [
                {"OP": "Add", "Path": " title ", "Value": "Dr"},
                {"op": "REPLACE", "path": "", "value": {"title": "Dr"}},
                {"op": "remove", "path": "title"},
            ],
        }))
        .unwrap();
        assert_eq!(
            parsed.operations,
            vec![
                Operation {
                    op: Op::Add,
                    path: Some("title".into()),
                    value: Some(json!("Dr"))
                },
                Operation {
                    op: Op::Replace,
                    path: None,
                    value: Some(json!({"title": "Dr"}))
                },
                Operation {
                    op: Op::Remove,
                    path: Some("title".into()),
                    value: None
                },
            ]
        );
    }

    #[test]
    fn a_body_without_operations_or_naming_another_schema_is_invalid_syntax() {
        for body in [
            json!([]),
            json!({}),
            json!({"Operations": {}}),
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "Operations": []}),
            json!({"Operations": ["add"]}),
        ] {
            let error = PatchRequest::parse(&body).unwrap_err();
            assert_eq!(error.scim_type(), Some(ScimType::InvalidSyntax), "{body}");
        }
    }

    #[test]
    fn an_unknown_op_is_invalid_syntax() {
        assert_eq!(
            parse_error(json!([{"op": "merge", "path": "title", "value": "Dr"}])),
            Some(ScimType::InvalidSyntax)
        );
        assert_eq!(
            parse_error(json!([{"path": "title", "value": "Dr"}])),
            Some(ScimType::InvalidSyntax)
        );
    }

    #[test]
    fn add_or_replace_without_a_value_is_invalid_syntax() {
        for op in ["add", "Replace"] {
            assert_eq!(
                parse_error(json!([{"op": op, "path": "title"}])),
                Some(ScimType::InvalidSyntax),
                "{op}"
            );
        }
    }

    #[test]
    fn remove_without_a_path_is_no_target() {
        for operation in [
            json!({"op": "remove"}),
            json!({"op": "Remove", "path": "  "}),
            json!({"op": "remove", "value": {"title": "Dr"}}),
        ] {
            assert_eq!(
                parse_error(json!([operation])),
                Some(ScimType::NoTarget),
                "{operation}"
            );
        }
    }

    #[test]
    fn a_path_that_is_not_a_string_is_an_invalid_path() {
        assert_eq!(
            parse_error(json!([{"op": "remove", "path": ["title"]}])),
            Some(ScimType::InvalidPath)
        );
    }

    #[test]
    fn a_malformed_path_is_an_invalid_path() {
        for path in [
            "emails[type eq",
            "emails[type eq \"work\"]value",
            "name.givenName.x",
            "userName+eq",
            "[title]",
        ] {
            assert_eq!(
                user_error(
                    ada(),
                    json!([{"op": "replace", "path": path, "value": "x"}])
                ),
                Some(ScimType::InvalidPath),
                "{path}"
            );
        }
    }

    // --- Simple attributes ------------------------------------------------------------------

    #[test]
    fn add_sets_a_missing_simple_attribute() {
        let user = patch_user(
            ada(),
            json!([{"op": "add", "path": "nickName", "value": "Ada"}]),
        );
        assert_eq!(user, with(ada(), json!({"nickName": "Ada"})));
    }

    #[test]
    fn replace_changes_a_simple_attribute() {
        let user = patch_user(
            ada(),
            json!([{"op": "replace", "path": "title", "value": "Analyst"}]),
        );
        assert_eq!(user, with(ada(), json!({"title": "Analyst"})));
    }

    #[test]
    fn remove_unassigns_a_simple_attribute() {
        let user = patch_user(ada(), json!([{"op": "remove", "path": "title"}]));
        assert_eq!(user, with(ada(), json!({"title": null})));
    }

    #[test]
    fn replace_with_null_or_an_empty_string_unassigns_a_simple_attribute() {
        for empty in [json!(null), json!(""), json!([])] {
            let user = patch_user(
                ada(),
                json!([{"op": "replace", "path": "title", "value": empty}]),
            );
            assert_eq!(user, with(ada(), json!({"title": null})), "{empty}");
        }
    }

    #[test]
    fn add_on_a_single_valued_attribute_replaces_it() {
        // Entra sends Add for active (IDP-QUIRKS 7).
        let user = patch_user(
            ada(),
            json!([
                {"op": "Add", "path": "active", "value": false},
                {"op": "Add", "path": "title", "value": "Analyst"},
            ]),
        );
        assert_eq!(
            user,
            with(ada(), json!({"active": false, "title": "Analyst"}))
        );
    }

    #[test]
    fn boolean_strings_become_booleans() {
        // Entra sends "False" and "True" (IDP-QUIRKS 1).
        let user = patch_user(
            ada(),
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        );
        assert_eq!(user["active"], json!(false));
        let user = patch_user(
            user,
            json!([{"op": "Replace", "value": {"active": "true"}}]),
        );
        assert_eq!(user["active"], json!(true));
        let user = patch_user(
            grace(),
            json!([{"op": "add", "path": "emails[value eq \"grace@acme.test\"].primary", "value": "True"}]),
        );
        assert_eq!(
            user["emails"],
            json!([{"value": "grace@acme.test", "primary": true}])
        );
    }

    #[test]
    fn a_number_for_a_string_attribute_is_taken_as_its_text() {
        let user = patch_user(
            ada(),
            json!([{"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": 7}]),
        );
        assert_eq!(user[ENTERPRISE_USER_URN]["employeeNumber"], json!("7"));
    }

    #[test]
    fn a_value_of_the_wrong_type_is_invalid_value() {
        for (path, value) in [
            ("active", json!(7)),
            ("active", json!("yes")),
            ("title", json!(true)),
            ("title", json!(["a", "b"])),
        ] {
            assert_eq!(
                user_error(
                    ada(),
                    json!([{"op": "replace", "path": path, "value": value}])
                ),
                Some(ScimType::InvalidValue),
                "{path} = {value}"
            );
        }
    }

    // --- Complex attributes -----------------------------------------------------------------

    #[test]
    fn add_of_a_sub_attribute_keeps_the_others() {
        let user = patch_user(
            ada(),
            json!([{"op": "add", "path": "name.middleName", "value": "King"}]),
        );
        assert_eq!(
            user["name"],
            json!({"givenName": "Ada", "familyName": "Lovelace", "middleName": "King"})
        );
    }

    #[test]
    fn add_of_a_sub_attribute_creates_its_complex_attribute() {
        let user = patch_user(
            grace(),
            json!([{"op": "add", "path": "name.givenName", "value": "Grace"}]),
        );
        assert_eq!(user["name"], json!({"givenName": "Grace"}));
    }

    #[test]
    fn replace_of_a_sub_attribute_keeps_the_others() {
        let user = patch_user(
            ada(),
            json!([{"op": "replace", "path": "name.givenName", "value": "Augusta"}]),
        );
        assert_eq!(
            user,
            with(
                ada(),
                json!({"name": {"givenName": "Augusta", "familyName": "Lovelace"}})
            )
        );
    }

    #[test]
    fn replace_of_a_complex_attribute_sets_the_given_sub_attributes_and_keeps_the_others() {
        // RFC 7644 §3.5.2.3: sub-attributes not given are left unchanged.
        let user = patch_user(
            ada(),
            json!([{"op": "replace", "path": "name", "value": {"givenName": "Augusta", "formatted": "Augusta Ada King"}}]),
        );
        assert_eq!(
            user["name"],
            json!({"givenName": "Augusta", "familyName": "Lovelace", "formatted": "Augusta Ada King"})
        );
    }

    #[test]
    fn an_empty_sub_attribute_in_a_complex_value_unassigns_only_that_sub_attribute() {
        // `name.givenName: ""` and `name: {givenName: ""}` say the same thing.
        let by_sub_path = patch_user(
            ada(),
            json!([{"op": "replace", "path": "name.givenName", "value": ""}]),
        );
        assert_eq!(by_sub_path["name"], json!({"familyName": "Lovelace"}));
        for value in [json!({"givenName": ""}), json!({"givenName": null})] {
            let by_object = patch_user(
                ada(),
                json!([{"op": "replace", "path": "name", "value": value}]),
            );
            assert_eq!(by_object, by_sub_path, "{value}");
        }
        let with_another = patch_user(
            ada(),
            json!([{"op": "replace", "path": "name", "value": {"givenName": "", "familyName": "King"}}]),
        );
        assert_eq!(with_another["name"], json!({"familyName": "King"}));
    }

    #[test]
    fn remove_of_a_sub_attribute_keeps_the_others() {
        let user = patch_user(ada(), json!([{"op": "remove", "path": "name.givenName"}]));
        assert_eq!(user["name"], json!({"familyName": "Lovelace"}));
    }

    #[test]
    fn remove_of_the_last_sub_attribute_removes_the_complex_attribute() {
        let user = patch_user(
            ada(),
            json!([
                {"op": "remove", "path": "name.givenName"},
                {"op": "remove", "path": "name.familyName"},
            ]),
        );
        assert_eq!(user, with(ada(), json!({"name": null})));
    }

    // --- Multi-valued attributes ------------------------------------------------------------

    #[test]
    fn add_appends_to_a_multi_valued_attribute() {
        let user = patch_user(
            ada(),
            json!([{"op": "add", "path": "emails", "value": [{"value": "ada@other.test", "type": "other"}]}]),
        );
        assert_eq!(
            user["emails"],
            json!([
                {"value": "ada@acme.test", "type": "work", "primary": true},
                {"value": "ada@home.test", "type": "home"},
                {"value": "ada@other.test", "type": "other"},
            ])
        );
    }

    #[test]
    fn add_of_an_existing_value_merges_into_it_instead_of_duplicating() {
        let user = patch_user(
            ada(),
            json!([{"op": "add", "path": "emails", "value": [{"value": "ada@home.test", "display": "Home"}]}]),
        );
        assert_eq!(
            user["emails"],
            json!([
                {"value": "ada@acme.test", "type": "work", "primary": true},
                {"value": "ada@home.test", "type": "home", "display": "Home"},
            ])
        );
    }

    #[test]
    fn replace_without_a_filter_replaces_every_element() {
        let user = patch_user(
            ada(),
            json!([{"op": "replace", "path": "emails", "value": [{"value": "ada@new.test", "type": "work"}]}]),
        );
        assert_eq!(
            user["emails"],
            json!([{"value": "ada@new.test", "type": "work"}])
        );
        let user = patch_user(
            ada(),
            json!([{"op": "replace", "path": "emails", "value": []}]),
        );
        assert_eq!(user, with(ada(), json!({"emails": null})));
    }

    #[test]
    fn remove_without_a_filter_removes_every_element() {
        let user = patch_user(ada(), json!([{"op": "remove", "path": "emails"}]));
        assert_eq!(user, with(ada(), json!({"emails": null})));
    }

    #[test]
    fn remove_with_a_value_filter_removes_only_the_matches() {
        let user = patch_user(
            ada(),
            json!([{"op": "remove", "path": "emails[type eq \"work\"]"}]),
        );
        assert_eq!(
            user["emails"],
            json!([{"value": "ada@home.test", "type": "home"}])
        );
        let unchanged = patch_user(
            ada(),
            json!([{"op": "remove", "path": "emails[type eq \"other\"]"}]),
        );
        assert_eq!(unchanged, ada());
    }

    #[test]
    fn remove_of_a_sub_attribute_through_a_value_filter_keeps_the_element() {
        let user = patch_user(
            ada(),
            json!([{"op": "remove", "path": "emails[type eq \"work\"].primary"}]),
        );
        assert_eq!(
            user["emails"],
            json!([
                {"value": "ada@acme.test", "type": "work"},
                {"value": "ada@home.test", "type": "home"},
            ])
        );
    }

    #[test]
    fn a_value_path_updates_the_matching_element() {
        let user = patch_user(
            ada(),
            json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "countess@acme.test"}]),
        );
        assert_eq!(
            user["emails"],
            json!([
                {"value": "countess@acme.test", "type": "work", "primary": true},
                {"value": "ada@home.test", "type": "home"},
            ])
        );
    }

    #[test]
    fn a_value_path_without_a_match_creates_the_element_its_filter_describes() {
        // IDP-QUIRKS 6.
        let user = patch_user(
            grace(),
            json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "grace@navy.test"}]),
        );
        assert_eq!(
            user["emails"],
            json!([
                {"value": "grace@acme.test"},
                {"type": "work", "value": "grace@navy.test"},
            ])
        );
        let user = patch_user(
            json!({"userName": "new@acme.test"}),
            json!([{"op": "add", "path": "emails[type eq \"work\"]", "value": {"value": "new@acme.test", "primary": true}}]),
        );
        assert_eq!(
            user["emails"],
            json!([{"type": "work", "value": "new@acme.test", "primary": true}])
        );
    }

    #[test]
    fn phone_numbers_and_addresses_get_the_element_their_value_path_describes() {
        let user = patch_user(
            grace(),
            json!([
                {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0199"},
                {"op": "Replace", "path": "phoneNumbers[type eq \"work\"].value", "value": "+1 555 0101"},
                {"op": "Replace", "path": "addresses[type eq \"work\"].streetAddress", "value": "1 Navy Way"},
                {"op": "Replace", "path": "addresses[type eq \"home\"].locality", "value": "Arlington, VA"},
            ]),
        );
        assert_eq!(
            user["phoneNumbers"],
            json!([
                {"value": "+1 555 0101", "type": "work"},
                {"type": "mobile", "value": "+1 555 0199"},
            ])
        );
        assert_eq!(
            user["addresses"],
            json!([
                {"locality": "Arlington, VA", "type": "home"},
                {"type": "work", "streetAddress": "1 Navy Way"},
            ])
        );
    }

    #[test]
    fn a_value_path_that_clears_a_missing_element_creates_nothing() {
        for empty in [json!(""), json!(null)] {
            let user = patch_user(
                ada(),
                json!([{"op": "replace", "path": "emails[type eq \"other\"].value", "value": empty}]),
            );
            assert_eq!(user, ada(), "{empty}");
        }
    }

    #[test]
    fn a_filter_that_describes_no_element_to_create_is_no_target() {
        assert_eq!(
            user_error(
                ada(),
                json!([{"op": "replace", "path": "emails[type eq \"other\" or type eq \"x\"].value", "value": "a@x.test"}])
            ),
            Some(ScimType::NoTarget)
        );
    }

    #[test]
    fn a_filtered_path_without_a_sub_attribute_takes_one_value() {
        assert_eq!(
            user_error(
                ada(),
                json!([{"op": "add", "path": "emails[type eq \"other\"]", "value": [{"value": "a@x.test"}, {"value": "b@x.test"}]}])
            ),
            Some(ScimType::InvalidValue)
        );
    }

    #[test]
    fn adding_a_new_primary_email_demotes_the_old_one() {
        let user = patch_user(
            ada(),
            json!([{"op": "add", "path": "emails", "value": [{"value": "ada@new.test", "type": "other", "primary": "True"}]}]),
        );
        assert_eq!(
            user["emails"],
            json!([
                {"value": "ada@acme.test", "type": "work"},
                {"value": "ada@home.test", "type": "home"},
                {"value": "ada@new.test", "type": "other", "primary": true},
            ])
        );
    }

    #[test]
    fn making_an_existing_email_primary_demotes_the_other_one() {
        // Ada's home address is primary; the work address comes first.
        let home_primary = patch_user(
            ada(),
            json!([{"op": "replace", "path": "emails", "value": [
                {"value": "ada@acme.test", "type": "work"},
                {"value": "ada@home.test", "type": "home", "primary": true},
            ]}]),
        );
        let expected = json!([
            {"value": "ada@acme.test", "type": "work", "primary": true},
            {"value": "ada@home.test", "type": "home"},
        ]);
        for operation in [
            json!({"op": "replace", "path": "emails[type eq \"work\"].primary", "value": true}),
            json!({"op": "add", "path": "emails", "value": [{"value": "ada@acme.test", "primary": true}]}),
        ] {
            let user = patch_user(home_primary.clone(), json!([operation]));
            assert_eq!(user["emails"], expected, "{operation}");
        }
    }

    // --- The enterprise extension -----------------------------------------------------------

    #[test]
    fn an_extension_attribute_is_added_replaced_and_removed_by_its_urn_path() {
        let user = patch_user(
            grace(),
            json!([{"op": "add", "path": DEPARTMENT, "value": "Navy"}]),
        );
        assert_eq!(user[ENTERPRISE_USER_URN]["department"], json!("Navy"));
        let user = patch_user(
            user,
            json!([{"op": "replace", "path": DEPARTMENT, "value": "Research"}]),
        );
        assert_eq!(user[ENTERPRISE_USER_URN]["department"], json!("Research"));
        let user = patch_user(user, json!([{"op": "remove", "path": DEPARTMENT}]));
        assert_eq!(user, grace());
    }

    #[test]
    fn an_extension_attribute_is_created_with_its_extension() {
        let user = patch_user(
            json!({"userName": "new@acme.test"}),
            json!([{"op": "add", "path": DEPARTMENT, "value": "Navy"}]),
        );
        assert_eq!(
            user,
            json!({"userName": "new@acme.test", ENTERPRISE_USER_URN: {"department": "Navy"}})
        );
    }

    #[test]
    fn removing_the_last_extension_attribute_removes_the_extension() {
        let user = patch_user(
            ada(),
            json!([
                {"op": "remove", "path": DEPARTMENT},
                {"op": "remove", "path": "employeeNumber"},
            ]),
        );
        assert_eq!(user, with(ada(), json!({ENTERPRISE_USER_URN: null})));
    }

    #[test]
    fn a_whole_extension_path_sets_the_given_attributes_and_keeps_the_others() {
        for op in ["add", "replace"] {
            let user = patch_user(
                ada(),
                json!([{"op": op, "path": ENTERPRISE_USER_URN, "value": {"department": "Engines", "costCenter": "CC-1", "shoeSize": 9}}]),
            );
            assert_eq!(
                user[ENTERPRISE_USER_URN],
                json!({"department": "Engines", "employeeNumber": "1815", "costCenter": "CC-1"}),
                "{op}"
            );
        }
    }

    #[test]
    fn a_whole_extension_path_removes_the_extension() {
        let user = patch_user(
            ada(),
            json!([{"op": "remove", "path": ENTERPRISE_USER_URN}]),
        );
        assert_eq!(user, with(ada(), json!({ENTERPRISE_USER_URN: null})));
    }

    #[test]
    fn a_whole_extension_path_takes_an_object() {
        assert_eq!(
            user_error(
                ada(),
                json!([{"op": "replace", "path": ENTERPRISE_USER_URN, "value": "Engines"}])
            ),
            Some(ScimType::InvalidValue)
        );
    }

    #[test]
    fn a_null_extension_is_unassigned_like_a_null_attribute() {
        // RFC 7643 §2.5: null is unassigned; PUT tolerates it too (IDP-QUIRKS 10).
        let expected = with(ada(), json!({ENTERPRISE_USER_URN: null}));
        let pathless = patched(
            &USER_RESOURCE,
            ada(),
            json!([{"op": "replace", "value": {ENTERPRISE_USER_URN: null}}]),
        );
        assert_eq!(pathless.ok(), Some(expected.clone()));
        let by_path = patched(
            &USER_RESOURCE,
            ada(),
            json!([{"op": "replace", "path": ENTERPRISE_USER_URN, "value": null}]),
        );
        assert_eq!(by_path.ok(), Some(expected));
    }

    // --- Pathless operations ----------------------------------------------------------------

    #[test]
    fn pathless_dotted_and_urn_keys_are_paths_never_literal_names() {
        // IDP-QUIRKS 5.
        for op in ["replace", "add"] {
            let user = patch_user(
                ada(),
                json!([{"op": op, "value": {
                    "name.givenName": "Augusta",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "7",
                    "active": false,
                }}]),
            );
            assert_eq!(
                user,
                with(
                    ada(),
                    json!({
                        "active": false,
                        "name": {"givenName": "Augusta", "familyName": "Lovelace"},
                        ENTERPRISE_USER_URN: {"department": "Analytics", "employeeNumber": "7"},
                    })
                ),
                "{op}"
            );
        }
    }

    #[test]
    fn a_pathless_value_may_name_core_attributes_by_their_full_urn() {
        let user = patch_user(
            ada(),
            json!([{"op": "replace", "value": {"urn:ietf:params:scim:schemas:core:2.0:User:title": "Analyst"}}]),
        );
        assert_eq!(user, with(ada(), json!({"title": "Analyst"})));
    }

    #[test]
    fn a_pathless_extension_object_sets_its_attributes_and_keeps_the_others() {
        let user = patch_user(
            ada(),
            json!([{"op": "replace", "value": {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {"Department": "Engines"},
            }}]),
        );
        assert_eq!(
            user[ENTERPRISE_USER_URN],
            json!({"department": "Engines", "employeeNumber": "1815"})
        );
    }

    #[test]
    fn a_pathless_value_must_be_an_object() {
        for value in [json!("Dr"), json!(null), json!([{"title": "Dr"}])] {
            assert_eq!(
                user_error(ada(), json!([{"op": "replace", "value": value}])),
                Some(ScimType::InvalidSyntax),
                "{value}"
            );
        }
    }

    #[test]
    fn a_pathless_value_may_echo_the_own_id() {
        // Okta sends the group's own id with every membership change (IDP-QUIRKS 9).
        let group = patch_group(
            engineers(),
            json!([{"op": "replace", "value": {"id": OWN_ID, "displayName": "Engine Makers"}}]),
        );
        assert_eq!(
            group,
            with(engineers(), json!({"displayName": "Engine Makers"}))
        );
    }

    #[test]
    fn a_pathless_id_that_differs_from_the_own_is_a_mutability_error() {
        let error = patched(
            &GROUP_RESOURCE,
            engineers(),
            json!([{"op": "replace", "value": {"id": "someone-else", "displayName": "Engine Makers"}}]),
        )
        .unwrap_err();
        assert_eq!(error.scim_type(), Some(ScimType::Mutability));
    }

    #[test]
    fn read_only_keys_in_a_pathless_value_are_ignored() {
        let user = patch_user(
            ada(),
            json!([{"op": "replace", "value": {
                "meta": {"created": "2020-01-01T00:00:00Z"},
                "groups": [{"value": "g-1"}],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"displayName": "Babbage"}},
                "title": "Analyst",
            }}]),
        );
        assert_eq!(user, with(ada(), json!({"title": "Analyst"})));
    }

    #[test]
    fn unknown_and_malformed_keys_in_a_pathless_value_are_ignored() {
        let user = patch_user(
            ada(),
            json!([{"op": "add", "value": {
                "shoeSize": 44,
                "name.middleInitial": "K",
                "urn:example:params:scim:schemas:extension:acme:2.0:User": {"badge": "7"},
                "emails[type eq": "x",
                "title": "Analyst",
            }}]),
        );
        assert_eq!(user, with(ada(), json!({"title": "Analyst"})));
    }

    // --- Group members ----------------------------------------------------------------------

    #[test]
    fn remove_of_members_with_a_value_list_removes_only_those() {
        // Emptying the group here is a known bug in other servers (IDP-QUIRKS 4).
        let group = patch_group(
            engineers(),
            json!([{"op": "Remove", "path": "members", "value": [{"value": "u-1"}, {"value": "u-2"}, {"value": "nobody"}]}]),
        );
        assert_eq!(
            group,
            with(engineers(), json!({"members": [{"value": "u-3"}]}))
        );
        let group = patch_group(
            engineers(),
            json!([{"op": "remove", "path": "members", "value": ["u-3"]}]),
        );
        assert_eq!(
            group["members"],
            json!([{"value": "u-1"}, {"value": "u-2", "type": "User"}])
        );
    }

    #[test]
    fn remove_of_members_by_value_filter_removes_that_member() {
        let group = patch_group(
            engineers(),
            json!([{"op": "remove", "path": "members[value eq \"u-2\"]"}]),
        );
        assert_eq!(
            group["members"],
            json!([{"value": "u-1"}, {"value": "u-3"}])
        );
    }

    #[test]
    fn member_ids_are_matched_case_exactly() {
        let group = patch_group(
            engineers(),
            json!([{"op": "remove", "path": "members[value eq \"U-1\"]"}]),
        );
        assert_eq!(group, engineers());
    }

    #[test]
    fn add_of_members_appends_the_new_ones_once() {
        let group = patch_group(
            engineers(),
            json!([{"op": "add", "path": "members", "value": [{"value": "u-1"}, {"value": "u-4", "display": "Dora"}, "u-5"]}]),
        );
        assert_eq!(
            group["members"],
            json!([
                {"value": "u-1"}, {"value": "u-2", "type": "User"}, {"value": "u-3"},
                {"value": "u-4"}, {"value": "u-5"},
            ])
        );
    }

    #[test]
    fn replace_of_members_sets_exactly_the_given_ones() {
        let group = patch_group(
            engineers(),
            json!([{"op": "replace", "path": "members", "value": [{"value": "u-9"}]}]),
        );
        assert_eq!(
            group,
            with(engineers(), json!({"members": [{"value": "u-9"}]}))
        );
        let group = patch_group(
            engineers(),
            json!([{"op": "replace", "path": "members", "value": []}]),
        );
        assert_eq!(group, json!({"displayName": "Engineers"}));
    }

    #[test]
    fn okta_membership_changes_apply_together() {
        let group = patch_group(
            engineers(),
            json!([
                {"op": "remove", "path": "members[value eq \"u-1\"]"},
                {"op": "add", "path": "members", "value": [{"value": "u-4", "display": "Dora"}]},
                {"op": "replace", "value": {"id": OWN_ID, "displayName": "Engineers"}},
            ]),
        );
        assert_eq!(
            group["members"],
            json!([{"value": "u-2", "type": "User"}, {"value": "u-3"}, {"value": "u-4"}])
        );
    }

    // --- Case -------------------------------------------------------------------------------

    #[test]
    fn op_and_attribute_names_are_case_insensitive() {
        // IDP-QUIRKS 2.
        let user = patch_user(
            ada(),
            json!([
                {"op": "Replace", "path": "name.FamilyName", "value": "King"},
                {"op": "REPLACE", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:Department", "value": "Engines"},
                {"op": "Add", "path": "Title", "value": "Analyst"},
                {"op": "replace", "path": "EMAILS[TYPE eq \"Work\"].VALUE", "value": "countess@acme.test"},
                {"op": "Remove", "path": "EmployeeNumber"},
            ]),
        );
        assert_eq!(
            user,
            with(
                ada(),
                json!({
                    "title": "Analyst",
                    "name": {"givenName": "Ada", "familyName": "King"},
                    "emails": [
                        {"value": "countess@acme.test", "type": "work", "primary": true},
                        {"value": "ada@home.test", "type": "home"},
                    ],
                    ENTERPRISE_USER_URN: {"department": "Engines"},
                })
            )
        );
    }

    // --- Manager ----------------------------------------------------------------------------

    #[test]
    fn manager_is_set_from_each_of_its_three_shapes_at_either_path() {
        // IDP-QUIRKS 8.
        for path in ["manager", MANAGER] {
            for (value, expected) in [
                (json!("m-2"), json!({"value": "m-2"})),
                (json!({"value": "m-2"}), json!({"value": "m-2"})),
                (
                    json!([{"$ref": "../Users/m-2", "value": "m-2"}]),
                    json!({"value": "m-2", "$ref": "../Users/m-2"}),
                ),
            ] {
                let user = patch_user(ada(), json!([{"op": "add", "path": path, "value": value}]));
                assert_eq!(
                    user[ENTERPRISE_USER_URN]["manager"], expected,
                    "{path} = {value}"
                );
            }
        }
    }

    #[test]
    fn manager_is_removed_by_remove_and_by_a_replace_with_an_empty_value() {
        let managed = with(
            ada(),
            json!({ENTERPRISE_USER_URN: {"department": "Analytics", "manager": {"value": "m-1"}}}),
        );
        for operation in [
            json!({"op": "remove", "path": "manager"}),
            json!({"op": "Remove", "path": MANAGER}),
            json!({"op": "Replace", "path": MANAGER, "value": {"value": ""}}),
            json!({"op": "replace", "path": "manager", "value": ""}),
            json!({"op": "replace", "value": {MANAGER: {"value": ""}}}),
        ] {
            let user = patch_user(managed.clone(), json!([operation]));
            assert_eq!(
                user[ENTERPRISE_USER_URN],
                json!({"department": "Analytics"}),
                "{operation}"
            );
        }
        let only_manager = patch_user(
            grace(),
            json!([{"op": "Replace", "path": MANAGER, "value": {"value": ""}}]),
        );
        assert_eq!(
            only_manager,
            with(grace(), json!({ENTERPRISE_USER_URN: null}))
        );
    }

    // --- Read-only, write-only and unknown targets ------------------------------------------

    #[test]
    fn an_explicit_path_to_a_read_only_attribute_is_a_mutability_error() {
        for (op, path, value) in [
            ("replace", "meta.created", json!("2020-01-01T00:00:00Z")),
            (
                "replace",
                "meta",
                json!({"created": "2020-01-01T00:00:00Z"}),
            ),
            ("add", "groups", json!([{"value": "g-1"}])),
            ("remove", "groups", json!(null)),
            ("replace", "id", json!(OWN_ID)),
            ("remove", "id", json!(null)),
            (
                "replace",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName",
                json!("Babbage"),
            ),
        ] {
            assert_eq!(
                user_error(ada(), json!([{"op": op, "path": path, "value": value}])),
                Some(ScimType::Mutability),
                "{op} {path}"
            );
        }
        assert_eq!(
            patched(
                &GROUP_RESOURCE,
                engineers(),
                json!([{"op": "replace", "path": "members[value eq \"u-1\"].display", "value": "Ann"}])
            )
            .unwrap_err()
            .scim_type(),
            Some(ScimType::Mutability)
        );
    }

    #[test]
    fn a_password_is_accepted_and_never_stored() {
        // Okta sends passwords (IDP-QUIRKS 17).
        let user = patch_user(
            ada(),
            json!([
                {"op": "replace", "path": "password", "value": "hunter2"},
                {"op": "add", "value": {"password": "hunter3"}},
                {"op": "remove", "path": "password"},
            ]),
        );
        assert_eq!(user, ada());
    }

    #[test]
    fn unknown_attributes_are_no_ops() {
        // IDP-QUIRKS 10.
        for path in [
            "shoeSize",
            "name.middleInitial",
            "emails[type eq \"work\"].label",
            "urn:example:params:scim:schemas:extension:acme:2.0:User:badge",
            "urn:example:params:scim:schemas:extension:acme:2.0:User",
        ] {
            for op in ["add", "replace", "remove"] {
                let user = patch_user(
                    ada(),
                    json!([{"op": op, "path": path, "value": {"value": "x"}}]),
                );
                assert_eq!(user, ada(), "{op} {path}");
            }
        }
    }

    #[test]
    fn a_failing_operation_discards_the_ones_before_it() {
        let before = object(ada());
        let request = request(json!([
            {"op": "replace", "path": "title", "value": "Analyst"},
            {"op": "replace", "path": "id", "value": "someone-else"},
        ]));
        let error = apply(&USER_RESOURCE, &before, &request, OWN_ID).unwrap_err();
        assert_eq!(error.scim_type(), Some(ScimType::Mutability));
        assert_eq!(Value::Object(before), ada());
    }

    // --- Properties -------------------------------------------------------------------------

    const OPS: &[&str] = &[
        "add", "Add", "ADD", "replace", "Replace", "REPLACE", "remove", "Remove", "rEmOvE",
    ];

    /// Realistic paths, for users and groups alike: on the other type they are unknown.
    const PATHS: &[&str] = &[
        "title",
        "TITLE",
        "active",
        "displayName",
        "name",
        "name.givenName",
        "name.FamilyName",
        "emails",
        "emails[type eq \"work\"]",
        "emails[type eq \"work\"].value",
        "Emails[Value eq \"a@x.test\"].Primary",
        "emails[type eq \"home\" or primary eq true].display",
        "emails.type",
        "phoneNumbers[type eq \"mobile\"].value",
        "addresses[type eq \"work\"].locality",
        "roles",
        "members",
        "members[value eq \"u-1\"]",
        DEPARTMENT,
        MANAGER,
        "manager.value",
        ENTERPRISE_USER_URN,
        "shoeSize",
        "name.nickname",
        "groups",
        "password",
        "meta.created",
    ];

    /// Keys of pathless values.
    const KEYS: &[&str] = &[
        "title",
        "Title",
        "active",
        "displayName",
        "name",
        "name.givenName",
        "emails",
        "emails[type eq \"work\"].value",
        "members",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
        ENTERPRISE_USER_URN,
        "id",
        "meta",
        "groups",
        "password",
        "shoeSize",
        "schemas",
    ];

    fn arb_scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            prop::sample::select(vec![
                "True",
                "False",
                "true",
                "",
                "x",
                "a@x.test",
                "b@x.test",
                "work",
                "Work",
                "u-1",
                "u-4",
                "m-1",
                "[\"r\"]",
                "{\"value\":\"j\"}",
            ])
            .prop_map(Value::from),
            (-2i64..100).prop_map(Value::from),
            Just(json!(1.5)),
        ]
    }

    /// `{"value": …, "type": …, "primary": …}`, each part optional.
    fn arb_element() -> impl Strategy<Value = Value> {
        let primary = prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            Just(json!("True")),
            Just(json!("False")),
        ];
        (
            prop::option::of(prop::sample::select(vec![
                "a@x.test", "b@x.test", "u-1", "u-4", "",
            ])),
            prop::option::of(prop::sample::select(vec![
                "work", "home", "Work", "mobile", "",
            ])),
            prop::option::of(primary),
        )
            .prop_map(|(value, kind, primary)| {
                let mut element = Map::new();
                if let Some(value) = value {
                    element.insert("value".into(), value.into());
                }
                if let Some(kind) = kind {
                    element.insert("type".into(), kind.into());
                }
                if let Some(primary) = primary {
                    element.insert("primary".into(), primary);
                }
                Value::Object(element)
            })
    }

    /// An object of enterprise attributes, or of a complex attribute's sub-attributes.
    fn arb_attributes_object() -> impl Strategy<Value = Value> {
        let names = prop::sample::select(vec![
            "department",
            "Department",
            "manager",
            "costCenter",
            "givenName",
            "familyName",
            "badge",
        ]);
        prop::collection::vec((names, prop_oneof![arb_scalar(), arb_element()]), 0..3).prop_map(
            |entries| {
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(name, value)| (name.to_string(), value))
                        .collect(),
                )
            },
        )
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            4 => arb_scalar(),
            3 => arb_element(),
            1 => arb_attributes_object(),
            3 => prop::collection::vec(prop_oneof![3 => arb_element(), 1 => arb_scalar()], 0..4)
                .prop_map(Value::Array),
        ]
    }

    fn arb_pathless_value() -> impl Strategy<Value = Value> {
        prop::collection::vec((prop::sample::select(KEYS.to_vec()), arb_value()), 0..4).prop_map(
            |entries| {
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(key, value)| (key.to_string(), value))
                        .collect(),
                )
            },
        )
    }

    /// One operation as an IdP would send it. Remove always has a path, add and replace always
    /// a value, so every generated request parses.
    fn arb_operation() -> impl Strategy<Value = Value> {
        (
            prop::sample::select(OPS.to_vec()),
            prop::option::weighted(0.8, prop::sample::select(PATHS.to_vec())),
            arb_value(),
            arb_pathless_value(),
            any::<bool>(),
        )
            .prop_map(|(op, path, value, pathless, remove_with_value)| {
                let removes = op.eq_ignore_ascii_case("remove");
                match path {
                    Some(path) if removes && !remove_with_value => {
                        json!({"op": op, "path": path})
                    }
                    Some(path) => json!({"op": op, "path": path, "value": value}),
                    None if removes => json!({"op": "replace", "value": pathless}),
                    None => json!({"op": op, "value": pathless}),
                }
            })
    }

    fn arb_resource() -> impl Strategy<Value = (&'static ResourceType, Value)> {
        prop_oneof![
            Just((&USER_RESOURCE, ada())),
            Just((&USER_RESOURCE, grace())),
            Just((
                &USER_RESOURCE,
                json!({"userName": "min@acme.test", "active": true})
            )),
            Just((&GROUP_RESOURCE, engineers())),
            Just((&GROUP_RESOURCE, json!({"displayName": "Empty"}))),
        ]
    }

    fn arb_request() -> impl Strategy<Value = PatchRequest> {
        prop::collection::vec(arb_operation(), 1..8)
            .prop_map(|operations| request(Value::Array(operations)))
    }

    /// A value as `title` stores it, or `Err` when `title` refuses it.
    fn as_title(value: &Value) -> Result<Option<Value>, ()> {
        match value {
            Value::Null => Ok(None),
            Value::String(text) if text.is_empty() => Ok(None),
            Value::String(_) => Ok(Some(value.clone())),
            Value::Number(number) => Ok(Some(Value::String(number.to_string()))),
            Value::Array(items) if items.is_empty() => Ok(None),
            Value::Array(items) if items.len() == 1 => as_title(&items[0]),
            _ => Err(()),
        }
    }

    /// (op, path or None for pathless, value) on `title` alone.
    fn arb_title_operation() -> impl Strategy<Value = (&'static str, Option<&'static str>, Value)> {
        let path = prop::option::weighted(
            0.8,
            prop::sample::select(vec![
                "title",
                "Title",
                "TITLE",
                "urn:ietf:params:scim:schemas:core:2.0:User:title",
            ]),
        );
        let scalar = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            prop::sample::select(vec!["", "Dr", "Countess", "True", "[\"x\"]", " "])
                .prop_map(Value::from),
            (-2i64..100).prop_map(Value::from),
        ];
        let value = prop_oneof![
            3 => scalar.clone(),
            1 => prop::collection::vec(scalar, 0..3).prop_map(Value::Array),
        ];
        (prop::sample::select(OPS.to_vec()), path, value).prop_map(|(op, path, value)| match path {
            None if op.eq_ignore_ascii_case("remove") => ("replace", None, value),
            path => (op, path, value),
        })
    }

    proptest! {
        // About half the generated requests succeed and a third of those change something:
        // more cases, so that enough changed resources are checked.
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn a_successful_patch_leaves_the_resource_in_canonical_form(
            (resource_type, resource) in arb_resource(),
            request in arb_request(),
        ) {
            if let Ok(patched) = apply(resource_type, &object(resource), &request, OWN_ID) {
                let renormalized = normalize(resource_type, &Value::Object(patched.clone()));
                prop_assert_eq!(renormalized.ok(), Some(patched));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn any_request_gets_an_answer_not_a_panic(
            (resource_type, resource) in arb_resource(),
            request in arb_request(),
        ) {
            let _ = apply(resource_type, &object(resource), &request, OWN_ID);
        }

        #[test]
        fn the_same_patch_gives_the_same_result(
            (resource_type, resource) in arb_resource(),
            request in arb_request(),
        ) {
            let resource = object(resource);
            let first = apply(resource_type, &resource, &request, OWN_ID);
            let second = apply(resource_type, &resource, &request, OWN_ID);
            match (first, second) {
                (Ok(first), Ok(second)) => prop_assert_eq!(first, second),
                (Err(first), Err(second)) => {
                    prop_assert_eq!(first.scim_type(), second.scim_type());
                    prop_assert_eq!(first.to_string(), second.to_string());
                }
                (first, second) => prop_assert!(false, "{first:?} then {second:?}"),
            }
        }

        #[test]
        fn operations_on_title_leave_the_last_value_set_or_none_after_a_remove(
            operations in prop::collection::vec(arb_title_operation(), 1..8),
        ) {
            let mut expected = Ok(ada().get("title").cloned());
            let mut body = Vec::new();
            for (op, path, value) in operations {
                // Once one operation fails the request fails, whatever follows.
                expected = expected.and_then(|_| {
                    if op.eq_ignore_ascii_case("remove") {
                        Ok(None)
                    } else {
                        as_title(&value)
                    }
                });
                body.push(match path {
                    Some(path) => json!({"op": op, "path": path, "value": value}),
                    None => json!({"op": op, "value": {"title": value}}),
                });
            }
            let result = apply(&USER_RESOURCE, &object(ada()), &request(Value::Array(body)), OWN_ID);
            match (result, expected) {
                (Ok(mut patched), Ok(title)) => {
                    prop_assert_eq!(patched.remove("title"), title);
                    let mut untouched = object(ada());
                    untouched.remove("title");
                    prop_assert_eq!(patched, untouched);
                }
                (Err(error), Err(_)) => {
                    prop_assert_eq!(error.scim_type(), Some(ScimType::InvalidValue));
                }
                (result, expected) => {
                    prop_assert!(false, "got {result:?}, expected {expected:?}");
                }
            }
        }
    }
}
