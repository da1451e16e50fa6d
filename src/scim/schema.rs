//! The SCIM schemas scimd serves (RFC 7643 §4 and §8.7), as data. Normalising input,
//! projecting output and the discovery endpoints all read these same definitions, so what is
//! advertised is exactly what round-trips.

pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const SERVICE_PROVIDER_CONFIG_URN: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
pub const RESOURCE_TYPE_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
pub const SCHEMA_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Reference,
    Binary,
    Complex,
}

impl Kind {
    /// The name RFC 7643 §2.3 gives the type, as a schema's `type` carries it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Boolean => "boolean",
            Kind::Decimal => "decimal",
            Kind::Integer => "integer",
            Kind::DateTime => "dateTime",
            Kind::Reference => "reference",
            Kind::Binary => "binary",
            Kind::Complex => "complex",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

#[derive(Debug, Clone, Copy)]
pub struct Attribute {
    pub name: &'static str,
    pub kind: Kind,
    pub multi_valued: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub sub_attributes: &'static [Attribute],
    pub canonical_values: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub description: &'static str,
}

impl Attribute {
    const fn new(name: &'static str, kind: Kind, description: &'static str) -> Self {
        Attribute {
            name,
            kind,
            multi_valued: false,
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            sub_attributes: &[],
            canonical_values: &[],
            reference_types: &[],
            description,
        }
    }

    const fn string(name: &'static str, description: &'static str) -> Self {
        Self::new(name, Kind::String, description)
    }

    const fn complex(
        name: &'static str,
        sub_attributes: &'static [Attribute],
        description: &'static str,
    ) -> Self {
        let mut attribute = Self::new(name, Kind::Complex, description);
        attribute.sub_attributes = sub_attributes;
        attribute
    }

    const fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }

    const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    const fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }

    const fn read_only(mut self) -> Self {
        self.mutability = Mutability::ReadOnly;
        self
    }

    const fn immutable(mut self) -> Self {
        self.mutability = Mutability::Immutable;
        self
    }

    const fn write_only(mut self) -> Self {
        self.mutability = Mutability::WriteOnly;
        self
    }

    const fn returned(mut self, returned: Returned) -> Self {
        self.returned = returned;
        self
    }

    const fn unique(mut self) -> Self {
        self.uniqueness = Uniqueness::Server;
        self
    }

    const fn canonical(mut self, values: &'static [&'static str]) -> Self {
        self.canonical_values = values;
        self
    }

    const fn references(mut self, types: &'static [&'static str]) -> Self {
        self.reference_types = types;
        self
    }

    /// The sub-attribute `name`, matched case-insensitively.
    pub fn sub_attribute(&self, name: &str) -> Option<&'static Attribute> {
        find(self.sub_attributes, name)
    }
}

#[derive(Debug)]
pub struct Schema {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [Attribute],
}

impl Schema {
    /// The attribute `name`, matched case-insensitively (IDP-QUIRKS 2).
    pub fn attribute(&self, name: &str) -> Option<&'static Attribute> {
        find(self.attributes, name)
    }
}

fn find(attributes: &'static [Attribute], name: &str) -> Option<&'static Attribute> {
    attributes
        .iter()
        .find(|attribute| attribute.name.eq_ignore_ascii_case(name))
}

/// A resource type: its core schema, its extensions, and the attributes every resource has
/// (`id`, `externalId`, `meta`, RFC 7643 §3.1).
#[derive(Debug)]
pub struct ResourceType {
    pub name: &'static str,
    pub endpoint: &'static str,
    pub description: &'static str,
    pub core: &'static Schema,
    pub extensions: &'static [&'static Schema],
}

impl ResourceType {
    /// The extension schema whose URN is `urn`, matched case-insensitively.
    pub fn extension(&self, urn: &str) -> Option<&'static Schema> {
        self.extensions
            .iter()
            .copied()
            .find(|schema| schema.id.eq_ignore_ascii_case(urn))
    }

    /// Finds an attribute by optional schema URN and name. Without a URN the core schema and
    /// the common attributes are searched first, then each extension.
    pub fn attribute(
        &self,
        urn: Option<&str>,
        name: &str,
    ) -> Option<(Option<&'static Schema>, &'static Attribute)> {
        match urn {
            Some(urn) if urn.eq_ignore_ascii_case(self.core.id) => {
                self.core_attribute(name).map(|a| (None, a))
            }
            Some(urn) => {
                let schema = self.extension(urn)?;
                schema.attribute(name).map(|a| (Some(schema), a))
            }
            None => self.core_attribute(name).map(|a| (None, a)).or_else(|| {
                self.extensions
                    .iter()
                    .find_map(|schema| schema.attribute(name).map(|a| (Some(*schema), a)))
            }),
        }
    }

    fn core_attribute(&self, name: &str) -> Option<&'static Attribute> {
        find(COMMON_ATTRIBUTES, name).or_else(|| self.core.attribute(name))
    }
}

const MULTI_TYPES_WORK_HOME_OTHER: &[&str] = &["work", "home", "other"];

/// `value`, `display`, `type`, `primary`: the sub-attributes most multi-valued attributes share.
const fn plural(kind: Kind, types: &'static [&'static str], about: &'static str) -> [Attribute; 4] {
    [
        Attribute::new("value", kind, about),
        Attribute::string(
            "display",
            "A human-readable name, primarily used for display purposes.",
        ),
        Attribute::string("type", "A label indicating the attribute's function.").canonical(types),
        Attribute::new(
            "primary",
            Kind::Boolean,
            "Whether this is the primary or preferred value.",
        ),
    ]
}

const EMAIL_SUBS: [Attribute; 4] = plural(
    Kind::String,
    MULTI_TYPES_WORK_HOME_OTHER,
    "The email address.",
);
const PHONE_SUBS: [Attribute; 4] = plural(
    Kind::String,
    &["work", "home", "mobile", "fax", "pager", "other"],
    "The phone number.",
);
const IM_SUBS: [Attribute; 4] = plural(
    Kind::String,
    &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"],
    "The instant messaging address.",
);
const PHOTO_SUBS: [Attribute; 4] = {
    let mut subs = plural(
        Kind::Reference,
        &["photo", "thumbnail"],
        "The URL of the photo.",
    );
    subs[0] = subs[0].references(&["external"]).case_exact();
    subs
};
const ENTITLEMENT_SUBS: [Attribute; 4] = plural(Kind::String, &[], "The value of an entitlement.");
const ROLE_SUBS: [Attribute; 4] = plural(Kind::String, &[], "The value of a role.");
const CERTIFICATE_SUBS: [Attribute; 4] = plural(
    Kind::Binary,
    &[],
    "The DER-encoded X.509 certificate, base64.",
);

const NAME_SUBS: &[Attribute] = &[
    Attribute::string("formatted", "The full name, formatted for display."),
    Attribute::string("familyName", "The family name, or last name."),
    Attribute::string("givenName", "The given name, or first name."),
    Attribute::string("middleName", "The middle name(s)."),
    Attribute::string("honorificPrefix", "The honorific prefix(es), e.g. 'Ms.'."),
    Attribute::string("honorificSuffix", "The honorific suffix(es), e.g. 'III'."),
];

const ADDRESS_SUBS: &[Attribute] = &[
    Attribute::string(
        "formatted",
        "The full mailing address, formatted for display.",
    ),
    Attribute::string("streetAddress", "The full street address."),
    Attribute::string("locality", "The city or locality."),
    Attribute::string("region", "The state or region."),
    Attribute::string("postalCode", "The zip code or postal code."),
    Attribute::string("country", "The country name, ISO 3166-1 alpha-2."),
    Attribute::string("type", "A label indicating the address's function.")
        .canonical(MULTI_TYPES_WORK_HOME_OTHER),
    Attribute::new(
        "primary",
        Kind::Boolean,
        "Whether this is the primary address.",
    ),
];

const USER_GROUP_SUBS: &[Attribute] = &[
    Attribute::string("value", "The id of the group.").read_only(),
    Attribute::new("$ref", Kind::Reference, "The URI of the group.")
        .references(&["User", "Group"])
        .read_only(),
    Attribute::string("display", "The group's displayName.").read_only(),
    Attribute::string("type", "How the membership is held.")
        .canonical(&["direct", "indirect"])
        .read_only(),
];

const META_SUBS: &[Attribute] = &[
    Attribute::string("resourceType", "The resource's type.")
        .case_exact()
        .read_only(),
    Attribute::new("created", Kind::DateTime, "When the resource was added.").read_only(),
    Attribute::new(
        "lastModified",
        Kind::DateTime,
        "When the resource was last changed.",
    )
    .read_only(),
    Attribute::new("location", Kind::Reference, "The URI of the resource.")
        .case_exact()
        .read_only(),
    Attribute::string("version", "The version (ETag) of the resource.")
        .case_exact()
        .read_only(),
];

/// `id`, `externalId` and `meta`: on every resource, in no schema's attribute list.
pub const COMMON_ATTRIBUTES: &[Attribute] = &[
    Attribute::string(
        "id",
        "The service provider's unique identifier for the resource.",
    )
    .case_exact()
    .read_only()
    .returned(Returned::Always)
    .unique(),
    Attribute::string(
        "externalId",
        "The provisioning client's identifier for the resource.",
    )
    .case_exact(),
    Attribute::complex("meta", META_SUBS, "Resource metadata.").read_only(),
];

pub static USER: Schema = Schema {
    id: USER_URN,
    name: "User",
    description: "User Account",
    attributes: &[
        Attribute::string(
            "userName",
            "Unique identifier for the User, used to authenticate.",
        )
        .required()
        .unique(),
        Attribute::complex("name", NAME_SUBS, "The components of the user's real name."),
        Attribute::string("displayName", "The name of the User, suitable for display."),
        Attribute::string("nickName", "The casual way to address the user."),
        Attribute::new(
            "profileUrl",
            Kind::Reference,
            "A URI of the User's online profile.",
        )
        .references(&["external"])
        .case_exact(),
        Attribute::string("title", "The user's title, such as 'Vice President'."),
        Attribute::string(
            "userType",
            "The relationship between the organization and the user.",
        ),
        Attribute::string(
            "preferredLanguage",
            "The User's preferred written or spoken language.",
        ),
        Attribute::string("locale", "The User's default location, e.g. 'en-US'."),
        Attribute::string(
            "timezone",
            "The User's time zone, e.g. 'America/Los_Angeles'.",
        ),
        Attribute::new("active", Kind::Boolean, "The User's administrative status."),
        Attribute::string(
            "password",
            "The User's cleartext password; accepted and never stored.",
        )
        .write_only()
        .returned(Returned::Never),
        Attribute::complex("emails", &EMAIL_SUBS, "Email addresses for the user.").multi(),
        Attribute::complex("phoneNumbers", &PHONE_SUBS, "Phone numbers for the User.").multi(),
        Attribute::complex("ims", &IM_SUBS, "Instant messaging addresses for the User.").multi(),
        Attribute::complex("photos", &PHOTO_SUBS, "URLs of photos of the User.").multi(),
        Attribute::complex(
            "addresses",
            ADDRESS_SUBS,
            "A physical mailing address for this User.",
        )
        .multi(),
        Attribute::complex("groups", USER_GROUP_SUBS, "The groups the user belongs to.")
            .multi()
            .read_only(),
        Attribute::complex(
            "entitlements",
            &ENTITLEMENT_SUBS,
            "Entitlements the User has.",
        )
        .multi(),
        Attribute::complex("roles", &ROLE_SUBS, "Roles for the User.").multi(),
        Attribute::complex(
            "x509Certificates",
            &CERTIFICATE_SUBS,
            "Certificates issued to the User.",
        )
        .multi(),
    ],
};

const MANAGER_SUBS: &[Attribute] = &[
    Attribute::string(
        "value",
        "The id of the SCIM resource representing the User's manager.",
    )
    .case_exact(),
    Attribute::new(
        "$ref",
        Kind::Reference,
        "The URI of the manager's resource.",
    )
    .references(&["User"]),
    Attribute::string("displayName", "The displayName of the User's manager.").read_only(),
];

pub static ENTERPRISE_USER: Schema = Schema {
    id: ENTERPRISE_USER_URN,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: &[
        Attribute::string(
            "employeeNumber",
            "Numeric or alphanumeric identifier assigned to a person.",
        ),
        Attribute::string("costCenter", "Identifies the name of a cost center."),
        Attribute::string("organization", "Identifies the name of an organization."),
        Attribute::string("division", "Identifies the name of a division."),
        Attribute::string("department", "Identifies the name of a department."),
        Attribute::complex("manager", MANAGER_SUBS, "The User's manager."),
    ],
};

const MEMBER_SUBS: &[Attribute] = &[
    Attribute::string("value", "The id of the member.")
        .case_exact()
        .immutable(),
    Attribute::new("$ref", Kind::Reference, "The URI of the member.")
        .references(&["User", "Group"])
        .immutable(),
    Attribute::string("type", "The member's resource type.")
        .canonical(&["User", "Group"])
        .immutable(),
    Attribute::string("display", "The member's display name.").read_only(),
];

pub static GROUP: Schema = Schema {
    id: GROUP_URN,
    name: "Group",
    description: "Group",
    attributes: &[
        Attribute::string("displayName", "A human-readable name for the Group.")
            .required()
            .unique(),
        Attribute::complex("members", MEMBER_SUBS, "A list of members of the Group.").multi(),
    ],
};

pub static USER_RESOURCE: ResourceType = ResourceType {
    name: "User",
    endpoint: "/Users",
    description: "User Account",
    core: &USER,
    extensions: &[&ENTERPRISE_USER],
};

pub static GROUP_RESOURCE: ResourceType = ResourceType {
    name: "Group",
    endpoint: "/Groups",
    description: "Group",
    core: &GROUP,
    extensions: &[],
};

// ---------------------------------------------------------------------------------------------
// The schemas of the discovery resources, as RFC 7643 §8.7.2 gives them: every attribute
// readOnly, and characteristics its JSON leaves out at the defaults of RFC 7643 §2.2.

const SUPPORTED: Attribute = Attribute::new(
    "supported",
    Kind::Boolean,
    "A Boolean value specifying whether or not the operation is supported.",
)
.required()
.read_only();

const BULK_SUBS: &[Attribute] = &[
    SUPPORTED,
    Attribute::new(
        "maxOperations",
        Kind::Integer,
        "An integer value specifying the maximum number of operations.",
    )
    .required()
    .read_only(),
    Attribute::new(
        "maxPayloadSize",
        Kind::Integer,
        "An integer value specifying the maximum payload size in bytes.",
    )
    .required()
    .read_only(),
];

const FILTER_SUBS: &[Attribute] = &[
    SUPPORTED,
    Attribute::new(
        "maxResults",
        Kind::Integer,
        "An integer value specifying the maximum number of resources returned in a response.",
    )
    .required()
    .read_only(),
];

const AUTHENTICATION_SCHEME_SUBS: &[Attribute] = &[
    // RFC 7643 §5 defines `type` (REQUIRED) though §8.7.2's JSON leaves it out.
    Attribute::string("type", "The authentication scheme.")
        .required()
        .canonical(&[
            "oauth",
            "oauth2",
            "oauthbearertoken",
            "httpbasic",
            "httpdigest",
        ])
        .read_only(),
    Attribute::string(
        "name",
        "The common authentication scheme name, e.g., HTTP Basic.",
    )
    .required()
    .read_only(),
    Attribute::string("description", "A description of the authentication scheme.")
        .required()
        .read_only(),
    Attribute::new(
        "specUri",
        Kind::Reference,
        "An HTTP-addressable URL pointing to the authentication scheme's specification.",
    )
    .references(&["external"])
    .read_only(),
    Attribute::new(
        "documentationUri",
        Kind::Reference,
        "An HTTP-addressable URL pointing to the authentication scheme's usage documentation.",
    )
    .references(&["external"])
    .read_only(),
    // Every multi-valued attribute may mark its preferred element (RFC 7643 §2.4); RFC 7643
    // §8.5's example marks the primary scheme so, and so does this server.
    Attribute::new(
        "primary",
        Kind::Boolean,
        "Whether this is the preferred authentication scheme.",
    )
    .read_only(),
];

/// What RFC 9865 §4 defines inside `pagination`.
const PAGINATION_SUBS: &[Attribute] = &[
    Attribute::new(
        "cursor",
        Kind::Boolean,
        "A Boolean value specifying support of cursor-based pagination.",
    )
    .required()
    .read_only(),
    Attribute::new(
        "index",
        Kind::Boolean,
        "A Boolean value specifying support of index-based pagination.",
    )
    .required()
    .read_only(),
    Attribute::string(
        "defaultPaginationMethod",
        "The pagination method used when the client names none.",
    )
    .canonical(&["cursor", "index"])
    .read_only(),
    Attribute::new(
        "defaultPageSize",
        Kind::Integer,
        "The number of results in a page when the query gives no count.",
    )
    .read_only(),
    Attribute::new(
        "maxPageSize",
        Kind::Integer,
        "The most results a page holds, whatever count the query gives.",
    )
    .read_only(),
    Attribute::new(
        "cursorTimeout",
        Kind::Integer,
        "The least number of seconds a cursor stays valid between page requests.",
    )
    .read_only(),
];

pub static SERVICE_PROVIDER_CONFIG_SCHEMA: Schema = Schema {
    id: SERVICE_PROVIDER_CONFIG_URN,
    name: "Service Provider Configuration",
    description: "Schema for representing the service provider's configuration",
    attributes: &[
        Attribute::new(
            "documentationUri",
            Kind::Reference,
            "An HTTP-addressable URL of the service provider's human-consumable help.",
        )
        .references(&["external"])
        .read_only(),
        Attribute::complex(
            "patch",
            &[SUPPORTED],
            "A complex type that specifies PATCH configuration options.",
        )
        .required()
        .read_only(),
        Attribute::complex(
            "bulk",
            BULK_SUBS,
            "A complex type that specifies bulk configuration options.",
        )
        .required()
        .read_only(),
        Attribute::complex(
            "filter",
            FILTER_SUBS,
            "A complex type that specifies FILTER options.",
        )
        .required()
        .read_only(),
        Attribute::complex(
            "changePassword",
            &[SUPPORTED],
            "A complex type that specifies configuration options related to changing a password.",
        )
        .required()
        .read_only(),
        Attribute::complex(
            "sort",
            &[SUPPORTED],
            "A complex type that specifies sort result options.",
        )
        .required()
        .read_only(),
        // RFC 7643 §5 defines `etag` (REQUIRED) though §8.7.2's JSON leaves it out.
        Attribute::complex(
            "etag",
            &[SUPPORTED],
            "A complex type that specifies ETag configuration options.",
        )
        .required()
        .read_only(),
        Attribute::complex(
            "authenticationSchemes",
            AUTHENTICATION_SCHEME_SUBS,
            "A complex type that specifies supported authentication scheme properties.",
        )
        .multi()
        .required()
        .read_only(),
        // Not in RFC 7643: RFC 9865 §4 adds it for cursor paging, which this server offers.
        Attribute::complex(
            "pagination",
            PAGINATION_SUBS,
            "A complex type that indicates pagination configuration options.",
        )
        .read_only(),
    ],
};

const SCHEMA_EXTENSION_SUBS: &[Attribute] = &[
    Attribute::new("schema", Kind::Reference, "The URI of a schema extension.")
        .references(&["uri"])
        .required()
        .case_exact()
        .read_only(),
    Attribute::new(
        "required",
        Kind::Boolean,
        "Whether a resource of this type must include this schema extension.",
    )
    .required()
    .read_only(),
];

pub static RESOURCE_TYPE_SCHEMA: Schema = Schema {
    id: RESOURCE_TYPE_URN,
    name: "ResourceType",
    description: "Specifies the schema that describes a SCIM resource type",
    attributes: &[
        Attribute::string(
            "id",
            "The resource type's server unique id. May be the same as the 'name' attribute.",
        )
        .read_only(),
        Attribute::string("name", "The resource type name, e.g., 'User'.")
            .required()
            .read_only(),
        Attribute::string(
            "description",
            "The resource type's human-readable description.",
        )
        .read_only(),
        Attribute::new(
            "endpoint",
            Kind::Reference,
            "The resource type's HTTP-addressable endpoint relative to the Base URL.",
        )
        .references(&["uri"])
        .required()
        .read_only(),
        Attribute::new(
            "schema",
            Kind::Reference,
            "The resource type's primary/base schema URI.",
        )
        .references(&["uri"])
        .required()
        .case_exact()
        .read_only(),
        // §8.7.2's JSON says single-valued, but RFC 7643 §6 calls it "a list" and RFC 7644
        // §4's example sends an array, as this server does.
        Attribute::complex(
            "schemaExtensions",
            SCHEMA_EXTENSION_SUBS,
            "A list of URIs of the resource type's schema extensions.",
        )
        .multi()
        .required()
        .read_only(),
    ],
};

/// What describes one attribute (RFC 7643 §7). `attributes` holds these and `subAttributes`;
/// `subAttributes` holds these again, which is as deep as RFC 7643 §8.7.2 describes it.
///
/// §8.7.2's JSON makes `referenceTypes` single-valued one level down only; it is a list at both
/// levels here, as every schema renders it.
const CHARACTERISTICS: [Attribute; 11] = [
    Attribute::string("name", "The attribute's name.")
        .required()
        .case_exact()
        .read_only(),
    // `binary` is RFC 7643 §2.3.6's, and `x509Certificates.value` has it (§8.7.1), though the
    // list in §7 and §8.7.2 leaves it out.
    Attribute::string("type", "The attribute's data type.")
        .required()
        .canonical(&[
            "string",
            "complex",
            "boolean",
            "decimal",
            "integer",
            "dateTime",
            "reference",
            "binary",
        ])
        .read_only(),
    Attribute::new(
        "multiValued",
        Kind::Boolean,
        "A Boolean value indicating an attribute's plurality.",
    )
    .required()
    .read_only(),
    Attribute::string(
        "description",
        "A human-readable description of the attribute.",
    )
    .case_exact()
    .read_only(),
    Attribute::new(
        "required",
        Kind::Boolean,
        "A boolean value indicating whether or not the attribute is required.",
    )
    .read_only(),
    Attribute::string("canonicalValues", "A collection of canonical values.")
        .multi()
        .case_exact()
        .read_only(),
    Attribute::new(
        "caseExact",
        Kind::Boolean,
        "A Boolean value indicating whether or not a string attribute is case sensitive.",
    )
    .read_only(),
    Attribute::string(
        "mutability",
        "Indicates whether or not an attribute is modifiable.",
    )
    .case_exact()
    .canonical(&["readOnly", "readWrite", "immutable", "writeOnly"])
    .read_only(),
    Attribute::string(
        "returned",
        "Indicates when an attribute is returned in a response (e.g., to a query).",
    )
    .case_exact()
    .canonical(&["always", "never", "default", "request"])
    .read_only(),
    Attribute::string("uniqueness", "Indicates how unique a value must be.")
        .case_exact()
        .canonical(&["none", "server", "global"])
        .read_only(),
    Attribute::string(
        "referenceTypes",
        "The SCIM resource types, or 'external' or 'uri', a reference attribute may refer to.",
    )
    .multi()
    .case_exact()
    .read_only(),
];

/// [`CHARACTERISTICS`], then `subAttributes`: copied in a loop, since a const cannot
/// concatenate arrays.
const SCHEMA_ATTRIBUTE_SUBS: [Attribute; 12] = {
    let mut subs = [Attribute::complex(
        "subAttributes",
        &CHARACTERISTICS,
        "Used to define the sub-attributes of a complex attribute.",
    )
    .multi()
    .read_only(); 12];
    let mut index = 0;
    while index < CHARACTERISTICS.len() {
        subs[index] = CHARACTERISTICS[index];
        index += 1;
    }
    subs
};

pub static SCHEMA_SCHEMA: Schema = Schema {
    id: SCHEMA_URN,
    name: "Schema",
    description: "Specifies the schema that describes a SCIM schema",
    attributes: &[
        Attribute::string("id", "The unique URI of the schema.")
            .required()
            .read_only(),
        Attribute::string("name", "The schema's human-readable name, e.g., 'User'.")
            .required()
            .read_only(),
        Attribute::string("description", "The schema's human-readable description.").read_only(),
        Attribute::complex(
            "attributes",
            &SCHEMA_ATTRIBUTE_SUBS,
            "A complex attribute that includes the attributes of a schema.",
        )
        .multi()
        .required()
        .read_only(),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_found_whatever_their_case_and_schema() {
        let (schema, attribute) = USER_RESOURCE.attribute(None, "DEPARTMENT").unwrap();
        assert_eq!(schema.unwrap().id, ENTERPRISE_USER_URN);
        assert_eq!(attribute.name, "department");
        let (schema, attribute) = USER_RESOURCE.attribute(Some(USER_URN), "username").unwrap();
        assert!(schema.is_none());
        assert_eq!(attribute.name, "userName");
        assert_eq!(
            USER_RESOURCE.attribute(None, "externalid").unwrap().1.name,
            "externalId"
        );
        assert!(USER_RESOURCE.attribute(None, "shoeSize").is_none());
        assert_eq!(
            USER.attribute("emails")
                .unwrap()
                .sub_attribute("VALUE")
                .unwrap()
                .name,
            "value"
        );
    }
}
