//! The answers every operation can give besides its own, added to the OpenAPI document.
//!
//! Each handler documents what it decides (404 for an unknown id, 409 for a duplicate); the
//! answers the extractors, the authentication and the server give are the same everywhere and
//! were missing from most operations (issue 17), so clients and fuzzers met statuses the
//! document did not declare. They are added here, by what an operation has: a request body,
//! parameters, a security requirement.

use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, OpenApi, Ref, ResponseBuilder,
    path::{Operation, ParameterIn},
    schema::{ObjectBuilder, Type},
};

use crate::problem::PROBLEM_JSON;

/// Adds the common error answers to every operation of `doc` that lacks them.
pub fn add_common_errors(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            add_to(op);
        }
    }
}

fn add_to(op: &mut Operation) {
    let params = op.parameters.as_deref().unwrap_or_default();
    let has_path = params
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Path));
    let has_query = params
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Query));
    let has_body = op.request_body.is_some();
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());

    let mut wanted: Vec<(&str, &str, bool)> = Vec::new();
    if has_body || has_path || has_query {
        wanted.push((
            "400",
            "The request could not be read: malformed JSON, a wrong type, an unknown field, \
             a parameter that is not of its kind",
            false,
        ));
        wanted.push((
            "422",
            "A value is not acceptable; `errors` names each field",
            false,
        ));
    }
    if has_path {
        wanted.push(("404", "No such resource (or not this application's)", false));
    }
    if has_body {
        wanted.push(("408", "The request body stopped arriving", false));
        wanted.push(("413", "The request body is larger than the limit", false));
        wanted.push(("415", "The body is not `application/json`", false));
    }
    if secured {
        wanted.push(("401", "No valid credential was presented", false));
        wanted.push((
            "429",
            "Too many failed authentications from this address; `Retry-After` says when to try again",
            true,
        ));
    }
    wanted.push((
        "503",
        "The database is unavailable; `Retry-After` says when to try again",
        true,
    ));
    for (status, description, retry_after) in wanted {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| problem(description, retry_after).into());
    }
}

fn problem(description: &str, retry_after: bool) -> ResponseBuilder {
    let mut response = ResponseBuilder::new().description(description).content(
        PROBLEM_JSON,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build(),
    );
    if retry_after {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("Seconds to wait before trying again"))
                .build(),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn doc() -> Value {
        serde_json::to_value(crate::openapi()).unwrap()
    }

    fn operations(doc: &Value) -> Vec<(String, &Value)> {
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                ops.push((format!("{} {path}", method.to_uppercase()), op));
            }
        }
        ops
    }

    #[test]
    fn every_operation_declares_the_common_errors() {
        let doc = doc();
        for (name, op) in operations(&doc) {
            let has = |s: &str| op["responses"].get(s).is_some();
            assert!(has("503"), "{name}: 503");
            if op.get("security").is_some() {
                assert!(has("401") && has("429"), "{name}: 401 and 429");
                let retry = &op["responses"]["429"]["headers"]["Retry-After"];
                assert!(retry.is_object(), "{name}: Retry-After on 429");
            }
            if op.get("requestBody").is_some() {
                for s in ["400", "408", "413", "415", "422"] {
                    assert!(has(s), "{name}: {s}");
                }
            }
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            if params.iter().any(|p| p["in"] == "path") {
                assert!(has("400") && has("404"), "{name}: 400 and 404");
            }
        }
    }

    #[test]
    fn an_endpoints_health_is_not_the_nodes() {
        let doc = doc();
        let schemas = &doc["components"]["schemas"];
        let health = &schemas["EndpointOut"]["properties"]["health"];
        let refs = health.to_string();
        assert!(
            refs.contains("#/components/schemas/EndpointHealthOut"),
            "{health}"
        );
        assert!(schemas["EndpointHealthOut"]["properties"]["success_rate"].is_object());
        let node = &doc["paths"]["/healthz"]["get"]["responses"]["200"]["content"]["application/json"]
            ["schema"]["$ref"];
        assert_eq!(node, "#/components/schemas/HealthOut");
        assert!(schemas["HealthOut"]["properties"]["store"].is_object());
    }
}
