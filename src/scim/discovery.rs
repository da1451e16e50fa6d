//! The discovery resources (RFC 7644 §4, RFC 7643 §5–7): `/ServiceProviderConfig`,
//! `/ResourceTypes` and `/Schemas`, rendered from the same definitions that validate and
//! project resources, so what is advertised is what round-trips.

use serde_json::{json, Map, Value};

use super::schema::{
    Attribute, Mutability, ResourceType, Returned, Schema, Uniqueness, GROUP_RESOURCE,
    RESOURCE_TYPE_SCHEMA, RESOURCE_TYPE_URN, SCHEMA_SCHEMA, SCHEMA_URN,
    SERVICE_PROVIDER_CONFIG_SCHEMA, SERVICE_PROVIDER_CONFIG_URN, USER_RESOURCE,
};

/// The resource types this server serves.
pub const RESOURCE_TYPES: &[&ResourceType] = &[&USER_RESOURCE, &GROUP_RESOURCE];

/// The schemas of the discovery resources themselves (RFC 7643 §7, §8.7.2).
const META_SCHEMAS: &[&Schema] = &[
    &SERVICE_PROVIDER_CONFIG_SCHEMA,
    &RESOURCE_TYPE_SCHEMA,
    &SCHEMA_SCHEMA,
];

/// What the server supports, as RFC 7643 §5 describes it. `maxResults` and the page sizes are
/// the list limits the endpoints enforce.
pub fn service_provider_config(
    base: &str,
    default_page_size: u64,
    max_page_size: u64,
    max_bulk_operations: usize,
    max_payload_bytes: usize,
) -> Value {
    json!({
        "schemas": [SERVICE_PROVIDER_CONFIG_URN],
        "patch": {"supported": true},
        // Each operation runs in its own transaction, in request order except that an
        // operation waits for the POSTs whose bulkIds it names.
        "bulk": {
            "supported": true,
            "maxOperations": max_bulk_operations,
            "maxPayloadSize": max_payload_bytes,
        },
        "filter": {"supported": true, "maxResults": max_page_size},
        // The password is accepted and dropped, never stored: nothing to change.
        "changePassword": {"supported": false},
        // Any attribute; by the database for id, userName/displayName, externalId and meta
        // dates of an unfiltered list, otherwise over at most 20,000 matches (domain::MAX_SORTED).
        "sort": {"supported": true},
        "etag": {"supported": true},
        // RFC 9865. Cursors are positions in creation order: they never expire, and a page
        // costs the same at the end of a million users as at the start.
        "pagination": {
            "cursor": true,
            "index": true,
            "defaultPaginationMethod": "index",
            "defaultPageSize": default_page_size,
            "maxPageSize": max_page_size,
        },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "The SCIM connection's token, sent as `Authorization: Bearer <token>`.",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    })
}

pub fn resource_type(resource_type: &ResourceType, base: &str) -> Value {
    let extensions: Vec<Value> = resource_type
        .extensions
        .iter()
        .map(|schema| json!({"schema": schema.id, "required": false}))
        .collect();
    json!({
        "schemas": [RESOURCE_TYPE_URN],
        "id": resource_type.name,
        "name": resource_type.name,
        "endpoint": resource_type.endpoint,
        "description": resource_type.description,
        "schema": resource_type.core.id,
        "schemaExtensions": extensions,
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{base}/ResourceTypes/{}", resource_type.name),
        },
    })
}

/// The schemas of the served resource types, core first, then those of the discovery resources.
pub fn schemas() -> Vec<&'static Schema> {
    RESOURCE_TYPES
        .iter()
        .flat_map(|resource_type| {
            std::iter::once(resource_type.core).chain(resource_type.extensions.iter().copied())
        })
        .chain(META_SCHEMAS.iter().copied())
        .collect()
}

pub fn schema(schema: &Schema, base: &str) -> Value {
    json!({
        "schemas": [SCHEMA_URN],
        "id": schema.id,
        "name": schema.name,
        "description": schema.description,
        "attributes": schema.attributes.iter().map(attribute).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "Schema",
            "location": format!("{base}/Schemas/{}", schema.id),
        },
    })
}

fn attribute(attribute: &Attribute) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(attribute.name));
    out.insert("type".into(), json!(attribute.kind.as_str()));
    out.insert("multiValued".into(), json!(attribute.multi_valued));
    out.insert("description".into(), json!(attribute.description));
    out.insert("required".into(), json!(attribute.required));
    if !attribute.canonical_values.is_empty() {
        out.insert("canonicalValues".into(), json!(attribute.canonical_values));
    }
    out.insert("caseExact".into(), json!(attribute.case_exact));
    out.insert("mutability".into(), json!(mutability(attribute.mutability)));
    out.insert("returned".into(), json!(returned(attribute.returned)));
    out.insert("uniqueness".into(), json!(uniqueness(attribute.uniqueness)));
    if !attribute.reference_types.is_empty() {
        out.insert("referenceTypes".into(), json!(attribute.reference_types));
    }
    if !attribute.sub_attributes.is_empty() {
        out.insert(
            "subAttributes".into(),
            Value::Array(
                attribute
                    .sub_attributes
                    .iter()
                    .map(self::attribute)
                    .collect(),
            ),
        );
    }
    Value::Object(out)
}

fn mutability(mutability: Mutability) -> &'static str {
    match mutability {
        Mutability::ReadOnly => "readOnly",
        Mutability::ReadWrite => "readWrite",
        Mutability::Immutable => "immutable",
        Mutability::WriteOnly => "writeOnly",
    }
}

fn returned(returned: Returned) -> &'static str {
    match returned {
        Returned::Always => "always",
        Returned::Never => "never",
        Returned::Default => "default",
        Returned::Request => "request",
    }
}

fn uniqueness(uniqueness: Uniqueness) -> &'static str {
    match uniqueness {
        Uniqueness::None => "none",
        Uniqueness::Server => "server",
        Uniqueness::Global => "global",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_schema_advertises_each_attribute_with_its_characteristics() {
        let user = schema(USER_RESOURCE.core, "http://x/scim/v2");
        let attributes = user["attributes"].as_array().unwrap();
        let user_name = attributes.iter().find(|a| a["name"] == "userName").unwrap();
        assert_eq!(user_name["required"], true);
        assert_eq!(user_name["uniqueness"], "server");
        assert_eq!(user_name["caseExact"], false);
        let password = attributes.iter().find(|a| a["name"] == "password").unwrap();
        assert_eq!(password["mutability"], "writeOnly");
        assert_eq!(password["returned"], "never");
        let emails = attributes.iter().find(|a| a["name"] == "emails").unwrap();
        assert_eq!(emails["multiValued"], true);
        assert_eq!(emails["subAttributes"].as_array().unwrap().len(), 4);
        assert_eq!(
            user["meta"]["location"],
            format!("http://x/scim/v2/Schemas/{}", USER_RESOURCE.core.id)
        );
    }

    /// The keys of `document` that `attributes` (rendered attribute definitions) do not
    /// describe, followed into the elements of complex values.
    fn undescribed(document: &Value, attributes: &Value, at: &str) -> Vec<String> {
        let mut found = Vec::new();
        let Some(object) = document.as_object() else {
            return found;
        };
        for (key, value) in object {
            let described = attributes
                .as_array()
                .unwrap()
                .iter()
                .find(|attribute| attribute["name"] == key.as_str());
            match described {
                None => found.push(format!("{at}{key}")),
                Some(attribute) if attribute["type"] == "complex" => {
                    let elements = match value {
                        Value::Array(elements) => elements.iter().collect(),
                        single => vec![single],
                    };
                    for element in elements {
                        found.extend(undescribed(
                            element,
                            &attribute["subAttributes"],
                            &format!("{at}{key}."),
                        ));
                    }
                }
                Some(_) => {}
            }
        }
        found
    }

    #[test]
    fn every_schema_served_fits_the_schema_schema_at_every_depth() {
        let meta_schema = schema(&SCHEMA_SCHEMA, "http://x/scim/v2");
        for served in schemas() {
            let mut rendered = schema(served, "http://x/scim/v2");
            // Every resource has these (RFC 7643 §3); no schema lists them.
            let object = rendered.as_object_mut().unwrap();
            object.remove("schemas");
            object.remove("meta");
            // The Schema schema describes `subAttributes` one level deep (RFC 7643 §8.7.2), so
            // its own `subAttributes`, which holds sub-attributes of its own, is past the end.
            let past_the_end: &[&str] = if served.id == SCHEMA_URN {
                &["attributes.subAttributes.subAttributes"]
            } else {
                &[]
            };
            assert_eq!(
                undescribed(&rendered, &meta_schema["attributes"], ""),
                past_the_end,
                "{}",
                served.id
            );
        }
    }

    #[test]
    fn the_schema_schema_describes_sub_attributes_one_level_deep() {
        let attributes = SCHEMA_SCHEMA.attribute("attributes").unwrap();
        let sub_attributes = attributes.sub_attribute("subAttributes").unwrap();
        assert!(sub_attributes.multi_valued);
        assert_eq!(
            sub_attributes.sub_attributes.len() + 1,
            attributes.sub_attributes.len()
        );
        assert!(sub_attributes.sub_attribute("subAttributes").is_none());
        assert!(sub_attributes.sub_attribute("referenceTypes").is_some());
    }
}
