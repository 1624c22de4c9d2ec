//! What every operation can answer, and who may call it, added to the
//! OpenAPI document from how the API is served, so that handlers only
//! document what is their own (201, 404 for their resources, 409, 502).
//!
//! - `security` and 401: exactly the operations that need the configured
//!   token (writes; reads too with [`super::ApiState::auth_reads`]); none
//!   when no token is configured.
//! - Operations with a body: 400 (not the documented shape), 408 (the body
//!   did not arrive in time), 413 (too large), 415 (not JSON), 422 (a value
//!   refused).
//! - Writes (every method but GET): 409, which in a cluster also means
//!   that another controller changed the module since this node's state
//!   of it (the write was refused whole; retry).
//! - Operations with parameters: 400 (a parameter not of its type), and
//!   422 when a string parameter's value may be refused.
//!
//! Integers get the bounds of their width (`uint16`: 0..=65535), so that
//! the document refuses what serde refuses; a variant of an enum written
//! as `{"variant": ...}` allows no other key.
//!
//! Answers that flatten a closed object into a bigger one (`{...rule,
//! "applied": ...}`) become `allOf` compositions; each part is opened
//! ([`open_compositions`]), since a part that allows no other property
//! would forbid the rest of the answer.
//!
//! It also refuses to merge two different schemas under one name
//! ([`clashes`]): the document once had two `AppliedInfo`s and every
//! firewall answer broke one of them.

use std::collections::BTreeMap;

use axum::http::Method;
use utoipa::openapi::path::{Operation, Parameter, PathItem};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayItems, KnownFormat, Object, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Content, ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::Number;

/// Names that two of `docs` define differently.
pub(super) fn clashes<'a>(docs: impl IntoIterator<Item = &'a OpenApi>) -> Vec<String> {
    let mut seen: BTreeMap<&str, serde_json::Value> = BTreeMap::new();
    let mut clashes = Vec::new();
    for doc in docs {
        let Some(components) = &doc.components else {
            continue;
        };
        for (name, schema) in &components.schemas {
            let schema = serde_json::to_value(schema).unwrap_or_default();
            match seen.get(name.as_str()) {
                Some(first) if *first != schema => clashes.push(name.clone()),
                Some(_) => {}
                None => {
                    seen.insert(name, schema);
                }
            }
        }
    }
    clashes
}

/// What a 409 means for any write in a cluster.
const CLUSTER_CONFLICT: &str = "In a cluster: another controller changed this module after this \
    node's state of it; nothing was written (retry)";

/// Completes `doc`; `guarded(method, path)` says whether an operation
/// needs the token.
pub(super) fn complete(doc: &mut OpenApi, guarded: impl Fn(&Method, &str) -> bool) {
    for_each_schema(doc, &mut |schema| {
        bound_integer(schema);
        close_variant(schema);
    });
    open_compositions(doc);
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in operations(item) {
            let guarded = guarded(&method, path);
            op.security = guarded.then(|| vec![SecurityRequirement::new("bearer", [""; 0])]);
            if guarded {
                answers(op, 401, "No valid bearer token");
            }
            if op.request_body.is_some() {
                answers(
                    op,
                    400,
                    "Not the documented shape: not JSON, a value of the wrong \
                    type, a missing or unknown field (named)",
                );
                answers(op, 408, "The body did not arrive in time");
                answers(op, 413, "The body is too large");
                answers(op, 415, "The body is not declared as JSON");
                answers(op, 422, "A value is refused (field named)");
            }
            if method != Method::GET {
                answers(op, 409, CLUSTER_CONFLICT);
                if let Some(RefOr::T(own)) = op.responses.responses.get_mut("409") {
                    if !own.description.contains(CLUSTER_CONFLICT) {
                        own.description = format!("{}; or: {CLUSTER_CONFLICT}", own.description);
                    }
                }
            }
            let params = op.parameters.as_deref().unwrap_or_default();
            let (any, strings) = (!params.is_empty(), params.iter().any(is_string));
            if any {
                answers(op, 400, "A parameter is not of its type, or is unknown");
            }
            if strings {
                answers(op, 422, "A parameter's value is refused (parameter named)");
            }
        }
    }
}

/// Calls `f` on every schema of `doc`: components, parameters, bodies and
/// answers, and the schemas inside them.
fn for_each_schema(doc: &mut OpenApi, f: &mut impl FnMut(&mut Schema)) {
    if let Some(components) = doc.components.as_mut() {
        for schema in components.schemas.values_mut() {
            walk(schema, f);
        }
    }
    for item in doc.paths.paths.values_mut() {
        for (_, op) in operations(item) {
            for param in op.parameters.iter_mut().flatten() {
                if let RefOr::T(Parameter {
                    schema: Some(schema),
                    ..
                }) = param
                {
                    walk(schema, f);
                }
            }
            if let Some(RefOr::T(body)) = op.request_body.as_mut() {
                for content in body.content.values_mut() {
                    walk_content(content, f);
                }
            }
            for answer in op.responses.responses.values_mut() {
                if let RefOr::T(answer) = answer {
                    for content in answer.content.values_mut() {
                        walk_content(content, f);
                    }
                }
            }
        }
    }
}

fn walk_content(content: &mut RefOr<Content>, f: &mut impl FnMut(&mut Schema)) {
    if let RefOr::T(Content {
        schema: Some(schema),
        ..
    }) = content
    {
        walk(schema, f);
    }
}

fn walk(schema: &mut RefOr<Schema>, f: &mut impl FnMut(&mut Schema)) {
    let RefOr::T(schema) = schema else {
        return;
    };
    f(schema);
    match schema {
        Schema::Object(o) => {
            o.properties.values_mut().for_each(|p| walk(p, f));
            if let Some(AdditionalProperties::RefOr(extra)) = o.additional_properties.as_deref_mut()
            {
                walk(extra, f);
            }
            if let Some(names) = o.property_names.as_deref_mut() {
                walk_plain(names, f);
            }
        }
        Schema::Array(a) => {
            if let ArrayItems::RefOrSchema(items) = &mut a.items {
                walk(items, f);
            }
        }
        Schema::OneOf(one) => one.items.iter_mut().for_each(|i| walk(i, f)),
        Schema::AllOf(all) => all.items.iter_mut().for_each(|i| walk(i, f)),
        Schema::AnyOf(any) => any.items.iter_mut().for_each(|i| walk(i, f)),
        _ => {}
    }
}

fn walk_plain(schema: &mut Schema, f: &mut impl FnMut(&mut Schema)) {
    let mut wrapped = RefOr::T(std::mem::take(schema));
    walk(&mut wrapped, f);
    if let RefOr::T(back) = wrapped {
        *schema = back;
    }
}

/// Gives an unsigned integer the bounds of its width where it has none.
fn bound_integer(schema: &mut Schema) {
    let Schema::Object(o) = schema else {
        return;
    };
    let Some(SchemaFormat::KnownFormat(format)) = &o.format else {
        return;
    };
    let max = match format {
        KnownFormat::UInt8 => u64::from(u8::MAX),
        KnownFormat::UInt16 => u64::from(u16::MAX),
        KnownFormat::UInt32 => u64::from(u32::MAX),
        KnownFormat::UInt64 => u64::MAX,
        _ => return,
    };
    o.minimum.get_or_insert(Number::UInt(0));
    o.maximum.get_or_insert(Number::UInt(max as usize));
}

/// Closes the object form of an externally tagged enum's variant (one
/// property, required), and a struct variant's inline fields: our enums
/// deny unknown fields, which serde applies to their struct variants.
fn close_variant(schema: &mut Schema) {
    let Schema::OneOf(one) = schema else {
        return;
    };
    for item in &mut one.items {
        let RefOr::T(Schema::Object(o)) = item else {
            continue;
        };
        if o.additional_properties.is_some() {
            continue;
        }
        // Internally tagged (`{"type": "name", ...fields}`): the variant's
        // object is closed as its struct is.
        if has_tag(o) {
            o.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
            continue;
        }
        let single = o.properties.len() == 1
            && o.required.len() == 1
            && o.properties.contains_key(&o.required[0]);
        if !single {
            continue;
        }
        o.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
        for fields in o.properties.values_mut() {
            if let RefOr::T(Schema::Object(fields)) = fields {
                if !fields.properties.is_empty() && fields.additional_properties.is_none() {
                    fields.additional_properties =
                        Some(Box::new(AdditionalProperties::FreeForm(false)));
                }
            }
        }
    }
}

/// Whether `o` is a variant of an internally tagged enum: a required
/// property that can only be one string (the tag).
fn has_tag(o: &Object) -> bool {
    o.required.iter().any(|name| {
        matches!(
            o.properties.get(name),
            Some(RefOr::T(Schema::Object(tag)))
                if tag.schema_type == SchemaType::Type(Type::String)
                    && tag.enum_values.as_ref().is_some_and(|v| v.len() == 1)
        )
    })
}

/// Lets every part of an `allOf` component accept the other parts'
/// properties: closed parts are opened, references to closed schemas
/// replaced by opened copies (the referenced schema stays closed where it
/// is used alone, as a request body).
fn open_compositions(doc: &mut OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let named = components.schemas.clone();
    for schema in components.schemas.values_mut() {
        let RefOr::T(Schema::AllOf(all)) = schema else {
            continue;
        };
        for part in &mut all.items {
            if let RefOr::Ref(r) = part {
                let name = r.ref_location.rsplit('/').next().unwrap_or_default();
                if let Some(RefOr::T(target)) = named.get(name) {
                    let mut opened = target.clone();
                    if open(&mut opened) {
                        *part = RefOr::T(opened);
                    }
                }
            }
            if let RefOr::T(part) = part {
                open(part);
            }
        }
    }
}

/// Lets a closed object (or a choice of closed objects) take other
/// properties; whether there was anything to open.
fn open(schema: &mut Schema) -> bool {
    match schema {
        Schema::Object(o) if is_closed(o) => {
            o.additional_properties = None;
            true
        }
        Schema::OneOf(one) => one.items.iter_mut().fold(false, |opened, item| match item {
            RefOr::T(item) => open(item) || opened,
            RefOr::Ref(_) => opened,
        }),
        _ => false,
    }
}

fn is_closed(o: &Object) -> bool {
    matches!(
        o.additional_properties.as_deref(),
        Some(AdditionalProperties::FreeForm(false))
    )
}

/// The operations of a path item with their methods.
fn operations(item: &mut PathItem) -> Vec<(Method, &mut Operation)> {
    [
        (Method::GET, item.get.as_mut()),
        (Method::PUT, item.put.as_mut()),
        (Method::POST, item.post.as_mut()),
        (Method::DELETE, item.delete.as_mut()),
        (Method::PATCH, item.patch.as_mut()),
        (Method::HEAD, item.head.as_mut()),
        (Method::OPTIONS, item.options.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, op)| Some((method, op?)))
    .collect()
}

/// Documents `status` with an error body, unless the operation does.
fn answers(op: &mut Operation, status: u16, description: &str) {
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
                .into()
        });
}

fn is_string(param: &RefOr<Parameter>) -> bool {
    let RefOr::T(param) = param else {
        return false;
    };
    match &param.schema {
        Some(RefOr::T(Schema::Object(o))) => match &o.schema_type {
            SchemaType::Type(t) => *t == Type::String,
            SchemaType::Array(types) => types.contains(&Type::String),
            SchemaType::AnyValue => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use serde_json::json;
    use utoipa::openapi::ComponentsBuilder;
    use utoipa::{PartialSchema, ToSchema};

    #[derive(Serialize, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        port: u16,
    }

    #[derive(Serialize, ToSchema)]
    struct Answer {
        #[serde(flatten)]
        inner: Inner,
        applied: bool,
    }

    #[derive(Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "snake_case", deny_unknown_fields)]
    enum Band {
        Drop,
        Remark { level: u8 },
    }

    #[derive(Serialize, Deserialize, ToSchema)]
    #[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
    enum Act {
        Limit { kbps: u32 },
        Notify {},
    }

    fn doc_with(schemas: Vec<(&str, RefOr<Schema>)>) -> OpenApi {
        let mut components = ComponentsBuilder::new();
        for (name, schema) in schemas {
            components = components.schema(name, schema);
        }
        let mut doc = OpenApi::default();
        doc.components = Some(components.build());
        doc
    }

    fn json_of(doc: &OpenApi, name: &str) -> serde_json::Value {
        serde_json::to_value(&doc.components.as_ref().unwrap().schemas[name]).unwrap()
    }

    #[test]
    fn widths_bound_integers_variants_are_closed_and_flattened_parts_open() {
        let mut doc = doc_with(vec![
            ("Inner", Inner::schema()),
            ("Answer", Answer::schema()),
            ("Band", Band::schema()),
            ("Act", Act::schema()),
        ]);
        complete(&mut doc, |_, _| false);
        let inner = json_of(&doc, "Inner");
        assert_eq!(inner["properties"]["port"]["maximum"], json!(65535));
        assert_eq!(inner["properties"]["port"]["minimum"], json!(0));
        // The request type stays closed; inside the answer it is open.
        assert_eq!(inner["additionalProperties"], json!(false));
        let answer = json_of(&doc, "Answer");
        let parts = answer["allOf"].as_array().expect("allOf");
        assert!(
            parts.iter().all(|p| p["additionalProperties"].is_null()),
            "{answer}"
        );
        let band = json_of(&doc, "Band");
        let remark = &band["oneOf"][1];
        assert_eq!(remark["additionalProperties"], json!(false), "{band}");
        assert_eq!(
            remark["properties"]["remark"]["additionalProperties"],
            json!(false),
            "{band}"
        );
        // Internally tagged: each variant's object, fields and tag, is closed.
        let act = json_of(&doc, "Act");
        for variant in act["oneOf"].as_array().expect("oneOf") {
            assert_eq!(variant["additionalProperties"], json!(false), "{act}");
        }
    }

    #[test]
    fn two_schemas_under_one_name_clash() {
        let a = doc_with(vec![("Policy", Inner::schema())]);
        let b = doc_with(vec![("Policy", Band::schema())]);
        let same = doc_with(vec![("Policy", Inner::schema())]);
        assert_eq!(clashes([&a, &b]), vec!["Policy".to_owned()]);
        assert!(clashes([&a, &same]).is_empty());
    }
}
