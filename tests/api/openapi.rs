//! The committed OpenAPI document is what the code generates.

#[test]
fn committed_spec_matches_the_code() {
    let generated = gatehouse::http::docs::spec_json().unwrap();
    let path = crate::support::manifest_path("openapi/openapi.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        generated == committed,
        "openapi/openapi.json is out of date; regenerate it with `cargo run -- openapi > openapi/openapi.json`"
    );
}

#[test]
fn spec_declares_oauth2_and_bearer_security_schemes() {
    let spec: serde_json::Value =
        serde_json::from_str(&gatehouse::http::docs::spec_json().unwrap()).unwrap();
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["oauth2"]["type"], "oauth2");
    let flows = &schemes["oauth2"]["flows"];
    assert_eq!(
        flows["authorizationCode"]["authorizationUrl"],
        "/oauth2/authorize"
    );
    assert_eq!(flows["authorizationCode"]["tokenUrl"], "/oauth2/token");
    assert_eq!(flows["clientCredentials"]["tokenUrl"], "/oauth2/token");
    assert!(flows["authorizationCode"]["scopes"]["cases.write"].is_string());
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert!(
            spec["paths"][path]["get"].is_object(),
            "{path} is documented"
        );
    }
}

#[test]
fn protocol_values_are_documented_as_sent_on_the_wire() {
    let spec: serde_json::Value =
        serde_json::from_str(&gatehouse::http::docs::spec_json().unwrap()).unwrap();
    let schemas = &spec["components"]["schemas"];
    assert!(
        schemas["Scope"]["enum"]
            .as_array()
            .unwrap()
            .contains(&"cases.write".into())
    );
    assert!(
        schemas["GrantType"]["enum"]
            .as_array()
            .unwrap()
            .contains(&"urn:ietf:params:oauth:grant-type:jwt-bearer".into())
    );
    assert_eq!(
        schemas["ClientType"]["enum"],
        serde_json::json!(["public", "confidential"])
    );
    // What every JSON body can be answered, whatever the handler does.
    let create = &spec["paths"]["/admin/v1/users"]["post"]["responses"];
    for status in ["400", "413", "415", "422"] {
        assert_eq!(
            create[status]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem",
            "{status}"
        );
    }
    let rotate = &spec["paths"]["/admin/v1/keys/rotate"]["post"];
    assert_eq!(rotate["parameters"][0]["in"], "query");
    assert!(rotate["responses"]["400"].is_object());
}
