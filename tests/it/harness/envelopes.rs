//! Registry notification envelopes for tests, shaped like the recorded fixtures.

/// An envelope with one manifest push of `repository:tag`, under a fresh registry event id.
pub fn push(repository: &str, tag: &str) -> String {
    serde_json::json!({"events": [{
        "id": hookline::ids::new_id("reg"),
        "timestamp": "2026-11-25T01:16:56.986524926Z",
        "action": "push",
        "target": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "size": 345,
            "digest": "sha256:ab09df3b044990449fbd0a7f841bbfba912842e49212a79a8e029b8370aa6fb0",
            "repository": repository,
            "url": format!("http://127.0.0.1:5000/v2/{repository}/manifests/sha256:ab09"),
            "tag": tag
        },
        "request": {"id": "r", "addr": "127.0.0.1:1", "host": "127.0.0.1:5000", "method": "PUT", "useragent": "test"},
        "actor": {},
        "source": {"addr": "vm:5000", "instanceID": "i"}
    }]})
    .to_string()
}
