//! Criterion micro-benchmarks of the hot pure functions (BENCHMARKS.md, issue 9): filter
//! parse and evaluate, PATCH parse and apply, resource normalize and render. Run with
//! `cargo bench --bench micro`; `cargo bench --bench micro -- --test` runs each once.

use chrono::NaiveDate;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use serde_json::json;

use scimd::scim::filter::Filter;
use scimd::scim::patch::{self, PatchRequest};
use scimd::scim::resource::{self, Meta, ResourceRules};
use scimd::scim::schema::USER_RESOURCE;

fn user_document() -> serde_json::Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": "ada.lovelace@acme.test",
        "externalId": "00u1a2b3c4d5e6f7g8h9",
        "name": {"givenName": "Ada", "familyName": "Lovelace", "formatted": "Ada Lovelace"},
        "displayName": "Ada Lovelace",
        "emails": [{"value": "ada.lovelace@acme.test", "type": "work", "primary": true},
                   {"value": "ada@home.test", "type": "home"}],
        "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}],
        "title": "Analyst",
        "active": "True",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "1815", "department": "Engineering",
            "manager": {"value": "manager-1"}
        }
    })
}

fn filters(c: &mut Criterion) {
    let lookup = r#"userName eq "ada.lovelace@acme.test""#;
    let complex = r#"emails[type eq "work" and value co "@acme.test"] and (title sw "Ana" or not (active eq false)) and meta.lastModified gt "2026-01-01T00:00:00Z""#;
    c.bench_function("filter parse: userName eq", |b| {
        b.iter(|| Filter::parse(black_box(lookup)).unwrap())
    });
    c.bench_function("filter parse: value path, and/or/not, dateTime", |b| {
        b.iter(|| Filter::parse(black_box(complex)).unwrap())
    });
    let attributes = resource::normalize(&USER_RESOURCE, &user_document()).unwrap();
    let rendered = resource::render(&USER_RESOURCE, "member-1", &attributes, &meta());
    let parsed = Filter::parse(complex).unwrap();
    let rules = ResourceRules(&USER_RESOURCE);
    c.bench_function("filter evaluate: value path, and/or/not, dateTime", |b| {
        b.iter(|| parsed.matches(black_box(&rendered), &rules))
    });
}

fn meta() -> Meta {
    let at = NaiveDate::from_ymd_opt(2026, 11, 23)
        .unwrap()
        .and_hms_micro_opt(12, 0, 0, 123_456)
        .unwrap();
    Meta {
        created: at,
        last_modified: at,
        location: "https://scim.example.test/scim/v2/Users/member-1".into(),
        version: 3,
    }
}

fn patches(c: &mut Criterion) {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "Replace", "path": "name.givenName", "value": "Augusta"},
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "augusta@acme.test"}
        ]
    });
    c.bench_function("patch parse: Entra, 3 operations", |b| {
        b.iter(|| PatchRequest::parse(black_box(&body)).unwrap())
    });
    let request = PatchRequest::parse(&body).unwrap();
    let attributes = resource::normalize(&USER_RESOURCE, &user_document()).unwrap();
    c.bench_function("patch apply: Entra, 3 operations", |b| {
        b.iter(|| {
            patch::apply(&USER_RESOURCE, black_box(&attributes), &request, "member-1").unwrap()
        })
    });
}

fn resources(c: &mut Criterion) {
    let document = user_document();
    c.bench_function("normalize: enterprise user", |b| {
        b.iter(|| resource::normalize(&USER_RESOURCE, black_box(&document)).unwrap())
    });
    let attributes = resource::normalize(&USER_RESOURCE, &document).unwrap();
    let meta = meta();
    c.bench_function("render: enterprise user", |b| {
        b.iter(|| resource::render(&USER_RESOURCE, "member-1", black_box(&attributes), &meta))
    });
}

criterion_group!(micro, filters, patches, resources);
criterion_main!(micro);
