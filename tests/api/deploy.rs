//! What deploy/ ships, checked as far as this machine can: nginx accepts the compose
//! file's configuration, the YAML parses into the resources the README promises, the
//! container image runs as a non-root user with a health check, and that health check
//! command works.

use std::path::Path;

use serde_json::Value;

use crate::support::{Backend, ServerProcess, TestDb, manifest_path, skip};

#[test]
fn nginx_accepts_the_compose_configuration() {
    let nginx = Path::new("/usr/sbin/nginx");
    if !nginx.exists()
        && skip(
            module_path!(),
            "nginx is not installed (Debian nginx-light)",
        )
    {
        return;
    }
    // The compose file's service names resolve only inside compose: point them here.
    let dir = tempfile::tempdir().unwrap();
    let conf = std::fs::read_to_string(manifest_path("deploy/nginx/nginx.conf"))
        .unwrap()
        .replace("gatehouse-1:8080", "127.0.0.1:18081")
        .replace("gatehouse-2:8080", "127.0.0.1:18082")
        .replace(
            "/etc/nginx/proxy.conf",
            manifest_path("deploy/nginx/proxy.conf").to_str().unwrap(),
        )
        .replace(
            "/tmp/nginx.pid",
            dir.path().join("nginx.pid").to_str().unwrap(),
        );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let out = std::process::Command::new(nginx)
        .arg("-t")
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(dir.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "nginx -t: {said}");
    assert!(said.contains("test is successful"), "{said}");
}

/// The documents of a YAML file, merge keys (`<<: *anchor`) applied, as JSON values.
fn yaml(path: &str) -> Vec<Value> {
    use serde::Deserialize as _;
    let text = std::fs::read_to_string(manifest_path(path)).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            serde_yaml_ng::Value::deserialize(doc)
                .and_then(|mut v| v.apply_merge().map(|()| v))
                .unwrap_or_else(|e| panic!("{path}: {e}"))
        })
        .filter(|doc| !doc.is_null())
        .map(|doc| serde_json::to_value(doc).unwrap())
        .collect()
}

#[test]
fn the_compose_file_runs_two_replicas_behind_nginx_on_postgres_and_redis() {
    let docs = yaml("deploy/docker-compose.yml");
    let services = docs[0]["services"].as_object().unwrap();
    for name in [
        "postgres",
        "redis",
        "migrate",
        "gatehouse-1",
        "gatehouse-2",
        "nginx",
    ] {
        assert!(services.contains_key(name), "service {name}");
    }
    for replica in ["gatehouse-1", "gatehouse-2"] {
        let env = &services[replica]["environment"];
        assert!(
            env["GATEHOUSE_DATABASE_URL"]
                .as_str()
                .unwrap()
                .starts_with("postgres://")
        );
        assert!(
            env["GATEHOUSE_REDIS_URL"]
                .as_str()
                .unwrap()
                .starts_with("redis://")
        );
        assert_eq!(env["GATEHOUSE_MODE"], "production");
        assert_eq!(
            services[replica]["depends_on"]["migrate"]["condition"],
            "service_completed_successfully"
        );
    }
}

#[test]
fn the_kubernetes_manifests_hold_every_resource_with_probes() {
    let mut kinds = Vec::new();
    for file in [
        "secret.yaml",
        "migrate-job.yaml",
        "deployment.yaml",
        "service.yaml",
        "hpa.yaml",
        "pdb.yaml",
    ] {
        let docs = yaml(&format!("deploy/k8s/{file}"));
        for doc in docs {
            if doc["kind"] == "Deployment" {
                let container = &doc["spec"]["template"]["spec"]["containers"][0];
                assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
                assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
                assert_eq!(
                    doc["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
                    true
                );
                let env = container["env"].as_array().unwrap();
                let master = env
                    .iter()
                    .find(|e| e["name"] == "GATEHOUSE_MASTER_KEY")
                    .unwrap();
                assert_eq!(master["valueFrom"]["secretKeyRef"]["name"], "gatehouse");
            }
            kinds.push(doc["kind"].as_str().unwrap().to_owned());
        }
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "Deployment",
            "HorizontalPodAutoscaler",
            "Job",
            "PodDisruptionBudget",
            "Secret",
            "Service"
        ]
    );
    let kustomization = yaml("deploy/k8s/kustomization.yaml");
    assert_eq!(kustomization[0]["resources"].as_array().unwrap().len(), 6);
}

#[test]
fn the_image_is_multi_stage_non_root_and_health_checked() {
    let dockerfile = std::fs::read_to_string(manifest_path("deploy/Dockerfile")).unwrap();
    assert_eq!(
        dockerfile
            .lines()
            .filter(|l| l.starts_with("FROM "))
            .count(),
        2
    );
    let user = dockerfile.lines().find(|l| l.starts_with("USER ")).unwrap();
    assert!(!user.contains("root") && !user.ends_with(" 0"), "{user}");
    assert!(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("\"healthcheck\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_command_reports_the_server() {
    let db = TestDb::new(Backend::Sqlite).await;
    let server = ServerProcess::start(&db, &[]).await;
    let listen = server.addr.to_string();
    let mut cmd = crate::support::gatehouse(&db);
    cmd.arg("healthcheck").env("GATEHOUSE_LISTEN", &listen);
    let up = crate::support::run(&mut cmd, None).await;
    assert_eq!(up.code, 0, "{}", up.stderr);
    let mut server = server;
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();
    let mut cmd = crate::support::gatehouse(&db);
    cmd.arg("healthcheck").env("GATEHOUSE_LISTEN", &listen);
    let down = crate::support::run(&mut cmd, None).await;
    assert_eq!(down.code, 1);
    assert!(down.stderr.contains(&listen), "{}", down.stderr);
}
