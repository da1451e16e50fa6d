//! The SCIM schemas scimd serves (RFC 7643 §4 and §8.7), as data. Normalising input,
//! projecting output and the discovery endpoints all read these same definitions, so what is
//! advertised is exactly what round-trips.

pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

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
